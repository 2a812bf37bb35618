#!/bin/sh
# What `make` needs before it starts, checked when make reads the Makefile: prints ONE line
# naming the first thing missing and how to get it (the Makefile stops with it), nothing when
# all is there. Runnable by hand: sh plugin-tests/prereqs.sh cargo lint python testdata
#
#   cargo     cargo on PATH, Rust 1.85 or newer (edition 2024; cln-plugin/cln-rpc 0.7 need it),
#             and a C compiler, cc ($CC): rustc links with it, secp256k1-sys compiles C with it
#   lint      rustfmt and clippy (make lint, make test)
#   python    python3 with the venv module and ensurepip (for .venv: pytest, pyln-*)
#   data      the mainnet graphs (make bench): $CLN_REBALANCE_MAINNET_DATA, else ../shared/data
#   testdata  the same for make test, unless ALLOW_NO_DATA=1 (then those tests skip)
#
# Reads CARGO and PYTHON as the Makefile sets them.
CARGO=${CARGO:-cargo}
PYTHON=${PYTHON:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
data=${CLN_REBALANCE_MAINNET_DATA:-$root/../shared/data}
shown=${CLN_REBALANCE_MAINNET_DATA:-../shared/data}
snapshots="mainnet-2021-04-16 mainnet-2024-09-22 mainnet-2026-02-03"

missing() {
    echo "$*"
    exit 1
}

check_cargo() {
    command -v "$CARGO" >/dev/null 2>&1 ||
        missing "missing: $CARGO (Rust 1.85+) is not on PATH; install it with rustup (https://rustup.rs), then open a new shell"
    v=$("$CARGO" --version 2>/dev/null | sed -n 's/^cargo \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    [ -n "$v" ] || missing "missing: a working cargo ('$CARGO --version' fails); reinstall Rust with rustup (https://rustup.rs)"
    set -- $v
    [ "$1" -gt 1 ] || [ "$2" -ge 85 ] ||
        missing "missing: Rust 1.85+ (found cargo $1.$2, too old for edition 2024); update with 'rustup update stable' (https://rustup.rs)"
    set -- ${CC:-cc}
    command -v "$1" >/dev/null 2>&1 ||
        missing "missing: a C compiler, $1 (Rust links with it; secp256k1-sys compiles C); install it with 'sudo apt-get install build-essential' (Debian/Ubuntu)"
}

check_lint() {
    "$CARGO" fmt --version >/dev/null 2>&1 ||
        missing "missing: rustfmt (cargo fmt); install it with 'rustup component add rustfmt clippy'"
    "$CARGO" clippy --version >/dev/null 2>&1 ||
        missing "missing: clippy (cargo clippy); install it with 'rustup component add rustfmt clippy'"
}

check_python() {
    command -v "$PYTHON" >/dev/null 2>&1 ||
        missing "missing: $PYTHON (Python 3.10+) is not on PATH; install it (Debian/Ubuntu: sudo apt-get install python3 python3-venv), or run make PYTHON=/path/to/python3"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null ||
        missing "missing: Python 3.10+ ($PYTHON is $("$PYTHON" -V 2>&1)); install a newer one, or run make PYTHON=/path/to/python3.X"
    "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null ||
        missing "missing: $PYTHON's venv module with ensurepip (needed for .venv); install it with 'sudo apt-get install python3-venv' (Debian/Ubuntu)"
}

check_data() {
    for s in $snapshots; do
        [ -f "$data/$s.listchannels.json.gz" ] || missing "missing: $shown/$s.listchannels.json.gz (the mainnet graphs); put shared/ beside this checkout as ../shared, or set CLN_REBALANCE_MAINNET_DATA=DIR$1"
    done
}

for need in "$@"; do
    case $need in
    cargo) check_cargo ;;
    lint) check_lint ;;
    python) check_python ;;
    data) check_data "" ;;
    testdata) [ "${ALLOW_NO_DATA:-}" = 1 ] || check_data "; or run 'make test ALLOW_NO_DATA=1' to skip the tests that need them" ;;
    *) missing "prereqs.sh: unknown need '$need'" ;;
    esac
done
exit 0

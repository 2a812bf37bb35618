# cln-rebalance: build, demo, test, bench.
#   make         release build of the plugin: target/release/cln-rebalance
#   make demo    the plugin working on the lightningd stand-in (no lightningd needed)
#   make test    every test: Rust unit/integration, stand-in end-to-end, real lightningd (skips
#                with a reason when lightningd/bitcoind are not on PATH)
#   make bench   mainnet-scale graph and pathfinding benchmark
#   make fuzz    a longer property/fuzz run than make test's (tests/fuzz_core.rs)
#   make lint    rustfmt and clippy, as CI runs them

CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PLUGIN := target/release/cln-rebalance

.PHONY: all build demo test test-rust test-e2e lint bench fuzz clean

all: build

build:
	$(CARGO) build --release --workspace

# A virtualenv with pytest and pyln-* from PyPI, made once.
$(VENV)/.done: plugin-tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r plugin-tests/requirements.txt
	touch $@

demo: build
	target/release/standin-demo --plugin $(PLUGIN) --network plugin-tests/standin/networks/demo.json

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust:
	$(CARGO) test --workspace --release

test-e2e: build $(VENV)/.done
	CLN_REBALANCE_BIN=$(CURDIR)/$(PLUGIN) LIGHTNINGD_STANDIN=$(CURDIR)/target/release/lightningd-standin \
	  $(PY) -m pytest plugin-tests -q -rs

test: lint test-rust test-e2e

bench:
	$(CARGO) bench --bench pathfind

# tests/fuzz_core.rs with FUZZ_SCALE times each target's CI budget, from FUZZ_SEED (a fresh one
# by default: each target prints it), with overflow checks and debug assertions on (a build of
# its own under target/fuzz, so the normal build is left alone).
FUZZ_SCALE ?= 50
fuzz:
	FUZZ_SCALE=$(FUZZ_SCALE) PROPTEST_RNG_SEED=$${FUZZ_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')} \
	  CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true \
	  CARGO_TARGET_DIR=target/fuzz $(CARGO) test --release --test fuzz_core

clean:
	$(CARGO) clean
	rm -rf $(VENV)

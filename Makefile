# cln-rebalance: build, demo, test, bench.
#   make         release build of the plugin: target/release/cln-rebalance
#   make demo    the plugin working on the lightningd stand-in (no lightningd needed)
#   make test    every test: Rust unit/integration, stand-in end-to-end, real lightningd (skips
#                with a reason when lightningd/bitcoind are not on PATH)
#   make bench   both benchmarks below
#   make bench-pathfind  mainnet-scale graph and pathfinding benchmark
#   make bench-sim       simulated rebalancing on mainnet: attempts, fees vs an oracle, per strategy
#                        (flags in SIM_ARGS, e.g. make bench-sim SIM_ARGS='--seeds 7 --dist uniform')
#   make lint    rustfmt and clippy, as CI runs them

CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PLUGIN := target/release/cln-rebalance

.PHONY: all build demo test test-rust test-e2e lint bench bench-pathfind bench-sim clean

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

bench: bench-pathfind bench-sim

bench-pathfind:
	$(CARGO) bench --bench pathfind

SIM_ARGS ?=
bench-sim:
	$(CARGO) bench --bench sim -- $(SIM_ARGS)

clean:
	$(CARGO) clean
	rm -rf $(VENV)

# cln-rebalance: build, demo, test, bench.
#   make         release build of the plugin: target/release/cln-rebalance
#   make demo    the plugin working on the lightningd stand-in (no lightningd needed)
#   make test    every test: Rust unit/integration, stand-in end-to-end, real lightningd (skips
#                with a reason when lightningd/bitcoind are not on PATH)
#   make bench   all the benchmarks below
#   make bench-pathfind  mainnet-scale graph and pathfinding benchmark
#   make bench-sim       simulated rebalancing on mainnet: attempts, fees vs an oracle, per strategy
#                        (flags in SIM_ARGS, e.g. make bench-sim SIM_ARGS='--seeds 7 --dist uniform')
#   make bench-plan      the planner over 1,000 channels, the report over 10,000 entries
#   make bench-rebalanceall  one rebalanceall over the mainnet simulation, per strategy and budget
#                        (flags in JOB_ARGS, e.g. make bench-rebalanceall JOB_ARGS='--budgets none,500')
#   make bench-memory    the plugin process's own peak memory loading the mainnet graph
#   make bench-flow      the multi-part solver on mainnet: time at 1M/2M/5M sat, one-round success
#                        and fees against an oracle (flags in FLOW_ARGS, e.g. FLOW_ARGS='--seeds 1,2')
#   make fuzz    a longer property/fuzz run than make test's (tests/fuzz_core/, tests/fuzz_flow.rs)
#   make lint    rustfmt, clippy and the layout's rules (tests/layers.rs), as CI runs them
#
# Needs only cargo (Rust 1.85+, with rustfmt and clippy for lint/test), python3 with venv, and
# for test/bench the mainnet graphs in ../shared/data ($CLN_REBALANCE_MAINNET_DATA overrides;
# `make test ALLOW_NO_DATA=1` runs without them, those tests skip). Python packages go into
# .venv from plugin-tests/requirements.txt; nothing else on the machine is used.

CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PLUGIN := target/release/cln-rebalance
# PATH's python3 during pytest: the stdlib only (plugin-tests/python_guard.py).
GUARD := $(VENV)/guard-bin

.PHONY: all build demo test test-rust test-e2e lint bench bench-pathfind bench-plan bench-sim bench-rebalanceall bench-memory bench-flow fuzz clean

# Python variables of the calling shell would leak other packages into the venv.
unexport PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTHONUSERBASE

# What each goal needs, checked as make starts (plugin-tests/prereqs.sh): a missing one stops
# make with one line saying what is missing and how to get it.
NEEDS_all := cargo
NEEDS_build := cargo
NEEDS_demo := cargo
NEEDS_lint := cargo lint
NEEDS_test-rust := cargo testdata
NEEDS_test-e2e := cargo python testdata
NEEDS_test := cargo lint python testdata
NEEDS_bench := cargo data
NEEDS_bench-pathfind := cargo data
NEEDS_bench-sim := cargo data
NEEDS_bench-plan := cargo
NEEDS_bench-rebalanceall := cargo data
NEEDS_bench-memory := cargo data
NEEDS_bench-flow := cargo data
NEEDS := $(sort $(foreach g,$(or $(MAKECMDGOALS),all),$(NEEDS_$(g))))
ifneq ($(NEEDS),)
MISSING := $(shell CARGO='$(CARGO)' PYTHON='$(PYTHON)' ALLOW_NO_DATA='$(ALLOW_NO_DATA)' \
  CLN_REBALANCE_MAINNET_DATA='$(CLN_REBALANCE_MAINNET_DATA)' \
  sh plugin-tests/prereqs.sh $(filter $(NEEDS),cargo lint python testdata data))
ifneq ($(MISSING),)
$(error $(MISSING))
endif
endif

all: build

build:
	$(CARGO) build --release --workspace

# A virtualenv with pytest and pyln-* from PyPI, made once.
$(VENV)/.done: plugin-tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r plugin-tests/requirements.txt
	touch $@

demo: build
	target/release/standin-demo --plugin $(PLUGIN) --network plugin-tests/standin/networks/tour.json

# tests/layers.rs: no import circle between files of src/, the core imports only the core, the
# edge imports no commands/rebalance/state, no file over 600 lines before its tests.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --release --test layers -q

test-rust:
	$(CARGO) test --workspace --release

# pytest runs with $(GUARD) first on PATH and CLN_REBALANCE_PYTHON_GUARD=1 (conftest.py then
# fails the run if anything it imported came from outside .venv and the stdlib). Exit 5 means
# pytest ran nothing (none collected, or all deselected): a failure, said as such.
test-e2e: build $(VENV)/.done
	$(PY) plugin-tests/python_guard.py $(GUARD)
	@echo 'PATH=$(GUARD):$$PATH CLN_REBALANCE_PYTHON_GUARD=1 $(PY) -m pytest plugin-tests -q -rs   (PATH python3: the stdlib only)'
	@PATH='$(CURDIR)/$(GUARD)':"$$PATH" CLN_REBALANCE_PYTHON_GUARD=1 \
	  CLN_REBALANCE_BIN='$(CURDIR)/$(PLUGIN)' LIGHTNINGD_STANDIN='$(CURDIR)/target/release/lightningd-standin' \
	  $(PY) -m pytest plugin-tests -q -rs; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo 'pytest ran no tests from plugin-tests (exit 5: none collected, or all deselected): nothing was tested'; fi; \
	  exit $$rc

test: lint test-rust test-e2e

bench: bench-pathfind bench-plan bench-sim bench-rebalanceall bench-memory bench-flow

bench-pathfind:
	$(CARGO) bench --bench pathfind

# tests/fuzz_core/ and tests/fuzz_flow.rs with FUZZ_SCALE times each target's CI budget, from
# FUZZ_SEED (a fresh one by default: each target prints it), with overflow checks and debug
# assertions on (a build of its own under target/fuzz, so the normal build is left alone).
FUZZ_SCALE ?= 50
FUZZ_SEED ?=
fuzz:
	FUZZ_SCALE=$(FUZZ_SCALE) \
	  PROPTEST_RNG_SEED=$(if $(FUZZ_SEED),$(FUZZ_SEED),$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')) \
	  CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true \
	  CARGO_TARGET_DIR=target/fuzz $(CARGO) test --release --test fuzz_core --test fuzz_flow

bench-plan:
	$(CARGO) bench --bench plan

SIM_ARGS ?=
bench-sim:
	$(CARGO) bench --bench sim -- $(SIM_ARGS)

JOB_ARGS ?=
bench-rebalanceall:
	$(CARGO) bench --bench rebalanceall -- $(JOB_ARGS)

FLOW_ARGS ?=
bench-flow:
	$(CARGO) bench --bench flow -- $(FLOW_ARGS)

# The plugin process's VmHWM loading and refreshing the 2026 mainnet graph on the stand-in.
MAINNET_DATA := $(or $(CLN_REBALANCE_MAINNET_DATA),../shared/data)
bench-memory: build
	$(PYTHON) benches/plugin_memory.py target/release/lightningd-standin $(PLUGIN) \
	  $(MAINNET_DATA)/mainnet-2026-02-03.listchannels.json.gz

clean:
	$(CARGO) clean
	rm -rf $(VENV)

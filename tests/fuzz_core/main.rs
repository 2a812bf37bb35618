//! Fuzzing and properties (issue 12): proptest over the request params, amounts, the
//! `listchannels` decode, the datastore encodings, route building on random graphs (the core as
//! `Plan` drives it, and the real `rebalance` dry run on random stand-in networks) and the
//! liquidity model.
//!
//! Every target runs a fixed number of cases from a fixed seed, so `make test` is reproducible
//! and fast; each prints `fuzz <target>: <cases> cases ...` (to stderr, past the test harness's
//! capture). Longer runs on demand:
//! ```text
//! PROPTEST_CASES=100000 cargo test --release --test fuzz_core     # every target, 100k cases
//! PROPTEST_RNG_SEED=42 cargo test --release --test fuzz_core      # another seed
//! FUZZ_SCALE=50 cargo test --release --test fuzz_core             # 50x each target's budget
//! make fuzz     # FUZZ_SCALE=50, a fresh seed, overflow checks and debug assertions on
//! ```
//! A failing case is shrunk, printed, and its seed saved in `tests/fuzz_core/main.proptest-regressions`
//! (replayed first on every later run: commit it with the fix).
//!
//! One file per area; this one holds the runner and the generators the areas share.
//!
//! The properties are checked by code written here (or in `support/routecheck.rs`), not by the
//! code under test: a spec of the params, a reference amount parser, a reference of which
//! `listchannels` entries are valid, BOLT 7's fee rule and an exhaustive route search.

#[path = "../common/mod.rs"]
mod common;
#[path = "../support/fuzzrun.rs"]
mod fuzzrun;
#[path = "../support/routecheck.rs"]
mod routecheck;

mod amounts; // 2. amount strings
mod datastore; // 4. the liquidity model's and the history's records
mod dryrun; // 5b. the real rebalance dry run on random stand-in networks
mod listchannels; // 3. the listchannels decode
mod model; // 6. the liquidity model
mod request_params; // 1. request params
mod routes; // 5. route building on random graphs

// What one area defines another may use (a name defined in an area shadows these).
use amounts::*;
use datastore::*;
use listchannels::*;
use routes::*;

use cln_rebalance::config::{Config as RebalanceConfig, Routing};
use cln_rebalance::core::amount::{AmountError, MAX_MONEY_MSAT, fee_cap_msat, parse_amount};
use cln_rebalance::core::graph::{EdgeIdx, Graph, GraphBuilder, NodeIdx, Policy, Scid};
use cln_rebalance::core::history::{self, Outcome};
use cln_rebalance::core::liquidity::{
    Beliefs, Bounds, ChanDir, Liquidity, ModelConfig, Prior, prior_probability, risk_msat,
    success_probability,
};
use cln_rebalance::core::pathfind::{
    Exclusions, FeeOnly, HopCost, Query, Scratch, find_path, find_path_with,
};
use cln_rebalance::core::route::{
    Hop, HopSpec, MAX_HOPS, MAX_TOTAL_CLTV, build_route, route_fee_msat,
};
use cln_rebalance::error::RpcFailure;
use cln_rebalance::lightningd::store;
use cln_rebalance::params::{
    self, BALANCES_PARAMS, LIQUIDITY_PARAMS, MAX_PARTS, MAX_RETRY_FOR, REBALANCE_PARAMS,
    REBALANCEALL_PARAMS, REPORT_PARAMS, RebalanceParams, SETTINGS_PARAMS,
};
use fuzzrun::Tally;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use routecheck::{check_hops, check_path, exhaustive, spec_fee};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

// ---------------------------------------------------------------------------------------------
// The runner: fixed cases and seed for CI, PROPTEST_CASES / PROPTEST_RNG_SEED for longer runs.

const SEED: u64 = 0x0012_F022_2026;

/// Runs `test` on `ci_cases` values of `strategy` (or `$PROPTEST_CASES`), seeded per target;
/// regressions kept in `main.proptest-regressions` beside this file.
fn fuzz<S: Strategy + 'static>(
    name: &'static str,
    ci_cases: u32,
    strategy: S,
    tally: &Tally,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let runner = fuzzrun::Runner {
        seed: SEED,
        source_file: file!(),
        max_shrink_iters: 4096,
    };
    runner.fuzz(name, ci_cases, strategy, tally, test);
}

/// `prop_assert!` for conditions computed by helpers.
fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if ok {
        Ok(())
    } else {
        Err(TestCaseError::fail(what()))
    }
}

// ---------------------------------------------------------------------------------------------
// Shared generators.

/// Strings that sit on the edges of what params, amounts and scids accept.
fn tricky_string() -> BoxedStrategy<String> {
    let fixed = prop::sample::select(vec![
        "",
        " ",
        "\t\n",
        "\u{3000}",
        "\u{feff}1x1x0",
        "1x1x0",
        "  103x1x0 ",
        "0x0x0",
        "16777215x16777215x65535",
        "16777216x0x0",
        "1x1x65536",
        "1x1",
        "1x1x0x0",
        "1:1:0",
        "true",
        "false",
        "True",
        "null",
        "0",
        "5",
        "+5",
        "-5",
        " 7 ",
        "1e3",
        "0x10",
        "5.0",
        "3600",
        "3601",
        "1000000",
        "1000001",
        "18446744073709551615",
        "18446744073709551616",
        "2100000000000000000",
        "2100000000000000001",
        "100000sat",
        "1000msat",
        "0.01btc",
        "0.5btc",
        "21000000btc",
        "21000000.00000000001btc",
        "20999999.99999999999btc",
        "1.5msat",
        "1.001sat",
        "1.0001sat",
        ".5sat",
        "5.sat",
        "5 sat",
        "5SAT",
        "\u{661}\u{662}sat",
        "\u{ff15}",
        "-0",
        "00000000000000000000000000000001msat",
        "0281d6e62b0c7f3aac3fd0d1e6e5e8a56fdb6b4e4b2aa4a30ecba46eeef0e5d3d8",
        "ñødé",
        "💸",
    ])
    .prop_map(str::to_string);
    prop_oneof![
        4 => fixed,
        2 => amount_text(),
        1 => "[0-9x. a-z+-]{0,12}",
        1 => any::<String>(),
    ]
    .boxed()
}

/// An amount written as a CLN amount string, valid or nearly so.
fn amount_text() -> BoxedStrategy<String> {
    (any::<u64>(), 0usize..6, 0u32..14)
        .prop_map(|(n, unit, frac_digits)| {
            let unit = ["", "msat", "sat", "btc", "SAT", "bitcoin"][unit];
            if frac_digits == 0 {
                format!("{n}{unit}")
            } else {
                let frac = n % 10u64.pow(frac_digits.min(19));
                format!("{}.{frac:0w$}{unit}", n / 1000, w = frac_digits as usize)
            }
        })
        .boxed()
}

/// Any JSON value: scalars of every kind (huge, negative, fractional numbers; unicode and
/// near-valid strings) and nested arrays and objects.
fn arb_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![
            0u64,
            1,
            u64::MAX,
            3600,
            3601,
            1_000_000,
            MAX_MONEY_MSAT
        ])
        .prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| {
            serde_json::Number::from_f64(f).map(Value::Number)
        }),
        prop::sample::select(vec![0.5f64, -1.5, 5.0, 1e20, -0.0, 1e300]).prop_map(|f| json!(f)),
        tricky_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key_name(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Object keys: the params' own names, near misses and anything.
fn key_name() -> BoxedStrategy<String> {
    let mut names: Vec<&str> = REBALANCE_PARAMS.to_vec();
    names.extend(BALANCES_PARAMS);
    names.extend(LIQUIDITY_PARAMS);
    names.extend(REBALANCEALL_PARAMS);
    names.extend(REPORT_PARAMS);
    names.extend(SETTINGS_PARAMS);
    names.extend(["amount", "Amount_msat", "outgoing ", "", "scid", "ñ", "0"]);
    prop_oneof![
        4 => prop::sample::select(names).prop_map(str::to_string),
        1 => any::<String>(),
    ]
    .boxed()
}

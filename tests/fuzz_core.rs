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
//! A failing case is shrunk, printed, and its seed saved in `tests/fuzz_core.proptest-regressions`
//! (replayed first on every later run: commit it with the fix).
//!
//! The properties are checked by code written here (or in `support/routecheck.rs`), not by the
//! code under test: a spec of the params, a reference amount parser, a reference of which
//! `listchannels` entries are valid, BOLT 7's fee rule and an exhaustive route search.

mod common;
#[path = "support/routecheck.rs"]
mod routecheck;

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
    self, BALANCES_PARAMS, LIQUIDITY_PARAMS, MAX_RETRY_FOR, REBALANCE_PARAMS, REBALANCEALL_PARAMS,
    REPORT_PARAMS, RebalanceParams, SETTINGS_PARAMS,
};
use proptest::prelude::*;
use proptest::test_runner::{
    Config, FileFailurePersistence, RngSeed, TestCaseError, TestError, TestRunner,
};
use routecheck::{check_hops, check_path, exhaustive, spec_fee};
use serde_json::{Map, Value, json};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Instant;

// ---------------------------------------------------------------------------------------------
// The runner: fixed cases and seed for CI, PROPTEST_CASES / PROPTEST_RNG_SEED for longer runs.

const SEED: u64 = 0x0012_F022_2026;

/// Counts of what a target's cases exercised, printed with the case count.
#[derive(Default)]
struct Tally(std::cell::RefCell<BTreeMap<&'static str, u64>>);

impl Tally {
    fn add(&self, what: &'static str) {
        *self.0.borrow_mut().entry(what).or_default() += 1;
    }
    fn add_n(&self, what: &'static str, n: u64) {
        *self.0.borrow_mut().entry(what).or_default() += n;
    }
    fn get(&self, what: &'static str) -> u64 {
        self.0.borrow().get(what).copied().unwrap_or(0)
    }
    fn summary(&self) -> String {
        let m = self.0.borrow();
        if m.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
        format!(" ({})", parts.join(", "))
    }
}

/// Runs `test` on `ci_cases` values of `strategy` (or `$PROPTEST_CASES`), seeded per target.
fn fuzz<S: Strategy + 'static>(
    name: &'static str,
    ci_cases: u32,
    strategy: S,
    tally: &Tally,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        // FUZZ_SCALE=N runs N times each target's CI budget (`make fuzz`).
        let scale = std::env::var("FUZZ_SCALE")
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(1);
        config.cases = ci_cases.saturating_mul(scale.max(1));
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        let salt = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        config.rng_seed = RngSeed::Fixed(SEED ^ salt);
    }
    config.source_file = Some(file!());
    config.test_name = Some(name);
    config.failure_persistence = Some(Box::new(FileFailurePersistence::WithSource(
        "proptest-regressions",
    )));
    config.max_shrink_iters = 4096;
    let (cases, seed) = (config.cases, config.rng_seed);
    let runs = Cell::new(0u64);
    let started = Instant::now();
    // Boxed, so the runner and its shrinking are compiled once per value type, not once per
    // strategy type (it halved this file's build time).
    let strategy = strategy.boxed();
    let result = TestRunner::new(config).run(&strategy, |v| {
        runs.set(runs.get() + 1);
        test(v)
    });
    let line = format!(
        "fuzz {name}: {cases} cases, {} runs, seed {seed}, {:.2}s{}\n",
        runs.get(),
        started.elapsed().as_secs_f64(),
        tally.summary()
    );
    // Straight to stderr: libtest captures print!/eprint! of passing tests.
    let _ = std::io::stderr().write_all(line.as_bytes());
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, value)) => {
            panic!("fuzz {name}: {why}\nminimal failing input: {value:#?}")
        }
        Err(e) => panic!("fuzz {name}: {e}"),
    }
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

// ---------------------------------------------------------------------------------------------
// 1. Request params.

/// What a parameter holds, for the spec below.
#[derive(Clone, Copy)]
enum Kind {
    /// A non-blank string, trimmed.
    Text,
    /// A short_channel_id string.
    ScidText,
    /// msat: a JSON integer or a CLN amount string, at most 21M BTC; `nonzero` refuses 0.
    Amount { nonzero: bool },
    /// A whole number (JSON integer or a string of one) at most `max`; `nonzero` refuses 0.
    Whole { max: u64, nonzero: bool },
    /// true/false or "true"/"false".
    Flag,
    /// A decimal ratio (JSON number or string), at most two integer digits and six decimals,
    /// at most 10: in millionths.
    Ratio,
}

/// One parameter as the spec reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parsed {
    Text(String),
    Scid(Scid),
    Number(u64),
    Flag(bool),
}

/// Why the spec refuses params.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    NotContainer,
    TooMany(usize),
    Unknown(String),
    Param(&'static str),
}

/// The params contract, written from the README rather than from params.rs: params are null,
/// an array (at most one value per name, null = absent) or an object (known names only);
/// each parameter is checked in `order`; required ones must be present.
fn spec(
    params: &Value,
    names: &[&'static str],
    order: &[(&'static str, Kind, bool)],
    rules: Rules,
) -> Result<BTreeMap<&'static str, Parsed>, Refusal> {
    let mut given: BTreeMap<&'static str, &Value> = BTreeMap::new();
    match params {
        Value::Null => {}
        Value::Array(values) => {
            if values.len() > names.len() {
                return Err(Refusal::TooMany(values.len()));
            }
            for (name, v) in names.iter().zip(values) {
                if !v.is_null() {
                    given.insert(*name, v);
                }
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let Some(name) = names.iter().find(|n| **n == k.as_str()) else {
                    return Err(Refusal::Unknown(k.clone()));
                };
                if !v.is_null() {
                    given.insert(*name, v);
                }
            }
        }
        _ => return Err(Refusal::NotContainer),
    }
    let mut out = BTreeMap::new();
    for &(name, kind, required) in order {
        let Some(v) = given.get(name) else {
            if required {
                return Err(Refusal::Param(name));
            }
            continue;
        };
        let bad = Refusal::Param(name);
        let parsed = match kind {
            Kind::Text | Kind::ScidText => {
                let s = v.as_str().map(str::trim).filter(|s| !s.is_empty());
                let s = s.ok_or(bad.clone())?;
                match kind {
                    Kind::ScidText => Parsed::Scid(s.parse().map_err(|_| bad.clone())?),
                    _ => Parsed::Text(s.to_string()),
                }
            }
            Kind::Amount { nonzero } => {
                let msat = match v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => parse_amount(s).ok(),
                    _ => None,
                };
                let msat = msat.filter(|m| *m <= MAX_MONEY_MSAT && !(nonzero && *m == 0));
                Parsed::Number(msat.ok_or(bad)?)
            }
            Kind::Whole { max, nonzero } => {
                let n = match v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse::<u64>().ok(),
                    _ => None,
                };
                let n = n.filter(|n| *n <= max && !(nonzero && *n == 0));
                Parsed::Number(n.ok_or(bad)?)
            }
            Kind::Flag => match v {
                Value::Bool(b) => Parsed::Flag(*b),
                Value::String(s) if s == "true" => Parsed::Flag(true),
                Value::String(s) if s == "false" => Parsed::Flag(false),
                _ => return Err(bad),
            },
            Kind::Ratio => {
                let text = match v {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.trim().to_string(),
                    _ => return Err(bad),
                };
                let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
                let digits =
                    |d: &str, most: usize| d.len() <= most && d.bytes().all(|b| b.is_ascii_digit());
                if !digits(int, 2) || !digits(frac, 6) || (int.is_empty() && frac.is_empty()) {
                    return Err(bad);
                }
                let millionths = format!("{int}{frac:0<6}").parse::<u64>().unwrap_or(0);
                if millionths > 10_000_000 {
                    return Err(bad);
                }
                Parsed::Number(millionths)
            }
        };
        out.insert(name, parsed);
    }
    rules(&out)?;
    Ok(out)
}

/// Rules across parameters, checked after each one passed.
type Rules = fn(&BTreeMap<&'static str, Parsed>) -> Result<(), Refusal>;

fn no_rules(_: &BTreeMap<&'static str, Parsed>) -> Result<(), Refusal> {
    Ok(())
}

/// The error `params.rs` must give for a refusal: always -32602, the message naming the
/// parameter first (`name: ...`, with `data.parameter`), or one of the two whole-params forms.
fn check_refusal(e: &RpcFailure, why: &Refusal, names: &[&str]) -> Result<(), TestCaseError> {
    prop_assert_eq!(e.code, -32602, "{:?}", e);
    match why {
        Refusal::NotContainer => {
            prop_assert_eq!(&e.message, "params must be an array or an object");
        }
        Refusal::TooMany(n) => prop_assert_eq!(
            &e.message,
            &format!(
                "too many parameters: got {n}, expected at most {} ({})",
                names.len(),
                names.join(", ")
            )
        ),
        Refusal::Unknown(k) => {
            prop_assert_eq!(
                &e.message,
                &format!(
                    "{k}: unknown parameter (expected one of: {})",
                    names.join(", ")
                )
            );
            prop_assert_eq!(&e.data, &Some(json!({ "parameter": k })));
        }
        Refusal::Param(name) => {
            prop_assert!(
                e.message.starts_with(&format!("{name}: ")),
                "expected an error about {}, got {:?}",
                name,
                e.message
            );
            prop_assert_eq!(&e.data, &Some(json!({ "parameter": name })));
        }
    }
    Ok(())
}

/// Params as lightning-cli sends them, and anything else: arbitrary JSON, positional arrays
/// of near-valid values (too many, nulls between), keyword objects with right names, wrong
/// types and unknown keys.
fn params_value(names: &'static [&'static str]) -> BoxedStrategy<Value> {
    let value = prop_oneof![
        4 => tricky_string().prop_map(Value::String),
        2 => arb_json(),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => (0u64..5000).prop_map(Value::from),
    ];
    let positional =
        prop::collection::vec(value.clone(), 0..=names.len() + 2).prop_map(Value::Array);
    let key = if names.is_empty() {
        key_name()
    } else {
        prop_oneof![
            6 => prop::sample::select(names.to_vec()).prop_map(str::to_string),
            1 => key_name(),
        ]
        .boxed()
    };
    let named = prop::collection::vec((key, value), 0..=names.len() + 1)
        .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()));
    if names.is_empty() {
        let empty = prop_oneof![Just(json!([])), Just(json!({})), Just(Value::Null)];
        return prop_oneof![3 => positional, 3 => named, 1 => arb_json(), 3 => empty].boxed();
    }
    prop_oneof![3 => positional, 3 => named, 1 => arb_json(), 3 => near_valid(names)].boxed()
}

/// A value the parameter accepts (as a JSON number, a string, or what it takes).
fn valid_value(name: &str) -> BoxedStrategy<Value> {
    let scid = (
        0u64..=0xFF_FFFF,
        0u64..=0xFF_FFFF,
        0u64..=0xFFFF,
        any::<bool>(),
    )
        .prop_map(|(b, t, o, pad)| {
            let s = format!("{b}x{t}x{o}");
            json!(if pad { format!(" {s} ") } else { s })
        });
    let flag = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(vec!["true", "false"]).prop_map(|s| json!(s)),
    ];
    let whole = |lo: u64, hi: u64| {
        prop_oneof![
            (lo..=hi).prop_map(Value::from),
            (lo..=hi).prop_map(|n| json!(n.to_string())),
            Just(json!(hi)),
        ]
    };
    let amount = |lo: u64| {
        prop_oneof![
            (lo..=MAX_MONEY_MSAT).prop_map(Value::from),
            (lo..100_000_000).prop_map(Value::from),
            (money(), 0u8..6, any::<bool>()).prop_filter_map("positive", move |(m, f, pad)| {
                (m >= lo).then(|| json!(written(m, f, pad).expect("a form").0))
            }),
        ]
    };
    match name {
        "short_channel_id" => scid.boxed(),
        "outgoing" | "incoming" | "id" => prop_oneof![
            scid,
            Just(json!(node_name(3))),
            "[a-z0-9é ]{0,8}[a-z0-9é][a-z0-9é ]{0,8}".prop_map(Value::String),
        ]
        .boxed(),
        "amount_msat" => amount(1).boxed(),
        "exemptfee" | "min_amount" | "budget" => amount(0).boxed(),
        "maxfeeppm" => whole(0, 1_000_000).boxed(),
        "retry_for" => whole(1, MAX_RETRY_FOR).boxed(),
        "target" => whole(0, 100).boxed(),
        "days" => whole(1, 3650).boxed(),
        "feeratio" => prop_oneof![
            (0u64..=10_000_000).prop_map(|m| json!(format!(
                "{}.{:06}",
                m / 1_000_000,
                m % 1_000_000
            ))),
            (0u64..=10).prop_map(Value::from),
            prop::sample::select(vec![0.5f64, 0.25, 1.0, 0.000001, 9.999999])
                .prop_map(|f| json!(f)),
            prop::sample::select(vec!["0.5", ".5", "10", "10.", " 0.1 ", "0"])
                .prop_map(|t| json!(t)),
        ]
        .boxed(),
        _ => flag.boxed(),
    }
}

/// Valid params (positional or keyword, some optional ones left out), then up to two values
/// replaced by anything and sometimes an extra value or key.
fn near_valid(names: &'static [&'static str]) -> BoxedStrategy<Value> {
    let values: Vec<BoxedStrategy<Value>> = names.iter().map(|n| valid_value(n)).collect();
    (
        values,
        prop::collection::vec(prop::bool::weighted(0.8), names.len()),
        any::<bool>(),
        prop::collection::vec((any::<prop::sample::Index>(), arb_json()), 0..3),
        prop::option::weighted(0.1, (key_name(), arb_json())),
    )
        .prop_map(move |(values, keep, keyword, replace, extra)| {
            let mut values: Vec<Value> = values
                .into_iter()
                .zip(&keep)
                .map(|(v, k)| if *k { v } else { Value::Null })
                .collect();
            for (i, v) in replace {
                let i = i.index(values.len());
                values[i] = v;
            }
            if keyword {
                let mut m: Map<String, Value> = names
                    .iter()
                    .zip(values)
                    .filter(|(_, v)| !v.is_null())
                    .map(|(n, v)| (n.to_string(), v))
                    .collect();
                if let Some((k, v)) = extra {
                    m.insert(k, v);
                }
                Value::Object(m)
            } else {
                while values.last().is_some_and(Value::is_null) {
                    values.pop();
                }
                if let Some((_, v)) = extra {
                    values.push(v);
                }
                Value::Array(values)
            }
        })
        .boxed()
}

fn run_params_target<T: std::fmt::Debug>(
    name: &'static str,
    names: &'static [&'static str],
    order: &'static [(&'static str, Kind, bool)],
    rules: Rules,
    call: fn(&Value) -> Result<T, RpcFailure>,
    round_trip: fn(&T, &BTreeMap<&'static str, Parsed>) -> Result<(), TestCaseError>,
) {
    let tally = Tally::default();
    fuzz(name, 3000, params_value(names), &tally, |params| {
        let want = spec(&params, names, order, rules);
        match (call(&params), want) {
            (Ok(got), Ok(want)) => {
                tally.add("ok");
                round_trip(&got, &want)
            }
            (Err(e), Err(why)) => {
                tally.add(match why {
                    Refusal::Param(_) => "refused a param",
                    _ => "refused the params",
                });
                check_refusal(&e, &why, names)
            }
            (got, want) => Err(TestCaseError::fail(format!(
                "params {params}: got {got:?}, the spec says {want:?}"
            ))),
        }
    });
}

fn text(want: &BTreeMap<&str, Parsed>, name: &str) -> Option<String> {
    match want.get(name) {
        Some(Parsed::Text(s)) => Some(s.clone()),
        _ => None,
    }
}

fn number(want: &BTreeMap<&str, Parsed>, name: &str) -> Option<u64> {
    match want.get(name) {
        Some(Parsed::Number(n)) => Some(*n),
        _ => None,
    }
}

fn flag(want: &BTreeMap<&str, Parsed>, name: &str) -> bool {
    matches!(want.get(name), Some(Parsed::Flag(true)))
}

const REBALANCE_ORDER: &[(&str, Kind, bool)] = &[
    ("outgoing", Kind::Text, true),
    ("incoming", Kind::Text, true),
    ("amount_msat", Kind::Amount { nonzero: true }, false),
    (
        "retry_for",
        Kind::Whole {
            max: MAX_RETRY_FOR,
            nonzero: true,
        },
        false,
    ),
    (
        "maxfeeppm",
        Kind::Whole {
            max: 1_000_000,
            nonzero: false,
        },
        false,
    ),
    ("exemptfee", Kind::Amount { nonzero: false }, false),
    ("dryrun", Kind::Flag, false),
];

#[test]
fn fuzz_params_rebalance() {
    run_params_target(
        "params::rebalance",
        &REBALANCE_PARAMS,
        REBALANCE_ORDER,
        no_rules,
        params::rebalance,
        |got: &RebalanceParams, want| {
            let expected = RebalanceParams {
                outgoing: text(want, "outgoing").unwrap_or_default(),
                incoming: text(want, "incoming").unwrap_or_default(),
                amount_msat: number(want, "amount_msat"),
                maxfeeppm: number(want, "maxfeeppm"),
                exemptfee: number(want, "exemptfee"),
                retry_for: number(want, "retry_for"),
                dryrun: flag(want, "dryrun"),
            };
            prop_assert_eq!(got, &expected);
            Ok(())
        },
    );
}

#[test]
fn fuzz_params_balances() {
    run_params_target(
        "params::balances",
        &BALANCES_PARAMS,
        &[("id", Kind::Text, false), ("quote", Kind::Flag, false)],
        no_rules,
        params::balances,
        |got, want| {
            prop_assert_eq!(&got.id, &text(want, "id"));
            prop_assert_eq!(got.quote, flag(want, "quote"));
            Ok(())
        },
    );
}

#[test]
fn fuzz_params_liquidity() {
    run_params_target(
        "params::liquidity",
        &LIQUIDITY_PARAMS,
        &[
            ("short_channel_id", Kind::ScidText, false),
            ("reset", Kind::Flag, false),
        ],
        no_rules,
        params::liquidity,
        |got, want| {
            let scid = match want.get("short_channel_id") {
                Some(Parsed::Scid(s)) => Some(*s),
                _ => None,
            };
            prop_assert_eq!(got.short_channel_id, scid);
            prop_assert_eq!(got.reset, flag(want, "reset"));
            Ok(())
        },
    );
}

fn maybe_flag(want: &BTreeMap<&str, Parsed>, name: &str) -> Option<bool> {
    match want.get(name) {
        Some(Parsed::Flag(b)) => Some(*b),
        _ => None,
    }
}

#[test]
fn fuzz_params_rebalanceall() {
    run_params_target(
        "params::rebalanceall",
        &REBALANCEALL_PARAMS,
        &[
            (
                "target",
                Kind::Whole {
                    max: 100,
                    nonzero: false,
                },
                false,
            ),
            ("min_amount", Kind::Amount { nonzero: false }, false),
            ("feeratio", Kind::Ratio, false),
            ("budget", Kind::Amount { nonzero: false }, false),
            ("dryrun", Kind::Flag, false),
        ],
        no_rules,
        params::rebalanceall,
        |got, want| {
            prop_assert_eq!(got.min_amount_msat, number(want, "min_amount"));
            prop_assert_eq!(
                got.feeratio_millionths.map(u64::from),
                number(want, "feeratio")
            );
            prop_assert_eq!(got.target_percent.map(u64::from), number(want, "target"));
            prop_assert_eq!(got.budget_msat, number(want, "budget"));
            prop_assert_eq!(got.dryrun, flag(want, "dryrun"));
            Ok(())
        },
    );
}

#[test]
fn fuzz_params_rebalancereport_and_stop() {
    run_params_target(
        "params::rebalancereport",
        &REPORT_PARAMS,
        &[(
            "days",
            Kind::Whole {
                max: 3650,
                nonzero: true,
            },
            false,
        )],
        no_rules,
        params::rebalancereport,
        |got, want| {
            prop_assert_eq!(*got, number(want, "days"));
            Ok(())
        },
    );
    run_params_target(
        "params::rebalancestop",
        &[],
        &[],
        no_rules,
        params::rebalancestop,
        |_, _| Ok(()),
    );
}

/// `rebalance-settings`: an id is needed to set or clear anything, and clear goes alone.
fn settings_rules(p: &BTreeMap<&'static str, Parsed>) -> Result<(), Refusal> {
    let sets = p.contains_key("exclude") || p.contains_key("target");
    let clear = matches!(p.get("clear"), Some(Parsed::Flag(true)));
    if !p.contains_key("id") && (sets || clear) {
        return Err(Refusal::Param("id"));
    }
    if clear && sets {
        return Err(Refusal::Param("clear"));
    }
    Ok(())
}

#[test]
fn fuzz_params_settings() {
    run_params_target(
        "params::settings",
        &SETTINGS_PARAMS,
        &[
            ("id", Kind::Text, false),
            ("exclude", Kind::Flag, false),
            (
                "target",
                Kind::Whole {
                    max: 100,
                    nonzero: false,
                },
                false,
            ),
            ("clear", Kind::Flag, false),
        ],
        settings_rules,
        params::settings,
        |got, want| {
            prop_assert_eq!(&got.id, &text(want, "id"));
            prop_assert_eq!(got.exclude, maybe_flag(want, "exclude"));
            prop_assert_eq!(got.target_percent.map(u64::from), number(want, "target"));
            prop_assert_eq!(got.clear, flag(want, "clear"));
            Ok(())
        },
    );
}

/// lightningd's `check`: the same answer as the command's own parser, and an unknown command
/// named as `command_to_check`.
#[test]
fn fuzz_params_check() {
    let tally = Tally::default();
    let commands = vec![
        "rebalance",
        "balances",
        "balances-table",
        "rebalance-liquidity",
        "rebalanceall",
        "rebalancestop",
        "rebalancereport",
        "rebalancereport-table",
        "rebalance-settings",
        "pay",
        "",
        "Rebalance",
    ];
    let cases = (
        prop::sample::select(commands),
        prop_oneof![
            params_value(&REBALANCE_PARAMS),
            params_value(&SETTINGS_PARAMS)
        ],
    );
    fuzz("params::check", 3000, cases, &tally, |(command, p)| {
        let direct: Option<Result<(), RpcFailure>> = match command {
            "rebalance" => Some(params::rebalance(&p).map(|_| ())),
            "balances" | "balances-table" => Some(params::balances(&p).map(|_| ())),
            "rebalance-liquidity" => Some(params::liquidity(&p).map(|_| ())),
            "rebalanceall" => Some(params::rebalanceall(&p).map(|_| ())),
            "rebalancestop" => Some(params::rebalancestop(&p)),
            "rebalancereport" | "rebalancereport-table" => {
                Some(params::rebalancereport(&p).map(|_| ()))
            }
            "rebalance-settings" => Some(params::settings(&p).map(|_| ())),
            _ => None,
        };
        let got = params::check(command, &p);
        match direct {
            Some(want) => {
                tally.add(if want.is_ok() { "ok" } else { "refused" });
                prop_assert_eq!(got, want);
            }
            None => {
                tally.add("not ours");
                let e = got.expect_err("not a command of ours");
                prop_assert_eq!(e.code, -32602);
                prop_assert!(e.message.starts_with("command_to_check: "));
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// 2. Amount strings.

/// A reference reader of CLN amount strings, in u128 and by digits: `N`, `Nmsat`, `N[.F]sat`
/// (F at most 3 significant decimals), `N[.F]btc` (at most 11), surrounding whitespace allowed.
fn reference_amount(s: &str) -> Result<u64, AmountError> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(AmountError::Negative);
    }
    let (number, decimals) = if let Some(n) = t.strip_suffix("msat") {
        (n, 0)
    } else if let Some(n) = t.strip_suffix("sat") {
        (n, 3)
    } else if let Some(n) = t.strip_suffix("btc") {
        (n, 11)
    } else {
        (t, 0)
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || (number.contains('.') && !all_digits(frac)) {
        return Err(AmountError::Malformed(s.to_string()));
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > decimals {
        return Err(AmountError::SubMsat);
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > 25 {
        return Err(AmountError::TooLarge);
    }
    let digits = |d: &str| d.bytes().fold(0u128, |v, b| v * 10 + u128::from(b - b'0'));
    // The fraction's digits, padded to `decimals`, are msat (a sat is 10^3 msat, a btc 10^11).
    let msat = digits(whole) * 10u128.pow(decimals as u32)
        + digits(frac) * 10u128.pow((decimals - frac.len()) as u32);
    if msat > u128::from(MAX_MONEY_MSAT) {
        return Err(AmountError::TooLarge);
    }
    Ok(msat as u64)
}

#[test]
fn fuzz_amount_arbitrary_strings() {
    let tally = Tally::default();
    let strings = prop_oneof![
        2 => any::<String>(),
        2 => tricky_string(),
        2 => "[ 0-9.]{0,24}(msat|sat|btc|)[ ]{0,2}",
        1 => "[-+ 0-9.a-z\u{661}]{0,30}",
    ];
    fuzz(
        "amount::parse_amount arbitrary",
        4000,
        strings,
        &tally,
        |s| {
            let got = parse_amount(&s);
            tally.add(if got.is_ok() { "ok" } else { "refused" });
            prop_assert_eq!(&got, &reference_amount(&s), "{:?}", s);
            if let Ok(v) = got {
                prop_assert!(v <= MAX_MONEY_MSAT);
            }
            Ok(())
        },
    );
}

/// `msat` written in one of CLN's forms, with the form's name.
fn written(msat: u64, form: u8, pad: bool) -> Option<(String, &'static str)> {
    let (s, name) = match form {
        0 => (format!("{msat}"), "bare"),
        1 => (format!("{msat}msat"), "msat"),
        2 if msat.is_multiple_of(1000) => (format!("{}sat", msat / 1000), "sat"),
        2 => (format!("{}.{:03}sat", msat / 1000, msat % 1000), "N.Msat"),
        3 => (
            format!(
                "{}.{:011}btc",
                msat / 100_000_000_000,
                msat % 100_000_000_000
            ),
            "N.Mbtc",
        ),
        _ => {
            // Trailing zeros of the fraction dropped: 0.5btc, 12.25sat, 3btc.
            let (per, digits, unit) = if form == 4 {
                (100_000_000_000u64, 11, "btc")
            } else {
                (1000, 3, "sat")
            };
            let frac = format!("{:0w$}", msat % per, w = digits);
            let frac = frac.trim_end_matches('0');
            let s = if frac.is_empty() {
                format!("{}{unit}", msat / per)
            } else {
                format!("{}.{frac}{unit}", msat / per)
            };
            (s, if form == 4 { "short btc" } else { "short sat" })
        }
    };
    Some((if pad { format!(" {s}\t") } else { s }, name))
}

fn money() -> BoxedStrategy<u64> {
    prop_oneof![
        0..=MAX_MONEY_MSAT,
        0u64..1_000_000_000,
        prop::sample::select(vec![
            0,
            1,
            999,
            1000,
            1001,
            50_000_000_000,
            99_999_999_999,
            100_000_000_000,
            MAX_MONEY_MSAT - 1,
            MAX_MONEY_MSAT,
        ]),
    ]
    .boxed()
}

#[test]
fn fuzz_amount_valid_forms() {
    let tally = Tally::default();
    let forms = (money(), 0u8..6, any::<bool>());
    fuzz(
        "amount::parse_amount valid forms",
        4000,
        forms,
        &tally,
        |(msat, form, pad)| {
            let (s, name) = written(msat, form, pad).expect("a form");
            tally.add(name);
            prop_assert_eq!(parse_amount(&s), Ok(msat), "{:?}", s);
            Ok(())
        },
    );
}

#[test]
fn fuzz_amount_above_max_money() {
    let tally = Tally::default();
    let above = (
        prop_oneof![MAX_MONEY_MSAT + 1..=u64::MAX, Just(u64::MAX)],
        0u8..6,
    );
    fuzz(
        "amount::parse_amount above 21M BTC",
        2000,
        above,
        &tally,
        |(msat, form)| {
            let (s, name) = written(msat, form, false).expect("a form");
            tally.add(name);
            prop_assert_eq!(parse_amount(&s), Err(AmountError::TooLarge), "{:?}", s);
            // Past u64 too: every unit, whole and with a fraction.
            let huge = format!(
                "{msat}{}",
                ["", "msat", "sat", "btc", "0sat", ".5btc"][form as usize]
            );
            prop_assert_eq!(
                parse_amount(&huge),
                Err(AmountError::TooLarge),
                "{:?}",
                huge
            );
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// 3. The listchannels decode.

/// One `listchannels` entry as the test writes it.
#[derive(Debug, Clone)]
struct Chan {
    source: String,
    destination: String,
    scid: String,
    direction: Option<u8>,
    amount_msat: u64,
    active: bool,
    base: u32,
    ppm: u32,
    delay: u32,
    htlc_min: u64,
    htlc_max: Option<u64>,
}

impl Chan {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("source".into(), json!(self.source));
        m.insert("destination".into(), json!(self.destination));
        m.insert("short_channel_id".into(), json!(self.scid));
        if let Some(d) = self.direction {
            m.insert("direction".into(), json!(d));
        }
        m.insert("public".into(), json!(true));
        m.insert("amount_msat".into(), json!(self.amount_msat));
        m.insert("message_flags".into(), json!(1));
        m.insert("channel_flags".into(), json!(self.direction.unwrap_or(0)));
        m.insert("active".into(), json!(self.active));
        m.insert("last_update".into(), json!(1_700_000_000u64));
        m.insert("base_fee_millisatoshi".into(), json!(self.base));
        m.insert("fee_per_millionth".into(), json!(self.ppm));
        m.insert("delay".into(), json!(self.delay));
        m.insert("htlc_minimum_msat".into(), json!(self.htlc_min));
        if let Some(x) = self.htlc_max {
            m.insert("htlc_maximum_msat".into(), json!(x));
        }
        m.insert("features".into(), json!(""));
        Value::Object(m)
    }

    /// What the graph must hold for this entry: (scid, direction, source, destination,
    /// active, capacity, policy).
    fn expected(&self) -> (Scid, u8, String, String, bool, u64, [u64; 5]) {
        (
            self.scid.parse().expect("valid scid"),
            self.direction
                .unwrap_or(u8::from(self.source > self.destination)),
            self.source.clone(),
            self.destination.clone(),
            self.active,
            self.amount_msat,
            [
                u64::from(self.base),
                u64::from(self.ppm),
                u64::from(self.delay),
                self.htlc_min,
                self.htlc_max.unwrap_or(self.amount_msat),
            ],
        )
    }
}

fn node_id_pool() -> Vec<String> {
    let mut ids: Vec<String> = (1..=6).map(|i| format!("02{:064x}", i * 0x1111)).collect();
    ids.extend(
        [
            "ñødé",
            "节点",
            "🦀🦀",
            "a\"quote",
            "back\\slash",
            "ctl\u{1}",
            "",
            "03AbCdEf",
        ]
        .map(str::to_string),
    );
    ids
}

fn chan_entry() -> BoxedStrategy<Chan> {
    let ids = node_id_pool();
    let scid = prop_oneof![
        3 => (1u64..20, 0u64..3, 0u64..2).prop_map(|(b, t, o)| format!("{b}x{t}x{o}")),
        1 => (0u64..=0xFF_FFFF, 0u64..=0xFF_FFFF, 0u64..=0xFFFF)
            .prop_map(|(b, t, o)| format!("{b}x{t}x{o}")),
    ];
    (
        prop::sample::select(ids.clone()),
        prop::sample::select(ids),
        scid,
        prop_oneof![
            Just(None),
            Just(Some(0u8)),
            Just(Some(1u8)),
            any::<u8>().prop_map(Some)
        ],
        prop_oneof![
            Just(0u64),
            1u64..10_000_000_000,
            Just(u64::MAX),
            any::<u64>()
        ],
        prop::bool::weighted(0.85),
        (
            prop_oneof![0u32..2000, Just(u32::MAX), any::<u32>()],
            prop_oneof![0u32..5000, Just(u32::MAX), any::<u32>()],
            prop_oneof![0u32..200, Just(u32::MAX)],
        ),
        prop_oneof![Just(0u64), 0u64..10_000, any::<u64>()],
        prop_oneof![
            Just(None),
            any::<u64>().prop_map(Some),
            (0u64..10_000_000_000).prop_map(Some)
        ],
    )
        .prop_map(
            |(
                source,
                destination,
                scid,
                direction,
                amount_msat,
                active,
                (base, ppm, delay),
                htlc_min,
                htlc_max,
            )| Chan {
                source,
                destination,
                scid,
                direction,
                amount_msat,
                active,
                base,
                ppm,
                delay,
                htlc_min,
                htlc_max,
            },
        )
        .boxed()
}

/// `{"channels": [...]}`, with other top-level members around it sometimes.
fn document(chans: &[Chan], extra_top: bool) -> Value {
    let channels: Vec<Value> = chans.iter().map(Chan::to_json).collect();
    let mut top = Map::new();
    if extra_top {
        top.insert("before".into(), json!([1, {"channels": 5}]));
    }
    top.insert("channels".into(), Value::Array(channels));
    if extra_top {
        top.insert("after".into(), json!(null));
    }
    Value::Object(top)
}

/// The same JSON text with every non-ASCII character written as a `\u` escape (so the decoder's
/// owned-string path runs instead of the borrowed one).
fn ascii_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{:04x}", u));
            }
        }
    }
    out
}

type EdgeFacts = (Scid, u8, String, String, bool, u64, [u64; 5]);

/// Every edge of `g`, as [`Chan::expected`] writes one, sorted.
fn graph_facts(g: &Graph) -> Vec<EdgeFacts> {
    let mut v: Vec<_> = g
        .edges()
        .iter()
        .map(|e| {
            (
                e.short_channel_id,
                e.direction,
                g.node_id(e.source).to_string(),
                g.node_id(e.destination).to_string(),
                e.active,
                e.amount_msat,
                [
                    u64::from(e.policy.base_fee_millisatoshi),
                    u64::from(e.policy.fee_per_millionth),
                    u64::from(e.policy.delay),
                    e.policy.htlc_minimum_msat,
                    e.policy.htlc_maximum_msat,
                ],
            )
        })
        .collect();
    v.sort();
    v
}

/// The graph's indices agree with its edges: every edge is listed once among the edges into its
/// destination, and found by its scid and direction.
fn check_graph_indices(g: &Graph) -> Result<(), TestCaseError> {
    let mut seen = vec![0u32; g.edge_count()];
    for v in 0..g.node_count() as NodeIdx {
        for (i, e) in g.edges_into(v) {
            prop_assert_eq!(e.destination, v);
            seen[i as usize] += 1;
        }
    }
    prop_assert!(
        seen.iter().all(|&n| n == 1),
        "edges_into lists each edge once"
    );
    for e in g.edges() {
        let i = g.edge_by_scid(e.short_channel_id, e.direction);
        let found = i.map(|i| g.edge(i));
        prop_assert!(
            found.is_some_and(
                |f| f.short_channel_id == e.short_channel_id && f.direction == e.direction
            ),
            "edge_by_scid finds {}",
            e.short_channel_id
        );
    }
    for v in 0..g.node_count() as NodeIdx {
        prop_assert_eq!(g.node_idx(g.node_id(v)), Some(v));
    }
    Ok(())
}

#[test]
fn fuzz_listchannels_valid_documents_and_every_prefix() {
    let tally = Tally::default();
    let docs = (prop::collection::vec(chan_entry(), 0..8), any::<bool>());
    fuzz(
        "listchannels valid documents + every prefix",
        150,
        docs,
        &tally,
        |(chans, extra)| {
            let text = serde_json::to_string(&document(&chans, extra)).unwrap();
            let g = Graph::from_listchannels_json(text.as_bytes())
                .map_err(|e| TestCaseError::fail(format!("valid document refused: {e}\n{text}")))?;
            let ids: BTreeSet<&str> = chans
                .iter()
                .flat_map(|c| [c.source.as_str(), c.destination.as_str()])
                .collect();
            prop_assert_eq!(g.node_count(), ids.len());
            prop_assert_eq!(g.edge_count(), chans.len());
            let mut want: Vec<_> = chans.iter().map(Chan::expected).collect();
            want.sort();
            prop_assert_eq!(&graph_facts(&g), &want);
            check_graph_indices(&g)?;
            if chans.iter().any(|c| c.source == c.destination) {
                tally.add("with a self-loop");
            }
            // Escaped strings decode to the same graph.
            let escaped = ascii_escaped(&text);
            if escaped != text {
                tally.add("escaped");
                let g2 = Graph::from_listchannels_json(escaped.as_bytes())
                    .map_err(|e| TestCaseError::fail(format!("escaped document refused: {e}")))?;
                prop_assert_eq!(&graph_facts(&g2), &want);
            }
            // Every strict prefix is an error (never a panic), saying what failed.
            for end in 0..text.len() {
                match Graph::from_listchannels_json(&text.as_bytes()[..end]) {
                    Ok(_) => {
                        return Err(TestCaseError::fail(format!(
                            "prefix of {end} bytes accepted: {:?}",
                            &text[..end]
                        )));
                    }
                    Err(e) => prop_assert!(e.to_string().starts_with("cannot read listchannels: ")),
                }
                tally.add("prefixes");
            }
            Ok(())
        },
    );
}

/// Whether the decoder must accept an entry, by the documented rules: an object with the eleven
/// fields routing reads (`direction` and `htlc_maximum_msat` optional or null), each of its
/// type (integers in range, no fractions), a short_channel_id that parses; anything else
/// in it ignored.
fn entry_valid(v: &Value) -> bool {
    let Some(m) = v.as_object() else {
        return false;
    };
    let uint = |k: &str, max: u64| m.get(k).and_then(Value::as_u64).is_some_and(|n| n <= max);
    let text = |k: &str| m.get(k).is_some_and(Value::is_string);
    let optional = |k: &str, max: u64| {
        m.get(k)
            .is_none_or(|v| v.is_null() || v.as_u64().is_some_and(|n| n <= max))
    };
    text("source")
        && text("destination")
        && m.get("short_channel_id")
            .and_then(Value::as_str)
            .is_some_and(|s| s.parse::<Scid>().is_ok())
        && optional("direction", 255)
        && uint("amount_msat", u64::MAX)
        && m.get("active").is_some_and(Value::is_boolean)
        && uint("base_fee_millisatoshi", u64::from(u32::MAX))
        && uint("fee_per_millionth", u64::from(u32::MAX))
        && uint("delay", u64::from(u32::MAX))
        && uint("htlc_minimum_msat", u64::MAX)
        && optional("htlc_maximum_msat", u64::MAX)
}

const FIELDS: [&str; 11] = [
    "source",
    "destination",
    "short_channel_id",
    "direction",
    "amount_msat",
    "active",
    "base_fee_millisatoshi",
    "fee_per_millionth",
    "delay",
    "htlc_minimum_msat",
    "htlc_maximum_msat",
];

/// A change to one entry of a valid document.
#[derive(Debug, Clone)]
enum Mutation {
    /// Drop a field.
    Remove(usize),
    /// A field gets another value (wrong types, huge, negative, fractional numbers).
    Replace(usize, Value),
    /// An unknown field is added.
    Extra(String, Value),
    /// The whole entry becomes another value.
    Entry(Value),
    /// The field's value written as other number text, straight into the JSON text.
    NumberText(usize, &'static str),
    /// The field appears twice in the entry's text.
    Duplicate(usize),
}

fn mutation() -> BoxedStrategy<Mutation> {
    let field = 0..FIELDS.len();
    let edge_values = prop::sample::select(vec![
        json!(-1),
        json!(1.5),
        json!(5.0),
        json!(256),
        json!(u64::from(u32::MAX) + 1),
        json!(u64::MAX),
        json!(1e20),
        json!("5"),
        json!(true),
        json!(null),
        json!("1x1x0"),
        json!([]),
        json!({}),
    ]);
    prop_oneof![
        field.clone().prop_map(Mutation::Remove),
        (field.clone(), prop_oneof![edge_values, arb_json()])
            .prop_map(|(f, v)| Mutation::Replace(f, v)),
        (key_name(), arb_json()).prop_map(|(k, v)| Mutation::Extra(k, v)),
        arb_json().prop_map(Mutation::Entry),
        (
            field.clone(),
            prop::sample::select(vec![
                "18446744073709551616",
                "-9223372036854775809",
                "1e400",
                "-0",
                "00",
                "1.0",
                "4294967296",
                "1E2",
                "0.0000001",
            ])
        )
            .prop_map(|(f, t)| Mutation::NumberText(f, t)),
        field.prop_map(Mutation::Duplicate),
    ]
    .boxed()
}

#[test]
fn fuzz_listchannels_mutated_documents() {
    let tally = Tally::default();
    let cases = (
        prop::collection::vec(chan_entry(), 1..6),
        prop::collection::vec((any::<prop::sample::Index>(), mutation()), 1..4),
    );
    fuzz(
        "listchannels mutated documents",
        3000,
        cases,
        &tally,
        |(chans, muts)| {
            let mut entries: Vec<Value> = chans.iter().map(Chan::to_json).collect();
            let mut text_edits: Vec<(usize, usize, &'static str)> = Vec::new();
            let mut exact = true; // whether `entry_valid` says what must happen
            for (which, m) in &muts {
                let i = which.index(entries.len());
                if let Mutation::Entry(v) = m {
                    entries[i] = v.clone();
                    // An array of the right values in field order is a valid struct to serde.
                    exact &= !v.is_array();
                    continue;
                }
                match (m, entries[i].as_object_mut()) {
                    (Mutation::Remove(f), Some(o)) => {
                        o.remove(FIELDS[*f]);
                    }
                    (Mutation::Replace(f, v), Some(o)) => {
                        o.insert(FIELDS[*f].to_string(), v.clone());
                    }
                    (Mutation::Extra(k, v), Some(o)) => {
                        o.insert(k.clone(), v.clone());
                    }
                    (Mutation::NumberText(f, t), Some(_)) => {
                        text_edits.push((i, *f, t));
                        exact = false;
                    }
                    (Mutation::Duplicate(f), Some(_)) => {
                        text_edits.push((i, *f, ""));
                        exact = false;
                    }
                    _ => {}
                }
            }
            let expect_ok = entries.iter().all(entry_valid);
            let mut text = serde_json::to_string(&json!({ "channels": entries })).unwrap();
            for (i, f, t) in text_edits {
                // Edit the i-th entry's field in the text, if it is still there as a member.
                let key = format!("\"{}\":", FIELDS[f]);
                let Some(start) = nth_entry_start(&text, i) else {
                    continue;
                };
                let Some(at) = text[start..].find(&key).map(|p| start + p) else {
                    continue;
                };
                let value_start = at + key.len();
                let value_end = value_end(&text, value_start);
                if t.is_empty() {
                    let member = text[at..value_end].to_string();
                    text.insert_str(value_end, &format!(",{member}"));
                } else {
                    text.replace_range(value_start..value_end, t);
                }
            }
            let got = Graph::from_listchannels_json(text.as_bytes());
            match &got {
                Ok(g) => {
                    tally.add("accepted");
                    prop_assert_eq!(g.edge_count(), entries.len());
                    check_graph_indices(g)?;
                }
                Err(e) => {
                    tally.add("refused");
                    prop_assert!(e.to_string().starts_with("cannot read listchannels: "));
                }
            }
            if exact {
                tally.add("checked against the spec");
                check(got.is_ok() == expect_ok, || {
                    format!(
                        "decode says {:?}, the spec says {}: {text}",
                        got.as_ref().map(|g| g.edge_count()),
                        if expect_ok { "valid" } else { "invalid" }
                    )
                })?;
            }
            Ok(())
        },
    );
}

/// Byte offset of the `i`-th entry's `{` in `{"channels":[{...},{...}]}` as serde_json writes
/// it (entries are objects here; nested objects are skipped by depth).
fn nth_entry_start(text: &str, i: usize) -> Option<usize> {
    let arr = text.find('[')?;
    let mut depth = 0i32;
    let mut in_str = false;
    let mut escaped = false;
    let mut count = 0;
    for (p, c) in text[arr + 1..].char_indices() {
        let p = p + arr + 1;
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => {
                if depth == 0 && c == '{' {
                    if count == i {
                        return Some(p);
                    }
                    count += 1;
                }
                depth += 1;
            }
            '}' | ']' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Where the JSON value starting at `start` ends (scalars and strings only matter here).
fn value_end(text: &str, start: usize) -> usize {
    let b = text.as_bytes();
    if b.get(start) == Some(&b'"') {
        let mut p = start + 1;
        while p < b.len() && b[p] != b'"' {
            p += if b[p] == b'\\' { 2 } else { 1 };
        }
        return (p + 1).min(b.len());
    }
    let mut p = start;
    let mut depth = 0i32;
    while p < b.len() {
        match b[p] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => break,
            b'}' | b']' => depth -= 1,
            b',' if depth == 0 => break,
            _ => {}
        }
        p += 1;
    }
    p
}

#[test]
fn fuzz_listchannels_searches_on_odd_graphs() {
    let tally = Tally::default();
    // Few nodes and scids: self-loops, duplicate channels, 0-capacity and tiny edges abound.
    let small_ids: Vec<String> = (1..=5).map(|i| format!("02{:064x}", i)).collect();
    let entry = (
        prop::sample::select(small_ids.clone()),
        prop::sample::select(small_ids),
        (1u64..6).prop_map(|b| format!("{b}x1x0")),
        prop_oneof![Just(0u64), 1u64..5_000, Just(u64::MAX)],
        prop::bool::weighted(0.9),
        (0u32..50, 0u32..5000, 0u32..100),
        prop_oneof![Just(0u64), 0u64..3000],
        prop_oneof![Just(None), (0u64..5000).prop_map(Some)],
    )
        .prop_map(
            |(
                source,
                destination,
                scid,
                amount_msat,
                active,
                (base, ppm, delay),
                htlc_min,
                htlc_max,
            )| Chan {
                source,
                destination,
                scid,
                direction: None,
                amount_msat,
                active,
                base,
                ppm,
                delay,
                htlc_min,
                htlc_max,
            },
        );
    let cases = (
        prop::collection::vec(entry, 1..16),
        prop::collection::vec(
            (
                0u32..5,
                0u32..5,
                0u64..4000,
                prop_oneof![2 => Just(None), 1 => (0u64..300).prop_map(Some)],
            ),
            1..6,
        ),
    );
    fuzz(
        "listchannels odd graphs: searches",
        1500,
        cases,
        &tally,
        |(chans, queries)| {
            let text = serde_json::to_string(&document(&chans, false)).unwrap();
            let g = Graph::from_listchannels_json(text.as_bytes()).expect("valid document");
            let n = g.node_count() as u32;
            let mut scratch = Scratch::default();
            let mut beliefs = Beliefs::default();
            beliefs.rebuild(&g, &Liquidity::new(), 1000, ModelConfig::default());
            for (from, to, amount, max_fee) in queries {
                let q = Query {
                    from: from % n,
                    to: to % n,
                    deliver_msat: amount,
                    deliver_delay: 21,
                    max_edges: 18,
                    max_delay: MAX_TOTAL_CLTV,
                    max_amount_msat: u64::MAX,
                };
                let ex = Exclusions::default();
                // check_path: no node twice (so no self-loop), every edge active, within its
                // htlc limits and its capacity, the amounts and delays BOLT 7's.
                if let Some(p) = find_path(&g, &q, &ex, &mut scratch) {
                    tally.add("fee-only paths");
                    check_path(&g, &q, &ex, &p);
                    let best = exhaustive(&g, &q, &ex).expect("small graph");
                    prop_assert!(best.is_some_and(|b| p.source_amount_msat >= b.0));
                }
                if let Some(p) = find_path_with(&g, &q, &ex, &beliefs, &mut scratch) {
                    tally.add("model paths");
                    check_path(&g, &q, &ex, &p);
                }
                // Under a fee cap: every path found within it (check_path), and the cheapest
                // path, when it fits, found as it is without the cap.
                let Some(max_fee) = max_fee else { continue };
                let capped = Query {
                    max_amount_msat: amount.saturating_add(max_fee),
                    ..q.clone()
                };
                let uncapped = find_path(&g, &q, &ex, &mut scratch);
                let found = find_path(&g, &capped, &ex, &mut scratch);
                if let Some(p) = &found {
                    tally.add("fee-only paths under a cap");
                    check_path(&g, &capped, &ex, p);
                }
                if let Some(u) = uncapped.filter(|u| u.source_amount_msat <= capped.max_amount_msat)
                {
                    prop_assert_eq!(
                        found.map(|p| p.source_amount_msat),
                        Some(u.source_amount_msat)
                    );
                }
                if let Some(p) = find_path_with(&g, &capped, &ex, &beliefs, &mut scratch) {
                    tally.add("model paths under a cap");
                    check_path(&g, &capped, &ex, &p);
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Datastore values.

/// A model built through its API, as the plugin builds one.
fn model_ops() -> BoxedStrategy<Vec<ModelOp>> {
    prop::collection::vec(model_op(), 0..30).boxed()
}

#[derive(Debug, Clone)]
enum ModelOp {
    Failed(usize, u64),
    Forwarded(usize, u64),
    Settled(usize, u64),
    Exact(usize, u64),
    ChannelFailed(usize),
    NodeFailed(String),
    InFlight(usize, u64, bool),
    Advance(u64),
    Back(u64),
    Prune(usize),
    Reset(Option<usize>),
    /// A failure over a channel direction other than 0/1 (the graph decoder takes any u8).
    OddDirection(u8, u64),
}

/// Channel directions the model ops pick from: 3 channels, both directions.
const MODEL_DIRS: usize = 6;

fn model_cd(i: usize) -> ChanDir {
    ChanDir::new(
        Scid((((i / 2) as u64 + 1) << 40) | (7 << 16)),
        (i % 2) as u8,
    )
}

fn model_amount() -> BoxedStrategy<u64> {
    prop_oneof![
        3 => 0u64..2_000_000_000,
        1 => any::<u64>(),
        1 => prop::sample::select(vec![0, 1, u64::MAX, u64::MAX - 1, 1 << 53, (1 << 53) + 1]),
    ]
    .boxed()
}

fn model_op() -> BoxedStrategy<ModelOp> {
    let cd = 0..MODEL_DIRS;
    prop_oneof![
        3 => (cd.clone(), model_amount()).prop_map(|(c, a)| ModelOp::Failed(c, a)),
        3 => (cd.clone(), model_amount()).prop_map(|(c, a)| ModelOp::Forwarded(c, a)),
        2 => (cd.clone(), model_amount()).prop_map(|(c, a)| ModelOp::Settled(c, a)),
        2 => (cd.clone(), model_amount()).prop_map(|(c, a)| ModelOp::Exact(c, a)),
        1 => cd.clone().prop_map(ModelOp::ChannelFailed),
        1 => prop_oneof![
            3 => prop::sample::select(node_id_pool()),
            1 => any::<String>(),
            1 => "[a-zé]{250,260}",
        ]
        .prop_map(ModelOp::NodeFailed),
        1 => (cd, model_amount(), any::<bool>()).prop_map(|(c, a, add)| ModelOp::InFlight(c, a, add)),
        2 => prop_oneof![0u64..100, 0u64..100_000, any::<u64>()].prop_map(ModelOp::Advance),
        1 => (0u64..10_000).prop_map(ModelOp::Back),
        1 => (0usize..5).prop_map(ModelOp::Prune),
        1 => prop::option::of(0usize..3).prop_map(ModelOp::Reset),
        1 => (2u8..=255, model_amount()).prop_map(|(d, a)| ModelOp::OddDirection(d, a)),
    ]
    .boxed()
}

/// Channel capacities for the model ops (one per channel), on every scale.
fn model_capacities() -> BoxedStrategy<[u64; 3]> {
    let cap = prop_oneof![
        3 => 1u64..10_000_000_000,
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => any::<u64>(),
        1 => prop::sample::select(vec![1 << 53, (1 << 53) + 1, (1 << 60) - 1, MAX_MONEY_MSAT]),
    ];
    [cap.clone(), cap.clone(), cap].boxed()
}

/// Applies `ops`, checking the model's invariants after each one (`check` may be a no-op).
fn apply_ops(
    ops: &[ModelOp],
    caps: &[u64; 3],
    start: u64,
    half_life: u64,
    mut check: impl FnMut(&Liquidity, u64) -> Result<(), TestCaseError>,
) -> Result<(Liquidity, u64), TestCaseError> {
    let mut l = Liquidity::new();
    let mut now = start;
    let cap = |c: usize| caps[c / 2];
    for op in ops {
        match op {
            ModelOp::Failed(c, a) => l.failed(model_cd(*c), *a, cap(*c), now, half_life),
            ModelOp::Forwarded(c, a) => l.forwarded(model_cd(*c), *a, cap(*c), now, half_life),
            ModelOp::Settled(c, a) => l.settled(model_cd(*c), *a, cap(*c), now, half_life),
            ModelOp::Exact(c, a) => l.exact(model_cd(*c), *a, cap(*c), now),
            ModelOp::ChannelFailed(c) => l.channel_failed(model_cd(*c), now),
            ModelOp::NodeFailed(id) => l.node_failed(id, now),
            ModelOp::InFlight(c, a, add) => l.in_flight(model_cd(*c), *a, *add),
            ModelOp::Advance(dt) => now = now.saturating_add(*dt),
            ModelOp::Back(dt) => now = now.saturating_sub(*dt),
            ModelOp::Prune(max) => {
                l.prune(now, half_life, *max);
                let (chans, _) = l.len();
                prop_assert!(chans <= *max, "prune kept {} > {}", chans, max);
            }
            ModelOp::Reset(scid) => {
                l.reset(scid.map(|c| model_cd(c * 2).short_channel_id));
            }
            ModelOp::OddDirection(d, a) => {
                let cd = ChanDir::new(model_cd(0).short_channel_id, *d);
                l.failed(cd, *a, caps[0], now, half_life);
            }
        }
        check(&l, now)?;
    }
    Ok((l, now))
}

#[test]
fn fuzz_liquidity_decode_arbitrary_bytes() {
    let tally = Tally::default();
    // Raw bytes, and bytes behind a valid header so the decoder gets past the magic.
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        (prop::collection::vec(any::<u8>(), 0..200), 0u32..5).prop_map(|(tail, n)| {
            let mut b = b"CRLQ\x01".to_vec();
            b.extend_from_slice(&n.to_be_bytes());
            b.extend(tail);
            b
        }),
    ];
    fuzz(
        "Liquidity::decode arbitrary bytes",
        3000,
        bytes,
        &tally,
        |b| {
            match Liquidity::decode(&b) {
                Ok(l) => {
                    tally.add("decoded");
                    check_idempotent(&l)?;
                }
                Err(_) => tally.add("refused"),
            }
            Ok(())
        },
    );
}

/// One channel direction as the record stores it: scid, direction, min, max, updated,
/// failed_at.
type RawEntry = (u64, u8, u64, u64, u64, u64);

/// A liquidity record laid out field by field with random values (directions 0-2, min above
/// max sometimes, node ids of any bytes, a claimed count off by one, trailing bytes), and
/// whether the format's rules (liquidity.rs's doc and decode) accept it, and whether it is in
/// the one form encode writes (entries sorted by channel direction, node ids sorted, no
/// repeats).
fn liquidity_record() -> BoxedStrategy<(Vec<u8>, bool, bool)> {
    let entry = (
        prop_oneof![0u64..4, any::<u64>()],
        prop_oneof![6 => 0u8..2, 1 => 2u8..=255],
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        prop::bool::weighted(0.8),
    )
        .prop_map(|(scid, dir, a, b, updated, failed, ordered)| {
            let (min, max) = if ordered {
                (a.min(b), a.max(b))
            } else {
                (a, b)
            };
            (scid, dir, min, max, updated, failed)
        });
    let node = (
        prop_oneof![
            3 => "[0-9a-f]{66}".prop_map(String::into_bytes),
            1 => any::<String>().prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..20),
        ],
        any::<u64>(),
    );
    (
        prop::collection::vec(entry, 0..5),
        prop::collection::vec(node, 0..4),
        prop_oneof![8 => Just(0i64), 1 => Just(-1i64), 1 => Just(1i64)],
        prop_oneof![8 => Just(vec![]), 1 => prop::collection::vec(any::<u8>(), 1..3)],
    )
        .prop_map(
            |(entries, nodes, miscount, trailing): (Vec<RawEntry>, _, i64, Vec<u8>)| {
                let mut b = b"CRLQ\x01".to_vec();
                let claimed = (entries.len() as i64 + miscount).max(0) as u32;
                b.extend_from_slice(&claimed.to_be_bytes());
                for &(scid, dir, min, max, updated, failed) in &entries {
                    b.extend_from_slice(&scid.to_be_bytes());
                    b.push(dir);
                    for v in [min, max, updated, failed] {
                        b.extend_from_slice(&v.to_be_bytes());
                    }
                }
                b.extend_from_slice(&(nodes.len() as u32).to_be_bytes());
                for (id, t) in &nodes {
                    let id = &id[..id.len().min(255)];
                    b.push(id.len() as u8);
                    b.extend_from_slice(id);
                    b.extend_from_slice(&t.to_be_bytes());
                }
                b.extend_from_slice(&trailing);
                let valid = miscount == 0
                    && trailing.is_empty()
                    && entries.iter().all(|e| e.1 <= 1 && e.2 <= e.3)
                    && nodes
                        .iter()
                        .all(|(id, _)| std::str::from_utf8(&id[..id.len().min(255)]).is_ok());
                let canonical = valid
                    && entries
                        .windows(2)
                        .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1))
                    && nodes
                        .windows(2)
                        .all(|w| w[0].0[..w[0].0.len().min(255)] < w[1].0[..w[1].0.len().min(255)]);
                (b, valid, canonical)
            },
        )
        .boxed()
}

#[test]
fn fuzz_liquidity_decode_structured_records() {
    let tally = Tally::default();
    fuzz(
        "Liquidity::decode field-by-field records",
        3000,
        liquidity_record(),
        &tally,
        |(b, valid, canonical)| {
            let got = Liquidity::decode(&b);
            tally.add(if got.is_ok() { "decoded" } else { "refused" });
            // A miscount can still parse when the bytes line up (one entry fewer, its bytes read
            // as the node count...): only a valid record must decode, and whatever decodes must
            // round-trip.
            if valid {
                prop_assert!(got.is_ok(), "valid record refused: {:?}", got.err());
            }
            if let Ok(l) = got {
                check_idempotent(&l)?;
                if canonical {
                    tally.add("canonical");
                    prop_assert_eq!(l.encode(), b, "encode(decode(x)) == x");
                }
            }
            Ok(())
        },
    );
}

/// A model's encoding decodes to the same model (less what cannot be stored: directions
/// other than 0/1, node ids over 255 bytes), and re-encodes to the same bytes.
fn check_idempotent(l: &Liquidity) -> Result<(), TestCaseError> {
    let again = l.encode();
    let back = Liquidity::decode(&again)
        .map_err(|e| TestCaseError::fail(format!("what encode wrote, decode refused: {e}")))?;
    let mut storable = l.entries();
    storable.retain(|e| e.0.direction <= 1);
    let mut nodes = l.failed_nodes();
    nodes.retain(|(id, _)| id.len() <= 255);
    prop_assert_eq!(back.entries(), storable);
    prop_assert_eq!(back.failed_nodes(), nodes);
    prop_assert_eq!(back.encode(), again);
    Ok(())
}

/// A change to a valid encoding.
#[derive(Debug, Clone)]
enum ByteMutation {
    Flip(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Extend(Vec<u8>),
    Set(prop::sample::Index, u8),
}

fn byte_mutation() -> BoxedStrategy<ByteMutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, b)| ByteMutation::Flip(i, b)),
        any::<prop::sample::Index>().prop_map(ByteMutation::Truncate),
        prop::collection::vec(any::<u8>(), 1..40).prop_map(ByteMutation::Extend),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| ByteMutation::Set(i, b)),
    ]
    .boxed()
}

fn mutate(bytes: &mut Vec<u8>, m: &ByteMutation) {
    if bytes.is_empty() {
        return;
    }
    match m {
        ByteMutation::Flip(i, bit) => {
            let i = i.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        ByteMutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        ByteMutation::Extend(tail) => bytes.extend(tail),
        ByteMutation::Set(i, b) => {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
    }
}

#[test]
fn fuzz_liquidity_encodings_round_trip_and_mutations() {
    let tally = Tally::default();
    let cases = (
        model_ops(),
        model_capacities(),
        0u64..2_000_000_000,
        prop::collection::vec(byte_mutation(), 1..4),
    );
    fuzz(
        "Liquidity encode/decode + mutations",
        3000,
        cases,
        &tally,
        |(ops, caps, start, muts)| {
            let (l, _) = apply_ops(&ops, &caps, start, 3600, |_, _| Ok(()))?;
            // decode(encode(l)) == l and encode(decode(x)) == x.
            check_idempotent(&l)?;
            let x = l.encode();
            let mut y = x.clone();
            for m in &muts {
                mutate(&mut y, m);
            }
            match Liquidity::decode(&y) {
                Ok(m) => {
                    tally.add("mutation decoded");
                    check_idempotent(&m)?;
                }
                Err(_) => tally.add("mutation refused"),
            }
            // The datastore holds it as hex.
            prop_assert_eq!(store::from_hex(&store::to_hex(&y)), Ok(y));
            Ok(())
        },
    );
}

#[test]
fn fuzz_store_from_hex() {
    let tally = Tally::default();
    let strings = prop_oneof![
        any::<String>(),
        "[0-9a-fA-F]{0,40}",
        "[0-9a-gA-G ]{0,9}",
        "[0-9a-f]{0,8}[é€🦀][0-9a-f]{0,8}",
    ];
    fuzz("store::from_hex", 3000, strings, &tally, |s| {
        let want_ok = s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit());
        match store::from_hex(&s) {
            Ok(b) => {
                tally.add("ok");
                prop_assert!(want_ok, "accepted {:?}", s);
                prop_assert_eq!(b.len(), s.len() / 2);
                prop_assert_eq!(store::to_hex(&b), s.to_ascii_lowercase());
            }
            Err(_) => {
                tally.add("refused");
                prop_assert!(!want_ok, "refused {:?}", s);
            }
        }
        Ok(())
    });
}

fn history_entry() -> BoxedStrategy<history::Entry> {
    (
        (any::<u64>(), any::<u64>(), any::<u64>()),
        (0..=MAX_MONEY_MSAT, 0..=MAX_MONEY_MSAT, any::<u32>()),
        prop_oneof![
            Just(Outcome::Complete),
            any::<i32>().prop_map(|code| Outcome::Failed { code })
        ],
        (any::<u64>(), any::<u64>(), any::<[u8; 32]>()),
        prop_oneof![any::<String>(), "[a-zé€🦀 ]{190,260}", Just(String::new())],
    )
        .prop_map(
            |(
                (started_at, out, inc),
                (amount_msat, fee_msat, attempts),
                outcome,
                (duration_ms, job_id, payment_hash),
                error,
            )| {
                history::Entry {
                    started_at,
                    outgoing: Scid(out),
                    incoming: Scid(inc),
                    amount_msat,
                    fee_msat,
                    attempts,
                    outcome,
                    duration_ms,
                    job_id,
                    payment_hash,
                    error,
                }
            },
        )
        .boxed()
}

#[test]
fn fuzz_history_decode_arbitrary_bytes() {
    let tally = Tally::default();
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (
            any::<u8>(),
            any::<u16>(),
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(version, len, tail)| {
                let mut b = b"RH".to_vec();
                b.push(version);
                b.extend_from_slice(&len.to_be_bytes());
                b.extend(tail);
                b
            }),
    ];
    fuzz(
        "history::decode_day arbitrary bytes",
        3000,
        bytes,
        &tally,
        |b| {
            let d = history::decode_day(&b);
            tally.add(if d.error.is_some() {
                "stopped"
            } else {
                "clean"
            });
            for e in &d.entries {
                let again = e.encode();
                let back = history::decode_day(&again);
                prop_assert_eq!(&back.entries, &vec![e.clone()]);
                prop_assert!(back.error.is_none());
            }
            Ok(())
        },
    );
}

/// A version-1 body's fixed fields in order: started_at, outgoing, incoming, amount_msat,
/// fee_msat, attempts, outcome, code, duration_ms, job_id, payment_hash.
type RecordFields = (u64, u64, u64, u64, u64, u32, u8, i32, u64, u64, [u8; 32]);

/// A history record laid out field by field (see history.rs's format doc), with random
/// values where the format has rules: the version, amounts past 21M BTC, the outcome byte,
/// an error length past the body, non-UTF-8 errors, extra body bytes, a wrong checksum.
#[derive(Debug, Clone)]
struct RawRecord {
    version: u8,
    fields: RecordFields,
    error: Vec<u8>,
    error_len_excess: u8,
    extra: Vec<u8>,
    bad_checksum: bool,
}

/// FNV-1a (32 bit), as the format doc specifies the checksum.
fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h = 0x811c_9dc5u32;
    for &b in bytes {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

impl RawRecord {
    fn bytes(&self) -> Vec<u8> {
        let f = &self.fields;
        let mut body = Vec::new();
        for v in [f.0, f.1, f.2, f.3, f.4] {
            body.extend_from_slice(&v.to_be_bytes());
        }
        body.extend_from_slice(&f.5.to_be_bytes());
        body.push(f.6);
        body.extend_from_slice(&f.7.to_be_bytes());
        body.extend_from_slice(&f.8.to_be_bytes());
        body.extend_from_slice(&f.9.to_be_bytes());
        body.extend_from_slice(&f.10);
        body.push((self.error.len() as u8).saturating_add(self.error_len_excess));
        body.extend_from_slice(&self.error);
        body.extend_from_slice(&self.extra);
        let mut framed = vec![self.version];
        framed.extend_from_slice(&(body.len() as u16).to_be_bytes());
        framed.extend_from_slice(&body);
        let sum = fnv1a(&framed) ^ u32::from(self.bad_checksum);
        let mut out = b"RH".to_vec();
        out.extend_from_slice(&framed);
        out.extend_from_slice(&sum.to_be_bytes());
        out
    }

    /// What the format says this record is: `Ok(Some(entry))`, `Ok(None)` for a newer
    /// version (skipped), `Err` where decoding must stop.
    fn expected(&self) -> Result<Option<history::Entry>, ()> {
        let f = &self.fields;
        let error_len = usize::from(self.error.len() as u8) + usize::from(self.error_len_excess);
        let body_error: Vec<u8> = self.error.iter().chain(&self.extra).copied().collect();
        if self.bad_checksum || self.version == 0 {
            return Err(());
        }
        if self.version > 1 {
            return Ok(None);
        }
        if f.3 > MAX_MONEY_MSAT || f.4 > MAX_MONEY_MSAT || f.6 > 1 || error_len > body_error.len() {
            return Err(());
        }
        let error = String::from_utf8(body_error[..error_len].to_vec()).map_err(|_| ())?;
        Ok(Some(history::Entry {
            started_at: f.0,
            outgoing: Scid(f.1),
            incoming: Scid(f.2),
            amount_msat: f.3,
            fee_msat: f.4,
            attempts: f.5,
            outcome: if f.6 == 0 {
                Outcome::Complete
            } else {
                Outcome::Failed { code: f.7 }
            },
            duration_ms: f.8,
            job_id: f.9,
            payment_hash: f.10,
            error,
        }))
    }
}

fn raw_record() -> BoxedStrategy<RawRecord> {
    let amount = prop_oneof![8 => 0..=MAX_MONEY_MSAT, 1 => any::<u64>()];
    (
        prop_oneof![8 => Just(1u8), 1 => Just(0u8), 1 => 2u8..=255],
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            amount.clone(),
            amount,
            any::<u32>(),
            prop_oneof![8 => 0u8..2, 1 => any::<u8>()],
            any::<i32>(),
            any::<u64>(),
            any::<u64>(),
            any::<[u8; 32]>(),
        ),
        prop_oneof![
            4 => "[a-z é🦀]{0,40}".prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..10),
        ],
        prop_oneof![8 => Just(0u8), 1 => 1u8..5],
        prop_oneof![6 => Just(vec![]), 1 => prop::collection::vec(any::<u8>(), 1..8)],
        prop::bool::weighted(0.05),
    )
        .prop_map(
            |(version, fields, error, error_len_excess, extra, bad_checksum)| RawRecord {
                version,
                fields,
                error,
                error_len_excess,
                extra,
                bad_checksum,
            },
        )
        .boxed()
}

#[test]
fn fuzz_history_decode_structured_records() {
    let tally = Tally::default();
    let days = prop::collection::vec(raw_record(), 0..5);
    fuzz(
        "history::decode_day field-by-field records",
        3000,
        days,
        &tally,
        |records| {
            let mut bytes = Vec::new();
            let mut offsets = Vec::new();
            for r in &records {
                offsets.push(bytes.len());
                bytes.extend(r.bytes());
            }
            // What the format says: entries up to the first bad record, newer versions skipped.
            let (mut entries, mut newer, mut stop) = (Vec::new(), 0, None);
            for (r, at) in records.iter().zip(&offsets) {
                match r.expected() {
                    Ok(Some(e)) => entries.push(e),
                    Ok(None) => newer += 1,
                    Err(()) => {
                        stop = Some(*at);
                        break;
                    }
                }
            }
            let d = history::decode_day(&bytes);
            tally.add(if stop.is_some() { "stopped" } else { "clean" });
            tally.add_n("entries", entries.len() as u64);
            prop_assert_eq!(&d.entries, &entries);
            prop_assert_eq!(d.newer_versions, newer);
            prop_assert_eq!(d.error.map(|e| e.offset), stop);
            Ok(())
        },
    );
}

#[test]
fn fuzz_history_round_trip_and_mutations() {
    let tally = Tally::default();
    let cases = (
        prop::collection::vec(history_entry(), 0..5),
        prop::collection::vec(byte_mutation(), 1..3),
    );
    fuzz(
        "history records round trip + mutations",
        3000,
        cases,
        &tally,
        |(entries, muts)| {
            let mut x = Vec::new();
            for e in &entries {
                e.encode_into(&mut x);
            }
            let stored: Vec<history::Entry> = entries
                .iter()
                .map(|e| history::Entry {
                    error: history::bounded_error(&e.error).to_string(),
                    ..e.clone()
                })
                .collect();
            let d = history::decode_day(&x);
            prop_assert_eq!(&d.entries, &stored);
            prop_assert!(d.error.is_none() && d.newer_versions == 0);
            let mut again = Vec::new();
            for e in &d.entries {
                e.encode_into(&mut again);
            }
            prop_assert_eq!(&again, &x, "encode(decode(x)) == x");
            // Mutated: never a panic, and what decodes is the stored entries' prefix (the checksum
            // catches any one changed byte), plus, after an extension, nothing made up.
            let mut y = x.clone();
            for m in &muts {
                mutate(&mut y, m);
            }
            let d = history::decode_day(&y);
            let n = d.entries.len().min(stored.len());
            prop_assert_eq!(&d.entries[..n], &stored[..n]);
            if muts.len() == 1
                && !y.is_empty()
                && !matches!(muts[0], ByteMutation::Extend(_))
                && y != x
            {
                tally.add("one change caught");
                prop_assert!(
                    d.entries.len() < stored.len() || d.error.is_some() || y.len() < x.len()
                );
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Route building on random graphs.

fn policy() -> BoxedStrategy<Policy> {
    (
        prop_oneof![10 => 0u32..2000, 1 => Just(0u32), 1 => Just(u32::MAX), 1 => any::<u32>()],
        prop_oneof![10 => 0u32..5000, 1 => Just(0u32), 1 => Just(1_000_000u32), 1 => Just(u32::MAX), 1 => any::<u32>()],
        prop_oneof![12 => 0u32..150, 1 => Just(2016u32), 1 => Just(u32::MAX), 1 => any::<u32>()],
        prop_oneof![12 => Just(0u64), 3 => 0u64..10_000_000, 1 => any::<u64>()],
        prop_oneof![12 => Just(u64::MAX), 3 => 0u64..20_000_000_000, 1 => any::<u64>()],
    )
        .prop_map(|(base, ppm, delay, min, max)| Policy {
            base_fee_millisatoshi: base,
            fee_per_millionth: ppm,
            delay,
            htlc_minimum_msat: min,
            htlc_maximum_msat: max,
        })
    .boxed()
}

fn capacity() -> BoxedStrategy<u64> {
    prop_oneof![
        12 => 1_000_000u64..20_000_000_000,
        1 => Just(0u64),
        1 => 0u64..100_000,
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
    .boxed()
}

/// One channel between nodes `a` and `b` (maybe the same node), both directions.
#[derive(Debug, Clone)]
struct RandChan {
    a: usize,
    b: usize,
    /// Reuses an earlier channel's scid when `Some` (a duplicate channel id).
    dup_of: Option<prop::sample::Index>,
    capacity: u64,
    active: [bool; 2],
    policy: [Policy; 2],
}

fn rand_chan(n: usize) -> BoxedStrategy<RandChan> {
    (
        0..n,
        0..n,
        prop::option::weighted(0.08, any::<prop::sample::Index>()),
        capacity(),
        [prop::bool::weighted(0.95), prop::bool::weighted(0.95)],
        [policy(), policy()],
    )
        .prop_map(|(a, b, dup_of, capacity, active, policy)| RandChan {
            a,
            b,
            dup_of,
            capacity,
            active,
            policy,
        })
        .boxed()
}

/// A random network around us (node 0): the outgoing peer `A`, the incoming peer `B` (maybe
/// the same), our channels to them, and the rest.
#[derive(Debug, Clone)]
struct RandNet {
    chans: Vec<RandChan>,
    out_peer: usize,
    in_peer: usize,
    out_chan: RandChan,
    in_chan: RandChan,
}

fn rand_net(nodes: std::ops::RangeInclusive<usize>) -> BoxedStrategy<RandNet> {
    nodes
        .prop_flat_map(|n| {
            (
                prop::collection::vec(rand_chan(n), n..=3 * n),
                1..n,
                prop_oneof![4 => 1..n, 1 => Just(0usize)],
                rand_chan(n),
                rand_chan(n),
            )
                .prop_map(move |(chans, out_peer, in_peer, out_chan, in_chan)| {
                    RandNet {
                        chans,
                        out_peer,
                        // 0 stands for "the same peer as outgoing" (two channels to one peer).
                        in_peer: if in_peer == 0 { out_peer } else { in_peer },
                        out_chan,
                        in_chan,
                    }
                })
        })
        .boxed()
}

fn node_name(i: usize) -> String {
    format!("02{:064x}", i + 1)
}

/// The graph of a [`RandNet`]; returns it with our outgoing and incoming edges (us -> A and
/// B -> us).
fn build_graph(net: &RandNet) -> (Graph, EdgeIdx, EdgeIdx) {
    let mut b = GraphBuilder::default();
    let mut scids: Vec<Scid> = Vec::new();
    let add = |b: &mut GraphBuilder, scids: &mut Vec<Scid>, c: &RandChan, x: usize, y: usize| {
        // Duplicates reuse another random channel's scid, never one of our two.
        let scid = match c.dup_of {
            Some(i) if scids.len() > 2 => scids[2 + i.index(scids.len() - 2)],
            _ => Scid((((scids.len() as u64) + 100) << 40) | (1 << 16)),
        };
        scids.push(scid);
        let (nx, ny) = (node_name(x), node_name(y));
        b.add(
            &nx,
            &ny,
            scid,
            u8::from(nx > ny),
            c.active[0],
            c.capacity,
            c.policy[0],
        );
        b.add(
            &ny,
            &nx,
            scid,
            u8::from(ny > nx),
            c.active[1],
            c.capacity,
            c.policy[1],
        );
        scid
    };
    // Our own channels first, never duplicated and always active toward the circle.
    let out = RandChan {
        dup_of: None,
        active: [true, true],
        ..net.out_chan.clone()
    };
    let inc = RandChan {
        dup_of: None,
        active: [true, true],
        ..net.in_chan.clone()
    };
    let out_scid = add(&mut b, &mut scids, &out, 0, net.out_peer);
    let in_scid = add(&mut b, &mut scids, &inc, net.in_peer, 0);
    for c in &net.chans {
        add(&mut b, &mut scids, c, c.a, c.b);
    }
    let g = b.build();
    let (us, a, bb) = (
        node_name(0),
        node_name(net.out_peer),
        node_name(net.in_peer),
    );
    let out_edge = g
        .edge_by_scid(out_scid, u8::from(us > a))
        .expect("our outgoing edge");
    let in_edge = g
        .edge_by_scid(in_scid, u8::from(bb > us))
        .expect("our incoming edge");
    (g, out_edge, in_edge)
}

/// What `Plan::new` builds for a request, mirrored from src/commands/rebalance.rs (it is
/// private there; `fuzz_rebalance_dryrun_random_networks` drives the real one through the
/// in-memory node).
struct MirrorPlan {
    first: HopSpec,
    last: HopSpec,
    query: Query,
    exclude: Exclusions,
    same_peer: bool,
}

fn mirror_plan(
    g: &Graph,
    us: NodeIdx,
    out_edge: EdgeIdx,
    in_edge: EdgeIdx,
    amount_msat: u64,
    final_cltv: u32,
) -> Result<MirrorPlan, &'static str> {
    let remote = g.edge(in_edge).policy;
    if amount_msat < remote.htlc_minimum_msat || amount_msat > remote.htlc_maximum_msat {
        return Err("amount outside the incoming peer's htlc limits");
    }
    let first = HopSpec {
        policy: remote,
        ..HopSpec::from_edge(g, out_edge)
    };
    let last = HopSpec::from_edge(g, in_edge);
    let deliver_msat = spec_fee(amount_msat, &remote)
        .and_then(|f| amount_msat.checked_add(f))
        .ok_or("amount + last fee overflows")?;
    // Plan::new adds these unchecked (see the report): here checked, and counted.
    let deliver_delay = final_cltv
        .checked_add(remote.delay)
        .ok_or("final cltv + the incoming peer's delay overflows")?;
    let mut exclude = Exclusions::default();
    exclude.nodes.insert(us);
    Ok(MirrorPlan {
        first,
        last,
        query: Query {
            from: g.edge(out_edge).destination,
            to: g.edge(in_edge).source,
            deliver_msat,
            deliver_delay,
            max_edges: (MAX_HOPS - 2) as u32,
            max_delay: MAX_TOTAL_CLTV,
            max_amount_msat: u64::MAX,
        },
        exclude,
        same_peer: g.edge(out_edge).destination == g.edge(in_edge).source,
    })
}

/// A route: the middle's edges and the sendpay hops.
type Route = (Vec<EdgeIdx>, Vec<Hop>);

/// `Plan::next_route`, mirrored: the middle from the search (none for the same peer), our two
/// hops around it, hops from `build_route`.
fn mirror_next_route<C: HopCost>(
    g: &Graph,
    plan: &MirrorPlan,
    cost: &C,
    amount_msat: u64,
    final_cltv: u32,
    scratch: &mut Scratch,
) -> Result<Option<Route>, TestCaseError> {
    let middle: Vec<EdgeIdx> = if plan.same_peer {
        Vec::new()
    } else {
        match find_path_with(g, &plan.query, &plan.exclude, cost, scratch) {
            Some(p) => {
                check_path(g, &plan.query, &plan.exclude, &p);
                p.edges
            }
            None => return Ok(None),
        }
    };
    let mut specs = vec![plan.first.clone()];
    specs.extend(middle.iter().map(|&i| HopSpec::from_edge(g, i)));
    specs.push(plan.last.clone());
    match build_route(&specs, amount_msat, final_cltv) {
        Ok(hops) => Ok(Some((middle, hops))),
        // A path the search found always builds: its limits are the builder's.
        Err(e) if !plan.same_peer => Err(TestCaseError::fail(format!(
            "the search's path does not build: {e}"
        ))),
        Err(_) => Ok(None),
    }
}

/// The circle's hops against the graph: ends at us over the incoming channel, starts over the
/// outgoing one, each middle hop over its edge, and BOLT 7 hop by hop. Returns the fee.
#[allow(clippy::too_many_arguments)]
fn check_circle_hops(
    g: &Graph,
    us: NodeIdx,
    out_edge: EdgeIdx,
    in_edge: EdgeIdx,
    middle: &[EdgeIdx],
    hops: &[Hop],
    amount_msat: u64,
    final_cltv: u32,
) -> Result<u64, TestCaseError> {
    prop_assert_eq!(hops.len(), middle.len() + 2);
    let (out_e, in_e) = (g.edge(out_edge), g.edge(in_edge));
    let last = &hops[hops.len() - 1];
    prop_assert_eq!(last.node_id.as_str(), g.node_id(us), "ends at our node");
    prop_assert_eq!(
        (last.short_channel_id, last.direction),
        (in_e.short_channel_id, in_e.direction),
        "through the incoming channel"
    );
    prop_assert_eq!(
        (hops[0].short_channel_id, hops[0].direction),
        (out_e.short_channel_id, out_e.direction)
    );
    prop_assert_eq!(hops[0].node_id.as_str(), g.node_id(out_e.destination));
    let mut charged_by = vec![in_e.policy]; // our hop: unused
    let mut carries = vec![u64::MAX];
    for (k, &i) in middle.iter().enumerate() {
        let e = g.edge(i);
        let hop = &hops[k + 1];
        prop_assert_eq!(
            (hop.short_channel_id, hop.direction),
            (e.short_channel_id, e.direction)
        );
        prop_assert_eq!(hop.node_id.as_str(), g.node_id(e.destination));
        prop_assert!(e.active && e.source != e.destination);
        prop_assert!(e.destination != us && e.source != us, "us only at the ends");
        charged_by.push(e.policy);
        carries.push(e.policy.htlc_maximum_msat.min(e.amount_msat));
    }
    charged_by.push(in_e.policy);
    carries.push(in_e.policy.htlc_maximum_msat);
    let fee = check_hops(hops, &charged_by, &carries, amount_msat, final_cltv);
    prop_assert_eq!(
        route_fee_msat(hops),
        fee,
        "route_fee_msat is what the hops imply"
    );
    prop_assert!(hops[0].delay <= MAX_TOTAL_CLTV);
    Ok(fee)
}

/// Whether label-setting must find the optimum `best` (the exhaustive search's source amount)
/// for this query; see pathfind.rs for why it may not. Every label on the way to the optimum
/// lies in `[deliver, best]`, so no htlc minimum may fall in `(deliver, best]`; no simple path
/// may reach the CLTV cap over edges that fit under it at all, nor the hop cap; and the
/// optimum must be keyable (below 2^58 msat).
fn search_is_exact(g: &Graph, q: &Query, best: Option<(u64, u32)>) -> bool {
    let Some((best, _)) = best else {
        return true; // no path: the search finds none either (what it finds is valid)
    };
    let active = || g.edges().iter().filter(|e| e.active);
    let room = q.max_delay.saturating_sub(q.deliver_delay);
    let longest = active()
        .map(|e| e.policy.delay)
        .filter(|&d| d <= room)
        .max()
        .unwrap_or(0);
    let edges = g.node_count().saturating_sub(1) as u64;
    active()
        .all(|e| e.policy.htlc_minimum_msat <= q.deliver_msat || e.policy.htlc_minimum_msat > best)
        && edges * u64::from(longest) <= u64::from(room)
        && edges <= u64::from(q.max_edges)
        && best < 1 << 58
}

/// A random liquidity model over some of the graph's edges.
fn model_over(g: &Graph, picks: &[(prop::sample::Index, u8, u64)], now: u64) -> Liquidity {
    let mut l = Liquidity::new();
    for (i, what, amount) in picks {
        let e = g.edge(i.index(g.edge_count()) as EdgeIdx);
        let cd = ChanDir::new(e.short_channel_id, e.direction);
        let cap = e.amount_msat;
        let when = now.saturating_sub(u64::from(*what) * 97);
        match what % 7 {
            0 => l.failed(cd, *amount, cap, when, 3600),
            1 => l.forwarded(cd, *amount, cap, when, 3600),
            2 => l.settled(cd, *amount, cap, when, 3600),
            3 => l.exact(cd, *amount, cap, when),
            4 => l.channel_failed(cd, when),
            5 => l.node_failed(&node_name(*amount as usize % 9), when),
            _ => l.in_flight(cd, *amount, true),
        }
    }
    l
}

#[test]
fn fuzz_route_building_on_random_graphs() {
    let tally = Tally::default();
    let cases = (
        prop_oneof![rand_net(5..=8), rand_net(9..=40)],
        prop_oneof![
            6 => 1u64..1_000_000_000,
            1 => 1u64..1000,
            1 => 1_000_000_000u64..10_000_000_000,
            1 => any::<u64>(),
            1 => u64::MAX - 100_000..=u64::MAX,
        ],
        (
            0u64..=1_000_000,
            prop_oneof![0u64..100_000, 0..=MAX_MONEY_MSAT],
        ),
        prop_oneof![8 => Just(21u32), 1 => 0u32..3000, 1 => any::<u32>()],
        prop::collection::vec(
            (any::<prop::sample::Index>(), any::<u8>(), model_amount()),
            0..12,
        ),
        (any::<bool>(), 1u64..100_000, 0u64..5000, 0u64..1000),
    );
    fuzz(
        "route building on random graphs (5-40 nodes)",
        1500,
        cases,
        &tally,
        |(
            net,
            amount,
            (maxfeeppm, exemptfee),
            final_cltv,
            picks,
            (bimodal, hl, risk_base, risk_ppm),
        )| {
            let (g, out_edge, in_edge) = build_graph(&net);
            let us = g.node_idx(&node_name(0)).expect("us");
            let cap = fee_cap_msat(amount, maxfeeppm, exemptfee);
            let plan = match mirror_plan(&g, us, out_edge, in_edge, amount, final_cltv) {
                Ok(p) => p,
                Err(why) => {
                    tally.add(why);
                    return Ok(());
                }
            };
            let mut scratch = Scratch::default();
            // Fee only: valid, and the cheapest on small graphs.
            let fee_only =
                mirror_next_route(&g, &plan, &FeeOnly, amount, final_cltv, &mut scratch)?;
            let fee_only_fee = match &fee_only {
                Some((middle, hops)) => {
                    tally.add("fee-only routes");
                    let fee = check_circle_hops(
                        &g, us, out_edge, in_edge, middle, hops, amount, final_cltv,
                    )?;
                    // check_route: accepted under the cap means never above it.
                    if fee <= cap {
                        tally.add("under the cap");
                    }
                    Some(fee)
                }
                None => {
                    tally.add("no fee-only route");
                    None
                }
            };
            let mut exact_fee = None;
            if g.node_count() <= 8 && !plan.same_peer {
                let best = exhaustive(&g, &plan.query, &plan.exclude)
                    .map_err(|()| TestCaseError::fail("exhaustive over budget"))?;
                let best_fee = best.map(|b| b.0 - amount);
                let found = fee_only_fee;
                // Whatever is found is valid, so never cheaper than the optimum.
                prop_assert!(found.is_none_or(|f| best_fee.is_some_and(|b| f >= b)));
                if search_is_exact(&g, &plan.query, best) {
                    tally.add("= exhaustive optimum");
                    prop_assert_eq!(found, best_fee, "fee-only route is the cheapest");
                } else {
                    tally.add(">= exhaustive optimum (a cap or htlc min may bind)");
                }
                exact_fee = search_is_exact(&g, &plan.query, best).then_some(best_fee);
            }
            // With the liquidity model: valid, never cheaper than the fee-only optimum, every
            // hop priced (P > 0) and the path's extra cost what the model says.
            let now = 1_800_000_000;
            let model = model_over(&g, &picks, now);
            let config = ModelConfig {
                half_life_secs: hl,
                prior: if bimodal {
                    Prior::Bimodal
                } else {
                    Prior::Uniform
                },
                // 0, 5% or 10% depleted, from a draw already made.
                depleted_ppm: (hl % 3) as u32 * 50_000,
                risk_base_msat: risk_base,
                risk_ppm,
            };
            let mut beliefs = Beliefs::default();
            beliefs.rebuild(&g, &model, now, config);
            if !plan.same_peer
                && let Some(p) =
                    find_path_with(&g, &plan.query, &plan.exclude, &beliefs, &mut scratch)
            {
                tally.add("model routes");
                let carried = check_path(&g, &plan.query, &plan.exclude, &p);
                let mut extra = 0u64;
                for (k, &i) in p.edges.iter().enumerate() {
                    let e = g.edge(i);
                    let risk = beliefs.risk_msat(i, e.source, carried[k], e.amount_msat);
                    prop_assert!(risk.is_some(), "a hop the model rules out was used");
                    extra = extra.checked_add(risk.unwrap()).expect("extra fits");
                }
                prop_assert_eq!(p.extra_msat, extra);
                let route =
                    mirror_next_route(&g, &plan, &beliefs, amount, final_cltv, &mut scratch)?
                        .expect("the same search again");
                let fee = check_circle_hops(
                    &g, us, out_edge, in_edge, &route.0, &route.1, amount, final_cltv,
                )?;
                if let Some(Some(f)) = exact_fee {
                    prop_assert!(fee >= f, "the model's route is cheaper than the cheapest");
                }
            }
            Ok(())
        },
    );
    assert!(
        tally.get("fee-only routes") > 50,
        "the sample should mostly route"
    );
    assert!(tally.get("= exhaustive optimum") > 20);
}

// ---------------------------------------------------------------------------------------------
// 5b. The real `rebalance` (dry run) on random stand-in networks: Plan::new, Plan::next_route
// and check_route as the plugin runs them, through the in-memory node.

#[derive(Debug, Clone)]
struct StandinChan {
    a: usize,
    b: usize,
    capacity_msat: u64,
    /// Node a's share.
    share: u8,
    policy: [(u32, u32, u32, u64, Option<u64>, bool); 2],
}

fn standin_policy() -> BoxedStrategy<(u32, u32, u32, u64, Option<u64>, bool)> {
    (
        prop_oneof![4 => 0u32..2000, 1 => Just(0u32), 1 => any::<u32>()],
        prop_oneof![4 => 0u32..3000, 1 => Just(0u32), 1 => any::<u32>()],
        prop_oneof![6 => 0u32..150, 1 => 0u32..3000],
        prop_oneof![6 => Just(0u64), 1 => 0u64..50_000_000],
        prop_oneof![6 => Just(None), 1 => (0u64..20_000_000_000).prop_map(Some)],
        prop::bool::weighted(0.95),
    )
        .boxed()
}

fn standin_chan(n: usize) -> BoxedStrategy<StandinChan> {
    (
        0..n,
        0..n,
        prop_oneof![3 => 100_000_000u64..20_000_000_000, 1 => 1_000u64..100_000_000],
        prop_oneof![3 => 60u8..200, 1 => any::<u8>()],
        [standin_policy(), standin_policy()],
    )
        .prop_map(|(a, b, capacity_msat, share, policy)| StandinChan {
            a,
            b,
            capacity_msat,
            share,
            policy,
        })
        .boxed()
}

/// What a dry run asks to move.
#[derive(Debug, Clone, Copy)]
enum DryRunAmount {
    /// Per mille of the outgoing channel's capacity (most requests fit the channels).
    PerMille(u64),
    Msat(u64),
    /// Not given: the plugin picks the balancing amount.
    Balancing,
}

#[derive(Debug, Clone)]
struct DryRun {
    n: usize,
    ours: Vec<StandinChan>,
    others: Vec<StandinChan>,
    out_pick: prop::sample::Index,
    in_pick: prop::sample::Index,
    amount: DryRunAmount,
    maxfeeppm: Option<u64>,
    exemptfee: Option<u64>,
    fee_only: bool,
}

fn dry_run() -> BoxedStrategy<DryRun> {
    (3usize..=9).prop_flat_map(|n| {
        (
            prop::collection::vec(standin_chan(n), 2..=4),
            prop::collection::vec(standin_chan(n), n..=3 * n),
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            prop_oneof![
                6 => (1u64..950).prop_map(DryRunAmount::PerMille),
                1 => Just(DryRunAmount::Balancing),
                1 => prop_oneof![1u64..1_000_000, 1u64..=MAX_MONEY_MSAT].prop_map(DryRunAmount::Msat),
            ],
            prop::option::weighted(0.8, prop_oneof![0u64..5000, 0u64..=1_000_000]),
            prop::option::weighted(0.8, prop_oneof![0u64..10_000_000, 0..=MAX_MONEY_MSAT]),
            any::<bool>(),
        )
            .prop_map(move |(ours, others, out_pick, in_pick, amount, maxfeeppm, exemptfee, fee_only)| {
                DryRun {
                    n,
                    ours,
                    others,
                    out_pick,
                    in_pick,
                    amount,
                    maxfeeppm,
                    exemptfee,
                    fee_only,
                }
            })
    })
    .boxed()
}

/// The stand-in network file for a [`DryRun`]: node 0 is us; our channels connect us to
/// other nodes; the rest connect distinct non-us... nodes (self-loops and repeats dropped,
/// the stand-in refuses them). Returns the file and our scids.
fn standin_network(d: &DryRun) -> (Value, Vec<String>) {
    let nodes: Vec<Value> = (0..d.n)
        .map(|i| json!({"id": node_name(i), "alias": format!("n{i}")}))
        .collect();
    let mut channels = Vec::new();
    let mut ours = Vec::new();
    let pol = |p: &(u32, u32, u32, u64, Option<u64>, bool)| {
        let mut v = json!({"fee_base_msat": p.0, "fee_proportional_millionths": p.1,
                           "cltv_expiry_delta": p.2, "htlc_minimum_msat": p.3, "active": p.5});
        if let Some(max) = p.4 {
            v["htlc_maximum_msat"] = json!(max);
        }
        v
    };
    let mut add = |k: usize, a: usize, b: usize, c: &StandinChan| {
        let scid = format!("{}x{}x0", 700_000 + k, k % 7);
        channels.push(json!({
            "short_channel_id": scid,
            "node1": node_name(a),
            "node2": node_name(b),
            "capacity_msat": c.capacity_msat,
            "node1_msat": (u128::from(c.capacity_msat) * u128::from(c.share) / 255) as u64,
            "policy1": pol(&c.policy[0]),
            "policy2": pol(&c.policy[1]),
        }));
        scid
    };
    for (k, c) in d.ours.iter().enumerate() {
        let peer = 1 + c.b % (d.n - 1);
        ours.push(add(k, 0, peer, c));
    }
    for (k, c) in d.others.iter().enumerate() {
        let (a, b) = (1 + c.a % (d.n - 1), 1 + c.b % (d.n - 1));
        if a != b {
            add(100 + k, a, b, c);
        }
    }
    let file = json!({"us": node_name(0), "nodes": nodes, "channels": channels,
                      "config": {"cltv_final": 18, "fee_rounding": "ceil", "seed": 7}});
    (file, ours)
}

fn hops_from_json(route: &Value) -> Vec<Hop> {
    route
        .as_array()
        .expect("route is an array")
        .iter()
        .map(|h| Hop {
            short_channel_id: h["short_channel_id"].as_str().unwrap().parse().unwrap(),
            direction: h["direction"].as_u64().unwrap() as u8,
            node_id: h["node_id"].as_str().unwrap().to_string(),
            amount_msat: h["amount_msat"].as_u64().unwrap(),
            delay: h["delay"].as_u64().unwrap() as u32,
        })
        .collect()
}

#[test]
fn fuzz_rebalance_dryrun_random_networks() {
    let tally = Tally::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    fuzz(
        "rebalance dry run on random stand-in networks (3-9 nodes)",
        800,
        dry_run(),
        &tally,
        |d| {
            let (file, ours) = standin_network(&d);
            let net = cln_standin::simnet::Network::from_json_str(&file.to_string())
                .map_err(|e| TestCaseError::fail(format!("stand-in network refused: {e:#}")))?;
            // Two different channels of ours (the same one twice is a documented -32602).
            let out_at = d.out_pick.index(ours.len());
            let in_at = (out_at + 1 + d.in_pick.index(ours.len() - 1)) % ours.len();
            let (out_scid, in_scid) = (ours[out_at].clone(), ours[in_at].clone());
            // Ours on the outgoing channel, theirs on the incoming one (we are node1 of both).
            let share = |c: &StandinChan, ours: bool| {
                let mine = u128::from(c.capacity_msat) * u128::from(c.share) / 255;
                (if ours {
                    mine
                } else {
                    u128::from(c.capacity_msat) - mine
                }) as u64
            };
            let room = share(&d.ours[out_at], true).min(share(&d.ours[in_at], false));
            let amount_msat = match d.amount {
                DryRunAmount::PerMille(m) => Some((room / 1000 * m).max(1)),
                DryRunAmount::Msat(a) => Some(a),
                DryRunAmount::Balancing => None,
            };
            let config = RebalanceConfig {
                routing: if d.fee_only {
                    Routing::FeeOnly
                } else {
                    Routing::Probabilistic
                },
                ..RebalanceConfig::default()
            };
            let (maxfeeppm, exemptfee) = (
                d.maxfeeppm.unwrap_or(config.maxfeeppm),
                d.exemptfee.unwrap_or(config.exemptfee_msat),
            );
            let final_cltv = config.final_cltv + 3;
            let (r, node) = common::rebalancer(net, config);
            let peers = node.call("listpeerchannels", json!({})).unwrap();
            let listchannels = node.call("listchannels", json!({})).unwrap().to_string();
            let g = Graph::from_listchannels_json(listchannels.as_bytes()).expect("stand-in graph");
            let req = RebalanceParams {
                outgoing: out_scid.clone(),
                incoming: in_scid.clone(),
                amount_msat,
                maxfeeppm: d.maxfeeppm,
                exemptfee: d.exemptfee,
                retry_for: Some(1),
                dryrun: true,
            };
            let result = rt.block_on(r.rebalance(req));
            let ours_json = |scid: &str| {
                peers["channels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["short_channel_id"] == scid)
                    .cloned()
                    .expect("our channel")
            };
            let us = g.node_idx(&node_name(0));
            match result {
                Ok(v) => {
                    tally.add("quoted");
                    prop_assert_eq!(&v["status"], "dryrun");
                    let amount = v["amount_msat"].as_u64().unwrap();
                    let hops = hops_from_json(&v["route"]);
                    let fee = v["fee_msat"].as_u64().unwrap();
                    prop_assert_eq!(
                        v["fee_cap_msat"].as_u64(),
                        Some(fee_cap_msat(amount, maxfeeppm, exemptfee))
                    );
                    prop_assert!(
                        fee <= fee_cap_msat(amount, maxfeeppm, exemptfee),
                        "over the fee cap"
                    );
                    let us = us.expect("we are in the graph");
                    let edge = |h: &Hop| {
                        g.edge_by_scid(h.short_channel_id, h.direction)
                            .ok_or_else(|| {
                                TestCaseError::fail(format!(
                                    "hop over unknown {}",
                                    h.short_channel_id
                                ))
                            })
                    };
                    let out_edge = edge(&hops[0])?;
                    let in_edge = edge(&hops[hops.len() - 1])?;
                    prop_assert_eq!(
                        g.edge(out_edge).short_channel_id.to_string(),
                        out_scid.clone()
                    );
                    prop_assert_eq!(
                        g.edge(in_edge).short_channel_id.to_string(),
                        in_scid.clone()
                    );
                    let middle: Vec<EdgeIdx> = hops[1..hops.len() - 1]
                        .iter()
                        .map(edge)
                        .collect::<Result<_, _>>()?;
                    for w in hops.windows(2) {
                        let e = g.edge(edge(&w[1])?);
                        prop_assert_eq!(g.node_id(e.source), w[0].node_id.as_str(), "hops connect");
                    }
                    let mut nodes: Vec<&str> = hops.iter().map(|h| h.node_id.as_str()).collect();
                    nodes.sort_unstable();
                    nodes.dedup();
                    prop_assert_eq!(nodes.len(), hops.len(), "no node twice");
                    let checked = check_circle_hops(
                        &g, us, out_edge, in_edge, &middle, &hops, amount, final_cltv,
                    )?;
                    prop_assert_eq!(checked, fee);
                    let spendable = ours_json(&out_scid)["spendable_msat"].as_u64().unwrap();
                    prop_assert!(
                        hops[0].amount_msat <= spendable,
                        "more than the channel can spend"
                    );
                    if d.fee_only {
                        let plan = mirror_plan(&g, us, out_edge, in_edge, amount, final_cltv)
                            .map_err(|w| TestCaseError::fail(w.to_string()))?;
                        let best = exhaustive(&g, &plan.query, &plan.exclude).expect("small");
                        let best_fee = best.map(|b| b.0 - amount);
                        prop_assert!(best_fee.is_some_and(|b| fee >= b));
                        if search_is_exact(&g, &plan.query, best) {
                            tally.add("fee-only quote = exhaustive optimum");
                            prop_assert_eq!(Some(fee), best_fee);
                        }
                    }
                }
                Err(e) => {
                    let code = e.code;
                    prop_assert!(
                        [-32602, 205, 206].contains(&code),
                        "unexpected error {:?}",
                        e
                    );
                    tally.add(match code {
                        -32602 => "refused a param",
                        205 => "no route",
                        _ => "too expensive",
                    });
                    if code == 206 {
                        let data = e.data.clone().unwrap_or_default();
                        let (cheapest, cap) = (
                            data["cheapest_fee_msat"].as_u64(),
                            data["fee_cap_msat"].as_u64(),
                        );
                        prop_assert!(cheapest > cap, "206 with a fee under the cap: {:?}", data);
                    }
                }
            }
            Ok(())
        },
    );
    assert!(tally.get("quoted") > 30, "the sample should mostly quote");
}

// ---------------------------------------------------------------------------------------------
// 6. The liquidity model.

fn probability_amounts(cap: u64, extra: u64) -> Vec<u64> {
    let mut v = vec![
        0,
        1,
        cap / 4,
        cap / 2,
        cap.saturating_sub(1),
        cap,
        cap.saturating_add(1),
        u64::MAX,
        extra,
        extra % cap.max(1),
    ];
    v.sort_unstable();
    v
}

/// Bounds within `[0, cap]` and the same at any time, their weight in `[0, 1]` and fading
/// (monotone, to nothing after many half-lives, when P is the prior's), probabilities in
/// `[0, 1]` and non-increasing in the amount, at `now` and later.
fn check_model(
    l: &Liquidity,
    caps: &[u64; 3],
    now: u64,
    half_life: u64,
    extra: u64,
) -> Result<(), TestCaseError> {
    for (cd, min, max, _, _) in l.entries() {
        prop_assert!(
            max.is_none_or(|m| min <= m),
            "stored min above max: {:?}",
            cd
        );
    }
    let later = [
        now,
        now.saturating_add(half_life / 2),
        now.saturating_add(half_life),
        now.saturating_add(half_life.saturating_mul(10)),
        u64::MAX,
    ];
    for i in 0..MODEL_DIRS {
        let cd = model_cd(i);
        let cap = caps[i / 2];
        let mut prev: Option<(Bounds, f64)> = None;
        for &t in &later {
            let (b, w) = l.bounds(cd, cap, t, half_life);
            prop_assert!(
                b.min_msat <= b.max_msat && b.max_msat <= cap,
                "bounds {:?} of {:?} outside [0, {}] at {}",
                b,
                cd,
                cap,
                t
            );
            prop_assert!((0.0..=1.0).contains(&w), "weight {} of {:?}", w, cd);
            if let Some((pb, pw)) = prev {
                prop_assert!(
                    b == pb && w <= pw,
                    "bounds moved or weight grew for {:?}: {:?} then {:?}",
                    cd,
                    (pb, pw),
                    (b, w)
                );
            }
            prev = Some((b, w));
            for (prior, depleted_ppm) in [
                (Prior::Uniform, 0),
                (Prior::Uniform, 40_000),
                (Prior::Bimodal, 0),
                (Prior::Bimodal, 40_000),
            ] {
                let config = ModelConfig {
                    half_life_secs: half_life,
                    prior,
                    depleted_ppm,
                    ..ModelConfig::default()
                };
                let mut last = 1.0f64;
                for a in probability_amounts(cap, extra) {
                    let p = l.probability(cd, a, cap, t, &config);
                    prop_assert!(
                        (0.0..=1.0).contains(&p),
                        "P = {} for {} over {:?}",
                        p,
                        a,
                        cd
                    );
                    prop_assert!(
                        p <= last,
                        "P grows with the amount: {} at {} after {}",
                        p,
                        a,
                        last
                    );
                    last = p;
                }
            }
        }
        // Long after the last update what was learned no longer counts: P is the prior's.
        if let Some(e) = l.entries().iter().find(|e| e.0 == cd) {
            let h = half_life.max(1);
            let t = h.checked_mul(200).and_then(|d| e.3.max(e.4).checked_add(d));
            if let Some(t) = t {
                let (_, w) = l.bounds(cd, cap, t, half_life);
                prop_assert!(w < 1e-50, "weight {} after 200 half-lives", w);
                let config = ModelConfig {
                    half_life_secs: half_life,
                    ..ModelConfig::default()
                };
                for a in probability_amounts(cap, extra) {
                    let (p, prior) = (
                        l.probability(cd, a, cap, t, &config),
                        config.prior_probability(a.saturating_add(l.in_flight_msat(cd)), cap),
                    );
                    prop_assert!(
                        (p - prior).abs() < 1e-9,
                        "P {} of {:?} not the prior's {} after 200 half-lives",
                        p,
                        cd,
                        prior
                    );
                }
            }
        }
    }
    Ok(())
}

#[test]
fn fuzz_liquidity_model_sequences() {
    let tally = Tally::default();
    let cases = (
        prop::collection::vec(model_op(), 1..40),
        model_capacities(),
        0u64..2_000_000_000,
        prop_oneof![4 => Just(3600u64), 2 => 1u64..1_000_000, 1 => Just(0u64), 1 => Just(u64::MAX)],
        any::<u64>(),
    );
    fuzz(
        "liquidity model op sequences",
        1500,
        cases,
        &tally,
        |(ops, caps, start, hl, extra)| {
            let (l, _) = apply_ops(&ops, &caps, start, hl, |l, now| {
                tally.add("ops");
                check_model(l, &caps, now, hl, extra)
            })?;
            check_idempotent(&l)?;
            Ok(())
        },
    );
}

/// The graph of the model ops' three channels (both directions), between pool nodes, so the
/// ops' node failures land on the hops out of them.
fn model_graph(caps: &[u64; 3]) -> Graph {
    let pool = node_id_pool();
    let mut b = GraphBuilder::default();
    let free = Policy {
        base_fee_millisatoshi: 0,
        fee_per_millionth: 0,
        delay: 0,
        htlc_minimum_msat: 0,
        htlc_maximum_msat: u64::MAX,
    };
    for c in 0..3 {
        let (x, y) = (&pool[c], &pool[c + 1]);
        for d in 0..2 {
            let cd = model_cd(2 * c + d);
            let (src, dst) = if d == 0 { (x, y) } else { (y, x) };
            b.add(
                src,
                dst,
                cd.short_channel_id,
                cd.direction,
                true,
                caps[c],
                free,
            );
        }
    }
    b.build()
}

/// A view kept from one search to the next catches up with the model's change log; after
/// every op (and at every clock reading the ops move to) it must price every edge, at every
/// amount, exactly as a view built afresh from the model does.
#[test]
fn fuzz_liquidity_kept_view_matches_a_fresh_one() {
    let tally = Tally::default();
    let cases = (
        prop::collection::vec(model_op(), 1..60),
        model_capacities(),
        0u64..2_000_000_000,
        prop_oneof![4 => Just(3600u64), 2 => 1u64..1_000_000, 1 => Just(0u64)],
        prop::collection::vec(model_amount(), 1..4),
        any::<bool>(),
    );
    fuzz(
        "kept search view = fresh view",
        1500,
        cases,
        &tally,
        |(ops, caps, start, hl, amounts, bimodal)| {
            let g = model_graph(&caps);
            let config = ModelConfig {
                half_life_secs: hl,
                prior: if bimodal {
                    Prior::Bimodal
                } else {
                    Prior::Uniform
                },
                ..ModelConfig::default()
            };
            let mut kept = Beliefs::default();
            apply_ops(&ops, &caps, start, hl, |l, now| {
                // Not after every op: a view also catches up over several changes at once.
                if now % 3 == 0 {
                    return Ok(());
                }
                kept.rebuild(&g, l, now, config);
                let mut fresh = Beliefs::default();
                fresh.rebuild(&g, l, now, config);
                tally.add("compared");
                for i in 0..g.edge_count() as EdgeIdx {
                    let e = g.edge(i);
                    for &a in &amounts {
                        let (k, f) = (
                            kept.risk_msat(i, e.source, a, e.amount_msat),
                            fresh.risk_msat(i, e.source, a, e.amount_msat),
                        );
                        prop_assert_eq!(k, f, "edge {} amount {} at {}", i, a, now);
                    }
                }
                Ok(())
            })?;
            Ok(())
        },
    );
    assert!(tally.get("compared") > 1000);
}

#[test]
fn fuzz_liquidity_probability_functions() {
    let tally = Tally::default();
    let cases = (
        model_amount(),
        model_amount(),
        model_amount(),
        prop::collection::vec(model_amount(), 1..8),
        (0u64..10_000, 0u64..10_000),
    );
    fuzz(
        "success_probability / prior / risk",
        3000,
        cases,
        &tally,
        |(cap, x, y, mut amounts, (base, ppm))| {
            let max = x.min(cap);
            let min = y.min(max);
            let b = Bounds {
                min_msat: min,
                max_msat: max,
            };
            amounts.sort_unstable();
            let config = ModelConfig {
                risk_base_msat: base,
                risk_ppm: ppm,
                ..ModelConfig::default()
            };
            for prior in [Prior::Uniform, Prior::Bimodal] {
                let (mut last_p, mut last_prior) = (1.0f64, 1.0f64);
                for &a in &amounts {
                    let p = success_probability(prior, a, b, cap);
                    prop_assert!(
                        (0.0..=1.0).contains(&p) && p <= last_p,
                        "P({}) = {} after {}",
                        a,
                        p,
                        last_p
                    );
                    last_p = p;
                    let q = prior_probability(prior, a, cap);
                    prop_assert!((0.0..=1.0).contains(&q) && q <= last_prior);
                    last_prior = q;
                    let r = risk_msat(&config, a, p);
                    prop_assert_eq!(r.is_some(), p > 0.0);
                    tally.add(if r.is_some() { "priced" } else { "ruled out" });
                }
            }
            Ok(())
        },
    );
}

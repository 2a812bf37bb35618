//! Request params: every command's params against a spec of them (positional and keyword, names, types, ranges, rules between them), the `check` command.

use super::*;

/// What a parameter holds, for the spec below.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
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
pub(crate) enum Parsed {
    Text(String),
    Scid(Scid),
    Number(u64),
    Flag(bool),
}

/// Why the spec refuses params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    NotContainer,
    TooMany(usize),
    Unknown(String),
    Param(&'static str),
}

/// The params contract, written from the README rather than from params.rs: params are null,
/// an array (at most one value per name, null = absent) or an object (known names only);
/// each parameter is checked in `order`; required ones must be present.
pub(crate) fn spec(
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
pub(crate) type Rules = fn(&BTreeMap<&'static str, Parsed>) -> Result<(), Refusal>;

pub(crate) fn no_rules(_: &BTreeMap<&'static str, Parsed>) -> Result<(), Refusal> {
    Ok(())
}

/// The error `params.rs` must give for a refusal: always -32602, the message naming the
/// parameter first (`name: ...`, with `data.parameter`), or one of the two whole-params forms.
pub(crate) fn check_refusal(
    e: &RpcFailure,
    why: &Refusal,
    names: &[&str],
) -> Result<(), TestCaseError> {
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
pub(crate) fn params_value(names: &'static [&'static str]) -> BoxedStrategy<Value> {
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
pub(crate) fn valid_value(name: &str) -> BoxedStrategy<Value> {
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
pub(crate) fn near_valid(names: &'static [&'static str]) -> BoxedStrategy<Value> {
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

pub(crate) fn run_params_target<T: std::fmt::Debug>(
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

pub(crate) fn text(want: &BTreeMap<&str, Parsed>, name: &str) -> Option<String> {
    match want.get(name) {
        Some(Parsed::Text(s)) => Some(s.clone()),
        _ => None,
    }
}

pub(crate) fn number(want: &BTreeMap<&str, Parsed>, name: &str) -> Option<u64> {
    match want.get(name) {
        Some(Parsed::Number(n)) => Some(*n),
        _ => None,
    }
}

pub(crate) fn flag(want: &BTreeMap<&str, Parsed>, name: &str) -> bool {
    matches!(want.get(name), Some(Parsed::Flag(true)))
}

pub(crate) const REBALANCE_ORDER: &[(&str, Kind, bool)] = &[
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
    (
        "maxparts",
        Kind::Whole {
            max: MAX_PARTS,
            nonzero: true,
        },
        false,
    ),
];

#[test]
pub(crate) fn fuzz_params_rebalance() {
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
                maxparts: number(want, "maxparts"),
                amount_max: false,
            };
            prop_assert_eq!(got, &expected);
            Ok(())
        },
    );
}

#[test]
pub(crate) fn fuzz_params_balances() {
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
pub(crate) fn fuzz_params_liquidity() {
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

pub(crate) fn maybe_flag(want: &BTreeMap<&str, Parsed>, name: &str) -> Option<bool> {
    match want.get(name) {
        Some(Parsed::Flag(b)) => Some(*b),
        _ => None,
    }
}

#[test]
pub(crate) fn fuzz_params_rebalanceall() {
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
            ("wait", Kind::Flag, false),
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
            prop_assert_eq!(got.wait, flag(want, "wait"));
            Ok(())
        },
    );
}

#[test]
pub(crate) fn fuzz_params_rebalancereport_and_stop() {
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
pub(crate) fn settings_rules(p: &BTreeMap<&'static str, Parsed>) -> Result<(), Refusal> {
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
pub(crate) fn fuzz_params_settings() {
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
pub(crate) fn fuzz_params_check() {
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

//! Request parameters, positional (lightning-cli's default) or keyword (`-k`), into typed
//! requests. Every error names the parameter. No routing math here.

use crate::core::amount::{AmountError, MAX_MONEY_MSAT, parse_amount};
use crate::error::RpcFailure;
use serde_json::{Map, Value};

pub const REBALANCE_PARAMS: [&str; 8] = [
    "outgoing",
    "incoming",
    "amount_msat",
    "maxfeeppm",
    "exemptfee",
    "retry_for",
    "dryrun",
    "maxparts",
];

/// The most parts a rebalance may ask to be paid in.
pub const MAX_PARTS: u64 = 16;
pub const BALANCES_PARAMS: [&str; 2] = ["id", "quote"];
pub const PROBE_PARAMS: [&str; 6] = [
    "outgoing",
    "incoming",
    "amount_msat",
    "maxfeeppm",
    "exemptfee",
    "maxparts",
];
pub const LIQUIDITY_PARAMS: [&str; 2] = ["short_channel_id", "reset"];
/// rebalance.py's two first (`min_amount`, `feeratio`), then ours.
pub const REBALANCEALL_PARAMS: [&str; 6] = [
    "min_amount",
    "feeratio",
    "target",
    "budget",
    "dryrun",
    "wait",
];
pub const REPORT_PARAMS: [&str; 1] = ["days"];
pub const SETTINGS_PARAMS: [&str; 4] = ["id", "exclude", "target", "clear"];

/// The most `retry_for` may ask: an hour keeps funds from being tied up by one command.
pub const MAX_RETRY_FOR: u64 = 3600;

/// `rebalance` as asked; `None` means "use the plugin's configured default".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebalanceParams {
    pub outgoing: String,
    pub incoming: String,
    pub amount_msat: Option<u64>,
    pub maxfeeppm: Option<u64>,
    pub exemptfee: Option<u64>,
    pub retry_for: Option<u64>,
    pub dryrun: bool,
    /// Most parts to pay it in (1: one route at a time).
    pub maxparts: Option<u64>,
    /// `amount_msat=max`: the most that can move now, found by probing first.
    pub amount_max: bool,
}

/// `rebalance-probe` as asked: without an amount, the most that can move; with one, whether it
/// can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeParams {
    pub outgoing: String,
    pub incoming: String,
    pub amount_msat: Option<u64>,
    pub maxfeeppm: Option<u64>,
    pub exemptfee: Option<u64>,
    pub maxparts: Option<u64>,
}

impl ProbeParams {
    /// An automatic move's probes: `outgoing` to `incoming`, `amount_msat` (none: the most),
    /// the options' fee cap and parts.
    pub fn for_move(outgoing: &str, incoming: &str, amount_msat: Option<u64>) -> ProbeParams {
        ProbeParams {
            outgoing: outgoing.to_string(),
            incoming: incoming.to_string(),
            amount_msat,
            maxfeeppm: None,
            exemptfee: None,
            maxparts: None,
        }
    }
}

/// `balances [id]`: `id` filters by peer id or short_channel_id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalancesParams {
    pub id: Option<String>,
    /// Price each suggested move with a dry run (route, fee, success estimate).
    pub quote: bool,
}

/// What a `rebalanceall` call asks for; `None` = the configured value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebalanceallParams {
    pub min_amount_msat: Option<u64>,
    pub feeratio_millionths: Option<u32>,
    pub target_percent: Option<u8>,
    pub budget_msat: Option<u64>,
    pub dryrun: bool,
    /// Answer when the job has ended (following it on the way), not at once.
    pub wait: bool,
}

/// `rebalance-settings` as asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsParams {
    /// A short_channel_id or a peer's node id.
    pub id: Option<String>,
    pub exclude: Option<bool>,
    pub target_percent: Option<u8>,
    pub clear: bool,
}

/// `rebalance-liquidity [short_channel_id] [reset]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiquidityParams {
    pub short_channel_id: Option<crate::core::graph::Scid>,
    pub reset: bool,
}

/// Turns positional or keyword params into a name -> value map, refusing unknown names and
/// too many positional values.
pub fn named(params: &Value, names: &[&str]) -> Result<Map<String, Value>, RpcFailure> {
    let mut out = Map::new();
    match params {
        Value::Null => {}
        Value::Array(values) => {
            if values.len() > names.len() {
                return Err(RpcFailure::new(
                    crate::error::INVALID_PARAMS,
                    format!(
                        "too many parameters: got {}, expected at most {} ({})",
                        values.len(),
                        names.len(),
                        names.join(", ")
                    ),
                ));
            }
            for (name, v) in names.iter().zip(values) {
                if !v.is_null() {
                    out.insert(name.to_string(), v.clone());
                }
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                if !names.contains(&k.as_str()) {
                    return Err(RpcFailure::param(
                        k,
                        format!("unknown parameter (expected one of: {})", names.join(", ")),
                    ));
                }
                if !v.is_null() {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        _ => {
            return Err(RpcFailure::new(
                crate::error::INVALID_PARAMS,
                "params must be an array or an object",
            ));
        }
    }
    Ok(out)
}

fn string(map: &Map<String, Value>, name: &str) -> Result<Option<String>, RpcFailure> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Some(Value::String(_)) => Err(RpcFailure::param(name, "must not be empty")),
        Some(other) => Err(RpcFailure::param(
            name,
            format!("expected a short_channel_id or node id string, got {other}"),
        )),
    }
}

/// An amount: a JSON integer (msat) or a CLN amount string.
pub fn amount(map: &Map<String, Value>, name: &str) -> Result<Option<u64>, RpcFailure> {
    let msat = match map.get(name) {
        None => return Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) => v,
            None if n.as_i64().is_some_and(|v| v < 0) => {
                return Err(RpcFailure::param(name, AmountError::Negative));
            }
            None => return Err(RpcFailure::param(name, AmountError::SubMsat)),
        },
        Some(Value::String(s)) => parse_amount(s).map_err(|e| RpcFailure::param(name, e))?,
        Some(other) => {
            return Err(RpcFailure::param(
                name,
                format!("expected an amount, got {other}"),
            ));
        }
    };
    if msat > MAX_MONEY_MSAT {
        return Err(RpcFailure::param(name, AmountError::TooLarge));
    }
    Ok(Some(msat))
}

/// A non-negative integer, from a JSON number or a string of digits.
fn integer(map: &Map<String, Value>, name: &str, max: u64) -> Result<Option<u64>, RpcFailure> {
    let v = match map.get(name) {
        None => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    match v {
        Some(v) if v <= max => Ok(Some(v)),
        Some(_) => Err(RpcFailure::param(name, format!("must be at most {max}"))),
        None => Err(RpcFailure::param(
            name,
            format!("expected a whole number >= 0, got {}", map[name]),
        )),
    }
}

fn boolean(map: &Map<String, Value>, name: &str) -> Result<Option<bool>, RpcFailure> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" => Ok(Some(true)),
        Some(Value::String(s)) if s == "false" => Ok(Some(false)),
        Some(other) => Err(RpcFailure::param(
            name,
            format!("expected true or false, got {other}"),
        )),
    }
}

pub fn rebalance(params: &Value) -> Result<RebalanceParams, RpcFailure> {
    let mut map = named(params, &REBALANCE_PARAMS)?;
    let amount_max = map
        .get("amount_msat")
        .is_some_and(|v| v.as_str().is_some_and(|s| s.trim() == "max"));
    if amount_max {
        map.remove("amount_msat");
    }
    let outgoing = string(&map, "outgoing")?
        .ok_or_else(|| RpcFailure::param("outgoing", "missing required parameter"))?;
    let incoming = string(&map, "incoming")?
        .ok_or_else(|| RpcFailure::param("incoming", "missing required parameter"))?;
    let amount_msat = amount(&map, "amount_msat")?;
    if amount_msat == Some(0) {
        return Err(RpcFailure::param("amount_msat", "must be more than 0"));
    }
    let retry_for = integer(&map, "retry_for", MAX_RETRY_FOR)?;
    if retry_for == Some(0) {
        return Err(RpcFailure::param("retry_for", "must be at least 1 second"));
    }
    let maxfeeppm = integer(&map, "maxfeeppm", 1_000_000)?;
    let exemptfee = amount(&map, "exemptfee")?;
    let dryrun = boolean(&map, "dryrun")?.unwrap_or(false);
    let maxparts = integer(&map, "maxparts", MAX_PARTS)?;
    if maxparts == Some(0) {
        return Err(RpcFailure::param("maxparts", "must be at least 1"));
    }
    Ok(RebalanceParams {
        outgoing,
        incoming,
        amount_msat,
        maxfeeppm,
        exemptfee,
        retry_for,
        dryrun,
        maxparts,
        amount_max,
    })
}

pub fn probe(params: &Value) -> Result<ProbeParams, RpcFailure> {
    let map = named(params, &PROBE_PARAMS)?;
    let outgoing = string(&map, "outgoing")?
        .ok_or_else(|| RpcFailure::param("outgoing", "missing required parameter"))?;
    let incoming = string(&map, "incoming")?
        .ok_or_else(|| RpcFailure::param("incoming", "missing required parameter"))?;
    let amount_msat = amount(&map, "amount_msat")?;
    if amount_msat == Some(0) {
        return Err(RpcFailure::param("amount_msat", "must be more than 0"));
    }
    let maxfeeppm = integer(&map, "maxfeeppm", 1_000_000)?;
    let exemptfee = amount(&map, "exemptfee")?;
    let maxparts = integer(&map, "maxparts", MAX_PARTS)?;
    if maxparts == Some(0) {
        return Err(RpcFailure::param("maxparts", "must be at least 1"));
    }
    Ok(ProbeParams {
        outgoing,
        incoming,
        amount_msat,
        maxfeeppm,
        exemptfee,
        maxparts,
    })
}

pub fn balances(params: &Value) -> Result<BalancesParams, RpcFailure> {
    let map = named(params, &BALANCES_PARAMS)?;
    Ok(BalancesParams {
        id: string(&map, "id")?,
        quote: boolean(&map, "quote")?.unwrap_or(false),
    })
}

pub fn liquidity(params: &Value) -> Result<LiquidityParams, RpcFailure> {
    let map = named(params, &LIQUIDITY_PARAMS)?;
    let short_channel_id = match string(&map, "short_channel_id")? {
        None => None,
        Some(s) => Some(
            s.parse()
                .map_err(|e| RpcFailure::param("short_channel_id", e))?,
        ),
    };
    Ok(LiquidityParams {
        short_channel_id,
        reset: boolean(&map, "reset")?.unwrap_or(false),
    })
}

/// A ratio such as rebalance.py's `feeratio` (`0.5`, as a number or a string) in millionths,
/// exactly: at most six decimals, at most 10.
pub fn ratio_millionths(map: &Map<String, Value>, name: &str) -> Result<Option<u32>, RpcFailure> {
    let text = match map.get(name) {
        None => return Ok(None),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(other) => {
            return Err(RpcFailure::param(
                name,
                format!("expected a number such as 0.5, got {other}"),
            ));
        }
    };
    let bad = || {
        RpcFailure::param(
            name,
            format!("expected a number from 0 to 10 with at most six decimals, got {text}"),
        )
    };
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
        || frac.len() > 6
        || int.len() > 2
    {
        return Err(bad());
    }
    let int: u32 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let frac: u32 = format!("{frac:0<6}").parse().map_err(|_| bad())?;
    let v = int * 1_000_000 + frac;
    if v > 10_000_000 {
        return Err(bad());
    }
    Ok(Some(v))
}

pub fn rebalanceall(params: &Value) -> Result<RebalanceallParams, RpcFailure> {
    let map = named(params, &REBALANCEALL_PARAMS)?;
    let target = integer(&map, "target", 100)?.map(|t| t as u8);
    Ok(RebalanceallParams {
        min_amount_msat: amount(&map, "min_amount")?,
        feeratio_millionths: ratio_millionths(&map, "feeratio")?,
        target_percent: target,
        budget_msat: amount(&map, "budget")?,
        dryrun: boolean(&map, "dryrun")?.unwrap_or(false),
        wait: boolean(&map, "wait")?.unwrap_or(false),
    })
}

pub fn rebalancestop(params: &Value) -> Result<(), RpcFailure> {
    named(params, &[]).map(|_| ())
}

pub fn rebalancereport(params: &Value) -> Result<Option<u64>, RpcFailure> {
    let map = named(params, &REPORT_PARAMS)?;
    match integer(&map, "days", 3650)? {
        Some(0) => Err(RpcFailure::param("days", "must be at least 1")),
        d => Ok(d),
    }
}

pub fn settings(params: &Value) -> Result<SettingsParams, RpcFailure> {
    let map = named(params, &SETTINGS_PARAMS)?;
    let p = SettingsParams {
        id: string(&map, "id")?,
        exclude: boolean(&map, "exclude")?,
        target_percent: integer(&map, "target", 100)?.map(|t| t as u8),
        clear: boolean(&map, "clear")?.unwrap_or(false),
    };
    if p.id.is_none() && (p.exclude.is_some() || p.target_percent.is_some() || p.clear) {
        return Err(RpcFailure::param(
            "id",
            "name the short_channel_id or peer id to set or clear",
        ));
    }
    if p.clear && (p.exclude.is_some() || p.target_percent.is_some()) {
        return Err(RpcFailure::param(
            "clear",
            "clear removes the settings; give it without exclude or target",
        ));
    }
    Ok(p)
}

/// `check`: whether `command` would accept `params` (lightningd's `check`, answered by
/// [`crate::front::check`]).
pub fn check(command: &str, params: &Value) -> Result<(), RpcFailure> {
    match command {
        "rebalance" => rebalance(params).map(|_| ()),
        "rebalance-probe" => probe(params).map(|_| ()),
        "balances" | "balances-table" => balances(params).map(|_| ()),
        "rebalance-liquidity" => liquidity(params).map(|_| ()),
        "rebalanceall" => rebalanceall(params).map(|_| ()),
        "rebalancestop" => rebalancestop(params),
        "rebalancereport" | "rebalancereport-table" => rebalancereport(params).map(|_| ()),
        "rebalance-settings" => settings(params).map(|_| ()),
        other => Err(RpcFailure::param(
            "command_to_check",
            format!("{other} is not a command of this plugin"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> RpcFailure {
        rebalance(&v).unwrap_err()
    }

    #[test]
    fn automatic_rebalancing_params() {
        let p = rebalanceall(&json!(["50000sat", "0.25"])).unwrap();
        assert_eq!(p.min_amount_msat, Some(50_000_000));
        assert_eq!(p.feeratio_millionths, Some(250_000));
        let p = rebalanceall(&json!({"feeratio": 0.5, "target": 60, "dryrun": true})).unwrap();
        assert_eq!(
            (p.feeratio_millionths, p.target_percent, p.dryrun),
            (Some(500_000), Some(60), true)
        );
        for (bad, name) in [
            (json!({"feeratio": "x"}), "feeratio"),
            (json!({"feeratio": -1}), "feeratio"),
            (json!({"feeratio": "0.1234567"}), "feeratio"),
            (json!({"feeratio": 11}), "feeratio"),
            (json!({"target": 101}), "target"),
            (json!({"budget": "lots"}), "budget"),
            (json!({"min_amount": -5}), "min_amount"),
        ] {
            let e = rebalanceall(&bad).unwrap_err();
            assert_eq!(e.code, -32602);
            assert!(
                e.message.starts_with(&format!("{name}:")),
                "{bad}: {}",
                e.message
            );
        }
        assert_eq!(rebalancereport(&json!([7])).unwrap(), Some(7));
        assert!(
            rebalancereport(&json!([0]))
                .unwrap_err()
                .message
                .starts_with("days:")
        );
        assert!(rebalancestop(&json!(["x"])).is_err());
        let s = settings(&json!(["1x1x1", true])).unwrap();
        assert_eq!((s.exclude, s.clear), (Some(true), false));
        assert!(
            settings(&json!({"exclude": true}))
                .unwrap_err()
                .message
                .starts_with("id:")
        );
        assert!(settings(&json!({"id": "1x1x1", "clear": true, "target": 5})).is_err());
    }

    #[test]
    fn positional_and_keyword_agree() {
        let a = rebalance(&json!([
            "1x1x0",
            "2x1x0",
            "100000sat",
            500,
            "2000msat",
            30,
            true
        ]))
        .unwrap();
        let b = rebalance(
            &json!({"outgoing": "1x1x0", "incoming": "2x1x0", "amount_msat": 100_000_000u64,
            "maxfeeppm": "500", "exemptfee": 2000, "retry_for": 30, "dryrun": "true"}),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.amount_msat, Some(100_000_000));
        let c = rebalance(&json!(["1x1x0", "2x1x0"])).unwrap();
        assert_eq!((c.amount_msat, c.maxfeeppm, c.dryrun), (None, None, false));
        let d = rebalance(&json!(["1x1x0", "2x1x0", null, 10])).unwrap();
        assert_eq!((d.amount_msat, d.maxfeeppm), (None, Some(10)));
    }

    #[test]
    fn errors_name_the_parameter() {
        let cases = [
            (json!([]), "outgoing"),
            (json!(["1x1x0"]), "incoming"),
            (json!(["1x1x0", "2x1x0", 0]), "amount_msat"),
            (json!(["1x1x0", "2x1x0", -5]), "amount_msat"),
            (json!(["1x1x0", "2x1x0", "12abc"]), "amount_msat"),
            (json!(["1x1x0", "2x1x0", "22000000btc"]), "amount_msat"),
            (json!(["1x1x0", "2x1x0", 1.5]), "amount_msat"),
            (json!(["1x1x0", "2x1x0", 1000, -1]), "maxfeeppm"),
            (json!(["1x1x0", "2x1x0", 1000, 10, "lots"]), "exemptfee"),
            (json!(["1x1x0", "2x1x0", 1000, 10, 10, 0]), "retry_for"),
            (json!(["1x1x0", "2x1x0", 1000, 10, 10, 99999]), "retry_for"),
            (
                json!(["1x1x0", "2x1x0", 1000, 10, 10, 10, "maybe"]),
                "dryrun",
            ),
            (
                json!({"outgoing": "1x1x0", "incoming": "2x1x0", "maxparts": 0}),
                "maxparts",
            ),
            (
                json!({"outgoing": "1x1x0", "incoming": "2x1x0", "maxparts": 17}),
                "maxparts",
            ),
            (
                json!({"outgoing": "1x1x0", "incoming": "2x1x0", "amount": 5}),
                "amount",
            ),
            (json!({"outgoing": 5, "incoming": "2x1x0"}), "outgoing"),
            (json!({"outgoing": "  ", "incoming": "2x1x0"}), "outgoing"),
        ];
        for (params, name) in cases {
            let e = err(params.clone());
            assert_eq!(e.code, -32602, "{params}");
            assert!(
                e.message.starts_with(&format!("{name}: ")),
                "{params}: {}",
                e.message
            );
        }
        let e = err(json!(["a", "b", 1, 1, 1, 1, true, 2, "extra"]));
        assert!(e.message.contains("too many parameters"));
    }

    #[test]
    fn probe_params_and_amount_max() {
        let p = probe(&json!(["1x1x0", "2x1x0"])).unwrap();
        assert_eq!((p.amount_msat, p.maxparts), (None, None));
        let p = probe(&json!({"outgoing": "1x1x0", "incoming": "2x1x0",
            "amount_msat": "50000sat", "maxparts": 2}))
        .unwrap();
        assert_eq!((p.amount_msat, p.maxparts), (Some(50_000_000), Some(2)));
        for (bad, name) in [
            (json!(["1x1x0"]), "incoming"),
            (json!(["1x1x0", "2x1x0", 0]), "amount_msat"),
            (json!(["1x1x0", "2x1x0", "max"]), "amount_msat"),
            (json!(["1x1x0", "2x1x0", 5, 10, 10, 0]), "maxparts"),
        ] {
            let e = probe(&bad).unwrap_err();
            assert!(
                e.message.starts_with(&format!("{name}: ")),
                "{bad}: {}",
                e.message
            );
        }
        let r = rebalance(&json!({"outgoing": "1x1x0", "incoming": "2x1x0", "amount_msat": "max"}))
            .unwrap();
        assert!(r.amount_max && r.amount_msat.is_none());
        assert!(!rebalance(&json!(["1x1x0", "2x1x0", 5])).unwrap().amount_max);
    }

    #[test]
    fn balances_filter() {
        assert_eq!(balances(&json!([])).unwrap().id, None);
        assert_eq!(
            balances(&json!({"id": "1x1x0"})).unwrap().id.as_deref(),
            Some("1x1x0")
        );
        assert!(balances(&json!({"peer": "x"})).is_err());
    }
}

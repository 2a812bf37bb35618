//! lightningd's parameter handling (common/json_param.c): positional or keyword params, its
//! error codes and messages (developer-mode wording, as pyln-testing runs lightningd), and the
//! JSON-RPC error type every method returns.

use serde_json::{Value, json};
use std::collections::HashMap;

pub const JSONRPC2_INVALID_REQUEST: i64 = -32600;
pub const JSONRPC2_METHOD_NOT_FOUND: i64 = -32601;
pub const JSONRPC2_INVALID_PARAMS: i64 = -32602;
pub const LIGHTNINGD: i64 = -1;
pub const PLUGIN_TERMINATED: i64 = -4;
pub const PAY_IN_PROGRESS: i64 = 200;
pub const PAY_RHASH_ALREADY_USED: i64 = 201;
pub const PAY_DESTINATION_PERM_FAIL: i64 = 203;
pub const PAY_TRY_OTHER_ROUTE: i64 = 204;
pub const PAY_NO_SUCH_PAYMENT: i64 = 208;
pub const INVOICE_LABEL_ALREADY_EXISTS: i64 = 900;
pub const INVOICE_PREIMAGE_ALREADY_EXISTS: i64 = 901;
pub const INVOICE_NOT_FOUND: i64 = 905;
pub const INVOICE_STATUS_UNEXPECTED: i64 = 906;

/// A JSON-RPC error object: `{code, message, data?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        RpcError::new(JSONRPC2_INVALID_PARAMS, message)
    }

    /// `command_fail_badparam` in developer mode: `name: msg: invalid token '<json>'`.
    pub fn badparam(name: &str, msg: &str, tok: &Value) -> Self {
        RpcError::invalid(format!("{name}: {msg}: invalid token '{tok}'"))
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({"code": self.code, "message": self.message});
        if let Some(d) = &self.data {
            v["data"] = d.clone();
        }
        v
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

pub type RpcResult = Result<Value, RpcError>;

/// Named parameter values after matching positional or keyword params against a spec.
#[derive(Debug, Default)]
pub struct Params {
    vals: HashMap<String, Value>,
}

/// Matches `params` (array or object, or null for none) against `spec` (name, required),
/// as lightningd's `param()` does.
pub fn parse(params: &Value, spec: &[(&str, bool)]) -> Result<Params, RpcError> {
    let mut vals = HashMap::new();
    match params {
        Value::Null => {}
        Value::Array(items) => {
            if items.len() > spec.len() {
                return Err(RpcError::invalid(format!(
                    "too many parameters: got {}, expected {}",
                    items.len(),
                    spec.len()
                )));
            }
            for (v, (name, _)) in items.iter().zip(spec) {
                if !v.is_null() {
                    vals.insert(name.to_string(), v.clone());
                }
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                if !spec.iter().any(|(n, _)| n == k) {
                    return Err(RpcError::invalid(format!(
                        "unknown parameter: {k}, this may be caused by a failure to autodetect \
                         key=value-style parameters. Please try using the -k flag and explicit \
                         key=value pairs of parameters."
                    )));
                }
                if !v.is_null() {
                    vals.insert(k.clone(), v.clone());
                }
            }
        }
        _ => {
            return Err(RpcError::new(
                JSONRPC2_INVALID_REQUEST,
                "Expected array or object for params",
            ));
        }
    }
    for (name, required) in spec {
        if *required && !vals.contains_key(*name) {
            return Err(RpcError::invalid(format!(
                "missing required parameter: {name}"
            )));
        }
    }
    Ok(Params { vals })
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.vals.get(name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.vals.contains_key(name)
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(RpcError::badparam(
                name,
                "should be a string (without \\u)",
                v,
            )),
        }
    }

    /// A label: lightningd accepts a string or a number (kept as its text).
    pub fn label(&self, name: &str) -> Result<Option<String>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(v) => Err(RpcError::badparam(name, "should be a string or number", v)),
        }
    }

    pub fn u64(&self, name: &str) -> Result<Option<u64>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => number_u64(v)
                .map(Some)
                .ok_or_else(|| RpcError::badparam(name, "should be an unsigned 64 bit integer", v)),
        }
    }

    pub fn u32(&self, name: &str) -> Result<Option<u32>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => number_u64(v)
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| RpcError::badparam(name, "should be an unsigned 32 bit integer", v)),
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
            Some(v) => Err(RpcError::badparam(name, "should be 'true' or 'false'", v)),
        }
    }

    pub fn msat(&self, name: &str) -> Result<Option<u64>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => parse_msat(v)
                .map(Some)
                .ok_or_else(|| RpcError::badparam(name, "should be a millisatoshi amount", v)),
        }
    }

    pub fn node_id(&self, name: &str) -> Result<Option<String>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.as_str() {
                Some(s) if is_node_id(s) => Ok(Some(s.to_ascii_lowercase())),
                _ => Err(RpcError::badparam(name, "should be a node id", v)),
            },
        }
    }

    pub fn scid(&self, name: &str) -> Result<Option<String>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.as_str().and_then(normalize_scid) {
                Some(s) => Ok(Some(s)),
                None => Err(RpcError::badparam(
                    name,
                    "should be a short_channel_id of form NxNxN",
                    v,
                )),
            },
        }
    }

    pub fn sha256(&self, name: &str) -> Result<Option<String>, RpcError> {
        self.hex32(name, "should be a 32 byte hex value")
    }

    pub fn hex32(&self, name: &str, msg: &str) -> Result<Option<String>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.as_str() {
                Some(s) if is_hex_len(s, 64) => Ok(Some(s.to_ascii_lowercase())),
                _ => Err(RpcError::badparam(name, msg, v)),
            },
        }
    }
}

/// A token's raw text as lightningd's `json_strdup` / `param_string` take it: a string's text
/// between its quotes (escapes as a JSON encoder writes them), anything else as written.
pub fn raw_text(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let q = serde_json::to_string(s).unwrap_or_default();
            q[1..q.len() - 1].to_string()
        }
        other => other.to_string(),
    }
}

/// A JSON number, or a string of digits, as u64 (lightningd's json_to_u64 accepts both).
pub fn number_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

/// lightningd's `parse_amount_msat`: integer msat, or a string `N`, `Nmsat`, `Nsat`, `N.Nsat`
/// (at most 3 decimals), `N.Nbtc` (at most 11 decimals).
pub fn parse_msat(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => parse_msat_str(s),
        _ => None,
    }
}

pub fn parse_msat_str(s: &str) -> Option<u64> {
    fn decimal(s: &str, max_decimals: usize, scale_exp: u32) -> Option<u64> {
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, f),
            None => (s, ""),
        };
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > max_decimals
            || (s.contains('.') && frac.is_empty())
        {
            return None;
        }
        let scale = 10u64.checked_pow(scale_exp)?;
        let w: u64 = whole.parse().ok()?;
        let mut f: u64 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        f = f.checked_mul(10u64.checked_pow(scale_exp - frac.len() as u32)?)?;
        w.checked_mul(scale)?.checked_add(f)
    }
    if let Some(n) = s.strip_suffix("msat") {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return n.parse().ok();
    }
    if let Some(n) = s.strip_suffix("sat") {
        return decimal(n, 3, 3);
    }
    if let Some(n) = s.strip_suffix("btc") {
        return decimal(n, 11, 11);
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    None
}

pub fn is_hex_len(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A node id as lightningd parses it: 33 bytes hex, starting 02 or 03.
pub fn is_node_id(s: &str) -> bool {
    is_hex_len(s, 66) && (s.starts_with("02") || s.starts_with("03"))
}

/// `BxTxO` with each part a decimal within its BOLT 7 width; `None` otherwise.
pub fn normalize_scid(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split('x').collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let b: u64 = parts[0].parse().ok()?;
    let t: u64 = parts[1].parse().ok()?;
    let o: u64 = parts[2].parse().ok()?;
    if b >= 1 << 24 || t >= 1 << 24 || o >= 1 << 16 {
        return None;
    }
    Some(format!("{b}x{t}x{o}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_and_keyword() {
        let spec = [("a", true), ("b", false)];
        let p = parse(&json!([1, 2]), &spec).unwrap();
        assert_eq!(p.u64("b").unwrap(), Some(2));
        let p = parse(&json!({"a": 1}), &spec).unwrap();
        assert_eq!(p.u64("b").unwrap(), None);
        let e = parse(&json!([1, 2, 3]), &spec).unwrap_err();
        assert_eq!(e.message, "too many parameters: got 3, expected 2");
        let e = parse(&json!({"b": 1}), &spec).unwrap_err();
        assert_eq!(e.message, "missing required parameter: a");
        let e = parse(&json!({"a": 1, "c": 1}), &spec).unwrap_err();
        assert!(e.message.starts_with("unknown parameter: c"));
        assert_eq!(e.code, -32602);
    }

    #[test]
    fn amounts() {
        assert_eq!(parse_msat(&json!(5)), Some(5));
        assert_eq!(parse_msat(&json!("5msat")), Some(5));
        assert_eq!(parse_msat(&json!("5sat")), Some(5000));
        assert_eq!(parse_msat(&json!("1.5sat")), Some(1500));
        assert_eq!(parse_msat(&json!("0.001btc")), Some(100_000_000));
        assert_eq!(parse_msat(&json!("12")), Some(12));
        assert_eq!(parse_msat(&json!("abc")), None);
        assert_eq!(parse_msat(&json!(-1)), None);
        assert_eq!(parse_msat(&json!("1.sat")), None);
    }

    #[test]
    fn badparam_wording() {
        let e = RpcError::badparam(
            "amount_msat",
            "should be a millisatoshi amount",
            &json!("x"),
        );
        assert_eq!(
            e.message,
            "amount_msat: should be a millisatoshi amount: invalid token '\"x\"'"
        );
    }

    #[test]
    fn scids() {
        assert_eq!(normalize_scid("103x1x0").as_deref(), Some("103x1x0"));
        assert_eq!(normalize_scid("103x1"), None);
        assert_eq!(normalize_scid("103x1xz"), None);
    }
}

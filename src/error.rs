//! Errors the plugin returns, as JSON-RPC errors with CLN's codes.
//!
//! cln-plugin forwards a handler error as-is when its `Display` is a JSON object
//! `{code, message, data}`; [`RpcFailure`] renders exactly that.

use serde_json::{Value, json};
use std::fmt;

/// JSON-RPC: invalid parameters (the message names the parameter).
pub const INVALID_PARAMS: i32 = -32602;
/// A plugin-side failure that is nobody's bad input.
pub const PLUGIN_ERROR: i32 = -3;
/// sendpay/waitsendpay: the payment is still in flight.
pub const PAY_IN_PROGRESS: i32 = 200;
/// A failure along the route (try another).
pub const PAY_TRY_OTHER_ROUTE: i32 = 204;
/// No route could be found.
pub const PAY_ROUTE_NOT_FOUND: i32 = 205;
/// Every route found costs more than allowed.
pub const PAY_ROUTE_TOO_EXPENSIVE: i32 = 206;
/// Gave up retrying (time ran out, or a failure that retrying cannot fix).
pub const PAY_STOPPED_RETRYING: i32 = 210;

/// An error for the caller of `rebalance` or `balances`.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcFailure {
    pub code: i32,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcFailure {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        RpcFailure {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Bad input: names the parameter first, and says so in `data.parameter` too.
    pub fn param(name: &str, reason: impl fmt::Display) -> Self {
        RpcFailure {
            code: INVALID_PARAMS,
            message: format!("{name}: {reason}"),
            data: Some(json!({"parameter": name})),
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({"code": self.code, "message": self.message});
        if let Some(d) = &self.data {
            v["data"] = d.clone();
        }
        v
    }
}

impl fmt::Display for RpcFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl std::error::Error for RpcFailure {}

/// A lightningd RPC error seen while working: reported as a plugin error that says which call
/// failed and what lightningd said.
pub fn from_lightningd(call: &str, e: &cln_rpc::RpcError) -> RpcFailure {
    let mut f = RpcFailure::new(
        PLUGIN_ERROR,
        format!("lightningd's {call} failed: {}", e.message),
    );
    f.data = Some(
        json!({"call": call, "code": e.code, "lightningd_message": e.message, "lightningd_data": e.data}),
    );
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_json_object() {
        let e = RpcFailure::param("amount_msat", "must be more than 0");
        let v: Value = serde_json::from_str(&e.to_string()).unwrap();
        assert_eq!(v["code"], -32602);
        assert_eq!(v["message"], "amount_msat: must be more than 0");
        assert_eq!(v["data"]["parameter"], "amount_msat");
    }
}

//! lightningd's `check` for our commands, which cln-plugin 0.7 cannot answer: the layer answers
//! it itself, validating the params exactly as the command would, nothing run. Without it
//! lightningd logs UNUSUAL "Plugin does not support check command" on every `lightning-cli
//! check` (and pyln-testing checks every call it makes).

use serde_json::{Value, json};

/// Validates the params of `command` (`Ok` if the command would accept them).
pub type Checker = fn(&str, &Value) -> Result<(), crate::error::RpcFailure>;

/// The params of a `check` request without the command's name: `(name, params)`.
fn split_check(params: &Value) -> Option<(String, Value)> {
    match params {
        Value::Object(m) => {
            let name = m.get("command_to_check")?.as_str()?.to_string();
            let mut rest = m.clone();
            rest.remove("command_to_check");
            Some((name, Value::Object(rest)))
        }
        Value::Array(a) => {
            let name = a.first()?.as_str()?.to_string();
            Some((name, Value::Array(a[1..].to_vec())))
        }
        _ => None,
    }
}

/// The answer to one `check` request.
pub fn answer_check(request: &Value, checker: Checker) -> Value {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let Some((name, params)) = request.get("params").and_then(split_check) else {
        return json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602,
            "message": "command_to_check: missing"}});
    };
    match checker(&name, &params) {
        Ok(()) => json!({"jsonrpc": "2.0", "id": id, "result": {"command_to_check": name}}),
        Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": e.to_json()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RpcFailure;

    fn checker(name: &str, params: &Value) -> Result<(), RpcFailure> {
        match name {
            "rebalance" => crate::params::rebalance(params).map(|_| ()),
            _ => Err(RpcFailure::param(
                "command_to_check",
                format!("unknown command {name}"),
            )),
        }
    }

    #[test]
    fn check_answers_like_the_command_would() {
        let ok = answer_check(
            &json!({"id": "x", "method": "check", "params": {"command_to_check": "rebalance",
                "outgoing": "1x1x1", "incoming": "2x2x2"}}),
            checker,
        );
        assert_eq!(ok["result"]["command_to_check"], "rebalance");
        let bad = answer_check(
            &json!({"id": 7, "method": "check", "params": ["rebalance", "1x1x1", "2x2x2", "lots"]}),
            checker,
        );
        assert_eq!(bad["id"], 7);
        assert_eq!(bad["error"]["code"], -32602);
        assert!(
            bad["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("amount_msat:")
        );
        let none = answer_check(&json!({"id": 1, "method": "check", "params": {}}), checker);
        assert_eq!(none["error"]["code"], -32602);
    }
}

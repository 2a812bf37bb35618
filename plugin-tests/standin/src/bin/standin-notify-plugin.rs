//! `standin-notify-plugin`: a minimal CLN plugin (std and serde_json only) for the stand-in's
//! own Rust tests of the plugin protocol: it sends `message`/`progress` notifications while a
//! command runs, a malformed one, custom topics, reports `LIGHTNINGD_VERSION`, and disables
//! itself at getmanifest (env `STANDIN_TP_DISABLE_MANIFEST`) or init (`--plugin-opt
//! tp-disable=why`). Not a model of any real plugin.
//!
//! Methods: `tp-notify [count]` (an info and a debug message, `count` progress steps, a
//! declared and an undeclared custom notification, then `{"id": <the id it was called with>}`),
//! `tp-badnotify` (a `message` without `params.id`: lightningd kills the plugin),
//! `tp-version`.

use serde_json::{Value, json};
use std::io::Write;

fn send(out: &mut impl Write, v: &Value) {
    let mut b = serde_json::to_vec(v).expect("json");
    b.extend_from_slice(b"\n\n");
    // A closed stdout means lightningd is gone: nothing left to do.
    if out.write_all(&b).and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

fn manifest() -> Value {
    json!({
        "options": [{"name": "tp-disable", "type": "string", "default": "",
                     "description": "disable the plugin at init with this reason"}],
        "rpcmethods": [
            {"name": "tp-notify", "usage": "[count]", "description": "notifications"},
            {"name": "tp-badnotify", "usage": "", "description": "a message without id"},
            {"name": "tp-version", "usage": "", "description": "LIGHTNINGD_VERSION"},
        ],
        "subscriptions": ["shutdown"],
        "hooks": [],
        "notifications": [{"method": "tp-topic"}],
        "dynamic": false,
    })
}

fn main() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    let stream = serde_json::Deserializer::from_reader(stdin.lock()).into_iter::<Value>();
    for msg in stream {
        let Ok(msg) = msg else { return };
        let method = msg["method"].as_str().unwrap_or_default();
        let Some(id) = msg.get("id").cloned() else {
            if method == "shutdown" {
                return;
            }
            continue;
        };
        let result = match method {
            "getmanifest" => match std::env::var("STANDIN_TP_DISABLE_MANIFEST") {
                Ok(why) => json!({"disable": why}),
                Err(_) => manifest(),
            },
            "init" => match msg["params"]["options"]["tp-disable"].as_str() {
                Some(why) if !why.is_empty() => json!({"disable": why}),
                _ => json!({}),
            },
            "tp-notify" => {
                let p = &msg["params"];
                let count = p
                    .get("count")
                    .or_else(|| p.get(0))
                    .and_then(Value::as_u64)
                    .unwrap_or(3);
                let note = |method: &str, params: Value| json!({"jsonrpc": "2.0", "method": method, "params": params});
                send(
                    &mut out,
                    &note(
                        "message",
                        json!({"id": id, "level": "info", "message": "starting"}),
                    ),
                );
                send(
                    &mut out,
                    &note(
                        "message",
                        json!({"id": id, "level": "debug", "message": "details"}),
                    ),
                );
                for num in 0..count {
                    send(
                        &mut out,
                        &note(
                            "progress",
                            json!({"id": id, "num": num, "total": count,
                                   "stage": {"num": 0, "total": 1}}),
                        ),
                    );
                }
                send(&mut out, &note("tp-topic", json!({"payload": 1})));
                send(&mut out, &note("tp-undeclared", json!({"payload": 2})));
                json!({"id": id})
            }
            "tp-badnotify" => {
                send(
                    &mut out,
                    &json!({"jsonrpc": "2.0", "method": "message",
                            "params": {"level": "info", "message": "no id"}}),
                );
                json!({})
            }
            "tp-version" => {
                json!({"LIGHTNINGD_VERSION": std::env::var("LIGHTNINGD_VERSION").ok()})
            }
            other => {
                send(
                    &mut out,
                    &json!({"jsonrpc": "2.0", "id": id,
                            "error": {"code": -32601, "message": format!("no {other}")}}),
                );
                continue;
            }
        };
        send(
            &mut out,
            &json!({"jsonrpc": "2.0", "id": id, "result": result}),
        );
    }
}

//! The JSON-RPC unix socket (lightningd/jsonrpc.c): many connections at once, many requests per
//! connection handled concurrently (a blocking waitsendpay holds up nothing else), answers
//! written as they complete. Dispatch: lightningd's own methods (served by the network model),
//! waitsendpay (which waits here), help/stop/plugin, the dev- control methods, askrene's, and
//! the plugin's methods (forwarded). `notifications` is handled in the connection's order, as
//! lightningd does: a request sent after `{"enable": true}` gets the plugin's `message` and
//! `progress` notifications for it, with the id rewritten back to the caller's.

use crate::daemon::Shared;
use crate::jsonrpc::{JsonReader, frame, response};
use crate::plugin::NotifySink;
use crate::simnet::askrene::ASKRENE_METHODS;
use crate::simnet::control::CONTROL_METHODS;
use crate::simnet::params::{
    self, JSONRPC2_INVALID_REQUEST, JSONRPC2_METHOD_NOT_FOUND, LIGHTNINGD, PAY_IN_PROGRESS,
    RpcError,
};
use crate::simnet::pay::WaitState;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

/// lightningd's built-in methods served here, with their usage (for `help`).
const BUILTIN: &[(&str, &str)] = &[
    ("getinfo", ""),
    ("listpeerchannels", "[id] [short_channel_id] [channel_id]"),
    ("listpeers", "[id] [level]"),
    ("listchannels", "[short_channel_id] [source] [destination]"),
    ("listnodes", "[id]"),
    ("listfunds", "[spent]"),
    (
        "invoice",
        "amount_msat label description [expiry] [fallbacks] [preimage] [exposeprivatechannels] \
         [cltv] [deschashonly]",
    ),
    (
        "listinvoices",
        "[label] [invstring] [payment_hash] [offer_id] [index] [start] [limit]",
    ),
    ("delinvoice", "label status [desconly]"),
    ("decode", "string"),
    ("decodepay", "bolt11 [description]"),
    (
        "sendpay",
        "route payment_hash [label] [amount_msat] [bolt11] [payment_secret] [partid] \
         [localinvreqid] [groupid] [payment_metadata] [description]",
    ),
    ("waitsendpay", "payment_hash [timeout] [partid] [groupid]"),
    (
        "listsendpays",
        "[bolt11] [payment_hash] [status] [index] [start] [limit]",
    ),
    (
        "listforwards",
        "[status] [in_channel] [out_channel] [index] [start] [limit]",
    ),
    (
        "setchannel",
        "id [feebase] [feeppm] [htlcmin] [htlcmax] [enforcedelay] [ignorefeelimits]",
    ),
    ("addgossip", "message"),
    ("datastore", "key [string] [hex] [mode] [generation]"),
    ("listdatastore", "[key]"),
    ("deldatastore", "key [generation]"),
    ("datastoreusage", "[key]"),
    ("help", "[command]"),
    ("stop", ""),
    ("plugin", "subcommand [plugin] [options]"),
    ("notifications", "enable"),
];

/// A line written to a connection, with an optional ack once it is flushed.
type Outgoing = (Vec<u8>, Option<oneshot::Sender<()>>);

pub async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = stream.into_split();
            let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
            let writer = tokio::spawn(async move {
                while let Some((buf, ack)) = rx.recv().await {
                    if wr.write_all(&buf).await.is_err() {
                        break;
                    }
                    let _ = wr.flush().await;
                    if let Some(a) = ack {
                        let _ = a.send(());
                    }
                }
            });
            let mut reader = JsonReader::new(rd);
            // jcon->notifications_enabled: taken by each command as it is parsed.
            let mut notifications = false;
            loop {
                match reader.next().await {
                    Ok(Some(req)) if req.get("method") == Some(&json!("notifications")) => {
                        let r = notifications_cmd(&shared, &req, &mut notifications);
                        let _ = tx.send((frame(&r), None));
                    }
                    Ok(Some(req)) => {
                        let shared = shared.clone();
                        let tx = tx.clone();
                        let notify = notifications;
                        tokio::spawn(async move { handle(shared, req, tx, notify).await });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let r = json!({"jsonrpc": "2.0", "id": null, "error": {
                            "code": JSONRPC2_INVALID_REQUEST, "message": e.to_string()}});
                        let _ = tx.send((frame(&r), None));
                        break;
                    }
                }
            }
            drop(tx);
            let _ = writer.await;
        });
    }
}

/// A request's id, method and params, or the error response lightningd answers a malformed one
/// with (with id null when the request has no usable id).
fn check_request(req: &Value) -> Result<(Value, String, Value), Value> {
    let invalid =
        |id: &Value, msg: &str| response(id, Err(RpcError::new(JSONRPC2_INVALID_REQUEST, msg)));
    let Some(id) = req.get("id").filter(|i| i.is_string() || i.is_number()) else {
        return Err(invalid(&Value::Null, "No id"));
    };
    let fail = |msg: &str| Err(invalid(id, msg));
    if req.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return fail("jsonrpc: \"2.0\" must be specified in the request");
    }
    let Some(method) = req.get("method") else {
        return fail("No method");
    };
    let Some(params) = req.get("params") else {
        return fail("No params");
    };
    let method = method.as_str().unwrap_or("").to_string();
    Ok((id.clone(), method, params.clone()))
}

/// `notifications enable`: switches this connection's notifications for the requests that
/// follow it.
fn notifications_cmd(shared: &Arc<Shared>, req: &Value, enabled: &mut bool) -> Value {
    let (id, _, params) = match check_request(req) {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    shared.log(
        "debug",
        "jsonrpc",
        &format!("notifications {params} (id {id})"),
    );
    let result = params::parse(&params, &[("enable", true)]).and_then(|p| {
        *enabled = p.bool("enable")?.expect("required");
        Ok(json!({}))
    });
    response(&id, result)
}

/// Where the plugin's `message`/`progress` for this caller's request go (`plugin_notify_cb`):
/// the same notification, its `params.id` replaced by the caller's id, on the caller's
/// connection.
fn notify_sink(tx: &mpsc::UnboundedSender<Outgoing>, caller_id: &Value) -> NotifySink {
    let tx = tx.clone();
    let caller_id = caller_id.clone();
    Arc::new(move |method: &str, mut params: Value| {
        // The id keeps its place among the params (lightningd rewrites it in place).
        params["id"] = caller_id.clone();
        let n = json!({"jsonrpc": "2.0", "method": method, "params": params});
        let _ = tx.send((frame(&n), None));
    })
}

async fn handle(
    shared: Arc<Shared>,
    req: Value,
    tx: mpsc::UnboundedSender<Outgoing>,
    send_notifications: bool,
) {
    let (id, method, params) = match check_request(&req) {
        Ok(r) => r,
        Err(answer) => {
            let _ = tx.send((frame(&answer), None));
            return;
        }
    };
    let result = {
        let brief = {
            let s = params.to_string();
            if s.len() > 300 {
                let cut = (0..=300)
                    .rev()
                    .find(|&i| s.is_char_boundary(i))
                    .unwrap_or(0);
                format!("{}...", &s[..cut])
            } else {
                s
            }
        };
        shared.log("debug", "jsonrpc", &format!("{method} {brief} (id {id})"));
        if method == "stop" {
            if let Err(e) = params::parse(&params, &[]) {
                let _ = tx.send((frame(&response(&id, Err(e))), None));
                return;
            }
            shared.log("unusual", "lightningd", "JSON-RPC shutdown");
            crate::daemon::shutdown(&shared).await;
            let (ack, done) = oneshot::channel();
            let r = response(&id, Ok(json!({"result": "Shutdown complete"})));
            let _ = tx.send((frame(&r), Some(ack)));
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), done).await;
            shared.stop.notify_one();
            return;
        }
        if let Some(plugin) = shared.plugin()
            && plugin.manifest.rpcmethods.iter().any(|m| m.name == method)
        {
            let sink = send_notifications.then(|| notify_sink(&tx, &id));
            let resp = plugin.forward(&req, sink).await;
            let _ = tx.send((frame(&resp), None));
            return;
        }
        let result = dispatch(&shared, &method, &params).await;
        match req.get("filter") {
            Some(f) => result.map(|v| apply_filter(v, f)),
            None => result,
        }
    };
    let _ = tx.send((frame(&response(&id, result)), None));
}

/// lightningd's field filtering (doc/lightningd-rpc.7.md, common/json_filter.c): a template
/// of the result with `true` for each member to keep; an array holds one template applied
/// to every element. Members the template does not name are dropped.
pub fn apply_filter(v: Value, filter: &Value) -> Value {
    match (v, filter) {
        (Value::Object(map), Value::Object(f)) => Value::Object(
            map.into_iter()
                .filter_map(|(k, v)| match f.get(&k) {
                    Some(Value::Bool(true)) => Some((k, v)),
                    Some(sub @ (Value::Object(_) | Value::Array(_))) => {
                        Some((k, apply_filter(v, sub)))
                    }
                    _ => None,
                })
                .collect(),
        ),
        (Value::Array(items), Value::Array(f)) if f.len() == 1 => {
            Value::Array(items.into_iter().map(|v| apply_filter(v, &f[0])).collect())
        }
        (v, _) => v,
    }
}

async fn dispatch(shared: &Arc<Shared>, method: &str, params: &Value) -> Result<Value, RpcError> {
    match method {
        "waitsendpay" => return waitsendpay(shared, params).await,
        "help" => return help(shared, params),
        "plugin" => return plugin_cmd(shared, params),
        _ => {}
    }
    let outcome = {
        let mut net = shared.net.lock().expect("lock");
        net.call(method, params)
    };
    match outcome {
        Some(Ok((v, events))) => {
            shared.handle_events(events);
            Ok(v)
        }
        Some(Err(e)) => {
            // What happened behind an error answer (a BROKEN log line, a failure's notice).
            let events = shared.net.lock().expect("lock").take_events();
            shared.handle_events(events);
            Err(e)
        }
        None => Err(RpcError::new(
            JSONRPC2_METHOD_NOT_FOUND,
            format!("Unknown command '{method}'"),
        )),
    }
}

async fn waitsendpay(shared: &Arc<Shared>, params: &Value) -> Result<Value, RpcError> {
    let mut changed = shared.changed.subscribe();
    let (state, timeout) = shared.net.lock().expect("lock").waitsendpay_check(params)?;
    let pid = match state {
        WaitState::Done(r) => return r,
        WaitState::Pending(pid) => pid,
    };
    let deadline =
        timeout.map(|t| tokio::time::Instant::now() + std::time::Duration::from_secs(t.into()));
    loop {
        let woke = match deadline {
            Some(d) => tokio::time::timeout_at(d, changed.changed()).await.is_ok(),
            None => changed.changed().await.is_ok(),
        };
        if !woke {
            return Err(RpcError::new(PAY_IN_PROGRESS, "Timed out while waiting"));
        }
        if let WaitState::Done(r) = shared.net.lock().expect("lock").wait_state(pid, true) {
            return r;
        }
    }
}

fn help(shared: &Arc<Shared>, params: &Value) -> Result<Value, RpcError> {
    let p = params::parse(params, &[("command", false)])?;
    let only = p.string("command")?;
    let askrene: &[(&str, &str)] = if shared.net.lock().expect("lock").askrene.is_some() {
        ASKRENE_METHODS
    } else {
        &[]
    };
    let mut cmds: Vec<(String, String)> = BUILTIN
        .iter()
        .chain(CONTROL_METHODS)
        .chain(askrene)
        .map(|(n, u)| (n.to_string(), u.to_string()))
        .collect();
    if let Some(plugin) = shared.plugin() {
        for m in &plugin.manifest.rpcmethods {
            cmds.push((m.name.clone(), m.usage.clone()));
        }
    }
    cmds.sort();
    if let Some(c) = &only {
        cmds.retain(|(n, _)| n == c);
        if cmds.is_empty() {
            return Err(RpcError::new(
                JSONRPC2_METHOD_NOT_FOUND,
                format!("Unknown command {c}"),
            ));
        }
    }
    let list: Vec<Value> = cmds
        .into_iter()
        .map(|(n, u)| json!({"command": format!("{n} {u}")}))
        .collect();
    Ok(json!({"help": list, "format-hint": "simple"}))
}

fn plugin_cmd(shared: &Arc<Shared>, params: &Value) -> Result<Value, RpcError> {
    let p = params::parse(
        params,
        &[("subcommand", true), ("plugin", false), ("options", false)],
    )?;
    let sub = p.string("subcommand")?.unwrap_or_default();
    match sub.as_str() {
        "list" => {
            let plugins: Vec<Value> = shared
                .plugin()
                .map(|h| {
                    vec![json!({"name": h.path.to_string_lossy(), "active": true,
                                "dynamic": h.manifest.dynamic})]
                })
                .unwrap_or_default();
            Ok(json!({"command": "list", "plugins": plugins}))
        }
        "start" | "stop" | "rescan" | "startdir" => Err(RpcError::new(
            LIGHTNINGD,
            "the stand-in runs the one plugin given on its command line; restart it instead",
        )),
        _ => Err(RpcError::badparam(
            "subcommand",
            "should be one of: start, stop, startdir, rescan, list",
            &json!(sub),
        )),
    }
}

#[cfg(test)]
mod filter_tests {
    use super::apply_filter;
    use serde_json::json;

    #[test]
    fn keeps_only_what_the_template_names() {
        let v = json!({"channels": [{"source": "a", "public": true, "fee": 1},
                                    {"source": "b", "public": false, "fee": 2}], "other": 3});
        let f = json!({"channels": [{"source": true, "fee": true}]});
        assert_eq!(
            apply_filter(v, &f),
            json!({"channels": [{"source": "a", "fee": 1}, {"source": "b", "fee": 2}]})
        );
        assert_eq!(
            apply_filter(json!({"a": {"b": 1, "c": 2}}), &json!({"a": {"c": true}})),
            json!({"a": {"c": 2}})
        );
    }
}

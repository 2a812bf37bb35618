//! The plugin side of lightningd (lightningd/plugin.c): starts the plugin binary with
//! lightningd's cwd and environment, `getmanifest` and `init`, sends requests (forwarded user
//! calls, hook calls) with lightningd-style string ids and routes the answers back, turns `log`
//! notifications into log lines, hands `message`/`progress` notifications to the caller of the
//! pending request they name, sends notifications, and notices when the plugin goes away.

use crate::jsonrpc::{JsonReader, frame};
use crate::simnet::params::{PLUGIN_TERMINATED, raw_text};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};

/// lightningd's request counter: one sequence for every request it sends to plugins.
static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(0);

/// lightningd's id for a request it sends: `"<prefix>/cln:<method>#<n>"` or `"cln:<method>#<n>"`.
pub fn lightningd_request_id(method: &str, prefix: Option<&str>) -> String {
    let n = NEXT_REQUEST_ID.fetch_add(1, Ordering::SeqCst);
    match prefix {
        Some(p) => {
            let p = if p.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
                "weird-id"
            } else {
                p
            };
            format!("{p}/cln:{method}#{n}")
        }
        None => format!("cln:{method}#{n}"),
    }
}

/// Where a forwarded request's `message`/`progress` notifications go: called with the method
/// and the plugin's params (lightningd's `notify_cb`; the caller rewrites the id).
pub type NotifySink = Arc<dyn Fn(&str, Value) + Send + Sync>;

/// A request waiting for the plugin's answer.
struct Pending {
    answer: oneshot::Sender<Value>,
    notify: Option<NotifySink>,
}

/// Requests by the JSON text of their id (lightningd's `pending_requests` is keyed by the
/// token with its quotes, so `"5"` and `5` differ).
type PendingMap = Arc<Mutex<HashMap<String, Pending>>>;

/// A log line sink shared by the stand-in and the plugin.
pub trait LogSink: Send + Sync {
    /// `level` is lightningd's name: debug, info, unusual, broken.
    fn log(&self, level: &str, prefix: &str, message: &str);
}

#[derive(Debug, Clone)]
pub struct OptionSpec {
    pub name: String,
    pub kind: String,
    pub default: Option<Value>,
    pub description: String,
    pub multi: bool,
}

#[derive(Debug, Clone)]
pub struct MethodSpec {
    pub name: String,
    pub usage: String,
    pub description: String,
}

#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub options: Vec<OptionSpec>,
    pub rpcmethods: Vec<MethodSpec>,
    pub hooks: Vec<String>,
    pub subscriptions: Vec<String>,
    /// Custom notification topics the plugin declared (`notifications[].method`).
    pub notifications: Vec<String>,
    pub dynamic: bool,
    /// `{"disable": reason}` in the getmanifest answer.
    pub disable: Option<String>,
}

/// A running plugin.
pub struct PluginHost {
    pub path: PathBuf,
    /// lightningd's shortname: the file name.
    pub name: String,
    pub manifest: Manifest,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    pending: PendingMap,
    alive: Arc<AtomicBool>,
    /// Set when the stand-in killed it (a protocol error), so its exit is not reported again.
    killed: Arc<AtomicBool>,
    exited: watch::Receiver<bool>,
    child: Arc<Mutex<Option<Child>>>,
}

impl PluginHost {
    /// Starts the plugin and gets its manifest. `cwd` is lightningd's network directory,
    /// `version` lightningd's (the plugin's `LIGHTNINGD_VERSION`).
    pub async fn start(
        path: &Path,
        cwd: &Path,
        version: &str,
        log: Arc<dyn LogSink>,
    ) -> Result<PluginHost> {
        let name = path
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_else(|| "plugin".into());
        let mut child = Command::new(path)
            .current_dir(cwd)
            .env("LIGHTNINGD_PLUGIN", "1")
            .env("LIGHTNINGD_VERSION", version)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting plugin {}", path.display()))?;
        log.log(
            "debug",
            "plugin-manager",
            &format!("started({}) {}", child.id().unwrap_or(0), path.display()),
        );
        let mut stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(buf) = rx.recv().await {
                if stdin.write_all(&buf).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
        });
        let pending: PendingMap = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let killed = Arc::new(AtomicBool::new(false));
        let child = Arc::new(Mutex::new(Some(child)));
        let (exit_tx, exited) = watch::channel(false);
        let notifications: Arc<Mutex<Vec<String>>> = Arc::default();
        {
            let pending = pending.clone();
            let alive = alive.clone();
            let killed = killed.clone();
            let child = child.clone();
            let notifications = notifications.clone();
            let log = log.clone();
            let prefix = format!("plugin-{name}");
            tokio::spawn(async move {
                let mut reader = JsonReader::new(stdout);
                loop {
                    match reader.next().await {
                        Ok(Some(msg)) => {
                            let declared = notifications.lock().expect("lock").clone();
                            if let Err(why) =
                                handle_plugin_message(&msg, &pending, &declared, &*log, &prefix)
                            {
                                // plugin_kill: the plugin goes, its requests fail below.
                                log.log("unusual", &prefix, &format!("Killing plugin: {why}"));
                                killed.store(true, Ordering::SeqCst);
                                if let Some(c) = child.lock().expect("lock").as_mut() {
                                    let _ = c.start_kill();
                                }
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            log.log("broken", &prefix, &format!("Bad JSON from plugin: {e}"));
                            break;
                        }
                    }
                }
                alive.store(false, Ordering::SeqCst);
                // Every request still waiting gets lightningd's answer for a dead plugin.
                let waiting: Vec<(String, Pending)> =
                    pending.lock().expect("lock").drain().collect();
                for (id, p) in waiting {
                    let id: Value = serde_json::from_str(&id).unwrap_or(Value::Null);
                    let _ = p.answer.send(json!({"jsonrpc": "2.0", "id": id, "error": {
                        "code": PLUGIN_TERMINATED,
                        "message": "Plugin terminated before replying to RPC call."}}));
                }
                let _ = exit_tx.send(true);
            });
        }
        let mut host = PluginHost {
            path: path.to_path_buf(),
            name,
            manifest: Manifest::default(),
            tx,
            pending,
            alive,
            killed,
            exited,
            child,
        };
        let resp = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            host.request("getmanifest", json!({"allow-deprecated-apis": false}), None),
        )
        .await
        .map_err(|_| {
            anyhow!(
                "plugin {} timed out before replying to getmanifest",
                host.name
            )
        })?;
        let result = resp
            .get("result")
            .ok_or_else(|| anyhow!("plugin {}: getmanifest failed: {resp}", host.name))?;
        host.manifest = parse_manifest(result)?;
        *notifications.lock().expect("lock") = host.manifest.notifications.clone();
        Ok(host)
    }

    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Whether the stand-in killed it for a protocol error (already logged).
    pub fn killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    /// Sends a request and waits for the whole response object (`result` or `error`).
    pub async fn request(&self, method: &str, params: Value, prefix: Option<&str>) -> Value {
        let id = lightningd_request_id(method, prefix);
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_request(id, msg, None).await
    }

    async fn send_request(&self, id: String, msg: Value, notify: Option<NotifySink>) -> Value {
        let (tx, rx) = oneshot::channel();
        let key = json!(id).to_string();
        self.pending
            .lock()
            .expect("lock")
            .insert(key.clone(), Pending { answer: tx, notify });
        let dead = json!({"jsonrpc": "2.0", "id": id, "error": {"code": PLUGIN_TERMINATED,
            "message": "Plugin terminated before replying to RPC call."}});
        if !self.alive() || self.tx.send(frame(&msg)).is_err() {
            self.pending.lock().expect("lock").remove(&key);
            return dead;
        }
        rx.await.unwrap_or(dead)
    }

    /// Forwards a user's request to the plugin as lightningd does: the same object with its id
    /// replaced by `"<original id>/cln:<method>#<n>"`; the answer comes back with the original id.
    /// `notify` gets the plugin's `message`/`progress` notifications for this request (`None`:
    /// the caller did not enable notifications, they are dropped).
    pub async fn forward(&self, request: &Value, notify: Option<NotifySink>) -> Value {
        let orig_id = request.get("id").cloned().unwrap_or(Value::Null);
        let method = request.get("method").and_then(Value::as_str).unwrap_or("");
        let prefix = match &orig_id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let id = lightningd_request_id(method, Some(&prefix));
        let mut msg = request.clone();
        msg["id"] = json!(id);
        let mut resp = self.send_request(id, msg, notify).await;
        resp["id"] = orig_id;
        resp
    }

    pub fn notify(&self, method: &str, params: Value) {
        let subscribed = self
            .manifest
            .subscriptions
            .iter()
            .any(|s| s == method || (s == "*" && method != "log"));
        if subscribed && self.alive() {
            let _ = self.tx.send(frame(
                &json!({"jsonrpc": "2.0", "method": method, "params": params}),
            ));
        }
    }

    /// lightningd's shutdown: a plugin subscribed to `shutdown` gets the notification and up to
    /// `grace` to exit by itself; any other is killed at once.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        if self.alive() && self.manifest.subscriptions.iter().any(|s| s == "shutdown") {
            self.notify("shutdown", json!({"shutdown": {}}));
            let mut exited = self.exited.clone();
            let _ = tokio::time::timeout(grace, exited.wait_for(|e| *e)).await;
        }
        let child = self.child.lock().expect("lock").take();
        if let Some(mut child) = child {
            let exited_by_itself = matches!(child.try_wait(), Ok(Some(_)));
            if !exited_by_itself {
                let _ = child.start_kill();
            }
            let _ = child.wait().await;
        }
    }

    /// Waits until the plugin's stdout closes.
    pub async fn wait_exit(&self) {
        let mut exited = self.exited.clone();
        let _ = exited.wait_for(|e| *e).await;
    }

    /// The `init` options object from the manifest's options and `--plugin-opt name=value`s.
    pub fn init_options(&self, given: &[(String, String)]) -> Result<Value> {
        let mut out = Map::new();
        for (k, _) in given {
            if !self.manifest.options.iter().any(|o| &o.name == k) {
                bail!("--plugin-opt {k}: the plugin has no such option");
            }
        }
        for o in &self.manifest.options {
            let vals: Vec<&String> = given
                .iter()
                .filter(|(k, _)| *k == o.name)
                .map(|(_, v)| v)
                .collect();
            let convert = |s: &str| -> Result<Value> {
                Ok(match o.kind.as_str() {
                    "int" => json!(
                        s.parse::<i64>()
                            .map_err(|_| anyhow!("{}: '{s}' is not a number", o.name))?
                    ),
                    "bool" => json!(match s {
                        "true" | "1" | "yes" | "on" => true,
                        "false" | "0" | "no" | "off" => false,
                        _ => bail!("{}: '{s}' is not a bool", o.name),
                    }),
                    "flag" => json!(true),
                    _ => json!(s),
                })
            };
            if o.multi {
                // lightningd leaves out an option with neither a value nor a default
                // (json_add_plugin_options, lightningd/plugin.c).
                if vals.is_empty() && o.default.is_none() {
                    continue;
                }
                let mut arr = Vec::new();
                for v in &vals {
                    arr.push(convert(v)?);
                }
                if vals.is_empty()
                    && let Some(d) = &o.default
                {
                    arr.push(d.clone());
                }
                out.insert(o.name.clone(), Value::Array(arr));
            } else if let Some(v) = vals.last() {
                out.insert(o.name.clone(), convert(v)?);
            } else if let Some(d) = &o.default
                && o.kind != "flag"
            {
                out.insert(o.name.clone(), d.clone());
            }
        }
        Ok(Value::Object(out))
    }
}

/// One message from the plugin (`plugin_read_json`). `Err` is lightningd's reason to kill it.
fn handle_plugin_message(
    msg: &Value,
    pending: &Mutex<HashMap<String, Pending>>,
    declared: &[String],
    log: &dyn LogSink,
    prefix: &str,
) -> Result<(), String> {
    let Some(id) = msg.get("id") else {
        return handle_notification(msg, pending, declared, log, prefix);
    };
    if let Some(m) = msg.get("method") {
        // lightningd would take it as a response to nothing and drop it.
        log.log(
            "unusual",
            prefix,
            &format!(
                "Plugin sent a request ({}) on stdout; lightningd only answers on its RPC socket",
                raw_text(m)
            ),
        );
        return Ok(());
    }
    // plugin_response_handle: the answer to one of our requests.
    match pending.lock().expect("lock").remove(&id.to_string()) {
        Some(p) => {
            let _ = p.answer.send(msg.clone());
        }
        None => log.log(
            "broken",
            prefix,
            &format!("Plugin answered an unknown request id {id}"),
        ),
    }
    Ok(())
}

/// `plugin_notification_handle`: a message without id.
fn handle_notification(
    msg: &Value,
    pending: &Mutex<HashMap<String, Pending>>,
    declared: &[String],
    log: &dyn LogSink,
    prefix: &str,
) -> Result<(), String> {
    let (Some(method), Some(params)) = (msg.get("method"), msg.get("params")) else {
        return Err(format!(
            "Malformed JSON-RPC notification missing \"method\" or \"params\": {msg}"
        ));
    };
    match method.as_str().unwrap_or_default() {
        "log" => {
            let Some(text) = params.get("message").and_then(Value::as_str) else {
                return Err(
                    "Log notification from plugin doesn't have a string \"message\" field".into(),
                );
            };
            let level = match params.get("level") {
                None => "info",
                Some(l) => match l.as_str().map(str::to_ascii_lowercase).as_deref() {
                    Some("error" | "broken") => "broken",
                    Some("warn" | "unusual") => "unusual",
                    Some("debug" | "trace") => "debug",
                    Some("info") => "info",
                    _ => {
                        return Err(format!(
                            "Unknown log-level {l}, valid values are \"trace\", \"debug\", \
                             \"info\", \"warn\", or \"error\"."
                        ));
                    }
                },
            };
            for line in text.split('\n') {
                log.log(level, prefix, line);
            }
        }
        // plugin_notify_handle: for the caller of the pending request named by params.id.
        m @ ("message" | "progress") => {
            let Some(id) = params.get("id") else {
                return Err("JSON-RPC notify \"id\"-field is not present".into());
            };
            let sink = pending
                .lock()
                .expect("lock")
                .get(&id.to_string())
                .and_then(|p| p.notify.clone());
            if let Some(sink) = sink {
                sink(m, params.clone());
            }
        }
        m if declared.iter().any(|d| d == m) => {
            // A declared custom topic: the stand-in's only plugin is its only subscriber.
        }
        m => log.log(
            "unusual",
            prefix,
            &format!(
                "Plugin attempted to send a notification to topic \"{m}\" it hasn't declared \
                 in its manifest, not forwarding to subscribers."
            ),
        ),
    }
    Ok(())
}

fn parse_manifest(v: &Value) -> Result<Manifest> {
    let mut m = Manifest::default();
    // A plugin can disable itself here, before anything else is read.
    if let Some(d) = v.get("disable") {
        m.disable = Some(raw_text(d));
        return Ok(m);
    }
    for o in v
        .get("options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = o.get("name").and_then(Value::as_str);
        let kind = o.get("type").and_then(Value::as_str);
        let desc = o.get("description").and_then(Value::as_str);
        let (Some(name), Some(kind), Some(desc)) = (name, kind, desc) else {
            bail!("An option is missing either \"name\", \"description\" or \"type\": {o}");
        };
        if !["string", "string-conceal", "int", "bool", "flag"].contains(&kind) {
            bail!(
                "Only \"string\", \"int\", \"bool\", and \"flag\" options are supported ({name})"
            );
        }
        let default = o
            .get("default")
            .filter(|d| !d.is_null())
            .map(|d| match (kind, d) {
                // lightningd re-renders defaults by type: ints as numbers, bools as bools.
                ("int", Value::String(s)) => {
                    s.parse::<i64>().map(|n| json!(n)).unwrap_or(d.clone())
                }
                ("bool", Value::String(s)) => json!(s == "true"),
                ("string", Value::Number(n)) => json!(n.to_string()),
                _ => d.clone(),
            });
        m.options.push(OptionSpec {
            name: name.to_string(),
            kind: kind.to_string(),
            default,
            description: desc.to_string(),
            multi: o.get("multi").and_then(Value::as_bool).unwrap_or(false),
        });
    }
    let Some(methods) = v.get("rpcmethods").and_then(Value::as_array) else {
        bail!("\"result.rpcmethods\" missing");
    };
    for r in methods {
        let Some(name) = r.get("name").and_then(Value::as_str) else {
            bail!("rpcmethod does not have a string \"name\": {r}");
        };
        let Some(usage) = r.get("usage").and_then(Value::as_str) else {
            bail!("\"usage\" not provided by plugin");
        };
        m.rpcmethods.push(MethodSpec {
            name: name.to_string(),
            usage: usage.to_string(),
            description: r
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        });
    }
    for h in v
        .get("hooks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = h
            .as_str()
            .or_else(|| h.get("name").and_then(Value::as_str))
            .ok_or_else(|| anyhow!("bad hook registration {h}"))?;
        m.hooks.push(name.to_string());
    }
    for s in v
        .get("subscriptions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = s
            .as_str()
            .ok_or_else(|| anyhow!("subscription is not a string: {s}"))?;
        m.subscriptions.push(name.to_string());
    }
    // plugin_notifications_add: custom topics, each `{"method": name}`.
    for (i, n) in v
        .get("notifications")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = n.get("method").and_then(Value::as_str).ok_or_else(|| {
            anyhow!("\"result.notifications[{i}].name\" missing or not a string.")
        })?;
        m.notifications.push(name.to_string());
    }
    m.dynamic = v.get("dynamic").and_then(Value::as_bool).unwrap_or(false);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_manifest() {
        let id = lightningd_request_id("rebalance", Some("pytest:rebalance#3"));
        assert!(id.starts_with("pytest:rebalance#3/cln:rebalance#"));
        assert!(lightningd_request_id("init", None).starts_with("cln:init#"));
        let m = parse_manifest(&json!({
            "options": [{"name": "rebalance-maxfeeppm", "type": "int", "default": "1000",
                         "description": "d"}],
            "rpcmethods": [{"name": "balances", "usage": "", "description": "x"}],
            "hooks": [{"name": "invoice_payment"}, "htlc_accepted"],
            "subscriptions": ["shutdown"],
        }))
        .unwrap();
        assert_eq!(m.options[0].default, Some(json!(1000)));
        assert_eq!(m.hooks, vec!["invoice_payment", "htlc_accepted"]);
        assert!(parse_manifest(&json!({"options": []})).is_err());
    }
}

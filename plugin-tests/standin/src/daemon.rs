//! The stand-in put together: load the network, open the RPC socket, start the plugin
//! (getmanifest, init), serve until `stop` or a signal, shut the plugin down like lightningd.

use crate::plugin::{LogSink, PluginHost};
use crate::rpc;
use crate::simnet::{Event, Network};
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, watch};

/// What the stand-in is started with (the binary's command line).
#[derive(Debug, Clone)]
pub struct Config {
    pub network: NetworkSource,
    pub lightning_dir: PathBuf,
    pub plugin: Option<PathBuf>,
    pub plugin_opts: Vec<(String, String)>,
    pub rpc_file: String,
    /// How long a plugin subscribed to `shutdown` gets to exit (lightningd: 30 s).
    pub shutdown_grace: std::time::Duration,
    /// Also copy log lines at or above this level to stderr ("none" for quiet).
    pub stderr_level: String,
    /// Keep the datastore in this file (loaded at start, rewritten on every change), as
    /// lightningd keeps it in its database; `None`: it lives as long as the stand-in.
    pub datastore_file: Option<PathBuf>,
    /// lightningd's version string: getinfo's `version`, the plugin's `LIGHTNINGD_VERSION`
    /// (default [`crate::simnet::DEFAULT_VERSION`]).
    pub version: String,
    /// Run the askrene plugin (and xpay's layer); `false`: askrene's methods are unknown.
    pub askrene: bool,
}

#[derive(Debug, Clone)]
pub enum NetworkSource {
    File(PathBuf),
    Mainnet {
        path: PathBuf,
        us: Option<String>,
        seed: u64,
    },
}

/// lightningd's log: `<lightning-dir>/log`, one line per entry, BROKEN lines marked so tests
/// can refuse them.
pub struct Logger {
    file: Mutex<std::fs::File>,
    stderr_rank: u8,
    pub broken: std::sync::atomic::AtomicUsize,
}

fn rank(level: &str) -> u8 {
    match level {
        "debug" => 1,
        "info" => 2,
        "unusual" => 3,
        "broken" => 4,
        "none" => 9,
        _ => 2,
    }
}

/// UTC `YYYY-MM-DDTHH:MM:SS.mmmZ` without a date library (days-from-civil inverse).
pub fn iso_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        d.subsec_millis()
    )
}

impl Logger {
    pub fn open(path: &Path, stderr_level: &str) -> Result<Logger> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening log {}", path.display()))?;
        Ok(Logger {
            file: Mutex::new(file),
            stderr_rank: rank(stderr_level),
            broken: Default::default(),
        })
    }
}

impl LogSink for Logger {
    fn log(&self, level: &str, prefix: &str, message: &str) {
        let tag = match level {
            "broken" => "**BROKEN**",
            "unusual" => "UNUSUAL",
            "debug" => "DEBUG",
            _ => "INFO",
        };
        if level == "broken" {
            self.broken
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        let line = format!("{} {tag:<7} {prefix}: {message}\n", iso_now());
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(line.as_bytes());
            let _ = f.flush();
        }
        if rank(level) >= self.stderr_rank {
            eprint!("{line}");
        }
    }
}

/// Everything the RPC handlers share.
pub struct Shared {
    pub net: Mutex<Network>,
    /// Bumped whenever the network changes (waitsendpay waiters watch it).
    pub changed: watch::Sender<u64>,
    pub plugin: Mutex<Option<Arc<PluginHost>>>,
    pub log: Arc<Logger>,
    pub stop: Notify,
    pub config: Config,
    pub netdir: PathBuf,
    shut_down: std::sync::atomic::AtomicBool,
    /// Serializes datastore file writes (snapshot and write under it: the last write wins
    /// with the newest state).
    datastore_write: Mutex<()>,
}

impl Shared {
    pub fn plugin(&self) -> Option<Arc<PluginHost>> {
        self.plugin
            .lock()
            .expect("lock")
            .clone()
            .filter(|p| p.alive())
    }

    pub fn log(&self, level: &str, prefix: &str, message: &str) {
        self.log.log(level, prefix, message);
    }

    /// Acts on what the network asks for: wake waiters, call hooks, send notifications.
    pub fn handle_events(self: &Arc<Self>, events: Vec<Event>) {
        for e in events {
            match e {
                Event::Changed => {
                    self.changed.send_modify(|v| *v += 1);
                }
                Event::PaymentDone { notification, .. } | Event::InvoicePaid { notification } => {
                    self.changed.send_modify(|v| *v += 1);
                    if let Some(p) = self.plugin() {
                        p.notify(&notification.0, notification.1);
                    }
                }
                Event::HtlcAcceptedHook { payment, payload } => {
                    self.call_hook("htlc_accepted", payment, payload);
                }
                Event::InvoicePaymentHook { payment, payload } => {
                    self.call_hook("invoice_payment", payment, payload);
                }
                Event::DatastoreChanged => self.save_datastore(),
                Event::Log {
                    level,
                    prefix,
                    message,
                } => self.log(level, &prefix, &message),
            }
        }
    }

    /// Writes the datastore to `--datastore-file` (atomically: a temporary file renamed).
    fn save_datastore(&self) {
        let Some(path) = &self.config.datastore_file else {
            return;
        };
        let _guard = self.datastore_write.lock().expect("lock");
        let snapshot = self.net.lock().expect("lock").datastore_to_json();
        let tmp = path.with_extension("tmp");
        let result = serde_json::to_vec_pretty(&snapshot)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = result {
            self.log(
                "broken",
                "lightningd",
                &format!("writing datastore {}: {e}", path.display()),
            );
        }
    }

    fn call_hook(self: &Arc<Self>, hook: &'static str, payment: usize, payload: serde_json::Value) {
        let shared = self.clone();
        tokio::spawn(async move {
            let answer = match shared.plugin() {
                None => None,
                Some(p) => {
                    let resp = p.request(hook, payload, None).await;
                    match resp.get("result") {
                        Some(r) => Some(r.clone()),
                        None => {
                            let code = resp["error"]["code"].as_i64().unwrap_or(0);
                            if code != crate::simnet::params::PLUGIN_TERMINATED {
                                shared.log(
                                    "broken",
                                    &format!("plugin-{}", p.name),
                                    &format!("Plugin returned an error to hook {hook}: {resp}"),
                                );
                            }
                            None
                        }
                    }
                }
            };
            if let Some(a) = &answer {
                let ok = match (hook, a.get("result").and_then(|r| r.as_str())) {
                    ("invoice_payment", Some("continue" | "reject")) => true,
                    ("invoice_payment", None) => a.get("failure_message").is_some(),
                    ("htlc_accepted", Some("continue" | "fail" | "resolve")) => true,
                    _ => false,
                };
                if !ok {
                    // lightningd would abort (fatal) on this answer.
                    shared.log(
                        "broken",
                        "lightningd",
                        &format!("Invalid {hook} hook result: {a}"),
                    );
                }
            }
            let events = {
                let mut net = shared.net.lock().expect("lock");
                match hook {
                    "htlc_accepted" => net.htlc_accepted_result(payment, answer.as_ref()),
                    _ => net.invoice_payment_result(payment, answer.as_ref()),
                }
            };
            shared.handle_events(events);
        });
    }
}

/// Runs the stand-in until `stop` (or SIGINT/SIGTERM).
pub async fn run(config: Config) -> Result<()> {
    let (shared, _server) = start(config).await?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = shared.stop.notified() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm.recv() => {}
    }
    shutdown(&shared).await;
    Ok(())
}

/// Starts everything and returns once the plugin is initialized (or disabled).
pub async fn start(config: Config) -> Result<(Arc<Shared>, tokio::task::JoinHandle<()>)> {
    let mut network = match &config.network {
        NetworkSource::File(p) => Network::from_file(p)?,
        NetworkSource::Mainnet { path, us, seed } => {
            Network::from_listchannels(path, us.as_deref(), *seed)?
        }
    };
    std::fs::create_dir_all(&config.lightning_dir)?;
    // Paths given relative to the caller's cwd: resolve before moving into the network dir.
    let mut config = config;
    if let Some(path) = &config.datastore_file {
        let abs = std::path::absolute(path)?;
        match std::fs::read_to_string(&abs) {
            Ok(text) => {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("parsing datastore {}", abs.display()))?;
                network
                    .datastore_from_json(&v)
                    .map_err(|e| anyhow::anyhow!("datastore {}: {e}", abs.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", abs.display())),
        }
        config.datastore_file = Some(abs);
    }
    // Resolve the plugin's path before moving into the network dir (relative paths are the caller's).
    let plugin_path = match &config.plugin {
        Some(path) => Some(
            std::fs::canonicalize(path)
                .with_context(|| format!("plugin {} not found", path.display()))?,
        ),
        None => None,
    };
    network.config.version = config.version.clone();
    // The built-in plugins the stand-in plays: askrene (layers kept in the datastore) and
    // xpay's persistent layer.
    let builtin_events = if config.askrene {
        network.askrene_load_layers();
        network.start_xpay()
    } else {
        network.askrene = None;
        vec![]
    };
    let topdir = std::fs::canonicalize(&config.lightning_dir)?;
    let netdir = topdir.join("regtest");
    std::fs::create_dir_all(&netdir)?;
    let log = Arc::new(Logger::open(&topdir.join("log"), &config.stderr_level)?);
    // Like lightningd, live in the network directory: the socket path is then short and
    // relative, whatever the length of the directory (sun_path holds 108 bytes).
    std::env::set_current_dir(&netdir)?;
    let sock = PathBuf::from(&config.rpc_file);
    if sock.exists() {
        if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
            bail!(
                "another lightningd-standin is serving {}",
                netdir.join(&sock).display()
            );
        }
        std::fs::remove_file(&sock)?;
    }
    let listener = tokio::net::UnixListener::bind(&sock)
        .with_context(|| format!("binding {}", netdir.join(&sock).display()))?;
    let (changed, _) = watch::channel(0u64);
    let shared = Arc::new(Shared {
        net: Mutex::new(network),
        changed,
        plugin: Mutex::new(None),
        log: log.clone(),
        stop: Notify::new(),
        config: config.clone(),
        netdir: netdir.clone(),
        shut_down: Default::default(),
        datastore_write: Mutex::new(()),
    });
    let server = tokio::spawn(rpc::serve(listener, shared.clone()));
    let mut events = builtin_events;
    events.extend(shared.net.lock().expect("lock").take_events());
    shared.handle_events(events);
    tokio::spawn(tick(Arc::downgrade(&shared)));

    if let Some(path) = &plugin_path {
        let host = Arc::new(PluginHost::start(path, &netdir, &config.version, log.clone()).await?);
        if let Some(reason) = &host.manifest.disable {
            // plugin_manifest_cb: killed at once, logged at info.
            log.log(
                "info",
                &format!("plugin-{}", host.name),
                &format!("Killing plugin: disabled itself: {reason}"),
            );
            host.shutdown(std::time::Duration::ZERO).await;
            log_started(&shared);
            return Ok((shared, server));
        }
        let options = host.init_options(&config.plugin_opts)?;
        {
            let mut net = shared.net.lock().expect("lock");
            net.hooks.htlc_accepted = host.manifest.hooks.iter().any(|h| h == "htlc_accepted");
            net.hooks.invoice_payment = host.manifest.hooks.iter().any(|h| h == "invoice_payment");
            net.hooks.plugin_name = host.name.clone();
        }
        *shared.plugin.lock().expect("lock") = Some(host.clone());
        let init = json!({
            "options": options,
            "configuration": {
                "lightning-dir": netdir.to_string_lossy(),
                "rpc-file": config.rpc_file,
                "startup": true,
                "network": "regtest",
                "feature_set": {
                    "init": "08a0880a8a59a1",
                    "node": "08a0880a8a59a1",
                    "channel": "",
                    "invoice": "02000002024100"
                }
            }
        });
        let resp = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            host.request("init", init, None),
        )
        .await
        .context("plugin timed out before replying to init")?;
        if let Some(reason) = resp["result"].get("disable") {
            // plugin_config_cb: killed at once, logged at debug.
            log.log(
                "debug",
                &format!("plugin-{}", host.name),
                &format!(
                    "Killing plugin: disabled itself at init: {}",
                    crate::simnet::params::raw_text(reason)
                ),
            );
            *shared.plugin.lock().expect("lock") = None;
            host.shutdown(std::time::Duration::ZERO).await;
        } else if resp.get("error").is_some() {
            bail!("plugin {} failed init: {}", host.name, resp["error"]);
        } else {
            // Report the plugin's exit, as lightningd does, if it happens before we stop it.
            let watcher = host.clone();
            let shared2 = shared.clone();
            tokio::spawn(async move {
                watcher.wait_exit().await;
                if shared2.plugin.lock().expect("lock").is_some() && !watcher.killed() {
                    shared2.log(
                        "unusual",
                        &format!("plugin-{}", watcher.name),
                        "Killing plugin: exited during normal operation",
                    );
                }
            });
        }
    }
    log_started(&shared);
    Ok((shared, server))
}

fn log_started(shared: &Arc<Shared>) {
    let net = shared.net.lock().expect("lock");
    let us = &net.nodes[net.us];
    shared.log(
        "info",
        "lightningd",
        &format!(
            "Server started with public key {}, alias {} (color #{}) and lightningd {}",
            us.id, us.alias, us.color, net.config.version
        ),
    );
}

/// lightningd's timers on the wall clock: once a second, whatever is due in the network
/// (HTLC sets past 70 s, xpay's aging) fires. Ends with the stand-in.
async fn tick(shared: std::sync::Weak<Shared>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        every.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let events = {
            let mut net = shared.net.lock().expect("lock");
            let mut events = net.fire_timers();
            events.extend(net.take_events());
            events
        };
        if !events.is_empty() {
            shared.handle_events(events);
        }
    }
}

/// lightningd's shutdown: plugin first, then the socket.
pub async fn shutdown(shared: &Arc<Shared>) {
    if shared
        .shut_down
        .swap(true, std::sync::atomic::Ordering::SeqCst)
    {
        return;
    }
    let host = shared.plugin.lock().expect("lock").take();
    if let Some(h) = host {
        h.shutdown(shared.config.shutdown_grace).await;
        shared.log("debug", "lightningd", &format!("plugin {} stopped", h.name));
    }
    let _ = std::fs::remove_file(shared.netdir.join(&shared.config.rpc_file));
    shared.log("info", "lightningd", "Shutdown complete");
}

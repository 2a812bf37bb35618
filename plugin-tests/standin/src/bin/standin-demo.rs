//! `standin-demo` (`make demo`): starts the stand-in on networks/demo.json with the real plugin,
//! then shows, as `lightning-cli` would print them: balances, a rebalance dry run, a rebalance,
//! and balances again.
//!
//! usage: standin-demo [--plugin PATH] [--network FILE] [--keep DIR]

use cln_standin::cli::{NotificationPrinter, RpcClient, render_human, render_json};
use cln_standin::daemon::{self, Config, NetworkSource};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const DEMO_NETWORK: &str = include_str!("../../networks/demo.json");

/// The plugin binary: given, or next to this one (target/<profile>/), building it with cargo
/// first when run through `cargo run` and it is missing.
fn find_plugin(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p);
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let candidate = dir.join("cln-rebalance");
    if !candidate.exists()
        && let Ok(cargo) = std::env::var("CARGO")
    {
        eprintln!("(building the plugin: cargo build --bin cln-rebalance)");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = std::process::Command::new(cargo);
        cmd.current_dir(&root)
            .args(["build", "-q", "--bin", "cln-rebalance"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status()?;
        anyhow::ensure!(status.success(), "building cln-rebalance failed");
    }
    anyhow::ensure!(
        candidate.exists(),
        "plugin binary {} not found: run `cargo build` at the workspace root first",
        candidate.display()
    );
    Ok(candidate)
}

/// One call as `lightning-cli` shows it: the plugin's `message`/`progress` notifications
/// (lightning-cli's default `-N info`) as they come, then the result.
fn show(rpc: &mut RpcClient, cmdline: &str, method: &str, params: Value, human: bool) -> bool {
    use std::io::Write;
    println!("$ lightning-cli {cmdline}");
    let mut printer = NotificationPrinter::new("info").expect("a lightning-cli level");
    let mut print = |n: &Value| {
        print!("{}", printer.render(n));
        let _ = std::io::stdout().flush();
    };
    let answer = rpc.call_notified(method, params, Some(&mut print));
    print!("{}", printer.finish());
    match answer {
        Ok(Ok(v)) => {
            if human {
                print!("{}", render_human(&v));
            } else {
                println!("{}", render_json(&v));
            }
            println!();
            true
        }
        Ok(Err(e)) => {
            println!("{}\n", render_json(&e.to_json()));
            false
        }
        Err(e) => {
            println!("(no answer: {e})\n");
            false
        }
    }
}

fn main() {
    let mut plugin = None;
    let mut network = None;
    let mut keep = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--plugin" => plugin = args.next().map(PathBuf::from),
            "--network" => network = args.next().map(PathBuf::from),
            "--keep" => keep = args.next().map(PathBuf::from),
            _ => {
                eprintln!("usage: standin-demo [--plugin PATH] [--network FILE] [--keep DIR]");
                std::process::exit(1);
            }
        }
    }
    let ok = match run(plugin, network, keep) {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!("standin-demo: {e:#}");
            std::process::exit(1);
        }
    };
    std::process::exit(if ok { 0 } else { 1 });
}

fn run(
    plugin: Option<PathBuf>,
    network: Option<PathBuf>,
    keep: Option<PathBuf>,
) -> anyhow::Result<bool> {
    let plugin = find_plugin(plugin)?;
    let dir = match keep {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("standin-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let dir = std::fs::canonicalize(&dir)?;
    let network = match network {
        Some(n) => std::fs::canonicalize(n)?,
        None => {
            let p = dir.join("demo-network.json");
            std::fs::write(&p, DEMO_NETWORK)?;
            p
        }
    };
    let config = Config {
        network: NetworkSource::File(network),
        lightning_dir: dir.clone(),
        plugin: Some(plugin),
        plugin_opts: vec![],
        rpc_file: "lightning-rpc".into(),
        shutdown_grace: std::time::Duration::from_secs(10),
        stderr_level: "broken".into(),
        datastore_file: None,
        version: cln_standin::simnet::DEFAULT_VERSION.into(),
        askrene: true,
    };
    let rt = tokio::runtime::Runtime::new()?;
    let (shared, _server) = rt.block_on(daemon::start(config))?;
    let sock = shared.netdir.join("lightning-rpc");
    let ok = std::thread::spawn(move || {
        let mut rpc = RpcClient::new(&sock);
        println!("(lightningd stand-in on networks/demo.json; log in {}/log)\n", dir.display());
        let mut ok = show(&mut rpc, "-H balances", "balances", json!([]), true);
        ok &= show(
            &mut rpc,
            "rebalance -k outgoing=800001x1x0 incoming=800004x1x0 amount_msat=300000sat dryrun=true",
            "rebalance",
            json!({"outgoing": "800001x1x0", "incoming": "800004x1x0",
                   "amount_msat": "300000sat", "dryrun": true}),
            false,
        );
        ok &= show(
            &mut rpc,
            "rebalance 800001x1x0 800004x1x0 300000sat",
            "rebalance",
            json!(["800001x1x0", "800004x1x0", "300000sat"]),
            false,
        );
        ok &= show(&mut rpc, "-H balances", "balances", json!([]), true);
        let _ = rpc.call("stop", json!([]));
        ok
    })
    .join()
    .unwrap_or(false);
    rt.block_on(daemon::shutdown(&shared));
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(ok)
}

//! `standin-demo` (`make demo`): the plugin at work on a small routing node, run on the stand-in
//! (networks/tour.json) with the real plugin binary, shown as `lightning-cli` prints it: the
//! balances table, a dry run, a rebalance, a `rebalanceall` job followed to its end, the report,
//! and the table again.
//!
//! usage: standin-demo [--plugin PATH] [--network FILE] [--keep DIR]

use cln_standin::cli::{NotificationPrinter, RpcClient, render_human, render_json};
use cln_standin::daemon::{self, Config, NetworkSource};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

const DEMO_NETWORK: &str = include_str!("../../networks/tour.json");

/// The first move the story makes by hand: a source and a sink of tour.json, joined by a
/// three-hop circle (us -> alice -> carol -> us).
const OUTGOING: &str = "800001x1x0";
const INCOMING: &str = "800004x1x0";
const AMOUNT: &str = "150000sat";

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

/// How a step prints its answer: as lightning-cli does by default (JSON), or as it does a
/// `format-hint: simple` result (the text alone).
#[derive(Clone, Copy)]
enum View {
    Json,
    Text,
}

/// Runs one call and prints it under the command line that produces it; the answer, if any.
fn show(
    rpc: &mut RpcClient,
    cmdline: &str,
    method: &str,
    params: Value,
    view: View,
) -> Option<Value> {
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
            match view {
                View::Json => println!("{}", render_json(&v)),
                View::Text => print!("{}", render_human(&v)),
            }
            println!();
            Some(v)
        }
        Ok(Err(e)) => {
            println!("{}\n", render_json(&e.to_json()));
            None
        }
        Err(e) => {
            println!("(no answer: {e})\n");
            None
        }
    }
}

/// A step's heading: what the next command shows and why an operator runs it.
fn say(text: &str) {
    println!("# {text}");
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
    let (network, name) = match network {
        Some(n) => {
            let name = n.display().to_string();
            (std::fs::canonicalize(n)?, name)
        }
        None => {
            let p = dir.join("tour.json");
            std::fs::write(&p, DEMO_NETWORK)?;
            (p, "networks/tour.json".to_string())
        }
    };
    let config = Config {
        network: NetworkSource::File(network),
        lightning_dir: dir.clone(),
        plugin: Some(plugin),
        plugin_opts: vec![],
        rpc_file: "lightning-rpc".into(),
        shutdown_grace: Duration::from_secs(10),
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
        println!(
            "(the plugin on a lightningd stand-in, {name}; its log: {}/log)\n",
            dir.display()
        );
        let ok = story(&mut rpc);
        let _ = rpc.call("stop", json!([]));
        ok
    })
    .join()
    .unwrap_or(false);
    rt.block_on(daemon::shutdown(&shared));
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(ok)
}

/// The demo itself; false when a step failed.
fn story(rpc: &mut RpcClient) -> bool {
    say("Where our funds sit: sources hold too much of them, sinks too little.");
    let mut ok = show(
        rpc,
        "balances-table",
        "balances-table",
        json!([]),
        View::Text,
    )
    .is_some();

    say("Price one move first: the route and its fee, nothing paid.");
    ok &= show(
        rpc,
        &format!(
            "rebalance -k outgoing={OUTGOING} incoming={INCOMING} amount_msat={AMOUNT} dryrun=true"
        ),
        "rebalance",
        json!({"outgoing": OUTGOING, "incoming": INCOMING, "amount_msat": AMOUNT, "dryrun": true}),
        View::Json,
    )
    .is_some_and(|v| v["status"] == "dryrun");

    say("Make it.");
    ok &= show(
        rpc,
        &format!("rebalance {OUTGOING} {INCOMING} {AMOUNT}"),
        "rebalance",
        json!([OUTGOING, INCOMING, AMOUNT]),
        View::Json,
    )
    .is_some_and(|v| v["status"] == "complete");

    say(
        "Leave the rest to a job; wait=true follows it, a line per move, and answers when it ends.",
    );
    ok &= show(
        rpc,
        "rebalanceall wait=true",
        "rebalanceall",
        json!({"wait": true}),
        View::Json,
    )
    .is_some_and(|v| v["status"] == "ended");

    say(
        "What rebalancing did and cost (nobody routes through us in the demo, so nothing paid it back yet).",
    );
    ok &= show(
        rpc,
        "rebalancereport-table",
        "rebalancereport-table",
        json!([]),
        View::Text,
    )
    .is_some();

    say("Every channel near its target now.");
    ok &= show(
        rpc,
        "balances-table",
        "balances-table",
        json!([]),
        View::Text,
    )
    .is_some();
    ok
}

//! `lightningd-standin`: plays lightningd for a real plugin binary over a simulated network.
//! See plugin-tests/standin/README.md.

use cln_standin::daemon::{self, Config, NetworkSource};
use std::path::PathBuf;

const USAGE: &str = "usage: lightningd-standin (--network FILE | --mainnet FILE.listchannels.json[.gz] \
[--us NODE_ID] [--seed N]) --lightning-dir DIR [--plugin PATH] [--plugin-opt name=value ...] \
[--rpc-file NAME] [--shutdown-grace SECS] [--log-stderr LEVEL] [--datastore-file PATH] \
[--version-string vXX.YY[.Z]] [--no-askrene]";

fn main() {
    let mut network = None;
    let mut mainnet = None;
    let mut us = None;
    let mut seed = 1u64;
    let mut dir = None;
    let mut plugin = None;
    let mut opts = Vec::new();
    let mut rpc_file = "lightning-rpc".to_string();
    let mut grace = 30u64;
    let mut stderr_level = "unusual".to_string();
    let mut datastore_file = None;
    let mut version = cln_standin::simnet::DEFAULT_VERSION.to_string();
    let mut askrene = true;
    let mut args = std::env::args().skip(1);
    let fail = |msg: &str| -> ! {
        eprintln!("lightningd-standin: {msg}\n{USAGE}");
        std::process::exit(1)
    };
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut val = || {
            inline
                .clone()
                .or_else(|| args.next())
                .unwrap_or_else(|| fail(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--network" => network = Some(PathBuf::from(val())),
            "--mainnet" => mainnet = Some(PathBuf::from(val())),
            "--us" => us = Some(val()),
            "--seed" => {
                seed = val()
                    .parse()
                    .unwrap_or_else(|_| fail("--seed: not a number"))
            }
            "--lightning-dir" => dir = Some(PathBuf::from(val())),
            "--plugin" => plugin = Some(PathBuf::from(val())),
            "--plugin-opt" => {
                let v = val();
                match v.split_once('=') {
                    Some((k, x)) => opts.push((k.to_string(), x.to_string())),
                    None => opts.push((v, "true".to_string())),
                }
            }
            "--rpc-file" => rpc_file = val(),
            "--shutdown-grace" => {
                grace = val()
                    .parse()
                    .unwrap_or_else(|_| fail("--shutdown-grace: not a number"))
            }
            "--log-stderr" => stderr_level = val(),
            "--datastore-file" => datastore_file = Some(PathBuf::from(val())),
            "--version-string" => version = val(),
            "--no-askrene" => askrene = false,
            "--help" | "-h" => {
                println!("{USAGE}");
                return;
            }
            other => fail(&format!("unknown argument {other}")),
        }
    }
    let network = match (network, mainnet) {
        (Some(f), None) => NetworkSource::File(f),
        (None, Some(path)) => NetworkSource::Mainnet { path, us, seed },
        _ => fail("give exactly one of --network, --mainnet"),
    };
    let config = Config {
        network,
        lightning_dir: dir.unwrap_or_else(|| fail("--lightning-dir is required")),
        plugin,
        plugin_opts: opts,
        rpc_file,
        shutdown_grace: std::time::Duration::from_secs(grace),
        stderr_level,
        datastore_file,
        version,
        askrene,
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Err(e) = rt.block_on(daemon::run(config)) {
        eprintln!("lightningd-standin: {e:#}");
        std::process::exit(1);
    }
    // Don't wait for tasks still blocked on sockets.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
}

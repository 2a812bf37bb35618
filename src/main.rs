//! Plugin wiring only: options, methods, the hook, state, start and exit.

use cln_plugin::options::{ConfigOption, DefaultIntegerConfigOption, DefaultStringConfigOption};
use cln_plugin::{Builder, Plugin};
use cln_rebalance::commands::rebalance::{Config, Rebalancer, Routing};
use cln_rebalance::core::liquidity::{ModelConfig, Prior};
use cln_rebalance::lightningd::ClnNode;
use cln_rebalance::params;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const OPT_MAXFEEPPM: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-maxfeeppm",
    1000,
    "Default fee cap of rebalance, in parts per million of the amount",
);
const OPT_EXEMPTFEE: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-exemptfee",
    5000,
    "Default fee in msat a rebalance may always pay, whatever maxfeeppm says",
);
const OPT_RETRY_FOR: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-retry-for",
    60,
    "Default seconds a rebalance keeps retrying",
);
const OPT_GRAPH_MAX_AGE: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-graph-refresh",
    300,
    "Seconds the plugin reuses its copy of the channel graph before reading listchannels again",
);

const OPT_ROUTING: DefaultStringConfigOption = ConfigOption::new_str_with_default(
    "rebalance-routing",
    "probabilistic",
    "How routes are chosen: probabilistic (fee + risk from what was learned of liquidity) or fee (cheapest fee only)",
);
const OPT_HALF_LIFE: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-liquidity-half-life",
    cln_rebalance::core::liquidity::DEFAULT_HALF_LIFE_SECS as i64,
    "Seconds after which half of what was learned about a channel's liquidity is forgotten",
);
const OPT_PRIOR: DefaultStringConfigOption = ConfigOption::new_str_with_default(
    "rebalance-liquidity-prior",
    cln_rebalance::core::liquidity::DEFAULT_MODEL.prior.name(),
    "Where liquidity is assumed to sit before anything is learned: bimodal (near the channel edges, as on mainnet) or uniform",
);

const REBALANCE_USAGE: &str =
    "outgoing incoming [amount_msat] [maxfeeppm] [exemptfee] [retry_for] [dryrun]";
const REBALANCE_DESCRIPTION: &str = "Move amount_msat of our liquidity out of channel `outgoing` and back in through \
     channel `incoming` (short_channel_id or peer node id) by paying ourselves along a circle. Fee cap: \
     max(exemptfee, amount x maxfeeppm / 1e6). Without amount_msat, moves what brings one channel to 50/50. \
     dryrun=true quotes the route and fee without paying.";

type State = Arc<Rebalancer<ClnNode>>;

fn non_negative(name: &str, v: i64) -> Result<u64, String> {
    u64::try_from(v).map_err(|_| format!("{name} must be >= 0, got {v}"))
}

/// What the binary says when started by hand (or by `reckless` testing it) instead of by
/// lightningd, which sets `LIGHTNINGD_PLUGIN=1` for its plugins.
const STANDALONE: &str = concat!(
    "cln-rebalance ",
    env!("CARGO_PKG_VERSION"),
    ": a Core Lightning plugin for circular rebalancing. lightningd starts it: add \
     `plugin=/path/to/cln-rebalance` to its config, or run `lightning-cli plugin start /path/to/cln-rebalance`."
);

#[tokio::main]
async fn main() -> Result<(), anyhow::Error> {
    if std::env::var_os("LIGHTNINGD_PLUGIN").is_none() {
        println!("{STANDALONE}");
        return Ok(());
    }
    cln_rebalance::memory::configure();
    let Some(configured) = Builder::new(tokio::io::stdin(), tokio::io::stdout())
        .option(OPT_MAXFEEPPM)
        .option(OPT_EXEMPTFEE)
        .option(OPT_RETRY_FOR)
        .option(OPT_GRAPH_MAX_AGE)
        .option(OPT_ROUTING)
        .option(OPT_HALF_LIFE)
        .option(OPT_PRIOR)
        .rpcmethod_from_builder(
            cln_plugin::RpcMethodBuilder::new("rebalance", rebalance)
                .usage(REBALANCE_USAGE)
                .description(REBALANCE_DESCRIPTION),
        )
        .rpcmethod_from_builder(
            cln_plugin::RpcMethodBuilder::new("balances", balances)
                .usage("[id]")
                .description("How each channel's funds are split between us and the peer (id: filter by peer id or short_channel_id)"),
        )
        .rpcmethod_from_builder(
            cln_plugin::RpcMethodBuilder::new("rebalance-liquidity", liquidity)
                .usage("[short_channel_id] [reset]")
                .description("What the plugin has learned about channels' liquidity (bounds, failures, success estimates), \
                     all of it or one channel's; reset=true forgets it (all, or that channel's)"),
        )
        .hook("invoice_payment", invoice_payment)
        .subscribe("shutdown", shutdown)
        .dynamic()
        .configure()
        .await?
    else {
        return Ok(()); // lightningd only asked for the manifest
    };

    let read = |opt: &DefaultIntegerConfigOption| -> Result<u64, String> {
        let v = configured.option(opt).map_err(|e| e.to_string())?;
        non_negative(opt.name(), v)
    };
    let config = match (|| -> Result<Config, String> {
        let retry_for_secs = read(&OPT_RETRY_FOR)?;
        if retry_for_secs == 0 || retry_for_secs > params::MAX_RETRY_FOR {
            return Err(format!(
                "rebalance-retry-for must be 1..={}",
                params::MAX_RETRY_FOR
            ));
        }
        let text = |opt: &DefaultStringConfigOption| -> Result<String, String> {
            configured.option(opt).map_err(|e| e.to_string())
        };
        let routing: Routing = text(&OPT_ROUTING)?
            .parse()
            .map_err(|e| format!("rebalance-routing: {e}"))?;
        let prior: Prior = text(&OPT_PRIOR)?
            .parse()
            .map_err(|e| format!("rebalance-liquidity-prior: {e}"))?;
        let half_life_secs = read(&OPT_HALF_LIFE)?;
        if half_life_secs == 0 {
            return Err("rebalance-liquidity-half-life must be at least 1 second".into());
        }
        Ok(Config {
            maxfeeppm: read(&OPT_MAXFEEPPM)?,
            exemptfee_msat: read(&OPT_EXEMPTFEE)?,
            retry_for_secs,
            graph_max_age: Duration::from_secs(read(&OPT_GRAPH_MAX_AGE)?),
            routing,
            model: ModelConfig {
                half_life_secs,
                prior,
                ..ModelConfig::default()
            },
            ..Config::default()
        })
    })() {
        Ok(c) => c,
        Err(reason) => {
            configured.disable(&reason).await?;
            return Ok(());
        }
    };
    let conf = configured.configuration();
    let rpc_path = std::path::Path::new(&conf.lightning_dir).join(&conf.rpc_file);
    let state: State = Arc::new(Rebalancer::new(ClnNode::new(rpc_path), config));
    let plugin = configured.start(state.clone()).await?;
    // An earlier run stopped mid-rebalance may have left an unpaid invoice: remove it. What
    // earlier runs learned of liquidity comes back from the datastore.
    tokio::spawn(async move {
        state.delete_stale_invoices().await;
        state.load_liquidity().await;
    });
    plugin.join().await?;
    // cln-plugin returns from join() but the runtime would linger until stdin closes.
    std::process::exit(0);
}

async fn rebalance(plugin: Plugin<State>, params: Value) -> Result<Value, anyhow::Error> {
    let state = plugin.state().clone();
    let result = match params::rebalance(&params) {
        Ok(p) => state.rebalance(p).await,
        Err(e) => Err(e),
    };
    result.map_err(anyhow::Error::new)
}

async fn balances(plugin: Plugin<State>, params: Value) -> Result<Value, anyhow::Error> {
    let state = plugin.state().clone();
    let result = match params::balances(&params) {
        Ok(p) => state.balances(p).await,
        Err(e) => Err(e),
    };
    result.map_err(anyhow::Error::new)
}

async fn liquidity(plugin: Plugin<State>, params: Value) -> Result<Value, anyhow::Error> {
    let state = plugin.state().clone();
    let result = match params::liquidity(&params) {
        Ok(p) => state.liquidity_report(p).await,
        Err(e) => Err(e),
    };
    result.map_err(anyhow::Error::new)
}

async fn invoice_payment(plugin: Plugin<State>, payload: Value) -> Result<Value, anyhow::Error> {
    Ok(plugin.state().on_invoice_payment(&payload).await)
}

async fn shutdown(plugin: Plugin<State>, _: Value) -> Result<(), anyhow::Error> {
    log::info!("shutting down");
    plugin.shutdown()?;
    std::process::exit(0);
}

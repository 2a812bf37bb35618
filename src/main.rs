//! Plugin wiring only: options, methods, the hook, state, start and exit.

use cln_plugin::{Builder, Plugin};
use cln_rebalance::front::notify::{self, Notifier};
use cln_rebalance::lightningd::ClnNode;
use cln_rebalance::progress::Progress;
use cln_rebalance::rebalance::session::Extra;
use cln_rebalance::rebalance::{arrival, cleanup};
use cln_rebalance::{options, params};
use serde_json::Value;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

const REBALANCE_USAGE: &str =
    "outgoing incoming [amount_msat] [maxfeeppm] [exemptfee] [retry_for] [dryrun] [maxparts]";
const REBALANCE_DESCRIPTION: &str = "Move amount_msat (or `max`: the most probes find can move now) of our liquidity out of channel `outgoing` and back in through \
     channel `incoming` (short_channel_id or peer node id) by paying ourselves along a circle. Fee cap: \
     max(exemptfee, amount x maxfeeppm / 1e6). Without amount_msat, moves what brings one channel to 50/50. \
     dryrun=true quotes the route (or parts) and fee without paying. maxparts: most parts to pay it in (paid in parts when \
     cheaper or likelier than one route; 1: one route at a time).";

/// What every handler gets: the plugin's state, and where progress notifications go.
#[derive(Clone)]
struct App {
    state: Arc<cln_rebalance::state::State<ClnNode>>,
    notifier: Notifier,
}

type State = App;

/// What the binary says when started by hand (or by `reckless` testing it) instead of by
/// lightningd, which sets `LIGHTNINGD_PLUGIN=1` for its plugins and always sends getmanifest.
const STANDALONE: &str = concat!(
    "cln-rebalance ",
    env!("CARGO_PKG_VERSION"),
    ": a Core Lightning plugin for circular rebalancing. lightningd starts it: add \
     `plugin=/path/to/cln-rebalance` to its config, or run `lightning-cli plugin start /path/to/cln-rebalance`."
);

/// Plugin input that records whether anything at all was read from it.
struct NoticeInput<R> {
    inner: R,
    used: Arc<AtomicBool>,
}

impl<R> NoticeInput<R> {
    fn new(inner: R) -> Self {
        NoticeInput {
            inner,
            used: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for NoticeInput<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.used.store(true, Ordering::Relaxed);
        }
        r
    }
}

#[tokio::main]
async fn main() -> Result<(), anyhow::Error> {
    if std::env::var_os("LIGHTNINGD_PLUGIN").is_none() {
        println!("{STANDALONE}");
        return Ok(());
    }
    cln_rebalance::memory::configure();
    // `lightning-cli reckless install` runs reckless from lightningd's recklessrpc plugin, so
    // reckless's test run of this binary inherits LIGHTNINGD_PLUGIN=1; when reckless had asked
    // to create the config file, its stdin (and so ours) is already closed. Nothing at all on
    // stdin means no lightningd: exit 0 as when started by hand, not "Lost connection".
    let stdin = NoticeInput::new(tokio::io::stdin());
    let stdin_used = stdin.used.clone();
    // `check` is answered in front of cln-plugin, which cannot (see check.rs).
    let front = cln_rebalance::front::Front {
        checker: params::check,
        reports_progress: |method| {
            matches!(method, "rebalance" | "rebalanceall" | "rebalance-probe")
        },
    };
    let (input, output, drain, notifier) =
        cln_rebalance::front::wire(stdin, tokio::io::stdout(), front);
    let configured = options::register(Builder::new(input, output))
        .rpcmethod_from_builder(
            cln_plugin::RpcMethodBuilder::new("rebalance", rebalance)
                .usage(REBALANCE_USAGE)
                .description(REBALANCE_DESCRIPTION),
        )
        .rpcmethod_from_builder(
            cln_plugin::RpcMethodBuilder::new("rebalance-probe", probe)
                .usage("outgoing incoming [amount_msat] [maxfeeppm] [exemptfee] [maxparts]")
                .description("How much can move now from `outgoing` to `incoming` within the fee cap (without amount_msat), \
                     or whether amount_msat can, and over which route(s) at what fee: found with probes that can never be \
                     paid (a random payment hash); nothing is paid, every probe teaches the model. `rebalance ... \
                     amount_msat=max` moves what it finds."),
        )
        .rpcmethod_from_builder(
            cln_plugin::RpcMethodBuilder::new("balances", balances)
                .usage("[id] [quote]")
                .description("How each channel's funds are split, with fees both ways, HTLCs in flight, reserves, distance from \
                     target, source or sink and the last rebalance; per-peer totals; the moves rebalanceall would make, each \
                     ready to run (quote=true prices them with a dry run). id filters by peer id or short_channel_id. \
                     JSON for scripts; balances-table shows the same as a table."),
        )
        .rpcmethod_from_builder(
            cln_plugin::RpcMethodBuilder::new("balances-table", balances_table)
                .usage("[id] [quote]")
                .description("balances as a table to scan (lightning-cli prints it as it is)"),
        )
        .rpcmethod_from_builder(
            cln_plugin::RpcMethodBuilder::new("rebalance-liquidity", liquidity)
                .usage("[short_channel_id] [reset]")
                .description("What the plugin has learned about channels' liquidity (bounds, failures, success estimates), \
                     all of it or one channel's; reset=true forgets it (all, or that channel's)"),
        )
        .rpcmethod_from_builder(
            cln_plugin::RpcMethodBuilder::new("rebalanceall", rebalanceall)
                .usage("[min_amount] [feeratio] [target] [budget] [dryrun] [wait]")
                .description("Plan moves that bring every channel toward target (rebalance-target, default 50%) and run them \
                     in the background, each paying at most feeratio x what we charge to forward it out through its \
                     incoming channel, within the budgets. Answers at once with the plan; dryrun=true only plans; wait=true follows \
                     the job (a line per move, a bar over the plan) and answers when it has ended."),
        )
        .rpcmethod_from_builder(
            cln_plugin::RpcMethodBuilder::new("rebalancestop", rebalancestop)
                .usage("")
                .description("Stop the running rebalanceall job: no new attempt starts, the ones in flight end; says what the job did"),
        )
        .rpcmethod_from_builder(
            cln_plugin::RpcMethodBuilder::new("rebalancereport", rebalancereport)
                .usage("[days]")
                .description("What rebalancing did over the last days (default 30): totals, per channel, fee budget used, \
                     and whether forwarding on the channels we rebalanced into paid it back"),
        )
        .rpcmethod_from_builder(
            cln_plugin::RpcMethodBuilder::new("rebalancereport-table", rebalancereport_table)
                .usage("[days]")
                .description("rebalancereport as text to read (lightning-cli prints it as it is)"),
        )
        .rpcmethod_from_builder(
            cln_plugin::RpcMethodBuilder::new("rebalance-settings", settings)
                .usage("[id] [exclude] [target] [clear]")
                .description("Per-channel or per-peer settings for automatic rebalancing, kept in the datastore: \
                     with no id lists them; id exclude=true|false or target=PERCENT sets; id clear=true removes"),
        )
        .hook("invoice_payment", invoice_payment)
        .subscribe("shutdown", shutdown)
        .subscribe("sendpay_failure", sendpay_failure)
        .dynamic()
        .configure()
        .await;
    let configured = match configured {
        Ok(Some(configured)) => configured,
        Ok(None) => {
            drain.wait().await; // lightningd only asked for the manifest: let it reach lightningd
            return Ok(());
        }
        Err(_) if !stdin_used.load(Ordering::Relaxed) => {
            eprintln!("{STANDALONE}");
            return Ok(());
        }
        Err(e) => return Err(e),
    };

    let config = match options::config(&configured) {
        Ok(c) => c,
        Err(reason) => {
            configured.disable(&reason).await?;
            drain.wait().await;
            return Ok(());
        }
    };
    let conf = configured.configuration();
    let rpc_path = std::path::Path::new(&conf.lightning_dir).join(&conf.rpc_file);
    let node = ClnNode::new(rpc_path);
    // An unsupported lightningd is told now, in the init answer, not by some call failing later.
    let lightningd_version = match supported_lightningd(&node).await {
        Ok(v) => v,
        Err(reason) => {
            configured.disable(&reason).await?;
            drain.wait().await;
            return Ok(());
        }
    };
    // One line saying it runs, and with what: the first thing an operator looks for in the log.
    log::info!(
        "cln-rebalance {} initialized on lightningd {lightningd_version}: maxfeeppm {}, \
         exemptfee {}msat, retry_for {}s, maxparts {}, background probes {}/hour",
        env!("CARGO_PKG_VERSION"),
        config.maxfeeppm,
        config.exemptfee_msat,
        config.retry_for_secs,
        config.max_parts,
        config.probe_per_hour
    );
    let state = Arc::new(cln_rebalance::state::State::new(node, config));
    let plugin = configured
        .start(App {
            state: state.clone(),
            notifier,
        })
        .await?;
    // An earlier run stopped mid-rebalance may have left an unpaid invoice: remove it. What
    // earlier runs learned of liquidity comes back from the datastore.
    // The history comes back too, and rebalances that completed while we were down are
    // recorded once. Then askrene: our layer made, what lightningd's payments learned read, the
    // layer aged from then on. Background probing, if on. Then the schedule, if any.
    // Stale invoices go before the reconcile: one paid in between is then recorded at once
    // (the other way round, a payment landing after the reconcile read the invoices but
    // before its invoice was deleted stayed out of the history until the next start).
    tokio::spawn(async move {
        state.load_history().await;
        cleanup::delete_stale_invoices(&state).await;
        state.reconcile_history().await;
        state.load_liquidity().await;
        state.start_askrene().await;
        tokio::spawn(state.clone().keep_askrene_layer_aged());
        tokio::spawn(state.clone().run_background_probing());
        state.run_schedule().await;
    });
    plugin.join().await?;
    // cln-plugin returns from join() but the runtime would linger until stdin closes.
    std::process::exit(0);
}

/// Whether the lightningd we run in is a release the plugin supports (`getinfo`'s version,
/// else the `LIGHTNINGD_VERSION` lightningd starts plugins with).
async fn supported_lightningd(node: &ClnNode) -> Result<String, String> {
    use cln_rebalance::lightningd::{Lightningd, version};
    let reported = match node.getinfo().await {
        Ok(info) if !info.version.is_empty() => info.version,
        _ => std::env::var("LIGHTNINGD_VERSION").unwrap_or_default(),
    };
    version::check(&reported).map(|_| reported)
}

async fn rebalance(plugin: Plugin<State>, params: Value) -> Result<Value, anyhow::Error> {
    let (id, params) = notify::unwrap(params);
    let app = plugin.state();
    let progress = id.map(|id| Arc::new(app.notifier.for_request(id)));
    let result = match params::rebalance(&params) {
        Ok(p) => {
            let extra = Extra {
                progress: progress.clone().map(|p| p as Arc<dyn Progress>),
                ..Extra::default()
            };
            app.state.rebalance_with(p, extra).await
        }
        Err(e) => Err(e),
    };
    if let Some(p) = progress {
        p.flush().await;
    }
    result.map_err(anyhow::Error::new)
}

async fn probe(plugin: Plugin<State>, params: Value) -> Result<Value, anyhow::Error> {
    let (id, params) = notify::unwrap(params);
    let app = plugin.state();
    let progress = id.map(|id| Arc::new(app.notifier.for_request(id)));
    let result = match params::probe(&params) {
        Ok(p) => {
            app.state
                .rebalance_probe(p, progress.clone().map(|p| p as Arc<dyn Progress>))
                .await
        }
        Err(e) => Err(e),
    };
    if let Some(p) = progress {
        p.flush().await;
    }
    result.map_err(anyhow::Error::new)
}

async fn balances(plugin: Plugin<State>, params: Value) -> Result<Value, anyhow::Error> {
    let state = plugin.state().state.clone();
    let result = match params::balances(&params) {
        Ok(p) => state.balances(p).await,
        Err(e) => Err(e),
    };
    result.map_err(anyhow::Error::new)
}

async fn balances_table(plugin: Plugin<State>, params: Value) -> Result<Value, anyhow::Error> {
    let state = plugin.state().state.clone();
    let result = match params::balances(&params) {
        Ok(p) => state.balances_table(p).await,
        Err(e) => Err(e),
    };
    result.map_err(anyhow::Error::new)
}

async fn liquidity(plugin: Plugin<State>, params: Value) -> Result<Value, anyhow::Error> {
    let state = plugin.state().state.clone();
    let result = match params::liquidity(&params) {
        Ok(p) => state.liquidity_report(p).await,
        Err(e) => Err(e),
    };
    result.map_err(anyhow::Error::new)
}

async fn rebalanceall(plugin: Plugin<State>, params: Value) -> Result<Value, anyhow::Error> {
    let (id, params) = notify::unwrap(params);
    let app = plugin.state();
    let result = match params::rebalanceall(&params) {
        Ok(p) if p.wait => {
            let progress = id.map(|id| Arc::new(app.notifier.for_request(id)));
            let r = app
                .state
                .rebalanceall_wait(p, progress.clone().map(|p| p as Arc<dyn Progress>))
                .await;
            if let Some(p) = progress {
                p.flush().await;
            }
            r
        }
        Ok(p) => app.state.rebalanceall(p).await,
        Err(e) => Err(e),
    };
    result.map_err(anyhow::Error::new)
}

async fn rebalancestop(plugin: Plugin<State>, params: Value) -> Result<Value, anyhow::Error> {
    let state = plugin.state().state.clone();
    let result = match params::rebalancestop(&params) {
        Ok(()) => state.rebalancestop().await,
        Err(e) => Err(e),
    };
    result.map_err(anyhow::Error::new)
}

async fn rebalancereport(plugin: Plugin<State>, params: Value) -> Result<Value, anyhow::Error> {
    let state = plugin.state().state.clone();
    let result = match params::rebalancereport(&params) {
        Ok(days) => state.rebalancereport(days).await,
        Err(e) => Err(e),
    };
    result.map_err(anyhow::Error::new)
}

async fn rebalancereport_table(
    plugin: Plugin<State>,
    params: Value,
) -> Result<Value, anyhow::Error> {
    let state = plugin.state().state.clone();
    let result = match params::rebalancereport(&params) {
        Ok(days) => state.rebalancereport_table(days).await,
        Err(e) => Err(e),
    };
    result.map_err(anyhow::Error::new)
}

async fn settings(plugin: Plugin<State>, params: Value) -> Result<Value, anyhow::Error> {
    let state = plugin.state().state.clone();
    let result = match params::settings(&params) {
        Ok(p) => state.rebalance_settings(p).await,
        Err(e) => Err(e),
    };
    result.map_err(anyhow::Error::new)
}

async fn invoice_payment(plugin: Plugin<State>, payload: Value) -> Result<Value, anyhow::Error> {
    Ok(arrival::on_invoice_payment(&plugin.state().state, &payload).await)
}

/// A payment failed: its failure message is kept for a `waitsendpay` answered without it.
async fn sendpay_failure(plugin: Plugin<State>, v: Value) -> Result<(), anyhow::Error> {
    plugin.state().state.node.failures.record(&v);
    Ok(())
}

async fn shutdown(plugin: Plugin<State>, _: Value) -> Result<(), anyhow::Error> {
    log::info!("shutting down");
    plugin.shutdown()?;
    std::process::exit(0);
}

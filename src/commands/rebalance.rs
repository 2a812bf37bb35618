//! The rebalance algorithm: check the channels, quote a circular route, pay ourselves along it,
//! learn from failures and retry until `retry_for` runs out, and always clean up the invoice.
//!
//! Talks to lightningd only through [`Lightningd`]. Route math lives in `pathfind`/`route`.

use crate::commands::channels::{Role, balancing_amount, check_usable, resolve};
use crate::core::amount::{display_sat, fee_cap_msat, ppm};
use crate::core::graph::{Graph, Policy, Scid};
use crate::core::pathfind::{Exclusions, Query, Scratch, find_path};
use crate::core::route::{Hop, HopSpec, MAX_HOPS, MAX_TOTAL_CLTV, build_route, route_fee_msat};
use crate::error::{self, RpcFailure};
use crate::lightningd::{Lightningd, PeerChannel};
use crate::params::RebalanceParams;
use log::{info, warn};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Defaults from the plugin's options.
#[derive(Debug, Clone)]
pub struct Config {
    pub maxfeeppm: u64,
    pub exemptfee_msat: u64,
    pub retry_for_secs: u64,
    /// Rebuild the graph from `listchannels` when it is older than this.
    pub graph_max_age: Duration,
    /// `min_final_cltv_expiry` we put on our invoice.
    pub final_cltv: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            maxfeeppm: 1000,
            exemptfee_msat: 5000,
            retry_for_secs: 60,
            graph_max_age: Duration::from_secs(300),
            final_cltv: 18,
        }
    }
}

/// Blocks added to the final delay so a block found mid-payment does not fail it.
const FINAL_CLTV_MARGIN: u32 = 3;
/// Invoice labels we create start with this.
pub const LABEL_PREFIX: &str = "rebalance-";

/// BOLT 4 failure code flags.
const BADONION: u32 = 0x8000;
const PERM: u32 = 0x4000;
const NODE: u32 = 0x2000;
const UPDATE: u32 = 0x1000;
const TEMPORARY_CHANNEL_FAILURE: u32 = UPDATE | 7;

/// A rebalance whose payment may arrive: what the `invoice_payment` hook checks it against.
#[derive(Debug, Clone)]
struct InFlight {
    payment_hash: String,
    incoming_scid: String,
    /// Set by the hook when it refused the payment because it arrived on another channel.
    rejected_arrival: Option<String>,
}

struct CachedGraph {
    graph: Arc<Graph>,
    built: Instant,
    stale: bool,
}

/// Plugin-wide state: the node, defaults, the cached graph and the rebalances in flight.
pub struct Rebalancer<N: Lightningd> {
    pub node: N,
    pub config: Config,
    graph: tokio::sync::Mutex<Option<CachedGraph>>,
    inflight: Mutex<HashMap<String, InFlight>>,
    counter: AtomicU64,
}

/// waitsendpay / sendpay failure details (`error.data`), which cln-rpc has no type for.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PayFailure {
    pub erring_index: Option<u64>,
    pub erring_node: Option<String>,
    pub erring_channel: Option<String>,
    pub erring_direction: Option<u8>,
    pub failcode: Option<u32>,
    pub failcodename: Option<String>,
}

/// What one attempt did, for the result and error `data`.
#[derive(Debug, Clone)]
struct Attempt {
    route: Vec<String>,
    fee_msat: u64,
    outcome: String,
}

impl Attempt {
    fn to_json(&self) -> Value {
        json!({"route": self.route, "fee_msat": self.fee_msat, "outcome": self.outcome})
    }
}

fn attempts_json(a: &[Attempt]) -> Value {
    Value::Array(a.iter().map(Attempt::to_json).collect())
}

fn hops_json(hops: &[Hop]) -> Value {
    Value::Array(
        hops.iter()
            .map(|h| {
                json!({"short_channel_id": h.short_channel_id.to_string(), "direction": h.direction,
                       "node_id": h.node_id, "amount_msat": h.amount_msat, "delay": h.delay})
            })
            .collect(),
    )
}

/// A request whose channels and amount passed the checks.
struct Checked {
    our_id: String,
    out: PeerChannel,
    inc: PeerChannel,
    out_scid: String,
    inc_scid: String,
    amount_msat: u64,
}

/// How an attempt ended.
enum Outcome {
    Paid {
        fee_msat: u64,
    },
    /// Try another route.
    Retry,
    /// Stop: retrying cannot help.
    Stop(RpcFailure),
    /// An HTLC is still in flight when time ran out.
    StillInFlight,
}

impl<N: Lightningd> Rebalancer<N> {
    pub fn new(node: N, config: Config) -> Self {
        Rebalancer {
            node,
            config,
            graph: tokio::sync::Mutex::new(None),
            inflight: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
        }
    }

    /// The cached graph, rebuilt from `listchannels` when missing, stale or too old. One
    /// refresh at a time; concurrent callers wait for it and share the result.
    pub async fn graph(&self) -> Result<Arc<Graph>, RpcFailure> {
        let mut cache = self.graph.lock().await;
        if let Some(c) = cache.as_ref()
            && !c.stale
            && c.built.elapsed() < self.config.graph_max_age
        {
            return Ok(c.graph.clone());
        }
        let started = Instant::now();
        let bytes = self
            .node
            .listchannels_json()
            .await
            .map_err(|e| error::from_lightningd("listchannels", &e))?;
        let fetched = started.elapsed();
        let graph = tokio::task::spawn_blocking(move || Graph::from_listchannels_json(&bytes))
            .await
            .map_err(|e| {
                RpcFailure::new(error::PLUGIN_ERROR, format!("graph build panicked: {e}"))
            })?
            .map_err(|e| RpcFailure::new(error::PLUGIN_ERROR, e.to_string()))?;
        info!(
            "graph refreshed: {} nodes, {} channel directions (listchannels {} ms, build {} ms)",
            graph.node_count(),
            graph.edge_count(),
            fetched.as_millis(),
            (started.elapsed() - fetched).as_millis()
        );
        let graph = Arc::new(graph);
        *cache = Some(CachedGraph {
            graph: graph.clone(),
            built: Instant::now(),
            stale: false,
        });
        Ok(graph)
    }

    /// Marks the cached graph out of date (a node told us its policy changed).
    async fn mark_graph_stale(&self) {
        if let Some(c) = self.graph.lock().await.as_mut() {
            c.stale = true;
        }
    }

    /// The `invoice_payment` hook: refuse a rebalance payment that arrived on any channel but
    /// the one chosen as incoming (so no fee is paid for a rebalance that did not happen).
    /// Every other invoice is answered `continue` at once, without any RPC call.
    pub async fn on_invoice_payment(&self, payload: &Value) -> Value {
        let label = payload["payment"]["label"].as_str().unwrap_or_default();
        if !label.starts_with(LABEL_PREFIX) {
            return json!({"result": "continue"});
        }
        let expected = self
            .inflight
            .lock()
            .expect("inflight lock")
            .get(label)
            .cloned();
        let Some(expected) = expected else {
            // Not one of ours in flight (an operator's own label, say): not ours to judge.
            return json!({"result": "continue"});
        };
        let arrived = match self.node.listpeerchannels().await {
            Ok(chans) => arrival_channel(&chans, &expected.payment_hash),
            Err(e) => {
                warn!(
                    "refusing payment for {label}: cannot check its arrival channel: {}",
                    e.message
                );
                return json!({"result": "reject"});
            }
        };
        match arrived {
            Some(scid) if scid == expected.incoming_scid => json!({"result": "continue"}),
            other => {
                let seen = other.unwrap_or_else(|| "an unknown channel".to_string());
                info!(
                    "refusing payment for {label}: it arrived on {seen}, not on incoming channel {}",
                    expected.incoming_scid
                );
                if let Some(f) = self.inflight.lock().expect("inflight lock").get_mut(label) {
                    f.rejected_arrival = Some(seen);
                }
                json!({"result": "reject"})
            }
        }
    }

    /// Deletes unpaid rebalance invoices no rebalance of ours is waiting for: left by a plugin
    /// that was stopped or crashed mid-rebalance. Returns how many were deleted.
    pub async fn delete_stale_invoices(&self) -> usize {
        let Ok(invoices) = self.node.listinvoices(None).await else {
            return 0;
        };
        let mut deleted = 0;
        for inv in invoices {
            let ours = self
                .inflight
                .lock()
                .expect("inflight lock")
                .contains_key(&inv.label);
            if inv.label.starts_with(LABEL_PREFIX) && inv.status == "unpaid" && !ours {
                match self.node.delinvoice(&inv.label, "unpaid").await {
                    Ok(()) => deleted += 1,
                    Err(e) => warn!(
                        "could not delete stale invoice {}: {}",
                        inv.label, e.message
                    ),
                }
            }
        }
        if deleted > 0 {
            info!("deleted {deleted} unpaid rebalance invoice(s) left by an earlier run");
        }
        deleted
    }

    fn new_label(&self, out: &str, inc: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{LABEL_PREFIX}{out}-{inc}-{t:x}-{}-{n}", std::process::id())
    }

    /// The channels and amount of a request, checked: both channels exist, differ, are usable,
    /// and can carry the amount. Nothing is created or paid before this passes.
    async fn check_request(&self, p: &RebalanceParams) -> Result<Checked, RpcFailure> {
        let info = self
            .node
            .getinfo()
            .await
            .map_err(|e| error::from_lightningd("getinfo", &e))?;
        let chans = self
            .node
            .listpeerchannels()
            .await
            .map_err(|e| error::from_lightningd("listpeerchannels", &e))?;
        let out = resolve(&chans, &p.outgoing, Role::Outgoing)?.clone();
        let inc = resolve(&chans, &p.incoming, Role::Incoming)?.clone();
        let out_scid = out.short_channel_id.clone().unwrap_or_default();
        let inc_scid = inc.short_channel_id.clone().unwrap_or_default();
        if out_scid == inc_scid {
            return Err(RpcFailure::param(
                "incoming",
                format!(
                    "channel {inc_scid} is also the outgoing channel: a rebalance needs two different channels"
                ),
            ));
        }
        check_usable(&out, Role::Outgoing)?;
        check_usable(&inc, Role::Incoming)?;
        let amount_msat = match p.amount_msat {
            Some(a) => a,
            None => balancing_amount(&out, &inc)?,
        };
        if inc.receivable_msat < amount_msat {
            return Err(RpcFailure::param(
                "incoming",
                format!(
                    "channel {inc_scid} can receive only {} now, less than the {} asked",
                    display_sat(inc.receivable_msat),
                    display_sat(amount_msat)
                ),
            ));
        }
        if out.spendable_msat < amount_msat {
            return Err(RpcFailure::param(
                "outgoing",
                format!(
                    "channel {out_scid} can spend only {} now, less than the {} asked (plus fees)",
                    display_sat(out.spendable_msat),
                    display_sat(amount_msat)
                ),
            ));
        }
        Ok(Checked {
            our_id: info.id,
            out,
            inc,
            out_scid,
            inc_scid,
            amount_msat,
        })
    }

    /// `rebalance`: see the README for the parameters and results.
    pub async fn rebalance(&self, p: RebalanceParams) -> Result<Value, RpcFailure> {
        let started = Instant::now();
        let Checked {
            our_id,
            out,
            inc,
            out_scid,
            inc_scid,
            amount_msat,
        } = self.check_request(&p).await?;
        let maxfeeppm = p.maxfeeppm.unwrap_or(self.config.maxfeeppm);
        let exemptfee = p.exemptfee.unwrap_or(self.config.exemptfee_msat);
        let retry_for = p.retry_for.unwrap_or(self.config.retry_for_secs);
        let cap = fee_cap_msat(amount_msat, maxfeeppm, exemptfee);

        let graph = self.graph().await?;
        let mut plan = Plan::new(
            &our_id,
            &out,
            &inc,
            amount_msat,
            self.config.final_cltv + FINAL_CLTV_MARGIN,
            &graph,
        )?;
        let deadline = started + Duration::from_secs(retry_for);
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut invoice: Option<(String, String, String)> = None; // label, payment_hash, payment_secret
        let mut scratch = Scratch::default();
        let mut last_sent: Vec<Hop> = Vec::new();

        let result = loop {
            let hops = match plan.next_route(&graph, &mut scratch) {
                Some(h) => h,
                None => {
                    let why = if attempts.is_empty() {
                        format!(
                            "no route from {} back to {} for {} (checked {} channel directions)",
                            out.peer_id,
                            inc.peer_id,
                            display_sat(amount_msat),
                            graph.edge_count()
                        )
                    } else {
                        format!("no more routes after {} failed attempt(s)", attempts.len())
                    };
                    break Err(RpcFailure::new(error::PAY_ROUTE_NOT_FOUND, why)
                        .with_data(json!({"attempts": attempts_json(&attempts)})));
                }
            };
            let fee_msat = route_fee_msat(&hops);
            if fee_msat > cap {
                break Err(RpcFailure::new(
                    error::PAY_ROUTE_TOO_EXPENSIVE,
                    format!(
                        "the cheapest route{} costs {fee_msat}msat ({} ppm), more than the fee cap of {cap}msat \
                         (max of exemptfee {exemptfee}msat and maxfeeppm {maxfeeppm} x amount)",
                        if attempts.is_empty() { "" } else { " left" },
                        ppm(fee_msat, amount_msat)
                    ),
                )
                .with_data(json!({"cheapest_fee_msat": fee_msat, "fee_cap_msat": cap,
                                  "route": hops_json(&hops), "attempts": attempts_json(&attempts)})));
            }
            if hops[0].amount_msat > out.spendable_msat {
                break Err(RpcFailure::param(
                    "outgoing",
                    format!(
                        "channel {out_scid} can spend {}, not the {} this route needs with fees",
                        display_sat(out.spendable_msat),
                        display_sat(hops[0].amount_msat)
                    ),
                ));
            }
            if p.dryrun {
                return Ok(json!({
                    "status": "dryrun",
                    "outgoing_scid": out_scid,
                    "incoming_scid": inc_scid,
                    "amount_msat": amount_msat,
                    "fee_msat": fee_msat,
                    "fee_ppm": ppm(fee_msat, amount_msat),
                    "fee_cap_msat": cap,
                    "hops": hops.len(),
                    "route": hops_json(&hops),
                    "message": format!("would rebalance {} from {out_scid} to {inc_scid} for {fee_msat}msat ({} ppm) over {} hops; nothing paid",
                        display_sat(amount_msat), ppm(fee_msat, amount_msat), hops.len()),
                }));
            }
            if Instant::now() >= deadline {
                break Err(RpcFailure::new(
                    error::PAY_STOPPED_RETRYING,
                    format!(
                        "gave up after {retry_for}s and {} attempt(s)",
                        attempts.len()
                    ),
                )
                .with_data(json!({"attempts": attempts_json(&attempts)})));
            }
            if invoice.is_none() {
                let label = self.new_label(&out_scid, &inc_scid);
                let inv = self
                    .node
                    .invoice(
                        amount_msat,
                        &label,
                        &format!("cln-rebalance {out_scid} -> {inc_scid}"),
                        retry_for + 60,
                        self.config.final_cltv,
                    )
                    .await
                    .map_err(|e| error::from_lightningd("invoice", &e))?;
                self.inflight.lock().expect("inflight lock").insert(
                    label.clone(),
                    InFlight {
                        payment_hash: inv.payment_hash.clone(),
                        incoming_scid: inc_scid.clone(),
                        rejected_arrival: None,
                    },
                );
                invoice = Some((label, inv.payment_hash, inv.payment_secret));
            }
            let (label, hash, secret) = invoice.as_ref().expect("created above");
            // The route is built to end at us; refuse to send anything that does not.
            if hops.last().map(|h| h.node_id.as_str()) != Some(our_id.as_str()) {
                break Err(RpcFailure::new(
                    error::PLUGIN_ERROR,
                    "internal error: a route that does not end at our node; nothing was sent",
                ));
            }
            let mut attempt = Attempt {
                route: hops
                    .iter()
                    .map(|h| h.short_channel_id.to_string())
                    .collect(),
                fee_msat,
                outcome: String::new(),
            };
            last_sent = hops.clone();
            let outcome = self
                .attempt(
                    &hops,
                    label,
                    hash,
                    secret,
                    deadline,
                    &mut plan,
                    &graph,
                    &mut attempt,
                )
                .await;
            info!(
                "rebalance {out_scid} -> {inc_scid} {}msat, attempt {} via {} for {fee_msat}msat: {}",
                amount_msat,
                attempts.len() + 1,
                attempt.route.join(","),
                attempt.outcome
            );
            attempts.push(attempt);
            match outcome {
                Outcome::Paid { fee_msat } => {
                    break Ok(json!({
                        "status": "complete",
                        "outgoing_scid": out_scid,
                        "incoming_scid": inc_scid,
                        "amount_msat": amount_msat,
                        "fee_msat": fee_msat,
                        "fee_ppm": ppm(fee_msat, amount_msat),
                        "attempts": attempts.len(),
                        "hops": hops.len(),
                        "route": hops_json(&hops),
                        "payment_hash": hash,
                        "duration_ms": started.elapsed().as_millis() as u64,
                        "message": format!("rebalanced {} from {out_scid} to {inc_scid} for {fee_msat}msat ({} ppm) in {} attempt(s)",
                            display_sat(amount_msat), ppm(fee_msat, amount_msat), attempts.len()),
                    }));
                }
                Outcome::Retry => continue,
                Outcome::Stop(f) => {
                    let mut data = f.data.clone().unwrap_or_else(|| json!({}));
                    data["attempts"] = attempts_json(&attempts);
                    break Err(f.with_data(data));
                }
                Outcome::StillInFlight => {
                    break Err(RpcFailure::new(
                        error::PAY_STOPPED_RETRYING,
                        format!(
                            "gave up after {retry_for}s with a payment still in flight; its invoice is \
                             deleted, so it cannot complete and will fail back when released"
                        ),
                    )
                    .with_data(json!({"attempts": attempts_json(&attempts), "payment_hash": hash})));
                }
            }
        };

        match invoice {
            None => result,
            Some((label, hash, _)) => {
                let cleaned = self.cleanup(&label, &hash, amount_msat, result).await;
                self.inflight.lock().expect("inflight lock").remove(&label);
                cleaned.map(|mut v| {
                    v["attempts"] = json!(attempts.len());
                    v["duration_ms"] = json!(started.elapsed().as_millis() as u64);
                    if v.get("outgoing_scid").is_none() {
                        // Paid after all, as we stopped waiting: over the last route sent.
                        v["outgoing_scid"] = json!(out_scid);
                        v["incoming_scid"] = json!(inc_scid);
                        v["hops"] = json!(last_sent.len());
                        v["route"] = hops_json(&last_sent);
                    }
                    v
                })
            }
        }
    }

    /// One sendpay + waitsendpay. Learns from the failure into `plan`.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        hops: &[Hop],
        label: &str,
        hash: &str,
        secret: &str,
        deadline: Instant,
        plan: &mut Plan,
        graph: &Graph,
        attempt: &mut Attempt,
    ) -> Outcome {
        if let Err(e) = self.node.sendpay(hops, hash, secret, label).await {
            return self.failed(e, hops, label, plan, graph, attempt).await;
        }
        loop {
            let remaining = deadline
                .saturating_duration_since(Instant::now())
                .as_secs()
                .max(1);
            match self.node.waitsendpay(hash, remaining).await {
                Ok(done) if done.status == "complete" => {
                    let fee = done.amount_sent_msat.saturating_sub(done.amount_msat);
                    attempt.outcome = "complete".into();
                    return Outcome::Paid { fee_msat: fee };
                }
                Ok(other) => {
                    attempt.outcome = format!("unexpected status {}", other.status);
                    return Outcome::Stop(RpcFailure::new(
                        error::PLUGIN_ERROR,
                        format!("waitsendpay answered status {}", other.status),
                    ));
                }
                Err(e) if e.code == Some(error::PAY_IN_PROGRESS) => {
                    // Still in flight: never start another attempt that could pay twice.
                    if Instant::now() >= deadline {
                        attempt.outcome = "still in flight when time ran out".into();
                        return Outcome::StillInFlight;
                    }
                }
                Err(e) => return self.failed(e, hops, label, plan, graph, attempt).await,
            }
        }
    }

    /// Classifies a sendpay/waitsendpay error: learn and retry, or stop with a plain reason.
    async fn failed(
        &self,
        e: cln_rpc::RpcError,
        hops: &[Hop],
        label: &str,
        plan: &mut Plan,
        graph: &Graph,
        attempt: &mut Attempt,
    ) -> Outcome {
        let f: PayFailure = e
            .data
            .clone()
            .and_then(|d| serde_json::from_value(d).ok())
            .unwrap_or_default();
        let code = e.code.unwrap_or(-1);
        let failcode = f.failcode.unwrap_or(0);
        let name = f
            .failcodename
            .clone()
            .unwrap_or_else(|| format!("failcode {failcode:#x}"));
        let index = f.erring_index.map(|i| i as usize);
        attempt.outcome = match (index, &f.erring_channel) {
            (Some(i), Some(c)) => format!("{name} at hop {i} (channel {c})"),
            (Some(i), None) => format!("{name} at hop {i}"),
            _ => format!("error {code}: {}", e.message),
        };
        if code != error::PAY_TRY_OTHER_ROUTE && code != 203 {
            return Outcome::Stop(RpcFailure::new(
                error::PAY_STOPPED_RETRYING,
                format!("payment failed ({code}): {}", e.message),
            ));
        }
        let n = hops.len();
        let out_scid = hops[0].short_channel_id.to_string();
        let last_hop_scid = hops[n - 1].short_channel_id.to_string();
        let inc_scid = plan.incoming_scid.to_string();
        match index {
            Some(0) => Outcome::Stop(RpcFailure::new(
                error::PAY_STOPPED_RETRYING,
                format!(
                    "our node could not send over outgoing channel {out_scid}: {name} ({})",
                    e.message
                ),
            )),
            Some(i) if i >= n => {
                let rejected = self
                    .inflight
                    .lock()
                    .expect("inflight lock")
                    .get(label)
                    .and_then(|f| f.rejected_arrival.clone());
                Outcome::Stop(match rejected {
                    Some(arrived) => RpcFailure::new(
                        error::PAY_STOPPED_RETRYING,
                        format!(
                            "the payment came back over channel {arrived} instead of incoming channel {inc_scid} \
                             (the peer chose another of its channels to us); it was refused, so nothing \
                             moved and no fee was paid. Pick the channel the peer prefers, or give the \
                             peer's other channels less spendable."
                        ),
                    )
                    .with_data(json!({"arrived_on": arrived})),
                    None => RpcFailure::new(
                        error::PAY_STOPPED_RETRYING,
                        format!("our own node refused the returning payment: {name}"),
                    ),
                })
            }
            Some(i)
                if i == n - 1
                    && (f.erring_channel.as_deref() == Some(inc_scid.as_str())
                        || f.erring_channel.as_deref() == Some(last_hop_scid.as_str())) =>
            {
                Outcome::Stop(RpcFailure::new(
                    error::PAY_STOPPED_RETRYING,
                    format!(
                        "the incoming peer {} could not forward back to us over incoming channel {inc_scid}: {name}",
                        hops[n - 2].node_id
                    ),
                ))
            }
            Some(i) => {
                if failcode & UPDATE != 0 && failcode != TEMPORARY_CHANNEL_FAILURE {
                    // A newer channel_update than our gossip: refresh the graph next time.
                    self.mark_graph_stale().await;
                }
                plan.learn(graph, &f, hops, i);
                Outcome::Retry
            }
            None => Outcome::Stop(RpcFailure::new(
                error::PAY_STOPPED_RETRYING,
                format!("payment failed without saying where: {}", e.message),
            )),
        }
    }

    /// Whatever happened, leave no unpaid rebalance invoice behind. If the invoice turns out to
    /// be paid (the payment landed right after we stopped waiting), report success.
    async fn cleanup(
        &self,
        label: &str,
        hash: &str,
        amount_msat: u64,
        result: Result<Value, RpcFailure>,
    ) -> Result<Value, RpcFailure> {
        if result.is_ok() {
            return result;
        }
        match self.node.delinvoice(label, "unpaid").await {
            Ok(()) => result,
            Err(e) => {
                let status = self
                    .node
                    .listinvoices(Some(label))
                    .await
                    .ok()
                    .and_then(|v| v.into_iter().next())
                    .map(|i| i.status);
                match status.as_deref() {
                    Some("paid") => {
                        let sent = self.node.listsendpays(hash).await.unwrap_or_default();
                        let done = sent.iter().find(|s| s.status == "complete");
                        let fee = done
                            .map(|s| s.amount_sent_msat.saturating_sub(s.amount_msat))
                            .unwrap_or(0);
                        info!("{label}: paid after all, as we stopped waiting");
                        Ok(
                            json!({"status": "complete", "amount_msat": amount_msat, "fee_msat": fee,
                                  "fee_ppm": ppm(fee, amount_msat), "payment_hash": hash,
                                  "message": "the payment completed just as we stopped waiting"}),
                        )
                    }
                    Some("expired") => {
                        let _ = self.node.delinvoice(label, "expired").await;
                        result
                    }
                    None => result,
                    Some(other) => {
                        warn!(
                            "could not delete invoice {label} (status {other}): {}",
                            e.message
                        );
                        result
                    }
                }
            }
        }
    }
}

/// Which channel (scid) the incoming HTLC for `payment_hash` sits on.
fn arrival_channel(chans: &[PeerChannel], payment_hash: &str) -> Option<String> {
    chans
        .iter()
        .find(|c| {
            c.htlcs
                .iter()
                .any(|h| h.direction == "in" && h.payment_hash == payment_hash)
        })
        .and_then(|c| c.short_channel_id.clone())
}

/// One rebalance's fixed hops, amount and what it has learned so far.
struct Plan {
    /// The incoming channel's real short_channel_id (the last hop may name it by alias).
    incoming_scid: Scid,
    first: HopSpec,
    last: HopSpec,
    amount_msat: u64,
    final_cltv: u32,
    query: Option<Query>,
    exclude: Exclusions,
    /// Both channels go to the same peer: the only route is straight through it, tried once.
    same_peer: bool,
    direct_failed: bool,
}

impl Plan {
    fn new(
        our_id: &str,
        out: &PeerChannel,
        inc: &PeerChannel,
        amount_msat: u64,
        final_cltv: u32,
        graph: &Graph,
    ) -> Result<Plan, RpcFailure> {
        let out_scid: Scid = out
            .short_channel_id
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| RpcFailure::param("outgoing", e))?;
        let inc_scid: Scid = inc
            .short_channel_id
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| RpcFailure::param("incoming", e))?;
        let our_dir =
            |c: &PeerChannel| c.direction.unwrap_or(u8::from(our_id > c.peer_id.as_str()));
        // The incoming peer's policy for forwarding to us: from listpeerchannels, else gossip.
        let remote = inc.updates.remote.map(|u| Policy {
            base_fee_millisatoshi: u32::try_from(u.fee_base_msat).unwrap_or(u32::MAX),
            fee_per_millionth: u.fee_proportional_millionths,
            delay: u.cltv_expiry_delta,
            htlc_minimum_msat: u.htlc_minimum_msat,
            htlc_maximum_msat: u.htlc_maximum_msat.unwrap_or(inc.total_msat),
        });
        let their_dir = 1 - our_dir(inc);
        let remote = remote
            .or_else(|| graph.edge_by_scid(inc_scid, their_dir).map(|e| graph.edge(e).policy))
            .ok_or_else(|| {
                RpcFailure::param(
                    "incoming",
                    format!("the peer's fee policy for channel {inc_scid} is not known yet (no channel_update)"),
                )
            })?;
        if amount_msat < remote.htlc_minimum_msat || amount_msat > remote.htlc_maximum_msat {
            return Err(RpcFailure::param(
                "amount_msat",
                format!(
                    "the incoming peer forwards between {}msat and {}msat on channel {inc_scid}",
                    remote.htlc_minimum_msat, remote.htlc_maximum_msat
                ),
            ));
        }
        let first = HopSpec {
            short_channel_id: out_scid,
            direction: our_dir(out),
            node_id: out.peer_id.clone(),
            policy: remote, // ignored: our own hop is free
        };
        // lightningd will not forward over a private channel named by its real scid (it hides
        // the channel from probing): the onion must name it by the alias the peer gave it.
        let last_scid = match (&inc.alias, inc.private) {
            (Some(a), true) => a
                .remote
                .as_deref()
                .and_then(|s| s.parse().ok())
                .unwrap_or(inc_scid),
            _ => inc_scid,
        };
        let last = HopSpec {
            short_channel_id: last_scid,
            direction: their_dir,
            node_id: our_id.to_string(),
            policy: remote,
        };
        let deliver_msat = remote
            .fee_msat(amount_msat)
            .and_then(|f| amount_msat.checked_add(f))
            .ok_or_else(|| RpcFailure::param("amount_msat", "too large"))?;
        let mut exclude = Exclusions::default();
        if let Some(us) = graph.node_idx(our_id) {
            exclude.nodes.insert(us); // a circle never passes through us in the middle
        }
        let query = match (graph.node_idx(&out.peer_id), graph.node_idx(&inc.peer_id)) {
            (Some(from), Some(to)) => Some(Query {
                from,
                to,
                deliver_msat,
                deliver_delay: final_cltv + remote.delay,
                max_edges: (MAX_HOPS - 2) as u32,
                max_delay: MAX_TOTAL_CLTV,
            }),
            _ => None,
        };
        Ok(Plan {
            incoming_scid: inc_scid,
            first,
            last,
            amount_msat,
            final_cltv,
            query,
            exclude,
            same_peer: out.peer_id == inc.peer_id,
            direct_failed: false,
        })
    }

    /// The cheapest route not yet ruled out, as sendpay hops.
    fn next_route(&self, graph: &Graph, scratch: &mut Scratch) -> Option<Vec<Hop>> {
        let middle: Vec<HopSpec> = if self.same_peer {
            if self.direct_failed {
                return None;
            }
            Vec::new()
        } else {
            let path = find_path(graph, self.query.as_ref()?, &self.exclude, scratch)?;
            path.edges
                .iter()
                .map(|&i| HopSpec::from_edge(graph, i))
                .collect()
        };
        let mut specs = Vec::with_capacity(middle.len() + 2);
        specs.push(self.first.clone());
        specs.extend(middle);
        specs.push(self.last.clone());
        build_route(&specs, self.amount_msat, self.final_cltv).ok()
    }

    /// Rules out what failed at hop `index` (the node at the end of hop `index` reported it).
    fn learn(&mut self, graph: &Graph, f: &PayFailure, hops: &[Hop], index: usize) {
        let failcode = f.failcode.unwrap_or(0);
        let erring_node = f
            .erring_node
            .clone()
            .or_else(|| hops.get(index.wrapping_sub(1)).map(|h| h.node_id.clone()));
        let edge = f
            .erring_channel
            .as_deref()
            .and_then(|s| s.parse::<Scid>().ok())
            .and_then(|scid| {
                let dir = f.erring_direction.or_else(|| {
                    hops.iter()
                        .find(|h| h.short_channel_id == scid)
                        .map(|h| h.direction)
                })?;
                graph.edge_by_scid(scid, dir)
            });
        self.direct_failed = true;
        let node_idx = erring_node.as_deref().and_then(|n| graph.node_idx(n));
        match (failcode & (NODE | BADONION) != 0, edge) {
            (true, _) | (false, None) => {
                if let Some(n) = node_idx {
                    self.exclude.nodes.insert(n);
                }
            }
            (false, Some(e)) if failcode == TEMPORARY_CHANNEL_FAILURE && failcode & PERM == 0 => {
                let carried = hops
                    .iter()
                    .find(|h| h.short_channel_id == graph.edge(e).short_channel_id)
                    .map(|h| h.amount_msat)
                    .unwrap_or(0);
                let limit = self.exclude.max_amount_msat.entry(e).or_insert(u64::MAX);
                *limit = (*limit).min(carried);
            }
            (false, Some(e)) => {
                self.exclude.edges.insert(e);
            }
        }
    }
}

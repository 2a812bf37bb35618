//! The rebalance algorithm: check the channels, quote a circular route, pay ourselves along it,
//! learn from every attempt and retry until `retry_for` runs out, and always clean up the
//! invoice.
//!
//! Talks to lightningd only through [`Lightningd`]. Route math lives in `core::pathfind` and
//! `core::route`; what is learned lives in `core::liquidity`. One [`Rebalancer`] serves every
//! call: its liquidity model is shared (behind a lock held only for updates and for building a
//! search's view), so what one rebalance learns the next, or a concurrent one, uses.
//!
//! A rebalance, step by step ([`Rebalancer::rebalance`]):
//! 1. [`Rebalancer::check_request`]: both channels exist, differ, are usable, carry the amount;
//! 2. [`Session::next_route`]: the best route not ruled out, by fee (+ risk with the model);
//! 3. [`Session::check_route`]: within the fee cap and what the outgoing channel can spend;
//! 4. [`Rebalancer::ensure_invoice`], then [`Rebalancer::attempt`]: sendpay + waitsendpay;
//! 5. [`Rebalancer::failed`] / [`Session::learn_settled`]: what the outcome teaches the model;
//! 6. [`Rebalancer::finish`]: delete an unpaid invoice, save the model.

use crate::clock::{Clock, SystemClock};
use crate::commands::channels::{Role, balancing_amount, check_usable, resolve};
use crate::core::amount::{display_sat, fee_cap_msat, ppm};
use crate::core::graph::{Graph, GraphBuilder, Policy, Scid};
use crate::core::history::{Entry, History, Outcome as HistoryOutcome};
use crate::core::liquidity::{Beliefs, ChanDir, Liquidity, ModelConfig};
use crate::core::pathfind::{Exclusions, FeeOnly, HopCost, Query, Scratch, find_path_with};
use crate::core::route::{Hop, HopSpec, MAX_HOPS, MAX_TOTAL_CLTV, build_route, route_fee_msat};
use crate::error::{self, RpcFailure};
use crate::lightningd::store::{self, LIQUIDITY_KEY, MAX_SAVED_ENTRIES};
use crate::lightningd::{Lightningd, PeerChannel};
use crate::params::RebalanceParams;
use log::{info, warn};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How routes are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// The cheapest route by fee; failures rule out channels for the rest of the call.
    FeeOnly,
    /// Fee + a risk cost from the liquidity model's success probability.
    Probabilistic,
}

impl std::str::FromStr for Routing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fee" => Ok(Routing::FeeOnly),
            "probabilistic" => Ok(Routing::Probabilistic),
            other => Err(format!("unknown routing {other:?} (probabilistic or fee)")),
        }
    }
}

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
    pub routing: Routing,
    /// Keep what was learned across rebalances (and in the datastore). Off: each rebalance
    /// starts from the prior (the simulation's "model without memory").
    pub liquidity_memory: bool,
    pub model: ModelConfig,
    /// Automatic rebalancing: planner, budgets, parallelism, schedule, settings.
    pub auto: crate::commands::auto::AutoConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            maxfeeppm: 1000,
            exemptfee_msat: 5000,
            retry_for_secs: 60,
            graph_max_age: Duration::from_secs(300),
            final_cltv: 18,
            routing: Routing::Probabilistic,
            liquidity_memory: true,
            model: ModelConfig::default(),
            auto: crate::commands::auto::AutoConfig::default(),
        }
    }
}

/// Blocks added to the final delay so a block found mid-payment does not fail it.
const FINAL_CLTV_MARGIN: u32 = 3;
/// Invoice labels we create start with this.
pub const LABEL_PREFIX: &str = "rebalance-";
/// Search states kept for the next rebalances: one per rebalance that may run at once (a job's
/// `rebalance-parallel` and a manual call or two); more are made, and dropped, when needed.
const MAX_SPARE_VIEWS: usize = 4;
/// Route search durations kept for the benchmark (the oldest are dropped past this).
const MAX_SEARCH_TIMES: usize = 100_000;

/// BOLT 4 failure code flags.
const BADONION: u32 = 0x8000;
const PERM: u32 = 0x4000;
const NODE: u32 = 0x2000;
const UPDATE: u32 = 0x1000;
const TEMPORARY_CHANNEL_FAILURE: u32 = UPDATE | 7;
const CHANNEL_DISABLED: u32 = UPDATE | 20;

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
    built_ms: u64,
    stale: bool,
}

/// Plugin-wide state: the node, defaults, the clock, the cached graph, the liquidity model and
/// the rebalances in flight.
pub struct Rebalancer<N: Lightningd> {
    pub node: N,
    pub config: Config,
    clock: Arc<dyn Clock>,
    graph: tokio::sync::Mutex<Option<CachedGraph>>,
    inflight: Mutex<HashMap<String, InFlight>>,
    counter: AtomicU64,
    liquidity: Mutex<Liquidity>,
    /// One datastore write at a time, so an older snapshot never overwrites a newer one.
    saving: tokio::sync::Mutex<()>,
    search_times: Mutex<Vec<Duration>>,
    /// Search state kept between rebalances (a view of the model and the search's per-node
    /// arrays, each sized to the graph): a rebalance takes one, or makes one, and gives it
    /// back, so rebuilding the view costs what the model holds, not the graph's size.
    spare_views: Mutex<Vec<(Beliefs, Scratch)>>,
    pub(crate) history: tokio::sync::Mutex<History>,
    /// Channels a rebalance in progress uses (scid -> how many): an automatic job never starts
    /// a move on one of them.
    busy: Mutex<HashMap<String, usize>>,
    /// The automatic rebalancing job, if one runs or ran last.
    pub(crate) job: Mutex<Option<Arc<crate::commands::auto::Job>>>,
    /// Channels a job gave up on, left out of jobs until the time given (unix seconds), with
    /// why: a scheduled job does not retry what the last one found hopeless.
    pub(crate) resting: Mutex<HashMap<String, (u64, String)>>,
}

/// What a caller inside the plugin (the automatic job) adds to a request.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// This fee cap instead of the one `maxfeeppm`/`exemptfee` give.
    pub fee_cap_msat: Option<u64>,
    /// The job the rebalance belongs to, for the history (0 = manual).
    pub job_id: u64,
    /// Set: start no further attempt (`rebalancestop`).
    pub cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
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
    /// Every channel of ours, as listpeerchannels showed them.
    ours: Vec<PeerChannel>,
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

/// One rebalance in progress: the request, the plan, what was tried.
struct Session {
    req: Checked,
    plan: Plan,
    graph: Arc<Graph>,
    cap_msat: u64,
    maxfeeppm: u64,
    exemptfee_msat: u64,
    retry_for: u64,
    deadline_ms: u64,
    started_ms: u64,
    attempts: Vec<Attempt>,
    /// label, payment_hash, payment_secret
    invoice: Option<(String, String, String)>,
    scratch: Scratch,
    beliefs: Beliefs,
    /// Without memory across rebalances, this rebalance's own model.
    local_model: Option<Mutex<Liquidity>>,
    last_sent: Vec<Hop>,
    extra: Extra,
}

impl<N: Lightningd> Rebalancer<N> {
    pub fn new(node: N, config: Config) -> Self {
        Self::with_clock(node, config, Arc::new(SystemClock))
    }

    pub fn with_clock(node: N, config: Config, clock: Arc<dyn Clock>) -> Self {
        Rebalancer {
            node,
            config,
            clock,
            graph: tokio::sync::Mutex::new(None),
            inflight: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
            liquidity: Mutex::new(Liquidity::new()),
            saving: tokio::sync::Mutex::new(()),
            search_times: Mutex::new(Vec::new()),
            spare_views: Mutex::new(Vec::new()),
            history: tokio::sync::Mutex::new(History::new()),
            busy: Mutex::new(HashMap::new()),
            job: Mutex::new(None),
            resting: Mutex::new(HashMap::new()),
        }
    }

    /// The channels rebalances in progress use now.
    pub fn busy_channels(&self) -> std::collections::HashSet<String> {
        self.busy
            .lock()
            .expect("busy lock")
            .keys()
            .cloned()
            .collect()
    }

    fn set_busy(&self, scids: [&str; 2], busy: bool) {
        let mut b = self.busy.lock().expect("busy lock");
        for s in scids {
            if busy {
                *b.entry(s.to_string()).or_insert(0) += 1;
            } else if let Some(n) = b.get_mut(s) {
                *n -= 1;
                if *n == 0 {
                    b.remove(s);
                }
            }
        }
    }

    /// The shared liquidity model (what every rebalance learns into).
    pub fn liquidity(&self) -> MutexGuard<'_, Liquidity> {
        self.liquidity.lock().expect("liquidity lock")
    }

    pub fn now_secs(&self) -> u64 {
        self.clock.now_secs()
    }

    /// Route search durations since the last call (for the benchmark).
    pub fn take_search_times(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.search_times.lock().expect("search times lock"))
    }

    /// The cached graph, rebuilt from `listchannels` when missing, stale or too old. One
    /// refresh at a time; concurrent callers wait for it and share the result.
    pub async fn graph(&self) -> Result<Arc<Graph>, RpcFailure> {
        let mut cache = self.graph.lock().await;
        let max_age_ms = self.config.graph_max_age.as_millis() as u64;
        if let Some(c) = cache.as_ref()
            && !c.stale
            && self.clock.now_ms().saturating_sub(c.built_ms) < max_age_ms
        {
            return Ok(c.graph.clone());
        }
        // Drop the old graph before building the new one: a refresh never holds two.
        *cache = None;
        let started = Instant::now();
        let bytes = self
            .node
            .listchannels_json()
            .await
            .map_err(|e| error::from_lightningd("listchannels", &e))?;
        let fetched = started.elapsed();
        let graph = tokio::task::spawn_blocking(move || {
            // The JSON goes before the layout is built: the two never sit in memory together.
            let parsed = GraphBuilder::from_listchannels_json(&bytes);
            drop(bytes);
            crate::memory::release_free_memory();
            parsed.map(GraphBuilder::build)
        })
        .await
        .map_err(|e| RpcFailure::new(error::PLUGIN_ERROR, format!("graph build panicked: {e}")))?
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
            built_ms: self.clock.now_ms(),
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

    /// Loads the model saved in lightningd's datastore. A missing record starts empty; a
    /// corrupt or foreign one is ignored with a log line. Returns the entries loaded.
    pub async fn load_liquidity(&self) -> usize {
        let entries = match self.node.listdatastore(&LIQUIDITY_KEY).await {
            Ok(e) => e,
            Err(e) => {
                warn!(
                    "liquidity model not loaded: listdatastore failed: {}",
                    e.message
                );
                return 0;
            }
        };
        let Some(entry) = entries.into_iter().find(|e| e.key == LIQUIDITY_KEY) else {
            info!("no saved liquidity model: starting from the prior");
            return 0;
        };
        let decoded = entry
            .hex
            .as_deref()
            .ok_or_else(|| "no hex value".to_string())
            .and_then(store::from_hex)
            .and_then(|b| Liquidity::decode(&b));
        match decoded {
            Ok(mut model) => {
                let now = self.clock.now_secs();
                model.prune(now, self.config.model.half_life_secs, MAX_SAVED_ENTRIES);
                let (chans, nodes) = model.len();
                info!("liquidity model loaded: {chans} channel directions, {nodes} nodes");
                self.liquidity().merge_older(model);
                chans
            }
            Err(why) => {
                warn!(
                    "ignoring the saved liquidity model at {}: {why}",
                    LIQUIDITY_KEY.join("/")
                );
                0
            }
        }
    }

    /// Writes the shared model to the datastore (pruned first, so it stays bounded).
    pub async fn save_liquidity(&self) {
        if !self.config.liquidity_memory {
            return;
        }
        let _one_at_a_time = self.saving.lock().await;
        let hex = {
            let mut m = self.liquidity();
            m.prune(
                self.clock.now_secs(),
                self.config.model.half_life_secs,
                MAX_SAVED_ENTRIES,
            );
            store::to_hex(&m.encode())
        };
        if let Err(e) = self
            .node
            .datastore(&LIQUIDITY_KEY, &hex, "create-or-replace")
            .await
        {
            warn!("could not save the liquidity model: {}", e.message);
        }
    }

    /// Forgets what was learned (all of it, or one channel) and saves that. Returns how many
    /// entries were dropped.
    pub async fn reset_liquidity(&self, scid: Option<Scid>) -> usize {
        let n = self.liquidity().reset(scid);
        self.save_liquidity().await;
        n
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
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
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
            ours: chans,
        })
    }

    /// `rebalance`: see the README for the parameters and results.
    pub async fn rebalance(&self, p: RebalanceParams) -> Result<Value, RpcFailure> {
        self.rebalance_with(p, Extra::default()).await
    }

    /// `rebalance` with what the automatic job adds (a fee cap, its id, a stop signal).
    pub async fn rebalance_with(
        &self,
        p: RebalanceParams,
        extra: Extra,
    ) -> Result<Value, RpcFailure> {
        let started_ms = self.clock.now_ms();
        let req = self.check_request(&p).await?;
        let scids = [req.out_scid.clone(), req.inc_scid.clone()];
        self.set_busy([&scids[0], &scids[1]], true);
        let result = async {
            let graph = self.graph().await?;
            let mut s = self.session(&p, req, graph, started_ms, extra)?;
            let result = self.run(&mut s, p.dryrun).await;
            Ok::<_, RpcFailure>((s, result))
        }
        .await;
        let out = match result {
            Ok((s, result)) => self.finish(s, result, p.dryrun).await,
            Err(e) => Err(e),
        };
        self.set_busy([&scids[0], &scids[1]], false);
        out
    }

    /// A session for a checked request: the fee cap, the deadline, the fixed hops.
    fn session(
        &self,
        p: &RebalanceParams,
        req: Checked,
        graph: Arc<Graph>,
        started_ms: u64,
        extra: Extra,
    ) -> Result<Session, RpcFailure> {
        let maxfeeppm = p.maxfeeppm.unwrap_or(self.config.maxfeeppm);
        let exemptfee_msat = p.exemptfee.unwrap_or(self.config.exemptfee_msat);
        let retry_for = p.retry_for.unwrap_or(self.config.retry_for_secs);
        let plan = Plan::new(
            &req.our_id,
            &req.out,
            &req.inc,
            req.amount_msat,
            self.config.final_cltv + FINAL_CLTV_MARGIN,
            &graph,
        )?;
        let local_model = (!self.config.liquidity_memory).then(|| Mutex::new(Liquidity::new()));
        let (beliefs, scratch) = self
            .spare_views
            .lock()
            .expect("views lock")
            .pop()
            .unwrap_or_default();
        let s = Session {
            cap_msat: extra
                .fee_cap_msat
                .unwrap_or_else(|| fee_cap_msat(req.amount_msat, maxfeeppm, exemptfee_msat)),
            extra,
            maxfeeppm,
            exemptfee_msat,
            retry_for,
            deadline_ms: started_ms.saturating_add(retry_for.saturating_mul(1000)),
            started_ms,
            req,
            plan,
            graph,
            attempts: Vec::new(),
            invoice: None,
            scratch,
            beliefs,
            local_model,
            last_sent: Vec::new(),
        };
        self.learn_our_channels(&s);
        Ok(s)
    }

    /// The model this session learns into: the shared one, or its own without memory.
    fn model<'a>(&'a self, s: &'a Session) -> MutexGuard<'a, Liquidity> {
        match &s.local_model {
            Some(m) => m.lock().expect("local model lock"),
            None => self.liquidity(),
        }
    }

    /// Our own channels are known exactly: what we can send, and what the peer can send us.
    fn learn_our_channels(&self, s: &Session) {
        let now = self.clock.now_secs();
        let mut m = self.model(s);
        for c in &s.req.ours {
            let Some(scid) = c.short_channel_id.as_deref().and_then(|x| x.parse().ok()) else {
                continue;
            };
            if c.state != "CHANNELD_NORMAL" {
                continue;
            }
            let ours = c
                .direction
                .unwrap_or(u8::from(s.req.our_id.as_str() > c.peer_id.as_str()));
            let cd = ChanDir::new(scid, ours);
            m.exact(cd, c.spendable_msat, c.total_msat, now);
            m.exact(cd.reverse(), c.receivable_msat, c.total_msat, now);
        }
    }

    /// The attempt loop: route, check, pay, learn, until paid, stopped or out of time.
    async fn run(&self, s: &mut Session, dryrun: bool) -> Result<Value, RpcFailure> {
        loop {
            let hops = self.next_route(s)?;
            let fee_msat = route_fee_msat(&hops);
            s.check_route(&hops, fee_msat)?;
            if dryrun {
                return Ok(self.quote(s, &hops, fee_msat));
            }
            if s.extra
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::SeqCst))
            {
                return Err(RpcFailure::new(
                    error::PAY_STOPPED_RETRYING,
                    format!(
                        "stopped by rebalancestop after {} attempt(s)",
                        s.attempts.len()
                    ),
                )
                .with_data(json!({"attempts": attempts_json(&s.attempts)})));
            }
            if self.clock.now_ms() >= s.deadline_ms {
                return Err(RpcFailure::new(
                    error::PAY_STOPPED_RETRYING,
                    format!(
                        "gave up after {}s and {} attempt(s)",
                        s.retry_for,
                        s.attempts.len()
                    ),
                )
                .with_data(json!({"attempts": attempts_json(&s.attempts)})));
            }
            self.ensure_invoice(s).await?;
            // The route is built to end at us; refuse to send anything that does not.
            if hops.last().map(|h| h.node_id.as_str()) != Some(s.req.our_id.as_str()) {
                return Err(RpcFailure::new(
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
            s.last_sent = hops.clone();
            let outcome = self.attempt(s, &hops, &mut attempt).await;
            info!(
                "rebalance {} -> {} {}msat, attempt {} via {} for {fee_msat}msat: {}",
                s.req.out_scid,
                s.req.inc_scid,
                s.req.amount_msat,
                s.attempts.len() + 1,
                attempt.route.join(","),
                attempt.outcome
            );
            s.attempts.push(attempt);
            match outcome {
                Outcome::Paid { fee_msat } => return Ok(self.paid(s, &hops, fee_msat)),
                Outcome::Retry => continue,
                Outcome::Stop(f) => {
                    let mut data = f.data.clone().unwrap_or_else(|| json!({}));
                    data["attempts"] = attempts_json(&s.attempts);
                    return Err(f.with_data(data));
                }
                Outcome::StillInFlight => {
                    let hash = s.invoice.as_ref().map(|i| i.1.clone()).unwrap_or_default();
                    return Err(RpcFailure::new(
                        error::PAY_STOPPED_RETRYING,
                        format!(
                            "gave up after {}s with a payment still in flight; its invoice is \
                             deleted, so it cannot complete and will fail back when released",
                            s.retry_for
                        ),
                    )
                    .with_data(
                        json!({"attempts": attempts_json(&s.attempts), "payment_hash": hash}),
                    ));
                }
            }
        }
    }

    /// The best route not yet ruled out, or why there is none.
    fn next_route(&self, s: &mut Session) -> Result<Vec<Hop>, RpcFailure> {
        // The search time counts the view's rebuild: it is part of every probabilistic search.
        let started = Instant::now();
        if self.config.routing == Routing::Probabilistic {
            let now = self.clock.now_secs();
            // The view is rebuilt before every search: other rebalances learn meanwhile.
            let mut beliefs = std::mem::take(&mut s.beliefs);
            beliefs.rebuild(&s.graph, &self.model(s), now, self.config.model);
            s.beliefs = beliefs;
        }
        let route = match self.config.routing {
            Routing::FeeOnly => s.plan.next_route(&s.graph, &FeeOnly, None, &mut s.scratch),
            // The cap is a limit, the risk only a preference: the search keeps to the cap, so
            // the likeliest route it finds is one that may be paid. If there is none (every way
            // within the cap crosses a channel the model believes too small, and beliefs fade
            // and may be out of date), the cheapest way this call has not ruled out itself; if
            // even that is over the cap, the refusal names it, as it says.
            Routing::Probabilistic => s
                .plan
                .next_route(&s.graph, &s.beliefs, Some(s.cap_msat), &mut s.scratch)
                .or_else(|| s.plan.next_route(&s.graph, &FeeOnly, None, &mut s.scratch)),
        };
        let took = started.elapsed();
        {
            let mut t = self.search_times.lock().expect("search times lock");
            if t.len() < MAX_SEARCH_TIMES {
                t.push(took);
            }
        }
        route.ok_or_else(|| {
            let why = if s.attempts.is_empty() {
                format!(
                    "no route from {} back to {} for {} (checked {} channel directions)",
                    s.req.out.peer_id,
                    s.req.inc.peer_id,
                    display_sat(s.req.amount_msat),
                    s.graph.edge_count()
                )
            } else {
                format!(
                    "no more routes after {} failed attempt(s)",
                    s.attempts.len()
                )
            };
            RpcFailure::new(error::PAY_ROUTE_NOT_FOUND, why)
                .with_data(json!({"attempts": attempts_json(&s.attempts)}))
        })
    }

    /// The model's estimate that `hops` succeeds now (our own two hops are certain).
    fn route_probability(&self, s: &Session, hops: &[Hop]) -> f64 {
        let now = self.clock.now_secs();
        let m = self.model(s);
        let n = hops.len();
        let mut p = 1.0;
        for (i, h) in hops.iter().enumerate().take(n.saturating_sub(1)).skip(1) {
            let Some(e) = s.graph.edge_by_scid(h.short_channel_id, h.direction) else {
                continue;
            };
            let cap = s.graph.edge_capacity_msat(e);
            p *= m.probability(
                ChanDir::new(h.short_channel_id, h.direction),
                h.amount_msat,
                cap,
                now,
                &self.config.model,
            );
            p *= m.node_factor(&hops[i - 1].node_id, now, self.config.model.half_life_secs);
        }
        p
    }

    /// The answer to a dry run: the route and its fee, nothing paid.
    fn quote(&self, s: &Session, hops: &[Hop], fee_msat: u64) -> Value {
        let r = &s.req;
        json!({
            "status": "dryrun",
            "outgoing_scid": r.out_scid,
            "incoming_scid": r.inc_scid,
            "amount_msat": r.amount_msat,
            "fee_msat": fee_msat,
            "fee_ppm": ppm(fee_msat, r.amount_msat),
            "fee_cap_msat": s.cap_msat,
            "hops": hops.len(),
            "probability": round3(self.route_probability(s, hops)),
            "route": hops_json(hops),
            "message": format!("would rebalance {} from {} to {} for {fee_msat}msat ({} ppm) over {} hops; nothing paid",
                display_sat(r.amount_msat), r.out_scid, r.inc_scid, ppm(fee_msat, r.amount_msat), hops.len()),
        })
    }

    /// The answer to a completed rebalance.
    fn paid(&self, s: &Session, hops: &[Hop], fee_msat: u64) -> Value {
        let r = &s.req;
        let hash = s.invoice.as_ref().map(|i| i.1.as_str()).unwrap_or_default();
        json!({
            "status": "complete",
            "outgoing_scid": r.out_scid,
            "incoming_scid": r.inc_scid,
            "amount_msat": r.amount_msat,
            "fee_msat": fee_msat,
            // rebalance.py's names, for scripts that read them.
            "sent": r.amount_msat.saturating_add(fee_msat),
            "received": r.amount_msat,
            "fee": fee_msat,
            "fee_ppm": ppm(fee_msat, r.amount_msat),
            "attempts": s.attempts.len(),
            "hops": hops.len(),
            "route": hops_json(hops),
            "payment_hash": hash,
            "duration_ms": self.clock.now_ms().saturating_sub(s.started_ms),
            "message": format!("rebalanced {} from {} to {} for {fee_msat}msat ({} ppm) in {} attempt(s)",
                display_sat(r.amount_msat), r.out_scid, r.inc_scid, ppm(fee_msat, r.amount_msat), s.attempts.len()),
        })
    }

    /// Creates the invoice on the first attempt (and registers it for the hook).
    async fn ensure_invoice(&self, s: &mut Session) -> Result<(), RpcFailure> {
        if s.invoice.is_some() {
            return Ok(());
        }
        let (out_scid, inc_scid) = (&s.req.out_scid, &s.req.inc_scid);
        let label = self.new_label(out_scid, inc_scid);
        let inv = self
            .node
            .invoice(
                s.req.amount_msat,
                &label,
                &format!("cln-rebalance {out_scid} -> {inc_scid}"),
                s.retry_for + 60,
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
        s.invoice = Some((label, inv.payment_hash, inv.payment_secret));
        Ok(())
    }

    /// Marks (or unmarks) a route's middle hops as carrying our HTLC, so a concurrent search
    /// does not count on that liquidity.
    fn mark_in_flight(&self, s: &Session, hops: &[Hop], add: bool) {
        let mut m = self.model(s);
        for h in middle(hops) {
            m.in_flight(
                ChanDir::new(h.short_channel_id, h.direction),
                h.amount_msat,
                add,
            );
        }
    }

    /// One sendpay + waitsendpay. Learns from the outcome.
    async fn attempt(&self, s: &mut Session, hops: &[Hop], attempt: &mut Attempt) -> Outcome {
        let (label, hash, secret) = s.invoice.clone().expect("invoice made before an attempt");
        if let Err(e) = self.node.sendpay(hops, &hash, &secret, &label).await {
            return self.failed(s, e, hops, &label, attempt).await;
        }
        self.mark_in_flight(s, hops, true);
        let outcome = loop {
            let remaining = s
                .deadline_ms
                .saturating_sub(self.clock.now_ms())
                .div_ceil(1000)
                .max(1);
            match self.node.waitsendpay(&hash, remaining).await {
                Ok(done) if done.status == "complete" => {
                    let fee = done.amount_sent_msat.saturating_sub(done.amount_msat);
                    attempt.outcome = "complete".into();
                    break Outcome::Paid { fee_msat: fee };
                }
                Ok(other) => {
                    attempt.outcome = format!("unexpected status {}", other.status);
                    break Outcome::Stop(RpcFailure::new(
                        error::PLUGIN_ERROR,
                        format!("waitsendpay answered status {}", other.status),
                    ));
                }
                Err(e) if e.code == Some(error::PAY_IN_PROGRESS) => {
                    // Still in flight: never start another attempt that could pay twice.
                    if self.clock.now_ms() >= s.deadline_ms {
                        attempt.outcome = "still in flight when time ran out".into();
                        break Outcome::StillInFlight;
                    }
                }
                Err(e) => {
                    self.mark_in_flight(s, hops, false);
                    return self.failed(s, e, hops, &label, attempt).await;
                }
            }
        };
        self.mark_in_flight(s, hops, false);
        if let Outcome::Paid { .. } = outcome {
            self.learn_settled(s, hops);
        }
        outcome
    }

    /// A success: every middle hop carried its amount, which now sits on the other side.
    fn learn_settled(&self, s: &Session, hops: &[Hop]) {
        let now = self.clock.now_secs();
        let hl = self.config.model.half_life_secs;
        let mut m = self.model(s);
        for h in middle(hops) {
            if let Some(e) = s.graph.edge_by_scid(h.short_channel_id, h.direction) {
                let cap = s.graph.edge_capacity_msat(e);
                m.settled(
                    ChanDir::new(h.short_channel_id, h.direction),
                    h.amount_msat,
                    cap,
                    now,
                    hl,
                );
            }
        }
    }

    /// What a failure at hop `index` teaches the model: hops before it forwarded their amounts;
    /// the erring channel could not carry its own, or is disabled; or the node failed.
    ///
    /// The bounds are on what a channel holds with our other attempts' HTLCs still in it (the
    /// model adds those when it prices a hop), so what they have in flight over a hop counts
    /// with what this attempt asked of it.
    fn learn_failed(&self, s: &Session, f: &PayFailure, hops: &[Hop], index: usize) {
        let now = self.clock.now_secs();
        let hl = self.config.model.half_life_secs;
        let failcode = f.failcode.unwrap_or(0);
        let mut m = self.model(s);
        let cap = |h: &Hop| {
            s.graph
                .edge_by_scid(h.short_channel_id, h.direction)
                .map(|e| s.graph.edge_capacity_msat(e))
        };
        for h in hops.iter().take(index).skip(1) {
            if let Some(c) = cap(h) {
                let cd = ChanDir::new(h.short_channel_id, h.direction);
                let asked = h.amount_msat.saturating_add(m.in_flight_msat(cd));
                m.forwarded(cd, asked, c, now, hl);
            }
        }
        let Some(h) = hops.get(index) else { return };
        let cd = ChanDir::new(h.short_channel_id, h.direction);
        if failcode & (NODE | BADONION) != 0 {
            let node = f
                .erring_node
                .clone()
                .or_else(|| hops.get(index.wrapping_sub(1)).map(|h| h.node_id.clone()));
            if let Some(n) = node {
                m.node_failed(&n, now);
            }
        } else if failcode == TEMPORARY_CHANNEL_FAILURE {
            if let Some(e) = s.graph.edge_by_scid(h.short_channel_id, h.direction) {
                // Forwarding is non-strict: the node had none of its parallel channels to the
                // next peer at these fees able to carry it either.
                for e in s.graph.parallel_group(e) {
                    let edge = s.graph.edge(e);
                    let cd = ChanDir::new(edge.short_channel_id, edge.direction);
                    let asked = h.amount_msat.saturating_add(m.in_flight_msat(cd));
                    m.failed(cd, asked, s.graph.edge_capacity_msat(e), now, hl);
                }
            }
        } else if failcode == CHANNEL_DISABLED || failcode & PERM != 0 {
            m.channel_failed(cd, now);
        }
    }

    /// Classifies a sendpay/waitsendpay error: learn and retry, or stop with a plain reason.
    async fn failed(
        &self,
        s: &mut Session,
        e: cln_rpc::RpcError,
        hops: &[Hop],
        label: &str,
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
        let inc_scid = s.plan.incoming_scid.to_string();
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
                s.plan.learn(&s.graph, &f, hops, i);
                self.learn_failed(s, &f, hops, i);
                Outcome::Retry
            }
            None => Outcome::Stop(RpcFailure::new(
                error::PAY_STOPPED_RETRYING,
                format!("payment failed without saying where: {}", e.message),
            )),
        }
    }

    /// Leave no unpaid rebalance invoice behind. If the invoice turns out to
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
                        let done = paying_attempt(&sent);
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

    /// Whatever happened: no unpaid invoice left, the hook forgets the label, the model is
    /// saved (once per rebalance, not per attempt), the history records it.
    async fn finish(
        &self,
        s: Session,
        result: Result<Value, RpcFailure>,
        dryrun: bool,
    ) -> Result<Value, RpcFailure> {
        if !s.attempts.is_empty() {
            self.save_liquidity().await;
        }
        let result = match s.invoice.clone() {
            None => result,
            Some((label, hash, _)) => {
                let cleaned = self.cleanup(&label, &hash, s.req.amount_msat, result).await;
                self.inflight.lock().expect("inflight lock").remove(&label);
                cleaned.map(|mut v| {
                    v["attempts"] = json!(s.attempts.len());
                    v["duration_ms"] = json!(self.clock.now_ms().saturating_sub(s.started_ms));
                    if v.get("outgoing_scid").is_none() {
                        // Paid after all, as we stopped waiting: over the last route sent.
                        v["outgoing_scid"] = json!(s.req.out_scid);
                        v["incoming_scid"] = json!(s.req.inc_scid);
                        v["hops"] = json!(s.last_sent.len());
                        v["route"] = hops_json(&s.last_sent);
                    }
                    v
                })
            }
        };
        if !dryrun {
            self.record_history(self.history_entry(&s, &result)).await;
        }
        let mut spare = self.spare_views.lock().expect("views lock");
        if spare.len() < MAX_SPARE_VIEWS {
            spare.push((s.beliefs, s.scratch));
        }
        result
    }

    /// The history's record of a finished rebalance.
    fn history_entry(&self, s: &Session, result: &Result<Value, RpcFailure>) -> Entry {
        let scid = |x: &str| x.parse().unwrap_or(Scid(0));
        let (outcome, fee_msat, error) = match result {
            Ok(v) => (
                HistoryOutcome::Complete,
                v["fee_msat"].as_u64().unwrap_or(0),
                String::new(),
            ),
            Err(e) => (
                HistoryOutcome::Failed { code: e.code },
                0,
                crate::core::history::bounded_error(&e.message).to_string(),
            ),
        };
        Entry {
            started_at: s.started_ms / 1000,
            outgoing: scid(&s.req.out_scid),
            incoming: scid(&s.req.inc_scid),
            amount_msat: s.req.amount_msat,
            fee_msat,
            attempts: s.attempts.len() as u32,
            outcome,
            duration_ms: self.clock.now_ms().saturating_sub(s.started_ms),
            job_id: s.extra.job_id,
            payment_hash: s
                .invoice
                .as_ref()
                .map(|i| crate::commands::history::hash_bytes(&i.1))
                .unwrap_or(crate::core::history::NO_PAYMENT_HASH),
            error,
        }
    }
}

/// The sendpay attempt that paid our invoice: the complete one, or else the pending one. Our
/// invoice is paid, so that attempt's outgoing HTLC settles as soon as the outgoing peer can
/// give us the preimage (it may be offline a while), and `amount_sent_msat` is what it costs
/// us. There is at most one: no attempt starts while another is in flight.
pub(crate) fn paying_attempt(
    sent: &[crate::lightningd::SendpayStatus],
) -> Option<&crate::lightningd::SendpayStatus> {
    sent.iter()
        .find(|s| s.status == "complete")
        .or_else(|| sent.iter().find(|s| s.status == "pending"))
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
        let deliver_delay = final_cltv.checked_add(remote.delay).ok_or_else(|| {
            RpcFailure::param(
                "incoming",
                format!(
                    "the peer's cltv_expiry_delta {} on channel {inc_scid} is impossible",
                    remote.delay
                ),
            )
        })?;
        let mut exclude = Exclusions::default();
        if let Some(us) = graph.node_idx(our_id) {
            exclude.nodes.insert(us); // a circle never passes through us in the middle
        }
        let query = match (graph.node_idx(&out.peer_id), graph.node_idx(&inc.peer_id)) {
            (Some(from), Some(to)) => Some(Query {
                from,
                to,
                deliver_msat,
                deliver_delay,
                max_edges: (MAX_HOPS - 2) as u32,
                max_delay: MAX_TOTAL_CLTV,
                max_amount_msat: u64::MAX,
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

    /// The best route not yet ruled out (by fee + `cost`'s extra), as sendpay hops; with
    /// `max_fee_msat`, the best whose fee is within it.
    fn next_route<C: HopCost>(
        &self,
        graph: &Graph,
        cost: &C,
        max_fee_msat: Option<u64>,
        scratch: &mut Scratch,
    ) -> Option<Vec<Hop>> {
        let middle: Vec<HopSpec> = if self.same_peer {
            if self.direct_failed {
                return None;
            }
            Vec::new()
        } else {
            let mut query = self.query.clone()?;
            if let Some(cap) = max_fee_msat {
                // Our first hop is free: what `A` receives beyond the amount is the fee.
                query.max_amount_msat = self.amount_msat.saturating_add(cap);
            }
            let path = find_path_with(graph, &query, &self.exclude, cost, scratch)?;
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
                // Its parallel channels at the same fees failed with it (non-strict forwarding).
                for e in graph.parallel_group(e) {
                    let limit = self.exclude.max_amount_msat.entry(e).or_insert(u64::MAX);
                    *limit = (*limit).min(carried);
                }
            }
            (false, Some(e)) => {
                self.exclude.edges.insert(e);
            }
        }
    }
}

impl Session {
    /// Refuses a route above the fee cap, or one the outgoing channel cannot pay for, before
    /// anything is paid.
    fn check_route(&self, hops: &[Hop], fee_msat: u64) -> Result<(), RpcFailure> {
        let (cap, amount) = (self.cap_msat, self.req.amount_msat);
        if fee_msat > cap {
            return Err(RpcFailure::new(
                error::PAY_ROUTE_TOO_EXPENSIVE,
                format!(
                    "the cheapest route{} costs {fee_msat}msat ({} ppm), more than the fee cap of {cap}msat \
                     ({})",
                    if self.attempts.is_empty() { "" } else { " left" },
                    ppm(fee_msat, amount),
                    match self.extra.fee_cap_msat {
                        // A rebalanceall move: the planner's economics and the budget set it.
                        Some(_) => format!(
                            "the job's cap for this move: feeratio x our fee out through {}, at most \
                             maxfeeppm, within the fee budget",
                            self.req.inc_scid
                        ),
                        None => format!(
                            "max of exemptfee {}msat and maxfeeppm {} x amount",
                            self.exemptfee_msat, self.maxfeeppm
                        ),
                    }
                ),
            )
            .with_data(json!({"cheapest_fee_msat": fee_msat, "fee_cap_msat": cap,
                              "route": hops_json(hops), "attempts": attempts_json(&self.attempts)})));
        }
        let spendable = self.req.out.spendable_msat;
        if hops[0].amount_msat > spendable {
            return Err(RpcFailure::param(
                "outgoing",
                format!(
                    "channel {} can spend {}, not the {} this route needs with fees",
                    self.req.out_scid,
                    display_sat(spendable),
                    display_sat(hops[0].amount_msat)
                ),
            ));
        }
        Ok(())
    }
}

/// The hops between our own two: the ones the model knows nothing exact about.
fn middle(hops: &[Hop]) -> impl Iterator<Item = &Hop> {
    let n = hops.len();
    hops.iter().take(n.saturating_sub(1)).skip(1)
}

fn round3(p: f64) -> f64 {
    (p * 1000.0).round() / 1000.0
}

//! What the plugin keeps between calls, shared by every command: the node and the
//! configuration, the clock, the cached graph, the liquidity model and its persistence, the
//! rebalances in flight, the history, the automatic job, what is shared with askrene. Each part is a file of its own that
//! knows nothing of the others; [`State`] holds them and passes each the node and the time.
//! The commands, the rebalance algorithm included, are clients of it.

pub mod askrene; // xpay's layer read into the model, ours published; askrene missing
pub mod graph; // the cached channel graph and its refresh
pub mod history; // every rebalance in the datastore; reconciling after a restart
pub mod inflight; // the rebalances running now, their channels and invoices
pub mod jobs; // the automatic job, and channels jobs gave up on
pub mod model; // the liquidity model, its persistence, the kept search state
pub mod probing; // background probing's hourly window and count
pub mod settings; // per-channel settings saved in the datastore, and those in force

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::core::graph::{Graph, Scid};
use crate::core::history::Entry;
use crate::core::liquidity::Liquidity;
use crate::core::plan::Settings;
use crate::error::RpcFailure;
use crate::lightningd::Lightningd;
use askrene::Askrene;
use graph::GraphCache;
use history::HistoryStore;
use inflight::InFlight;
use jobs::Jobs;
use log::info;
use model::ModelStore;
use probing::BackgroundProbes;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

/// Plugin-wide state: one for the plugin's life, shared by every call.
pub struct State<N: Lightningd> {
    pub node: N,
    pub config: Config,
    clock: Arc<dyn Clock>,
    pub graph_cache: GraphCache,
    pub model: ModelStore,
    pub inflight: InFlight,
    pub history: HistoryStore,
    pub jobs: Jobs,
    pub askrene: Askrene,
    /// What background probing has sent (its hourly budget).
    pub background: BackgroundProbes,
}

impl<N: Lightningd> State<N> {
    pub fn new(node: N, config: Config) -> Self {
        Self::with_clock(node, config, Arc::new(SystemClock))
    }

    pub fn with_clock(node: N, config: Config, clock: Arc<dyn Clock>) -> Self {
        State {
            node,
            config,
            clock,
            graph_cache: GraphCache::default(),
            model: ModelStore::default(),
            inflight: InFlight::default(),
            history: HistoryStore::default(),
            jobs: Jobs::default(),
            askrene: Askrene::default(),
            background: BackgroundProbes::default(),
        }
    }

    pub fn now_secs(&self) -> u64 {
        self.clock.now_secs()
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The cached graph, rebuilt from `listchannels` when missing, stale or too old.
    pub async fn graph(&self) -> Result<Arc<Graph>, RpcFailure> {
        self.graph_cache
            .get(
                &self.node,
                || self.clock.now_ms(),
                self.config.graph_max_age,
            )
            .await
    }

    /// The shared liquidity model (what every rebalance learns into).
    pub fn liquidity(&self) -> MutexGuard<'_, Liquidity> {
        self.model.lock()
    }

    /// Route search durations since the last call (for the benchmark).
    pub fn take_search_times(&self) -> Vec<Duration> {
        self.model.take_search_times()
    }

    /// Loads the model saved in the datastore; returns the entries loaded.
    pub async fn load_liquidity(&self) -> usize {
        self.model
            .load(&self.node, self.now_secs(), &self.config.model)
            .await
    }

    /// Saves the shared model (when the model remembers across rebalances).
    pub async fn save_liquidity(&self) {
        if self.config.liquidity_memory {
            self.model
                .save(&self.node, self.now_secs(), &self.config.model)
                .await;
        }
    }

    /// At start (after the saved model is loaded): our askrene layer made (when publishing)
    /// and xpay's read. A lightningd without askrene is logged once, here.
    pub async fn start_askrene(&self) {
        let (read, publish) = (self.config.askrene_read, self.config.askrene_publish);
        if !read && !publish {
            return;
        }
        let hl = self.config.model.half_life_secs;
        let held = if publish {
            let now = self.now_secs();
            self.askrene.open_our_layer(&self.node, now, hl).await
        } else {
            None
        };
        let folded = self.read_xpay_layer().await;
        if !self.askrene.usable() {
            return;
        }
        let mut what = Vec::new();
        if read && self.askrene.known_available() {
            what.push(format!(
                "learning from lightningd's payments (askrene layer {}: {folded} constraint(s) \
                 learned now)",
                askrene::XPAY_LAYER
            ));
        }
        if let Some(n) = held {
            what.push(format!(
                "publishing what rebalancing learns into askrene layer {} ({n} constraint(s) in \
                 it; xpay-user-layer={} makes payments use it)",
                askrene::OUR_LAYER,
                askrene::OUR_LAYER
            ));
        }
        if !what.is_empty() {
            info!("{}", what.join("; "));
        }
    }

    /// What lightningd's payments learned since the last read (xpay's askrene layer), folded
    /// into the shared model at its timestamps. Returns how many constraints were learned.
    pub async fn read_xpay_layer(&self) -> usize {
        if !self.config.askrene_read || !self.config.liquidity_memory {
            return 0;
        }
        let new = self.askrene.read_new(&self.node).await;
        if new.is_empty() {
            return 0;
        }
        let Ok(graph) = self.graph().await else {
            return 0;
        };
        let (now, hl) = (self.now_secs(), self.config.model.half_life_secs);
        let mut model = self.liquidity();
        let publishing = self.config.askrene_publish;
        let n = self
            .askrene
            .fold(&new, &mut model, &graph, (now, hl), publishing);
        if n > 0 {
            log::debug!(
                "learned {n} constraint(s) from askrene's {} layer",
                askrene::XPAY_LAYER
            );
        }
        n
    }

    /// What the shared model learned since the last publish, into our askrene layer (see
    /// [`Askrene::publish`]). Returns how many constraints were sent.
    pub async fn publish_learned(&self, our_id: &str, graph: &Graph) -> usize {
        if !self.config.askrene_publish || !self.config.liquidity_memory {
            return 0;
        }
        let (now, hl) = (self.now_secs(), self.config.model.half_life_secs);
        self.askrene
            .publish(&self.node, graph, our_id, now, hl, |since| {
                self.liquidity().learned_since(since)
            })
            .await
    }

    /// Ages our askrene layer every so often (so a layer nobody publishes into any more still
    /// loses what has grown old), for the plugin's life. Returns at once when not publishing.
    pub async fn keep_askrene_layer_aged(self: Arc<Self>) {
        if !self.config.askrene_publish {
            return;
        }
        let every = askrene::age_every_secs(self.config.model.half_life_secs);
        while self.askrene.usable() {
            tokio::time::sleep(Duration::from_secs(every)).await;
            let hl = self.config.model.half_life_secs;
            self.askrene.age(&self.node, self.now_secs(), hl).await;
        }
    }

    /// Forgets what was learned (all of it, or one channel) and saves that. Returns how many
    /// entries were dropped.
    pub async fn reset_liquidity(&self, scid: Option<Scid>) -> usize {
        let n = self.liquidity().reset(scid);
        self.save_liquidity().await;
        n
    }

    /// The channels rebalances in progress use now.
    pub fn busy_channels(&self) -> HashSet<String> {
        self.inflight.busy_channels()
    }

    /// Reads the history from the datastore; returns how many rebalances it holds.
    pub async fn load_history(&self) -> usize {
        self.history.load(&self.node).await
    }

    /// Records one rebalance in the history.
    pub async fn record_history(&self, e: Entry) {
        self.history.record(&self.node, e, self.now_secs()).await
    }

    /// Records, once, rebalances that completed while the plugin was down.
    pub async fn reconcile_history(&self) -> usize {
        self.history.reconcile(&self.node, self.now_secs()).await
    }

    /// Fees of rebalances started in the last 24 hours.
    pub async fn fees_last_24h(&self) -> u64 {
        self.history.fees_last_24h(self.now_secs()).await
    }

    /// A copy of the history.
    pub async fn history_entries(&self) -> Vec<Entry> {
        self.history.entries().await
    }

    /// Per-channel settings in force: the config file's, overridden by the datastore's.
    pub async fn settings(&self) -> Settings {
        settings::in_force(&self.config.auto.settings, settings::load(&self.node).await)
    }

    /// The automatic job that runs now, if any.
    pub fn running_job(&self) -> Option<Arc<jobs::Job>> {
        self.jobs.running()
    }

    /// The automatic job that runs now or ran last.
    pub fn last_job(&self) -> Option<Arc<jobs::Job>> {
        self.jobs.last()
    }

    /// Channels left out of jobs now, with until when and why.
    pub fn resting_channels(&self) -> HashMap<String, (u64, String)> {
        self.jobs.resting(self.now_secs())
    }
}

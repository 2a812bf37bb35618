//! The liquidity model every rebalance learns into, its persistence in lightningd's datastore,
//! and the search state kept between rebalances.

use crate::core::liquidity::{Beliefs, Liquidity, ModelConfig};
use crate::core::pathfind::Scratch;
use crate::lightningd::Lightningd;
use crate::lightningd::store::{self, LIQUIDITY_KEY, MAX_SAVED_ENTRIES};
use log::{info, warn};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Search states kept for the next rebalances: one per rebalance that may run at once (a job's
/// `rebalance-parallel` and a manual call or two); more are made, and dropped, when needed.
const MAX_SPARE_VIEWS: usize = 4;
/// Route search durations kept for the benchmark (the oldest are dropped past this).
const MAX_SEARCH_TIMES: usize = 100_000;

/// The shared model (behind a lock held only for updates and for building a search's view), so
/// what one rebalance learns the next, or a concurrent one, uses.
#[derive(Default)]
pub struct ModelStore {
    liquidity: Mutex<Liquidity>,
    /// One datastore write at a time, so an older snapshot never overwrites a newer one.
    saving: tokio::sync::Mutex<()>,
    /// Search state kept between rebalances (a view of the model and the search's per-node
    /// arrays, each sized to the graph): a rebalance takes one, or makes one, and gives it
    /// back, so rebuilding the view costs what the model holds, not the graph's size.
    spare_views: Mutex<Vec<(Beliefs, Scratch)>>,
    search_times: Mutex<Vec<Duration>>,
}

impl ModelStore {
    /// The shared liquidity model.
    pub fn lock(&self) -> MutexGuard<'_, Liquidity> {
        self.liquidity.lock().expect("liquidity lock")
    }

    /// Loads the model saved in lightningd's datastore. A missing record starts empty; a
    /// corrupt or foreign one is ignored with a log line. Returns the entries loaded.
    pub async fn load<N: Lightningd>(&self, node: &N, now: u64, config: &ModelConfig) -> usize {
        let entries = match node.listdatastore(&LIQUIDITY_KEY).await {
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
                model.prune(now, config.half_life_secs, MAX_SAVED_ENTRIES);
                let (chans, nodes) = model.len();
                info!("liquidity model loaded: {chans} channel directions, {nodes} nodes");
                self.lock().merge_older(model);
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

    /// Writes the model to the datastore (pruned first, so it stays bounded).
    pub async fn save<N: Lightningd>(&self, node: &N, now: u64, config: &ModelConfig) {
        let _one_at_a_time = self.saving.lock().await;
        let hex = {
            let mut m = self.lock();
            m.prune(now, config.half_life_secs, MAX_SAVED_ENTRIES);
            store::to_hex(&m.encode())
        };
        if let Err(e) = node
            .datastore(&LIQUIDITY_KEY, &hex, "create-or-replace")
            .await
        {
            warn!("could not save the liquidity model: {}", e.message);
        }
    }

    /// A search state to use (a kept one, or a new one).
    pub fn take_view(&self) -> (Beliefs, Scratch) {
        self.spare_views
            .lock()
            .expect("views lock")
            .pop()
            .unwrap_or_default()
    }

    /// Gives a search state back for the next rebalance.
    pub fn give_view(&self, view: (Beliefs, Scratch)) {
        let mut spare = self.spare_views.lock().expect("views lock");
        if spare.len() < MAX_SPARE_VIEWS {
            spare.push(view);
        }
    }

    /// Notes how long a route search took (for the benchmark).
    pub fn record_search_time(&self, took: Duration) {
        let mut t = self.search_times.lock().expect("search times lock");
        if t.len() < MAX_SEARCH_TIMES {
            t.push(took);
        }
    }

    /// Route search durations since the last call.
    pub fn take_search_times(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.search_times.lock().expect("search times lock"))
    }
}

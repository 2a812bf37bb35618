//! Background probing (`rebalance-probe-per-hour`, off by default): while no rebalance, probe
//! or job runs, probe the routes the next planned moves would take (the plan `rebalanceall`
//! would make now, each move at its amount up to `rebalance-probe-max-locked`), so the next
//! job starts from fresh knowledge. Every probe teaches the model as `rebalance-probe`'s do;
//! a move the model is already sure of is not probed. Then scouts look for cheaper ways than
//! the one the model would pay for the move (`rebalance::probe::scout::scout_cheaper`), so
//! the next job pays less without spending its own `retry_for` on finding them. Never more
//! probes in an hour than the budget, one probe at a time, and a round stops at once when
//! anything else starts.

use crate::core::probing::{ProbeTarget, targets};
use crate::lightningd::Lightningd;
use crate::rebalance::probe::ProbeBudget;
use crate::state::State;
use log::{debug, info};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Probes one round sends at most: a round probes a move or two, and the rest of the hour's
/// budget waits for later rounds, so the knowledge stays fresh rather than spent at once.
pub const ROUND_PROBES: u32 = 8;
/// Probes one planned move gets in a round: a route, and replanned routes around what failed.
const MOVE_PROBES: u32 = 4;
/// Probes one planned move's scouts get in a round beside those: cheaper ways than the one
/// the model would pay (`rebalance::probe::scout::scout_cheaper`).
const SCOUT_PROBES: u32 = 4;
/// Seconds between rounds at least and at most.
const ROUND_SECS: (u64, u64) = (30, 900);

/// What one round of background probing did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    /// Moves probed (the model was unsure, or scouts looked for cheaper ways), and moves not
    /// probed (the model was sure and no cheaper way was left to try, or no route within the
    /// cap was).
    pub moves_probed: usize,
    pub moves_sure: usize,
    /// Probes sent, and how many of the moves probed were found to move whole.
    pub probes: u32,
    pub moves_found: usize,
    /// Why the round ended early, if it did (something else started, the budget is spent).
    pub stopped: Option<String>,
}

impl<N: Lightningd> State<N> {
    /// Whether background probing may run now: it is on, and no rebalance, probe or job runs.
    pub fn background_idle(&self) -> bool {
        self.config.probe_per_hour > 0
            && self.running_job().is_none()
            && !self.inflight.foreground_running()
    }

    /// One round over the moves `rebalanceall` would plan now (see the module's doc).
    pub async fn probe_planned_moves(&self) -> Round {
        if !self.background_idle() {
            return Round::default();
        }
        let config = self.config.auto.plan;
        let mut left_out = self.busy_channels();
        left_out.extend(self.resting_channels().into_keys());
        let plan = match self
            .current_plan(
                &config,
                &self.config.auto.budget,
                &left_out,
                &HashSet::new(),
                0,
                0,
            )
            .await
        {
            Ok(p) => p,
            Err(e) => {
                debug!("background probing: no plan: {}", e.message);
                return Round::default();
            }
        };
        let t = targets(
            &plan.moves,
            self.config.probe_max_locked_msat,
            config.min_amount_msat,
        );
        self.probe_targets(&t).await
    }

    /// One round over `targets`, in their order, within [`ROUND_PROBES`] and the hour's
    /// budget (the simulation gives the moves it will ask for next).
    pub async fn probe_targets(&self, targets: &[ProbeTarget]) -> Round {
        let mut round = Round::default();
        for t in targets {
            let left = self
                .background
                .remaining(self.now_secs(), self.config.probe_per_hour)
                .min(ROUND_PROBES.saturating_sub(round.probes));
            if left == 0 || !self.background_idle() {
                break;
            }
            let budget = ProbeBudget {
                probes: left.min(MOVE_PROBES),
                secs: self.config.probe_max_secs,
            };
            let sent_before = self.background.total();
            let r = self
                .probe_in_background(
                    &t.outgoing,
                    &t.incoming,
                    t.amount_msat,
                    t.fee_cap_msat,
                    budget,
                    left.saturating_sub(budget.probes).min(SCOUT_PROBES),
                )
                .await;
            // Counted where each probe is sent, so one that ended in an error counts too.
            let sent = (self.background.total() - sent_before) as u32;
            round.probes += sent;
            match r {
                Ok(_) if sent == 0 => round.moves_sure += 1,
                Ok(f) => {
                    round.moves_probed += 1;
                    round.moves_found += usize::from(f.amount_msat == t.amount_msat);
                }
                Err(e) => {
                    round.moves_probed += usize::from(sent > 0);
                    if !self.background_idle()
                        || self
                            .background
                            .remaining(self.now_secs(), self.config.probe_per_hour)
                            == 0
                    {
                        round.stopped = Some(e.message);
                        break;
                    }
                    // That move's channels could not be probed now: the next move may be.
                    debug!(
                        "background probing {} -> {}: {}",
                        t.outgoing, t.incoming, e.message
                    );
                }
            }
        }
        round
    }

    /// `rebalance-probe-per-hour`: a round every so often (the hour's budget spread over
    /// rounds of up to [`ROUND_PROBES`]), for the plugin's life. Returns at once when off.
    pub async fn run_background_probing(self: Arc<Self>) {
        let per_hour = self.config.probe_per_hour;
        if per_hour == 0 {
            return;
        }
        let every = (3600 * u64::from(ROUND_PROBES) / u64::from(per_hour))
            .clamp(ROUND_SECS.0, ROUND_SECS.1);
        info!(
            "background probing: at most {per_hour} probes an hour, a round every {every}s, \
             at most {}msat locked",
            self.config.probe_max_locked_msat
        );
        loop {
            tokio::time::sleep(Duration::from_secs(every)).await;
            let r = self.probe_planned_moves().await;
            if r.probes > 0 {
                info!(
                    "background probing: {} probe(s) over {} planned move(s), {} found to move whole{}",
                    r.probes,
                    r.moves_probed,
                    r.moves_found,
                    r.stopped.map(|s| format!(" ({s})")).unwrap_or_default()
                );
            }
        }
    }
}

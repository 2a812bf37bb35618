//! One `rebalanceall` job's loop, in the steps of [`super`]'s doc: plan and admit the next
//! move, start it, and when one ends book it and decide what the job does because of it.

use super::plan::move_params;
use crate::core::amount::{MSAT_PER_SAT, display_sat};
use crate::core::budget::{Admission, Budget, Spent};
use crate::core::graph::Scid;
use crate::core::pairing::{Pairing, QuoteLimits};
use crate::core::plan::{Move, PlanConfig};
use crate::error::{self, RpcFailure};
use crate::lightningd::Lightningd;
use crate::rebalance::session::Extra;
use crate::state::State;
use crate::state::jobs::{Job, REST_SECS};
use log::info;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::task::JoinSet;

/// What one job's loop keeps between moves (the module doc's steps).
#[derive(Debug, Default)]
pub(super) struct JobState {
    /// Set when a move the budget had cut found no route it could pay for.
    exhausted: Option<String>,
    /// Channels of the moves in flight (those given up on, by this job or an earlier one, are
    /// the resting ones: see `rest`).
    in_flight: HashSet<String>,
    /// A sink's next, smaller amount after a failure (whatever the source), and how many of
    /// its moves failed: a sink is given up after MAX_FAILURES_PER_CHANNEL, so a channel no
    /// route can fill affordably costs a few tries, not one per source and amount.
    sink_amount: HashMap<Scid, u64>,
    sink_failures: HashMap<Scid, u32>,
    /// A pair's next, smaller amount after its quote found no set within the cap.
    pub(super) pair_amount: HashMap<(Scid, Scid), u64>,
    /// Pairs whose first route already cost more than the cap (no smaller amount helps), and
    /// how many moves from each source failed: a source whose peer routes dearly to everyone
    /// is given up after MAX_FAILURES_PER_CHANNEL too, not paired with every sink.
    pub(super) avoid: HashSet<(Scid, Scid)>,
    source_failures: HashMap<Scid, u32>,
    /// Sinks whose move failed while other moves were in flight (they may have been in its
    /// way): tried again, at the same amount, once one of those has ended.
    deferred: HashSet<String>,
    /// The fee caps of the moves in flight, msat.
    reserved: u64,
    /// Fees the job's completed moves paid, msat.
    run_spent: u64,
    /// Why the last move could not start or was given up, for the job's end.
    last_reason: String,
    /// Channels to fill given up on.
    gave_up: u32,
    /// Why pairs were skipped before any move (their quotes found no set within the cap),
    /// and the sinks no source left reached, told once each.
    pub(super) skipped_reason: String,
    pub(super) out_of_reach: HashSet<Scid>,
}

impl JobState {
    /// The job's end `why`, with the pairs skipped before any move and the sinks no source
    /// reached, when any were.
    fn with_skipped(&self, why: String) -> String {
        if self.skipped_reason.is_empty() || why == WITHIN_TARGET {
            return why;
        }
        let mut sinks: Vec<String> = self.out_of_reach.iter().map(|s| s.to_string()).collect();
        sinks.sort();
        let sinks = if sinks.is_empty() {
            String::new()
        } else {
            format!(
                "; {} sink(s) no source reached within the fee cap: {}",
                sinks.len(),
                sinks.join(", ")
            )
        };
        format!("{why} ({}{sinks})", self.skipped_reason)
    }
}

/// A move that ended: the move, whether the budget cut its fee cap, and its answer.
type Ended = (Move, bool, Result<Value, RpcFailure>);

/// What the loop does next (steps 1 and 2).
enum Step {
    /// Start this move; whether the budget cut its fee cap.
    Start(Move, bool),
    /// The job ends, for this reason.
    End(String),
    /// Wait for a move in flight to end (or, with none, plan again shortly).
    Wait,
    /// Plan again at once: the step's quotes ruled out pairs, none started (or the job was
    /// stopped meanwhile).
    Again,
}

/// Why a job ends when it is done.
const WITHIN_TARGET: &str = "every channel is within target";

/// Failed moves into one channel (or out of one) before a job gives up on it.
const MAX_FAILURES_PER_CHANNEL: u32 = 3;

/// Half of `amount_msat`, in whole satoshis as the planner's amounts are.
pub(super) fn half_sat(amount_msat: u64) -> u64 {
    amount_msat / 2 / crate::core::amount::MSAT_PER_SAT * crate::core::amount::MSAT_PER_SAT
}

/// Whether a failed move is worth trying again at half the amount. Not when its very first
/// route already cost more than the cap: caps scale with the amount while base fees do not,
/// so a smaller amount only makes that worse (another source may route cheaper).
fn halves(e: &RpcFailure) -> bool {
    let first_route_too_dear = e.code == error::PAY_ROUTE_TOO_EXPENSIVE
        && e.data
            .as_ref()
            .and_then(|d| d["attempts"].as_array())
            .is_none_or(|a| a.is_empty());
    !first_route_too_dear
}

/// How long a finished move may take to settle on our channels before the job goes on.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

impl<N: Lightningd> State<N> {
    /// The job's loop (see the module doc). Returns why it ended.
    pub(super) async fn run_job(
        self: &Arc<Self>,
        job: &Arc<Job>,
        config: PlanConfig,
        budget: Budget,
    ) -> String {
        let parallel = self.config.auto.parallel.max(1);
        let mut tasks: JoinSet<Ended> = JoinSet::new();
        let mut st = JobState::default();
        loop {
            let stop = job.stop.load(Ordering::SeqCst);
            if stop || st.exhausted.is_some() {
                if stop {
                    job.cancel.store(true, Ordering::SeqCst);
                }
                while let Some(r) = tasks.join_next().await {
                    if let Ok((m, _, res)) = r {
                        self.move_ended(job, &m, &res, &mut st);
                    }
                }
                return match st.exhausted.take() {
                    Some(why) if !stop => st.with_skipped(why),
                    _ => "stopped by rebalancestop".into(),
                };
            }
            if tasks.len() < parallel {
                match self
                    .next_move(job, &config, &budget, &mut st, tasks.is_empty())
                    .await
                {
                    Step::Start(m, cut) => {
                        self.start_move(job, &mut tasks, &mut st, m, cut, config.min_amount_msat);
                        continue;
                    }
                    Step::End(why) => return st.with_skipped(why),
                    Step::Again => continue,
                    Step::Wait => {}
                }
            }
            if tasks.is_empty() {
                // Planning failed with nothing in flight: try again shortly, unless stopped.
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = job.stopped.notified() => {}
                }
                if st.last_reason.starts_with("could not plan") {
                    return st.last_reason;
                }
                continue;
            }
            let ended = tokio::select! {
                r = tasks.join_next() => r,
                _ = job.stopped.notified() => None,
            };
            if let Some(Ok(ended)) = ended {
                let others_in_flight = !tasks.is_empty();
                self.after_move(job, &config, &mut st, ended, others_in_flight)
                    .await;
            }
        }
    }

    /// Step 1 and 2 of the loop: plan, quote the pairs it could start (`core::pairing`), and
    /// the chosen pair if the budget admits it now. `idle`: no move is in flight (then a
    /// refusal or nothing left to pair ends the job).
    async fn next_move(
        &self,
        job: &Job,
        config: &PlanConfig,
        budget: &Budget,
        st: &mut JobState,
        idle: bool,
    ) -> Step {
        let mut left_out: HashSet<String> = self.busy_channels();
        left_out.extend(st.in_flight.iter().cloned());
        left_out.extend(self.resting_channels().into_keys());
        left_out.extend(st.deferred.iter().cloned());
        let (p, mut cands) = match self.current_candidates(config, &left_out, &st.avoid).await {
            Ok(x) => x,
            Err(e) => {
                st.last_reason = format!("could not plan: {}", e.message);
                return Step::Wait;
            }
        };
        if cands.is_empty() {
            if !idle {
                return Step::Wait;
            }
            return Step::End(if p.sinks.is_empty() && p.sources.is_empty() {
                WITHIN_TARGET.into()
            } else if !st.last_reason.is_empty() {
                format!("nothing more can be done: {}", st.last_reason)
            } else {
                "nothing more can be done: no move left that the channels can carry".into()
            });
        }
        for m in &mut cands {
            let smaller = [
                st.sink_amount.get(&m.incoming),
                st.pair_amount.get(&(m.outgoing, m.incoming)),
            ];
            if let Some(&a) = smaller.into_iter().flatten().min() {
                let planned = m.amount_msat;
                m.amount_msat = planned.min(a);
                // Base fees do not shrink with the amount: scaling the cap down keeps it within
                // what the smaller move can earn.
                m.fee_cap_msat = scale(m.fee_cap_msat, m.amount_msat, planned);
            }
        }
        let spent = Spent {
            run_msat: st.run_spent,
            last_24h_msat: self.fees_last_24h().await,
            reserved_msat: st.reserved,
        };
        // Nothing left of a budget: no quote can help; its refusal says which ran out.
        if let Admission::Refused { reason } = budget.admit(1, &spent) {
            if idle {
                return Step::End(reason);
            }
            st.last_reason = reason;
            return Step::Wait;
        }
        let left = budget.remaining_msat(&spent);
        let mut pairing = Pairing::new(cands, QuoteLimits::default(), left);
        self.quote_pairs(&mut pairing, &job.cancel).await;
        if job.stop.load(Ordering::SeqCst) {
            // Stopped while quoting: start nothing; the loop's next turn ends the job.
            return Step::Again;
        }
        self.skip_refused(job, &pairing, st, config.min_amount_msat);
        let Some((m, fee)) = pairing.choice() else {
            // No pair quoted within its cap: each is quoted at half next, or avoided below the
            // min amount; plan again at once.
            return Step::Again;
        };
        let mut m = m.clone();
        if let Some(left) = left.filter(|&l| fee > l) {
            // The cheapest pair quoted costs more than the budget leaves: moves in flight may
            // give some back; else it is quoted again at half (a move started with a cut cap
            // would only fail), and the budget is spent below the min amount.
            if !idle {
                return Step::Wait;
            }
            let half = half_sat(m.amount_msat);
            if half >= config.min_amount_msat {
                st.pair_amount.insert((m.outgoing, m.incoming), half);
                return Step::Again;
            }
            return Step::End(format!(
                "fee budget spent: {} spent in this run, and the {left}msat left does not pay for \
                 the cheapest move quoted ({} {} -> {} for {fee}msat)",
                display_sat(st.run_spent),
                display_sat(m.amount_msat),
                m.outgoing,
                m.incoming
            ));
        }
        match budget.admit(m.fee_cap_msat, &spent) {
            Admission::Refused { reason } if idle => Step::End(reason),
            Admission::Refused { reason } => {
                st.last_reason = reason;
                Step::Wait
            }
            // Cut by what moves in flight have reserved: wait for them rather than start with
            // a cap they may soon give back.
            Admission::Allowed { fee_cap_msat } if fee_cap_msat < m.fee_cap_msat && !idle => {
                Step::Wait
            }
            Admission::Allowed { fee_cap_msat } => {
                let cut = fee_cap_msat < m.fee_cap_msat;
                m.fee_cap_msat = fee_cap_msat;
                Step::Start(m, cut)
            }
        }
    }

    /// Starts `m` in the background with its fee cap reserved and its channels in flight;
    /// `cut`: the budget cut its cap.
    fn start_move(
        self: &Arc<Self>,
        job: &Arc<Job>,
        tasks: &mut JoinSet<Ended>,
        st: &mut JobState,
        m: Move,
        cut: bool,
        min_amount_msat: u64,
    ) {
        st.reserved = st.reserved.saturating_add(m.fee_cap_msat);
        st.in_flight.insert(m.outgoing.to_string());
        st.in_flight.insert(m.incoming.to_string());
        job.progress.lock().expect("job lock").moves_in_flight += 1;
        info!("rebalanceall job {}: {}", job.id, m.reason);
        job.tell(&format!(
            "{} -> {} {}: started (fee at most {}msat)",
            m.outgoing,
            m.incoming,
            display_sat(m.amount_msat),
            m.fee_cap_msat
        ));
        let extra = Extra {
            fee_cap_msat: Some(m.fee_cap_msat),
            job_id: job.id,
            cancel: Some(job.cancel.clone()),
            progress: None,
            background: false,
        };
        let me = self.clone();
        let job = job.clone();
        let sized = self.config.auto.sized_moves;
        tasks.spawn(async move {
            let mut params = move_params(&m, false);
            let mut extra = extra;
            if sized {
                match me.sized(&job, &m, min_amount_msat).await {
                    Ok(Some(amount)) => {
                        // Base fees do not shrink with the amount: the cap scales down with it.
                        extra.fee_cap_msat = Some(scale(m.fee_cap_msat, amount, m.amount_msat));
                        params.amount_msat = Some(amount);
                    }
                    Ok(None) => {}
                    Err(e) => return (m, cut, Err(e)),
                }
            }
            let r = me.rebalance_with(params, extra).await;
            (m, cut, r)
        });
    }

    /// What of move `m` can go now: `Some(amount)` when probes found less than planned (at
    /// least the minimum), `None` for all of it, or why nothing will (below the minimum:
    /// `data.sized`, so the job does not halve what probing already searched).
    async fn sized(
        &self,
        job: &Job,
        m: &Move,
        min_amount_msat: u64,
    ) -> Result<Option<u64>, RpcFailure> {
        let found = self
            .size_move(
                &m.outgoing.to_string(),
                &m.incoming.to_string(),
                m.amount_msat,
                m.fee_cap_msat,
            )
            .await?;
        job.progress.lock().expect("job lock").probes += found.probes;
        let amount = found.amount_msat / MSAT_PER_SAT * MSAT_PER_SAT;
        // All of it; or nothing even planned within the cap (no probe sent): the move itself
        // says why, as it would without sizing.
        if amount >= m.amount_msat || found.probes == 0 {
            return Ok(None);
        }
        if amount < min_amount_msat {
            return Err(RpcFailure::new(
                error::PAY_ROUTE_NOT_FOUND,
                format!(
                    "probes found {} that can move from {} into {} now, below the min amount {} ({} probe(s))",
                    display_sat(amount),
                    m.outgoing,
                    m.incoming,
                    display_sat(min_amount_msat),
                    found.probes
                ),
            )
            .with_data(serde_json::json!({"sized": true, "probes": found.probes})));
        }
        job.tell(&format!(
            "{} -> {}: probes found {} can move now, of the {} planned",
            m.outgoing,
            m.incoming,
            display_sat(amount),
            display_sat(m.amount_msat)
        ));
        Ok(Some(amount))
    }

    /// Step 3 of the loop: a move ended; what the job does next because of it.
    async fn after_move(
        &self,
        job: &Job,
        config: &PlanConfig,
        st: &mut JobState,
        (m, cut, res): Ended,
        others_in_flight: bool,
    ) {
        st.in_flight.remove(&m.outgoing.to_string());
        st.in_flight.remove(&m.incoming.to_string());
        self.move_ended(job, &m, &res, st);
        if !others_in_flight || res.is_ok() {
            st.deferred.clear();
        }
        let e = match res {
            Ok(v) => {
                self.wait_settled(v["payment_hash"].as_str().unwrap_or_default())
                    .await;
                st.sink_failures.remove(&m.incoming);
                st.source_failures.remove(&m.outgoing);
                return;
            }
            Err(e) => e,
        };
        let half = half_sat(m.amount_msat);
        if cut && e.code == error::PAY_ROUTE_TOO_EXPENSIVE {
            // The budget cut its cap: what is left may still pay for a smaller move.
            if half >= config.min_amount_msat {
                st.sink_amount.insert(m.incoming, half);
            } else {
                st.exhausted = Some(format!(
                    "fee budget spent: {} spent in this run, and the {}msat left does not pay for moving {} into {} ({})",
                    display_sat(st.run_spent),
                    m.fee_cap_msat,
                    display_sat(m.amount_msat),
                    m.incoming,
                    e.message
                ));
            }
            return;
        }
        let failures = st.sink_failures.entry(m.incoming).or_default();
        *failures += 1;
        let failures = *failures;
        let from_source = st.source_failures.entry(m.outgoing).or_default();
        *from_source += 1;
        if *from_source >= MAX_FAILURES_PER_CHANNEL {
            self.rest(job, m.outgoing, *from_source, "out of", &e.message);
        }
        let halves = halves(&e);
        // Probing already searched the amounts below the planned one: nothing to halve, but
        // another source may still fill the sink.
        let sized_out = e.data.as_ref().is_some_and(|d| d["sized"] == true);
        if e.code == error::INVALID_PARAMS
            || failures >= MAX_FAILURES_PER_CHANNEL
            || (halves && !sized_out && half < config.min_amount_msat)
        {
            self.rest(job, m.incoming, failures, "into", &e.message);
            st.gave_up += 1;
            st.last_reason = format!(
                "gave up on {} channel(s) to fill; the last, {}, after {} failed move(s), the last of {}: {}",
                st.gave_up,
                m.incoming,
                failures,
                display_sat(m.amount_msat),
                e.message
            );
        } else if !halves || sized_out {
            st.avoid.insert((m.outgoing, m.incoming));
        } else if others_in_flight {
            // The moves in flight may have been in its way: the same amount again once one of
            // them has ended.
            st.deferred.insert(m.incoming.to_string());
        } else {
            st.sink_amount.insert(m.incoming, half);
        }
    }

    /// Gives `scid` up: left out of this job and of later ones for [`REST_SECS`], as the next
    /// one (a schedule runs them often) would most likely fail the same way, adding refusals
    /// to the history instead of moving anything. Manual `rebalance` calls are not affected.
    /// `failures` moves `way` ("into" or "out of") it failed, the last with `last`.
    fn rest(&self, job: &Job, scid: Scid, failures: u32, way: &str, last: &str) {
        let why = format!(
            "job {}: {failures} failed moves {way} it, the last: {last}",
            job.id
        );
        let until = self.now_secs().saturating_add(REST_SECS);
        self.jobs.rest(scid.to_string(), until, why);
    }

    /// Books a finished move: the reservation goes, the fee is counted.
    fn move_ended(&self, job: &Job, m: &Move, res: &Result<Value, RpcFailure>, st: &mut JobState) {
        st.reserved = st.reserved.saturating_sub(m.fee_cap_msat);
        let mut p = job.progress.lock().expect("job lock");
        p.moves_in_flight = p.moves_in_flight.saturating_sub(1);
        match res {
            Ok(v) => {
                let fee = v["fee_msat"].as_u64().unwrap_or(0);
                st.run_spent = st.run_spent.saturating_add(fee);
                p.moves_completed += 1;
                // What moved: the planned amount, or what sizing found could.
                let moved = v["amount_msat"].as_u64().unwrap_or(m.amount_msat);
                p.moved_msat = p.moved_msat.saturating_add(moved);
                p.fee_msat = p.fee_msat.saturating_add(fee);
                info!(
                    "rebalanceall job {}: moved {}msat {} -> {} for {fee}msat",
                    job.id, m.amount_msat, m.outgoing, m.incoming
                );
            }
            // Probes found it could not go: nothing was sent, so no move failed.
            Err(e) if e.data.as_ref().is_some_and(|d| d["sized"] == true) => {
                p.moves_sized_out += 1;
                info!(
                    "rebalanceall job {}: {} -> {} not started: {}",
                    job.id, m.outgoing, m.incoming, e.message
                );
            }
            Err(e) => {
                p.moves_failed += 1;
                info!(
                    "rebalanceall job {}: {} -> {} {}msat failed: {}",
                    job.id, m.outgoing, m.incoming, m.amount_msat, e.message
                );
            }
        }
        drop(p);
        job.tell(&match res {
            Ok(v) => format!(
                "{} -> {} {}: moved for {}msat",
                m.outgoing,
                m.incoming,
                display_sat(m.amount_msat),
                v["fee_msat"].as_u64().unwrap_or(0)
            ),
            Err(e) => format!(
                "{} -> {} {}: failed: {}",
                m.outgoing,
                m.incoming,
                display_sat(m.amount_msat),
                e.message
            ),
        });
        job.tell_moves();
    }

    /// A completed rebalance's outgoing HTLC settles a moment after waitsendpay returns: wait
    /// until no HTLC of that payment is left on our channels, so the next plan sees the move.
    async fn wait_settled(&self, payment_hash: &str) {
        let until = tokio::time::Instant::now() + SETTLE_WAIT;
        while tokio::time::Instant::now() < until {
            match self.node.listpeerchannels().await {
                Ok(chans)
                    if !chans
                        .iter()
                        .any(|c| c.htlcs.iter().any(|h| h.payment_hash == payment_hash)) =>
                {
                    return;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(_) => return,
            }
        }
    }
}

/// `fee` scaled from `from` msat to `to` msat (a retry at a smaller amount keeps its ratio).
fn scale(fee: u64, to: u64, from: u64) -> u64 {
    if from == 0 {
        return 0;
    }
    ((fee as u128 * to as u128) / from as u128) as u64
}

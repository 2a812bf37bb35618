//! Automatic rebalancing: `rebalanceall` (plan, then run the moves in the background, several
//! at once but never two on one channel), `rebalancestop`, and the schedule
//! (`rebalance-auto-interval`). What should move is the planner's (`core::plan`); how much it
//! may cost is the economics rule and the budgets there; every move is a normal `rebalance`
//! (through the liquidity model, recorded in the history) with the job's fee cap and id.
//!
//! The loop, step by step ([`Rebalancer::run_job`]):
//! 1. read our channels and plan against them (pending HTLCs count as the planner says), with
//!    the channels of moves in progress left out;
//! 2. take the first move the budget admits and start it (until `rebalance-parallel` run);
//! 3. when one ends: a success waits for its HTLCs to settle on our channels, then the next
//!    plan sees it. A failure whose very first route already cost more than the cap is not
//!    tried again with that pair (the next plan pairs the sink with another source: a smaller
//!    amount cannot help, as caps scale with the amount and base fees do not); one that moves
//!    in flight may have been in the way of is tried again at the same amount once one of
//!    them ends; any other is tried again at half the amount. A channel is given up (left
//!    alone for the rest of the job) after three failed moves into it or out of it, or when
//!    half is below the minimum amount. A move whose cap the budget would cut because of what
//!    moves in flight have reserved waits for them; one the budget cut that finds no route
//!    within the cap is tried at half the amount, and the budget counts as spent below the
//!    minimum;
//! 4. it ends when every channel is within target, the budget is spent, nothing more can be
//!    done, or `rebalancestop` asked; the reason is logged and kept for the report.

use super::rebalance::{Extra, Rebalancer};
use crate::core::amount::display_sat;
use crate::core::graph::Scid;
use crate::core::plan::{
    Admission, Budget, ChannelSettings, Move, OurChannel, PlanConfig, Settings, Spent,
    plan_avoiding,
};
use crate::core::report::JobProgress;
use crate::error::{self, RpcFailure};
use crate::lightningd::{Lightningd, PeerChannel};
use crate::params::RebalanceParams;
use log::info;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;

/// How automatic rebalancing runs, from the options (a `rebalanceall` call may override the
/// plan's target, feeratio, minimum and the per-run budget).
#[derive(Debug, Clone)]
pub struct AutoConfig {
    pub plan: PlanConfig,
    pub budget: Budget,
    /// Moves in flight at once.
    pub parallel: usize,
    /// Seconds between scheduled runs; 0 = no schedule.
    pub interval_secs: u64,
    /// Settings from the config file (`rebalance-exclude`, `rebalance-channel-target`); the
    /// ones set with `rebalance-settings` (in the datastore) override them.
    pub settings: Settings,
}

impl Default for AutoConfig {
    fn default() -> Self {
        AutoConfig {
            plan: PlanConfig::default(),
            budget: Budget::default(),
            parallel: DEFAULT_PARALLEL,
            interval_secs: 0,
            settings: Settings::default(),
        }
    }
}

/// What one job's loop keeps between moves (the module doc's steps).
#[derive(Debug, Default)]
struct JobState {
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
    /// Pairs whose first route already cost more than the cap (no smaller amount helps), and
    /// how many moves from each source failed: a source whose peer routes dearly to everyone
    /// is given up after MAX_FAILURES_PER_CHANNEL too, not paired with every sink.
    avoid: HashSet<(Scid, Scid)>,
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
}

/// Moves in flight at once by default: two keep a job moving while one waits on a slow hop,
/// without piling HTLCs onto the same few routes.
pub const DEFAULT_PARALLEL: usize = 2;

/// One `rebalanceall` run.
#[derive(Debug)]
pub struct Job {
    pub id: u64,
    pub started_at: u64,
    stop: AtomicBool,
    stopped: tokio::sync::Notify,
    /// Handed to every move: set, they start no further attempt.
    cancel: Arc<AtomicBool>,
    progress: Mutex<JobProgress>,
    /// Why it ended (None while it runs).
    ended: Mutex<Option<String>>,
    done: tokio::sync::watch::Sender<bool>,
    /// The moves planned when it started.
    pub initial_plan: Value,
}

impl Job {
    pub fn is_running(&self) -> bool {
        self.ended.lock().expect("job lock").is_none()
    }

    pub fn progress(&self) -> JobProgress {
        self.progress.lock().expect("job lock").clone()
    }

    pub fn ended(&self) -> Option<String> {
        self.ended.lock().expect("job lock").clone()
    }

    fn to_json(&self) -> Value {
        let p = self.progress();
        json!({
            "job_id": self.id,
            "started_at": self.started_at,
            "running": self.is_running(),
            "ended": self.ended(),
            "moves_completed": p.moves_completed,
            "moves_failed": p.moves_failed,
            "moves_in_flight": p.moves_in_flight,
            "moved_msat": p.moved_msat,
            "fee_msat": p.fee_msat,
        })
    }
}

/// The planner's view of one of our channels.
pub fn our_channel(c: &PeerChannel) -> Option<OurChannel> {
    let scid: Scid = c.short_channel_id.as_deref()?.parse().ok()?;
    let sum = |dir: &str| {
        c.htlcs
            .iter()
            .filter(|h| h.direction == dir)
            .map(|h| h.amount_msat)
            .fold(0u64, u64::saturating_add)
    };
    let local = c.updates.local.unwrap_or_default();
    Some(OurChannel {
        short_channel_id: scid,
        peer_id: c.peer_id.clone(),
        state_normal: c.state == "CHANNELD_NORMAL",
        peer_connected: c.peer_connected,
        to_us_msat: c.to_us_msat,
        total_msat: c.total_msat,
        spendable_msat: c.spendable_msat,
        receivable_msat: c.receivable_msat,
        htlcs_out_msat: sum("out"),
        htlcs_in_msat: sum("in"),
        fee_base_msat: local.fee_base_msat,
        fee_proportional_millionths: local.fee_proportional_millionths,
    })
}

/// What a `rebalanceall` call asks for; `None` = the configured value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebalanceallParams {
    pub min_amount_msat: Option<u64>,
    pub feeratio_millionths: Option<u32>,
    pub target_percent: Option<u8>,
    pub budget_msat: Option<u64>,
    pub dryrun: bool,
}

/// Failed moves into one channel (or out of one) before a job gives up on it.
const MAX_FAILURES_PER_CHANNEL: u32 = 3;

/// Half of `amount_msat`, in whole satoshis as the planner's amounts are.
fn half_sat(amount_msat: u64) -> u64 {
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

/// How long a channel a job gave up on stays out of jobs: six hours, over which what made it
/// hopeless (routes, fees, balances) has likely changed. (It was the liquidity model's
/// half-life until that became half an hour: a schedule every few minutes would fail the same
/// channel again and again.)
pub const REST_SECS: u64 = 6 * 3600;

/// How long a finished move may take to settle on our channels before the job goes on.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

impl<N: Lightningd> Rebalancer<N> {
    /// Per-channel settings in force: the config file's, overridden by the datastore's.
    pub async fn settings(&self) -> Settings {
        let mut s = self.config.auto.settings.clone();
        let stored = self.stored_settings().await;
        for (k, v) in stored.channels {
            merge(s.channels.entry(k).or_default(), v);
        }
        for (k, v) in stored.peers {
            merge(s.peers.entry(k).or_default(), v);
        }
        s
    }

    /// The plan for our channels now (what `rebalanceall` would do, and `balances` suggests).
    pub async fn current_plan(
        &self,
        config: &PlanConfig,
        budget: &Budget,
        left_out: &HashSet<String>,
        avoid: &HashSet<(Scid, Scid)>,
        run_spent_msat: u64,
        reserved_msat: u64,
    ) -> Result<crate::core::plan::Plan, RpcFailure> {
        let chans = self
            .node
            .listpeerchannels()
            .await
            .map_err(|e| error::from_lightningd("listpeerchannels", &e))?;
        let ours: Vec<OurChannel> = chans.iter().filter_map(our_channel).collect();
        let mut settings = self.settings().await;
        for scid in left_out {
            if let Ok(s) = scid.parse() {
                settings.channels.entry(s).or_default().exclude = Some(true);
            }
        }
        let mut p = plan_avoiding(&ours, &settings, config, avoid);
        let spent = Spent {
            run_msat: run_spent_msat,
            last_24h_msat: self.fees_last_24h().await,
            reserved_msat,
        };
        p.apply_budget(budget, spent);
        Ok(p)
    }

    /// `rebalanceall`: the plan at once; the moves run in the background.
    pub async fn rebalanceall(
        self: &Arc<Self>,
        p: RebalanceallParams,
    ) -> Result<Value, RpcFailure> {
        let (config, budget) = self.job_config(&p)?;
        if let Some(job) = self.running_job() {
            return Err(RpcFailure::new(
                error::PLUGIN_ERROR,
                format!(
                    "rebalanceall is already running (job {}, started at {}): rebalancestop ends it",
                    job.id, job.started_at
                ),
            )
            .with_data(job.to_json()));
        }
        let resting = self.resting_channels();
        let mut left_out = self.busy_channels();
        left_out.extend(resting.keys().cloned());
        let mut plan = self
            .current_plan(&config, &budget, &left_out, &HashSet::new(), 0, 0)
            .await?;
        for (scid, reason) in &mut plan.skipped {
            if let Some((until, why)) = resting.get(&scid.to_string()) {
                *reason = format!("left out of jobs until {until} (unix time): {why}");
            }
        }
        let mut answer = plan.to_json();
        answer["fee_budget_msat"] = json!(budget.per_run_msat);
        answer["daily_budget_msat"] = json!(budget.daily_msat);
        if p.dryrun {
            answer["status"] = json!("dryrun");
            answer["message"] = json!(format!(
                "would start {} move(s); nothing paid",
                plan.moves.len()
            ));
            return Ok(answer);
        }
        // Job ids stay unique across restarts: the history remembers the last one.
        let last_recorded = self
            .history_entries()
            .await
            .iter()
            .map(|e| e.job_id)
            .max()
            .unwrap_or(0);
        let job = self.start_job(config, budget, answer.clone(), last_recorded)?;
        answer["status"] = json!("started");
        answer["job_id"] = json!(job.id);
        answer["message"] = json!(format!(
            "rebalanceall job {} started with {} move(s) planned; rebalancereport shows its progress, rebalancestop ends it",
            job.id,
            plan.moves.len()
        ));
        Ok(answer)
    }

    fn job_config(&self, p: &RebalanceallParams) -> Result<(PlanConfig, Budget), RpcFailure> {
        let mut config = self.config.auto.plan;
        if let Some(v) = p.min_amount_msat {
            config.min_amount_msat = v;
        }
        if let Some(v) = p.feeratio_millionths {
            config.feeratio_millionths = v;
        }
        if let Some(v) = p.target_percent {
            config.target_percent = v;
        }
        config
            .validate()
            .map_err(|e| RpcFailure::param("target", e))?;
        let mut budget = self.config.auto.budget;
        if let Some(b) = p.budget_msat {
            budget.per_run_msat = Some(b);
        }
        Ok((config, budget))
    }

    /// The job that runs now, if any.
    pub fn running_job(&self) -> Option<Arc<Job>> {
        self.job
            .lock()
            .expect("job lock")
            .clone()
            .filter(|j| j.is_running())
    }

    /// The job that runs now or ran last.
    pub fn last_job(&self) -> Option<Arc<Job>> {
        self.job.lock().expect("job lock").clone()
    }

    fn start_job(
        self: &Arc<Self>,
        config: PlanConfig,
        budget: Budget,
        initial_plan: Value,
        last_recorded_id: u64,
    ) -> Result<Arc<Job>, RpcFailure> {
        let mut slot = self.job.lock().expect("job lock");
        if slot.as_ref().is_some_and(|j| j.is_running()) {
            return Err(RpcFailure::new(
                error::PLUGIN_ERROR,
                "rebalanceall is already running",
            ));
        }
        let id = slot.as_ref().map_or(0, |j| j.id).max(last_recorded_id) + 1;
        let started_at = self.now_secs();
        let job = Arc::new(Job {
            id,
            started_at,
            stop: AtomicBool::new(false),
            stopped: tokio::sync::Notify::new(),
            cancel: Arc::new(AtomicBool::new(false)),
            progress: Mutex::new(JobProgress {
                job_id: id,
                started_at,
                ..JobProgress::default()
            }),
            ended: Mutex::new(None),
            done: tokio::sync::watch::channel(false).0,
            initial_plan,
        });
        *slot = Some(job.clone());
        drop(slot);
        let (me, j) = (self.clone(), job.clone());
        tokio::spawn(async move {
            let why = me.run_job(&j, config, budget).await;
            info!("rebalanceall job {}: ended: {why}", j.id);
            *j.ended.lock().expect("job lock") = Some(why);
            j.done.send_replace(true);
        });
        info!("rebalanceall job {id} started");
        Ok(job)
    }

    /// The job's loop (see the module doc). Returns why it ended.
    async fn run_job(
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
                return match st.exhausted {
                    Some(why) if !stop => why,
                    _ => "stopped by rebalancestop".into(),
                };
            }
            if tasks.len() < parallel {
                match self
                    .next_move(&config, &budget, &mut st, tasks.is_empty())
                    .await
                {
                    Step::Start(m, cut) => {
                        self.start_move(job, &mut tasks, &mut st, m, cut);
                        continue;
                    }
                    Step::End(why) => return why,
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

    /// Step 1 and 2 of the loop: plan, and the plan's first move if the budget admits it now.
    /// `idle`: no move is in flight (then a refusal or an empty plan ends the job).
    async fn next_move(
        &self,
        config: &PlanConfig,
        budget: &Budget,
        st: &mut JobState,
        idle: bool,
    ) -> Step {
        let mut left_out: HashSet<String> = self.busy_channels();
        left_out.extend(st.in_flight.iter().cloned());
        left_out.extend(self.resting_channels().into_keys());
        left_out.extend(st.deferred.iter().cloned());
        let p = match self
            .current_plan(
                config,
                &Budget::default(),
                &left_out,
                &st.avoid,
                st.run_spent,
                st.reserved,
            )
            .await
        {
            Ok(p) => p,
            Err(e) => {
                st.last_reason = format!("could not plan: {}", e.message);
                return Step::Wait;
            }
        };
        let Some(mut m) = p.moves.into_iter().next() else {
            if !idle {
                return Step::Wait;
            }
            return Step::End(if p.sinks.is_empty() && p.sources.is_empty() {
                "every channel is within target".into()
            } else if !st.last_reason.is_empty() {
                format!("nothing more can be done: {}", st.last_reason)
            } else {
                "nothing more can be done: no move left that the channels can carry".into()
            });
        };
        if let Some(&a) = st.sink_amount.get(&m.incoming) {
            let planned = m.amount_msat;
            m.amount_msat = planned.min(a);
            // Base fees do not shrink with the amount: scaling the cap down keeps it within
            // what the smaller move can earn.
            m.fee_cap_msat = scale(m.fee_cap_msat, m.amount_msat, planned);
        }
        let spent = Spent {
            run_msat: st.run_spent,
            last_24h_msat: self.fees_last_24h().await,
            reserved_msat: st.reserved,
        };
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
    ) {
        st.reserved = st.reserved.saturating_add(m.fee_cap_msat);
        st.in_flight.insert(m.outgoing.to_string());
        st.in_flight.insert(m.incoming.to_string());
        job.progress.lock().expect("job lock").moves_in_flight += 1;
        info!("rebalanceall job {}: {}", job.id, m.reason);
        let extra = Extra {
            fee_cap_msat: Some(m.fee_cap_msat),
            job_id: job.id,
            cancel: Some(job.cancel.clone()),
        };
        let params = move_params(&m, false);
        let me = self.clone();
        tasks.spawn(async move {
            let r = me.rebalance_with(params, extra).await;
            (m, cut, r)
        });
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
        if e.code == error::INVALID_PARAMS
            || failures >= MAX_FAILURES_PER_CHANNEL
            || (halves && half < config.min_amount_msat)
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
        } else if !halves {
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
        self.resting
            .lock()
            .expect("resting lock")
            .insert(scid.to_string(), (until, why));
    }

    /// Channels left out of jobs now, with until when and why.
    pub fn resting_channels(&self) -> HashMap<String, (u64, String)> {
        let now = self.now_secs();
        let mut r = self.resting.lock().expect("resting lock");
        r.retain(|_, (until, _)| *until > now);
        r.clone()
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
                p.moved_msat = p.moved_msat.saturating_add(m.amount_msat);
                p.fee_msat = p.fee_msat.saturating_add(fee);
                info!(
                    "rebalanceall job {}: moved {}msat {} -> {} for {fee}msat",
                    job.id, m.amount_msat, m.outgoing, m.incoming
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

    /// `rebalance-auto-interval`: a `rebalanceall` with the configured settings every so
    /// often, unless one runs already. Returns at once when the interval is 0.
    pub async fn run_schedule(self: Arc<Self>) {
        let every = self.config.auto.interval_secs;
        if every == 0 {
            return;
        }
        info!("automatic rebalancing every {every}s");
        loop {
            tokio::time::sleep(Duration::from_secs(every)).await;
            if self.running_job().is_some() {
                continue;
            }
            match self.rebalanceall(RebalanceallParams::default()).await {
                Ok(v) => info!(
                    "scheduled rebalanceall: {}",
                    v["message"].as_str().unwrap_or_default()
                ),
                Err(e) => info!("scheduled rebalanceall did not start: {}", e.message),
            }
        }
    }

    /// `rebalancestop`: no new attempt starts; the moves in flight end (complete or fail back);
    /// answers with what the job did.
    pub async fn rebalancestop(&self) -> Result<Value, RpcFailure> {
        let Some(job) = self.running_job() else {
            let last = self.last_job().map(|j| j.to_json());
            return Ok(json!({
                "message": "no rebalanceall job is running",
                "last_job": last,
            }));
        };
        job.stop.store(true, Ordering::SeqCst);
        job.cancel.store(true, Ordering::SeqCst);
        // notify_one keeps a permit if the loop is not waiting this instant.
        job.stopped.notify_one();
        let mut done = job.done.subscribe();
        // In-flight attempts end within their own retry_for; an HTLC held longer keeps its
        // invoice deleted, so it can only fail back.
        let wait = Duration::from_secs(self.config.retry_for_secs + 30);
        let _ = tokio::time::timeout(wait, done.wait_for(|d| *d)).await;
        let mut v = job.to_json();
        v["message"] = json!(format!(
            "rebalanceall job {} {}: {} move(s) completed ({}msat for {}msat in fees), {} failed",
            job.id,
            job.ended().unwrap_or_else(|| "is stopping".into()),
            job.progress().moves_completed,
            job.progress().moved_msat,
            job.progress().fee_msat,
            job.progress().moves_failed
        ));
        Ok(v)
    }
}

/// The `rebalance` request a planned move makes (its fee cap goes in [`Extra`]).
pub fn move_params(m: &Move, dryrun: bool) -> RebalanceParams {
    RebalanceParams {
        outgoing: m.outgoing.to_string(),
        incoming: m.incoming.to_string(),
        amount_msat: Some(m.amount_msat),
        maxfeeppm: None,
        exemptfee: None,
        retry_for: None,
        dryrun,
    }
}

/// `fee` scaled from `from` msat to `to` msat (a retry at a smaller amount keeps its ratio).
fn scale(fee: u64, to: u64, from: u64) -> u64 {
    if from == 0 {
        return 0;
    }
    ((fee as u128 * to as u128) / from as u128) as u64
}

fn merge(into: &mut ChannelSettings, from: ChannelSettings) {
    if from.exclude.is_some() {
        into.exclude = from.exclude;
    }
    if from.target_percent.is_some() {
        into.target_percent = from.target_percent;
    }
}

//! Automatic rebalancing: `rebalanceall` (plan, then run the moves in the background, several
//! at once but never two on one channel), `rebalancestop`, and the schedule
//! (`rebalance-auto-interval`). What should move is the planner's (`core::plan`); how much it
//! may cost is the economics rule and the budgets there; every move is a normal `rebalance`
//! (through the liquidity model, recorded in the history) with the job's fee cap and id.
//!
//! The loop, step by step (`job.rs`):
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

pub mod background; // background probing: the next planned moves' routes, while idle
mod job; // one job's loop: plan, admit, start, book, decide
pub mod plan; // the plan for our channels now; a move's rebalance request
mod quote; // a step's candidate pairs quoted (dry runs) before one starts

use crate::core::budget::Budget;
use crate::core::plan::PlanConfig;
use crate::error::{self, RpcFailure};
use crate::lightningd::Lightningd;
use crate::params::RebalanceallParams;
use crate::progress::Progress;
use crate::state::State;
use crate::state::jobs::Job;
use log::info;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl<N: Lightningd> State<N> {
    /// `rebalanceall`: the plan at once; the moves run in the background.
    pub async fn rebalanceall(
        self: &Arc<Self>,
        p: RebalanceallParams,
    ) -> Result<Value, RpcFailure> {
        self.start_rebalanceall(p, None).await
    }

    /// `rebalanceall wait=true`: starts the job, tells `follower` of each move as it goes and
    /// of the plan's progress, and answers with what the job did once it has ended.
    pub async fn rebalanceall_wait(
        self: &Arc<Self>,
        p: RebalanceallParams,
        follower: Option<Arc<dyn Progress>>,
    ) -> Result<Value, RpcFailure> {
        let dryrun = p.dryrun;
        let started = self.start_rebalanceall(p, follower).await?;
        if dryrun {
            return Ok(started);
        }
        let job = self
            .last_job()
            .filter(|j| Some(j.id) == started["job_id"].as_u64())
            .ok_or_else(|| RpcFailure::new(error::PLUGIN_ERROR, "the job started is gone"))?;
        job.wait_ended().await;
        // The plan was told move by move: the answer is what the job did.
        let mut answer = job.to_json();
        let p = job.progress();
        answer["status"] = json!("ended");
        answer["planned"] = json!(started["moves"].as_array().map_or(0, Vec::len));
        answer["message"] = json!(format!(
            "rebalanceall job {} ended: {}; {} move(s) completed ({} for {}msat in fees), {} failed",
            job.id,
            job.ended().unwrap_or_default(),
            p.moves_completed,
            crate::core::amount::display_sat(p.moved_msat),
            p.fee_msat,
            p.moves_failed
        ));
        Ok(answer)
    }

    async fn start_rebalanceall(
        self: &Arc<Self>,
        p: RebalanceallParams,
        follower: Option<Arc<dyn Progress>>,
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
        // What lightningd's own payments learned since the last read.
        self.read_xpay_layer().await;
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
        let job = self.start_job(config, budget, answer.clone(), last_recorded, follower)?;
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

    fn start_job(
        self: &Arc<Self>,
        config: PlanConfig,
        budget: Budget,
        initial_plan: Value,
        last_recorded_id: u64,
        follower: Option<Arc<dyn Progress>>,
    ) -> Result<Arc<Job>, RpcFailure> {
        let job = self
            .jobs
            .begin(self.now_secs(), initial_plan, last_recorded_id, follower)
            .map_err(|_| RpcFailure::new(error::PLUGIN_ERROR, "rebalanceall is already running"))?;
        let (me, j) = (self.clone(), job.clone());
        tokio::spawn(async move {
            let why = me.run_job(&j, config, budget).await;
            info!("rebalanceall job {}: ended: {why}", j.id);
            j.end(why);
        });
        info!("rebalanceall job {} started", job.id);
        Ok(job)
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

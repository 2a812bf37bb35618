//! The automatic rebalancing job that runs now or ran last, and the channels jobs gave up on
//! (left out of jobs for a while, with why).

use crate::core::report::JobProgress;
use crate::progress::Progress;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// How long a channel a job gave up on stays out of jobs: six hours, over which what made it
/// hopeless (routes, fees, balances) has likely changed. (It was the liquidity model's
/// half-life until that became half an hour: a schedule every few minutes would fail the same
/// channel again and again.)
pub const REST_SECS: u64 = 6 * 3600;

/// One `rebalanceall` run.
#[derive(Debug)]
pub struct Job {
    pub id: u64,
    pub started_at: u64,
    /// Set by `rebalancestop`: the loop starts nothing more.
    pub stop: AtomicBool,
    pub stopped: tokio::sync::Notify,
    /// Handed to every move: set, they start no further attempt.
    pub cancel: Arc<AtomicBool>,
    pub progress: Mutex<JobProgress>,
    /// Why it ended (None while it runs).
    pub ended: Mutex<Option<String>>,
    pub done: tokio::sync::watch::Sender<bool>,
    /// The moves planned when it started.
    pub initial_plan: Value,
    /// Who follows it (`rebalanceall wait=true`): a line per move, a bar over the plan.
    pub follower: Option<Arc<dyn Progress>>,
}

impl Job {
    pub fn new(
        id: u64,
        started_at: u64,
        initial_plan: Value,
        follower: Option<Arc<dyn Progress>>,
    ) -> Job {
        Job {
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
            follower,
        }
    }

    /// Tells the follower, if any, `text`.
    pub fn tell(&self, text: &str) {
        if let Some(f) = &self.follower {
            f.message(text);
        }
    }

    /// Moves the follower's bar: moves ended of those planned (to its end once the job is).
    pub fn tell_moves(&self) {
        if let Some(f) = &self.follower {
            let p = self.progress();
            let planned = self.initial_plan["moves"].as_array().map_or(0, Vec::len) as u32;
            let ended = p.moves_completed + p.moves_failed + p.moves_sized_out;
            // lightning-cli shows `num + 1` of `total` and ends the bar at `num + 1 == total`. A
            // job may make more moves than it planned (retries, replans): the bar ends when the
            // job does, not before, so once the planned moves have ended it waits there (a bar
            // whose total grew would read "2/3" and then "2/2").
            let total = planned.max(2);
            let (num, total) = if self.is_running() {
                if ended >= total {
                    return;
                }
                (ended.saturating_sub(1), total)
            } else {
                let total = planned.max(ended).max(2);
                (total - 1, total)
            };
            f.progress(num, total);
        }
    }

    /// Waits until the job has ended.
    pub async fn wait_ended(&self) {
        let mut done = self.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
    }

    pub fn is_running(&self) -> bool {
        self.ended.lock().expect("job lock").is_none()
    }

    pub fn progress(&self) -> JobProgress {
        self.progress.lock().expect("job lock").clone()
    }

    pub fn ended(&self) -> Option<String> {
        self.ended.lock().expect("job lock").clone()
    }

    /// Marks the job ended, for `why`: the follower hears it before anyone waiting wakes.
    pub fn end(&self, why: String) {
        let line = format!("job {} ended: {why}", self.id);
        *self.ended.lock().expect("job lock") = Some(why);
        self.tell_moves();
        self.tell(&line);
        self.done.send_replace(true);
    }

    pub fn to_json(&self) -> Value {
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
            "probes": p.probes,
            "moves_sized_out": p.moves_sized_out,
            "pairs_skipped": p.pairs_skipped,
        })
    }
}

/// The job slot and the resting channels.
#[derive(Default)]
pub struct Jobs {
    job: Mutex<Option<Arc<Job>>>,
    /// Channels a job gave up on, left out of jobs until the time given (unix seconds), with
    /// why: a scheduled job does not retry what the last one found hopeless.
    resting: Mutex<HashMap<String, (u64, String)>>,
}

impl Jobs {
    /// The job that runs now, if any.
    pub fn running(&self) -> Option<Arc<Job>> {
        self.last().filter(|j| j.is_running())
    }

    /// The job that runs now or ran last.
    pub fn last(&self) -> Option<Arc<Job>> {
        self.job.lock().expect("job lock").clone()
    }

    /// Makes a new job the current one, with an id above both the last job's and
    /// `last_recorded_id` (job ids stay unique across restarts); refused while one runs.
    pub fn begin(
        &self,
        started_at: u64,
        initial_plan: Value,
        last_recorded_id: u64,
        follower: Option<Arc<dyn Progress>>,
    ) -> Result<Arc<Job>, Arc<Job>> {
        let mut slot = self.job.lock().expect("job lock");
        if let Some(j) = slot.as_ref().filter(|j| j.is_running()) {
            return Err(j.clone());
        }
        let id = slot.as_ref().map_or(0, |j| j.id).max(last_recorded_id) + 1;
        let job = Arc::new(Job::new(id, started_at, initial_plan, follower));
        *slot = Some(job.clone());
        Ok(job)
    }

    /// Leaves `scid` out of jobs until `until` (unix seconds), for `why`.
    pub fn rest(&self, scid: String, until: u64, why: String) {
        self.resting
            .lock()
            .expect("resting lock")
            .insert(scid, (until, why));
    }

    /// Channels left out of jobs at `now`, with until when and why.
    pub fn resting(&self, now: u64) -> HashMap<String, (u64, String)> {
        let mut r = self.resting.lock().expect("resting lock");
        r.retain(|_, (until, _)| *until > now);
        r.clone()
    }
}

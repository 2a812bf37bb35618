//! Background probing's bookkeeping: when each background probe of the last hour went out
//! (the hourly budget), and how many went out since start (for `rebalance-liquidity`).

use crate::core::probing::ProbeWindow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// What background probing has sent.
#[derive(Default)]
pub struct BackgroundProbes {
    window: Mutex<ProbeWindow>,
    total: AtomicU64,
}

impl BackgroundProbes {
    /// One background probe sent at `now_secs`.
    pub fn record(&self, now_secs: u64) {
        self.lock().record(now_secs);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// Background probes sent within the hour before `now_secs`.
    pub fn last_hour(&self, now_secs: u64) -> u32 {
        self.lock().last_hour(now_secs)
    }

    /// Probes the last hour leaves of `per_hour`.
    pub fn remaining(&self, now_secs: u64, per_hour: u32) -> u32 {
        self.lock().remaining(now_secs, per_hour)
    }

    /// Background probes sent since start.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProbeWindow> {
        self.window.lock().expect("background probes lock")
    }
}

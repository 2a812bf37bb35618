//! What one probing call may spend and what it found.

use crate::core::route::{Hop, set_fee_msat};

/// How much probing one call may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeBudget {
    /// Probes (routes sent) at most.
    pub probes: u32,
    /// Seconds at most.
    pub secs: u64,
}

/// What probing found.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// The amount proven to move (all of it for a given amount that can; 0 when none).
    pub amount_msat: u64,
    /// The parts that move it (their routes), and what they pay together.
    pub set: Vec<Vec<Hop>>,
    pub fee_msat: u64,
    /// Probes sent, and how many reached us.
    pub probes: u32,
    pub carried: u32,
    /// The longest a probe took so far per hop of its route (ms): a probe is not started when
    /// less time is left than that for its hops.
    pub ms_per_hop: u64,
}

impl Found {
    /// Records `set` as what is proven to move `amount_msat`, with what its parts pay.
    pub(super) fn proven(&mut self, amount_msat: u64, set: Vec<Vec<Hop>>) {
        self.fee_msat = set_fee_msat(&set);
        self.amount_msat = amount_msat;
        self.set = set;
    }

    /// Whether time is left for a probe of `hops` hops (at the slowest pace seen so far)
    /// before the session's deadline: one started later would overrun the budget's seconds.
    pub(super) fn time_left(&self, hops: usize, now_ms: u64, deadline_ms: u64) -> bool {
        now_ms.saturating_add(self.ms_per_hop.saturating_mul(hops as u64)) < deadline_ms
    }
}

/// The fewest hops a probe has: out to a peer, one channel on, back in.
pub(super) const MIN_HOPS: usize = 3;

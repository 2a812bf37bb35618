//! Background probing's arithmetic (pure; time is a parameter): which planned moves to probe
//! and at what amount under the most liquidity probes may lock at once, and how many probes
//! the last hour leaves of the hourly budget.

use super::plan::Move;
use std::collections::VecDeque;

/// The window the hourly budget counts over, in seconds.
pub const HOUR_SECS: u64 = 3600;

/// When each background probe of the last hour went out (unix seconds, oldest first).
#[derive(Debug, Clone, Default)]
pub struct ProbeWindow {
    sent_secs: VecDeque<u64>,
}

impl ProbeWindow {
    /// One probe sent at `now_secs`.
    pub fn record(&mut self, now_secs: u64) {
        self.forget_before(now_secs);
        self.sent_secs.push_back(now_secs);
    }

    /// Probes sent within the hour before `now_secs`.
    pub fn last_hour(&mut self, now_secs: u64) -> u32 {
        self.forget_before(now_secs);
        self.sent_secs.len() as u32
    }

    /// Probes the hour before `now_secs` leaves of `per_hour`.
    pub fn remaining(&mut self, now_secs: u64, per_hour: u32) -> u32 {
        per_hour.saturating_sub(self.last_hour(now_secs))
    }

    fn forget_before(&mut self, now_secs: u64) {
        let cutoff = now_secs.saturating_sub(HOUR_SECS);
        while self.sent_secs.front().is_some_and(|&t| t <= cutoff) {
            self.sent_secs.pop_front();
        }
    }
}

/// One planned move to probe: its channels, the amount probed and the fee cap at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub outgoing: String,
    pub incoming: String,
    pub amount_msat: u64,
    pub fee_cap_msat: u64,
}

/// What the planned `moves` are probed at: each at its amount, or less where the probe's first
/// hop (amount plus the fee cap it may pay) would lock more than `max_locked_msat` (probes go
/// one at a time, so that is what is locked at once); the fee cap scaled with the amount, as
/// a job scales it. Moves that would be probed below `min_amount_msat` are left out: what a
/// probe that small proves says little of the move.
pub fn targets(moves: &[Move], max_locked_msat: u64, min_amount_msat: u64) -> Vec<ProbeTarget> {
    moves
        .iter()
        .filter_map(|m| {
            let amount = within_locked(m.amount_msat, m.fee_cap_msat, max_locked_msat);
            (amount > 0 && amount >= min_amount_msat.min(m.amount_msat)).then(|| ProbeTarget {
                outgoing: m.outgoing.to_string(),
                incoming: m.incoming.to_string(),
                amount_msat: amount,
                fee_cap_msat: scale(m.fee_cap_msat, amount, m.amount_msat),
            })
        })
        .collect()
}

/// The most of `amount_msat` (fee cap `fee_cap_msat`) whose amount plus scaled cap fits in
/// `max_locked_msat`, in whole satoshis.
fn within_locked(amount_msat: u64, fee_cap_msat: u64, max_locked_msat: u64) -> u64 {
    let total = amount_msat.saturating_add(fee_cap_msat);
    if total <= max_locked_msat {
        return amount_msat;
    }
    // amount x max_locked / (amount + cap): the cap scales with the amount.
    let a = (amount_msat as u128 * max_locked_msat as u128 / total as u128) as u64;
    a / 1000 * 1000
}

fn scale(fee: u64, to: u64, from: u64) -> u64 {
    if from == 0 {
        return 0;
    }
    (fee as u128 * to as u128 / from as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(amount_msat: u64, fee_cap_msat: u64) -> Move {
        Move {
            outgoing: "1x1x0".parse().unwrap(),
            incoming: "2x1x0".parse().unwrap(),
            amount_msat,
            fee_cap_msat,
            reason: String::new(),
        }
    }

    #[test]
    fn the_window_forgets_after_an_hour() {
        let mut w = ProbeWindow::default();
        for t in [100, 200, 300] {
            w.record(t);
        }
        assert_eq!(w.last_hour(300), 3);
        assert_eq!(w.remaining(300, 5), 2);
        assert_eq!(w.remaining(300, 2), 0);
        // The first went out an hour before 3700: it no longer counts.
        assert_eq!(w.last_hour(100 + HOUR_SECS), 2);
        assert_eq!(w.last_hour(300 + HOUR_SECS), 0);
        assert_eq!(w.remaining(300 + HOUR_SECS, 5), 5);
    }

    #[test]
    fn targets_fit_the_locked_limit_and_scale_the_cap() {
        // 1M sat with a 1,000 sat cap fits in 2M sat locked: probed whole.
        let t = targets(&[mv(1_000_000_000, 1_000_000)], 2_000_000_000, 0);
        assert_eq!(t[0].amount_msat, 1_000_000_000);
        assert_eq!(t[0].fee_cap_msat, 1_000_000);
        assert_eq!(
            (t[0].outgoing.as_str(), t[0].incoming.as_str()),
            ("1x1x0", "2x1x0")
        );
        // 3M sat, cap 3,000 sat, 1M sat locked at most: amount + cap <= 1M sat.
        let t = targets(&[mv(3_000_000_000, 3_000_000)], 1_000_000_000, 0);
        let (a, c) = (t[0].amount_msat, t[0].fee_cap_msat);
        assert!(a + c <= 1_000_000_000, "{a} + {c}");
        assert!(a >= 998_000_000, "{a}");
        assert_eq!(c, 3_000_000u128 as u64 * a / 3_000_000_000);
        // Below the minimum once cut: left out; a move planned below it stays.
        assert!(targets(&[mv(3_000_000_000, 0)], 50_000_000, 100_000_000).is_empty());
        assert_eq!(
            targets(&[mv(40_000_000, 0)], 50_000_000, 100_000_000)[0].amount_msat,
            40_000_000
        );
        assert!(targets(&[mv(3_000_000_000, 0)], 0, 0).is_empty());
    }
}

//! Fee budgets for automatic rebalancing: per run and over any rolling 24 hours, with what
//! moves in flight have reserved; whether a move may start, and with what fee cap.

use crate::core::amount::display_sat;

/// Fee budgets for automatic rebalancing. `None` = no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    /// Fees one `rebalanceall` run may spend.
    pub per_run_msat: Option<u64>,
    /// Fees all rebalances may spend in any rolling 24 hours.
    pub daily_msat: Option<u64>,
}

/// What is already spent or promised when a move asks to start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spent {
    /// Fees paid by the moves of this run that have completed.
    pub run_msat: u64,
    /// Fees paid by rebalances started in the last 24 hours, manual ones included
    /// (`History::fees_since(now - DAY_SECS)`).
    pub last_24h_msat: u64,
    /// The fee caps of the attempts still in flight. Release a reservation only when its
    /// payment is resolved: after a `waitsendpay` timeout (200) the HTLC may still settle.
    pub reserved_msat: u64,
}

/// The budget's answer to a move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Start it, with this fee cap (at most the one asked for); reserve the cap until it resolves.
    Allowed { fee_cap_msat: u64 },
    /// Nothing left; the reason names the budget that ran out.
    Refused { reason: String },
}

impl Budget {
    /// How much more may be reserved now (`None` = unlimited). Keeps, always:
    /// `run + reserved <= per_run` and `last_24h + reserved <= daily`. These hold over time as
    /// long as every attempt pays at most its cap, is recorded with its start time, and its
    /// reservation is dropped only when its fee is recorded.
    pub fn remaining_msat(&self, spent: &Spent) -> Option<u64> {
        let left = |budget: Option<u64>, used: u64| {
            budget.map(|b| b.saturating_sub(used.saturating_add(spent.reserved_msat)))
        };
        let run = left(self.per_run_msat, spent.run_msat);
        let day = left(self.daily_msat, spent.last_24h_msat);
        match (run, day) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, None) => a,
            (None, b) => b,
        }
    }

    /// Admits a move that asks for `fee_cap_msat`, cutting the cap to what is left.
    pub fn admit(&self, fee_cap_msat: u64, spent: &Spent) -> Admission {
        let Some(left) = self.remaining_msat(spent) else {
            return Admission::Allowed { fee_cap_msat };
        };
        if left > 0 {
            return Admission::Allowed {
                fee_cap_msat: fee_cap_msat.min(left),
            };
        }
        let day_left = self
            .daily_msat
            .map(|b| b.saturating_sub(spent.last_24h_msat.saturating_add(spent.reserved_msat)));
        let reason = match (day_left, self.daily_msat) {
            (Some(0), Some(daily)) => format!(
                "daily fee budget {} used: {} spent in the last 24 h, {} reserved by attempts in flight",
                display_sat(daily),
                display_sat(spent.last_24h_msat),
                display_sat(spent.reserved_msat)
            ),
            _ => format!(
                "per-run fee budget {} used: {} spent in this run, {} reserved by attempts in flight",
                display_sat(self.per_run_msat.unwrap_or(0)),
                display_sat(spent.run_msat),
                display_sat(spent.reserved_msat)
            ),
        };
        Admission::Refused { reason }
    }
}

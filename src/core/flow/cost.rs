//! What a channel direction costs a set of parts beyond its fee, and how much it can carry:
//! the [`FlowCost`] trait, for the liquidity model's view ([`Beliefs`]) and for the true
//! balances ([`KnownBalances`], the oracle's).

use crate::core::graph::{EdgeIdx, Graph, NodeIdx};
use crate::core::liquidity::Beliefs;
use crate::core::pathfind::HopCost;

/// What a channel direction costs the flow beyond its fee, and how much it can carry: the
/// liquidity model's view ([`Beliefs`]) or the true balances ([`KnownBalances`]). A
/// [`HopCost`] too: the single route for the whole amount is searched with it exactly as the
/// rebalance searches it.
pub trait FlowCost: HopCost {
    /// The cost in msat of `amount_msat` in all (every part together) over edge `idx` out of
    /// node `source`, in a set that delivers `whole_msat`; `None` when the edge cannot carry
    /// that much. Non-decreasing in the amount, and `None` from some amount on if ever.
    fn cost_msat(
        &self,
        graph: &Graph,
        idx: EdgeIdx,
        source: NodeIdx,
        amount_msat: u64,
        whole_msat: u64,
    ) -> Option<u64>;

    /// The most, up to `up_to_msat`, edge `idx` can carry in all: the largest amount
    /// [`FlowCost::cost_msat`] prices (a binary search on it unless overridden).
    fn carries_msat(&self, graph: &Graph, idx: EdgeIdx, source: NodeIdx, up_to_msat: u64) -> u64 {
        let carries = |a: u64| self.cost_msat(graph, idx, source, a, up_to_msat).is_some();
        if carries(up_to_msat) {
            return up_to_msat;
        }
        let (mut lo, mut hi) = (0u64, up_to_msat); // lo carries (0 always does), hi does not
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if carries(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The estimate that edge `idx` carries `amount_msat` (reported with each part, not
    /// minimised).
    fn probability(&self, graph: &Graph, idx: EdgeIdx, source: NodeIdx, amount_msat: u64) -> f64;
}

/// Fee only: no cost beyond fees, no limit but the htlc maximum (the `fee` routing strategy).
impl FlowCost for crate::core::pathfind::FeeOnly {
    #[inline(always)]
    fn cost_msat(&self, _: &Graph, _: EdgeIdx, _: NodeIdx, _: u64, _: u64) -> Option<u64> {
        Some(0)
    }

    fn carries_msat(&self, _: &Graph, _: EdgeIdx, _: NodeIdx, up_to_msat: u64) -> u64 {
        up_to_msat
    }

    fn probability(&self, _: &Graph, _: EdgeIdx, _: NodeIdx, _: u64) -> f64 {
        1.0
    }
}

impl FlowCost for Beliefs {
    /// The model's bits for `amount_msat` on the channel, at the price per bit of the whole
    /// amount: the set succeeds in one round only if every channel carries what every part
    /// puts on it, and what a failed round costs is the whole rebalance, so every bit of the
    /// set is priced alike (see the module doc). For a one-part set (`amount` about `whole`)
    /// this is what the single route search pays.
    #[inline(always)]
    fn cost_msat(
        &self,
        graph: &Graph,
        idx: EdgeIdx,
        source: NodeIdx,
        amount_msat: u64,
        whole_msat: u64,
    ) -> Option<u64> {
        if amount_msat == 0 {
            return Some(0);
        }
        let risk = self.risk_msat(idx, source, amount_msat, graph.edge_capacity_msat(idx))?;
        let risk = risk.saturating_add(self.hop_msat(amount_msat));
        if amount_msat == whole_msat {
            return Some(risk);
        }
        let at = self.per_bit_msat(amount_msat);
        if at <= 0.0 {
            return Some(risk);
        }
        Some((risk as f64 * self.per_bit_msat(whole_msat) / at).round() as u64)
    }

    /// From the risk: `bits = risk / (risk_base + amount x risk_ppm)`, `P = 2^-bits`. The risk
    /// is rounded to the msat, so this is within `0.5 / risk_base` bits of the model's P (the
    /// view keeps no other public accessor); 1 when the price per bit is zero.
    fn probability(&self, graph: &Graph, idx: EdgeIdx, source: NodeIdx, amount_msat: u64) -> f64 {
        if amount_msat == 0 {
            return 1.0;
        }
        let Some(risk) = self.risk_msat(idx, source, amount_msat, graph.edge_capacity_msat(idx))
        else {
            return 0.0;
        };
        let per_bit = self.per_bit_msat(amount_msat);
        if per_bit <= 0.0 {
            return 1.0;
        }
        (-(risk as f64) / per_bit).exp2()
    }
}

/// The true balances: `0.0(idx)` is what edge `idx` can really forward (its balance net of
/// reserve and HTLCs, its htlc maximum). No cost beyond fees; an amount over it is refused.
/// The oracle the simulation judges the solver against ([`cheapest_set`],
/// [`max_flow_within_cap`]).
#[derive(Debug, Clone, Copy)]
pub struct KnownBalances<F>(pub F);

impl<F: Fn(EdgeIdx) -> u64> FlowCost for KnownBalances<F> {
    #[inline(always)]
    fn cost_msat(
        &self,
        _: &Graph,
        idx: EdgeIdx,
        _: NodeIdx,
        amount_msat: u64,
        _: u64,
    ) -> Option<u64> {
        (amount_msat <= (self.0)(idx)).then_some(0)
    }

    fn carries_msat(&self, _: &Graph, idx: EdgeIdx, _: NodeIdx, up_to_msat: u64) -> u64 {
        (self.0)(idx).min(up_to_msat)
    }

    fn probability(&self, _: &Graph, idx: EdgeIdx, _: NodeIdx, amount_msat: u64) -> f64 {
        if amount_msat <= (self.0)(idx) {
            1.0
        } else {
            0.0
        }
    }
}

impl<F: Fn(EdgeIdx) -> u64> HopCost for KnownBalances<F> {
    #[inline(always)]
    fn extra_msat(&self, _: &Graph, idx: EdgeIdx, _: NodeIdx, amount_msat: u64) -> Option<u64> {
        (amount_msat <= (self.0)(idx)).then_some(0)
    }
}

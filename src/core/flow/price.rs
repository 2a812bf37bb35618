//! The exact price of a set of parts: integer msat, each part's fees computed backward as
//! `build_route` does, the combined amount on every shared channel, by how much it breaks each
//! limit; and the amounts re-balanced between the parts on that price.

use super::candidates::{PartSet, Subgraph, scale};
use super::cost::FlowCost;
use super::types::FlowRequest;
use crate::core::graph::{Graph, Policy};

/// Reusable buffers: per arc of the subgraph, the combined amount of the set being priced.
#[derive(Default)]
pub(super) struct Buffers {
    pub(super) loads: Vec<u64>,
    pub(super) touched: Vec<u32>,
}

impl Buffers {
    pub fn heap_bytes(&self) -> usize {
        self.loads.capacity() * 8 + self.touched.capacity() * 4
    }
}

/// What a set of parts costs, and by how much it breaks the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Price {
    /// msat beyond every limit other than the fee cap: capacities (combined), htlc limits,
    /// `min_part_msat`, what `A` can be sent.
    pub(super) over: u64,
    /// msat of fee beyond the cap.
    pub(super) fee_over: u64,
    pub(super) fee: u64,
    /// The cost beyond fees at weight 1.
    pub(super) risk: u64,
    /// fee + risk at the pass's weight: what is minimised.
    pub(super) cost: u64,
}

impl Price {
    /// Less is better: first the limits, then the cost.
    pub(super) fn key(&self) -> (u64, u64) {
        (self.over.saturating_add(self.fee_over), self.cost)
    }

    /// How good a starting point for re-balancing the amounts: the cost plus every msat
    /// over a limit (re-balancing moves small excesses elsewhere at a fraction of that).
    pub(super) fn promise(&self) -> (u64, u64) {
        let over = self.over.saturating_add(self.fee_over);
        (self.cost.saturating_add(over), over)
    }

    pub(super) fn feasible(&self) -> bool {
        self.over == 0 && self.fee_over == 0
    }
}

/// How far `x` is outside `lo..=hi`.
pub(super) fn outside(x: u64, lo: u64, hi: u64) -> u64 {
    lo.saturating_sub(x).saturating_add(x.saturating_sub(hi))
}

/// Prices sets of parts over one subgraph.
pub(super) struct Pricer<'a, C> {
    pub(super) graph: &'a Graph,
    pub(super) req: &'a FlowRequest<'a>,
    pub(super) cost: &'a C,
    pub(super) alpha: f64,
    pub(super) sub: &'a Subgraph,
    pub(super) buf: &'a mut Buffers,
    /// What each part beyond the first adds to the cost.
    pub(super) part_penalty: u64,
}

/// Passes over all pairs of parts at one step size, at most (a guard: each pass that changes
/// anything lowers the price).
pub(super) const MAX_PASSES: usize = 8;

impl<C: FlowCost> Pricer<'_, C> {
    /// The exact price of `set`; the combined amounts stay in `buf.loads` for the arcs in
    /// `buf.touched`.
    pub(super) fn price(&mut self, set: &[(u32, u64)]) -> Price {
        let Buffers { loads, touched } = &mut *self.buf;
        for &a in touched.iter() {
            loads[a as usize] = 0;
        }
        touched.clear();
        let req = self.req;
        let (mut over, mut fee, mut source) = (0u64, 0u64, 0u64);
        for &(p, amount) in set {
            if amount == 0 {
                over = over.saturating_add(1); // never proposed: a part carries something
                continue;
            }
            if set.len() > 1 {
                over = over.saturating_add(req.min_part_msat.saturating_sub(amount));
            }
            let last = &req.last_hop;
            over = over.saturating_add(outside(
                amount,
                last.htlc_minimum_msat,
                last.htlc_maximum_msat,
            ));
            let Some(mut carried) = last.fee_msat(amount).and_then(|f| amount.checked_add(f))
            else {
                over = u64::MAX;
                continue;
            };
            for &a in self.sub.paths[p as usize].arcs.iter().rev() {
                let policy: &Policy = &self.graph.edge(self.sub.arcs[a as usize].edge).policy;
                over = over.saturating_add(outside(
                    carried,
                    policy.htlc_minimum_msat,
                    policy.htlc_maximum_msat,
                ));
                let load = &mut loads[a as usize];
                if *load == 0 {
                    touched.push(a);
                }
                *load = load.saturating_add(carried);
                carried = policy
                    .fee_msat(carried)
                    .and_then(|f| carried.checked_add(f))
                    .unwrap_or(u64::MAX);
            }
            fee = fee.saturating_add(carried.saturating_sub(amount));
            source = source.saturating_add(carried);
        }
        over = over.saturating_add(source.saturating_sub(req.max_source_msat));
        let mut risk = 0u64;
        for &a in touched.iter() {
            let arc = &self.sub.arcs[a as usize];
            let load = loads[a as usize];
            if load > arc.hard_msat {
                over = over.saturating_add(load - arc.hard_msat);
                continue;
            }
            match self
                .cost
                .cost_msat(self.graph, arc.edge, arc.source, load, req.amount_msat)
            {
                Some(r) => risk = risk.saturating_add(r),
                None => over = over.saturating_add(1),
            }
        }
        let extra_parts = set.len().saturating_sub(1) as u64;
        Price {
            over,
            fee_over: fee.saturating_sub(req.max_fee_msat),
            fee,
            risk,
            cost: fee
                .saturating_add(scale(risk, self.alpha))
                .saturating_add(self.part_penalty.saturating_mul(extra_parts)),
        }
    }

    /// Moves amount between the parts of `set` while that lowers its price: every ordered
    /// pair, in steps halving from a quarter of the amount down to `min_step`. The sum never
    /// changes and no part reaches zero.
    pub(super) fn allocate(&mut self, set: &mut PartSet, min_step: u64) -> Price {
        let mut now = self.price(set);
        if set.len() < 2 {
            return now;
        }
        let mut step = (self.req.amount_msat / 4).max(min_step);
        while step >= min_step {
            for _ in 0..MAX_PASSES {
                let mut improved = false;
                for i in 0..set.len() {
                    for j in 0..set.len() {
                        if i == j || set[i].1 <= step {
                            continue;
                        }
                        set[i].1 -= step;
                        set[j].1 += step;
                        let p = self.price(set);
                        if p.key() < now.key() {
                            now = p;
                            improved = true;
                        } else {
                            set[i].1 += step;
                            set[j].1 -= step;
                        }
                    }
                }
                if !improved {
                    break;
                }
            }
            step /= 2;
        }
        // The buffers hold the last set priced, which may have been a rejected move.
        self.price(set)
    }
}

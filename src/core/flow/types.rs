//! What the solver is asked and what it answers: the request, the parts, the set, why there is
//! none.

use crate::core::graph::{EdgeIdx, Graph, NodeIdx, Policy};
use crate::core::pathfind::Exclusions;
use crate::core::route::{Hop, HopSpec, MAX_HOPS, MAX_TOTAL_CLTV, RouteError, build_route};
use std::fmt;

/// Most parts a set may have, whatever `max_parts` asks: every assignment of parts to paths is
/// priced, so their number must stay small (lightningd holds a set's parts for 70 s; 16 parts
/// of a rebalance would each be a tiny HTLC).
pub const MAX_PARTS: usize = 16;

/// One rebalance as the flow sees it: what `Plan` builds a single `Query` from.
///
/// From a rebalance's `Plan` (src/commands/rebalance.rs) and session:
/// ```text
/// FlowRequest {
///     from: query.from, to: query.to,           // the peers' graph nodes
///     amount_msat: plan.amount_msat,
///     last_hop: plan.last.policy,                // B's policy toward us (`remote`)
///     final_delay: plan.final_cltv,
///     max_parts, min_part_msat,                  // `maxparts`, `rebalance-min-part`
///     max_fee_msat: session.cap_msat,
///     max_source_msat: req.out.spendable_msat,   // what check_route compares hops[0] with
///     exclude: &plan.exclude,                    // us, and what failed so far
///     max_edges: query.max_edges, max_delay: query.max_delay,
/// }
/// ```
/// then for each part `part.hops(graph, &plan.first, &plan.last, plan.final_cltv)` are its
/// `sendpay` hops (each part with its own `partid`, all with the set's total as `amount_msat`).
/// With the model's view (`Beliefs`, rebuilt before each call as today) and `max_parts: 1`
/// the answer is the route `Plan::next_route` finds.
#[derive(Debug, Clone)]
pub struct FlowRequest<'a> {
    /// The outgoing peer `A`: where every part's path starts (our own first hop is free).
    pub from: NodeIdx,
    /// The incoming peer `B`: where every part's path ends.
    pub to: NodeIdx,
    /// What must arrive at us in all.
    pub amount_msat: u64,
    /// `B`'s policy for the last hop `B -> us`: each part pays its fee, counted in the cap.
    pub last_hop: Policy,
    /// The CLTV delay the payment must arrive at us with.
    pub final_delay: u32,
    /// Most parts (1: one route; at most [`MAX_PARTS`] are ever returned).
    pub max_parts: usize,
    /// Least a part may deliver when there are several.
    pub min_part_msat: u64,
    /// Most the whole set may pay in fees, the last hop's included.
    pub max_fee_msat: u64,
    /// Most `A` may be sent in all (our outgoing channel's spendable): the sum over the parts
    /// of amount + fee.
    pub max_source_msat: u64,
    /// What no part may use (nodes, edges, and what edges were found unable to carry: the sum
    /// of the parts over an edge must stay below its limit).
    pub exclude: &'a Exclusions,
    /// Most edges between `A` and `B` (18: a full route is at most [`MAX_HOPS`]).
    pub max_edges: u32,
    /// Most total delay `A` may be asked to receive ([`MAX_TOTAL_CLTV`]).
    pub max_delay: u32,
}

impl FlowRequest<'_> {
    /// The delay `B` must receive: the final delay plus its own delta.
    pub(super) fn deliver_delay(&self) -> Option<u32> {
        self.final_delay.checked_add(self.last_hop.delay)
    }

    /// Most edges a part's middle may have: the request's, and never over what a 20-hop route
    /// leaves between our own two hops.
    pub(super) fn edge_cap(&self) -> u32 {
        self.max_edges.min((MAX_HOPS - 2) as u32)
    }

    pub(super) fn delay_cap(&self) -> u32 {
        self.max_delay.min(MAX_TOTAL_CLTV)
    }
}

/// One part of the set.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The path `A ... B`, in travel order (empty when `A` is `B`).
    pub edges: Vec<EdgeIdx>,
    /// What this part delivers to us.
    pub amount_msat: u64,
    /// What it pays: every fee along `A ... B`, and `B`'s fee for the last hop.
    pub fee_msat: u64,
    /// What `A` must receive for it: `amount_msat + fee_msat`.
    pub source_amount_msat: u64,
    /// The CLTV delay `A` must receive for it.
    pub source_delay: u32,
    /// The cost's estimate that every hop of this part carries what the whole set puts on it
    /// (1 for [`KnownBalances`]).
    pub probability: f64,
}

impl Part {
    /// The part's `sendpay` hops: our first hop `first` (to `A`; its policy is ignored), the
    /// path, and the last hop `last` (`B -> us`, priced by `B`'s policy), amounts and delays
    /// computed backward by [`build_route`]: its fee is exactly `fee_msat`.
    pub fn hops(
        &self,
        graph: &Graph,
        first: &HopSpec,
        last: &HopSpec,
        final_delay: u32,
    ) -> Result<Vec<Hop>, RouteError> {
        let mut specs = Vec::with_capacity(self.edges.len() + 2);
        specs.push(first.clone());
        specs.extend(self.edges.iter().map(|&e| HopSpec::from_edge(graph, e)));
        specs.push(last.clone());
        build_route(&specs, self.amount_msat, final_delay)
    }
}

/// The answer: the parts, largest first, and what the set costs.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub parts: Vec<Part>,
    /// Every part's fee, summed: within the request's cap.
    pub fee_msat: u64,
    /// The cost beyond fees ([`FlowCost::cost_msat`] of every channel direction at the
    /// combined amount on it), summed: what was minimised with the fee.
    pub risk_msat: u64,
    /// The cost's estimate that the whole set succeeds in one round.
    pub probability: f64,
}

impl Flow {
    /// Fee + risk: what the solver minimised (with, for a set of several parts, the part
    /// penalty of [`FlowConfig`]).
    pub fn cost_msat(&self) -> u64 {
        self.fee_msat.saturating_add(self.risk_msat)
    }
}

/// Why there is no set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoFlow {
    /// The request itself cannot be met (what, in words): no amount, no parts, a peer not in
    /// the graph, an amount the last hop cannot carry in `max_parts` parts.
    Invalid(String),
    /// No path from `A` to `B` carries even one part.
    NoPath,
    /// Sets exist, but the cheapest found pays this much, over the cap.
    OverFeeCap { fee_msat: u64 },
    /// The paths found cannot carry the whole amount in `max_parts` parts of at least
    /// `min_part_msat` (capacity, htlc limits, what `A` can be sent).
    Insufficient,
}

impl fmt::Display for NoFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoFlow::Invalid(why) => write!(f, "{why}"),
            NoFlow::NoPath => write!(f, "no path between the peers"),
            NoFlow::OverFeeCap { fee_msat } => {
                write!(
                    f,
                    "the cheapest set of parts found costs {fee_msat}msat, over the fee cap"
                )
            }
            NoFlow::Insufficient => write!(
                f,
                "the paths found cannot carry the amount in the parts allowed"
            ),
        }
    }
}

//! Several paths and part amounts for one circular rebalance: the set that minimises fee + risk
//! for the whole amount (a min-cost flow; pure, no I/O).
//!
//! A rebalance is `us -> A ... B -> us`. [`solve`] returns at most `max_parts` parts, each a
//! path `A ... B` and the amount it delivers to us, that together deliver the whole amount at
//! the least fee + risk within the fee cap. Splitting is chosen when it is cheaper or likelier
//! than one route, not only when one route cannot carry the amount; when the best single route
//! wins, the answer is exactly that route as one part (what the rebalance's search returns).
//!
//! ## What is minimised
//! The fees of every part (its route computed backward exactly as
//! [`build_route`] does, the incoming peer's last hop to us included), plus, for every channel
//! direction the set uses, [`FlowCost::cost_msat`] of the amount ALL parts put on it together,
//! plus [`FlowConfig::part_penalty_base_msat`]/`_ppm` for every part beyond the first. For the
//! model's view that cost is `-log2 P(L >= amount)` priced at the model's rate for the WHOLE
//! amount (`risk_base + amount x risk_ppm` per bit): the bits of the set getting through in
//! one round (every part must), each worth what a failed round puts at stake. A one-part set
//! is then priced as the single route search prices it (each hop there at what it carries: the
//! amount and the fees after it, a hair more). Pricing each channel's bits at the amount on it
//! instead made small parts' risk look cheap: on the simulation the solver then split 1M sat
//! rebalances that got through in one round 37% of the time against the single route's 69%.
//! The part penalty (half a bit at the default model's rate) stands for what the model does
//! not see of a split (more nodes that may be offline, more HTLCs, the 70 s wait for every
//! part); without it splits the model preferred got through less often than the single route
//! (10 tasks won, 23 lost on the tuning seeds), with it about as often (2 won, 1 lost; see
//! `benches/README.md`).
//!
//! ## How (after Pickhardt & Richter, "Optimally Reliable & Cheap Payment Flows on the
//! Lightning Network"; CLN's askrene `mcf.c`/`refine.c` does this on the whole graph)
//! 1. **Candidates** (`candidates.rs`): the plugin's own route search
//!    ([`find_path_with`](crate::core::pathfind::find_path_with)) a few times: once for the
//!    whole amount with the cost itself as its `HopCost` (the rebalance's own search), then the
//!    amount in `n` equal chunks routed one after another, each priced on what the chunks
//!    before it put on the edges (the marginal cost of the combined amount), for each `n` of
//!    [`FlowConfig::chunks`]; when no single route carries the amount at all (capacity, not the
//!    cap), parts of the largest share a path still carries. The union of the paths found is a
//!    subgraph of tens of channel directions.
//! 2. **Flow** (`mcf.rs`): an exact min-cost flow of the whole amount from `A` to `B` on that
//!    subgraph, each channel direction's cost a convex piecewise-linear function of its flow:
//!    the fee (proportional, plus the base fee spread over a reference part amount) and the
//!    cost at [`FlowConfig::segments`] breakpoints (its lower convex hull, so a fixed charge
//!    such as the prior's depleted share spreads over the first segments), capacity what the
//!    cost says can be carried. Successive shortest paths with potentials (Dijkstra on reduced
//!    costs), the flow decomposed into paths. On the subgraph, not the graph: microseconds,
//!    where the searches take milliseconds; it adds combinations of pieces of different
//!    candidates.
//! 3. **Parts** (`assemble.rs`): a pool of paths (the flow's by amount, then the searches'),
//!    every assignment of 1..`max_parts` parts to them (several on one path only where an htlc
//!    maximum is below the amount) with first amounts on a grid (each step to the part whose
//!    own price rises least), the best few of those re-balanced on the EXACT price (integer
//!    msat, fees backward, combined amounts on shared channels; amount moved between parts in
//!    halving steps while the price falls), every limit a constraint: `min_part_msat`, htlc
//!    limits per part, the combined amount within what a channel carries, the whole set's fee
//!    within the cap, what `A` can be sent in all. The single route is priced the same way and
//!    the cheapest set keeping every limit is the answer. The linearised flow only proposes:
//!    what is returned is always priced and checked exactly, so its approximations (the base
//!    fee's spread, fees compounding along a path, the hull) cost optimality, never validity.
//!
//! When sets exist but none within the fee cap, the pass is repeated with the risk weighed
//! less ([`FlowConfig::risk_weights`], as askrene raises its fee weight): the likeliest set
//! within the cap, else the cheapest.
//!
//! Checked against brute force on small graphs (`tests.rs`: every set of up to three simple
//! paths, amounts in tenths) and on random graphs hop by hop (`tests/fuzz_flow.rs`).
//! Deterministic: every choice iterates vectors in index order, ties go to the lower index,
//! nothing iterates a hash map. Memory: a [`FlowScratch`] kept between calls holds the route
//! search's scratch and a per-edge and a per-node index (0.46 MiB on the 2026 mainnet graph);
//! the rest is sized by the subgraph.

mod assemble;
mod candidates;
mod config;
mod cost;
mod mcf;
mod oracle;
#[cfg(test)]
mod tests;

pub use config::{FlowConfig, default_config, oracle_config, suggested_parts};
pub use cost::{FlowCost, KnownBalances};
pub use oracle::{cheapest_set, max_flow_within_cap};

use crate::core::graph::{EdgeIdx, Graph, NodeIdx, Policy};
use crate::core::pathfind::{Exclusions, Scratch};
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
///     max_parts, min_part_msat,                  // e.g. flow::suggested_parts(amount)
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
    fn deliver_delay(&self) -> Option<u32> {
        self.final_delay.checked_add(self.last_hop.delay)
    }

    /// Most edges a part's middle may have: the request's, and never over what a 20-hop route
    /// leaves between our own two hops.
    fn edge_cap(&self) -> u32 {
        self.max_edges.min((MAX_HOPS - 2) as u32)
    }

    fn delay_cap(&self) -> u32 {
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

/// Memory kept between solves: the route search's scratch and the per-edge and per-node
/// indices of the subgraph. Its size follows the graph (about 4 bytes per edge and per node
/// beyond the search's own), never the number of solves.
#[derive(Default)]
pub struct FlowScratch {
    search: Scratch,
    sub: candidates::Subgraph,
    mcf: mcf::Mcf,
    assemble: assemble::Buffers,
}

impl FlowScratch {
    /// Bytes this scratch holds beyond the route search's (for the benchmark's memory report).
    pub fn heap_bytes(&self) -> usize {
        self.sub.heap_bytes() + self.mcf.heap_bytes() + self.assemble.heap_bytes()
    }
}

/// The set of at most `max_parts` parts that delivers `amount_msat` at the least fee + cost
/// within the fee cap (see the module doc), with the default knobs.
pub fn solve<C: FlowCost>(
    graph: &Graph,
    req: &FlowRequest,
    cost: &C,
    scratch: &mut FlowScratch,
) -> Result<Flow, NoFlow> {
    solve_with(graph, req, cost, &default_config(), scratch)
}

/// [`solve`] with the given knobs.
pub fn solve_with<C: FlowCost>(
    graph: &Graph,
    req: &FlowRequest,
    cost: &C,
    config: &FlowConfig,
    scratch: &mut FlowScratch,
) -> Result<Flow, NoFlow> {
    let req = &FlowRequest {
        max_parts: req.max_parts.min(MAX_PARTS),
        ..req.clone()
    };
    check_request(graph, req)?;
    if req.from == req.to {
        return assemble::direct(req);
    }
    let mut why = NoFlow::NoPath;
    for &alpha in &config.risk_weights {
        let alpha = if alpha.is_finite() {
            alpha.clamp(0.0, 1.0)
        } else {
            1.0
        };
        match solve_at(graph, req, cost, config, alpha, scratch) {
            Ok(flow) => return Ok(flow),
            // Only sets over the cap are worth weighing the risk less for: the weight changes
            // which paths are preferred, never which are refused. And a route within the cap
            // the risk-weighed search missed (it keeps one label a node: the likelier one may
            // be over the cap where a cheaper one is not), as `Plan` falls back to fees only.
            Err(Fail::Sets(e @ NoFlow::OverFeeCap { .. })) => why = more_telling(why, e),
            Err(Fail::NoPathWithinCap(NoFlow::OverFeeCap { fee_msat }))
                if fee_msat <= req.max_fee_msat =>
            {
                why = more_telling(why, NoFlow::Insufficient)
            }
            Err(Fail::Sets(e) | Fail::NoPathWithinCap(e)) => return Err(more_telling(why, e)),
        }
    }
    Err(why)
}

/// Of two reasons, the one that says more: a fee over the cap (the least such fee) before
/// paths that cannot carry the amount, before no path at all.
fn more_telling(a: NoFlow, b: NoFlow) -> NoFlow {
    match (a, b) {
        (NoFlow::OverFeeCap { fee_msat: x }, NoFlow::OverFeeCap { fee_msat: y }) => {
            NoFlow::OverFeeCap { fee_msat: x.min(y) }
        }
        (a @ NoFlow::OverFeeCap { .. }, _) | (_, a @ NoFlow::OverFeeCap { .. }) => a,
        (a @ NoFlow::Invalid(_), _) | (_, a @ NoFlow::Invalid(_)) => a,
        (NoFlow::Insufficient, _) | (_, NoFlow::Insufficient) => NoFlow::Insufficient,
        (a, _) => a,
    }
}

/// Why a pass found no set.
enum Fail {
    /// The searches found no path for any part within the cap.
    NoPathWithinCap(NoFlow),
    /// Paths were found; no set of them keeps every limit.
    Sets(NoFlow),
}

/// One pass at risk weight `alpha`: candidates, flow, parts.
fn solve_at<C: FlowCost>(
    graph: &Graph,
    req: &FlowRequest,
    cost: &C,
    config: &FlowConfig,
    alpha: f64,
    scratch: &mut FlowScratch,
) -> Result<Flow, Fail> {
    let FlowScratch {
        search,
        sub,
        mcf,
        assemble,
    } = scratch;
    let found = candidates::generate(graph, req, cost, config, alpha, sub, search);
    if sub.paths.is_empty() {
        // Not even one part within the cap: over it (the cheapest route says by how much), or
        // no path at all.
        return Err(Fail::NoPathWithinCap(match found.uncapped_fee {
            Some(fee_msat) => NoFlow::OverFeeCap { fee_msat },
            None => NoFlow::NoPath,
        }));
    }
    let flow_paths = if req.max_parts > 1 {
        mcf.run(graph, req, cost, config, alpha, sub)
    } else {
        Vec::new()
    };
    assemble::choose(
        graph,
        req,
        cost,
        config,
        alpha,
        sub,
        &found,
        &flow_paths,
        assemble,
    )
    .map_err(Fail::Sets)
}

/// Refuses what no set can meet, saying why.
fn check_request(graph: &Graph, req: &FlowRequest) -> Result<(), NoFlow> {
    let n = graph.node_count();
    if req.from as usize >= n || req.to as usize >= n {
        return Err(NoFlow::Invalid("a peer is not in the graph".into()));
    }
    if req.amount_msat == 0 {
        return Err(NoFlow::Invalid("nothing to deliver".into()));
    }
    if req.max_parts == 0 {
        return Err(NoFlow::Invalid("max_parts is 0".into()));
    }
    if req.exclude.nodes.contains(&req.from) || req.exclude.nodes.contains(&req.to) {
        return Err(NoFlow::Invalid("a peer is excluded".into()));
    }
    let last = &req.last_hop;
    let parts = req.max_parts as u64;
    if req.amount_msat < last.htlc_minimum_msat
        || req.amount_msat.div_ceil(parts) > last.htlc_maximum_msat
    {
        return Err(NoFlow::Invalid(format!(
            "the incoming peer forwards between {}msat and {}msat a part",
            last.htlc_minimum_msat, last.htlc_maximum_msat
        )));
    }
    if req.deliver_delay().is_none_or(|d| d > req.delay_cap()) {
        return Err(NoFlow::Invalid(
            "the final delay is over the CLTV cap".into(),
        ));
    }
    Ok(())
}

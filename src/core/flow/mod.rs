//! Several paths and part amounts for one circular rebalance: the set that minimises fee + risk
//! for the whole amount (a min-cost flow; pure, no I/O).
//!
//! A rebalance is `us -> A ... B -> us`. [`solve`] returns at most `max_parts` parts, each a
//! path `A ... B` and the amount it delivers to us, that together deliver the whole amount at
//! the least fee + risk, within the fee cap. Splitting is chosen when it is cheaper or likelier
//! than one route, not only when one route cannot carry the amount; when the best single route
//! wins, the answer is exactly that route, one part (what the single search returns).
//!
//! ## What is minimised
//! The cost of a set is its fees (every part's route computed backward exactly as
//! [`crate::core::route::build_route`] does, the incoming peer's last hop to us included) plus,
//! for every channel direction the set uses, [`FlowCost::cost_msat`] of the amount ALL parts
//! put on it together. For [`Beliefs`] that is the model's risk, `-log2 P(L >= amount)` at
//! `risk_base + amount x risk_ppm` per bit: the same price the single route search pays, so the
//! cost of a one-part set is exactly the single search's cost and the two compare like for
//! like. The bits are those of the set succeeding in one round (every channel carrying what
//! every part puts on it, independent channels); the price per bit is that of the amount at
//! stake on that channel, so a small part's risk weighs less than the whole amount's.
//!
//! ## How (after Pickhardt & Richter, "Optimally Reliable & Cheap Payment Flows on the
//! Lightning Network"; CLN's askrene `mcf.c`/`refine.c` does the same on the whole graph)
//! 1. **Candidates** ([`candidates`]): the plugin's own route search ([`find_path_with`]) a few
//!    times: once for the whole amount (the best single route, exactly as the rebalance asks
//!    for it), then the amount cut into `n` equal chunks routed one after the other, each
//!    priced on what the chunks before it already put on the edges (the marginal risk of the
//!    combined amount), for each `n` in [`FlowConfig::chunks`]. That is a few searches over the
//!    whole graph, and a small subgraph: the union of the paths found (tens to a few hundred
//!    channel directions).
//! 2. **Flow** ([`mcf`]): an exact min-cost flow of the whole amount from `A` to `B` on that
//!    subgraph, each channel direction's cost a convex piecewise-linear function of its flow:
//!    the fee (proportional, plus the base fee spread over a reference part amount) and the
//!    risk at [`FlowConfig::segments`] breakpoints (its lower convex hull, so a fixed charge
//!    such as the prior's depleted share spreads over the first segments), capacity what the
//!    model says it can carry at all. Successive shortest paths with potentials (Dijkstra on
//!    reduced costs), then the flow decomposed into paths. Running it on the subgraph, not the
//!    graph, is what keeps it within milliseconds; combining pieces of different candidates
//!    is what it adds over the candidates alone.
//! 3. **Parts** ([`assemble`]): the flow's paths, split where one exceeds an `htlc_maximum_msat`,
//!    the largest `max_parts` kept; then the amounts re-balanced between the parts on the EXACT
//!    cost (integer msat, backward fees, combined amounts on shared channels; moving amount
//!    from one part to another in halving steps while it lowers the cost), with every limit
//!    as a constraint: `min_part_msat`, htlc limits per part, the combined amount within what a
//!    channel can carry, the fee cap for the whole set, what `A` can be sent in all. Then
//!    fewer parts (dropping the smallest), the chunked candidates' own sets, and the single
//!    route are priced the same way, and the cheapest set that keeps every limit is the
//!    answer. The linearised flow only proposes; what is returned is always priced and checked
//!    exactly, so its errors (the base fee's spread, fees compounding along a path, the hull)
//!    cost optimality, never validity.
//!
//! When no set within the fee cap is found, the search is repeated with the risk weighed less
//! ([`FlowConfig::risk_weights`], as askrene raises its fee weight): the likeliest set that is
//! within the cap, then the cheapest.
//!
//! Deterministic: every choice iterates vectors in index order, ties go to the lower index, and
//! nothing iterates a hash map. Memory: a [`FlowScratch`] kept between calls holds the search's
//! scratch and two small per-edge/per-node index arrays; the rest is sized by the subgraph.

mod assemble;
mod candidates;
mod mcf;
#[cfg(test)]
mod tests;

use crate::core::graph::{EdgeIdx, Graph, NodeIdx, Policy};
use crate::core::liquidity::Beliefs;
use crate::core::pathfind::{Exclusions, HopCost, Scratch};
use crate::core::route::{Hop, HopSpec, MAX_HOPS, MAX_TOTAL_CLTV, RouteError, build_route};
use std::fmt;

/// One rebalance as the flow sees it: what `Plan` builds a single `Query` from.
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
    /// Most parts (1: one route).
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
    /// Fee + risk: what the solver minimised.
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

/// The model's price per bit of `-log2 P` for `amount_msat` at stake.
fn per_bit(beliefs: &Beliefs, amount_msat: u64) -> f64 {
    beliefs.config.risk_base_msat as f64
        + amount_msat as f64 * beliefs.config.risk_ppm as f64 * 1e-6
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
        if amount_msat == whole_msat {
            return Some(risk);
        }
        let at = per_bit(self, amount_msat);
        if at <= 0.0 {
            return Some(risk);
        }
        Some((risk as f64 * per_bit(self, whole_msat) / at).round() as u64)
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
        let per_bit = per_bit(self, amount_msat);
        if per_bit <= 0.0 {
            return 1.0;
        }
        (-(risk as f64) / per_bit).exp2()
    }
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

/// The solver's knobs. [`default_config`] was tuned on the simulation's seeds 1-6 (see
/// `benches/flow.rs` and `benches/README.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowConfig {
    /// Candidate rounds: for each `n`, the amount cut into `n` equal chunks routed one after
    /// the other on what the chunks before put on the edges (`n = 1`: the single route, always
    /// searched first whatever this says). More rounds: a richer subgraph, more searches.
    pub chunks: Vec<usize>,
    /// Breakpoints of each channel direction's piecewise-linear cost in the flow.
    pub segments: usize,
    /// The reference part amount the base fee is spread over in the flow, as a share of the
    /// whole amount: `amount / ref_parts`.
    pub ref_parts: u64,
    /// The exact re-balancing of amounts between parts stops at steps below
    /// `amount / 2^alloc_depth` (and never goes below 1 sat).
    pub alloc_depth: u32,
    /// Run the largest-first round ([`candidates`]) even when a single route was found (it
    /// always runs when none was): for the oracle, where capacities bind.
    pub always_largest_first: bool,
    /// Distinct paths the parts are chosen among: the flow's, by amount, then the searches';
    /// every assignment of up to `max_parts` parts to them is priced at proportional amounts.
    pub combine_paths: usize,
    /// The grid (steps of the amount) first amounts are chosen on for each assignment.
    pub grid: usize,
    /// Of those assignments, how many (the best priced) get their amounts re-balanced.
    pub allocations: usize,
    /// What each part beyond the first costs on top of its fees and risk: `base + ppm x
    /// amount` (of the whole amount). A set of parts fails in ways the cost does not see (more
    /// nodes that may be offline, more HTLCs, the receiver's 70 s wait for all of them), so a
    /// split must be cheaper by this much to be chosen.
    pub part_penalty_base_msat: u64,
    pub part_penalty_ppm: u64,
    /// Weights on the risk tried in turn until a set within the fee cap is found: 1 is the
    /// model's price; 0 is fees only (within what the model says can be carried).
    pub risk_weights: Vec<f64>,
}

/// The defaults (see [`FlowConfig`]).
pub fn default_config() -> FlowConfig {
    FlowConfig {
        chunks: vec![2, 4],
        segments: 8,
        ref_parts: 2,
        alloc_depth: 10,
        always_largest_first: false,
        combine_paths: 4,
        grid: 16,
        allocations: 3,
        part_penalty_base_msat: 0,
        part_penalty_ppm: 0,
        risk_weights: vec![1.0, 0.0],
    }
}

/// The oracle's knobs ([`cheapest_set`]): fees only, and more effort than the plugin can
/// spend on every rebalance (it runs offline), since with hard capacities cheap paths that
/// carry only a little are worth finding: smaller chunks, the largest-first round, more paths
/// combined and more sets re-balanced.
pub fn oracle_config() -> FlowConfig {
    FlowConfig {
        chunks: vec![2, 3, 4, 6, 8],
        always_largest_first: true,
        combine_paths: 6,
        allocations: 6,
        part_penalty_base_msat: 0,
        part_penalty_ppm: 0,
        risk_weights: vec![0.0],
        ..default_config()
    }
}

/// Suggested `max_parts` and `min_part_msat` for a rebalance of `amount_msat` (see
/// `benches/README.md`): a few parts for millions of sat, none below 100k sat or a tenth of the
/// amount.
pub fn suggested_parts(amount_msat: u64) -> (usize, u64) {
    (4, (amount_msat / 10).max(100_000_000))
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
            // which paths are preferred, never which are refused.
            Err(Fail::Sets(e @ NoFlow::OverFeeCap { .. })) => why = more_telling(why, e),
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

/// The cheapest set (fees only) that delivers `req.amount_msat` within `req.max_fee_msat`
/// when every channel direction can forward exactly `capacity(edge)`: what an oracle that
/// knows the true balances would send (at most `req.max_parts` parts).
pub fn cheapest_set(
    graph: &Graph,
    req: &FlowRequest,
    capacity: impl Fn(EdgeIdx) -> u64,
    scratch: &mut FlowScratch,
) -> Result<Flow, NoFlow> {
    solve_with(
        graph,
        req,
        &KnownBalances(capacity),
        &oracle_config(),
        scratch,
    )
}

/// The most that can move from `A` to `B` when every channel direction forwards exactly
/// `capacity(edge)`, within the fee cap `fee_cap(amount)` (for the plugin,
/// `max(exemptfee, maxfeeppm x amount)`), in at most `req.max_parts` parts: a binary search on
/// the amount between 1 msat and `req.amount_msat`, to within `resolution_msat`, each step a
/// [`cheapest_set`] (`req.max_fee_msat` is replaced by `fee_cap` of each amount tried). `None`
/// when not even `min(req.amount_msat, resolution_msat)` can move. Feasibility is nearly, not
/// strictly, monotone in the amount (parts and base fees), so this is the largest amount found
/// feasible, a lower bound of the true maximum.
pub fn max_flow_within_cap(
    graph: &Graph,
    req: &FlowRequest,
    capacity: impl Fn(EdgeIdx) -> u64,
    fee_cap: impl Fn(u64) -> u64,
    resolution_msat: u64,
    scratch: &mut FlowScratch,
) -> Option<Flow> {
    let resolution = resolution_msat.max(1);
    let try_amount = |amount: u64, scratch: &mut FlowScratch| {
        let r = FlowRequest {
            amount_msat: amount,
            max_fee_msat: fee_cap(amount),
            ..req.clone()
        };
        cheapest_set(graph, &r, &capacity, scratch).ok()
    };
    if let Some(all) = try_amount(req.amount_msat, scratch) {
        return Some(all);
    }
    let mut lo = req.amount_msat.min(resolution);
    let mut best = try_amount(lo, scratch)?;
    let mut hi = req.amount_msat; // does not move
    while hi - lo > resolution {
        let mid = lo + (hi - lo) / 2;
        match try_amount(mid, scratch) {
            Some(f) => {
                lo = mid;
                best = f;
            }
            None => hi = mid,
        }
    }
    Some(best)
}

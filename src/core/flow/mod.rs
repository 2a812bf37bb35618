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
//! Replacement parts (what a failed part left missing while the others are held) are planned
//! without it ([`replacement_config`]): the set is split and waiting already.
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
mod price; // the exact price of a set of parts; amounts re-balanced on it
mod solve; // the entry points: candidates, flow, parts at each risk weight
#[cfg(test)]
mod tests;
mod types; // the request, the parts, the set, why there is none

pub use config::{
    FlowConfig, MAX_RISK_WEIGHT, cheap_first_config, default_config, oracle_config,
    replacement_config, thorough, urgent_config,
};
pub use cost::{FlowCost, KnownBalances};
pub use oracle::{cheapest_set, max_flow_within_cap};
pub use solve::{FlowScratch, solve, solve_with};
pub use types::{Flow, FlowRequest, MAX_PARTS, NoFlow, Part};

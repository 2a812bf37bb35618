//! What an oracle that knows the true balances would do: the cheapest set of parts for an
//! amount, and the most that can move within the fee cap (for the simulation's benchmarks).

use super::{Flow, FlowRequest, FlowScratch, KnownBalances, NoFlow, oracle_config, solve_with};
use crate::core::graph::{EdgeIdx, Graph};

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
/// [`cheapest_set`] (`req.max_fee_msat` is replaced by `fee_cap` of each amount tried, the rest
/// of `req`, `min_part_msat` included, applies as given). `None`
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

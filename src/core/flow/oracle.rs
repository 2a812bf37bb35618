//! What an oracle that knows the true balances would do: the cheapest set of parts for an
//! amount, and the most that can move within the fee cap (for the simulation's benchmarks).

use super::config::oracle_config;
use super::cost::KnownBalances;
use super::solve::{FlowScratch, solve_with};
use super::types::{Flow, FlowRequest, NoFlow};
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
/// `max(exemptfee, maxfeeppm x amount)`), in at most `req.max_parts` parts, each step a
/// [`cheapest_set`] (`req.max_fee_msat` is replaced by `fee_cap` of each amount tried; the rest
/// of `req`, `min_part_msat` included, applies as given). Feasibility is not monotone in the
/// amount: capacity stops large amounts, and base fees against the cap's floor can stop small
/// ones. So: `req.amount_msat` itself, else the first of `7/8, 6/8, ..., 1/8, 1/16, 1/32, ...`
/// of it (down to `resolution_msat`) that moves, then a binary search up to the amount tried
/// before it, to within `resolution_msat`. `None` when none moves. The largest amount found
/// feasible: a lower bound of the true maximum, and within `resolution_msat` of it where
/// feasibility is an interval.
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
    let total = req.amount_msat;
    if let Some(all) = try_amount(total, scratch) {
        return Some(all);
    }
    // From the top down: 7/8, 6/8, ..., 1/8, then 1/16, 1/32, ... while over the resolution;
    // the first that moves, and the one tried before it, bound the search.
    let mut grid: Vec<u64> = (1..8)
        .rev()
        .map(|k| (u128::from(total) * k / 8) as u64)
        .collect();
    let mut below = total / 16;
    while below >= resolution && below > 0 {
        grid.push(below);
        below /= 2;
    }
    let (mut lo, mut hi, mut best) = (0, total, None);
    for amount in grid {
        if let Some(f) = try_amount(amount, scratch) {
            (lo, best) = (amount, Some(f));
            break;
        }
        hi = amount;
    }
    let mut best = best?;
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

//! An independent checker of routes (test-only code): BOLT 7's fee and the protocol's
//! constraints written out again from scratch, sharing no code with the crate's search, and an
//! exhaustive search to compare the search's optimum with.
//!
//! Shared by `tests/mainnet_pathfind.rs` (real graphs) and `tests/fuzz_core.rs` (random ones).
#![allow(dead_code)] // each includer uses a different part

use cln_rebalance::core::graph::{Graph, NodeIdx, Policy};
use cln_rebalance::core::pathfind::{Exclusions, Path, Query};
use cln_rebalance::core::route::Hop;

/// BOLT 7's fee, `base + ceil(amount * ppm / 1e6)`, in u128; `None` when it does not fit a u64.
pub fn spec_fee(amount_msat: u64, policy: &Policy) -> Option<u64> {
    let prop = (u128::from(amount_msat) * u128::from(policy.fee_per_millionth)).div_ceil(1_000_000);
    u64::try_from(prop + u128::from(policy.base_fee_millisatoshi)).ok()
}

/// What a valid path for `query` must satisfy, checked from scratch. Returns the carried
/// amount of every edge (what its destination receives), in path order.
pub fn check_path(g: &Graph, query: &Query, exclude: &Exclusions, path: &Path) -> Vec<u64> {
    let edges: Vec<_> = path.edges.iter().map(|&i| g.edge(i)).collect();
    if query.from == query.to {
        assert!(edges.is_empty());
    } else {
        assert!(!edges.is_empty(), "a path between distinct peers has edges");
        assert_eq!(edges[0].source, query.from, "starts at the outgoing peer");
        assert_eq!(
            edges[edges.len() - 1].destination,
            query.to,
            "ends at the incoming peer"
        );
    }
    for w in edges.windows(2) {
        assert_eq!(w[0].destination, w[1].source, "consecutive edges connect");
    }
    let mut nodes = vec![query.from];
    nodes.extend(edges.iter().map(|e| e.destination));
    let mut sorted = nodes.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), nodes.len(), "no node repeated: {nodes:?}");
    for n in &nodes {
        assert!(!exclude.nodes.contains(n), "excluded node {n} used");
    }
    assert!(edges.len() as u32 <= query.max_edges, "hop cap");
    // Backward, as lightningd's onion would be built.
    let (mut amount, mut delay) = (query.deliver_msat, query.deliver_delay);
    let mut carried = vec![0; edges.len()];
    for (i, e) in edges.iter().enumerate().rev() {
        let idx = path.edges[i];
        assert!(e.active, "edge {} inactive", e.short_channel_id);
        assert!(!exclude.edges.contains(&idx), "excluded edge used");
        if let Some(limit) = exclude.max_amount_msat.get(&idx) {
            assert!(amount < *limit, "edge over its learned amount limit");
        }
        assert!(
            e.policy.htlc_minimum_msat <= amount && amount <= e.policy.htlc_maximum_msat,
            "htlc limits of {}: {} not in {}..={}",
            e.short_channel_id,
            amount,
            e.policy.htlc_minimum_msat,
            e.policy.htlc_maximum_msat
        );
        assert!(
            amount <= e.amount_msat,
            "capacity of {}",
            e.short_channel_id
        );
        carried[i] = amount;
        let fee = spec_fee(amount, &e.policy).expect("a found path's fee fits");
        amount = amount.checked_add(fee).expect("a found path's amount fits");
        delay = delay
            .checked_add(e.policy.delay)
            .expect("a found path's delay fits");
    }
    assert_eq!(amount, path.source_amount_msat, "source amount");
    assert_eq!(delay, path.source_delay, "source delay");
    assert!(delay <= query.max_delay, "delay cap");
    assert!(amount <= query.max_amount_msat, "amount cap");
    carried
}

/// `sendpay` hops against the policies they were priced with: `charged_by[i]` is the policy of
/// the node at the start of hop `i` for that hop (`charged_by[0]` is ours: unused, our hop is
/// free) and `carries[i]` the most hop `i` can carry (its htlc maximum and capacity). Checks the
/// fee rule and the delays hop by hop, htlc limits, and that amounts and delays never grow
/// along the route. Returns the route's fee.
pub fn check_hops(
    hops: &[Hop],
    charged_by: &[Policy],
    carries: &[u64],
    amount_msat: u64,
    final_cltv: u32,
) -> u64 {
    assert!(!hops.is_empty());
    assert_eq!(hops.len(), charged_by.len());
    let last = &hops[hops.len() - 1];
    assert_eq!(last.amount_msat, amount_msat, "the amount arrives");
    assert_eq!(last.delay, final_cltv, "the final delay arrives");
    for i in (1..hops.len()).rev() {
        let (prev, hop, p) = (&hops[i - 1], &hops[i], &charged_by[i]);
        assert!(
            p.htlc_minimum_msat <= hop.amount_msat && hop.amount_msat <= p.htlc_maximum_msat,
            "hop {i} over {}: {} not in {}..={}",
            hop.short_channel_id,
            hop.amount_msat,
            p.htlc_minimum_msat,
            p.htlc_maximum_msat
        );
        assert!(hop.amount_msat <= carries[i], "hop {i} over its capacity");
        let fee = spec_fee(hop.amount_msat, p).expect("fee fits");
        assert_eq!(
            Some(prev.amount_msat),
            hop.amount_msat.checked_add(fee),
            "hop {i}: the node before it receives what it forwards plus its fee"
        );
        assert_eq!(
            Some(prev.delay),
            hop.delay.checked_add(p.delay),
            "hop {i}: delay"
        );
        assert!(prev.amount_msat >= hop.amount_msat && prev.delay >= hop.delay);
    }
    hops[0].amount_msat - amount_msat
}

/// Most partial paths [`exhaustive`] may extend before giving up on a query: dense cuts around
/// hubs have astronomically many simple paths, and such queries are skipped (and counted).
pub const EXHAUSTIVE_BUDGET: u64 = 300_000;

/// The cheapest `(source amount, edges)` over every simple path `from ... to` within the caps,
/// by depth-first enumeration backward from `to`; `Err(())` when over [`EXHAUSTIVE_BUDGET`].
/// Partial paths already no better than the best complete one are cut (extending a path
/// backward never lowers its amount), and cheaper edges are tried first so that cut comes early.
/// An edge whose fee or amount would not fit a u64 is unusable (as for the search).
pub fn exhaustive(g: &Graph, q: &Query, ex: &Exclusions) -> Result<Option<(u64, u32)>, ()> {
    struct Search<'a> {
        g: &'a Graph,
        q: &'a Query,
        ex: &'a Exclusions,
        on_path: Vec<bool>,
        best: Option<(u64, u32)>,
        steps: u64,
    }
    impl Search<'_> {
        fn go(&mut self, v: NodeIdx, amount: u64, delay: u32, edges: u32) -> Result<(), ()> {
            self.steps += 1;
            if self.steps > EXHAUSTIVE_BUDGET {
                return Err(());
            }
            if self.best.is_some_and(|b| (amount, edges) >= b) {
                return Ok(());
            }
            if v == self.q.from {
                self.best = Some((amount, edges));
                return Ok(());
            }
            if edges == self.q.max_edges {
                return Ok(());
            }
            let (g, ex) = (self.g, self.ex);
            let mut next: Vec<(u64, u32, NodeIdx)> = g
                .edges_into(v)
                .filter(|(i, e)| {
                    e.active
                        && !self.on_path[e.source as usize]
                        && !ex.nodes.contains(&e.source)
                        && !ex.edges.contains(i)
                        && ex.max_amount_msat.get(i).is_none_or(|l| amount < *l)
                        && e.policy.htlc_minimum_msat <= amount
                        && amount <= e.policy.htlc_maximum_msat
                        && amount <= e.amount_msat
                })
                .filter_map(|(_, e)| {
                    let amount_u = amount
                        .checked_add(spec_fee(amount, &e.policy)?)
                        .filter(|&a| a <= self.q.max_amount_msat)?;
                    let delay_u = delay.checked_add(e.policy.delay)?;
                    Some((amount_u, delay_u, e.source))
                })
                .filter(|&(_, delay_u, _)| delay_u <= self.q.max_delay)
                .collect();
            next.sort_unstable();
            for (amount_u, delay_u, u) in next {
                self.on_path[u as usize] = true;
                let r = self.go(u, amount_u, delay_u, edges + 1);
                self.on_path[u as usize] = false;
                r?;
            }
            Ok(())
        }
    }
    if ex.nodes.contains(&q.from) || ex.nodes.contains(&q.to) || q.deliver_delay > q.max_delay {
        return Ok(None);
    }
    let mut s = Search {
        g,
        q,
        ex,
        on_path: vec![false; g.node_count()],
        best: None,
        steps: 0,
    };
    s.on_path[q.to as usize] = true;
    s.go(q.to, q.deliver_msat, q.deliver_delay, 0)?;
    Ok(s.best)
}

//! Cheapest-path search over the [`Graph`] for the middle of a circular route (pure, no I/O).
//!
//! A rebalance route is `us -> A ... B -> us`. Our own two hops are known; this finds `A ... B`.
//! The search runs backward from `B` (the incoming peer) so every label is the exact amount a
//! node must receive, fees included (fees depend on the amount forwarded, which is only known
//! from the end). Cost is the fee; ties go to fewer hops. Amount, htlc limits, capacity, the
//! learned exclusions, the hop cap and the CLTV cap are all enforced while relaxing edges.

use crate::graph::{Edge, EdgeIdx, Graph, NodeIdx};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

/// What the search must avoid: indices into one [`Graph`].
#[derive(Debug, Default, Clone)]
pub struct Exclusions {
    pub nodes: HashSet<NodeIdx>,
    pub edges: HashSet<EdgeIdx>,
    /// An edge that failed to carry `x` msat is assumed unable to carry `x` or more.
    pub max_amount_msat: HashMap<EdgeIdx, u64>,
}

impl Exclusions {
    fn edge_usable(&self, idx: EdgeIdx, edge: &Edge, amount_msat: u64) -> bool {
        if self.nodes.contains(&edge.source) || self.edges.contains(&idx) {
            return false;
        }
        match self.max_amount_msat.get(&idx) {
            Some(limit) => amount_msat < *limit,
            None => true,
        }
    }

    fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.edges.is_empty() && self.max_amount_msat.is_empty()
    }
}

/// One search: find `from ... to` so that `to` receives `deliver_msat` with `deliver_delay`.
#[derive(Debug, Clone)]
pub struct Query {
    /// The outgoing peer `A`: where the found path starts.
    pub from: NodeIdx,
    /// The incoming peer `B`: where it ends.
    pub to: NodeIdx,
    /// What `B` must receive: the rebalance amount plus `B`'s fee for the last hop to us.
    pub deliver_msat: u64,
    /// The CLTV delay `B` must receive: our final delay plus `B`'s cltv delta.
    pub deliver_delay: u32,
    /// Most edges the found path may have.
    pub max_edges: u32,
    /// Most total delay `A` may be asked to receive.
    pub max_delay: u32,
}

/// A found path `A ... B` with what `A` must receive to deliver the query's amount to `B`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// Edges in travel order, from `A` to `B`.
    pub edges: Vec<EdgeIdx>,
    pub source_amount_msat: u64,
    pub source_delay: u32,
}

impl Path {
    /// Fees charged by the nodes along this path (not counting `B`'s last hop to us).
    pub fn fee_msat(&self, query: &Query) -> u64 {
        self.source_amount_msat - query.deliver_msat
    }
}

#[derive(Clone, Copy)]
struct Label {
    amount_msat: u64,
    delay: u32,
    edges: u32,
    /// The edge leaving this node toward `B` on the best path (`u32::MAX` at `B`).
    next_edge: EdgeIdx,
}

/// Reusable per-search memory, so a search costs no allocation proportional to the graph.
#[derive(Default)]
pub struct Scratch {
    labels: Vec<Label>,
    stamp: Vec<u32>,
    settled: Vec<u32>,
    epoch: u32,
    heap: BinaryHeap<Reverse<(u64, u32, NodeIdx)>>,
}

impl Scratch {
    fn reset(&mut self, nodes: usize) {
        if self.stamp.len() != nodes || self.epoch == u32::MAX {
            self.labels = vec![
                Label {
                    amount_msat: 0,
                    delay: 0,
                    edges: 0,
                    next_edge: u32::MAX
                };
                nodes
            ];
            self.stamp = vec![0; nodes];
            self.settled = vec![0; nodes];
            self.epoch = 0;
        }
        self.epoch += 1;
        self.heap.clear();
    }

    fn label(&self, n: NodeIdx) -> Option<&Label> {
        (self.stamp[n as usize] == self.epoch).then(|| &self.labels[n as usize])
    }
}

/// The cheapest path for `query` that avoids `exclude`, or `None` when there is none.
pub fn find_path(
    graph: &Graph,
    query: &Query,
    exclude: &Exclusions,
    scratch: &mut Scratch,
) -> Option<Path> {
    let n = graph.node_count();
    if query.from as usize >= n || query.to as usize >= n {
        return None;
    }
    if exclude.nodes.contains(&query.from) || exclude.nodes.contains(&query.to) {
        return None;
    }
    if query.deliver_delay > query.max_delay {
        return None;
    }
    scratch.reset(n);
    let epoch = scratch.epoch;
    let check_exclusions = !exclude.is_empty();
    let start = query.to;
    scratch.stamp[start as usize] = epoch;
    scratch.labels[start as usize] = Label {
        amount_msat: query.deliver_msat,
        delay: query.deliver_delay,
        edges: 0,
        next_edge: u32::MAX,
    };
    scratch.heap.push(Reverse((query.deliver_msat, 0, start)));

    while let Some(Reverse((amount_msat, edges, v))) = scratch.heap.pop() {
        if scratch.settled[v as usize] == epoch {
            continue;
        }
        let here = scratch.labels[v as usize];
        if here.amount_msat != amount_msat || here.edges != edges {
            continue; // stale heap entry
        }
        scratch.settled[v as usize] = epoch;
        if v == query.from {
            return Some(walk(graph, scratch, query));
        }
        if here.edges >= query.max_edges {
            continue;
        }
        for (idx, e) in graph.edges_into(v) {
            let u = e.source;
            if !e.active || scratch.settled[u as usize] == epoch {
                continue;
            }
            let carried = here.amount_msat;
            let p = &e.policy;
            if carried < p.htlc_minimum_msat
                || carried > p.htlc_maximum_msat
                || carried > e.amount_msat
            {
                continue;
            }
            if check_exclusions && !exclude.edge_usable(idx, e, carried) {
                continue;
            }
            let Some(fee) = p.fee_msat(carried) else {
                continue;
            };
            let Some(amount_u) = carried.checked_add(fee) else {
                continue;
            };
            let Some(delay_u) = here.delay.checked_add(p.delay) else {
                continue;
            };
            if delay_u > query.max_delay {
                continue;
            }
            let edges_u = here.edges + 1;
            let better = match scratch.label(u) {
                None => true,
                Some(l) => (amount_u, edges_u) < (l.amount_msat, l.edges),
            };
            if better {
                scratch.stamp[u as usize] = epoch;
                scratch.labels[u as usize] = Label {
                    amount_msat: amount_u,
                    delay: delay_u,
                    edges: edges_u,
                    next_edge: idx,
                };
                scratch.heap.push(Reverse((amount_u, edges_u, u)));
            }
        }
    }
    None
}

fn walk(graph: &Graph, scratch: &Scratch, query: &Query) -> Path {
    let source = scratch.labels[query.from as usize];
    let mut edges = Vec::with_capacity(source.edges as usize);
    let mut node = query.from;
    while node != query.to {
        let e = scratch.labels[node as usize].next_edge;
        edges.push(e);
        node = graph.edge(e).destination;
    }
    Path {
        edges,
        source_amount_msat: source.amount_msat,
        source_delay: source.delay,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::graph::{GraphBuilder, Policy};

    pub(crate) fn policy(base: u32, ppm: u32, delay: u32) -> Policy {
        Policy {
            base_fee_millisatoshi: base,
            fee_per_millionth: ppm,
            delay,
            htlc_minimum_msat: 0,
            htlc_maximum_msat: u64::MAX,
        }
    }

    /// Adds both directions of a channel with the same policy.
    pub(crate) fn chan(b: &mut GraphBuilder, a: &str, c: &str, block: u64, p: Policy) {
        let scid = crate::graph::Scid(block << 40);
        b.add(a, c, scid, u8::from(a > c), true, 10_000_000_000, p);
        b.add(c, a, scid, u8::from(c > a), true, 10_000_000_000, p);
    }

    fn query(g: &Graph, from: &str, to: &str, amount: u64) -> Query {
        Query {
            from: g.node_idx(from).unwrap(),
            to: g.node_idx(to).unwrap(),
            deliver_msat: amount,
            deliver_delay: 18,
            max_edges: 18,
            max_delay: 2016,
        }
    }

    fn names(g: &Graph, p: &Path) -> Vec<String> {
        let mut v = vec![g.node_id(g.edge(p.edges[0]).source).to_string()];
        v.extend(
            p.edges
                .iter()
                .map(|e| g.node_id(g.edge(*e).destination).to_string()),
        );
        v
    }

    /// a-b-c-d with a cheap long way and an expensive shortcut a-d.
    fn diamond() -> Graph {
        let mut b = GraphBuilder::default();
        chan(&mut b, "a", "b", 1, policy(0, 100, 10));
        chan(&mut b, "b", "c", 2, policy(0, 100, 10));
        chan(&mut b, "c", "d", 3, policy(0, 100, 10));
        chan(&mut b, "a", "d", 4, policy(1000, 1000, 40));
        b.build()
    }

    #[test]
    fn picks_cheapest_and_computes_amounts_backward() {
        let g = diamond();
        let q = query(&g, "a", "d", 1_000_000);
        let p = find_path(&g, &q, &Exclusions::default(), &mut Scratch::default()).unwrap();
        assert_eq!(names(&g, &p), ["a", "b", "c", "d"]);
        // c charges on 1_000_000: 100; b on 1_000_100: 101 (rounded up); a on 1_000_201: 101.
        assert_eq!(p.source_amount_msat, 1_000_000 + 100 + 101 + 101);
        assert_eq!(p.source_delay, 18 + 30);
        assert_eq!(p.fee_msat(&q), 302);
    }

    #[test]
    fn respects_exclusions_limits_and_caps() {
        let g = diamond();
        let q = query(&g, "a", "d", 1_000_000);
        let mut ex = Exclusions::default();
        ex.nodes.insert(g.node_idx("b").unwrap());
        let p = find_path(&g, &q, &ex, &mut Scratch::default()).unwrap();
        assert_eq!(names(&g, &p), ["a", "d"]);
        assert_eq!(p.fee_msat(&q), 2000);

        // A liquidity limit below the amount removes the edge; above it keeps it.
        let cd = g
            .edge_by_scid(crate::graph::Scid(3 << 40), u8::from("c" > "d"))
            .unwrap();
        let mut ex = Exclusions::default();
        ex.max_amount_msat.insert(cd, 1_000_000);
        assert_eq!(
            names(
                &g,
                &find_path(&g, &q, &ex, &mut Scratch::default()).unwrap()
            ),
            ["a", "d"]
        );
        ex.max_amount_msat.insert(cd, 1_000_001);
        assert_eq!(
            find_path(&g, &q, &ex, &mut Scratch::default())
                .unwrap()
                .edges
                .len(),
            3
        );

        // Hop cap and delay cap.
        let short = Query {
            max_edges: 2,
            ..q.clone()
        };
        assert_eq!(
            names(
                &g,
                &find_path(&g, &short, &Exclusions::default(), &mut Scratch::default()).unwrap()
            ),
            ["a", "d"]
        );
        let tight = Query {
            max_delay: 18 + 29,
            ..q.clone()
        };
        assert!(find_path(&g, &tight, &Exclusions::default(), &mut Scratch::default()).is_none());
    }

    #[test]
    fn htlc_limits_and_inactive_edges() {
        let mut b = GraphBuilder::default();
        let mut small = policy(0, 1, 6);
        small.htlc_maximum_msat = 500_000;
        chan(&mut b, "a", "b", 1, small);
        let mut big_min = policy(0, 500, 6);
        big_min.htlc_minimum_msat = 2_000_000;
        chan(&mut b, "a", "c", 2, big_min);
        chan(&mut b, "c", "b", 3, policy(0, 500, 6));
        let g = b.build();
        let mut s = Scratch::default();
        let q = query(&g, "a", "b", 1_000_000);
        assert!(
            find_path(&g, &q, &Exclusions::default(), &mut s).is_none(),
            "max too small, min too big"
        );
        let q = query(&g, "a", "b", 400_000);
        assert_eq!(
            find_path(&g, &q, &Exclusions::default(), &mut s)
                .unwrap()
                .edges
                .len(),
            1
        );
        let q = query(&g, "a", "b", 3_000_000);
        assert_eq!(
            find_path(&g, &q, &Exclusions::default(), &mut s)
                .unwrap()
                .edges
                .len(),
            2
        );
    }

    #[test]
    fn same_peer_gives_empty_path_and_unknown_gives_none() {
        let g = diamond();
        let q = query(&g, "b", "b", 5);
        let p = find_path(&g, &q, &Exclusions::default(), &mut Scratch::default()).unwrap();
        assert!(p.edges.is_empty());
        assert_eq!(p.source_amount_msat, 5);
        let mut b = GraphBuilder::default();
        chan(&mut b, "x", "y", 9, policy(0, 0, 1));
        b.add(
            "z",
            "w",
            crate::graph::Scid(10 << 40),
            0,
            true,
            1,
            policy(0, 0, 1),
        );
        let g2 = b.build();
        let q = query(&g2, "x", "w", 5);
        assert!(find_path(&g2, &q, &Exclusions::default(), &mut Scratch::default()).is_none());
    }
}

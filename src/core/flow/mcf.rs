//! The min-cost flow of the whole amount over the candidate subgraph: convex piecewise-linear
//! costs per channel direction, successive shortest paths with potentials, then the flow
//! decomposed into paths.
//!
//! Flow is in msat delivered (fees compounding along a path are left to the exact pricing of
//! the parts); costs are `f64` msat per msat, never money. Each arc's cost is the lower convex
//! hull of its cost at [`FlowConfig::segments`] evenly spaced amounts, so the residual graph
//! keeps non-negative reduced costs and Dijkstra stays exact: this is the network of parallel
//! segment arcs of Pickhardt & Richter, kept implicit (an arc's flow says which segment is next).

use super::candidates::{PartSet, PathRec, Subgraph, scale};
use super::config::FlowConfig;
use super::cost::FlowCost;
use super::types::FlowRequest;
use crate::core::graph::{Graph, NodeIdx};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Reusable buffers of the flow (sized by the subgraph, and one index per graph node).
#[derive(Default)]
pub(super) struct Mcf {
    /// Per graph node: its local index + 1 (0: not in the subgraph).
    node_local: Vec<u32>,
    nodes: Vec<NodeIdx>,
    tail: Vec<u32>,
    head: Vec<u32>,
    /// Arc `a`'s segments are `seg_start[a]..seg_start[a + 1]` of `bounds` (each segment's
    /// upper end, increasing) and `slopes` (non-decreasing).
    seg_start: Vec<u32>,
    bounds: Vec<u64>,
    slopes: Vec<f64>,
    flow: Vec<u64>,
    /// Residual adjacency: per local node, `arc << 1 | backward`.
    adj_start: Vec<u32>,
    adj: Vec<u32>,
    potential: Vec<f64>,
    dist: Vec<f64>,
    prev: Vec<u32>,
    done: Vec<bool>,
    visited: Vec<u32>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    hull: Vec<(u64, f64)>,
}

/// Most augmentations per segment in the subgraph: a guard, never reached in practice (each
/// augmentation fills a segment or finishes).
const AUGMENT_GUARD: usize = 4;

impl Mcf {
    pub fn heap_bytes(&self) -> usize {
        self.node_local.capacity() * 4
            + (self.nodes.capacity()
                + self.tail.capacity()
                + self.head.capacity()
                + self.seg_start.capacity()
                + self.adj_start.capacity()
                + self.adj.capacity()
                + self.prev.capacity()
                + self.visited.capacity())
                * 4
            + (self.bounds.capacity()
                + self.slopes.capacity()
                + self.flow.capacity()
                + self.potential.capacity()
                + self.dist.capacity())
                * 8
            + self.hull.capacity() * 16
    }

    /// The flow of `req.amount_msat` from `A` to `B` over `sub`, decomposed into paths (added
    /// to `sub.paths`; paths over the hop or CLTV cap are left out, so the amounts may sum to
    /// less than the amount, as they do when the subgraph cannot carry it all).
    pub fn run<C: FlowCost>(
        &mut self,
        graph: &Graph,
        req: &FlowRequest,
        cost: &C,
        config: &FlowConfig,
        alpha: f64,
        sub: &mut Subgraph,
    ) -> PartSet {
        self.build(graph, req, cost, config, alpha, sub);
        let (s, t) = (self.local(req.from), self.local(req.to));
        let (Some(s), Some(t)) = (s, t) else {
            return Vec::new();
        };
        self.augment_all(s, t, req.amount_msat);
        self.decompose(graph, req, sub, s, t)
    }

    fn local(&self, node: NodeIdx) -> Option<u32> {
        match self.node_local.get(node as usize) {
            Some(&l) if l != 0 => Some(l - 1),
            _ => None,
        }
    }

    /// Nodes, arcs, their segments and the residual adjacency for `sub`.
    fn build<C: FlowCost>(
        &mut self,
        graph: &Graph,
        req: &FlowRequest,
        cost: &C,
        config: &FlowConfig,
        alpha: f64,
        sub: &Subgraph,
    ) {
        if self.node_local.len() != graph.node_count() {
            self.node_local = vec![0; graph.node_count()];
        } else {
            for &n in &self.nodes {
                self.node_local[n as usize] = 0;
            }
        }
        self.nodes.clear();
        self.tail.clear();
        self.head.clear();
        self.seg_start.clear();
        self.bounds.clear();
        self.slopes.clear();
        let total = req.amount_msat;
        let reference = (total / config.ref_parts.max(1)).max(1) as f64;
        let k = config.segments.max(1) as u64;
        for arc in &sub.arcs {
            let from = self.intern(arc.source);
            let to = self.intern(arc.destination);
            self.tail.push(from);
            self.head.push(to);
            self.seg_start.push(self.bounds.len() as u32);
            let e = graph.edge(arc.edge);
            let p = &e.policy;
            // What an arc carries includes the fees of the hops after it, which the flow (in
            // msat delivered) does not count: its capacity is cut by the cap's share (5% at
            // most: a cap that is no limit says nothing of the fees).
            let fees = req.max_fee_msat.min(total / 20);
            let most = (u128::from(arc.hard_msat) * u128::from(total)
                / u128::from(total.saturating_add(fees).max(1))) as u64;
            let most = most
                .min(p.htlc_maximum_msat.saturating_mul(req.max_parts as u64))
                .min(total);
            let fee_slope = f64::from(p.fee_per_millionth) * 1e-6
                + f64::from(p.base_fee_millisatoshi) / reference;
            // The cost at k evenly spaced amounts up to `most`, then its lower convex hull.
            self.hull.clear();
            self.hull.push((0, 0.0));
            for i in 1..=k {
                let x = (u128::from(most) * u128::from(i) / u128::from(k)) as u64;
                if x == 0 || self.hull.last().is_some_and(|&(px, _)| px >= x) {
                    continue;
                }
                let Some(c) = cost.cost_msat(graph, arc.edge, arc.source, x, total) else {
                    break;
                };
                let y = scale(c, alpha) as f64;
                while self.hull.len() >= 2 {
                    let (x1, y1) = self.hull[self.hull.len() - 2];
                    let (x2, y2) = self.hull[self.hull.len() - 1];
                    // Drop the middle point when it lies on or above the chord.
                    let left = (y2 - y1) * (x - x1) as f64;
                    let right = (y - y1) * (x2 - x1) as f64;
                    if left >= right {
                        self.hull.pop();
                    } else {
                        break;
                    }
                }
                self.hull.push((x, y));
            }
            for w in self.hull.windows(2) {
                let ((x1, y1), (x2, y2)) = (w[0], w[1]);
                self.bounds.push(x2);
                self.slopes.push((y2 - y1) / (x2 - x1) as f64 + fee_slope);
            }
        }
        self.seg_start.push(self.bounds.len() as u32);
        let (n, m) = (self.nodes.len(), sub.arcs.len());
        self.flow.clear();
        self.flow.resize(m, 0);
        // Residual adjacency, counting-sorted by node: forward out of the tail, backward out of
        // the head.
        self.adj_start.clear();
        self.adj_start.resize(n + 1, 0);
        for a in 0..m {
            self.adj_start[self.tail[a] as usize + 1] += 1;
            self.adj_start[self.head[a] as usize + 1] += 1;
        }
        for v in 0..n {
            self.adj_start[v + 1] += self.adj_start[v];
        }
        self.adj.clear();
        self.adj.resize(2 * m, 0);
        let mut fill: Vec<u32> = self.adj_start[..n].to_vec();
        for a in 0..m as u32 {
            for (node, entry) in [
                (self.tail[a as usize], a << 1),
                (self.head[a as usize], (a << 1) | 1),
            ] {
                self.adj[fill[node as usize] as usize] = entry;
                fill[node as usize] += 1;
            }
        }
        self.potential.clear();
        self.potential.resize(n, 0.0);
        self.dist.clear();
        self.dist.resize(n, f64::INFINITY);
        self.prev.clear();
        self.prev.resize(n, u32::MAX);
        self.done.clear();
        self.done.resize(n, false);
    }

    fn intern(&mut self, node: NodeIdx) -> u32 {
        let slot = &mut self.node_local[node as usize];
        if *slot == 0 {
            self.nodes.push(node);
            *slot = self.nodes.len() as u32;
        }
        *slot - 1
    }

    /// The residual of `entry` (`arc << 1 | backward`): its cost per msat and how much more it
    /// takes at that cost (0: none).
    #[inline]
    fn residual(&self, entry: u32) -> (f64, u64) {
        let a = (entry >> 1) as usize;
        let f = self.flow[a];
        let range = self.seg_start[a] as usize..self.seg_start[a + 1] as usize;
        let bounds = &self.bounds[range.clone()];
        let slopes = &self.slopes[range];
        if entry & 1 == 0 {
            let k = bounds.partition_point(|&b| b <= f);
            match bounds.get(k) {
                Some(&b) => (slopes[k], b - f),
                None => (0.0, 0),
            }
        } else if f == 0 {
            (0.0, 0)
        } else {
            let k = bounds.partition_point(|&b| b < f);
            let lower = if k == 0 { 0 } else { bounds[k - 1] };
            (-slopes[k], f - lower)
        }
    }

    /// Successive shortest paths until `amount` is sent or `t` is out of reach.
    fn augment_all(&mut self, s: u32, t: u32, amount: u64) {
        let mut left = amount;
        let guard = AUGMENT_GUARD * (self.bounds.len() + 1);
        for _ in 0..guard {
            if left == 0 || !self.shortest(s, t) {
                break;
            }
            // The bottleneck along the path, then push it.
            let mut push = left;
            let mut v = t;
            while v != s {
                let entry = self.prev[v as usize];
                push = push.min(self.residual(entry).1);
                v = self.other_end(entry);
            }
            let mut v = t;
            while v != s {
                let entry = self.prev[v as usize];
                let a = (entry >> 1) as usize;
                if entry & 1 == 0 {
                    self.flow[a] += push;
                } else {
                    self.flow[a] -= push;
                }
                v = self.other_end(entry);
            }
            left -= push;
        }
    }

    /// The node an entry leaves from.
    #[inline]
    fn other_end(&self, entry: u32) -> u32 {
        let a = (entry >> 1) as usize;
        if entry & 1 == 0 {
            self.tail[a]
        } else {
            self.head[a]
        }
    }

    /// Dijkstra on reduced costs from `s`, stopping at `t`; then the potentials of the nodes
    /// settled move by `dist - dist[t]` (askrene and ACL do the same), which keeps every
    /// residual arc's reduced cost non-negative. `false` when `t` cannot be reached.
    fn shortest(&mut self, s: u32, t: u32) -> bool {
        // The subgraph is small: clearing every node costs no more than the search.
        self.dist.fill(f64::INFINITY);
        self.done.fill(false);
        self.visited.clear();
        self.heap.clear();
        self.dist[s as usize] = 0.0;
        self.heap.push(Reverse((0f64.to_bits(), s)));
        while let Some(Reverse((_, u))) = self.heap.pop() {
            if self.done[u as usize] {
                continue;
            }
            self.done[u as usize] = true;
            self.visited.push(u);
            if u == t {
                break;
            }
            let du = self.dist[u as usize];
            let pu = self.potential[u as usize];
            for i in self.adj_start[u as usize]..self.adj_start[u as usize + 1] {
                let entry = self.adj[i as usize];
                let (c, room) = self.residual(entry);
                if room == 0 {
                    continue;
                }
                let a = (entry >> 1) as usize;
                let v = if entry & 1 == 0 {
                    self.head[a]
                } else {
                    self.tail[a]
                };
                if self.done[v as usize] {
                    continue;
                }
                // Rounding may leave a reduced cost a hair below zero: it is zero.
                let reduced = (c + pu - self.potential[v as usize]).max(0.0);
                let d = du + reduced;
                if d < self.dist[v as usize] {
                    self.dist[v as usize] = d;
                    self.prev[v as usize] = entry;
                    self.heap.push(Reverse((d.to_bits(), v)));
                }
            }
        }
        if !self.done[t as usize] {
            return false;
        }
        let dt = self.dist[t as usize];
        for &v in &self.visited {
            self.potential[v as usize] += self.dist[v as usize] - dt;
        }
        true
    }

    /// The flow as paths `s ... t` with amounts, largest first at each step (cycles, which
    /// only cost, are cancelled on the way).
    fn decompose(
        &mut self,
        graph: &Graph,
        req: &FlowRequest,
        sub: &mut Subgraph,
        s: u32,
        t: u32,
    ) -> PartSet {
        let mut rem = std::mem::take(&mut self.flow);
        let mut out = Vec::new();
        let n = self.nodes.len();
        let mut at = vec![u32::MAX; n]; // position on the current walk
        let mut walk: Vec<u32> = Vec::new(); // arcs
        let guard = rem.len() * 4 + 8;
        for _ in 0..guard {
            walk.clear();
            at.iter_mut().for_each(|p| *p = u32::MAX);
            at[s as usize] = 0;
            let mut u = s;
            let mut stuck = false;
            while u != t {
                // The arc out of `u` with the most flow left (lowest index on ties).
                let mut best: Option<(u64, u32)> = None;
                for i in self.adj_start[u as usize]..self.adj_start[u as usize + 1] {
                    let entry = self.adj[i as usize];
                    let a = entry >> 1;
                    if entry & 1 == 0 && rem[a as usize] > 0 {
                        let f = rem[a as usize];
                        if best.is_none_or(|(bf, _)| f > bf) {
                            best = Some((f, a));
                        }
                    }
                }
                let Some((_, a)) = best else {
                    stuck = true;
                    break;
                };
                let v = self.head[a as usize];
                if at[v as usize] != u32::MAX {
                    // A cycle: cancel it and carry on from `v`.
                    let from = at[v as usize] as usize;
                    let mut cycle: Vec<u32> = walk[from..].to_vec();
                    cycle.push(a);
                    let least = cycle.iter().map(|&c| rem[c as usize]).min().unwrap_or(0);
                    for &c in &cycle {
                        rem[c as usize] -= least;
                    }
                    for &c in &walk[from..] {
                        at[self.head[c as usize] as usize] = u32::MAX;
                    }
                    walk.truncate(from);
                    at[v as usize] = from as u32;
                    u = v;
                    continue;
                }
                walk.push(a);
                at[v as usize] = walk.len() as u32;
                u = v;
            }
            if stuck || walk.is_empty() {
                break;
            }
            let amount = walk.iter().map(|&a| rem[a as usize]).min().unwrap_or(0);
            for &a in &walk {
                rem[a as usize] -= amount;
            }
            if let Some(id) = valid_path(graph, req, sub, &walk) {
                out.push((id, amount));
            }
        }
        self.flow = rem;
        out
    }
}

/// `arcs` as a path of `sub` when it keeps the hop and CLTV caps.
fn valid_path(graph: &Graph, req: &FlowRequest, sub: &mut Subgraph, arcs: &[u32]) -> Option<u32> {
    if arcs.len() > req.edge_cap() as usize {
        return None;
    }
    let mut delay = req.deliver_delay()?;
    for &a in arcs {
        delay = delay.checked_add(graph.edge(sub.arcs[a as usize].edge).policy.delay)?;
    }
    if delay > req.delay_cap() {
        return None;
    }
    Some(sub.intern(PathRec {
        arcs: arcs.to_vec(),
        delay,
    }))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::core::flow::candidates::Arc;
    use crate::core::flow::{FlowCost, default_config};
    use crate::core::graph::{EdgeIdx, GraphBuilder};
    use crate::core::pathfind::tests::{chan, policy};
    use crate::core::pathfind::{Exclusions, HopCost};

    /// A convex cost, `amount^2 / 10^9` msat, on every edge; capacity `cap` on edges out of `a`.
    pub(in crate::core::flow) struct Square {
        pub cap: u64,
    }
    impl FlowCost for Square {
        fn cost_msat(&self, g: &Graph, idx: EdgeIdx, _: NodeIdx, x: u64, _: u64) -> Option<u64> {
            let limit = if g.node_id(g.edge(idx).source) == "a" {
                self.cap
            } else {
                u64::MAX
            };
            (x <= limit).then(|| ((x as u128 * x as u128) / 1_000_000_000) as u64)
        }
        fn probability(&self, _: &Graph, _: EdgeIdx, _: NodeIdx, _: u64) -> f64 {
            1.0
        }
    }
    impl HopCost for Square {
        fn extra_msat(&self, g: &Graph, i: EdgeIdx, s: NodeIdx, x: u64) -> Option<u64> {
            self.cost_msat(g, i, s, x, x)
        }
    }

    /// `a -> x -> d` and `a -> y -> d`, free of fees, as a subgraph of both paths.
    pub(in crate::core::flow) fn two_ways(cost: &Square, none: &Exclusions) -> (Graph, Subgraph) {
        let mut b = GraphBuilder::default();
        chan(&mut b, "a", "x", 1, policy(0, 0, 10));
        chan(&mut b, "x", "d", 2, policy(0, 0, 10));
        chan(&mut b, "a", "y", 3, policy(0, 0, 10));
        chan(&mut b, "y", "d", 4, policy(0, 0, 10));
        let g = b.build();
        let mut sub = Subgraph::default();
        let edge = |s: &str, d: &str| {
            g.edges_into(g.node_idx(d).unwrap())
                .find(|(_, e)| g.node_id(e.source) == s)
                .unwrap()
                .0
        };
        let req = request(&g, none);
        sub.reset_for_test(&g);
        for (p, q) in [("x", "x"), ("y", "y")] {
            let edges = [edge("a", p), edge(q, "d")];
            sub.add_path(&g, &req, cost, &edges, 0);
        }
        (g, sub)
    }

    pub(in crate::core::flow) fn request<'a>(g: &Graph, none: &'a Exclusions) -> FlowRequest<'a> {
        FlowRequest {
            from: g.node_idx("a").unwrap(),
            to: g.node_idx("d").unwrap(),
            amount_msat: 1_000_000_000,
            last_hop: policy(0, 0, 6),
            final_delay: 18,
            max_parts: 4,
            min_part_msat: 1,
            max_fee_msat: 0,
            max_source_msat: u64::MAX,
            exclude: none,
            max_edges: 18,
            max_delay: 2016,
        }
    }

    fn amounts(sub: &Subgraph, g: &Graph, set: &PartSet) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = set
            .iter()
            .map(|&(p, a)| {
                let first = sub.arcs[sub.paths[p as usize].arcs[0] as usize];
                (g.node_id(first.destination).to_string(), a)
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_convex_cost_spreads_the_flow_evenly() {
        let none = Exclusions::default();
        let cost = Square { cap: u64::MAX };
        let (g, mut sub) = two_ways(&cost, &none);
        let req = request(&g, &none);
        let set = Mcf::default().run(&g, &req, &cost, &default_config(), 1.0, &mut sub);
        // x^2 on each way: half and half (the breakpoints fall on it).
        assert_eq!(
            amounts(&sub, &g, &set),
            [("x".into(), 500_000_000), ("y".into(), 500_000_000)]
        );
    }

    #[test]
    fn capacity_bounds_the_flow() {
        let none = Exclusions::default();
        // 300k sat out of a each way is too little for 1M: the flow sends what it can.
        let cost = Square { cap: 300_000_000 };
        let (g, mut sub) = two_ways(&cost, &none);
        let req = request(&g, &none);
        let set = Mcf::default().run(&g, &req, &cost, &default_config(), 1.0, &mut sub);
        assert_eq!(
            amounts(&sub, &g, &set),
            [("x".into(), 300_000_000), ("y".into(), 300_000_000)]
        );
        // 700k sat each way: all of it, evenly.
        let cost = Square { cap: 700_000_000 };
        let (g, mut sub) = two_ways(&cost, &none);
        let set = Mcf::default().run(&g, &req, &cost, &default_config(), 1.0, &mut sub);
        let total: u64 = set.iter().map(|&(_, a)| a).sum();
        assert_eq!(total, 1_000_000_000);
        assert!(set.iter().all(|&(_, a)| a <= 700_000_000));
    }

    #[test]
    fn decomposition_cancels_cycles_and_keeps_the_paths() {
        // a -> x -> d, a -> y -> d, and x -> y -> x carrying a cycle: the paths come out with
        // their amounts and the cycle is dropped.
        let none = Exclusions::default();
        let cost = Square { cap: u64::MAX };
        let mut b = GraphBuilder::default();
        chan(&mut b, "a", "x", 1, policy(0, 0, 10));
        chan(&mut b, "x", "d", 2, policy(0, 0, 10));
        chan(&mut b, "a", "y", 3, policy(0, 0, 10));
        chan(&mut b, "y", "d", 4, policy(0, 0, 10));
        chan(&mut b, "x", "y", 5, policy(0, 0, 10));
        let g = b.build();
        let req = request(&g, &none);
        let mut sub = Subgraph::default();
        sub.reset_for_test(&g);
        let edge = |s: &str, d: &str| -> EdgeIdx {
            g.edges_into(g.node_idx(d).unwrap())
                .find(|(_, e)| g.node_id(e.source) == s)
                .unwrap()
                .0
        };
        for path in [
            vec![edge("a", "x"), edge("x", "d")],
            vec![edge("a", "y"), edge("y", "d")],
            vec![edge("a", "x"), edge("x", "y"), edge("y", "d")],
            vec![edge("a", "y"), edge("y", "x"), edge("x", "d")],
        ] {
            sub.add_path(&g, &req, &cost, &path, 0);
        }
        let mut mcf = Mcf::default();
        mcf.build(&g, &req, &cost, &default_config(), 1.0, &sub);
        let arc = |s: &str, d: &str| {
            sub.arcs
                .iter()
                .position(|a: &Arc| a.edge == edge(s, d))
                .unwrap()
        };
        // 600 via x, 400 via y, and 50 round x -> y -> x.
        for (s, d, f) in [
            ("a", "x", 600),
            ("x", "d", 600),
            ("a", "y", 400),
            ("y", "d", 400),
            ("x", "y", 50),
            ("y", "x", 50),
        ] {
            mcf.flow[arc(s, d)] = f;
        }
        let (s, t) = (mcf.local(req.from).unwrap(), mcf.local(req.to).unwrap());
        let set = mcf.decompose(&g, &req, &mut sub, s, t);
        let total: u64 = set.iter().map(|&(_, a)| a).sum();
        assert_eq!(total, 1000);
        for &(p, _) in &set {
            assert_eq!(
                sub.paths[p as usize].arcs.len(),
                2,
                "no path through the cycle"
            );
        }
    }
}

//! Candidate paths for a flow: the route search for the whole amount (the best single route),
//! then for equal chunks routed one after another, each priced on what the chunks before it
//! already put on the edges; and the small subgraph those paths make up.

use super::config::FlowConfig;
use super::cost::FlowCost;
use super::types::FlowRequest;
use crate::core::graph::{EdgeIdx, Graph, NodeIdx};
use crate::core::pathfind::{HopCost, Query, Scratch, find_path_with};

/// One channel direction of the subgraph.
#[derive(Debug, Clone, Copy)]
pub(super) struct Arc {
    pub edge: EdgeIdx,
    pub source: NodeIdx,
    pub destination: NodeIdx,
    /// The most all parts together may put on it: what the cost says it can carry (looked at
    /// up to what the whole set could ever need), the channel's capacity, and below what an
    /// exclusion says it failed to carry.
    pub hard_msat: u64,
}

/// A path of the subgraph, `A ... B`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PathRec {
    /// Indices into [`Subgraph::arcs`], in travel order.
    pub arcs: Vec<u32>,
    /// The CLTV delay `A` must receive for a part over it.
    pub delay: u32,
}

/// A set of parts: `(index into Subgraph::paths, amount delivered to us)`.
pub(super) type PartSet = Vec<(u32, u64)>;

/// What the searches found beyond the subgraph itself.
#[derive(Debug, Default)]
pub(super) struct Found {
    /// The best single route for the whole amount (the search the rebalance runs today).
    pub single: Option<u32>,
    /// Each chunked round that placed every chunk, as a set of parts.
    pub chunked: Vec<PartSet>,
    /// The largest-first round's parts, when it ran and placed the whole amount.
    pub largest: Option<PartSet>,
    /// When no single route is within the cap: the fee of the cheapest route for the whole
    /// amount without one (`None` if there is none at all, or a single route was found).
    pub uncapped_fee: Option<u64>,
}

/// The subgraph: the channel directions of every candidate path, indexed locally.
#[derive(Default)]
pub(super) struct Subgraph {
    /// Per graph edge: its index in `arcs` + 1, or 0 when not in the subgraph.
    local: Vec<u32>,
    pub arcs: Vec<Arc>,
    /// Per arc: what the parts routed so far in the current round put on it.
    pub loads: Vec<u64>,
    pub paths: Vec<PathRec>,
    /// Whether any load is non-zero (a round has placed a part).
    loaded: bool,
    /// The least amount a search on no loads found no path for: no larger one is searched
    /// (a larger amount passes fewer edges and leaves less of the cap).
    failed_alone: u64,
}

impl Subgraph {
    /// Empty, for `graph`: only the entries the last solve set are cleared.
    fn reset(&mut self, graph: &Graph) {
        if self.local.len() != graph.edge_count() {
            self.local = vec![0; graph.edge_count()];
        } else {
            for a in &self.arcs {
                self.local[a.edge as usize] = 0;
            }
        }
        self.arcs.clear();
        self.loads.clear();
        self.paths.clear();
        self.loaded = false;
        self.failed_alone = u64::MAX;
    }

    /// Empty, for `graph` (tests of the parts that build on a subgraph).
    #[cfg(test)]
    pub fn reset_for_test(&mut self, graph: &Graph) {
        self.reset(graph);
    }

    /// Every load back to zero (a new round).
    fn unload(&mut self) {
        self.loads.iter_mut().for_each(|l| *l = 0);
        self.loaded = false;
    }

    /// The arc of `edge`, added if new.
    fn arc<C: FlowCost>(
        &mut self,
        graph: &Graph,
        req: &FlowRequest,
        cost: &C,
        edge: EdgeIdx,
        ceiling: u64,
    ) -> u32 {
        let slot = self.local[edge as usize];
        if slot != 0 {
            return slot - 1;
        }
        let e = graph.edge(edge);
        let mut hard = cost
            .carries_msat(graph, edge, e.source, ceiling)
            .min(e.amount_msat);
        if let Some(&limit) = req.exclude.max_amount_msat.get(&edge) {
            hard = hard.min(limit.saturating_sub(1));
        }
        self.arcs.push(Arc {
            edge,
            source: e.source,
            destination: e.destination,
            hard_msat: hard,
        });
        self.loads.push(0);
        self.local[edge as usize] = self.arcs.len() as u32;
        self.arcs.len() as u32 - 1
    }

    /// The path over `edges` (graph indices, `A ... B`) with its delay, added if new.
    pub fn add_path<C: FlowCost>(
        &mut self,
        graph: &Graph,
        req: &FlowRequest,
        cost: &C,
        edges: &[EdgeIdx],
        delay: u32,
    ) -> u32 {
        let ceiling = ceiling(req);
        let arcs: Vec<u32> = edges
            .iter()
            .map(|&e| self.arc(graph, req, cost, e, ceiling))
            .collect();
        self.intern(PathRec { arcs, delay })
    }

    /// The index of `path`, added if new.
    pub fn intern(&mut self, path: PathRec) -> u32 {
        match self.paths.iter().position(|p| p.arcs == path.arcs) {
            Some(i) => i as u32,
            None => {
                self.paths.push(path);
                self.paths.len() as u32 - 1
            }
        }
    }

    /// Puts a part that `B` receives `deliver_msat` for on the loads of `path`'s arcs (what
    /// each carries, fees included, computed backward).
    fn load(&mut self, graph: &Graph, path: u32, deliver_msat: u64) {
        self.loaded = true;
        let mut amount = deliver_msat;
        for &a in self.paths[path as usize].arcs.iter().rev() {
            let load = &mut self.loads[a as usize];
            *load = load.saturating_add(amount);
            let policy = &graph.edge(self.arcs[a as usize].edge).policy;
            amount = amount.saturating_add(policy.fee_msat(amount).unwrap_or(u64::MAX));
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.local.capacity() * 4
            + self.arcs.capacity() * std::mem::size_of::<Arc>()
            + self.loads.capacity() * 8
            + self
                .paths
                .iter()
                .map(|p| p.arcs.capacity() * 4)
                .sum::<usize>()
    }
}

/// The most any channel direction carries for the whole set: the amount and every fee.
pub(super) fn ceiling(req: &FlowRequest) -> u64 {
    req.amount_msat.saturating_add(req.max_fee_msat)
}

/// The route search's cost for the next chunk: the cost of the combined amount on an edge
/// minus that of what the chunks before already put on it (the marginal cost; convex costs
/// make a loaded edge dearer), scaled by the risk weight; an edge that cannot carry the
/// combined amount is refused.
struct Loaded<'a, C> {
    cost: &'a C,
    sub: &'a Subgraph,
    alpha: f64,
    /// What the whole set delivers (the cost's price per bit).
    whole: u64,
}

impl<C: FlowCost> HopCost for Loaded<'_, C> {
    #[inline(always)]
    fn extra_msat(
        &self,
        graph: &Graph,
        idx: EdgeIdx,
        source: NodeIdx,
        amount_msat: u64,
    ) -> Option<u64> {
        let slot = self.sub.local[idx as usize];
        let extra = if slot == 0 {
            self.cost
                .cost_msat(graph, idx, source, amount_msat, self.whole)?
        } else {
            let a = (slot - 1) as usize;
            let load = self.sub.loads[a];
            let total = load.checked_add(amount_msat)?;
            if total > self.sub.arcs[a].hard_msat {
                return None;
            }
            let after = self.cost.cost_msat(graph, idx, source, total, self.whole)?;
            let before = match load {
                0 => 0,
                l => self
                    .cost
                    .cost_msat(graph, idx, source, l, self.whole)
                    .unwrap_or(0),
            };
            after.saturating_sub(before)
        };
        Some(scale(extra, self.alpha))
    }
}

/// `msat x alpha`, rounded (`alpha` in [0, `MAX_RISK_WEIGHT`]).
#[inline(always)]
pub(super) fn scale(msat: u64, alpha: f64) -> u64 {
    if alpha == 1.0 {
        msat
    } else {
        (msat as f64 * alpha).round() as u64
    }
}

/// Runs the searches ([`FlowConfig::chunks`]) and fills `sub` with what they found.
pub(super) fn generate<C: FlowCost>(
    graph: &Graph,
    req: &FlowRequest,
    cost: &C,
    config: &FlowConfig,
    alpha: f64,
    sub: &mut Subgraph,
    search: &mut Scratch,
) -> Found {
    sub.reset(graph);
    let mut found = Found::default();
    let single = route_chunks(graph, req, cost, alpha, &[req.amount_msat], sub, search);
    found.single = single.first().map(|&(p, _)| p);
    if req.max_parts < 2 {
        if found.single.is_none() {
            found.uncapped_fee = uncapped_fee(graph, req, cost, sub, search);
        }
        return found;
    }
    for &n in &config.chunks {
        if n < 2 || req.amount_msat / (n as u64) < req.min_part_msat.max(1) {
            continue;
        }
        let total = req.amount_msat;
        let (each, rest) = (total / n as u64, total % n as u64);
        let amounts: Vec<u64> = (0..n as u64).map(|i| each + u64::from(i < rest)).collect();
        let set = route_chunks(graph, req, cost, alpha, &amounts, sub, search);
        if set.len() == n {
            found.chunked.push(set);
        }
    }
    if found.single.is_none() {
        found.uncapped_fee = uncapped_fee(graph, req, cost, sub, search);
    }
    // Wide paths are worth looking for when capacity is what stopped the single route (not
    // the cap: then a route exists, and over the cap; equal chunks look for cheaper ones).
    let capacity_bound = found.single.is_none() && found.uncapped_fee.is_none();
    if capacity_bound || config.always_largest_first {
        found.largest = route_largest_first(graph, req, cost, alpha, sub, search);
    }
    found
}

/// The fee (the last hop's included) of the cheapest route for the whole amount without a fee
/// cap, within what `cost` says can be carried (nothing is added to `sub`); `None` if there is
/// none.
fn uncapped_fee<C: FlowCost>(
    graph: &Graph,
    req: &FlowRequest,
    cost: &C,
    sub: &mut Subgraph,
    search: &mut Scratch,
) -> Option<u64> {
    sub.unload();
    let query = Query {
        max_amount_msat: u64::MAX,
        ..query(req, req.amount_msat)?
    };
    fee_risk_unweighed(graph, req, cost, sub, search, &query)
}

/// The fee (the last hop's included) of the cheapest route `query` finds within what `cost`
/// says can be carried, risk not weighed; `None` if there is none.
fn fee_risk_unweighed<C: FlowCost>(
    graph: &Graph,
    req: &FlowRequest,
    cost: &C,
    sub: &mut Subgraph,
    search: &mut Scratch,
    query: &Query,
) -> Option<u64> {
    let amount = req.amount_msat;
    let loaded = Loaded {
        cost,
        sub,
        alpha: 0.0,
        whole: amount,
    };
    let path = find_path_with(graph, query, req.exclude, &loaded, search)?;
    path.source_amount_msat.checked_sub(amount)
}

/// The fee (the last hop's included) of the cheapest single route for the whole amount within
/// the cap and within what `cost` says can be carried, risk not weighed: what the fee leash
/// ([`FlowConfig::fee_leash_pct`]) is measured from. `None` if there is none. Leaves `sub`
/// empty.
pub(super) fn cheapest_fee<C: FlowCost>(
    graph: &Graph,
    req: &FlowRequest,
    cost: &C,
    sub: &mut Subgraph,
    search: &mut Scratch,
) -> Option<u64> {
    sub.reset(graph);
    let query = query(req, req.amount_msat)?;
    let fee = fee_risk_unweighed(graph, req, cost, sub, search, &query)?;
    (fee <= req.max_fee_msat).then_some(fee)
}

/// Parts routed one after another, each the largest share of what is left that a path still
/// carries (all of it, then 3/4, 1/2, 1/4, none below `min_part_msat`), the last part all of
/// what is left: finds the wide paths equal chunks miss when capacities bind. At most
/// `max_parts x 4` searches; `None` when it cannot place the whole amount.
fn route_largest_first<C: FlowCost>(
    graph: &Graph,
    req: &FlowRequest,
    cost: &C,
    alpha: f64,
    sub: &mut Subgraph,
    search: &mut Scratch,
) -> Option<PartSet> {
    sub.unload();
    let mut left = req.amount_msat;
    let mut set = Vec::with_capacity(req.max_parts);
    for i in 0..req.max_parts {
        let last = i + 1 == req.max_parts;
        let tries: &[u64] = if last { &[4] } else { &[4, 3, 2, 1] };
        let mut placed = None;
        for &quarters in tries {
            let amount = left / 4 * quarters + if quarters == 4 { left % 4 } else { 0 };
            if amount == 0 || (amount < left && amount < req.min_part_msat) {
                continue;
            }
            if left - amount != 0 && left - amount < req.min_part_msat {
                continue;
            }
            if let Some(p) = route_one(graph, req, cost, alpha, amount, sub, search) {
                placed = Some((p, amount));
                break;
            }
        }
        let (p, amount) = placed?;
        set.push((p, amount));
        left -= amount;
        if left == 0 {
            return Some(set);
        }
    }
    None
}

/// Chunks of `amounts` routed one after another (the later ones on what the earlier put on
/// the edges); stops at the first chunk no path carries.
fn route_chunks<C: FlowCost>(
    graph: &Graph,
    req: &FlowRequest,
    cost: &C,
    alpha: f64,
    amounts: &[u64],
    sub: &mut Subgraph,
    search: &mut Scratch,
) -> PartSet {
    sub.unload();
    let mut set = Vec::with_capacity(amounts.len());
    for &amount in amounts {
        let Some(p) = route_one(graph, req, cost, alpha, amount, sub, search) else {
            break;
        };
        set.push((p, amount));
    }
    set
}

/// The search for one part of `amount` as the rebalance asks for one route: what `B` must
/// receive for it, and what `A` may be asked for at most (the amount plus the cap: for a part
/// a loose bound, the whole set's fee is checked exactly later).
fn query(req: &FlowRequest, amount: u64) -> Option<Query> {
    Some(Query {
        from: req.from,
        to: req.to,
        deliver_msat: amount.checked_add(req.last_hop.fee_msat(amount)?)?,
        deliver_delay: req.deliver_delay()?,
        max_edges: req.edge_cap(),
        max_delay: req.delay_cap(),
        max_amount_msat: amount.saturating_add(req.max_fee_msat),
    })
}

/// One part of `amount` routed on the current loads, its path added to `sub` and its amounts to
/// the loads.
fn route_one<C: FlowCost>(
    graph: &Graph,
    req: &FlowRequest,
    cost: &C,
    alpha: f64,
    amount: u64,
    sub: &mut Subgraph,
    search: &mut Scratch,
) -> Option<u32> {
    let alone = !sub.loaded;
    if alone && amount >= sub.failed_alone {
        return None;
    }
    let query = query(req, amount)?;
    let loaded = Loaded {
        cost,
        sub,
        alpha,
        whole: req.amount_msat,
    };
    // The whole amount on no loads is the single route: searched with the cost itself, as the
    // rebalance searches it (the weight aside).
    let found = if alone && amount == req.amount_msat && alpha == 1.0 {
        find_path_with(graph, &query, req.exclude, cost, search)
    } else {
        find_path_with(graph, &query, req.exclude, &loaded, search)
    };
    let Some(path) = found else {
        if alone {
            sub.failed_alone = sub.failed_alone.min(amount);
        }
        return None;
    };
    let id = sub.add_path(graph, req, cost, &path.edges, path.source_delay);
    sub.load(graph, id, query.deliver_msat);
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::graph::GraphBuilder;
    use crate::core::pathfind::Exclusions;
    use crate::core::pathfind::tests::{chan, policy};

    /// Two ways a -> d (via x, cheap, and via y), each channel 1M sat.
    fn two_ways() -> Graph {
        let mut b = GraphBuilder::default();
        chan(&mut b, "a", "x", 1, policy(0, 100, 10));
        chan(&mut b, "x", "d", 2, policy(0, 100, 10));
        chan(&mut b, "a", "y", 3, policy(0, 300, 10));
        chan(&mut b, "y", "d", 4, policy(0, 300, 10));
        b.build()
    }

    /// Capacity per edge: 600k sat on the x way, plenty on the y way.
    struct Caps;
    impl FlowCost for Caps {
        fn cost_msat(
            &self,
            g: &Graph,
            idx: EdgeIdx,
            _: NodeIdx,
            amount: u64,
            _: u64,
        ) -> Option<u64> {
            let via_x = [1u64, 2].contains(&g.edge(idx).short_channel_id.block());
            (amount <= if via_x { 600_000_000 } else { u64::MAX }).then_some(0)
        }
        fn probability(&self, _: &Graph, _: EdgeIdx, _: NodeIdx, _: u64) -> f64 {
            1.0
        }
    }
    impl HopCost for Caps {
        fn extra_msat(&self, g: &Graph, idx: EdgeIdx, s: NodeIdx, amount: u64) -> Option<u64> {
            self.cost_msat(g, idx, s, amount, amount)
        }
    }

    #[test]
    fn chunks_go_around_what_earlier_chunks_filled() {
        let g = two_ways();
        let none = Exclusions::default();
        let req = FlowRequest {
            from: g.node_idx("a").unwrap(),
            to: g.node_idx("d").unwrap(),
            amount_msat: 1_000_000_000,
            last_hop: policy(0, 0, 6),
            final_delay: 18,
            max_parts: 4,
            min_part_msat: 1,
            max_fee_msat: 10_000_000,
            max_source_msat: u64::MAX,
            exclude: &none,
            max_edges: 18,
            max_delay: 2016,
        };
        let config = FlowConfig {
            chunks: vec![2],
            ..crate::core::flow::default_config()
        };
        let mut sub = Subgraph::default();
        let found = generate(
            &g,
            &req,
            &Caps,
            &config,
            1.0,
            &mut sub,
            &mut Scratch::default(),
        );
        // The whole amount fits only the y way; of two halves, the first takes the cheap x way
        // and the second, finding it full, the y way.
        let via = |p: u32| g.node_id(sub.arcs[sub.paths[p as usize].arcs[0] as usize].destination);
        assert_eq!(via(found.single.unwrap()), "y");
        assert_eq!(found.chunked.len(), 1);
        let halves: Vec<(&str, u64)> = found.chunked[0].iter().map(|&(p, a)| (via(p), a)).collect();
        assert_eq!(halves, [("x", 500_000_000), ("y", 500_000_000)]);
        assert_eq!(sub.paths.len(), 2, "the y way is interned once");
        assert_eq!(sub.arcs.len(), 4);
        let x_hard: Vec<u64> = sub
            .arcs
            .iter()
            .filter(|a| g.node_id(a.source) == "x" || g.node_id(a.destination) == "x")
            .map(|a| a.hard_msat)
            .collect();
        assert_eq!(x_hard, [600_000_000, 600_000_000]);
        // A second run on the same scratch starts afresh.
        let again = generate(
            &g,
            &req,
            &Caps,
            &config,
            1.0,
            &mut sub,
            &mut Scratch::default(),
        );
        assert_eq!(again.chunked, found.chunked);
        assert_eq!(sub.paths.len(), 2);
    }
}

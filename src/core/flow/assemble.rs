//! From paths to parts: the choice, on the exact price (`price.rs`), among the sets proposed: every assignment of parts to a small pool of paths (the flow's, then the
//! searches'), each search round's own set, and the single route.

use super::candidates::{Found, PartSet, Subgraph};
use super::config::FlowConfig;
use super::cost::FlowCost;
use super::price::{Buffers, Price, Pricer};
use super::types::{Flow, FlowRequest, NoFlow, Part};
use crate::core::graph::{Graph, Policy};

/// The largest first, then by path: one order for every run.
fn sort_parts(set: &mut PartSet) {
    set.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
}

/// `set`'s amounts scaled to sum to `total` exactly (the remainder to the largest part), and
/// parts left with nothing dropped.
fn rescale(set: &mut PartSet, total: u64) {
    let sum: u128 = set.iter().map(|&(_, a)| u128::from(a)).sum();
    if sum == 0 || set.is_empty() {
        set.clear();
        return;
    }
    for part in set.iter_mut() {
        part.1 = (u128::from(part.1) * u128::from(total) / sum) as u64;
    }
    let given: u64 = set.iter().map(|&(_, a)| a).sum();
    set[0].1 += total - given;
    set.retain(|&(_, a)| a > 0);
}

/// The most one part over path `p` can deliver: the least htlc maximum on it, the last hop's
/// included.
fn htlc_bound(sub: &Subgraph, graph: &Graph, req: &FlowRequest, p: u32) -> u64 {
    sub.paths[p as usize]
        .arcs
        .iter()
        .map(|&a| {
            graph
                .edge(sub.arcs[a as usize].edge)
                .policy
                .htlc_maximum_msat
        })
        .fold(req.last_hop.htlc_maximum_msat, u64::min)
        .max(1)
}

/// A part over a path whose htlc maximum is below its amount, cut into equal parts that fit
/// (at most `max_parts`).
fn split_by_htlc(sub: &Subgraph, graph: &Graph, req: &FlowRequest, set: &PartSet) -> PartSet {
    let mut out = Vec::with_capacity(set.len());
    for &(p, amount) in set {
        let n = amount
            .div_ceil(htlc_bound(sub, graph, req, p))
            .clamp(1, req.max_parts as u64);
        for i in 0..n {
            out.push((p, amount / n + u64::from(i < amount % n)));
        }
    }
    out
}

/// Identical paths of a set merged into one part.
fn merge(set: &PartSet) -> PartSet {
    let mut out: PartSet = Vec::with_capacity(set.len());
    for &(p, a) in set {
        match out.iter_mut().find(|(q, _)| *q == p) {
            Some(part) => part.1 += a,
            None => out.push((p, a)),
        }
    }
    out
}

/// One path the parts may use, and how many parts it may take (more than one only where an
/// htlc maximum is below the amount).
struct Slot {
    path: u32,
    most: usize,
}

/// The paths the parts are chosen among: the flow's by amount, then the searches' in the
/// order found, `config.combine_paths` of them, and the single route always.
fn pool(
    sub: &Subgraph,
    graph: &Graph,
    req: &FlowRequest,
    config: &FlowConfig,
    found: &Found,
    flow_paths: &PartSet,
) -> Vec<Slot> {
    let mut by_flow = merge(flow_paths);
    sort_parts(&mut by_flow);
    let searched = found
        .single
        .iter()
        .copied()
        .chain(found.chunked.iter().flatten().map(|&(p, _)| p))
        .chain(found.largest.iter().flatten().map(|&(p, _)| p))
        .map(|p| (p, 0));
    let mut pool: Vec<Slot> = Vec::new();
    for (path, _) in by_flow.into_iter().chain(searched) {
        if pool.len() >= config.combine_paths.max(1) {
            break;
        }
        if pool.iter().all(|s| s.path != path) {
            pool.push(Slot { path, most: 1 });
        }
    }
    if let Some(single) = found.single
        && pool.iter().all(|s| s.path != single)
    {
        pool.push(Slot {
            path: single,
            most: 1,
        });
    }
    let total = req.amount_msat;
    for slot in &mut pool {
        let bound = htlc_bound(sub, graph, req, slot.path);
        if bound < total {
            slot.most = (total.div_ceil(bound) as usize).min(req.max_parts);
        }
    }
    pool
}

/// Every assignment of 1 to `max_parts` parts to the pool's paths, each handed to `each` as a
/// set with first amounts: on a grid of `amount / tables[0].len()`, every part from its least
/// allowed level, each further step to the part whose own price (alone, `tables`) rises least:
/// the optimum of the separable approximation, what sharing channels and compounding fees are
/// then re-balanced from.
fn assignments(
    pool: &[Slot],
    tables: &[Vec<u64>],
    req: &FlowRequest,
    mut each: impl FnMut(&PartSet),
) {
    struct Walk<'a, F> {
        pool: &'a [Slot],
        tables: &'a [Vec<u64>],
        req: &'a FlowRequest<'a>,
        counts: Vec<usize>,
        parts: Vec<usize>,
        levels: Vec<usize>,
        set: PartSet,
        each: F,
    }
    impl<F: FnMut(&PartSet)> Walk<'_, F> {
        fn go(&mut self, i: usize, left: usize) {
            if i == self.pool.len() {
                self.emit();
                return;
            }
            for n in 0..=self.pool[i].most.min(left) {
                self.counts.push(n);
                self.go(i + 1, left - n);
                self.counts.pop();
            }
        }

        fn emit(&mut self) {
            self.parts.clear();
            for (i, &n) in self.counts.iter().enumerate() {
                self.parts.extend(std::iter::repeat_n(i, n));
            }
            let k = self.parts.len();
            if k == 0 {
                return;
            }
            let grid = self.tables[0].len() - 1;
            let total = self.req.amount_msat;
            let unit = (total / grid as u64).max(1);
            let least = if k > 1 {
                (self.req.min_part_msat.div_ceil(unit) as usize).max(1)
            } else {
                grid
            };
            if least.saturating_mul(k) > grid {
                return; // no split on the grid keeps the minimum part
            }
            self.levels.clear();
            self.levels.resize(k, least);
            for _ in least * k..grid {
                let step = |j: usize, l: usize| {
                    let t = &self.tables[self.parts[j]];
                    t.get(l + 1).map_or(u64::MAX, |&up| up.saturating_sub(t[l]))
                };
                let j = (0..k)
                    .min_by_key(|&j| (step(j, self.levels[j]), j))
                    .expect("parts");
                self.levels[j] += 1;
            }
            self.set.clear();
            for (j, &l) in self.levels.iter().enumerate() {
                self.set
                    .push((self.pool[self.parts[j]].path, unit * l as u64));
            }
            let given: u64 = self.set.iter().map(|&(_, a)| a).sum();
            self.set[0].1 += total.saturating_sub(given);
            sort_parts(&mut self.set);
            (self.each)(&self.set);
        }
    }
    let mut walk = Walk {
        pool,
        tables,
        req,
        counts: Vec::with_capacity(pool.len()),
        parts: Vec::with_capacity(req.max_parts),
        levels: Vec::with_capacity(req.max_parts),
        set: Vec::with_capacity(req.max_parts),
        each: &mut each,
    };
    walk.go(0, req.max_parts);
}

/// The best `room` sets by price, best first (ties keep the order offered).
struct Shortlist {
    room: usize,
    sets: Vec<((u64, u64), PartSet)>,
}

impl Shortlist {
    fn offer(&mut self, key: (u64, u64), set: &PartSet) {
        if self.sets.len() >= self.room && self.sets.last().is_some_and(|(k, _)| key >= *k) {
            return;
        }
        if self.sets.iter().any(|(_, s)| s == set) {
            return;
        }
        let at = self.sets.partition_point(|(k, _)| *k <= key);
        self.sets.insert(at, (key, set.clone()));
        self.sets.truncate(self.room);
    }
}

/// The best set among those proposed, as a [`Flow`]: the single route as found; every
/// assignment of parts to the pool's paths, and each search round's own set, priced at their
/// first amounts; the best few of those with their amounts re-balanced.
#[allow(clippy::too_many_arguments)]
pub(super) fn choose<C: FlowCost>(
    graph: &Graph,
    req: &FlowRequest,
    cost: &C,
    config: &FlowConfig,
    alpha: f64,
    sub: &Subgraph,
    found: &Found,
    flow_paths: &PartSet,
    buf: &mut Buffers,
) -> Result<Flow, NoFlow> {
    buf.loads.clear();
    buf.loads.resize(sub.arcs.len(), 0);
    buf.touched.clear();
    let total = req.amount_msat;
    let min_step = (total >> config.alloc_depth.min(63)).max(1000).min(total);
    let part_penalty = config.part_penalty_base_msat.saturating_add(
        (u128::from(total) * u128::from(config.part_penalty_ppm) / 1_000_000) as u64,
    );
    let mut pricer = Pricer {
        graph,
        req,
        cost,
        alpha,
        sub,
        buf,
        part_penalty,
    };
    let mut best: Option<(Price, PartSet)> = None;
    let mut least_fee_over_cap: Option<u64> = None;
    let mut consider = |price: Price, set: &PartSet| {
        if price.feasible() {
            if best.as_ref().is_none_or(|(b, _)| price.key() < b.key()) {
                best = Some((price, set.clone()));
            }
        } else if price.over == 0 {
            least_fee_over_cap = Some(least_fee_over_cap.map_or(price.fee, |f| f.min(price.fee)));
        }
    };
    if let Some(single) = found.single {
        let set = vec![(single, total)];
        consider(pricer.price(&set), &set);
    }
    if req.max_parts > 1 {
        let mut shortlist = Shortlist {
            room: config.allocations.max(1),
            sets: Vec::new(),
        };
        let pool = pool(sub, graph, req, config, found, flow_paths);
        // Each pool path's price alone at every step of the grid.
        let grid = config.grid.max(2) as u64;
        let unit = (total / grid).max(1);
        let tables: Vec<Vec<u64>> = pool
            .iter()
            .map(|slot| {
                (0..=grid)
                    .map(|l| match l {
                        0 => 0,
                        l => pricer.price(&[(slot.path, unit * l)]).promise().0,
                    })
                    .collect()
            })
            .collect();
        // The promise lets a set a little over a limit into the shortlist (re-balancing
        // usually moves the excess to another part), but where every part is already at an
        // htlc maximum nothing can move and such sets may fill it: the best set within every
        // limit at its first amounts is re-balanced too, whatever its promise.
        let mut within: Option<((u64, u64), PartSet)> = None;
        let mut offer = |price: Price, set: &PartSet, shortlist: &mut Shortlist| {
            shortlist.offer(price.promise(), set);
            if price.feasible() && within.as_ref().is_none_or(|(k, _)| price.key() < *k) {
                within = Some((price.key(), set.clone()));
            }
        };
        assignments(&pool, &tables, req, |set| {
            let price = pricer.price(set);
            offer(price, set, &mut shortlist);
        });
        for proposed in found.chunked.iter().chain(found.largest.iter()) {
            let mut set = split_by_htlc(sub, graph, req, &merge(proposed));
            sort_parts(&mut set);
            set.truncate(req.max_parts);
            rescale(&mut set, total);
            let price = pricer.price(&set);
            offer(price, &set, &mut shortlist);
        }
        if let Some((key, set)) = within
            && shortlist.sets.iter().all(|(_, s)| *s != set)
        {
            shortlist.sets.push((key, set));
        }
        for (_, mut set) in shortlist.sets {
            let price = pricer.allocate(&mut set, min_step);
            sort_parts(&mut set);
            consider(price, &set);
        }
    }
    match best {
        Some((_, set)) => Ok(to_flow(&mut pricer, &set)),
        None => Err(match least_fee_over_cap {
            Some(fee_msat) => NoFlow::OverFeeCap { fee_msat },
            None => NoFlow::Insufficient,
        }),
    }
}

/// `set` as parts with their exact amounts, fees, delays and probabilities.
fn to_flow<C: FlowCost>(pricer: &mut Pricer<C>, set: &PartSet) -> Flow {
    let price = pricer.price(set);
    let Pricer {
        graph,
        req,
        cost,
        sub,
        buf,
        ..
    } = pricer;
    let chance = |a: u32| {
        let arc = &sub.arcs[a as usize];
        cost.probability(graph, arc.edge, arc.source, buf.loads[a as usize])
    };
    let mut parts: Vec<Part> = set
        .iter()
        .map(|&(p, amount)| {
            // A set that priced feasible has every amount within u64 (else it would not be).
            let path = &sub.paths[p as usize];
            let fee = |policy: &Policy, a: u64| policy.fee_msat(a).unwrap_or(u64::MAX);
            let mut carried = amount.saturating_add(fee(&req.last_hop, amount));
            for &a in path.arcs.iter().rev() {
                let policy = &graph.edge(sub.arcs[a as usize].edge).policy;
                carried = carried.saturating_add(fee(policy, carried));
            }
            Part {
                edges: path
                    .arcs
                    .iter()
                    .map(|&a| sub.arcs[a as usize].edge)
                    .collect(),
                amount_msat: amount,
                fee_msat: carried - amount,
                source_amount_msat: carried,
                source_delay: path.delay,
                probability: path.arcs.iter().map(|&a| chance(a)).product(),
            }
        })
        .collect();
    parts.sort_by(|a, b| {
        b.amount_msat
            .cmp(&a.amount_msat)
            .then_with(|| a.edges.cmp(&b.edges))
    });
    Flow {
        parts,
        fee_msat: price.fee,
        risk_msat: price.risk,
        probability: buf.touched.iter().map(|&a| chance(a)).product(),
    }
}

/// `A` is `B`: the amount goes straight back over the last hop, in as few equal parts as its
/// htlc maximum allows.
pub(super) fn direct(req: &FlowRequest) -> Result<Flow, NoFlow> {
    let last = &req.last_hop;
    let n = req.amount_msat.div_ceil(last.htlc_maximum_msat.max(1));
    let too_small = n > 1 && req.amount_msat / n < req.min_part_msat;
    if n > req.max_parts as u64 || too_small {
        return Err(NoFlow::Insufficient);
    }
    let delay = req
        .deliver_delay()
        .ok_or_else(|| NoFlow::Invalid("delay overflow".into()))?;
    let mut parts = Vec::with_capacity(n as usize);
    for i in 0..n {
        let amount = req.amount_msat / n + u64::from(i < req.amount_msat % n);
        let fee = last
            .fee_msat(amount)
            .ok_or_else(|| NoFlow::Invalid("fee overflow".into()))?;
        let source = amount
            .checked_add(fee)
            .ok_or_else(|| NoFlow::Invalid("fee overflow".into()))?;
        parts.push(Part {
            edges: Vec::new(),
            amount_msat: amount,
            fee_msat: fee,
            source_amount_msat: source,
            source_delay: delay,
            probability: 1.0,
        });
    }
    let fee_msat = parts
        .iter()
        .fold(0u64, |sum, p| sum.saturating_add(p.fee_msat));
    if fee_msat > req.max_fee_msat {
        return Err(NoFlow::OverFeeCap { fee_msat });
    }
    let sent = parts
        .iter()
        .fold(0u64, |sum, p| sum.saturating_add(p.source_amount_msat));
    if sent > req.max_source_msat {
        return Err(NoFlow::Insufficient);
    }
    Ok(Flow {
        parts,
        fee_msat,
        risk_msat: 0,
        probability: 1.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::flow::default_config;
    use crate::core::flow::mcf::tests::{Square, request, two_ways};
    use crate::core::pathfind::Exclusions;

    #[test]
    fn rescale_sums_exactly_and_drops_empty_parts() {
        let mut set = vec![(0, 3), (1, 3), (2, 0), (3, 1)];
        rescale(&mut set, 1_000_000);
        assert_eq!(set.iter().map(|&(_, a)| a).sum::<u64>(), 1_000_000);
        assert_eq!(set.len(), 3);
        assert_eq!(set[1], (1, 428_571));
        let mut none = vec![(0, 0)];
        rescale(&mut none, 5);
        assert!(none.is_empty());
    }

    #[test]
    fn the_shortlist_keeps_the_best_once_each() {
        let mut s = Shortlist {
            room: 2,
            sets: Vec::new(),
        };
        for (key, p) in [
            ((5, 0), 1),
            ((3, 0), 2),
            ((3, 0), 2),
            ((4, 0), 3),
            ((9, 0), 4),
        ] {
            s.offer(key, &vec![(p, 1)]);
        }
        let kept: Vec<u32> = s.sets.iter().map(|(_, set)| set[0].0).collect();
        assert_eq!(kept, [2, 3]);
    }

    #[test]
    fn allocation_finds_the_even_split_of_a_convex_cost() {
        // x^2 on each way, no fees: the best split is half and half; from 90/10 the pairwise
        // moves get there to within the smallest step.
        let none = Exclusions::default();
        let cost = Square { cap: u64::MAX };
        let (g, sub) = two_ways(&cost, &none);
        let req = request(&g, &none);
        let mut buf = Buffers::default();
        buf.loads.resize(sub.arcs.len(), 0);
        let mut pricer = Pricer {
            graph: &g,
            req: &req,
            cost: &cost,
            alpha: 1.0,
            sub: &sub,
            buf: &mut buf,
            part_penalty: 0,
        };
        let mut set = vec![(0, 900_000_000), (1, 100_000_000)];
        let before = pricer.price(&set);
        let min_step = 1_000_000;
        let after = pricer.allocate(&mut set, min_step);
        assert!(after.cost < before.cost);
        assert_eq!(set[0].1 + set[1].1, 1_000_000_000);
        assert!(set[0].1.abs_diff(500_000_000) < min_step, "{set:?}");
        // Over a capacity the limit comes first: 300k sat out of `a` each way cannot carry 1M.
        let tight = Square { cap: 300_000_000 };
        let (g, sub) = two_ways(&tight, &none);
        let mut pricer = Pricer {
            graph: &g,
            req: &req,
            cost: &tight,
            alpha: 1.0,
            sub: &sub,
            buf: &mut buf,
            part_penalty: 0,
        };
        assert!(!pricer.allocate(&mut set, min_step).feasible());
    }

    #[test]
    fn htlc_maxima_split_a_path_and_bound_its_parts() {
        let none = Exclusions::default();
        let cost = Square { cap: u64::MAX };
        let (g, sub) = two_ways(&cost, &none);
        let mut req = request(&g, &none);
        req.last_hop.htlc_maximum_msat = 400_000_000;
        let set = split_by_htlc(&sub, &g, &req, &vec![(0, 1_000_000_000)]);
        assert_eq!(set, [(0, 333_333_334), (0, 333_333_333), (0, 333_333_333)]);
        assert_eq!(htlc_bound(&sub, &g, &req, 0), 400_000_000);
        // The pool lets a path take as many parts as that needs, and no more than max_parts.
        let found = Found {
            single: Some(0),
            ..Found::default()
        };
        let pool = pool(&sub, &g, &req, &default_config(), &found, &vec![(1, 5)]);
        let slots: Vec<(u32, usize)> = pool.iter().map(|s| (s.path, s.most)).collect();
        assert_eq!(slots, [(1, 3), (0, 3)]);
    }
}

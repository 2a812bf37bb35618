//! Pathfinding on the real mainnet graphs in `../shared/data/` (skipped, with the reason printed,
//! when they are absent).
//!
//! - Every route found for a seeded sample of the plugin's circular queries is checked against
//!   the protocol's constraints by code written here, independently of the search.
//! - Dijkstra is compared with an exhaustive search (every simple path) on small subgraphs cut
//!   from mainnet: same minimum fee, and a path found iff one exists. That equality is asserted
//!   with the hop and CLTV caps out of reach. With the plugin's caps (18 edges, 2016 blocks),
//!   label-setting is only a heuristic where a cap binds (a node keeps its cheapest label even
//!   when a dearer but shorter one would have stayed under the cap); the test counts and prints
//!   such cases, and checks that whatever is found is valid and never cheaper than the optimum.
//! - Exclusions on real routes: excluded edges and nodes are avoided, amount limits apply, and
//!   exclusions off the route change nothing.

#[path = "support/mainnet.rs"]
mod mainnet;
#[path = "support/routecheck.rs"]
mod routecheck;

use cln_rebalance::core::graph::{EdgeIdx, Graph, GraphBuilder, NodeIdx};
use cln_rebalance::core::pathfind::{Exclusions, Path, Query, Scratch, find_path};
use cln_rebalance::core::route::{HopSpec, MAX_HOPS, MAX_TOTAL_CLTV, build_route, route_fee_msat};
use mainnet::{Circle, FINAL_CLTV, Rng};
use routecheck::{check_path, exhaustive, spec_fee};
use std::sync::OnceLock;

const G2026: &str = "mainnet-2026-02-03";
const G2021: &str = "mainnet-2021-04-16";
const AMOUNTS_MSAT: [u64; 3] = [10_000_000, 100_000_000, 1_000_000_000];

/// A snapshot loaded once per test binary, with what the samplers need.
struct Mainnet {
    graph: Graph,
    scc: Vec<bool>,
    out: Vec<Vec<EdgeIdx>>,
    candidates: Vec<NodeIdx>,
}

impl Mainnet {
    fn circles(&self, seed: u64, amount_msat: u64, count: usize) -> Vec<Circle> {
        let circles = mainnet::sample_circles(
            &self.graph,
            &self.scc,
            &self.out,
            &self.candidates,
            seed,
            amount_msat,
            count,
        );
        assert_eq!(circles.len(), count, "sampler ran dry");
        circles
    }
}

/// The snapshot, or `None` after printing why the test is skipped.
fn load(name: &'static str) -> Option<&'static Mainnet> {
    static CACHE: [OnceLock<Option<Mainnet>>; 3] = [const { OnceLock::new() }; 3];
    let slot = mainnet::SNAPSHOTS
        .iter()
        .position(|s| *s == name)
        .expect("known snapshot");
    let loaded = CACHE[slot].get_or_init(|| {
        let bytes = match mainnet::read_snapshot(name) {
            Ok(b) => b,
            Err(e) => {
                println!("SKIP: mainnet snapshot unavailable: {e}");
                return None;
            }
        };
        let graph = Graph::from_listchannels_json(&bytes).expect("snapshot decodes");
        let scc = mainnet::largest_scc(&graph);
        let out = mainnet::edges_out(&graph);
        let candidates = mainnet::candidate_us(&graph, &scc, &out, 3);
        Some(Mainnet {
            graph,
            scc,
            out,
            candidates,
        })
    });
    if loaded.is_none() {
        println!("SKIP: {name} not loaded (see above)");
    }
    loaded.as_ref()
}

/// Checks a found circle end to end: the middle by [`check_path`], then the whole route as
/// `route::build_route` makes it (our two hops included) against the search's numbers.
fn check_circle(g: &Graph, c: &Circle, path: &Path) {
    let ex = c.exclusions();
    check_path(g, &c.query, &ex, path);
    let (out_e, in_e) = (g.edge(c.out_edge), g.edge(c.in_edge));
    assert!(out_e.active && in_e.active);
    assert_eq!((out_e.source, out_e.destination), (c.us, c.out_peer));
    assert_eq!((in_e.source, in_e.destination), (c.in_peer, c.us));
    // The query is what Plan builds.
    assert_eq!(
        c.query.deliver_msat,
        c.amount_msat + spec_fee(c.amount_msat, &in_e.policy).expect("fee fits")
    );
    assert_eq!(c.query.deliver_delay, FINAL_CLTV + in_e.policy.delay);
    assert!(in_e.policy.htlc_minimum_msat <= c.amount_msat);
    assert!(c.amount_msat <= in_e.policy.htlc_maximum_msat.min(in_e.amount_msat));

    let spec = |i: EdgeIdx| HopSpec::from_edge(g, i);
    let mut specs = vec![spec(c.out_edge)];
    specs.extend(path.edges.iter().map(|&i| spec(i)));
    specs.push(spec(c.in_edge));
    let hops = build_route(&specs, c.amount_msat, FINAL_CLTV).expect("route builds");
    assert!(hops.len() <= MAX_HOPS, "{} hops", hops.len());
    assert_eq!(hops.len(), path.edges.len() + 2);
    assert_eq!(
        hops[0].amount_msat, path.source_amount_msat,
        "route amount = search's"
    );
    assert_eq!(hops[0].delay, path.source_delay, "route delay = search's");
    assert!(hops[0].delay <= MAX_TOTAL_CLTV);
    assert_eq!(
        route_fee_msat(&hops),
        path.source_amount_msat - c.amount_msat,
        "fee = source amount - amount"
    );
    assert_eq!(hops[hops.len() - 1].node_id, g.node_id(c.us));
    let middle = &hops[1..hops.len() - 1];
    assert!(
        middle.iter().all(|h| h.node_id != g.node_id(c.us)),
        "us only at the ends"
    );
}

fn found_routes_are_valid(name: &'static str, per_amount: usize) {
    let Some(m) = load(name) else { return };
    let g = &m.graph;
    let mut scratch = Scratch::default();
    for (k, amount) in AMOUNTS_MSAT.into_iter().enumerate() {
        let circles = m.circles(0xC0FFEE + k as u64, amount, per_amount);
        let mut found = 0;
        for (i, c) in circles.iter().enumerate() {
            let ex = c.exclusions();
            let path = find_path(g, &c.query, &ex, &mut scratch);
            if i % 10 == 0 {
                let fresh = find_path(g, &c.query, &ex, &mut Scratch::default());
                assert_eq!(path, fresh, "a reused scratch gives the same answer");
            }
            if let Some(p) = path {
                check_circle(g, c, &p);
                found += 1;
            }
        }
        println!("{name} {amount} msat: {found}/{per_amount} circles found and valid");
        assert!(
            found * 10 >= per_amount * 8,
            "{name}: only {found}/{per_amount} found at {amount} msat"
        );
    }
}

#[test]
fn routes_on_the_2026_graph_satisfy_every_constraint() {
    found_routes_are_valid(G2026, 120);
}

#[test]
fn routes_on_the_2021_graph_satisfy_every_constraint() {
    found_routes_are_valid(G2021, 80);
}

#[test]
fn graphs_decode_completely() {
    // Counts from ../shared/data/README.md.
    let expected = [
        (G2021, 8_827, 66_964, 55_622),
        ("mainnet-2024-09-22", 18_212, 118_856, 74_956),
        (G2026, 17_324, 101_616, 65_809),
    ];
    for (name, nodes, edges, active) in expected {
        let Some(m) = load(name) else { return };
        let g = &m.graph;
        assert_eq!(g.node_count(), nodes, "{name} nodes");
        assert_eq!(g.edge_count(), edges, "{name} edges");
        assert_eq!(g.edges().iter().filter(|e| e.active).count(), active);
        let mut seen = vec![false; g.edge_count()];
        for v in 0..g.node_count() as NodeIdx {
            for (i, e) in g.edges_into(v) {
                assert_eq!(e.destination, v);
                assert!(!std::mem::replace(&mut seen[i as usize], true));
            }
        }
        assert!(seen.iter().all(|s| *s), "edges_into covers every edge once");
        for (i, e) in g.edges().iter().enumerate() {
            assert_eq!(
                g.edge_by_scid(e.short_channel_id, e.direction),
                Some(i as EdgeIdx)
            );
            assert_eq!(g.node_idx(g.node_id(e.source)), Some(e.source));
        }
    }
    if let Some(m) = load(G2026) {
        // README: largest strongly connected component 6,191 nodes.
        assert_eq!(m.scc.iter().filter(|b| **b).count(), 6_191);
    }
}

// ---------------------------------------------------------------------------------------------
// Exhaustive search on small subgraphs.

/// Up to `size` nodes around a random node of the largest SCC: breadth first over active
/// channels (either direction), taking at most 4 random neighbours per node so the cut reaches
/// past one hub's leaves. Every edge between chosen nodes (active or not) is kept.
fn cut_subgraph(m: &Mainnet, rng: &mut Rng, size: usize) -> Graph {
    let g = &m.graph;
    let scc_nodes: Vec<NodeIdx> = (0..g.node_count() as NodeIdx)
        .filter(|&v| m.scc[v as usize])
        .collect();
    let root = *rng.pick(&scc_nodes);
    let mut chosen = vec![root];
    let mut queue = std::collections::VecDeque::from([root]);
    while let Some(v) = queue.pop_front() {
        let mut next: Vec<NodeIdx> = g
            .edges_into(v)
            .filter(|(_, e)| e.active)
            .map(|(_, e)| e.source)
            .chain(
                m.out[v as usize]
                    .iter()
                    .map(|&i| g.edge(i))
                    .filter(|e| e.active)
                    .map(|e| e.destination),
            )
            .collect();
        next.sort_unstable();
        next.dedup();
        for _ in 0..4 {
            if next.is_empty() || chosen.len() >= size {
                break;
            }
            let w = next.swap_remove(rng.below(next.len()));
            if !chosen.contains(&w) {
                chosen.push(w);
                queue.push_back(w);
            }
        }
        if chosen.len() >= size {
            break;
        }
    }
    let mut b = GraphBuilder::default();
    for &v in &chosen {
        for (_, e) in g.edges_into(v) {
            if chosen.contains(&e.source) {
                b.add(
                    g.node_id(e.source),
                    g.node_id(e.destination),
                    e.short_channel_id,
                    e.direction,
                    e.active,
                    e.amount_msat,
                    e.policy,
                );
            }
        }
    }
    b.build()
}

fn dijkstra_matches_exhaustive(name: &'static str, subgraphs: usize, seed: u64) {
    let Some(m) = load(name) else { return };
    let mut rng = Rng::new(seed);
    let mut scratch = Scratch::default();
    let (mut queries, mut with_path, mut capped_differs, mut skipped) = (0, 0, 0, 0);
    let (mut tight_missed, mut tight_dearer) = (0, 0);
    for _ in 0..subgraphs {
        let size = 12 + rng.below(14); // 12..=25 nodes
        let sub = cut_subgraph(m, &mut rng, size);
        let n = sub.node_count();
        for _ in 0..12 {
            let from = rng.below(n) as NodeIdx;
            let to = rng.below(n) as NodeIdx;
            if from == to {
                continue;
            }
            let base = AMOUNTS_MSAT[rng.below(3)];
            let amount = base + rng.below(base as usize / 10) as u64;
            let mut ex = Exclusions::default();
            // Half the time a third node plays "us" and is excluded.
            let us = rng.below(n) as NodeIdx;
            if us != from && us != to && rng.below(2) == 0 {
                ex.nodes.insert(us);
            }
            let delay = FINAL_CLTV + rng.below(145) as u32;
            // Caps out of reach: a simple path here has at most 24 edges.
            let open = Query {
                from,
                to,
                deliver_msat: amount,
                deliver_delay: delay,
                max_edges: 63,
                max_delay: u32::MAX,
                max_amount_msat: u64::MAX,
            };
            let Ok(want) = exhaustive(&sub, &open, &ex) else {
                skipped += 1;
                continue;
            };
            let got = find_path(&sub, &open, &ex, &mut scratch);
            queries += 1;
            match (&got, want) {
                (None, None) => {}
                (Some(p), Some((amount_msat, edges))) => {
                    with_path += 1;
                    check_path(&sub, &open, &ex, p);
                    assert_eq!(
                        (p.source_amount_msat, p.edges.len() as u32),
                        (amount_msat, edges),
                        "{name}: Dijkstra's (amount, edges) differs from the exhaustive optimum"
                    );
                }
                _ => panic!(
                    "{name}: Dijkstra found {:?}, exhaustive search {want:?}",
                    got.map(|p| p.source_amount_msat)
                ),
            }
            // The plugin's caps: whatever is found is valid and never beats the optimum.
            let capped = Query {
                max_edges: (MAX_HOPS - 2) as u32,
                max_delay: MAX_TOTAL_CLTV,
                max_amount_msat: u64::MAX,
                ..open.clone()
            };
            let want = exhaustive(&sub, &capped, &ex).expect("within budget: no more paths");
            let got = find_path(&sub, &capped, &ex, &mut scratch);
            if let Some(p) = &got {
                check_path(&sub, &capped, &ex, p);
                let best = want.expect("a valid path found means one exists");
                assert!(p.source_amount_msat >= best.0);
            }
            if got.map(|p| p.source_amount_msat) != want.map(|w| w.0) {
                capped_differs += 1;
            }
            // Tight caps that do bind: still valid and never better than the optimum, but a
            // path may be missed or dearer (label-setting keeps one label per node).
            let tight = Query {
                max_edges: 1 + rng.below(4) as u32,
                max_delay: open.deliver_delay + rng.below(300) as u32,
                max_amount_msat: u64::MAX,
                ..open.clone()
            };
            let want = exhaustive(&sub, &tight, &ex).expect("fewer paths than uncapped");
            let got = find_path(&sub, &tight, &ex, &mut scratch);
            if let Some(p) = &got {
                check_path(&sub, &tight, &ex, p);
                let best = want.expect("a valid path found means one exists");
                assert!(p.source_amount_msat >= best.0);
            }
            match (got.map(|p| p.source_amount_msat), want.map(|w| w.0)) {
                (None, Some(_)) => tight_missed += 1,
                (Some(a), Some(b)) if a > b => tight_dearer += 1,
                _ => {}
            }
        }
    }
    println!(
        "{name}: {queries} queries on {subgraphs} subgraphs, {with_path} with a path, all equal \
         to the exhaustive optimum ({skipped} skipped: over the enumeration budget); with the \
         18-edge/2016-block caps {capped_differs} differ; with tight caps (1-4 edges, <300 \
         blocks) {tight_missed} missed and {tight_dearer} dearer than the optimum"
    );
    assert!(
        with_path * 4 >= queries,
        "the sample should mostly have paths"
    );
    assert!(
        skipped * 5 <= queries,
        "too many queries over the enumeration budget"
    );
}

#[test]
fn dijkstra_equals_exhaustive_search_on_2026_subgraphs() {
    dijkstra_matches_exhaustive(G2026, 60, 7);
}

#[test]
fn dijkstra_equals_exhaustive_search_on_2021_subgraphs() {
    dijkstra_matches_exhaustive(G2021, 40, 11);
}

// ---------------------------------------------------------------------------------------------
// Exclusions on real routes.

#[test]
fn exclusions_on_real_routes() {
    let Some(m) = load(G2026) else { return };
    let g = &m.graph;
    let mut s = Scratch::default();
    let mut rng = Rng::new(99);
    let mut checked = 0;
    for c in m.circles(0xE7C1, 100_000_000, 60) {
        let base_ex = c.exclusions();
        let Some(p) = find_path(g, &c.query, &base_ex, &mut s) else {
            continue;
        };
        checked += 1;
        let carried = check_path(g, &c.query, &base_ex, &p);
        let fee = p.source_amount_msat;

        // Without the route's edges: another route or none, never cheaper.
        let mut ex = base_ex.clone();
        ex.edges.extend(p.edges.iter().copied());
        if let Some(q) = find_path(g, &c.query, &ex, &mut s) {
            check_path(g, &c.query, &ex, &q);
            assert!(q.edges.iter().all(|e| !p.edges.contains(e)));
            assert!(q.source_amount_msat >= fee);
        }

        // Without a node in the middle of the route.
        if p.edges.len() >= 2 {
            let mid = g.edge(p.edges[rng.below(p.edges.len() - 1)]).destination;
            let mut ex = base_ex.clone();
            ex.nodes.insert(mid);
            if let Some(q) = find_path(g, &c.query, &ex, &mut s) {
                check_path(g, &c.query, &ex, &q);
                assert!(q.source_amount_msat >= fee);
            }
        }

        // A learned amount limit: at the carried amount the edge is out, one above it is not.
        let i = rng.below(p.edges.len());
        let mut ex = base_ex.clone();
        ex.max_amount_msat.insert(p.edges[i], carried[i]);
        if let Some(q) = find_path(g, &c.query, &ex, &mut s) {
            check_path(g, &c.query, &ex, &q);
            assert!(!q.edges.contains(&p.edges[i]));
            assert!(q.source_amount_msat >= fee);
        }
        ex.max_amount_msat.insert(p.edges[i], carried[i] + 1);
        assert_eq!(find_path(g, &c.query, &ex, &mut s).as_ref(), Some(&p));

        // Exclusions off the route leave the optimum where it was.
        let mut ex = base_ex.clone();
        while ex.edges.len() < 50 {
            let e = rng.below(g.edge_count()) as EdgeIdx;
            if !p.edges.contains(&e) {
                ex.edges.insert(e);
                ex.max_amount_msat.insert(e, 1);
            }
        }
        let q = find_path(g, &c.query, &ex, &mut s).expect("the route is still there");
        assert_eq!(q.source_amount_msat, fee);

        // Excluding either peer means no route at all.
        let mut ex = base_ex.clone();
        ex.nodes.insert(c.out_peer);
        assert_eq!(find_path(g, &c.query, &ex, &mut s), None);
    }
    assert!(checked >= 40, "only {checked} routes to check");
}

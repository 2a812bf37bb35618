//! Properties of the multi-part solver (`core::flow`) on random graphs, checked by code written
//! here and in `support/routecheck.rs` (BOLT 7's fee, the hop-by-hop rules), not by the solver:
//! the parts deliver the amount exactly; every part's route is valid hop by hop (amounts, fees
//! and delays backward, htlc limits, at most 20 hops, 2016 blocks); what all parts put on a
//! channel direction fits it (its capacity, the cost's bound, what it failed to carry); the
//! whole set within the fee cap and what `A` can be sent; at most `max_parts` parts, none below
//! `min_part_msat`; the same answer for the same input; never worse than, nor failing where,
//! the single route the rebalance searches today.
//!
//! Runs like `tests/fuzz_core.rs`: a fixed number of cases from a fixed seed per target, each
//! printing `fuzz <target>: ...` to stderr; `PROPTEST_CASES`, `PROPTEST_RNG_SEED` and
//! `FUZZ_SCALE=N` (N times each target's budget) for longer runs.

#[path = "support/fuzzrun.rs"]
mod fuzzrun;
#[path = "support/routecheck.rs"]
mod routecheck;

use cln_rebalance::core::flow::{
    Flow, FlowCost, FlowRequest, FlowScratch, KnownBalances, MAX_PARTS, NoFlow, cheapest_set, solve,
};
use cln_rebalance::core::graph::{EdgeIdx, Graph, GraphBuilder, Policy, Scid};
use cln_rebalance::core::liquidity::{Beliefs, ChanDir, Liquidity, ModelConfig};
use cln_rebalance::core::pathfind::{Exclusions, Query, Scratch, find_path_with};
use cln_rebalance::core::route::{HopSpec, MAX_HOPS, MAX_TOTAL_CLTV, build_route};
use fuzzrun::Tally;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use routecheck::{check_hops, spec_fee};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

const SEED: u64 = 0x0F10_2026;

/// The cases exercised what the target is about: sets of one part and of several.
fn assert_exercised(tally: &Tally, cases: u64) {
    let (one, several) = (tally.get("one part"), tally.get("several parts"));
    assert!(
        one * 10 >= cases && several * 20 >= cases,
        "too few sets to say much: {one} of one part, {several} of several in {cases} cases"
    );
}

/// Runs `test` on `ci_cases` values of `strategy` (or `$PROPTEST_CASES`), seeded per target;
/// the runs made.
fn fuzz<S: Strategy + 'static>(
    name: &'static str,
    ci_cases: u32,
    strategy: S,
    tally: &Tally,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> u64 {
    let runner = fuzzrun::Runner {
        seed: SEED,
        source_file: file!(),
        max_shrink_iters: 2048,
    };
    runner.fuzz(name, ci_cases, strategy, tally, test)
}

// ---------------------------------------------------------------------------------------------
// Random networks and requests.

/// A forwarding policy: mostly what mainnet nodes set, now and then an extreme one.
fn policy() -> BoxedStrategy<Policy> {
    (
        prop_oneof![20 => 0u32..2000, 2 => Just(0u32), 1 => Just(u32::MAX)],
        prop_oneof![20 => 0u32..3000, 2 => Just(0u32), 1 => Just(1_000_000u32), 1 => Just(u32::MAX)],
        prop_oneof![30 => 6u32..150, 1 => Just(2016u32), 1 => Just(u32::MAX)],
        prop_oneof![30 => Just(0u64), 6 => 0u64..100_000_000, 1 => Just(u64::MAX)],
        prop_oneof![16 => Just(u64::MAX), 6 => 1u64..8_000_000_000, 1 => Just(0u64)],
    )
        .prop_map(|(base, ppm, delay, min, max)| Policy {
            base_fee_millisatoshi: base,
            fee_per_millionth: ppm,
            delay,
            htlc_minimum_msat: min,
            htlc_maximum_msat: max,
        })
        .boxed()
}

/// The incoming peer's policy for the last hop: mostly a plain one, its htlc maximum now and
/// then below the amount (the parts must then split), sometimes anything.
fn last_hop() -> BoxedStrategy<Policy> {
    prop_oneof![
        6 => (0u32..2000, 0u32..1000, 6u32..150, prop_oneof![4 => Just(u64::MAX), 1 => 100_000_000u64..3_000_000_000])
            .prop_map(|(base, ppm, delay, max)| Policy {
                base_fee_millisatoshi: base,
                fee_per_millionth: ppm,
                delay,
                htlc_minimum_msat: 0,
                htlc_maximum_msat: max,
            }),
        1 => policy(),
    ]
    .boxed()
}

/// One channel between nodes `a` and `b` (maybe the same), both directions.
#[derive(Debug, Clone)]
struct Chan {
    a: usize,
    b: usize,
    capacity: u64,
    active: [bool; 2],
    policy: [Policy; 2],
    /// What each direction can really forward, as a share of the capacity in percent.
    balance_pct: [u64; 2],
}

fn chan(n: usize) -> BoxedStrategy<Chan> {
    // Never node 0 (us): the middle of a circle never passes through us.
    (
        1..n,
        1..n,
        prop_oneof![
            12 => 500_000_000u64..20_000_000_000,
            1 => 0u64..1_000_000,
            1 => Just(u64::MAX / 2)
        ],
        [prop::bool::weighted(0.95), prop::bool::weighted(0.95)],
        [policy(), policy()],
        [0u64..=100, 0u64..=100],
    )
        .prop_map(|(a, b, capacity, active, policy, balance_pct)| Chan {
            a,
            b,
            capacity,
            active,
            policy,
            balance_pct,
        })
        .boxed()
}

/// Something the model learned of one channel direction (index into the graph's edges).
#[derive(Debug, Clone)]
enum Fact {
    Failed(prop::sample::Index, u64),
    Forwarded(prop::sample::Index, u64),
    InFlight(prop::sample::Index, u64),
}

fn fact() -> BoxedStrategy<Fact> {
    (any::<prop::sample::Index>(), 1u64..10_000_000_000, 0u8..3)
        .prop_map(|(i, a, k)| match k {
            0 => Fact::Failed(i, a),
            1 => Fact::Forwarded(i, a),
            _ => Fact::InFlight(i, a),
        })
        .boxed()
}

/// A random network and one rebalance on it, from node 1 (`A`) to node 2 (`B`).
#[derive(Debug, Clone)]
struct Case {
    nodes: usize,
    chans: Vec<Chan>,
    amount_msat: u64,
    last_hop: Policy,
    max_parts: usize,
    /// min part = amount x this / 100.
    min_part_pct: u64,
    max_fee_msat: u64,
    /// max source = amount + this share of the cap / 100 (None: no limit).
    max_source_pct: Option<u64>,
    facts: Vec<Fact>,
    excluded_node: Option<usize>,
    limit: Option<(prop::sample::Index, u64)>,
}

fn case() -> BoxedStrategy<Case> {
    (4usize..9)
        .prop_flat_map(|n| {
            (
                prop::collection::vec(chan(n), n..=4 * n),
                prop_oneof![
                    6 => 100_000_000u64..6_000_000_000,
                    1 => 1u64..100_000,
                    1 => Just(u64::MAX / 4)
                ],
                last_hop(),
                prop_oneof![6 => 1usize..=4, 2 => 5usize..=8, 1 => Just(usize::MAX)],
                prop_oneof![Just(0u64), Just(5u64), Just(10u64), Just(40u64)],
                prop_oneof![4 => 1_000u64..100_000_000, 1 => Just(u64::MAX)],
                prop::option::weighted(0.2, 0u64..=100),
                prop::collection::vec(fact(), 0..6),
                prop::option::weighted(0.2, 3..n.max(4)),
                prop::option::weighted(0.2, (any::<prop::sample::Index>(), 1u64..5_000_000_000)),
            )
                .prop_map(
                    move |(
                        chans,
                        amount_msat,
                        last_hop,
                        max_parts,
                        min_part_pct,
                        max_fee_msat,
                        max_source_pct,
                        facts,
                        excluded_node,
                        limit,
                    )| Case {
                        nodes: n,
                        chans,
                        amount_msat,
                        last_hop,
                        max_parts,
                        min_part_pct,
                        max_fee_msat,
                        max_source_pct,
                        facts,
                        excluded_node: excluded_node.filter(|&v| v < n),
                        limit,
                    },
                )
        })
        .boxed()
}

fn name(i: usize) -> String {
    format!("02{:064x}", i + 1)
}

/// The case's graph, with every node named (so `A` and `B` exist even when unconnected), and
/// each edge's true forwardable amount.
fn build(case: &Case) -> (Graph, Vec<u64>) {
    let mut b = GraphBuilder::default();
    let mut balances = BTreeMap::new();
    for (i, c) in case.chans.iter().enumerate() {
        let scid = Scid(((i as u64) + 1) << 40);
        for (s, (x, y)) in [(c.a, c.b), (c.b, c.a)].into_iter().enumerate() {
            let (nx, ny) = (name(x), name(y));
            let dir = u8::from(nx > ny);
            b.add(&nx, &ny, scid, dir, c.active[s], c.capacity, c.policy[s]);
            balances.insert((scid, dir), c.capacity / 100 * c.balance_pct[s]);
        }
    }
    // Nodes no channel touches still need an index: a self-loop channel, inactive.
    for v in 0..case.nodes {
        let scid = Scid((1000 + v as u64) << 40);
        b.add(&name(v), &name(v), scid, 0, false, 0, case.last_hop);
        balances.insert((scid, 0), 0);
    }
    let g = b.build();
    let forwardable = g
        .edges()
        .iter()
        .map(|e| balances[&(e.short_channel_id, e.direction)])
        .collect();
    (g, forwardable)
}

fn beliefs(g: &Graph, case: &Case) -> Beliefs {
    let mut model = Liquidity::new();
    let cfg = ModelConfig::default();
    for f in &case.facts {
        let (i, a) = match f {
            Fact::Failed(i, a) | Fact::Forwarded(i, a) | Fact::InFlight(i, a) => (i, *a),
        };
        let e = g.edge(i.index(g.edge_count()) as EdgeIdx);
        let cd = ChanDir::new(e.short_channel_id, e.direction);
        match f {
            Fact::Failed(..) => model.failed(cd, a, e.amount_msat, 900, cfg.half_life_secs),
            Fact::Forwarded(..) => model.forwarded(cd, a, e.amount_msat, 900, cfg.half_life_secs),
            Fact::InFlight(..) => model.in_flight(cd, a, true),
        }
    }
    let mut view = Beliefs::default();
    view.rebuild(g, &model, 1000, cfg);
    view
}

const FINAL_CLTV: u32 = 21;

fn request<'a>(g: &Graph, case: &Case, exclude: &'a Exclusions) -> FlowRequest<'a> {
    let cap = case.max_fee_msat;
    FlowRequest {
        from: g.node_idx(&name(1)).expect("A"),
        to: g.node_idx(&name(2)).expect("B"),
        amount_msat: case.amount_msat,
        last_hop: case.last_hop,
        final_delay: FINAL_CLTV,
        max_parts: case.max_parts,
        min_part_msat: case.amount_msat / 100 * case.min_part_pct,
        max_fee_msat: cap,
        max_source_msat: match case.max_source_pct {
            Some(p) => case
                .amount_msat
                .saturating_add(cap.min(u64::MAX / 200) / 100 * p),
            None => u64::MAX,
        },
        exclude,
        max_edges: (MAX_HOPS - 2) as u32,
        max_delay: MAX_TOTAL_CLTV,
    }
}

fn exclusions(g: &Graph, case: &Case) -> Exclusions {
    let mut ex = Exclusions::default();
    ex.nodes.insert(g.node_idx(&name(0)).expect("us")); // node 0 plays us
    if let Some(v) = case.excluded_node {
        ex.nodes.insert(g.node_idx(&name(v)).expect("node"));
    }
    if let Some((i, limit)) = &case.limit {
        ex.max_amount_msat
            .insert(i.index(g.edge_count()) as EdgeIdx, *limit);
    }
    ex
}

// ---------------------------------------------------------------------------------------------
// The checker.

/// Everything a returned set must be, checked from scratch; returns its cost (fees plus
/// `cost` of every channel direction at the combined amount, at the whole amount's rate).
fn check_flow<C: FlowCost>(
    g: &Graph,
    req: &FlowRequest,
    cost: &C,
    flow: &Flow,
) -> Result<u64, TestCaseError> {
    let parts = &flow.parts;
    prop_assert!(
        !parts.is_empty() && parts.len() <= req.max_parts.min(MAX_PARTS),
        "1..=max_parts parts"
    );
    prop_assert_eq!(
        parts
            .iter()
            .map(|p| u128::from(p.amount_msat))
            .sum::<u128>(),
        u128::from(req.amount_msat),
        "the parts deliver the amount exactly"
    );
    if parts.len() > 1 {
        for p in parts {
            prop_assert!(
                p.amount_msat >= req.min_part_msat,
                "no part below the minimum"
            );
        }
    }
    // Each part's route as the rebalance would send it: our first hop (free), the path, B's
    // last hop to us; built by the crate, checked hop by hop by routecheck.
    let first = HopSpec {
        short_channel_id: Scid(5000 << 40),
        direction: 0,
        node_id: g.node_id(req.from).to_string(),
        policy: req.last_hop,
    };
    let last = HopSpec {
        short_channel_id: Scid(5001 << 40),
        direction: 0,
        node_id: name(0),
        policy: req.last_hop,
    };
    let mut loads: BTreeMap<EdgeIdx, u64> = BTreeMap::new();
    let (mut fee, mut source) = (0u128, 0u128);
    for p in parts {
        prop_assert!(p.edges.len() + 2 <= MAX_HOPS, "at most 20 hops");
        // A path from A to B over active edges, no node twice, none excluded.
        let mut at = req.from;
        let mut seen = BTreeSet::from([req.from]);
        for &e in &p.edges {
            let edge = g.edge(e);
            prop_assert_eq!(edge.source, at, "consecutive edges connect");
            prop_assert!(edge.active, "active edges only");
            prop_assert!(!req.exclude.edges.contains(&e), "no excluded edge");
            at = edge.destination;
            prop_assert!(seen.insert(at), "no node twice");
            prop_assert!(
                at == req.to || !req.exclude.nodes.contains(&at),
                "no excluded node"
            );
        }
        prop_assert_eq!(at, req.to, "ends at B");
        let mut specs = vec![first.clone()];
        specs.extend(p.edges.iter().map(|&e| HopSpec::from_edge(g, e)));
        specs.push(last.clone());
        let hops = build_route(&specs, p.amount_msat, FINAL_CLTV)
            .map_err(|e| TestCaseError::fail(format!("a part's route: {e}")))?;
        let charged_by: Vec<Policy> = specs.iter().map(|s| s.policy).collect();
        let carries: Vec<u64> = std::iter::once(u64::MAX)
            .chain(p.edges.iter().map(|&e| g.edge(e).amount_msat))
            .chain(std::iter::once(u64::MAX))
            .collect();
        let part_fee = check_hops(&hops, &charged_by, &carries, p.amount_msat, FINAL_CLTV);
        prop_assert!(hops[0].delay <= MAX_TOTAL_CLTV, "total CLTV");
        prop_assert_eq!(part_fee, p.fee_msat, "the part's fee");
        prop_assert_eq!(hops[0].amount_msat, p.source_amount_msat, "what A receives");
        prop_assert_eq!(hops[0].delay, p.source_delay, "the delay A receives");
        for (i, &e) in p.edges.iter().enumerate() {
            *loads.entry(e).or_default() += hops[i + 1].amount_msat;
        }
        fee += u128::from(part_fee);
        source += u128::from(hops[0].amount_msat);
    }
    prop_assert_eq!(fee, u128::from(flow.fee_msat), "the set's fee");
    prop_assert!(fee <= u128::from(req.max_fee_msat), "within the fee cap");
    prop_assert!(
        source <= u128::from(req.max_source_msat),
        "what A can be sent"
    );
    let mut risk = 0u128;
    for (&e, &load) in &loads {
        let edge = g.edge(e);
        prop_assert!(load <= edge.amount_msat, "shared edge within its capacity");
        if let Some(&limit) = req.exclude.max_amount_msat.get(&e) {
            prop_assert!(load < limit, "below what the edge failed to carry");
        }
        let c = cost.cost_msat(g, e, edge.source, load, req.amount_msat);
        prop_assert!(
            c.is_some(),
            "the cost says the edge carries what all parts put on it"
        );
        risk += u128::from(c.unwrap_or(0));
    }
    prop_assert_eq!(risk, u128::from(flow.risk_msat), "the set's risk");
    Ok(u64::try_from(fee + risk).unwrap_or(u64::MAX))
}

/// The single route the rebalance searches today for `req` (the cost as its `HopCost`), when
/// it keeps every limit of the request: its cost as the solver prices a set.
fn single_route<C: FlowCost>(
    g: &Graph,
    req: &FlowRequest,
    cost: &C,
) -> Option<(u64, Vec<EdgeIdx>)> {
    let amount = req.amount_msat;
    let last = &req.last_hop;
    if amount < last.htlc_minimum_msat || amount > last.htlc_maximum_msat {
        return None;
    }
    let query = Query {
        from: req.from,
        to: req.to,
        deliver_msat: amount.checked_add(spec_fee(amount, last)?)?,
        deliver_delay: req.final_delay.checked_add(last.delay)?,
        max_edges: req.max_edges,
        max_delay: req.max_delay,
        max_amount_msat: amount.saturating_add(req.max_fee_msat),
    };
    let path = find_path_with(g, &query, req.exclude, cost, &mut Scratch::default())?;
    if path.source_amount_msat > req.max_source_msat {
        return None;
    }
    let mut carried = query.deliver_msat;
    let mut risk = 0u64;
    for &e in path.edges.iter().rev() {
        risk = risk.checked_add(cost.cost_msat(g, e, g.edge(e).source, carried, amount)?)?;
        carried = carried.checked_add(spec_fee(carried, &g.edge(e).policy)?)?;
    }
    Some((
        (path.source_amount_msat - amount).checked_add(risk)?,
        path.edges,
    ))
}

/// The properties of one solve: a valid set (or a refusal where no single route exists
/// either), no worse than the single route, and the same answer again.
fn properties<C: FlowCost>(
    g: &Graph,
    req: &FlowRequest,
    cost: &C,
    solved: &dyn Fn(&mut FlowScratch) -> Result<Flow, NoFlow>,
    scratch: &mut FlowScratch,
    tally: &Tally,
) -> Result<(), TestCaseError> {
    let got = solved(scratch);
    let single = single_route(g, req, cost);
    match &got {
        Ok(flow) => {
            let c = check_flow(g, req, cost, flow)?;
            tally.add(match flow.parts.len() {
                1 => "one part",
                _ => "several parts",
            });
            if let Some((s, edges)) = &single {
                prop_assert!(c <= *s, "set {} dearer than the single route {}", c, s);
                // One part: the search's route, unless another single route prices lower.
                if flow.parts.len() == 1 && flow.parts[0].edges != *edges {
                    tally.add("one part, not the search's route");
                    prop_assert!(c < *s, "another route at the same cost");
                }
            }
        }
        Err(e) => {
            tally.add(match e {
                NoFlow::Invalid(_) => "refused: invalid",
                NoFlow::NoPath => "refused: no path",
                NoFlow::OverFeeCap { .. } => "refused: over the cap",
                NoFlow::Insufficient => "refused: insufficient",
            });
            prop_assert!(
                single.is_none() || matches!(e, NoFlow::Invalid(_)),
                "a single route keeps every limit, yet: {}",
                e
            );
        }
    }
    // Deterministic: again on the scratch it left, and on a fresh one.
    prop_assert_eq!(&solved(scratch), &got, "the same again");
    prop_assert_eq!(
        &solved(&mut FlowScratch::default()),
        &got,
        "the same on a fresh scratch"
    );
    Ok(())
}

#[test]
fn fuzz_flow_with_the_model() {
    let tally = Tally::default();
    let scratch = RefCell::new(FlowScratch::default());
    let runs = fuzz("flow::solve with the model", 1500, case(), &tally, |case| {
        let (g, _) = build(&case);
        let view = beliefs(&g, &case);
        let ex = exclusions(&g, &case);
        let req = request(&g, &case, &ex);
        let solved = |s: &mut FlowScratch| solve(&g, &req, &view, s);
        properties(&g, &req, &view, &solved, &mut scratch.borrow_mut(), &tally)
    });
    assert_exercised(&tally, runs);
}

#[test]
fn fuzz_flow_with_true_balances() {
    let tally = Tally::default();
    let scratch = RefCell::new(FlowScratch::default());
    let runs = fuzz(
        "flow::cheapest_set on true balances",
        1500,
        case(),
        &tally,
        |case| {
            let (g, forwardable) = build(&case);
            let ex = exclusions(&g, &case);
            let req = request(&g, &case, &ex);
            let capacity = |e: EdgeIdx| forwardable[e as usize];
            let oracle = KnownBalances(capacity);
            let solved = |s: &mut FlowScratch| cheapest_set(&g, &req, capacity, s);
            properties(
                &g,
                &req,
                &oracle,
                &solved,
                &mut scratch.borrow_mut(),
                &tally,
            )
        },
    );
    assert_exercised(&tally, runs);
}

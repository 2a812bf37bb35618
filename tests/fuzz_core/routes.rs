//! Route building on random graphs, as the rebalance's circle drives the core: found routes valid hop by hop and as cheap as an exhaustive search.

use super::*;

pub(crate) fn policy() -> BoxedStrategy<Policy> {
    (
        prop_oneof![10 => 0u32..2000, 1 => Just(0u32), 1 => Just(u32::MAX), 1 => any::<u32>()],
        prop_oneof![10 => 0u32..5000, 1 => Just(0u32), 1 => Just(1_000_000u32), 1 => Just(u32::MAX), 1 => any::<u32>()],
        prop_oneof![12 => 0u32..150, 1 => Just(2016u32), 1 => Just(u32::MAX), 1 => any::<u32>()],
        prop_oneof![12 => Just(0u64), 3 => 0u64..10_000_000, 1 => any::<u64>()],
        prop_oneof![12 => Just(u64::MAX), 3 => 0u64..20_000_000_000, 1 => any::<u64>()],
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

pub(crate) fn capacity() -> BoxedStrategy<u64> {
    prop_oneof![
        12 => 1_000_000u64..20_000_000_000,
        1 => Just(0u64),
        1 => 0u64..100_000,
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
    .boxed()
}

/// One channel between nodes `a` and `b` (maybe the same node), both directions.
#[derive(Debug, Clone)]
pub(crate) struct RandChan {
    pub(crate) a: usize,
    pub(crate) b: usize,
    /// Reuses an earlier channel's scid when `Some` (a duplicate channel id).
    pub(crate) dup_of: Option<prop::sample::Index>,
    pub(crate) capacity: u64,
    pub(crate) active: [bool; 2],
    pub(crate) policy: [Policy; 2],
}

pub(crate) fn rand_chan(n: usize) -> BoxedStrategy<RandChan> {
    (
        0..n,
        0..n,
        prop::option::weighted(0.08, any::<prop::sample::Index>()),
        capacity(),
        [prop::bool::weighted(0.95), prop::bool::weighted(0.95)],
        [policy(), policy()],
    )
        .prop_map(|(a, b, dup_of, capacity, active, policy)| RandChan {
            a,
            b,
            dup_of,
            capacity,
            active,
            policy,
        })
        .boxed()
}

/// A random network around us (node 0): the outgoing peer `A`, the incoming peer `B` (maybe
/// the same), our channels to them, and the rest.
#[derive(Debug, Clone)]
pub(crate) struct RandNet {
    pub(crate) chans: Vec<RandChan>,
    pub(crate) out_peer: usize,
    pub(crate) in_peer: usize,
    pub(crate) out_chan: RandChan,
    pub(crate) in_chan: RandChan,
}

pub(crate) fn rand_net(nodes: std::ops::RangeInclusive<usize>) -> BoxedStrategy<RandNet> {
    nodes
        .prop_flat_map(|n| {
            (
                prop::collection::vec(rand_chan(n), n..=3 * n),
                1..n,
                prop_oneof![4 => 1..n, 1 => Just(0usize)],
                rand_chan(n),
                rand_chan(n),
            )
                .prop_map(move |(chans, out_peer, in_peer, out_chan, in_chan)| {
                    RandNet {
                        chans,
                        out_peer,
                        // 0 stands for "the same peer as outgoing" (two channels to one peer).
                        in_peer: if in_peer == 0 { out_peer } else { in_peer },
                        out_chan,
                        in_chan,
                    }
                })
        })
        .boxed()
}

pub(crate) fn node_name(i: usize) -> String {
    format!("02{:064x}", i + 1)
}

/// The graph of a [`RandNet`]; returns it with our outgoing and incoming edges (us -> A and
/// B -> us).
pub(crate) fn build_graph(net: &RandNet) -> (Graph, EdgeIdx, EdgeIdx) {
    let mut b = GraphBuilder::default();
    let mut scids: Vec<Scid> = Vec::new();
    let add = |b: &mut GraphBuilder, scids: &mut Vec<Scid>, c: &RandChan, x: usize, y: usize| {
        // Duplicates reuse another random channel's scid, never one of our two.
        let scid = match c.dup_of {
            Some(i) if scids.len() > 2 => scids[2 + i.index(scids.len() - 2)],
            _ => Scid((((scids.len() as u64) + 100) << 40) | (1 << 16)),
        };
        scids.push(scid);
        let (nx, ny) = (node_name(x), node_name(y));
        b.add(
            &nx,
            &ny,
            scid,
            u8::from(nx > ny),
            c.active[0],
            c.capacity,
            c.policy[0],
        );
        b.add(
            &ny,
            &nx,
            scid,
            u8::from(ny > nx),
            c.active[1],
            c.capacity,
            c.policy[1],
        );
        scid
    };
    // Our own channels first, never duplicated and always active toward the circle.
    let out = RandChan {
        dup_of: None,
        active: [true, true],
        ..net.out_chan.clone()
    };
    let inc = RandChan {
        dup_of: None,
        active: [true, true],
        ..net.in_chan.clone()
    };
    let out_scid = add(&mut b, &mut scids, &out, 0, net.out_peer);
    let in_scid = add(&mut b, &mut scids, &inc, net.in_peer, 0);
    for c in &net.chans {
        add(&mut b, &mut scids, c, c.a, c.b);
    }
    let g = b.build();
    let (us, a, bb) = (
        node_name(0),
        node_name(net.out_peer),
        node_name(net.in_peer),
    );
    let out_edge = g
        .edge_by_scid(out_scid, u8::from(us > a))
        .expect("our outgoing edge");
    let in_edge = g
        .edge_by_scid(in_scid, u8::from(bb > us))
        .expect("our incoming edge");
    (g, out_edge, in_edge)
}

/// What `Plan::new` builds for a request, mirrored from src/commands/rebalance.rs (it is
/// private there; `fuzz_rebalance_dryrun_random_networks` drives the real one through the
/// in-memory node).
pub(crate) struct MirrorPlan {
    pub(crate) first: HopSpec,
    pub(crate) last: HopSpec,
    pub(crate) query: Query,
    pub(crate) exclude: Exclusions,
    pub(crate) same_peer: bool,
}

pub(crate) fn mirror_plan(
    g: &Graph,
    us: NodeIdx,
    out_edge: EdgeIdx,
    in_edge: EdgeIdx,
    amount_msat: u64,
    final_cltv: u32,
) -> Result<MirrorPlan, &'static str> {
    let remote = g.edge(in_edge).policy;
    if amount_msat < remote.htlc_minimum_msat || amount_msat > remote.htlc_maximum_msat {
        return Err("amount outside the incoming peer's htlc limits");
    }
    let first = HopSpec {
        policy: remote,
        ..HopSpec::from_edge(g, out_edge)
    };
    let last = HopSpec::from_edge(g, in_edge);
    let deliver_msat = spec_fee(amount_msat, &remote)
        .and_then(|f| amount_msat.checked_add(f))
        .ok_or("amount + last fee overflows")?;
    // Plan::new adds these unchecked (see the report): here checked, and counted.
    let deliver_delay = final_cltv
        .checked_add(remote.delay)
        .ok_or("final cltv + the incoming peer's delay overflows")?;
    let mut exclude = Exclusions::default();
    exclude.nodes.insert(us);
    Ok(MirrorPlan {
        first,
        last,
        query: Query {
            from: g.edge(out_edge).destination,
            to: g.edge(in_edge).source,
            deliver_msat,
            deliver_delay,
            max_edges: (MAX_HOPS - 2) as u32,
            max_delay: MAX_TOTAL_CLTV,
            max_amount_msat: u64::MAX,
        },
        exclude,
        same_peer: g.edge(out_edge).destination == g.edge(in_edge).source,
    })
}

/// A route: the middle's edges and the sendpay hops.
pub(crate) type Route = (Vec<EdgeIdx>, Vec<Hop>);

/// `Plan::next_route`, mirrored: the middle from the search (none for the same peer), our two
/// hops around it, hops from `build_route`.
pub(crate) fn mirror_next_route<C: HopCost>(
    g: &Graph,
    plan: &MirrorPlan,
    cost: &C,
    amount_msat: u64,
    final_cltv: u32,
    scratch: &mut Scratch,
) -> Result<Option<Route>, TestCaseError> {
    let middle: Vec<EdgeIdx> = if plan.same_peer {
        Vec::new()
    } else {
        match find_path_with(g, &plan.query, &plan.exclude, cost, scratch) {
            Some(p) => {
                check_path(g, &plan.query, &plan.exclude, &p);
                p.edges
            }
            None => return Ok(None),
        }
    };
    let mut specs = vec![plan.first.clone()];
    specs.extend(middle.iter().map(|&i| HopSpec::from_edge(g, i)));
    specs.push(plan.last.clone());
    match build_route(&specs, amount_msat, final_cltv) {
        Ok(hops) => Ok(Some((middle, hops))),
        // A path the search found always builds: its limits are the builder's.
        Err(e) if !plan.same_peer => Err(TestCaseError::fail(format!(
            "the search's path does not build: {e}"
        ))),
        Err(_) => Ok(None),
    }
}

/// The circle's hops against the graph: ends at us over the incoming channel, starts over the
/// outgoing one, each middle hop over its edge, and BOLT 7 hop by hop. Returns the fee.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_circle_hops(
    g: &Graph,
    us: NodeIdx,
    out_edge: EdgeIdx,
    in_edge: EdgeIdx,
    middle: &[EdgeIdx],
    hops: &[Hop],
    amount_msat: u64,
    final_cltv: u32,
) -> Result<u64, TestCaseError> {
    prop_assert_eq!(hops.len(), middle.len() + 2);
    let (out_e, in_e) = (g.edge(out_edge), g.edge(in_edge));
    let last = &hops[hops.len() - 1];
    prop_assert_eq!(last.node_id.as_str(), g.node_id(us), "ends at our node");
    prop_assert_eq!(
        (last.short_channel_id, last.direction),
        (in_e.short_channel_id, in_e.direction),
        "through the incoming channel"
    );
    prop_assert_eq!(
        (hops[0].short_channel_id, hops[0].direction),
        (out_e.short_channel_id, out_e.direction)
    );
    prop_assert_eq!(hops[0].node_id.as_str(), g.node_id(out_e.destination));
    let mut charged_by = vec![in_e.policy]; // our hop: unused
    let mut carries = vec![u64::MAX];
    for (k, &i) in middle.iter().enumerate() {
        let e = g.edge(i);
        let hop = &hops[k + 1];
        prop_assert_eq!(
            (hop.short_channel_id, hop.direction),
            (e.short_channel_id, e.direction)
        );
        prop_assert_eq!(hop.node_id.as_str(), g.node_id(e.destination));
        prop_assert!(e.active && e.source != e.destination);
        prop_assert!(e.destination != us && e.source != us, "us only at the ends");
        charged_by.push(e.policy);
        carries.push(e.policy.htlc_maximum_msat.min(e.amount_msat));
    }
    charged_by.push(in_e.policy);
    carries.push(in_e.policy.htlc_maximum_msat);
    let fee = check_hops(hops, &charged_by, &carries, amount_msat, final_cltv);
    prop_assert_eq!(
        route_fee_msat(hops),
        fee,
        "route_fee_msat is what the hops imply"
    );
    prop_assert!(hops[0].delay <= MAX_TOTAL_CLTV);
    Ok(fee)
}

/// Whether label-setting must find the optimum `best` (the exhaustive search's source amount)
/// for this query; see pathfind.rs for why it may not. Every label on the way to the optimum
/// lies in `[deliver, best]`, so no htlc minimum may fall in `(deliver, best]`; no simple path
/// may reach the CLTV cap over edges that fit under it at all, nor the hop cap; and the
/// optimum must be keyable (below 2^58 msat).
pub(crate) fn search_is_exact(g: &Graph, q: &Query, best: Option<(u64, u32)>) -> bool {
    let Some((best, _)) = best else {
        return true; // no path: the search finds none either (what it finds is valid)
    };
    let active = || g.edges().iter().filter(|e| e.active);
    let room = q.max_delay.saturating_sub(q.deliver_delay);
    let longest = active()
        .map(|e| e.policy.delay)
        .filter(|&d| d <= room)
        .max()
        .unwrap_or(0);
    let edges = g.node_count().saturating_sub(1) as u64;
    active()
        .all(|e| e.policy.htlc_minimum_msat <= q.deliver_msat || e.policy.htlc_minimum_msat > best)
        && edges * u64::from(longest) <= u64::from(room)
        && edges <= u64::from(q.max_edges)
        && best < 1 << 58
}

/// A random liquidity model over some of the graph's edges.
pub(crate) fn model_over(
    g: &Graph,
    picks: &[(prop::sample::Index, u8, u64)],
    now: u64,
) -> Liquidity {
    let mut l = Liquidity::new();
    for (i, what, amount) in picks {
        let e = g.edge(i.index(g.edge_count()) as EdgeIdx);
        let cd = ChanDir::new(e.short_channel_id, e.direction);
        let cap = e.amount_msat;
        let when = now.saturating_sub(u64::from(*what) * 97);
        match what % 7 {
            0 => l.failed(cd, *amount, cap, when, 3600),
            1 => l.forwarded(cd, *amount, cap, when, 3600),
            2 => l.settled(cd, *amount, cap, when, 3600),
            3 => l.exact(cd, *amount, cap, when),
            4 => l.channel_failed(cd, when),
            5 => l.node_failed(&node_name(*amount as usize % 9), when),
            _ => l.in_flight(cd, *amount, true),
        }
    }
    l
}

#[test]
pub(crate) fn fuzz_route_building_on_random_graphs() {
    let tally = Tally::default();
    let cases = (
        prop_oneof![rand_net(5..=8), rand_net(9..=40)],
        prop_oneof![
            6 => 1u64..1_000_000_000,
            1 => 1u64..1000,
            1 => 1_000_000_000u64..10_000_000_000,
            1 => any::<u64>(),
            1 => u64::MAX - 100_000..=u64::MAX,
        ],
        (
            0u64..=1_000_000,
            prop_oneof![0u64..100_000, 0..=MAX_MONEY_MSAT],
        ),
        prop_oneof![8 => Just(21u32), 1 => 0u32..3000, 1 => any::<u32>()],
        prop::collection::vec(
            (any::<prop::sample::Index>(), any::<u8>(), model_amount()),
            0..12,
        ),
        (any::<bool>(), 1u64..100_000, 0u64..5000, 0u64..1000),
    );
    fuzz(
        "route building on random graphs (5-40 nodes)",
        1500,
        cases,
        &tally,
        |(
            net,
            amount,
            (maxfeeppm, exemptfee),
            final_cltv,
            picks,
            (bimodal, hl, risk_base, risk_ppm),
        )| {
            let (g, out_edge, in_edge) = build_graph(&net);
            let us = g.node_idx(&node_name(0)).expect("us");
            let cap = fee_cap_msat(amount, maxfeeppm, exemptfee);
            let plan = match mirror_plan(&g, us, out_edge, in_edge, amount, final_cltv) {
                Ok(p) => p,
                Err(why) => {
                    tally.add(why);
                    return Ok(());
                }
            };
            let mut scratch = Scratch::default();
            // Fee only: valid, and the cheapest on small graphs.
            let fee_only =
                mirror_next_route(&g, &plan, &FeeOnly, amount, final_cltv, &mut scratch)?;
            let fee_only_fee = match &fee_only {
                Some((middle, hops)) => {
                    tally.add("fee-only routes");
                    let fee = check_circle_hops(
                        &g, us, out_edge, in_edge, middle, hops, amount, final_cltv,
                    )?;
                    // check_route: accepted under the cap means never above it.
                    if fee <= cap {
                        tally.add("under the cap");
                    }
                    Some(fee)
                }
                None => {
                    tally.add("no fee-only route");
                    None
                }
            };
            let mut exact_fee = None;
            if g.node_count() <= 8 && !plan.same_peer {
                let best = exhaustive(&g, &plan.query, &plan.exclude)
                    .map_err(|()| TestCaseError::fail("exhaustive over budget"))?;
                let best_fee = best.map(|b| b.0 - amount);
                let found = fee_only_fee;
                // Whatever is found is valid, so never cheaper than the optimum.
                prop_assert!(found.is_none_or(|f| best_fee.is_some_and(|b| f >= b)));
                if search_is_exact(&g, &plan.query, best) {
                    tally.add("= exhaustive optimum");
                    prop_assert_eq!(found, best_fee, "fee-only route is the cheapest");
                } else {
                    tally.add(">= exhaustive optimum (a cap or htlc min may bind)");
                }
                exact_fee = search_is_exact(&g, &plan.query, best).then_some(best_fee);
            }
            // With the liquidity model: valid, never cheaper than the fee-only optimum, every
            // hop priced (P > 0) and the path's extra cost what the model says.
            let now = 1_800_000_000;
            let model = model_over(&g, &picks, now);
            let config = ModelConfig {
                half_life_secs: hl,
                prior: if bimodal {
                    Prior::Bimodal
                } else {
                    Prior::Uniform
                },
                // 0, 5% or 10% depleted, from a draw already made.
                depleted_ppm: (hl % 3) as u32 * 50_000,
                risk_base_msat: risk_base,
                risk_ppm,
            };
            let mut beliefs = Beliefs::default();
            beliefs.rebuild(&g, &model, now, config);
            if !plan.same_peer
                && let Some(p) =
                    find_path_with(&g, &plan.query, &plan.exclude, &beliefs, &mut scratch)
            {
                tally.add("model routes");
                let carried = check_path(&g, &plan.query, &plan.exclude, &p);
                let mut extra = 0u64;
                for (k, &i) in p.edges.iter().enumerate() {
                    let e = g.edge(i);
                    let risk = beliefs.risk_msat(i, e.source, carried[k], e.amount_msat);
                    prop_assert!(risk.is_some(), "a hop the model rules out was used");
                    extra = extra.checked_add(risk.unwrap()).expect("extra fits");
                }
                prop_assert_eq!(p.extra_msat, extra);
                let route =
                    mirror_next_route(&g, &plan, &beliefs, amount, final_cltv, &mut scratch)?
                        .expect("the same search again");
                let fee = check_circle_hops(
                    &g, us, out_edge, in_edge, &route.0, &route.1, amount, final_cltv,
                )?;
                if let Some(Some(f)) = exact_fee {
                    prop_assert!(fee >= f, "the model's route is cheaper than the cheapest");
                }
            }
            Ok(())
        },
    );
    assert!(
        tally.get("fee-only routes") > 50,
        "the sample should mostly route"
    );
    assert!(tally.get("= exhaustive optimum") > 20);
}

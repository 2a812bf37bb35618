//! The flow on hand-made graphs: what it must do case by case (the brute-force comparison is
//! the parent's).

use super::*;

/// The request `Plan` would make between `a` and `b` of `g`, B's last hop free and open.
fn plain<'a>(g: &Graph, a: &str, b: &str, amount: u64, none: &'a Exclusions) -> FlowRequest<'a> {
    FlowRequest {
        from: g.node_idx(a).unwrap(),
        to: g.node_idx(b).unwrap(),
        amount_msat: amount,
        last_hop: policy(1000, 100, 40),
        final_delay: 21,
        max_parts: 4,
        min_part_msat: amount / 10,
        max_fee_msat: amount / 100,
        max_source_msat: u64::MAX,
        exclude: none,
        max_edges: 18,
        max_delay: 2016,
    }
}

/// The single route search exactly as `Plan` runs it for `req` (cap included).
fn single_search<C: crate::core::pathfind::HopCost>(
    g: &Graph,
    req: &FlowRequest,
    cost: &C,
) -> Option<crate::core::pathfind::Path> {
    let query = Query {
        from: req.from,
        to: req.to,
        deliver_msat: req.amount_msat + req.last_hop.fee_msat(req.amount_msat).unwrap(),
        deliver_delay: req.final_delay + req.last_hop.delay,
        max_edges: req.max_edges,
        max_delay: req.max_delay,
        max_amount_msat: req.amount_msat + req.max_fee_msat,
    };
    find_path_with(
        g,
        &query,
        req.exclude,
        cost,
        &mut crate::core::pathfind::Scratch::default(),
    )
}

fn view(g: &Graph, model: &Liquidity) -> Beliefs {
    let mut b = Beliefs::default();
    b.rebuild(g, model, 1000, ModelConfig::default());
    b
}

/// Two disjoint ways a -> d of two hops each, the x way slightly cheaper; channels of
/// `capacity_sat`.
fn two_ways(capacity_sat: u64) -> Graph {
    let mut b = GraphBuilder::default();
    let mut add = |x: &str, y: &str, block: u64, p: Policy| {
        let scid = Scid(block << 40);
        b.add(x, y, scid, u8::from(x > y), true, capacity_sat * SAT, p);
        b.add(y, x, scid, u8::from(y > x), true, capacity_sat * SAT, p);
    };
    add("a", "x", 1, policy(0, 100, 10));
    add("x", "d", 2, policy(0, 100, 10));
    add("a", "y", 3, policy(0, 120, 10));
    add("y", "d", 4, policy(0, 120, 10));
    b.build()
}

/// A graph of `(x, y, capacity_sat, ppm)` channels, both directions with the same policy (no
/// base fee, delay 10), the n-th channel at block n + 1.
fn channels(list: &[(&str, &str, u64, u32)]) -> Graph {
    let mut b = GraphBuilder::default();
    for (n, &(x, y, capacity_sat, ppm)) in list.iter().enumerate() {
        let scid = Scid((n as u64 + 1) << 40);
        let p = policy(0, ppm, 10);
        b.add(x, y, scid, u8::from(x > y), true, capacity_sat * SAT, p);
        b.add(y, x, scid, u8::from(y > x), true, capacity_sat * SAT, p);
    }
    b.build()
}

fn names(g: &Graph, p: &Part) -> Vec<String> {
    let mut v = vec![g.node_id(g.edge(p.edges[0]).source).to_string()];
    v.extend(
        p.edges
            .iter()
            .map(|&e| g.node_id(g.edge(e).destination).to_string()),
    );
    v
}

#[test]
fn one_part_identical_to_the_single_search_when_it_is_best() {
    // 100k sat over 10M-sat channels: splitting only adds base fees and per-hop risk.
    let g = two_ways(10_000_000);
    let none = Exclusions::default();
    let req = plain(&g, "a", "d", 100_000 * SAT, &none);
    let beliefs = view(&g, &Liquidity::new());
    let flow = solve(&g, &req, &beliefs, &mut FlowScratch::default()).unwrap();
    assert_eq!(flow.parts.len(), 1);
    let path = single_search(&g, &req, &beliefs).unwrap();
    assert_eq!(flow.parts[0].edges, path.edges);
    // The same bits as the search priced, at the whole amount's price per bit where the search
    // prices each hop at what it carries (the amount and the fees after it): within 0.1%.
    let (a, b) = (flow.risk_msat as f64, path.extra_msat as f64);
    assert!(a <= b && a >= b * 0.999 - 1.0, "{a} vs {b}");
    // Its hops are what build_route makes, and the fee is theirs.
    let first = HopSpec {
        short_channel_id: Scid(99 << 40),
        direction: 0,
        node_id: "a".into(),
        policy: policy(0, 0, 0),
    };
    let last = HopSpec {
        short_channel_id: Scid(98 << 40),
        direction: 0,
        node_id: "us".into(),
        policy: req.last_hop,
    };
    let hops = flow.parts[0].hops(&g, &first, &last, 21).unwrap();
    assert_eq!(
        crate::core::route::route_fee_msat(&hops),
        flow.parts[0].fee_msat
    );
    assert_eq!(hops[0].amount_msat, flow.parts[0].source_amount_msat);
    assert_eq!(hops[0].delay, flow.parts[0].source_delay);
    check(&g, &req, &beliefs, &flow);
}

#[test]
fn single_search_and_one_part_agree_on_random_graphs() {
    // Wherever the solver answers with one part it is the search's route, and its cost is
    // never above the search's.
    let (mut one, mut split) = (0, 0);
    let mut scratch = FlowScratch::default();
    for seed in 0..300 {
        let case = random_case(seed);
        let req = case.request();
        let Some(path) = single_search(&case.g, &req, &case.beliefs) else {
            continue;
        };
        let searched = path.extra_msat + path.source_amount_msat - req.amount_msat;
        let Ok(flow) = solve(&case.g, &req, &case.beliefs, &mut scratch) else {
            continue;
        };
        let c = check(&case.g, &req, &case.beliefs, &flow);
        let last = &req.last_hop;
        let valid = path.source_amount_msat <= req.max_source_msat
            && req.amount_msat >= last.htlc_minimum_msat
            && req.amount_msat <= last.htlc_maximum_msat;
        if valid {
            assert!(
                c <= searched,
                "seed {seed}: {c} above the single route's {searched}"
            );
        }
        if flow.parts.len() == 1 {
            assert_eq!(flow.parts[0].edges, path.edges, "seed {seed}");
            one += 1;
        } else {
            split += 1;
        }
    }
    assert!(
        one > 20 && split > 20,
        "both kinds occur: {one} single, {split} split"
    );
}

#[test]
fn splits_when_one_route_cannot_carry() {
    // Each way can carry 600k sat: 1M sat needs both.
    let g = two_ways(10_000_000);
    let none = Exclusions::default();
    let req = plain(&g, "a", "d", 1_000_000 * SAT, &none);
    let capacity = |_| 600_000 * SAT;
    let oracle = KnownBalances(capacity);
    let flow = cheapest_set(&g, &req, capacity, &mut FlowScratch::default()).unwrap();
    let ways: Vec<Vec<String>> = flow.parts.iter().map(|p| names(&g, p)).collect();
    assert_eq!(ways, [["a", "x", "d"], ["a", "y", "d"]]);
    // As much as fits on the cheaper way.
    assert!(flow.parts[0].amount_msat > 590_000 * SAT);
    assert_eq!(
        flow.parts.iter().map(|p| p.amount_msat).sum::<u64>(),
        req.amount_msat
    );
    check(&g, &req, &oracle, &flow);
    // One part only: nothing carries it.
    let one = FlowRequest {
        max_parts: 1,
        ..req.clone()
    };
    assert_eq!(
        cheapest_set(&g, &one, capacity, &mut FlowScratch::default()),
        Err(NoFlow::NoPath)
    );
}

#[test]
fn splits_when_likelier_though_one_route_fits() {
    // 5M sat over 6M-sat channels nothing is known of: one route takes 5/6 of each channel
    // (P about 0.16 a hop); two halves on disjoint ways are each far likelier (0.56 a hop),
    // for the last hop's base fee again and the part penalty.
    let g = two_ways(6_000_000);
    let none = Exclusions::default();
    let req = FlowRequest {
        max_fee_msat: 5_000 * SAT,
        ..plain(&g, "a", "d", 5_000_000 * SAT, &none)
    };
    let beliefs = view(&g, &Liquidity::new());
    let flow = solve(&g, &req, &beliefs, &mut FlowScratch::default()).unwrap();
    assert_eq!(flow.parts.len(), 2, "{flow:?}");
    let single = single_search(&g, &req, &beliefs).unwrap();
    let single_cost = single.extra_msat + single.source_amount_msat - req.amount_msat;
    assert!(flow.cost_msat() < single_cost);
    assert!(flow.probability > beliefs_probability(&g, &beliefs, &single.edges, &req));
    check(&g, &req, &beliefs, &flow);
    // With one part allowed, the single route.
    let one = FlowRequest {
        max_parts: 1,
        ..req.clone()
    };
    let flow = solve(&g, &one, &beliefs, &mut FlowScratch::default()).unwrap();
    assert_eq!(flow.parts.len(), 1);
    assert_eq!(flow.parts[0].edges, single.edges);
}

/// The model's probability of one route carrying the request's amount.
fn beliefs_probability(g: &Graph, b: &Beliefs, edges: &[EdgeIdx], req: &FlowRequest) -> f64 {
    let mut amount = req.amount_msat + req.last_hop.fee_msat(req.amount_msat).unwrap();
    let mut p = 1.0;
    for &e in edges.iter().rev() {
        p *= b.probability(g, e, g.edge(e).source, amount);
        amount += g.edge(e).policy.fee_msat(amount).unwrap();
    }
    p
}

#[test]
fn an_htlc_maximum_below_the_amount_splits_one_path() {
    let mut b = GraphBuilder::default();
    let mut small = policy(0, 100, 10);
    small.htlc_maximum_msat = 400_000 * SAT;
    chan(&mut b, "a", "x", 1, small);
    chan(&mut b, "x", "d", 2, policy(0, 100, 10));
    let g = b.build();
    let none = Exclusions::default();
    let req = plain(&g, "a", "d", 1_000_000 * SAT, &none);
    let beliefs = view(&g, &Liquidity::new());
    let flow = solve(&g, &req, &beliefs, &mut FlowScratch::default()).unwrap();
    assert_eq!(flow.parts.len(), 3);
    assert!(flow.parts.iter().all(|p| p.edges == flow.parts[0].edges));
    assert!(flow.parts.iter().all(|p| p.amount_msat <= 400_000 * SAT));
    check(&g, &req, &beliefs, &flow);
    // Two parts cannot do it.
    let two = FlowRequest {
        max_parts: 2,
        ..req.clone()
    };
    assert!(matches!(
        solve(&g, &two, &beliefs, &mut FlowScratch::default()),
        Err(NoFlow::NoPath | NoFlow::Insufficient)
    ));
}

#[test]
fn parts_at_the_last_hops_htlc_maximum_go_over_different_ways() {
    // Three equal ways of 1M-sat channels; the incoming peer forwards at most 500k sat an
    // HTLC, so 1M sat is two parts of exactly its maximum. Two on one way would be 1M sat and
    // fees over a 1M-sat channel: the parts sit at the maximum and re-balancing cannot move
    // that excess, yet such sets looked cheapest at first (the model prices no risk past the
    // capacity), one per way, and crowded the within-limits sets out of the shortlist.
    let g = channels(&[
        ("a", "x", 1_000_000, 100),
        ("x", "d", 1_000_000, 100),
        ("a", "y", 1_000_000, 100),
        ("y", "d", 1_000_000, 100),
        ("a", "z", 1_000_000, 100),
        ("z", "d", 1_000_000, 100),
    ]);
    let none = Exclusions::default();
    let mut req = plain(&g, "a", "d", 1_000_000 * SAT, &none);
    req.last_hop.htlc_maximum_msat = 500_000 * SAT;
    let beliefs = view(&g, &Liquidity::new());
    let flow = solve(&g, &req, &beliefs, &mut FlowScratch::default()).unwrap();
    assert_eq!(flow.parts.len(), 2);
    assert_ne!(names(&g, &flow.parts[0]), names(&g, &flow.parts[1]));
    assert!(flow.parts.iter().all(|p| p.amount_msat == 500_000 * SAT));
    check(&g, &req, &beliefs, &flow);
}

#[test]
fn limits_of_the_request_hold() {
    let g = two_ways(10_000_000);
    let none = Exclusions::default();
    let beliefs = view(&g, &Liquidity::new());
    let base = FlowRequest {
        max_fee_msat: 5_000 * SAT,
        ..plain(&g, "a", "d", 5_000_000 * SAT, &none)
    };
    // A minimum part above half the amount leaves one part.
    let req = FlowRequest {
        min_part_msat: 2_600_000 * SAT,
        ..base.clone()
    };
    let flow = solve(&g, &req, &beliefs, &mut FlowScratch::default()).unwrap();
    assert_eq!(flow.parts.len(), 1);
    // A fee cap below every route: over the cap, and it says by how much.
    let req = FlowRequest {
        max_fee_msat: 1_000,
        ..base.clone()
    };
    match solve(&g, &req, &beliefs, &mut FlowScratch::default()) {
        Err(NoFlow::OverFeeCap { fee_msat }) => assert!(fee_msat > 1_000),
        other => panic!("{other:?}"),
    }
    // What A can be sent in all binds: the parts' sources sum within it.
    let one_route_source = single_search(&g, &base, &beliefs)
        .unwrap()
        .source_amount_msat;
    let req = FlowRequest {
        max_source_msat: one_route_source + 500,
        ..base.clone()
    };
    if let Ok(flow) = solve(&g, &req, &beliefs, &mut FlowScratch::default()) {
        let sent: u64 = flow.parts.iter().map(|p| p.source_amount_msat).sum();
        assert!(sent <= req.max_source_msat);
    }
    // An edge found unable to carry 3M sat: the parts over it stay below in all.
    let ax = g.edge_by_scid(Scid(1 << 40), u8::from("a" > "x")).unwrap();
    let mut ex = Exclusions::default();
    ex.max_amount_msat.insert(ax, 3_000_000 * SAT);
    let req = FlowRequest {
        exclude: &ex,
        ..base.clone()
    };
    let flow = solve(&g, &req, &beliefs, &mut FlowScratch::default()).unwrap();
    check(&g, &req, &beliefs, &flow);
    // Nonsense is refused with a reason.
    for bad in [
        FlowRequest {
            amount_msat: 0,
            ..base.clone()
        },
        FlowRequest {
            max_parts: 0,
            ..base.clone()
        },
        FlowRequest {
            final_delay: 3000,
            ..base.clone()
        },
    ] {
        assert!(matches!(
            solve(&g, &bad, &beliefs, &mut FlowScratch::default()),
            Err(NoFlow::Invalid(_))
        ));
    }
}

#[test]
fn the_same_peer_goes_straight_back() {
    let g = two_ways(10_000_000);
    let none = Exclusions::default();
    let mut req = plain(&g, "x", "x", 1_000_000 * SAT, &none);
    req.last_hop.htlc_maximum_msat = 400_000 * SAT;
    let flow = solve(
        &g,
        &req,
        &view(&g, &Liquidity::new()),
        &mut FlowScratch::default(),
    );
    let flow = flow.unwrap();
    assert_eq!(flow.parts.len(), 3);
    assert!(flow.parts.iter().all(|p| p.edges.is_empty()));
    assert_eq!(
        flow.parts.iter().map(|p| p.amount_msat).sum::<u64>(),
        req.amount_msat
    );
    let fee: u64 = flow
        .parts
        .iter()
        .map(|p| req.last_hop.fee_msat(p.amount_msat).unwrap())
        .sum();
    assert_eq!(flow.fee_msat, fee);
}

#[test]
fn same_input_same_output_whatever_came_before() {
    let mut scratch = FlowScratch::default();
    let firsts: Vec<_> = (0..40)
        .map(|seed| {
            let case = random_case(seed);
            solve(&case.g, &case.request(), &case.beliefs, &mut scratch)
        })
        .collect();
    // Again in reverse order on the same scratch, and each on a fresh one.
    for seed in (0..40).rev() {
        let case = random_case(seed);
        let again = solve(&case.g, &case.request(), &case.beliefs, &mut scratch);
        assert_eq!(again, firsts[seed as usize], "seed {seed}");
        let fresh = solve(
            &case.g,
            &case.request(),
            &case.beliefs,
            &mut FlowScratch::default(),
        );
        assert_eq!(fresh, firsts[seed as usize], "seed {seed}");
    }
}

#[test]
fn the_most_that_moves_within_the_cap() {
    // 600k sat on the x way, 300k on the y way: at most about 900k sat moves, less the fees.
    let g = two_ways(10_000_000);
    let none = Exclusions::default();
    let req = FlowRequest {
        min_part_msat: 10_000 * SAT,
        ..plain(&g, "a", "d", 5_000_000 * SAT, &none)
    };
    let ax = g.edge_by_scid(Scid(1 << 40), u8::from("a" > "x")).unwrap();
    let xd = g.edge_by_scid(Scid(2 << 40), u8::from("x" > "d")).unwrap();
    let capacity = |e: EdgeIdx| {
        if e == ax || e == xd {
            600_000 * SAT
        } else {
            300_000 * SAT
        }
    };
    let cap = |amount: u64| crate::core::amount::fee_cap_msat(amount, 1000, 5000);
    let mut scratch = FlowScratch::default();
    let most = max_flow_within_cap(&g, &req, capacity, cap, SAT, &mut scratch).unwrap();
    let moved: u64 = most.parts.iter().map(|p| p.amount_msat).sum();
    assert!(moved <= 900_000 * SAT && moved > 899_000 * SAT, "{moved}");
    assert!(most.fee_msat <= cap(moved));
    // One part more than that is refused.
    let over = FlowRequest {
        amount_msat: moved + 2 * SAT,
        max_fee_msat: cap(moved + 2 * SAT),
        ..req.clone()
    };
    assert!(cheapest_set(&g, &over, capacity, &mut scratch).is_err());
    // Nothing moves when a way is shut and the other closed.
    assert!(max_flow_within_cap(&g, &req, |_| 0, cap, SAT, &mut scratch).is_none());
    // Base fees of 10 sat a hop: below 20k sat the cap's floor (5 sat, then 1000 ppm) is less
    // than the fees, so small amounts cannot move while larger ones can, up to what the x way
    // carries (the y way is shut): found from above.
    let mut b = GraphBuilder::default();
    chan(&mut b, "a", "x", 1, policy(10_000, 0, 10));
    chan(&mut b, "x", "d", 2, policy(10_000, 0, 10));
    let g = b.build();
    let req = FlowRequest {
        last_hop: policy(0, 0, 40),
        ..req.clone()
    };
    let req = FlowRequest {
        from: g.node_idx("a").unwrap(),
        to: g.node_idx("d").unwrap(),
        ..req
    };
    let small = FlowRequest {
        amount_msat: 10_000 * SAT,
        max_fee_msat: cap(10_000 * SAT),
        ..req.clone()
    };
    assert!(matches!(
        cheapest_set(&g, &small, |_| 600_000 * SAT, &mut scratch),
        Err(NoFlow::OverFeeCap { .. })
    ));
    let most = max_flow_within_cap(&g, &req, |_| 600_000 * SAT, cap, SAT, &mut scratch).unwrap();
    let moved: u64 = most.parts.iter().map(|p| p.amount_msat).sum();
    assert!(moved <= 600_000 * SAT && moved > 598_000 * SAT, "{moved}");
}

#[test]
fn a_route_within_the_cap_the_risk_weighed_search_misses_is_still_found() {
    // From m two ways to d: straight (200 sat in fees, a roomy channel) or via y (free, over
    // a 1.02M-sat channel the model finds risky for 1M sat). The search keeps one label at m,
    // the likelier straight one; a -> m adds 150 sat, and the 300-sat cap then refuses it at
    // a, where the way via y (150 sat in all) would fit. Like `Plan`, which falls back to a
    // fee-only search, the solver finds that way.
    let g = channels(&[
        ("a", "m", 100_000_000, 150),
        ("m", "d", 100_000_000, 200),
        ("m", "y", 1_020_000, 0),
        ("y", "d", 100_000_000, 0),
    ]);
    let none = Exclusions::default();
    let req = FlowRequest {
        max_parts: 1,
        max_fee_msat: 300 * SAT,
        last_hop: policy(0, 0, 40),
        ..plain(&g, "a", "d", 1_000_000 * SAT, &none)
    };
    let beliefs = view(&g, &Liquidity::new());
    let missed = single_search(&g, &req, &beliefs);
    assert!(missed.is_none(), "the capped search misses it: {missed:?}");
    let flow = solve(&g, &req, &beliefs, &mut FlowScratch::default()).unwrap();
    assert_eq!(names(&g, &flow.parts[0]), ["a", "m", "y", "d"]);
    assert_eq!(flow.fee_msat, 150 * SAT);
    check(&g, &req, &beliefs, &flow);
}

#[test]
fn the_fee_leash_keeps_the_risk_from_buying_a_dear_way() {
    // Two ways a -> d: via x, 100 ppm a hop over 2M-sat channels the model finds risky for
    // 1M sat (P about 0.48 a hop); via y, 190 ppm a hop over roomy channels. Without a leash
    // the risk buys the way via y (about 481 sat against 301 in fees, risk 15 against 216
    // sat); with the fee held to 150% of the cheapest route's, the set keeps within it.
    let g = channels(&[
        ("a", "x", 2_000_000, 100),
        ("x", "d", 2_000_000, 100),
        ("a", "y", 100_000_000, 190),
        ("y", "d", 100_000_000, 190),
    ]);
    let none = Exclusions::default();
    let req = plain(&g, "a", "d", 1_000_000 * SAT, &none);
    let beliefs = view(&g, &Liquidity::new());
    let cheapest = single_search(&g, &req, &crate::core::pathfind::FeeOnly).unwrap();
    let cheapest_fee = cheapest.source_amount_msat - req.amount_msat;
    let free = solve(&g, &req, &beliefs, &mut FlowScratch::default()).unwrap();
    assert_eq!(free.parts.len(), 1, "{free:?}");
    assert_eq!(names(&g, &free.parts[0]), ["a", "y", "d"]);
    assert!(
        free.fee_msat * 2 > cheapest_fee * 3,
        "{} {cheapest_fee}",
        free.fee_msat
    );
    let leashed_config = FlowConfig {
        fee_leash_pct: 150,
        fee_leash_ppm: 0,
        ..default_config()
    };
    let leashed = solve_with(
        &g,
        &req,
        &beliefs,
        &leashed_config,
        &mut FlowScratch::default(),
    )
    .unwrap();
    assert!(
        leashed.fee_msat * 2 <= cheapest_fee * 3,
        "{} {cheapest_fee}",
        leashed.fee_msat
    );
    assert!(leashed.parts.iter().any(|p| names(&g, p)[1] == "x"));
    check(&g, &req, &beliefs, &leashed);
    // A leash looser than the dear way's fee changes nothing.
    let loose = FlowConfig {
        fee_leash_pct: 300,
        ..leashed_config
    };
    let same = solve_with(&g, &req, &beliefs, &loose, &mut FlowScratch::default()).unwrap();
    assert_eq!(same.parts, free.parts);
}

#[test]
fn replacements_split_where_the_part_penalty_would_not() {
    // 1M sat over two ways of 1.65M-sat channels: halves on both ways are likelier than the
    // whole on one (about 0.47 bits, 48 sat at 1M sat's price) for about 21 sat more in
    // fees: less than the part penalty (51 sat), so a plan is one route; a replacement part,
    // planned without the penalty, splits.
    let g = two_ways(1_650_000);
    let none = Exclusions::default();
    let req = plain(&g, "a", "d", 1_000_000 * SAT, &none);
    let beliefs = view(&g, &Liquidity::new());
    let plan = solve(&g, &req, &beliefs, &mut FlowScratch::default()).unwrap();
    assert_eq!(plan.parts.len(), 1, "{plan:?}");
    let replacement = solve_with(
        &g,
        &req,
        &beliefs,
        &replacement_config(),
        &mut FlowScratch::default(),
    )
    .unwrap();
    assert_eq!(replacement.parts.len(), 2, "{replacement:?}");
    assert!(replacement.cost_msat() < plan.cost_msat());
    check(&g, &req, &beliefs, &replacement);
}

mod harder; // a split the default chunks miss, found searching harder
mod hops; // a price on hops: shorter routes
mod urgent; // the risk weighed double near the deadline

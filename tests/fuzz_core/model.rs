//! The liquidity model: operation sequences against bounds rules, a kept search view against a fresh one, the probability functions.

use super::*;

pub(crate) fn probability_amounts(cap: u64, extra: u64) -> Vec<u64> {
    let mut v = vec![
        0,
        1,
        cap / 4,
        cap / 2,
        cap.saturating_sub(1),
        cap,
        cap.saturating_add(1),
        u64::MAX,
        extra,
        extra % cap.max(1),
    ];
    v.sort_unstable();
    v
}

/// Bounds within `[0, cap]` and the same at any time, their weight in `[0, 1]` and fading
/// (monotone, to nothing after many half-lives, when P is the prior's), probabilities in
/// `[0, 1]` and non-increasing in the amount, at `now` and later.
pub(crate) fn check_model(
    l: &Liquidity,
    caps: &[u64; 3],
    now: u64,
    half_life: u64,
    extra: u64,
) -> Result<(), TestCaseError> {
    for (cd, min, max, _, _) in l.entries() {
        prop_assert!(
            max.is_none_or(|m| min <= m),
            "stored min above max: {:?}",
            cd
        );
    }
    let later = [
        now,
        now.saturating_add(half_life / 2),
        now.saturating_add(half_life),
        now.saturating_add(half_life.saturating_mul(10)),
        u64::MAX,
    ];
    for i in 0..MODEL_DIRS {
        let cd = model_cd(i);
        let cap = caps[i / 2];
        let mut prev: Option<(Bounds, f64)> = None;
        for &t in &later {
            let (b, w) = l.bounds(cd, cap, t, half_life);
            prop_assert!(
                b.min_msat <= b.max_msat && b.max_msat <= cap,
                "bounds {:?} of {:?} outside [0, {}] at {}",
                b,
                cd,
                cap,
                t
            );
            prop_assert!((0.0..=1.0).contains(&w), "weight {} of {:?}", w, cd);
            if let Some((pb, pw)) = prev {
                prop_assert!(
                    b == pb && w <= pw,
                    "bounds moved or weight grew for {:?}: {:?} then {:?}",
                    cd,
                    (pb, pw),
                    (b, w)
                );
            }
            prev = Some((b, w));
            for (prior, depleted_ppm) in [
                (Prior::Uniform, 0),
                (Prior::Uniform, 40_000),
                (Prior::Bimodal, 0),
                (Prior::Bimodal, 40_000),
            ] {
                let config = ModelConfig {
                    half_life_secs: half_life,
                    prior,
                    depleted_ppm,
                    ..ModelConfig::default()
                };
                let mut last = 1.0f64;
                for a in probability_amounts(cap, extra) {
                    let p = l.probability(cd, a, cap, t, &config);
                    prop_assert!(
                        (0.0..=1.0).contains(&p),
                        "P = {} for {} over {:?}",
                        p,
                        a,
                        cd
                    );
                    prop_assert!(
                        p <= last,
                        "P grows with the amount: {} at {} after {}",
                        p,
                        a,
                        last
                    );
                    last = p;
                }
            }
        }
        // Long after the last update what was learned no longer counts: P is the prior's.
        if let Some(e) = l.entries().iter().find(|e| e.0 == cd) {
            let h = half_life.max(1);
            let t = h.checked_mul(200).and_then(|d| e.3.max(e.4).checked_add(d));
            if let Some(t) = t {
                let (_, w) = l.bounds(cd, cap, t, half_life);
                prop_assert!(w < 1e-50, "weight {} after 200 half-lives", w);
                let config = ModelConfig {
                    half_life_secs: half_life,
                    ..ModelConfig::default()
                };
                for a in probability_amounts(cap, extra) {
                    let (p, prior) = (
                        l.probability(cd, a, cap, t, &config),
                        config.prior_probability(a.saturating_add(l.in_flight_msat(cd)), cap),
                    );
                    prop_assert!(
                        (p - prior).abs() < 1e-9,
                        "P {} of {:?} not the prior's {} after 200 half-lives",
                        p,
                        cd,
                        prior
                    );
                }
            }
        }
    }
    Ok(())
}

#[test]
pub(crate) fn fuzz_liquidity_model_sequences() {
    let tally = Tally::default();
    let cases = (
        prop::collection::vec(model_op(), 1..40),
        model_capacities(),
        0u64..2_000_000_000,
        prop_oneof![4 => Just(3600u64), 2 => 1u64..1_000_000, 1 => Just(0u64), 1 => Just(u64::MAX)],
        any::<u64>(),
    );
    fuzz(
        "liquidity model op sequences",
        1500,
        cases,
        &tally,
        |(ops, caps, start, hl, extra)| {
            let (l, _) = apply_ops(&ops, &caps, start, hl, |l, now| {
                tally.add("ops");
                check_model(l, &caps, now, hl, extra)
            })?;
            check_idempotent(&l)?;
            Ok(())
        },
    );
}

/// The graph of the model ops' three channels (both directions), between pool nodes, so the
/// ops' node failures land on the hops out of them.
pub(crate) fn model_graph(caps: &[u64; 3]) -> Graph {
    let pool = node_id_pool();
    let mut b = GraphBuilder::default();
    let free = Policy {
        base_fee_millisatoshi: 0,
        fee_per_millionth: 0,
        delay: 0,
        htlc_minimum_msat: 0,
        htlc_maximum_msat: u64::MAX,
    };
    for c in 0..3 {
        let (x, y) = (&pool[c], &pool[c + 1]);
        for d in 0..2 {
            let cd = model_cd(2 * c + d);
            let (src, dst) = if d == 0 { (x, y) } else { (y, x) };
            b.add(
                src,
                dst,
                cd.short_channel_id,
                cd.direction,
                true,
                caps[c],
                free,
            );
        }
    }
    b.build()
}

/// A view kept from one search to the next catches up with the model's change log; after
/// every op (and at every clock reading the ops move to) it must price every edge, at every
/// amount, exactly as a view built afresh from the model does.
#[test]
pub(crate) fn fuzz_liquidity_kept_view_matches_a_fresh_one() {
    let tally = Tally::default();
    let cases = (
        prop::collection::vec(model_op(), 1..60),
        model_capacities(),
        0u64..2_000_000_000,
        prop_oneof![4 => Just(3600u64), 2 => 1u64..1_000_000, 1 => Just(0u64)],
        prop::collection::vec(model_amount(), 1..4),
        any::<bool>(),
    );
    fuzz(
        "kept search view = fresh view",
        1500,
        cases,
        &tally,
        |(ops, caps, start, hl, amounts, bimodal)| {
            let g = model_graph(&caps);
            let config = ModelConfig {
                half_life_secs: hl,
                prior: if bimodal {
                    Prior::Bimodal
                } else {
                    Prior::Uniform
                },
                ..ModelConfig::default()
            };
            let mut kept = Beliefs::default();
            apply_ops(&ops, &caps, start, hl, |l, now| {
                // Not after every op: a view also catches up over several changes at once.
                if now % 3 == 0 {
                    return Ok(());
                }
                kept.rebuild(&g, l, now, config);
                let mut fresh = Beliefs::default();
                fresh.rebuild(&g, l, now, config);
                tally.add("compared");
                for i in 0..g.edge_count() as EdgeIdx {
                    let e = g.edge(i);
                    for &a in &amounts {
                        let (k, f) = (
                            kept.risk_msat(i, e.source, a, e.amount_msat),
                            fresh.risk_msat(i, e.source, a, e.amount_msat),
                        );
                        prop_assert_eq!(k, f, "edge {} amount {} at {}", i, a, now);
                    }
                }
                Ok(())
            })?;
            Ok(())
        },
    );
    assert!(tally.get("compared") > 1000);
}

#[test]
pub(crate) fn fuzz_liquidity_probability_functions() {
    let tally = Tally::default();
    let cases = (
        model_amount(),
        model_amount(),
        model_amount(),
        prop::collection::vec(model_amount(), 1..8),
        (0u64..10_000, 0u64..10_000),
    );
    fuzz(
        "success_probability / prior / risk",
        3000,
        cases,
        &tally,
        |(cap, x, y, mut amounts, (base, ppm))| {
            let max = x.min(cap);
            let min = y.min(max);
            let b = Bounds {
                min_msat: min,
                max_msat: max,
            };
            amounts.sort_unstable();
            let config = ModelConfig {
                risk_base_msat: base,
                risk_ppm: ppm,
                ..ModelConfig::default()
            };
            for prior in [Prior::Uniform, Prior::Bimodal] {
                let (mut last_p, mut last_prior) = (1.0f64, 1.0f64);
                for &a in &amounts {
                    let p = success_probability(prior, a, b, cap);
                    prop_assert!(
                        (0.0..=1.0).contains(&p) && p <= last_p,
                        "P({}) = {} after {}",
                        a,
                        p,
                        last_p
                    );
                    last_p = p;
                    let q = prior_probability(prior, a, cap);
                    prop_assert!((0.0..=1.0).contains(&q) && q <= last_prior);
                    last_prior = q;
                    let r = risk_msat(&config, a, p);
                    prop_assert_eq!(r.is_some(), p > 0.0);
                    tally.add(if r.is_some() { "priced" } else { "ruled out" });
                }
            }
            Ok(())
        },
    );
}

//! Background probing in-process over the stand-in's network model: off by default it sends
//! nothing; on, idle time sends probes along the routes the planned moves would take and the
//! model learns; nothing while a rebalance runs, and a probe asked for waits out the one in
//! flight while background probing gives way; the hourly budget and the locked limit hold;
//! nothing is left behind (no HTLC, no invoice, no balance moved).

mod common;

use cln_rebalance::clock::ManualClock;
use cln_rebalance::config::Config;
use cln_rebalance::params::{LiquidityParams, RebalanceParams};
use cln_rebalance::state::State;
use cln_standin::simnet::Network;
use common::{SimNode, assert_clean, hand_made, hooked};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const SAT: u64 = 1000;
const START_MS: u64 = 1_770_000_000_000;
/// Our four channels: two sources (90%, 80% ours), two sinks (20%, 10%).
const OURS: [(&str, u64); 4] = [
    ("800001x1x0", 90),
    ("800002x1x0", 80),
    ("800003x1x0", 20),
    ("800004x1x0", 10),
];

fn node_id(i: usize) -> String {
    format!("02{:064x}", i + 1)
}

/// Us with four channels of 1M sat to peers 1..=4 at 90/80/20/10 % ours; the peers joined
/// each to each by channels of 1M sat (half on each side, cheap), so the model's prior is
/// unsure of the planned moves (a few hundred thousand sat) until something is learned. The
/// direct channel from peer 1 to peer 4 is drained on peer 1's side: a probe over it fails.
fn network() -> Network {
    let mut nodes = vec![json!({"id": node_id(0), "alias": "us"})];
    for i in 1..=4 {
        nodes.push(json!({"id": node_id(i), "alias": format!("peer{i}")}));
    }
    let cheap =
        json!({"fee_base_msat": 0, "fee_proportional_millionths": 10, "cltv_expiry_delta": 18});
    let ours =
        json!({"fee_base_msat": 1000, "fee_proportional_millionths": 200, "cltv_expiry_delta": 18});
    let mut channels = Vec::new();
    for (k, (scid, share)) in OURS.iter().enumerate() {
        channels.push(json!({
            "short_channel_id": scid, "node1": "us", "node2": format!("peer{}", k + 1),
            "capacity_sat": 1_000_000, "node1_msat": 1_000_000 * SAT * share / 100,
            "policy1": ours, "policy2": cheap,
        }));
    }
    let mut n = 0;
    for a in 1..=4usize {
        for b in (a + 1)..=4 {
            n += 1;
            let mut c = json!({
                "short_channel_id": format!("700{n:03}x1x0"), "node1": format!("peer{a}"),
                "node2": format!("peer{b}"), "capacity_sat": 1_000_000,
                "policy1": cheap, "policy2": cheap,
            });
            if (a, b) == (1, 4) {
                c["node1_msat"] = json!(0);
            }
            channels.push(c);
        }
    }
    hand_made(nodes, cheap, channels)
}

fn on(per_hour: u32, max_locked_msat: u64) -> Config {
    Config {
        probe_per_hour: per_hour,
        probe_max_locked_msat: max_locked_msat,
        ..Config::default()
    }
}

fn setup(config: Config) -> (Arc<State<SimNode>>, SimNode, Arc<ManualClock>) {
    let node = SimNode::new(network());
    let clock = Arc::new(ManualClock::new(START_MS));
    let r = hooked(node.clone(), config, clock.clone());
    (r, node, clock)
}

fn balances(node: &SimNode) -> Value {
    node.channel_state()
}

/// Every payment the network saw (the stand-in's own list).
fn payments(node: &SimNode) -> Vec<Value> {
    node.call("dev-state", json!({})).unwrap()["payments"]
        .as_array()
        .expect("payments")
        .clone()
}

/// Every sendpay so far: (first hop's channel, last hop's channel, first hop's amount).
fn probes_sent(node: &SimNode) -> Vec<(String, String, u64)> {
    payments(node)
        .iter()
        .map(|s| {
            assert_eq!(s["status"], "failed", "a probe never pays: {s}");
            let route = s["route"].as_array().expect("route");
            let scid = |h: &Value| h["channel"].as_str().unwrap_or_default().to_string();
            (
                scid(&route[0]),
                scid(route.last().unwrap()),
                route[0]["amount_msat"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Channel directions (not ours) the model learned something of.
async fn learned(r: &State<SimNode>) -> (usize, Value) {
    let v = r
        .liquidity_report(LiquidityParams {
            short_channel_id: None,
            reset: false,
        })
        .await
        .unwrap();
    let n = v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["short_channel_id"].as_str().unwrap().starts_with("700"))
        .filter(|c| c.get("learned_min_msat").is_some())
        .count();
    (n, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_it_sends_nothing() {
    let (r, node, clock) = setup(Config::default());
    assert_eq!(Config::default().probe_per_hour, 0);
    for _ in 0..3 {
        clock.advance_ms(3_600_000);
        let round = r.probe_planned_moves().await;
        assert_eq!(round.probes, 0, "{round:?}");
    }
    assert!(payments(&node).is_empty(), "{:?}", payments(&node));
    assert_eq!(learned(&r).await.0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_time_probes_the_planned_routes_and_the_model_learns() {
    let (r, node, clock) = setup(on(60, 5_000_000 * SAT));
    let before = balances(&node);
    assert_eq!(learned(&r).await.0, 0);
    clock.advance_ms(60_000);
    let round = r.probe_planned_moves().await;
    assert!(round.probes > 0 && round.moves_probed > 0, "{round:?}");
    // Every probe went out through a source of the plan and came back through a sink.
    let sources: HashSet<&str> = ["800001x1x0", "800002x1x0"].into();
    let sinks: HashSet<&str> = ["800003x1x0", "800004x1x0"].into();
    let sent = probes_sent(&node);
    assert_eq!(sent.len() as u32, round.probes);
    for (first, last, _) in &sent {
        assert!(sources.contains(first.as_str()), "{sent:?}");
        assert!(sinks.contains(last.as_str()), "{sent:?}");
    }
    // The model learned the channels between the peers, and says how many probes went out.
    let (n, v) = learned(&r).await;
    assert!(n > 0, "{v}");
    assert_eq!(v["background_probing"]["probes_last_hour"], round.probes);
    assert_eq!(v["background_probing"]["probes_per_hour"], 60);
    // Nothing moved, nothing left behind.
    assert_eq!(balances(&node), before);
    assert!(node.invoices().is_empty(), "{:?}", node.invoices());
    assert_clean(&node);
    // A job after it: the planned move's first attempt goes the way the probes proved.
    let moves = round.moves_found;
    assert!(
        moves > 0,
        "a planned move was found to move whole: {round:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hourly_budget_and_the_locked_limit_hold() {
    let locked = 150_000 * SAT;
    let (r, node, clock) = setup(on(3, locked));
    let first = r.probe_planned_moves().await;
    assert!(first.probes > 0 && first.probes <= 3, "{first:?}");
    // The rest of the hour: never more than 3 in all, whatever the rounds.
    let mut total = first.probes;
    for _ in 0..5 {
        clock.advance_ms(300_000);
        r.reset_liquidity(None).await; // unsure again: it would probe if it could
        total += r.probe_planned_moves().await.probes;
    }
    assert_eq!(total, 3, "the hour's budget, all of it and no more");
    assert_eq!(probes_sent(&node).len(), 3);
    // An hour after the first probes, the budget is back.
    clock.advance_ms(3_600_000);
    r.reset_liquidity(None).await;
    let later = r.probe_planned_moves().await;
    assert!(later.probes > 0 && later.probes <= 3, "{later:?}");
    // No probe locked more than the limit (its amount with the fees of its route).
    for (_, _, amount) in probes_sent(&node) {
        assert!(amount <= locked, "{amount} > {locked}");
        assert!(
            amount >= 100_000 * SAT,
            "probed at what the limit allows: {amount}"
        );
    }
    assert_clean(&node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_while_a_rebalance_runs() {
    let (r, node, _clock) = setup(on(60, 5_000_000 * SAT));
    // Held at every peer, a rebalance stays in flight while background probing is asked to run.
    for n in ["peer1", "peer2", "peer3", "peer4"] {
        node.call("dev-hold", json!({"node": n})).unwrap();
    }
    let running = {
        let r = r.clone();
        tokio::spawn(async move {
            r.rebalance(RebalanceParams {
                outgoing: "800001x1x0".into(),
                incoming: "800004x1x0".into(),
                amount_msat: Some(100_000 * SAT),
                maxfeeppm: Some(1000),
                exemptfee: None,
                retry_for: Some(30),
                dryrun: false,
                maxparts: Some(1),
                amount_max: false,
            })
            .await
        })
    };
    let mut in_flight = false;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if node.pending_htlcs() > 0 {
            in_flight = true;
            break;
        }
    }
    assert!(in_flight, "the rebalance's HTLC went out");
    let sent_before = payments(&node).len();
    assert!(!r.background_idle());
    let round = r.probe_planned_moves().await;
    assert_eq!(round.probes, 0, "{round:?}");
    assert_eq!(payments(&node).len(), sent_before, "no probe while it runs");
    for n in ["peer1", "peer2", "peer3", "peer4"] {
        node.call("dev-release", json!({"node": n})).unwrap();
    }
    let done = running.await.unwrap().unwrap();
    assert_eq!(done["status"], "complete", "{done}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Idle again: it probes.
    assert!(r.background_idle());
    let after = r.probe_planned_moves().await;
    assert!(after.probes > 0, "{after:?}");
    assert_clean(&node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_asked_for_waits_out_the_background_probe_and_background_probing_yields() {
    let (r, node, _clock) = setup(on(60, 5_000_000 * SAT));
    for n in ["peer1", "peer2", "peer3", "peer4"] {
        node.call("dev-hold", json!({"node": n})).unwrap();
    }
    let background = {
        let r = r.clone();
        tokio::spawn(async move { r.probe_planned_moves().await })
    };
    let mut out = None;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if node.pending_htlcs() > 0 {
            out = payments(&node).first().map(|p| {
                let route = p["route"].as_array().unwrap();
                let scid = |h: &Value| h["channel"].as_str().unwrap().to_string();
                (scid(&route[0]), scid(route.last().unwrap()))
            });
            break;
        }
    }
    let (outgoing, incoming) = out.expect("a background probe went out");
    // Asked for on the very channel the background probe holds: it waits, then runs.
    let asked = {
        let r = r.clone();
        tokio::spawn(async move {
            r.rebalance_probe(
                cln_rebalance::params::ProbeParams {
                    outgoing,
                    incoming,
                    amount_msat: Some(100_000 * SAT),
                    maxfeeppm: Some(1000),
                    exemptfee: None,
                    maxparts: None,
                },
                None,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !r.background_idle(),
        "the probe asked for counts as running"
    );
    for n in ["peer1", "peer2", "peer3", "peer4"] {
        node.call("dev-release", json!({"node": n})).unwrap();
    }
    let round = background.await.unwrap();
    let v = asked.await.unwrap().expect("the probe asked for ran");
    assert!(v["probes"].as_u64().unwrap() > 0, "{v}");
    // Background probing sent its one probe in flight, then gave way.
    assert_eq!(round.probes, 1, "{round:?}");
    assert!(round.stopped.is_some(), "{round:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_clean(&node);
}

/// Us, out through peer 1 and back in from peer 4, with two ways between them: straight over
/// a big channel (the model is sure of it at once) at 300 ppm, and through peer 2 over two
/// channels of 500k sat at 10 ppm, which the model's prior doubts at 400k sat.
fn two_ways() -> Network {
    let nodes = common::named_nodes(&["us", "peer1", "peer2", "peer4"]);
    let cheap =
        json!({"fee_base_msat": 0, "fee_proportional_millionths": 10, "cltv_expiry_delta": 18});
    let dear =
        json!({"fee_base_msat": 0, "fee_proportional_millionths": 300, "cltv_expiry_delta": 18});
    let channel = |scid: &str, a: &str, b: &str, sat: u64, a_share: u64, p: &Value| {
        json!({
            "short_channel_id": scid, "node1": a, "node2": b, "capacity_sat": sat,
            "node1_msat": sat * SAT * a_share / 100, "policy1": p, "policy2": p,
        })
    };
    let channels = vec![
        channel("800001x1x0", "us", "peer1", 2_000_000, 90, &cheap),
        channel("800004x1x0", "us", "peer4", 2_000_000, 10, &cheap),
        channel("700001x1x0", "peer1", "peer4", 100_000_000, 50, &dear),
        channel("700002x1x0", "peer1", "peer2", 500_000, 100, &cheap),
        channel("700003x1x0", "peer2", "peer4", 500_000, 100, &cheap),
    ];
    hand_made(nodes, cheap, channels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scouts_find_the_cheaper_way_and_the_next_rebalance_pays_it_unprobed() {
    let amount = 400_000 * SAT;
    let node = SimNode::new(two_ways());
    let clock = Arc::new(ManualClock::new(START_MS));
    let r = hooked(node.clone(), on(60, 5_000_000 * SAT), clock.clone());
    let before = balances(&node);
    clock.advance_ms(60_000);
    let target = cln_rebalance::core::probing::ProbeTarget {
        outgoing: "800001x1x0".into(),
        incoming: "800004x1x0".into(),
        amount_msat: amount,
        fee_cap_msat: amount / 1000,
    };
    let round = r.probe_targets(std::slice::from_ref(&target)).await;
    // The model was sure of the straight way (no probe for the move itself: with no looks
    // the round sends none); the scouts probed the way through peer 2, and it carried.
    let sent = probes_sent(&node);
    assert!(!sent.is_empty(), "{round:?}");
    assert_eq!(sent.len() as u32, round.probes);
    let through_peer2 = payments(&node).iter().any(|p| {
        p["route"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["channel"] == "700003x1x0")
    });
    assert!(through_peer2, "{:?}", payments(&node));
    assert_eq!(round.moves_found, 1, "{round:?}");
    assert_eq!(balances(&node), before, "a probe moves nothing");
    assert_clean(&node);
    // The rebalance after it: the cheaper way, paid at once, no probe of its own.
    let probes_before = payments(&node).len();
    clock.advance_ms(60_000);
    let v = r
        .rebalance(RebalanceParams {
            outgoing: "800001x1x0".into(),
            incoming: "800004x1x0".into(),
            amount_msat: Some(amount),
            maxfeeppm: None,
            exemptfee: None,
            retry_for: None,
            dryrun: false,
            maxparts: None,
            amount_max: false,
        })
        .await
        .unwrap();
    assert_eq!(v["probes"], 0, "{v}");
    assert_eq!(v["attempts"], 1, "{v}");
    // Straight over peer 4's big channel it would pay 300 ppm: 120 sat.
    let fee = v["fee_msat"].as_u64().unwrap();
    assert!(fee < 120 * SAT, "{v}");
    let parts = v["parts"].as_array().map_or(1, Vec::len);
    assert_eq!(payments(&node).len(), probes_before + parts, "{v}");
    assert_clean(&node);
}

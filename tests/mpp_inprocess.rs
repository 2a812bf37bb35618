//! Rebalances in several parts, and probes, in-process over the stand-in's network model: an
//! amount no single route can carry moves in parts that all land; a part that fails is replaced
//! while the others are held at our node, also after `retry_for` has run out; a set that cannot
//! complete in time leaves nothing paid, and a stop asked while it waits is heard at once; a probe finds the most that can move (never more) and pays nothing; `amount_msat=max`
//! moves it; one probe at a time goes out through a channel of ours; parts probed one after
//! another over one channel prove each, not their sum; after failed sets the search keeps an
//! amount that may still move instead of halving; a probe with no time left for the next route
//! ends (networks of their own).
//!
//! The network: us with a big outbound-heavy channel to `a` and a big inbound-heavy one from
//! `b`, and three disjoint paths `a -> x|y|z -> b`, each able to carry 1.5M sat: 2.5M sat needs
//! two of them.

mod common;

use cln_rebalance::clock::ManualClock;
use cln_rebalance::config::Config;
use cln_rebalance::core::graph::Scid;
use cln_rebalance::core::liquidity::ChanDir;
use cln_rebalance::error::RpcFailure;
use cln_rebalance::params::RebalanceParams;
use cln_rebalance::state::State;
use cln_standin::simnet::Network;
use common::{
    SimNode, assert_clean, cheap_channel, cheap_policy, hand_made, hooked, named_nodes,
    network_from, node_id as id, parts_params, pay_at_once, probe_params, rebalancer, untouched,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const OUT: &str = "800001x1x0";
const INC: &str = "800002x1x0";
const SAT: u64 = 1000;

fn network() -> Network {
    network_from(&network_json())
}

fn network_json() -> Value {
    paths_a_to_b(&[
        ("x", 2_000_000, 1_500_000),
        ("y", 2_000_000, 1_500_000),
        ("z", 2_000_000, 1_500_000),
    ])
}

/// Our two channels (to `a`, outbound-heavy; from `b`, inbound-heavy) and, for each
/// `(mid, capacity_sat, forward_sat)`, the path `a -> mid -> b` (channels `70000k x1x0|1`, the
/// k-th path) with `forward_sat` on the sending side of both channels.
fn paths_a_to_b(mids: &[(&str, u64, u64)]) -> Value {
    let mut names = vec!["us", "a", "b"];
    names.extend(mids.iter().map(|m| m.0));
    let mut channels = vec![
        cheap_channel(OUT, "us", "a", 10_000_000, 9_000_000),
        cheap_channel(INC, "us", "b", 10_000_000, 1_000_000),
    ];
    for (k, &(mid, cap, fwd)) in mids.iter().enumerate() {
        for (j, (from, to)) in [("a", mid), (mid, "b")].into_iter().enumerate() {
            let scid = format!("70000{}x1x{j}", k + 1);
            channels.push(cheap_channel(&scid, from, to, cap, fwd));
        }
    }
    json!({
        "blockheight": 800_000, "us": "us", "config": {"cltv_final": 18},
        "nodes": named_nodes(&names), "default_policy": cheap_policy(), "channels": channels,
    })
}

fn req(amount_msat: u64) -> RebalanceParams {
    parts_params(OUT, INC, amount_msat)
}

/// The channels of each part's route between our own two hops.
fn middles(v: &Value) -> Vec<Vec<String>> {
    v["parts"]
        .as_array()
        .unwrap_or_else(|| panic!("parts: {v}"))
        .iter()
        .map(|p| {
            let r = p["route"].as_array().unwrap();
            r[1..r.len() - 1]
                .iter()
                .map(|h| h["short_channel_id"].as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

/// Our two channels' balances.
fn ours(node: &SimNode) -> (u64, u64) {
    (node.to_us(OUT), node.to_us(INC))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amount_no_single_route_carries_moves_in_parts() {
    let (r, node) = rebalancer(network(), Config::default());
    let amount = 2_500_000 * SAT;
    // One route at a time cannot: no path carries 2.5M sat.
    let mut single = req(amount);
    single.maxparts = Some(1);
    single.retry_for = Some(5);
    let e = r.rebalance(single).await.unwrap_err();
    assert!([205, 210].contains(&e.code), "{e}");
    let before = ours(&node);
    assert_clean(&node);
    let v = r.rebalance(req(amount)).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    let parts = v["parts"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert!(parts.len() >= 2, "{v}");
    let delivered: u64 = parts
        .iter()
        .map(|p| p["amount_msat"].as_u64().unwrap())
        .sum();
    assert_eq!(delivered, amount, "the parts add up to the amount");
    let fee = v["fee_msat"].as_u64().unwrap();
    let part_fees: u64 = parts.iter().map(|p| p["fee_msat"].as_u64().unwrap()).sum();
    assert_eq!(fee, part_fees, "the fee is every part's");
    assert!(fee <= amount / 1000, "within the 1000 ppm cap: {fee}");
    // Disjoint paths, each at most 1.5M sat.
    let m = middles(&v);
    assert!(m.iter().all(|p| p.len() == 2), "{m:?}");
    assert!(
        parts
            .iter()
            .all(|p| p["amount_msat"].as_u64().unwrap() <= 1_500_000 * SAT)
    );
    // What moved is exactly the amount, and the fee.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ours(&node), (before.0 - amount - fee, before.1 + amount));
    assert_clean(&node);
    // A dry run quotes the set it would pay.
    let mut dry = req(amount);
    dry.dryrun = true;
    let q = r.rebalance(dry).await.unwrap();
    assert_eq!(q["status"], "dryrun");
    assert!(q["parts"].as_array().is_some_and(|p| p.len() >= 2), "{q}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_part_is_replaced_while_the_others_are_held() {
    let (r, node) = rebalancer(network(), pay_at_once());
    let amount = 2_500_000 * SAT;
    let last = &drain_a_planned_part(&r, &node, amount).await;
    let before = ours(&node);
    let v = r.rebalance(req(amount)).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(
        v["attempts"], 1,
        "one try, its failed part replaced within it: {v}"
    );
    let paid = middles(&v);
    assert!(
        !paid.iter().any(|p| p.contains(last)),
        "the drained channel carries no part: {paid:?} ({last})"
    );
    let fee = v["fee_msat"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ours(&node), (before.0 - amount - fee, before.1 + amount));
    // The part that failed was sent, and failed: lightningd's own record says so.
    let sendpays = node.sendpays();
    let failed = sendpays.iter().filter(|s| s["status"] == "failed").count();
    let complete = sendpays
        .iter()
        .filter(|s| s["status"] == "complete")
        .count();
    assert!(failed >= 1, "{sendpays:?}");
    assert_eq!(complete, paid.len(), "every part that paid is complete");
    assert!(
        sendpays
            .iter()
            .all(|s| s["groupid"] == sendpays[0]["groupid"]),
        "replacements stay in the try's group"
    );
    assert_clean(&node);
}

/// Drains, on its sending side, the last channel of the last part `r` would pay for `amount`
/// (a dry run's plan), so that part fails there; the channel's id.
async fn drain_a_planned_part(
    r: &cln_rebalance::state::State<SimNode>,
    node: &SimNode,
    amount: u64,
) -> String {
    let mut dry = req(amount);
    dry.dryrun = true;
    let q = r.rebalance(dry).await.unwrap();
    let planned = middles(&q);
    assert!(planned.len() >= 2, "{q}");
    let last = planned.last().unwrap()[1].clone();
    let holder = node
        .call("listchannels", json!({"short_channel_id": last}))
        .unwrap()["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["destination"] == id(2))
        .unwrap()["source"]
        .as_str()
        .unwrap()
        .to_string();
    node.call(
        "dev-drain",
        json!({"short_channel_id": last, "node": holder}),
    )
    .unwrap();
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_failing_after_retry_for_is_still_replaced_within_the_hold() {
    // 1 s a hop each way, `retry_for` 3 s: the try starts in time, and its drained part fails
    // back 4 s in, past `retry_for`, while the other part is held at our node. `retry_for`
    // bounds when tries start; the held part stays locked until the hold ends either way, so
    // the replacement goes out and the set completes (before, the held part failed back and
    // nothing moved).
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let node = SimNode::new(network()).with_hop_clock(clock.clone(), 1000);
    let r = hooked(node.clone(), pay_at_once(), clock);
    let amount = 2_500_000 * SAT;
    let drained = drain_a_planned_part(&r, &node, amount).await;
    let before = ours(&node);
    let mut p = req(amount);
    p.retry_for = Some(3);
    let v = r.rebalance(p).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(v["attempts"], 1, "one try, its part replaced: {v}");
    let duration = v["duration_ms"].as_u64().unwrap();
    assert!(
        duration > 3000,
        "the replacement went out past retry_for: {v}"
    );
    assert!(duration <= 3000 + 70_000, "within the hold: {v}");
    assert!(
        !middles(&v).iter().any(|p| p.contains(&drained)),
        "{v} ({drained})"
    );
    let fee = v["fee_msat"].as_u64().unwrap();
    assert!(fee <= amount / 1000, "within the cap: {fee}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ours(&node), (before.0 - amount - fee, before.1 + amount));
    assert_clean(&node);
}

/// Two wide paths `a -> x|y -> b` of 1.55M sat and two narrow ones `a -> z|w -> b` of 1.1M
/// sat (all of it): 3M sat goes in two parts only over `x` and `y`.
fn wide_and_narrow() -> Network {
    network_from(&paths_a_to_b(&[
        ("x", 2_000_000, 1_550_000),
        ("y", 2_000_000, 1_550_000),
        ("z", 1_100_000, 1_100_000),
        ("w", 1_100_000, 1_100_000),
    ]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxparts_bounds_the_parts_out_at_once_replacements_included() {
    // `maxparts` 2: the part over `y` fails, and 1.5M sat is missing while x's part is held.
    // Only `z` and `w` together carry it: a third part out, which 2 does not allow.
    let (r, node, result) = x_and_y_planned_y_offline(2).await;
    let e = result.unwrap_err();
    assert!([205, 210].contains(&e.code), "{e}");
    assert_eq!(node.most_parts_out.load(Ordering::Relaxed), 2);
    // x's part is still held, but nothing waits for it: the model no longer counts it in
    // flight (it did for good before), so later rebalances may plan over x.
    let a_x = ChanDir::new("700001x1x0".parse::<Scid>().unwrap(), 0);
    assert_eq!(r.model.lock().in_flight_msat(a_x), 0);
    // Our node's hold ends and x's part fails back: nothing moved, nothing left behind.
    node.call("dev-timetravel", json!({"seconds": 71})).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    node.call("dev-state", json!({})).unwrap();
    assert!(node.sendpays().iter().all(|s| s["status"] == "failed"));
    assert_eq!(
        node.to_us(OUT),
        9_000_000 * SAT,
        "nothing moved, no fee paid"
    );
    assert_clean(&node);
    // `maxparts` 3: the replacement is those two parts, and the set pays.
    let (_, node, result) = x_and_y_planned_y_offline(3).await;
    let v = result.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(v["attempts"], 1, "{v}");
    assert_eq!(middles(&v).len(), 3, "{v}");
    assert_eq!(node.most_parts_out.load(Ordering::Relaxed), 3);
    let fee = v["fee_msat"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(node.to_us(OUT), 9_000_000 * SAT - 3_000_000 * SAT - fee);
    assert_clean(&node);
}

/// 3M sat over [`wide_and_narrow`] in at most `maxparts` parts, paid at once: planned over `x`
/// and `y` (a dry run says so), and then `y` offline, so that part fails.
async fn x_and_y_planned_y_offline(
    maxparts: u64,
) -> (Arc<State<SimNode>>, SimNode, Result<Value, RpcFailure>) {
    let (r, node) = rebalancer(wide_and_narrow(), pay_at_once());
    let p = RebalanceParams {
        maxparts: Some(maxparts),
        retry_for: Some(3),
        ..req(3_000_000 * SAT)
    };
    let q = r
        .rebalance(RebalanceParams {
            dryrun: true,
            ..p.clone()
        })
        .await
        .unwrap();
    let mut planned = middles(&q);
    planned.sort();
    assert_eq!(
        planned,
        [["700001x1x0", "700001x1x1"], ["700002x1x0", "700002x1x1"]]
    );
    node.call("dev-set-online", json!({"node": "y", "online": false}))
        .unwrap();
    let result = r.rebalance(p).await;
    (r, node, result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_that_cannot_complete_leaves_nothing_paid() {
    let (r, node) = rebalancer(network(), Config::default());
    let amount = 2_500_000 * SAT;
    let before = ours(&node);
    let state_before = node.channel_state();
    // Every part through x is held there: the set can never complete in time.
    node.call("dev-hold", json!({"node": "x"})).unwrap();
    let mut p = req(amount);
    p.retry_for = Some(3);
    let e = r.rebalance(p).await.unwrap_err();
    assert_eq!(e.code, 210, "{e}");
    // Our node's hold ends (70 s), and x lets go of what it held: everything fails back.
    node.call("dev-timetravel", json!({"seconds": 71})).unwrap();
    node.call("dev-release", json!({"node": "x"})).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    node.call("dev-state", json!({})).unwrap();
    assert_eq!(ours(&node), before, "nothing moved, no fee paid");
    let state_after = node.channel_state();
    assert_eq!(state_before, state_after, "every channel as it was");
    assert!(
        node.sendpays().iter().all(|s| s["status"] == "failed"),
        "{:?}",
        node.sendpays()
    );
    assert_clean(&node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalancestop_is_heard_while_a_try_waits_past_retry_for() {
    // Every part is held on the way (at x, y and z): the try, started within `retry_for` (1 s),
    // may wait past it to the end of the hold (115 s from its start) for parts that may still
    // complete. A stop asked for at 2 s is heard within a 5 s slice, not when the hold ends.
    let (r, node) = rebalancer(network(), pay_at_once());
    let amount = 2_500_000 * SAT;
    let before = node.channel_state();
    for mid in ["x", "y", "z"] {
        node.call("dev-hold", json!({"node": mid})).unwrap();
    }
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let extra = cln_rebalance::rebalance::session::Extra {
        cancel: Some(cancel.clone()),
        ..Default::default()
    };
    let mut p = req(amount);
    p.retry_for = Some(1);
    let started = std::time::Instant::now();
    let call = tokio::spawn({
        let r = r.clone();
        async move { r.rebalance_with(p, extra).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    cancel.store(true, std::sync::atomic::Ordering::SeqCst);
    let e = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("heard within a slice, not at the hold's end")
        .unwrap()
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.code, 210, "{e}");
    assert!(e.message.contains("still in flight"), "{e}");
    // Held parts let go: they reach us, find no invoice, and fail back.
    for mid in ["x", "y", "z"] {
        node.call("dev-release", json!({"node": mid})).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(node.channel_state(), before, "nothing moved, no fee paid");
    assert_clean(&node);
}

/// Us, peers a and b, our node taking no HTLC under 1M sat over our channel with b (its
/// `minimum_htlc_in_msat`); from a to b four ways through w, x, y and z, each of 1.05M-sat
/// channels with 1.045M sat on the sending side.
fn incoming_minimum() -> Network {
    let names = ["us", "a", "b", "w", "x", "y", "z"];
    let our_min = json!({"fee_base_msat": 0, "fee_proportional_millionths": 10,
                         "cltv_expiry_delta": 18, "htlc_minimum_msat": 1_000_000 * SAT});
    let mut inc = cheap_channel(INC, "us", "b", 10_000_000, 1_000_000);
    inc["policy1"] = our_min;
    let mut channels = vec![cheap_channel(OUT, "us", "a", 10_000_000, 9_000_000), inc];
    for (k, mid) in ["w", "x", "y", "z"].iter().enumerate() {
        for (j, (from, to)) in [("a", *mid), (*mid, "b")].iter().enumerate() {
            let scid = format!("70000{}x1x{j}", k + 1);
            channels.push(cheap_channel(&scid, from, to, 1_050_000, 1_045_000));
        }
    }
    hand_made(named_nodes(&names), cheap_policy(), channels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_part_is_at_least_what_our_node_accepts_from_the_incoming_peer() {
    // The model gives a 1.05M-sat channel little chance of 1M sat and an even one of 500k: the
    // likeliest set for 2M sat is four parts of 500k, each under the 1M sat our node accepts
    // over the incoming channel. They failed at the last hop (WIRE_AMOUNT_BELOW_MINIMUM), which
    // stops a rebalance (on seed 153 at 1M sat, 10 of 100 tasks). Parts are planned at what
    // both ends of the last hop take.
    let (r, node) = rebalancer(incoming_minimum(), Config::default());
    let amount = 2_000_000 * SAT;
    let before = ours(&node);
    let v = r.rebalance(req(amount)).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    let parts = v["parts"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert!(
        parts
            .iter()
            .all(|p| p["amount_msat"].as_u64().unwrap() >= 1_000_000 * SAT),
        "{v}"
    );
    let fee = v["fee_msat"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ours(&node), (before.0 - amount - fee, before.1 + amount));
    assert_clean(&node);
}

fn probe(amount_msat: Option<u64>) -> cln_rebalance::params::ProbeParams {
    probe_params(OUT, INC, amount_msat)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_finds_the_most_that_can_move_and_pays_nothing() {
    let (r, node) = rebalancer(network(), Config::default());
    let before = node.channel_state();
    let v = r.rebalance_probe(probe(None), None).await.unwrap();
    let max = v["max_msat"].as_u64().unwrap();
    // Three paths of 1.5M sat each, less their fees on the way: 4.5M sat at most.
    let true_max = 4_500_000 * SAT;
    assert!(max <= true_max, "never more than can move: {v}");
    assert!(max * 10 >= true_max * 9, "within 10% of it: {v}");
    assert!(v["probes"].as_u64().unwrap() <= 20, "{v}");
    let delivered: u64 = v["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["amount_msat"].as_u64().unwrap())
        .sum();
    assert_eq!(delivered, max, "the parts carry it: {v}");
    assert!(v["fee_msat"].as_u64().unwrap() <= v["fee_cap_msat"].as_u64().unwrap());
    untouched(&node, &before);
    // What the probes proved is in the model: a channel of a part is known to carry its amount.
    let m = r
        .liquidity_report(cln_rebalance::params::LiquidityParams {
            short_channel_id: Some("700001x1x0".parse().unwrap()),
            reset: false,
        })
        .await
        .unwrap();
    let learned = m["channels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["learned_min_msat"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(learned > 0, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_with_an_amount_says_whether_it_can_move() {
    let (r, node) = rebalancer(network(), Config::default());
    let before = node.channel_state();
    let yes = r
        .rebalance_probe(probe(Some(2_500_000 * SAT)), None)
        .await
        .unwrap();
    assert_eq!(yes["feasible"], true, "{yes}");
    assert_eq!(yes["amount_msat"], 2_500_000 * SAT);
    let no = r
        .rebalance_probe(probe(Some(6_000_000 * SAT)), None)
        .await
        .unwrap();
    assert_eq!(no["feasible"], false, "{no}");
    untouched(&node, &before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_amount_max_moves_what_the_probe_found() {
    let (r, node) = rebalancer(network(), Config::default());
    let before = ours(&node);
    let mut p = req(0);
    p.amount_msat = None;
    p.amount_max = true;
    let v = r.rebalance(p).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    let moved = v["amount_msat"].as_u64().unwrap();
    assert!(moved > 4_000_000 * SAT && moved <= 4_500_000 * SAT, "{v}");
    let fee = v["fee_msat"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ours(&node), (before.0 - moved - fee, before.1 + moved));
    assert_clean(&node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_probe_at_a_time_on_a_channel_of_ours() {
    let (r, node) = rebalancer(network(), Config::default());
    // Held on every path, the first probe stays in flight while a second is asked for.
    for n in ["x", "y", "z"] {
        node.call("dev-hold", json!({"node": n})).unwrap();
    }
    let first = {
        let r = r.clone();
        tokio::spawn(async move { r.rebalance_probe(probe(Some(1_000_000 * SAT)), None).await })
    };
    let mut second = None;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if node.pending_htlcs() > 0 {
            second = Some(r.rebalance_probe(probe(Some(1_000_000 * SAT)), None).await);
            break;
        }
    }
    let e = second.expect("the first probe went out").unwrap_err();
    assert!(
        e.message
            .contains("a probe is already running out through channel"),
        "{e}"
    );
    for n in ["x", "y", "z"] {
        node.call("dev-release", json!({"node": n})).unwrap();
    }
    let done = first.await.unwrap().unwrap();
    assert_eq!(done["feasible"], true, "{done}");
    // Once it has ended, the channel takes a probe again.
    assert!(
        r.rebalance_probe(probe(Some(SAT * 1000)), None)
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalanceall_sizes_a_move_by_what_can_move_instead_of_halving() {
    use cln_rebalance::params::RebalanceallParams;
    // One of the three paths is drained (the model does not know): under 3M sat can move, not the
    // 4M sat the planner wants to bring both channels to 50%.
    let job_of = |sized: bool| async move {
        let mut config = Config::default();
        config.auto.sized_moves = sized;
        config.auto.parallel = 1;
        // A set that cannot complete holds its parts at our node until they time out: keep a
        // move's wait for them short.
        config.retry_for_secs = 3;
        let (r, node) = rebalancer(network(), config);
        node.call(
            "dev-drain",
            json!({"short_channel_id": "700002x1x1", "node": id(4)}),
        )
        .unwrap();
        // What filling INC earns pays for the move (0.5 x 1000 ppm, above the routes' fees).
        node.call("setchannel", json!({"id": INC, "feeppm": 1000}))
            .unwrap();
        let v = r
            .rebalanceall_wait(RebalanceallParams::default(), None)
            .await
            .unwrap();
        assert_eq!(v["status"], "ended", "{v}");
        // Held parts of a set that could not complete fail back when our node's hold ends.
        node.call("dev-timetravel", json!({"seconds": 71})).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_clean(&node);
        let job = r.last_job().unwrap().progress();
        (job, v)
    };
    let (sized, v) = job_of(true).await;
    assert!(sized.probes > 0, "{v}");
    assert_eq!(sized.moves_failed, 0, "sized, no move fails: {v}");
    // Two paths of 1.5M sat less their reserves: about 2.96M sat can move; sized moves stay a
    // little below what the probes found, and the rest is below the job's min amount.
    assert!(sized.moved_msat >= 2_800_000 * SAT, "{v}");
    let (halving, w) = job_of(false).await;
    assert!(
        halving.moves_failed >= 1,
        "planned whole, the first move fails: {w}"
    );
    assert!(
        sized.moved_msat + 100_000 * SAT >= halving.moved_msat,
        "as much moved: {v} against {w}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_no_probe_reaches_from_one_source_is_filled_from_another() {
    use cln_rebalance::params::RebalanceallParams;
    // Two sources: a (9.5M sat ours) reaches b only over x -> b, drained (the model does not
    // know); c (8M sat ours) over y -> b, 1.5M sat. Probes from a find nothing, which must
    // not give up on filling b: c can.
    const OUT_C: &str = "800003x1x0";
    let names = ["us", "a", "b", "x", "c", "y"];
    let net = hand_made(
        named_nodes(&names),
        cheap_policy(),
        vec![
            cheap_channel(OUT, "us", "a", 10_000_000, 9_500_000),
            cheap_channel(INC, "us", "b", 10_000_000, 1_000_000),
            cheap_channel(OUT_C, "us", "c", 10_000_000, 8_000_000),
            cheap_channel("700001x1x0", "a", "x", 5_000_000, 4_000_000),
            cheap_channel("700001x1x1", "x", "b", 5_000_000, 0),
            cheap_channel("700002x1x0", "c", "y", 2_000_000, 1_500_000),
            cheap_channel("700002x1x1", "y", "b", 2_000_000, 1_500_000),
        ],
    );
    let mut config = Config::default();
    config.auto.parallel = 1;
    config.auto.sized_moves = true;
    let (r, node) = rebalancer(net, config);
    node.call("setchannel", json!({"id": INC, "feeppm": 1000}))
        .unwrap();
    let before = node.to_us(INC);
    let v = r
        .rebalanceall_wait(RebalanceallParams::default(), None)
        .await
        .unwrap();
    assert_eq!(v["status"], "ended", "{v}");
    let job = r.last_job().unwrap().progress();
    assert!(
        job.moves_sized_out >= 1,
        "a -> b was tried and sized out: {v}"
    );
    assert_eq!(job.moves_failed, 0, "{v}");
    // c's path carries 1.5M sat less reserves and fees: most of it moved into b.
    let into_b = node.to_us(INC) - before;
    assert!(into_b >= 1_000_000 * SAT, "moved into b {into_b}: {v}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_clean(&node);
}

/// The network with `b` forwarding at most 1M sat an HTLC to us over the incoming channel.
fn network_inc_htlc_max_1m() -> Network {
    let mut v = network_json();
    v["channels"][1]["policy2"]["htlc_maximum_msat"] = json!(1_000_000 * SAT);
    network_from(&v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_carry_more_than_the_incoming_peers_htlc_maximum() {
    let (r, node) = rebalancer(network_inc_htlc_max_1m(), Config::default());
    let amount = 2_500_000 * SAT;
    // One route is one HTLC, refused up front: nothing sent.
    let mut single = req(amount);
    single.maxparts = Some(1);
    let e = r.rebalance(single).await.unwrap_err();
    assert_eq!(e.code, -32602, "{e}");
    assert!(
        e.message.contains("amount_msat") && e.message.contains("1000000000msat"),
        "{e}"
    );
    assert!(node.sendpays().is_empty(), "{:?}", node.sendpays());
    // More than `maxparts` 4 parts of 1M sat cannot arrive either, and says so.
    let four = RebalanceParams {
        maxparts: Some(4),
        ..req(4_500_000 * SAT)
    };
    let e = r.rebalance(four).await.unwrap_err();
    assert_eq!(e.code, -32602, "{e}");
    assert!(e.message.contains("in 4 parts"), "{e}");
    // In parts of at most 1M sat each it moves.
    let before = ours(&node);
    let v = r.rebalance(req(amount)).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    let parts = v["parts"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert!(parts.len() >= 3, "{v}");
    assert!(
        parts
            .iter()
            .all(|p| p["amount_msat"].as_u64().unwrap() <= 1_000_000 * SAT),
        "{v}"
    );
    let fee = v["fee_msat"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ours(&node), (before.0 - amount - fee, before.1 + amount));
    assert_clean(&node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_looks_past_the_incoming_peers_htlc_maximum() {
    let (r, node) = rebalancer(network_inc_htlc_max_1m(), Config::default());
    let before = node.channel_state();
    let four = cln_rebalance::params::ProbeParams {
        maxparts: Some(4),
        ..probe(None)
    };
    let v = r.rebalance_probe(four, None).await.unwrap();
    let max = v["max_msat"].as_u64().unwrap();
    // Three paths of 1.5M sat in 4 parts of at most 1M sat each: one path takes two parts,
    // so 3.5M sat at most (less fees on the way). Before the probe looked past the htlc
    // maximum it answered at most 1M sat; the two parts over one path are proven together by
    // one probe carrying both, which fails at b (past its htlc maximum) having proven the rest.
    assert!(max <= 3_500_000 * SAT, "never more than can move: {v}");
    assert!(max * 100 >= 3_500_000 * SAT * 97, "within 3% of it: {v}");
    assert!(v["parts"].as_array().is_some_and(|p| p.len() >= 4), "{v}");
    let past_b = node
        .sendpays()
        .iter()
        .filter(|s| s["amount_msat"].as_u64().unwrap_or(0) > 1_000_000 * SAT)
        .count();
    assert!(
        past_b >= 1,
        "one probe carried two parts' worth: {:?}",
        node.sendpays()
    );
    // Parts proven alone are not probed again, and the search does not spin on them.
    assert!(v["duration_ms"].as_u64().unwrap() < 30_000, "{v}");
    untouched(&node, &before);
}

/// Us, peers a and b; one route out through a, over a -> b (700,000 sat on a's side, at most
/// 500,000 sat an HTLC), back in from b: 1M sat needs two parts over that one channel.
fn one_narrow_channel() -> Network {
    let cheap =
        json!({"fee_base_msat": 0, "fee_proportional_millionths": 10, "cltv_expiry_delta": 18});
    let narrow = json!({"fee_base_msat": 0, "fee_proportional_millionths": 10,
                        "cltv_expiry_delta": 18, "htlc_maximum_msat": 500_000 * SAT});
    network_from(&json!({
        "blockheight": 800_000, "us": "us", "config": {"cltv_final": 18},
        "nodes": [{"id": id(0), "alias": "us"}, {"id": id(1), "alias": "a"}, {"id": id(2), "alias": "b"}],
        "default_policy": cheap,
        "channels": [
            {"short_channel_id": OUT, "node1": "us", "node2": "a", "capacity_sat": 3_000_000,
             "node1_msat": 2_700_000 * SAT, "policy1": cheap, "policy2": cheap},
            {"short_channel_id": "700009x1x0", "node1": "a", "node2": "b", "capacity_sat": 2_000_000,
             "node1_msat": 700_000 * SAT, "policy1": narrow, "policy2": cheap},
            {"short_channel_id": INC, "node1": "b", "node2": "us", "capacity_sat": 3_000_000,
             "node1_msat": 2_700_000 * SAT, "policy1": cheap, "policy2": cheap},
        ],
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_probed_one_by_one_over_one_channel_do_not_prove_their_sum() {
    let (r, node) = rebalancer(one_narrow_channel(), Config::default());
    let before = node.channel_state();
    // Each 500,000 sat part reaches us alone; both together would need 1M sat on a -> b.
    let v = r
        .rebalance_probe(probe(Some(1_000_000 * SAT)), None)
        .await
        .unwrap();
    assert_eq!(v["feasible"], false, "{v}");
    let most = r.rebalance_probe(probe(None), None).await.unwrap();
    let max = most["max_msat"].as_u64().unwrap();
    assert!(
        max > 0 && max <= 700_000 * SAT,
        "never more than a -> b holds: {most}"
    );
    untouched(&node, &before);
}

/// Us, peers a and b, and four ways a -> x1..x4 -> b: the three cheap ones drained on a's
/// side (the model does not know), the fourth (ten times the fee) able to carry everything
/// our outgoing channel can send.
fn three_cheap_ways_drained() -> Network {
    let cheap =
        json!({"fee_base_msat": 0, "fee_proportional_millionths": 10, "cltv_expiry_delta": 18});
    let dear =
        json!({"fee_base_msat": 0, "fee_proportional_millionths": 20, "cltv_expiry_delta": 18});
    let names = ["us", "a", "b", "x1", "x2", "x3", "x4"];
    let nodes = named_nodes(&names);
    let mut channels = vec![
        json!({"short_channel_id": OUT, "node1": "us", "node2": "a", "capacity_sat": 3_000_000,
               "node1_msat": 1_200_000 * SAT, "policy1": cheap, "policy2": cheap}),
        json!({"short_channel_id": INC, "node1": "us", "node2": "b", "capacity_sat": 3_000_000,
               "node1_msat": 300_000 * SAT, "policy1": cheap, "policy2": cheap}),
    ];
    for k in 1..=4 {
        let (a_side, policy) = if k < 4 {
            (5_000, &cheap)
        } else {
            (1_500_000, &dear)
        };
        let mid = format!("x{k}");
        channels.push(
            json!({"short_channel_id": format!("70000{k}x1x0"), "node1": "a",
            "node2": mid, "capacity_sat": 2_000_000, "node1_msat": a_side * SAT,
            "policy1": policy, "policy2": policy}),
        );
        channels.push(
            json!({"short_channel_id": format!("70000{k}x1x1"), "node1": mid,
            "node2": "b", "capacity_sat": 2_000_000, "node1_msat": 1_500_000 * SAT,
            "policy1": policy, "policy2": policy}),
        );
    }
    hand_made(nodes, cheap, channels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_failed_sets_the_search_tries_the_amount_again_where_it_still_may_move() {
    // Few probes: the first sets at the upper bound fail on the three cheap ways. Halving
    // after a fixed number of failures ended below the truth (7/8 of it at best); the search
    // keeps the amount while the model, having learned the failures, still gives a set at it
    // a fair chance, and proves it over the fourth way.
    let config = Config {
        probe_max_probes: 6,
        ..Config::default()
    };
    let (r, node) = rebalancer(three_cheap_ways_drained(), config);
    let before = node.channel_state();
    let v = r.rebalance_probe(probe(None), None).await.unwrap();
    let max = v["max_msat"].as_u64().unwrap();
    // Our outgoing channel sends 1.2M sat less its reserve and the fees: the truth is a little
    // below 1.2M sat, all of it over x4.
    assert!(max <= 1_200_000 * SAT, "never more than can move: {v}");
    assert!(
        max >= 1_150_000 * SAT,
        "the most that moves, within 6 probes: {v}"
    );
    assert!(v["probes"].as_u64().unwrap() <= 6, "{v}");
    untouched(&node, &before);
}
/// Us, peers a and b: a -> b direct, large but with only 100,000 sat on a's side (the model
/// prices it likeliest), and a long way round a -> p -> q -> r -> b that carries 1M sat.
fn short_drained_long_open() -> Network {
    let cheap =
        json!({"fee_base_msat": 0, "fee_proportional_millionths": 10, "cltv_expiry_delta": 18});
    let mut channels = vec![
        json!({"short_channel_id": OUT, "node1": "us", "node2": "a", "capacity_sat": 10_000_000,
               "node1_msat": 9_000_000 * SAT, "policy1": cheap, "policy2": cheap}),
        json!({"short_channel_id": "700009x1x0", "node1": "a", "node2": "b",
               "capacity_sat": 20_000_000, "node1_msat": 100_000 * SAT}),
        json!({"short_channel_id": INC, "node1": "b", "node2": "us", "capacity_sat": 10_000_000,
               "node1_msat": 9_000_000 * SAT, "policy1": cheap, "policy2": cheap}),
    ];
    for (k, (from, to)) in [("a", "p"), ("p", "q"), ("q", "r"), ("r", "b")]
        .iter()
        .enumerate()
    {
        channels.push(json!({"short_channel_id": format!("70001{k}x1x0"), "node1": from,
                             "node2": to, "capacity_sat": 2_000_000, "node1_msat": 1_500_000 * SAT}));
    }
    let names = ["us", "a", "b", "p", "q", "r"];
    hand_made(named_nodes(&names), cheap, channels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_with_no_time_left_for_the_next_route_ends_at_once() {
    // 1 s a hop each way, 12 s to probe: the whole amount over a -> b fails at a in 2 s, then
    // a set's part over it (the rest the long way) too; the long way alone (5 hops, 10 s there
    // and back) would not come back in the 8 s left, so it is not sent and the call ends
    // there: it must not plan that same route again and again until the deadline.
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let node = SimNode::new(short_drained_long_open()).with_hop_clock(clock.clone(), 1000);
    let config = Config {
        probe_max_secs: 12,
        ..Config::default()
    };
    let r = hooked(node.clone(), config, clock);
    let before = node.channel_state();
    // On a runtime of its own: a call that never yields must fail this test, not hang it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let v = rt.block_on(r.rebalance_probe(probe(Some(1_000_000 * SAT)), None));
        let _ = tx.send(v);
    });
    let v = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the probe call ends")
        .unwrap();
    assert_eq!(v["feasible"], false, "{v}");
    assert_eq!(v["probes"], 2, "the long way was not sent: {v}");
    assert_eq!(v["duration_ms"], 4000, "{v}");
    untouched(&node, &before);
}

/// Rebalances 1M sat over `short_drained_long_open` over one route at 1 s a hop each way,
/// retrying for `retry_for` s: complete over the long way, the balances moved, after
/// `(attempts, probes)` in `duration_ms`.
async fn one_route_in(retry_for: u64, tries: (u64, u64), duration_ms: u64) {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let node = SimNode::new(short_drained_long_open()).with_hop_clock(clock.clone(), 1000);
    let r = hooked(node.clone(), Config::default(), clock);
    let before = (node.to_us(OUT), node.to_us(INC));
    let mut p = req(1_000_000 * SAT);
    (p.retry_for, p.maxparts) = (Some(retry_for), Some(1));
    let v = r.rebalance(p).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(v["hops"], 6, "the long way: {v}");
    assert_eq!(
        (&v["attempts"], &v["probes"]),
        (&json!(tries.0), &json!(tries.1)),
        "{v}"
    );
    assert_eq!(v["duration_ms"], duration_ms, "{v}");
    node.assert_moved(&v, (OUT, INC), before, 1_000_000 * SAT);
    assert_clean(&node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_with_no_time_left_to_probe_and_then_pay_is_paid_at_once() {
    // The model is sure of a -> b (the likeliest): paid at once, it fails at a in 2 s. The long
    // way, unsure, is probed first (6 hops: 12 s there and back) when the time left holds that
    // and then the payment (12 s more)...
    one_route_in(40, (2, 1), 26_000).await;
    // ... and with 18 s left it is paid at once, unprobed, at the pace the failure showed.
    one_route_in(20, (2, 0), 14_000).await;
}

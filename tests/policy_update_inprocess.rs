//! A channel between the peers whose fee went up after the plugin read the graph, in-process
//! over the stand-in's network model: its node refuses the HTLC with `fee_insufficient` and its
//! new channel_update. The plugin hands the update to gossipd (`addgossip`, as CLN's pay and
//! renepay do), reads the graph again and plans on the new fee in the same rebalance, instead
//! of ruling the channel out and paying a dearer way.
//!
//! The same for the incoming peer's own hop to us, its fee raised while the rebalance runs
//! (after `listpeerchannels` told the plugin the old one): the plugin plans on the fee the
//! failure brings, instead of stopping.
//!
//! The network: us -> a (ours), b -> us (the peer's); a cheap way a -> m -> b (10 ppm a hop)
//! and a dear one a -> y -> b (400 ppm a hop). On the hop clock, or with the HTLC held on the
//! way, the failure reaches a waiting `waitsendpay` with its `raw_message`, as on lightningd.

mod common;

use cln_rebalance::clock::ManualClock;
use cln_rebalance::config::Config;
use cln_rebalance::params::RebalanceParams;
use cln_rebalance::state::State;
use cln_standin::simnet::Network;
use cln_standin::simnet::pay::WaitState;
use common::{
    SimNode, assert_clean, cheap_policy, hand_made, hooked, named_nodes, nine_of_ten, parts_params,
    pay_at_once, rebalancer,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const OUT: &str = "800001x1x0";
const INC: &str = "800002x1x0";
/// m -> b: the channel whose fee changes.
const M_B: &str = "700002x1x0";
const SAT: u64 = 1000;
const AMOUNT: u64 = 100_000 * SAT;

/// The network, with the way by y or without it.
fn network(by_y: bool) -> Network {
    let names = ["us", "a", "b", "m", "y"];
    let mut channels = vec![
        nine_of_ten(OUT, "us", "a", 10),
        nine_of_ten(INC, "b", "us", 10),
        nine_of_ten("700001x1x0", "a", "m", 10),
        nine_of_ten(M_B, "m", "b", 10),
    ];
    if by_y {
        channels.push(nine_of_ten("700009x1x0", "a", "y", 400));
        channels.push(nine_of_ten("700009x1x1", "y", "b", 400));
    }
    hand_made(named_nodes(&names), cheap_policy(), channels)
}

fn req() -> RebalanceParams {
    parts_params(OUT, INC, AMOUNT)
}

/// A rebalancer on the hop clock whose graph was read (by a dry run through m) before m's
/// fee on m -> b changed by `change` (`dev-set-policy` parameters).
async fn after_a_change(change: Value) -> (Arc<State<SimNode>>, SimNode) {
    on(network(true), pay_at_once(), change).await
}

/// The same on `net` with `config`.
async fn on(net: Network, config: Config, change: Value) -> (Arc<State<SimNode>>, SimNode) {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let node = SimNode::new(net).with_hop_clock(clock.clone(), 1000);
    let r = hooked(node.clone(), config, clock);
    let mut dry = req();
    dry.dryrun = true;
    let q = r.rebalance(dry).await.unwrap();
    assert_eq!(q["route"][2]["short_channel_id"], M_B, "{q}");
    let mut p = json!({"short_channel_id": M_B, "source": "m"});
    p.as_object_mut()
        .unwrap()
        .extend(change.as_object().unwrap().clone());
    node.call("dev-set-policy", p).unwrap();
    (r, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fee_raised_since_the_graph_was_read_is_paid_in_the_same_rebalance() {
    let (r, node) = after_a_change(json!({"fee_proportional_millionths": 100})).await;
    let v = r.rebalance(req()).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    // The first attempt met m's new fee; the second paid it, still the cheapest way.
    assert_eq!(v["attempts"], 2, "{v}");
    assert_eq!(v["route"][2]["short_channel_id"], M_B, "{v}");
    // b's 10 ppm, m's 100 and a's 10 on about 100,000 sat: 12,000 msat, where the way by y
    // costs 81,000 msat.
    let fee = v["fee_msat"].as_u64().unwrap();
    assert!((12_000..12_100).contains(&fee), "{v}");
    assert_eq!(node.calls_to("addgossip"), 1);
    // The graph was read for the dry run and once more for the new fee.
    assert_eq!(node.calls_to("listchannels"), 2);
    assert_clean(&node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fee_raised_past_the_cap_is_not_paid() {
    // 9,000 ppm on m -> b: the cap (1000 ppm) rules m out, and the rebalance goes by y.
    let (r, node) = after_a_change(json!({"fee_proportional_millionths": 9000})).await;
    let v = r.rebalance(req()).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(v["attempts"], 2, "{v}");
    assert_eq!(v["route"][1]["short_channel_id"], "700009x1x0", "{v}");
    assert!(v["fee_msat"].as_u64().unwrap() <= 100_000, "{v}");
    assert_clean(&node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_changes_nothing_keeps_the_channel_ruled_out() {
    // m refuses with fee_insufficient and its update as the graph has it (a node that lies,
    // or fees we computed wrong): read again, the policy is the same, so the channel stays
    // ruled out for the rebalance and it goes by y.
    let (r, node) = after_a_change(json!({})).await;
    node.call(
        "dev-fail",
        json!({"short_channel_id": M_B, "source": "m", "failcode": "fee_insufficient"}),
    )
    .unwrap();
    let v = r.rebalance(req()).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(v["attempts"], 2, "{v}");
    assert_eq!(v["route"][1]["short_channel_id"], "700009x1x0", "{v}");
    assert_eq!(node.calls_to("addgossip"), 1);
    assert_clean(&node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_most_that_moves_is_probed_at_the_new_fee() {
    // Only the way by m: `amount_msat=max` probes first, and its first probe meets m's new
    // fee. Before, that ruled m -> b out of the probe call, which found nothing to move.
    let change = json!({"fee_proportional_millionths": 100});
    let (r, node) = on(network(false), Config::default(), change).await;
    let mut p = req();
    p.amount_msat = None;
    p.amount_max = true;
    let v = r.rebalance(p).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert!(v["amount_msat"].as_u64().unwrap() > 1_000_000 * SAT, "{v}");
    assert_eq!(v["route"][2]["short_channel_id"], M_B, "{v}");
    assert_eq!(node.calls_to("addgossip"), 1);
    assert_clean(&node);
}

/// A rebalance of `p` started with every HTLC held at m; once one is held, b's fee on its hop
/// to us becomes `change` (`dev-set-policy`), and m lets go. The rebalance's answer.
async fn while_held_at_m(
    r: &Arc<State<SimNode>>,
    node: &SimNode,
    p: RebalanceParams,
    change: Value,
) -> Result<Value, cln_rebalance::error::RpcFailure> {
    while_n_held_at_m(r, node, p, change, 1).await
}

/// The same, once `held` HTLCs are held at m (every part of a set sent, none failed yet: a
/// failure that comes while the plugin is still sending, with no `waitsendpay` waiting, brings
/// no channel_update, as on lightningd).
async fn while_n_held_at_m(
    r: &Arc<State<SimNode>>,
    node: &SimNode,
    p: RebalanceParams,
    change: Value,
    held: usize,
) -> Result<Value, cln_rebalance::error::RpcFailure> {
    node.call("dev-hold", json!({"node": "m"})).unwrap();
    let task = tokio::spawn({
        let r = r.clone();
        async move { r.rebalance(p).await }
    });
    // Held, and (for a set) every part sent: the plugin counts its parts in flight as it
    // starts waiting on them.
    let sent = || {
        node.pending_htlcs() >= held
            && (held == 1
                || r.inflight
                    .list()
                    .iter()
                    .any(|x| x.parts_in_flight as usize >= held))
    };
    for _ in 0..400 {
        if sent() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(sent(), "{held} HTLCs held at m");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut c = json!({"short_channel_id": INC, "source": "b"});
    c.as_object_mut()
        .unwrap()
        .extend(change.as_object().unwrap().clone());
    node.call("dev-set-policy", c).unwrap();
    node.call("dev-release", json!({"node": "m"})).unwrap();
    task.await.unwrap()
}

/// Our balances on the outgoing and incoming channels.
fn ours(node: &SimNode) -> (u64, u64) {
    (node.to_us(OUT), node.to_us(INC))
}

/// The rebalance `v` completed and moved its amount from `before` (see [`ours`]), paying its
/// fee: the fee.
fn moved(node: &SimNode, v: &Value, before: (u64, u64)) -> u64 {
    assert_eq!(v["status"], "complete", "{v}");
    let (amount, fee) = (v["amount_msat"].as_u64(), v["fee_msat"].as_u64());
    let (amount, fee) = (amount.unwrap(), fee.unwrap());
    assert_eq!(ours(node), (before.0 - amount - fee, before.1 + amount));
    fee
}

/// The rebalance `v` paid b's new 300 ppm (and m's and a's 10 each, on about 100,000 sat):
/// one route, or (`parts`) two or more parts, a little dearer. The update was handed to
/// gossipd once, and nothing is left behind.
fn paid_the_new_fee(node: &SimNode, v: &Value, before: (u64, u64), parts: bool) {
    let fee = moved(node, v, before);
    assert_eq!(v["amount_msat"], AMOUNT, "{v}");
    if parts {
        assert!((32_000..32_200).contains(&fee), "{v}");
        assert!(v["parts"].as_array().is_some_and(|p| p.len() >= 2), "{v}");
    } else {
        // The first attempt met b's new fee at its hop to us; the second paid it.
        assert_eq!(v["attempts"], 2, "{v}");
        assert!((32_000..32_100).contains(&fee), "{v}");
    }
    assert_eq!(node.calls_to("addgossip"), 1, "one update, taken once");
    assert_clean(node);
}

/// A rebalancer whose incoming peer b forwards at most 60,000 sat an HTLC: two parts.
fn in_two_parts() -> (Arc<State<SimNode>>, SimNode) {
    let (r, node) = rebalancer(network(false), pay_at_once());
    let max = json!({"short_channel_id": INC, "source": "b", "htlc_maximum_msat": 60_000 * SAT});
    node.call("dev-set-policy", max).unwrap();
    (r, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incoming_peers_fee_raised_during_the_rebalance_is_paid() {
    let (r, node) = rebalancer(network(false), pay_at_once());
    let before = ours(&node);
    let change = json!({"fee_proportional_millionths": 300});
    let v = while_held_at_m(&r, &node, req(), change).await.unwrap();
    paid_the_new_fee(&node, &v, before, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_sent_on_the_old_fee_are_replaced_on_the_new_one() {
    // Both parts held at m when b's fee rises.
    let (r, node) = in_two_parts();
    let before = ours(&node);
    let change = json!({"fee_proportional_millionths": 300});
    let v = while_n_held_at_m(&r, &node, req(), change, 2)
        .await
        .unwrap();
    paid_the_new_fee(&node, &v, before, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_most_that_moves_is_probed_on_the_incoming_peers_new_fee() {
    // `amount_msat=max` probes first; its first probe meets b's new fee at b's hop to us.
    // Before, that stopped the rebalance.
    let (r, node) = rebalancer(network(false), Config::default());
    let before = ours(&node);
    let mut p = req();
    p.amount_msat = None;
    p.amount_max = true;
    let change = json!({"fee_proportional_millionths": 300});
    let v = while_held_at_m(&r, &node, p, change).await.unwrap();
    moved(&node, &v, before);
    assert!(v["amount_msat"].as_u64().unwrap() > 1_000_000 * SAT, "{v}");
    // 320 ppm: b's new 300 and 10 each at m and a.
    assert_eq!(v["fee_ppm"], 320, "{v}");
    assert_eq!(node.calls_to("addgossip"), 1);
    assert_clean(&node);
}

/// The rebalance run by [`while_held_at_m`] with `change` stops with `code` and a message
/// saying each of `says`, nothing moved, nothing left behind.
async fn stops(r: &Arc<State<SimNode>>, node: &SimNode, change: Value, code: i32, says: &[&str]) {
    let before = ours(node);
    let e = while_held_at_m(r, node, req(), change).await.unwrap_err();
    assert_eq!(e.code, code, "{e}");
    for words in says {
        assert!(e.message.contains(words), "{e}");
    }
    assert_eq!(ours(node), before, "nothing moved, no fee paid");
    assert_clean(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incoming_peers_fee_raised_past_the_cap_is_not_paid() {
    // 20,000 ppm at b's hop to us: above the 1000 ppm cap whatever the way.
    let (r, node) = rebalancer(network(true), pay_at_once());
    let change = json!({"fee_proportional_millionths": 20_000});
    stops(&r, &node, change, 206, &["more than the fee cap"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_hop_failure_its_update_does_not_explain_stops_the_rebalance() {
    // b refuses with fee_insufficient and its policy as it was: nothing to plan on, so the
    // rebalance stops as it always has.
    let (r, node) = rebalancer(network(true), pay_at_once());
    let fail = json!({"short_channel_id": INC, "source": "b", "failcode": "fee_insufficient"});
    node.call("dev-fail", fail).unwrap();
    stops(&r, &node, json!({}), 210, &["incoming peer"]).await;
    assert_eq!(node.calls_to("addgossip"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_policy_the_amount_no_longer_fits_stops_saying_why() {
    // b's new update also cuts its htlc maximum to 10,000 sat: 100,000 sat no longer fits in
    // the 8 parts allowed, so the rebalance stops and says so.
    let (r, node) = rebalancer(network(true), pay_at_once());
    let change = json!({"fee_proportional_millionths": 300, "htlc_maximum_msat": 10_000 * SAT});
    let says = [
        "the incoming peer changed its policy on channel 800002x1x0",
        "forwards between",
    ];
    stops(&r, &node, change, 210, &says).await;
    assert_eq!(node.calls_to("addgossip"), 1);
}

/// `rebalance(p)` with b's policy on its hop to us changed by `change` just before the first
/// `sendpay` (after the plugin read `listpeerchannels`). Nothing is held: every try on the old
/// fee fails as it is sent, before the plugin waits on it, and `waitsendpay` answers it as
/// lightningd answers a waiter that came after the failure, without the failure message. The
/// message comes from the `sendpay_failure` notification.
async fn raised_as_the_first_htlc_went(
    r: &Arc<State<SimNode>>,
    node: &SimNode,
    p: RebalanceParams,
    change: Value,
) -> Result<Value, cln_rebalance::error::RpcFailure> {
    let mut c = json!({"short_channel_id": INC, "source": "b"});
    c.as_object_mut()
        .unwrap()
        .extend(change.as_object().unwrap().clone());
    *node.before_sendpay.lock().unwrap() = Some(("dev-set-policy".into(), c));
    r.rebalance(p).await
}

/// Every try of `v` that failed, as a `waitsendpay` made now answers it: bare, no
/// `raw_message`, at b's hop to us.
fn failed_bare_at_b(node: &SimNode, v: &Value) -> usize {
    let failed: Vec<Value> = node
        .sendpays()
        .into_iter()
        .filter(|p| p["payment_hash"] == v["payment_hash"] && p["status"] == "failed")
        .collect();
    for p in &failed {
        let mut w = json!({"payment_hash": p["payment_hash"], "groupid": p["groupid"]});
        if let Some(partid) = p.get("partid") {
            w["partid"] = partid.clone();
        }
        let (state, _) = node.net.lock().unwrap().waitsendpay_check(&w).unwrap();
        let WaitState::Done(Err(e)) = state else {
            panic!("{p} failed")
        };
        let d = e.to_json()["data"].clone();
        assert_eq!(d["failcodename"], "WIRE_FEE_INSUFFICIENT", "{d}");
        assert_eq!(d["erring_channel"], INC, "{d}");
        assert!(d.get("raw_message").is_none(), "{d}");
    }
    failed.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incoming_peers_new_fee_reaches_a_try_answered_after_its_failure() {
    let (r, node) = rebalancer(network(false), pay_at_once());
    let before = ours(&node);
    let change = json!({"fee_proportional_millionths": 300});
    let v = raised_as_the_first_htlc_went(&r, &node, req(), change)
        .await
        .unwrap();
    assert_eq!(failed_bare_at_b(&node, &v), 1);
    paid_the_new_fee(&node, &v, before, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_that_failed_before_they_were_waited_on_are_replaced_on_the_new_fee() {
    // Both parts failing at b as they are sent.
    let (r, node) = in_two_parts();
    let before = ours(&node);
    let change = json!({"fee_proportional_millionths": 300});
    let v = raised_as_the_first_htlc_went(&r, &node, req(), change)
        .await
        .unwrap();
    assert!(failed_bare_at_b(&node, &v) >= 2, "{v}");
    paid_the_new_fee(&node, &v, before, true);
}

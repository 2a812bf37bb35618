//! A rebalance's first plans while probes check each set before it is paid
//! (`rebalance-probe-first`), in-process over the stand-in's network model: the cheaper, less
//! certain route is probed and paid; when its probe fails nothing is paid on it and the
//! likelier route pays; with probing off the plan is the model's, as before. And before a set
//! in hand is paid, a cheaper one is probed: paid when it carries, costing nothing when not.
//!
//! The network: us -> a (ours), b -> us (the peer's), and two ways from a to b: through `x`,
//! cheap (10 ppm a hop) on channels of 1.5M sat, and through `y`, dear (150 ppm a hop) on
//! channels of 100M sat. For 1M sat the model prices x's way at about 3 bits of risk (a third
//! of a 1.5M sat channel's balances carry it) against y's fifth of a bit: weighed in full, y's
//! way is the better plan; weighed at 0.3, x's. In the `near` network x's channels are of
//! 1.1M sat (one chance in eleven each, some 3.5 bits) and y's hops 90 ppm: even weighed at
//! 0.3, the plan sends part of the amount over y's way (with probing off, all of it), and x's
//! way alone costs under a third of that.

mod common;

use cln_rebalance::config::Config;
use cln_rebalance::params::RebalanceParams;
use cln_standin::simnet::Network;
use common::{
    SimNode, assert_clean, cheap_channel, cheap_policy, hand_made, named_nodes, parts_params,
    pay_at_once, rebalancer,
};
use serde_json::{Value, json};
use std::time::Duration;

const OUT: &str = "800001x1x0";
const INC: &str = "800002x1x0";
const SAT: u64 = 1000;
const AMOUNT: u64 = 1_000_000 * SAT;

/// The two ways, `a -> x` holding `x_sat` on a's side.
fn network(x_sat: u64) -> Network {
    ways(1_500_000, x_sat, 1_400_000, 150)
}

/// The `near` network: x's channels of 1.1M sat, y's hops at 90 ppm.
fn near(x_sat: u64) -> Network {
    ways(1_100_000, x_sat, 1_050_000, 90)
}

/// x's channels of `x_cap_sat`, `x_sat` on a's side of `a -> x` and `xb_sat` on x's of
/// `x -> b`; y's hops at `y_ppm`.
fn ways(x_cap_sat: u64, x_sat: u64, xb_sat: u64, y_ppm: u64) -> Network {
    let names = ["us", "a", "b", "x", "y"];
    let dear =
        json!({"fee_base_msat": 0, "fee_proportional_millionths": y_ppm, "cltv_expiry_delta": 18});
    let dear_channel = |scid: &str, from: &str, to: &str| {
        json!({"short_channel_id": scid, "node1": from, "node2": to,
            "capacity_sat": 100_000_000u64, "node1_msat": 90_000_000_000u64,
            "policy1": dear, "policy2": dear})
    };
    let channels = vec![
        cheap_channel(OUT, "us", "a", 10_000_000, 9_000_000),
        cheap_channel(INC, "us", "b", 10_000_000, 1_000_000),
        cheap_channel("700001x1x0", "a", "x", x_cap_sat, x_sat),
        cheap_channel("700001x1x1", "x", "b", x_cap_sat, xb_sat),
        dear_channel("700002x1x0", "a", "y"),
        dear_channel("700002x1x1", "y", "b"),
    ];
    hand_made(named_nodes(&names), cheap_policy(), channels)
}

fn req(dryrun: bool) -> RebalanceParams {
    RebalanceParams {
        dryrun,
        ..parts_params(OUT, INC, AMOUNT)
    }
}

/// The node a route goes through between the outgoing and the incoming peer.
fn via(v: &Value) -> String {
    let route = v["route"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(route.len(), 4, "us -> a -> ? -> b -> us: {v}");
    route[1]["short_channel_id"].as_str().unwrap().to_string()
}

/// The state of the two channels of x's way.
fn x_way(node: &SimNode) -> Vec<Value> {
    node.channel_state()
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.to_string().contains("700001x1x"))
        .cloned()
        .collect()
}

/// Our two channels' balances.
fn ours(node: &SimNode) -> (u64, u64) {
    (node.to_us(OUT), node.to_us(INC))
}

async fn moved(node: &SimNode, before: (u64, u64), v: &Value) {
    let fee = v["fee_msat"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        ours(node),
        (before.0 - AMOUNT - fee, before.1 + AMOUNT),
        "{v}"
    );
    assert_clean(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_probes_first_the_cheaper_way_is_probed_and_paid() {
    let (r, node) = rebalancer(network(1_400_000), Config::default());
    // Probing off, the model's plan: the likelier, dearer way.
    let (r_off, _) = rebalancer(network(1_400_000), pay_at_once());
    let q = r_off.rebalance(req(true)).await.unwrap();
    assert_eq!(via(&q), "700002x1x0", "{q}");
    let dear_fee = q["fee_msat"].as_u64().unwrap();
    // Probing on: the cheaper way is quoted, probed, and paid.
    let q = r.rebalance(req(true)).await.unwrap();
    assert_eq!(via(&q), "700001x1x0", "{q}");
    let before = ours(&node);
    let v = r.rebalance(req(false)).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(via(&v), "700001x1x0", "{v}");
    assert_eq!(v["attempts"], 1, "{v}");
    assert_eq!(v["probes"], 1, "probed before it was paid: {v}");
    let fee = v["fee_msat"].as_u64().unwrap();
    assert!(fee * 5 < dear_fee, "{fee} against {dear_fee}");
    moved(&node, before, &v).await;
}

/// x's way carries nothing (`a -> x` empty on a's side): its probe fails and is paid nothing,
/// y's way pays, in one attempt.
async fn x_fails_and_y_pays(net: Network) {
    let (r, node) = rebalancer(net, Config::default());
    let x_before = x_way(&node);
    let before = ours(&node);
    let v = r.rebalance(req(false)).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(via(&v), "700002x1x0", "{v}");
    assert_eq!(v["attempts"], 1, "the failed probe is no attempt: {v}");
    assert!(v["probes"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(x_before, x_way(&node), "nothing moved over x's way");
    let sendpays = node.sendpays();
    assert_eq!(
        sendpays
            .iter()
            .filter(|s| s["status"] == "complete")
            .count(),
        1,
        "{sendpays:?}"
    );
    moved(&node, before, &v).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheaper_way_whose_probe_fails_costs_nothing_and_the_likelier_way_pays() {
    x_fails_and_y_pays(network(0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_probing_off_the_plan_is_the_models() {
    for net in [network(1_400_000), near(1_050_000)] {
        let (r, node) = rebalancer(net, pay_at_once());
        let before = ours(&node);
        let v = r.rebalance(req(false)).await.unwrap();
        assert_eq!(v["status"], "complete", "{v}");
        assert_eq!(via(&v), "700002x1x0", "{v}");
        assert_eq!(v["probes"], 0, "{v}");
        moved(&node, before, &v).await;
    }
}

/// The quote's fee: the cheaper first plan sends part of the amount over y's way.
async fn quoted_fee() -> u64 {
    let (r, _) = rebalancer(near(1_050_000), Config::default());
    let q = r.rebalance(req(true)).await.unwrap();
    assert!(q.to_string().contains("700002x1x0"), "{q}");
    q["fee_msat"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheaper_way_that_carries_is_paid_instead_of_the_proven_one() {
    let dear_fee = quoted_fee().await;
    let (r, node) = rebalancer(near(1_050_000), Config::default());
    let before = ours(&node);
    let v = r.rebalance(req(false)).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(via(&v), "700001x1x0", "{v}");
    assert_eq!(v["attempts"], 1, "{v}");
    assert!(
        v["probes"].as_u64().unwrap() >= 1,
        "x's way probed first: {v}"
    );
    let fee = v["fee_msat"].as_u64().unwrap();
    assert!(fee * 3 < dear_fee, "{fee} against {dear_fee}");
    moved(&node, before, &v).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheaper_way_whose_probe_fails_before_the_proven_one_is_paid_costs_nothing() {
    x_fails_and_y_pays(near(0)).await;
}

//! Near its deadline a rebalance weighs the risk double (`flow::urgent_config`): in-process over
//! the stand-in's network model, on the hop clock (a second a hop each way), probing off (each
//! set is paid at once, so each failure is an attempt).
//!
//! The network: us -> a (ours), b -> us (the peer's), and three ways from a to b. Through `x1`
//! and `x2`, cheap (10 and 11 ppm a hop) on channels of 3M sat: for 1M sat the model gives each
//! hop two chances in three, some 1.3 bits of risk a way. Through `y`, dear (100 ppm a hop) on
//! channels of 100M sat: some 0.15 bits. At the model's price (about 102 sat a bit at 1M sat)
//! an x way is the better plan by some 60 sat; weighed double, y's by some 50. x1's way is
//! empty on a's side: the first try goes there (nothing sent yet, so no hurry) and fails at its
//! second hop, 2 s in: a pace of 2 s a hop, 8 s a try of four hops. With 60 s to retry in, the
//! time left holds many more tries and x2's way is tried next (it carries); with 12 s, fewer
//! than three, and y's way pays.

mod common;

use cln_rebalance::clock::ManualClock;
use cln_rebalance::params::RebalanceParams;
use common::{
    SimNode, assert_clean, cheap_channel, cheap_policy, hand_made, hooked, named_nodes,
    parts_params, pay_at_once,
};
use serde_json::{Value, json};
use std::sync::Arc;

const OUT: &str = "800001x1x0";
const INC: &str = "800002x1x0";
const X1: &str = "700001x1x0";
const X2: &str = "700002x1x0";
const Y: &str = "700003x1x0";
const SAT: u64 = 1000;
const AMOUNT: u64 = 1_000_000 * SAT;

fn node(clock: Arc<ManualClock>) -> SimNode {
    let names = ["us", "a", "b", "x1", "x2", "y"];
    let policy = |ppm: u64| json!({"fee_base_msat": 0, "fee_proportional_millionths": ppm, "cltv_expiry_delta": 18});
    let way = |scid: &str, via: &str, capacity_sat: u64, a_sat: u64, ppm: u64| {
        let second = scid.replace("x1x0", "x2x0");
        [(scid.to_string(), "a", via), (second, via, "b")]
            .into_iter()
            .enumerate()
            .map(|(i, (scid, from, to))| {
                // a's side of the first channel holds `a_sat`; the second is full on the way's.
                let from_sat = if i == 0 { a_sat } else { capacity_sat - 10_000 };
                json!({"short_channel_id": scid, "node1": from, "node2": to,
                    "capacity_sat": capacity_sat, "node1_msat": from_sat * 1000,
                    "policy1": policy(ppm), "policy2": policy(ppm)})
            })
            .collect::<Vec<Value>>()
    };
    let mut channels = vec![
        cheap_channel(OUT, "us", "a", 10_000_000, 9_000_000),
        cheap_channel(INC, "b", "us", 10_000_000, 9_000_000),
    ];
    channels.extend(way(X1, "x1", 3_000_000, 0, 10));
    channels.extend(way(X2, "x2", 3_000_000, 2_900_000, 11));
    channels.extend(way(Y, "y", 100_000_000, 90_000_000, 100));
    let net = hand_made(named_nodes(&names), cheap_policy(), channels);
    SimNode::new(net).with_hop_clock(clock, 1000)
}

/// `rebalance` of 1M sat with `retry_for_secs` to retry in, after a dry run that quotes x1's
/// way: its answer and the way it paid over, after checking that one `sendpay` failed before
/// the one that paid, that our channels moved by the amount and its fee, and that nothing was
/// left behind.
async fn rebalance(retry_for_secs: u64) -> (Value, &'static str) {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let node = node(clock.clone());
    let r = hooked(node.clone(), pay_at_once(), clock);
    let p = RebalanceParams {
        retry_for: Some(retry_for_secs),
        ..parts_params(OUT, INC, AMOUNT)
    };
    let q = r
        .rebalance(RebalanceParams {
            dryrun: true,
            ..p.clone()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(way(&q), "x1", "the first plan: {q}");
    let (out_before, inc_before) = (node.to_us(OUT), node.to_us(INC));
    let v = r.rebalance(p).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(v["attempts"], 2, "{v}");
    let fee = v["fee_msat"].as_u64().unwrap();
    assert!(fee <= AMOUNT / 1000, "within the cap: {v}");
    assert_eq!(
        (node.to_us(OUT), node.to_us(INC)),
        (out_before - AMOUNT - fee, inc_before + AMOUNT),
        "{v}"
    );
    let status: Vec<Value> = node
        .sendpays()
        .iter()
        .map(|s| s["status"].clone())
        .collect();
    assert_eq!(status, [json!("failed"), json!("complete")], "{v}");
    assert_clean(&node);
    let paid = way(&v);
    (v, paid)
}

/// The way (x1, x2 or y) of a one-route answer.
fn way(v: &Value) -> &'static str {
    match v["route"][1]["short_channel_id"].as_str() {
        Some(X1) => "x1",
        Some(X2) => "x2",
        Some(Y) => "y",
        _ => panic!("not one route over one of the three ways: {v}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_time_to_spare_the_cheaper_way_is_tried_after_a_failure() {
    let (v, paid) = rebalance(60).await;
    assert_eq!(paid, "x2", "{v}");
    assert!(v["fee_msat"].as_u64().unwrap() < 100 * SAT, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_the_deadline_the_likelier_way_is_tried_after_a_failure() {
    let (v, paid) = rebalance(12).await;
    assert_eq!(paid, "y", "{v}");
}

//! Once three sets of a rebalance have failed, its plans leave out the part penalty: in-process
//! over the stand-in's network model, on the hop clock, probing off (each set is paid at once,
//! so each failure is an attempt).
//!
//! The network: us -> a (ours), b -> us (the peer's), and five ways a -> p1..p5 -> b alike,
//! every p -> b of 2M sat holding 600k sat on p's side: no way carries 1M sat alone, any two
//! carry it in halves. To the model each untried way carries 1M sat at about even odds (a
//! bit of risk) and 500k sat at three in four (0.4 bits): with the part penalty (half a bit a
//! part beyond the first) one route over an untried way is the better plan while there is one,
//! without it parts are.

mod common;

use cln_rebalance::clock::ManualClock;
use common::{
    SimNode, assert_clean, cheap_channel, cheap_policy, hand_made, hooked, named_nodes,
    parts_params, pay_at_once,
};
use serde_json::Value;
use std::sync::Arc;

const OUT: &str = "800001x1x0";
const INC: &str = "800002x1x0";
const SAT: u64 = 1000;
const AMOUNT: u64 = 1_000_000 * SAT;

/// `rebalance` of 1M sat over the five ways, `retry_for` 60 s: its answer, after checking that
/// our channels moved by the amount and its fee and that nothing was left behind.
async fn rebalance() -> (Value, SimNode) {
    let names = ["us", "a", "b", "p1", "p2", "p3", "p4", "p5"];
    let mut channels = vec![
        cheap_channel(OUT, "us", "a", 10_000_000, 9_000_000),
        cheap_channel(INC, "b", "us", 10_000_000, 9_000_000),
    ];
    for i in 1..=5 {
        let p = format!("p{i}");
        channels.push(cheap_channel(
            &format!("70000{i}x1x0"),
            "a",
            &p,
            2_000_000,
            1_900_000,
        ));
        channels.push(cheap_channel(
            &format!("70000{i}x2x0"),
            &p,
            "b",
            2_000_000,
            600_000,
        ));
    }
    let net = hand_made(named_nodes(&names), cheap_policy(), channels);
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let node = SimNode::new(net).with_hop_clock(clock.clone(), 1000);
    let r = hooked(node.clone(), pay_at_once(), clock);
    let (out_before, inc_before) = (node.to_us(OUT), node.to_us(INC));
    let mut p = parts_params(OUT, INC, AMOUNT);
    p.retry_for = Some(60);
    let v = r.rebalance(p).await.unwrap_or_else(|e| panic!("{e}"));
    let fee = v["fee_msat"].as_u64().unwrap();
    assert_eq!(
        (node.to_us(OUT), node.to_us(INC)),
        (out_before - AMOUNT - fee, inc_before + AMOUNT),
        "{v}"
    );
    assert_clean(&node);
    (v, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_three_failed_sets_the_amount_splits() {
    let (v, node) = rebalance().await;
    assert_eq!(v["status"], "complete", "{v}");
    // Three single routes, each failing into b, then the amount in parts. With the penalty
    // kept, every way is tried alone first: five failures, paid by the sixth attempt.
    assert_eq!(v["attempts"], 4, "{v}");
    let sendpays = node.sendpays();
    let failed: Vec<&Value> = sendpays
        .iter()
        .filter(|s| s["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 3, "{sendpays:?}");
    for s in &failed {
        assert_eq!(
            s["amount_msat"].as_u64(),
            Some(AMOUNT),
            "one route each: {s}"
        );
    }
    let parts = v["parts"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert!(parts.len() >= 2, "{v}");
    let amounts: Vec<u64> = parts
        .iter()
        .map(|p| p["amount_msat"].as_u64().unwrap())
        .collect();
    assert_eq!(amounts.iter().sum::<u64>(), AMOUNT, "{v}");
    assert!(amounts.iter().all(|&a| a <= 600_000 * SAT), "{v}");
}

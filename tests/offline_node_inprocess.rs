//! A node between the peers that is offline, in-process over the stand-in's network model: its
//! neighbours answer `temporary_channel_failure` channel by channel, which reads like a drained
//! channel. Once two channels into it have failed so in one rebalance, the rest of that
//! rebalance goes around the node instead of reaching it by its next neighbour.
//!
//! The network: us -> a (ours), b -> us (the peer's); three cheap ways a -> p|q|r -> n -> b,
//! all through `n`, and one dearer way a -> y -> b. Node `n` is offline.
//!
//! On the hop clock the failure reaches a waiting `waitsendpay`, with its `raw_message`: the
//! channel_update of the channel into `n`, disabled (as lightningd sends it when the peer is
//! gone). Then the first failure rules `n` out, the model learns nothing of the channel's
//! liquidity (not that it is drained), and the graph is read again for the next rebalance.

mod common;

use cln_rebalance::clock::ManualClock;
use cln_rebalance::config::Config;
use cln_rebalance::params::RebalanceParams;
use cln_standin::simnet::Network;
use common::{
    SimNode, assert_clean, cheap_policy, hand_made, hooked, named_nodes, nine_of_ten, parts_params,
    pay_at_once, rebalancer,
};
use serde_json::{Value, json};
use std::sync::Arc;

const OUT: &str = "800001x1x0";
const INC: &str = "800002x1x0";
const SAT: u64 = 1000;
const AMOUNT: u64 = 100_000 * SAT;

fn network() -> Network {
    let names = ["us", "a", "b", "n", "p", "q", "r", "y"];
    let mut channels = vec![
        nine_of_ten(OUT, "us", "a", 10),
        // b holds 9M toward us.
        nine_of_ten(INC, "b", "us", 10),
        nine_of_ten("700001x1x0", "n", "b", 10),
        nine_of_ten("700009x1x0", "a", "y", 200),
        nine_of_ten("700009x1x1", "y", "b", 200),
    ];
    for (i, via) in ["p", "q", "r"].iter().enumerate() {
        channels.push(nine_of_ten(&format!("70000{}x1x0", i + 2), "a", via, 10));
        channels.push(nine_of_ten(&format!("70000{}x1x1", i + 2), via, "n", 10));
    }
    hand_made(named_nodes(&names), cheap_policy(), channels)
}

fn req() -> RebalanceParams {
    parts_params(OUT, INC, AMOUNT)
}

async fn around_the_offline_node(config: Config) -> Value {
    let (r, node) = rebalancer(network(), config);
    around(&r, &node).await
}

async fn around(r: &cln_rebalance::state::State<SimNode>, node: &SimNode) -> Value {
    // The graph is read while n is online (gossip says nothing of it going offline for a
    // while): a dry run quotes a way through n.
    let mut dry = req();
    dry.dryrun = true;
    let q = r.rebalance(dry).await.unwrap();
    assert_ne!(q["route"][1]["short_channel_id"], "700009x1x0", "{q}");
    node.call("dev-set-online", json!({"node": "n", "online": false}))
        .unwrap();
    let v = r.rebalance(req()).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    let sendpays = node.sendpays();
    let failed = sendpays.iter().filter(|s| s["status"] == "failed").count();
    assert_eq!(failed + 1, sendpays.len(), "{sendpays:?}");
    // Paid around n: over a -> y.
    assert_eq!(v["route"][1]["short_channel_id"], "700009x1x0", "{v}");
    assert_clean(node);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_channels_into_an_offline_node_failing_rule_it_out() {
    // Failures that bring no channel_update (no notification, and answered after the fact:
    // paying at once): two attempts fail into n (over two of p, q, r), the third goes around.
    let (r, node) = rebalancer(network(), pay_at_once());
    node.failure_notifications
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let v = around(&r, &node).await;
    assert_eq!(v["attempts"], 3, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_update_that_came_by_notification_rules_the_node_out_at_once() {
    // Paying at once, each try has failed before the plugin waits on it: the failure's
    // message, with the disabled update, comes by the `sendpay_failure` notification.
    let v = around_the_offline_node(pay_at_once()).await;
    assert_eq!(v["attempts"], 2, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_probes_first_two_failed_probes_are_enough() {
    let v = around_the_offline_node(Config::default()).await;
    assert_eq!(v["attempts"], 1, "{v}");
    assert!(
        v["probes"].as_u64().unwrap() <= 3,
        "two into n, at most one around: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_whose_update_says_disabled_rules_the_node_out_at_once() {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let node = SimNode::new(network()).with_hop_clock(clock.clone(), 1000);
    let r = hooked(node.clone(), pay_at_once(), clock);
    let v = around(&r, &node).await;
    // One attempt into n (its neighbour's update: disabled), the next around it.
    assert_eq!(v["attempts"], 2, "{v}");
    // No channel into n learned as drained.
    for (cd, _, max, _, _) in r.liquidity().entries() {
        let into_n = ["700002x1x1", "700003x1x1", "700004x1x1"]
            .iter()
            .any(|s| cd.short_channel_id.to_string() == *s);
        assert!(!(into_n && max.is_some()), "{cd:?} bounded at {max:?}");
    }
    // The update was newer than the graph: the next rebalance reads it again.
    let reads = || node.calls_to("listchannels");
    assert_eq!(reads(), 1);
    let mut dry = req();
    dry.dryrun = true;
    r.rebalance(dry).await.unwrap();
    assert_eq!(reads(), 2);
}

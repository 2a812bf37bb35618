//! A channel between the peers whose fee went up after the plugin read the graph, in-process
//! over the stand-in's network model: its node refuses the HTLC with `fee_insufficient` and its
//! new channel_update. The plugin hands the update to gossipd (`addgossip`, as CLN's pay and
//! renepay do), reads the graph again and plans on the new fee in the same rebalance, instead
//! of ruling the channel out and paying a dearer way.
//!
//! The network: us -> a (ours), b -> us (the peer's); a cheap way a -> m -> b (10 ppm a hop)
//! and a dear one a -> y -> b (400 ppm a hop). On the hop clock the failure reaches a waiting
//! `waitsendpay` with its `raw_message`, as on lightningd.

mod common;

use cln_rebalance::clock::ManualClock;
use cln_rebalance::config::Config;
use cln_rebalance::params::RebalanceParams;
use cln_rebalance::state::State;
use cln_standin::simnet::Network;
use common::{
    SimNode, assert_clean, cheap_policy, hand_made, hooked, named_nodes, nine_of_ten, parts_params,
    pay_at_once,
};
use serde_json::{Value, json};
use std::sync::Arc;

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

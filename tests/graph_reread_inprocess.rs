//! A rebalance refused on an old copy of the graph plans once more on a fresh one, in-process
//! over the stand-in's network model. The stand-in lists a channel disabled while one of its
//! ends is offline (lightningd, once a forward over it found the end offline); the plugin
//! keeps its copy of the graph for `rebalance-graph-refresh` (300 s), so a node back online
//! meanwhile still looks cut off to it.
//!
//! The network: us -> a (ours), b -> us (the peer's), and one way a -> n -> b. Node `n` is
//! offline when the graph is first read (a dry run finds no route), then comes back.

mod common;

use cln_rebalance::clock::ManualClock;
use cln_rebalance::config::Config;
use cln_rebalance::error::PAY_ROUTE_NOT_FOUND;
use cln_rebalance::params::RebalanceParams;
use cln_rebalance::state::State;
use cln_standin::simnet::Network;
use common::{
    SimNode, assert_clean, cheap_channel, cheap_policy, hand_made, hooked, named_nodes,
    parts_params,
};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const OUT: &str = "800001x1x0";
const INC: &str = "800002x1x0";
const SAT: u64 = 1000;
const AMOUNT: u64 = 200_000 * SAT;

fn network() -> Network {
    let names = ["us", "a", "b", "n"];
    let channels = vec![
        cheap_channel(OUT, "us", "a", 10_000_000, 9_000_000),
        cheap_channel(INC, "us", "b", 10_000_000, 1_000_000),
        cheap_channel("700001x1x0", "a", "n", 5_000_000, 4_000_000),
        cheap_channel("700002x1x0", "n", "b", 5_000_000, 4_000_000),
    ];
    hand_made(named_nodes(&names), cheap_policy(), channels)
}

fn setup() -> (Arc<State<SimNode>>, SimNode, Arc<ManualClock>) {
    let node = SimNode::new(network());
    let clock = Arc::new(ManualClock::new(1_770_000_000_000));
    let r = hooked(node.clone(), Config::default(), clock.clone());
    (r, node, clock)
}

fn req(dryrun: bool) -> RebalanceParams {
    RebalanceParams {
        dryrun,
        ..parts_params(OUT, INC, AMOUNT)
    }
}

/// The graph is read while `n` is offline: no route.
async fn read_while_offline(r: &State<SimNode>, node: &SimNode) {
    node.call("dev-set-online", json!({"node": "n", "online": false}))
        .unwrap();
    let e = r.rebalance(req(true)).await.unwrap_err();
    assert_eq!(e.code, PAY_ROUTE_NOT_FOUND, "{e:?}");
    assert_eq!(node.listchannels_calls.load(Ordering::SeqCst), 1);
    node.call("dev-set-online", json!({"node": "n", "online": true}))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_on_a_graph_a_minute_old_plans_again_on_a_fresh_one() {
    let (r, node, clock) = setup();
    read_while_offline(&r, &node).await;
    clock.advance_ms(90_000);
    let before = (node.to_us(OUT), node.to_us(INC));
    let v = r.rebalance(req(false)).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(node.listchannels_calls.load(Ordering::SeqCst), 2, "{v}");
    let fee = v["fee_msat"].as_u64().unwrap();
    assert!(fee <= AMOUNT / 1000, "{v}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        (node.to_us(OUT), node.to_us(INC)),
        (before.0 - AMOUNT - fee, before.1 + AMOUNT),
        "{v}"
    );
    assert_clean(&node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_read_moments_ago_is_not_read_again() {
    let (r, node, clock) = setup();
    read_while_offline(&r, &node).await;
    clock.advance_ms(10_000);
    // Still refused on the copy of ten seconds ago: a refusal rereads at most once a minute.
    let e = r.rebalance(req(false)).await.unwrap_err();
    assert_eq!(e.code, PAY_ROUTE_NOT_FOUND, "{e:?}");
    assert_eq!(node.listchannels_calls.load(Ordering::SeqCst), 1);
    assert!(node.sendpays().is_empty());
    assert_clean(&node);
}

//! A rebalance the model believes nothing can carry, in-process over the stand-in's network
//! model: beliefs fade and may be out of date, so the cheapest set by fees is still tried
//! (probed first), as the cheapest single route always was, instead of the rebalance being
//! refused with "no set of at most N parts carries ...".
//!
//! The network: us -> a (ours), b -> us (the peer's), and two ways from a to b, through `x`
//! and through `y`, on channels of 1.5M sat holding 1.2M on the side toward b. The model is
//! taught that a -> x and a -> y each failed at 300k sat, at the very instant the rebalance
//! runs (a clock that stands still), so it gives any amount from 300k sat on them no chance
//! at all: by its beliefs no set carries 1M sat.

mod common;

use cln_rebalance::clock::ManualClock;
use cln_rebalance::config::Config;
use cln_rebalance::core::graph::Scid;
use cln_rebalance::core::liquidity::ChanDir;
use cln_rebalance::params::RebalanceParams;
use cln_rebalance::state::State;
use cln_standin::simnet::Network;
use common::{
    SimNode, assert_clean, cheap_channel, cheap_policy, hand_made, hooked, named_nodes,
    parts_params,
};
use std::sync::Arc;
use std::time::Duration;

const OUT: &str = "800001x1x0";
const INC: &str = "800002x1x0";
const A_X: &str = "700001x1x0";
const A_Y: &str = "700002x1x0";
const SAT: u64 = 1000;
const AMOUNT: u64 = 1_000_000 * SAT;
const CAPACITY: u64 = 1_500_000 * SAT;

fn network() -> Network {
    let names = ["us", "a", "b", "x", "y"];
    let channels = vec![
        cheap_channel(OUT, "us", "a", 10_000_000, 9_000_000),
        cheap_channel(INC, "us", "b", 10_000_000, 1_000_000),
        cheap_channel(A_X, "a", "x", 1_500_000, 1_200_000),
        cheap_channel("700001x1x1", "x", "b", 1_500_000, 1_200_000),
        cheap_channel(A_Y, "a", "y", 1_500_000, 1_200_000),
        cheap_channel("700002x1x1", "y", "b", 1_500_000, 1_200_000),
    ];
    hand_made(named_nodes(&names), cheap_policy(), channels)
}

/// A rebalancer whose clock stands still, taught that a's channels to x and y each failed
/// at 300k sat just now.
fn taught(config: Config) -> (Arc<State<SimNode>>, SimNode) {
    let node = SimNode::new(network());
    let clock = Arc::new(ManualClock::new(1_770_000_000_000));
    let r = hooked(node.clone(), config, clock);
    let now = r.now_secs();
    let half_life = r.config.model.half_life_secs;
    let mut m = r.model.lock();
    for scid in [A_X, A_Y] {
        // a's id sorts before x's and y's: a -> x and a -> y are direction 0.
        let cd = ChanDir::new(scid.parse::<Scid>().unwrap(), 0);
        m.failed(cd, 300_000 * SAT, CAPACITY, now, half_life);
        assert_eq!(
            m.probability(cd, 300_000 * SAT, CAPACITY, now, &r.config.model),
            0.0
        );
    }
    drop(m);
    (r, node)
}

fn req(dryrun: bool) -> RebalanceParams {
    RebalanceParams {
        dryrun,
        ..parts_params(OUT, INC, AMOUNT)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_the_model_rules_out_is_still_probed_and_paid() {
    let (r, node) = taught(Config::default());
    // The quote: a set by fees, not a refusal.
    let q = r.rebalance(req(true)).await.unwrap();
    assert!(q["fee_msat"].as_u64().unwrap() <= AMOUNT / 1000, "{q}");
    let before = (node.to_us(OUT), node.to_us(INC));
    let v = r.rebalance(req(false)).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(v["attempts"], 1, "{v}");
    assert!(
        v["probes"].as_u64().unwrap() >= 1,
        "probed before it was paid: {v}"
    );
    let fee = v["fee_msat"].as_u64().unwrap();
    assert!(fee <= AMOUNT / 1000, "within the cap: {v}");
    moved(&node, before, &v).await;
    // What the probe and the payment showed replaced the stale belief on a way they took.
    let now = r.now_secs();
    let m = r.model.lock();
    let carried = [A_X, A_Y].iter().any(|scid| {
        let cd = ChanDir::new(scid.parse::<Scid>().unwrap(), 0);
        m.probability(cd, 300_000 * SAT, CAPACITY, now, &r.config.model) > 0.0
    });
    assert!(carried, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_probing_off_it_is_paid_at_once() {
    let (r, node) = taught(common::pay_at_once());
    let before = (node.to_us(OUT), node.to_us(INC));
    let v = r.rebalance(req(false)).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(v["probes"].as_u64().unwrap_or(0), 0, "{v}");
    moved(&node, before, &v).await;
}

/// The amount left the outgoing channel with its fee and came in over the incoming one;
/// nothing is left behind.
async fn moved(node: &SimNode, before: (u64, u64), v: &serde_json::Value) {
    let fee = v["fee_msat"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        (node.to_us(OUT), node.to_us(INC)),
        (before.0 - AMOUNT - fee, before.1 + AMOUNT),
        "{v}"
    );
    assert_clean(node);
}

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

use cln_rebalance::config::Config;
use cln_rebalance::params::RebalanceParams;
use cln_rebalance::state::State;
use common::two_ways::{CAPACITY, INC, OUT, SAT, a_out, taught};
use common::{SimNode, assert_clean, parts_params};
use std::sync::Arc;
use std::time::Duration;

const AMOUNT: u64 = 1_000_000 * SAT;

/// What the stale tests run on: a holds 1.2M toward x and y; both failed at 300k sat just now,
/// so the model gives 300k sat and more on them no chance at all.
fn stale(config: Config) -> (Arc<State<SimNode>>, SimNode) {
    let (r, node) = taught(1_200_000, 300_000, config);
    let now = r.now_secs();
    let m = r.model.lock();
    for cd in a_out() {
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
    let (r, node) = stale(Config::default());
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
    let carried = a_out()
        .into_iter()
        .any(|cd| m.probability(cd, 300_000 * SAT, CAPACITY, now, &r.config.model) > 0.0);
    assert!(carried, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_probing_off_it_is_paid_at_once() {
    let (r, node) = stale(common::pay_at_once());
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

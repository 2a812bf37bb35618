//! A set whose parts the incoming peer splits between its channels to us, in-process over the
//! stand-in's network model. The peer forwards over whichever of its channels to us has the
//! most spendable (lightningd's non-strict forwarding), and each part held on the incoming
//! channel lowers its spendable: a later part goes over the other channel, and the arrival
//! check refuses the whole set (no fee). The rest of the rebalance then goes as one HTLC,
//! which the peer forwards over the incoming channel; where no one route carries the amount,
//! the answer is the refusal, as before.
//!
//! The network: us -> a (ours); b -> us twice, the incoming channel with 5M sat on b's side and
//! another with 4.5M; two ways a -> x -> b and a -> y -> b.

mod common;

use cln_rebalance::config::Config;
use cln_rebalance::params::RebalanceParams;
use cln_standin::simnet::Network;
use common::{
    assert_clean, cheap_channel, cheap_policy, hand_made, named_nodes, parts_params, rebalancer,
};

const OUT: &str = "800001x1x0";
const INC: &str = "800002x1x0";
const OTHER: &str = "800003x1x0";
const SAT: u64 = 1000;
const AMOUNT: u64 = 2_000_000 * SAT;

/// The ways' channels of `way_sat`, holding all but 10% on the side toward b.
fn network(way_sat: u64) -> Network {
    let names = ["us", "a", "b", "x", "y"];
    let toward_b = way_sat / 10 * 9;
    let channels = vec![
        cheap_channel(OUT, "us", "a", 10_000_000, 9_000_000),
        cheap_channel(INC, "us", "b", 6_000_000, 1_000_000),
        cheap_channel(OTHER, "us", "b", 6_000_000, 1_500_000),
        cheap_channel("700001x1x0", "a", "x", way_sat, toward_b),
        cheap_channel("700001x1x1", "x", "b", way_sat, toward_b),
        cheap_channel("700002x1x0", "a", "y", way_sat, toward_b),
        cheap_channel("700002x1x1", "y", "b", way_sat, toward_b),
    ];
    hand_made(named_nodes(&names), cheap_policy(), channels)
}

fn req() -> RebalanceParams {
    parts_params(OUT, INC, AMOUNT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_sent_over_another_channel_are_refused_then_one_htlc_pays() {
    // Ways of 2.5M sat: one route carries 2M, but two parts of 1M are likelier (the plan).
    let (r, node) = rebalancer(network(2_500_000), Config::default());
    let mut dry = req();
    dry.dryrun = true;
    let q = r.rebalance(dry).await.unwrap();
    assert!(q["parts"].as_array().is_some_and(|p| p.len() >= 2), "{q}");
    let before = (node.to_us(OUT), node.to_us(INC), node.to_us(OTHER));
    let v = r.rebalance(req()).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(v["attempts"], 2, "the refused set, then one HTLC: {v}");
    let fee = v["fee_msat"].as_u64().unwrap();
    assert!(fee <= AMOUNT / 1000, "{v}");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        (node.to_us(OUT), node.to_us(INC), node.to_us(OTHER)),
        (before.0 - AMOUNT - fee, before.1 + AMOUNT, before.2),
        "the refused set cost nothing, the HTLC came in over the incoming channel: {v}"
    );
    // The refused set: parts over both of b's channels, none settled.
    let sendpays = node.sendpays();
    let complete = sendpays
        .iter()
        .filter(|s| s["status"] == "complete")
        .count();
    assert_eq!(complete, 1, "{sendpays:?}");
    assert_clean(&node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_one_route_that_carries_it_the_refusal_is_the_answer() {
    // Ways of 1.2M sat: only parts carry 2M sat, and b sends one over its other channel.
    let (r, node) = rebalancer(network(1_200_000), Config::default());
    let before = (node.to_us(OUT), node.to_us(INC), node.to_us(OTHER));
    let e = r.rebalance(req()).await.unwrap_err();
    assert_eq!(e.code, 210, "{e}");
    assert!(
        e.message
            .contains(&format!("came back over channel {OTHER}")),
        "{}",
        e.message
    );
    let data = e.data.unwrap();
    assert_eq!(data["arrived_on"], OTHER, "{data}");
    assert!(
        data["attempts"].as_array().is_some_and(|a| !a.is_empty()),
        "{data}"
    );
    assert_eq!(
        (node.to_us(OUT), node.to_us(INC), node.to_us(OTHER)),
        before,
        "nothing moved, no fee paid"
    );
    assert_clean(&node);
}

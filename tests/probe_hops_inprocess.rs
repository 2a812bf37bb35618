//! A probe call prices hops (`Config::probe_hop_bits`): its answer waits for every hop there and back,
//! so it takes a short way over a cheaper long one; a rebalance after it, planned on the same
//! view of the model, prices fees and risk only and takes the cheap long way (paying at once:
//! the cheap-first plan a probed rebalance starts from weighs risk, and hops with it, less).
//!
//! The network: us -> a (ours), then a -> x -> b at 90 ppm a hop, or a -> p -> q -> r -> b at
//! 1 ppm a hop, b -> us (the peer's). For 100k sat the short way costs 18 sat in fees, the
//! long one under 1 sat: two hops more (each priced 12 sat by the probe's hop bits, a few sat
//! of risk otherwise).

mod common;

use cln_standin::simnet::Network;
use common::{
    cheap_channel, cheap_policy, hand_made, named_nodes, parts_params, pay_at_once, probe_params,
    rebalancer, untouched,
};
use serde_json::{Value, json};

const OUT: &str = "800001x1x0";
const INC: &str = "800002x1x0";
const SAT: u64 = 1000;

fn network() -> Network {
    let names = ["us", "a", "b", "x", "p", "q", "r"];
    let mut channels = vec![
        cheap_channel(OUT, "us", "a", 5_000_000, 4_000_000),
        cheap_channel(INC, "us", "b", 5_000_000, 1_000_000),
    ];
    let ways: [(&[&str], u32); 2] = [(&["a", "x", "b"], 90), (&["a", "p", "q", "r", "b"], 1)];
    for (w, (nodes, ppm)) in ways.iter().enumerate() {
        let policy = json!({"fee_base_msat": 0, "fee_proportional_millionths": ppm,
                            "cltv_expiry_delta": 18});
        for (j, pair) in nodes.windows(2).enumerate() {
            channels.push(json!({"short_channel_id": format!("70000{}x1x{j}", w + 1),
                "node1": pair[0], "node2": pair[1], "capacity_sat": 1_000_000,
                "node1_msat": 900_000 * SAT, "policy1": policy, "policy2": policy}));
        }
    }
    hand_made(named_nodes(&names), cheap_policy(), channels)
}

/// The hops between our own two of the (first) part of `v`.
fn middle_hops(v: &Value) -> usize {
    let part = &v["parts"][0];
    let route = part["route"]
        .as_array()
        .or_else(|| v["route"].as_array())
        .unwrap_or_else(|| panic!("no route: {v}"));
    route.len() - 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_takes_the_short_way_and_a_rebalance_after_it_the_cheap_one() {
    let (r, node) = rebalancer(network(), pay_at_once());
    let before = node.channel_state();
    let amount = 100_000 * SAT;
    let v = r
        .rebalance_probe(probe_params(OUT, INC, Some(amount)), None)
        .await
        .unwrap();
    assert_eq!(v["feasible"], true, "{v}");
    assert_eq!(middle_hops(&v), 2, "the probe went the short way: {v}");
    untouched(&node, &before);
    // The same rebalancer (the same view of the model, handed on): fees and risk only.
    let mut p = parts_params(OUT, INC, amount);
    p.dryrun = true;
    let quote = r.rebalance(p).await.unwrap();
    assert_eq!(quote["status"], "dryrun", "{quote}");
    assert_eq!(
        middle_hops(&quote),
        4,
        "the quote takes the cheap way: {quote}"
    );
    assert!(quote["fee_msat"].as_u64().unwrap() < 10 * SAT, "{quote}");
}

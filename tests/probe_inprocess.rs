//! Probes proving what a set puts on channels its parts share, in-process over the stand-in's
//! network model. Parts go out one probe at a time through our channel, so each probe proves
//! its own part's amount; where parts share channels from the outgoing peer on, a probe
//! carrying their sum to the node where they part ways (which, knowing no such payment, fails
//! it at once) proves what they put there together, and only then does the set count.
//!
//! The network: us -> a (ours), a -> m (shared by every part), then two ways m -> x -> b and
//! m -> y -> b of 600,000 sat each, b -> us (the peer's). 1M sat needs both ways, so two
//! parts, both over a -> m.

mod common;

use cln_rebalance::config::Config;
use cln_standin::simnet::Network;
use common::{
    cheap_channel, cheap_policy, hand_made, named_nodes, node_id as id, probe_params, rebalancer,
    untouched,
};
use serde_json::json;

const OUT: &str = "800001x1x0";
const INC: &str = "800002x1x0";
const SHARED: &str = "700001x1x0";
const SAT: u64 = 1000;

/// The defaults, but probe calls price hops as payments do (`probe_hop_bits` 0): these
/// graphs test how the search proves sets, on sets of parts a price on hops would plan fewer
/// of (each part's hops priced at the whole amount's rate) - `probe_hops_inprocess.rs`
/// tests that price.
fn hops_unpriced() -> Config {
    Config {
        probe_hop_bits: 0.0,
        ..Config::default()
    }
}

/// The fork network, `a -> m` holding `shared_sat` on a's side.
fn fork(shared_sat: u64) -> Network {
    let names = ["us", "a", "b", "m", "x", "y"];
    let nodes = named_nodes(&names);
    let mut channels = vec![
        cheap_channel(OUT, "us", "a", 5_000_000, 4_000_000),
        cheap_channel(INC, "us", "b", 5_000_000, 1_000_000),
        cheap_channel(SHARED, "a", "m", 3_000_000, shared_sat),
    ];
    channels.extend(ways_from_m());
    hand_made(nodes, cheap_policy(), channels)
}

/// m -> x -> b and m -> y -> b, 600,000 sat of 1M sat on the sending side of each channel.
fn ways_from_m() -> Vec<serde_json::Value> {
    let mut channels = Vec::new();
    for (k, mid) in ["x", "y"].iter().enumerate() {
        for (j, (from, to)) in [("m", *mid), (*mid, "b")].iter().enumerate() {
            let scid = format!("70001{}x1x{j}", k + 1);
            channels.push(cheap_channel(&scid, from, to, 1_000_000, 600_000));
        }
    }
    channels
}

fn probe(amount_msat: Option<u64>) -> cln_rebalance::params::ProbeParams {
    probe_params(OUT, INC, amount_msat)
}

/// The probes that ended at `m` (where the parts part ways), with their amounts.
fn to_m(node: &common::SimNode) -> Vec<u64> {
    node.sendpays()
        .iter()
        .filter(|s| s["destination"] == id(3))
        .map(|s| s["amount_msat"].as_u64().unwrap_or(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_sharing_channels_are_proven_together_by_a_probe_to_where_they_part() {
    let (r, node) = rebalancer(fork(2_000_000), hops_unpriced());
    let before = node.channel_state();
    let amount = 1_000_000 * SAT;
    let v = r.rebalance_probe(probe(Some(amount)), None).await.unwrap();
    assert_eq!(v["feasible"], true, "a -> m holds both parts: {v}");
    let parts = v["parts"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(parts.len(), 2, "{v}");
    // One probe carried both parts' worth to m, and m failed it (it knows no such payment).
    let shared = to_m(&node);
    assert_eq!(shared.len(), 1, "{:?}", node.sendpays());
    assert!(shared[0] >= amount, "{shared:?}");
    untouched(&node, &before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_that_each_carry_alone_do_not_move_when_the_shared_channel_cannot_hold_both() {
    // a -> m holds 700,000 sat: each 500,000 sat part reaches us alone, both together cannot.
    let (r, node) = rebalancer(fork(700_000), hops_unpriced());
    let before = node.channel_state();
    let v = r
        .rebalance_probe(probe(Some(1_000_000 * SAT)), None)
        .await
        .unwrap();
    assert_eq!(v["feasible"], false, "{v}");
    let most = r.rebalance_probe(probe(None), None).await.unwrap();
    let max = most["max_msat"].as_u64().unwrap();
    assert!(
        max > 500_000 * SAT && max <= 700_000 * SAT,
        "more than one part's worth, never more than a -> m holds: {most}"
    );
    // A set whose parts were each proven but whose sum on a -> m cannot be is not planned and
    // "probed" again without sending anything until the call's deadline (60 s).
    assert!(most["duration_ms"].as_u64().unwrap() < 30_000, "{most}");
    assert!(v["duration_ms"].as_u64().unwrap() < 30_000, "{v}");
    untouched(&node, &before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_can_move_answers_zero_not_an_error_about_an_amount_never_given() {
    // m offline: no way from a to b at all. The search goes down to the peers' smallest HTLC
    // and stops there with "nothing", not an error about an amount the caller never gave.
    let mut net = fork(2_000_000);
    net.nodes[3].online = false;
    for c in &mut net.channels {
        for p in &mut c.policy {
            p.htlc_minimum_msat = 1000 * SAT;
        }
    }
    let (r, node) = rebalancer(net, hops_unpriced());
    let before = node.channel_state();
    let most = r
        .rebalance_probe(probe(None), None)
        .await
        .unwrap_or_else(|e| panic!("{} {}", e.code, e.message));
    assert_eq!(most["max_msat"], 0, "{most}");
    // m's channels look disabled in gossip: no route to probe at any amount.
    assert_eq!(most["probes"], 0, "{most}");
    untouched(&node, &before);
}

/// Two ways from a to `end`: a -> x -> `end` holding `x_sat` and a -> y -> `end` holding
/// `y_sat` on the sending side, every channel of 1.2M sat; and `more`.
fn two_ways_to(end: &str, x_sat: u64, y_sat: u64, more: Vec<serde_json::Value>) -> Network {
    let names = ["us", "a", "b", "x", "y", "z", "w"];
    let nodes = named_nodes(&names);
    let mut channels = vec![
        cheap_channel(OUT, "us", "a", 5_000_000, 4_000_000),
        cheap_channel(INC, "us", "b", 5_000_000, 1_000_000),
        cheap_channel("700001x1x0", "a", "x", 1_200_000, x_sat),
        cheap_channel("700001x1x1", "x", end, 1_200_000, x_sat),
        cheap_channel("700002x1x0", "a", "y", 1_200_000, y_sat),
        cheap_channel("700002x1x1", "y", end, 1_200_000, y_sat),
    ];
    channels.extend(more);
    hand_made(nodes, cheap_policy(), channels)
}

/// Two ways from a that meet again at z before b: [`two_ways_to`] z holding `way_sat` each,
/// then z -> b with plenty; and `more`.
fn rejoin(way_sat: u64, mut more: Vec<serde_json::Value>) -> Network {
    more.push(cheap_channel("700003x1x0", "z", "b", 5_000_000, 4_000_000));
    two_ways_to("z", way_sat, way_sat, more)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amount_whose_parts_meet_again_is_proven_by_one_route() {
    // 1M sat: the model splits it over both ways (a whole 1M sat on 1.2M sat channels looks
    // unlikely to it). Each part reaches us, but no probe can prove both together on z -> b;
    // one route for the whole amount can, and does: every channel of either way holds it.
    let (r, node) = rebalancer(rejoin(1_150_000, vec![]), hops_unpriced());
    let before = node.channel_state();
    let v = r
        .rebalance_probe(probe(Some(1_000_000 * SAT)), None)
        .await
        .unwrap();
    assert_eq!(v["feasible"], true, "{v}");
    let probed: Vec<u64> = node
        .sendpays()
        .iter()
        .map(|s| s["amount_msat"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(
        probed,
        [500_000 * SAT, 500_000 * SAT, 1_000_000 * SAT],
        "the two parts, then the whole amount as one route"
    );
    assert_eq!(v["parts"].as_array().map(Vec::len), Some(1), "{v}");
    untouched(&node, &before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_carried_is_not_probed_again_for_a_little_more() {
    // The search needs both ways and narrows in on what each holds: after a failure the model
    // plans the way that carried a little above what it carried (it prices the rest as nearly
    // sure). That part is cut to what was proven instead of being probed again (before: 1-3
    // such probes a call here, each proving next to nothing).
    for (x, y) in [(700_000, 450_000), (900_000, 300_000), (1_100_000, 650_000)] {
        let (r, node) = rebalancer(two_ways_to("b", x, y, vec![]), hops_unpriced());
        let before = node.channel_state();
        let most = r.rebalance_probe(probe(None), None).await.unwrap();
        // Each probe: its channels, what it delivered, whether it reached us (failed at the end).
        let routes: Vec<(String, u64, bool)> = node
            .net
            .lock()
            .unwrap()
            .payments
            .iter()
            .map(|p| {
                let via: Vec<&str> = p.route.iter().map(|h| h.scid.as_str()).collect();
                (
                    via.join(">"),
                    p.amount_msat,
                    p.failure
                        .as_ref()
                        .is_some_and(|f| f.erring_index == p.route.len()),
                )
            })
            .collect();
        // Every probe of a route after it reached us, for at most 1/64 more than it carried.
        let again: Vec<(&String, u64, u64)> = routes
            .iter()
            .enumerate()
            .flat_map(|(i, (via, amount, _))| {
                routes[..i]
                    .iter()
                    .filter(move |(v, a, carried)| {
                        *carried && v == via && amount > a && amount - a <= a / 64
                    })
                    .map(move |(_, a, _)| (via, *a, *amount))
            })
            .collect();
        assert!(
            again.is_empty(),
            "{x}/{y} sat: routes probed again for a little more than they carried: {again:?}"
        );
        let max = most["max_msat"].as_u64().unwrap();
        assert!(
            max <= (x + y) * SAT && max >= (x + y) * SAT / 10 * 9,
            "{x}/{y} sat: most of both ways, never more: {most}"
        );
        untouched(&node, &before);
    }
}

/// [`rejoin`] with 600,000 sat on each way, and a dearer way on from y that does not meet the
/// other again: y -> w -> b (1.15M sat, 200 ppm a hop).
fn rejoin_or_not() -> Network {
    let mut dear_y_w = cheap_channel("700004x1x0", "y", "w", 1_200_000, 1_150_000);
    let mut dear_w_b = cheap_channel("700004x1x1", "w", "b", 1_200_000, 1_150_000);
    for c in [&mut dear_y_w, &mut dear_w_b] {
        c["policy1"]["fee_proportional_millionths"] = json!(200);
    }
    rejoin(600_000, vec![dear_y_w, dear_w_b])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_meeting_again_give_way_to_a_way_whose_sum_probes_can_prove() {
    // Through z the two ways are cheapest, but what they put on z -> b together no probe can
    // prove (one at a time through our channel), and no one route carries both ways' worth.
    // Once that one route failed, z -> b is planned at no more than was proven there, so the
    // rest goes by y -> w -> b and the answer is both ways' worth, every bit of it proven
    // (before: one way's worth).
    let (r, node) = rebalancer(rejoin_or_not(), hops_unpriced());
    let before = node.channel_state();
    let most = r.rebalance_probe(probe(None), None).await.unwrap();
    let max = most["max_msat"].as_u64().unwrap();
    assert!(
        max > 1_000_000 * SAT && max <= 1_200_000 * SAT,
        "both ways' worth (a -> x and a -> y hold 600,000 sat each): {most}"
    );
    let parts = most["parts"].as_array().unwrap_or_else(|| panic!("{most}"));
    let via_w = parts
        .iter()
        .filter(|p| p.to_string().contains("700004x1x1"))
        .count();
    assert_eq!(
        (parts.len(), via_w),
        (2, 1),
        "one part through z, one through w: {most}"
    );
    untouched(&node, &before);
}

/// Two channels a -> m at the same fees, 2M sat each, `big_sat` and `small_sat` on a's side;
/// from m [`ways_from_m`], holding 600,000 sat each. a forwards
/// non-strictly (lightningd's `best_channel`): a part asked of either a -> m channel goes over
/// the one with the most spendable.
fn parallel(big_sat: u64, small_sat: u64) -> Network {
    let names = ["us", "a", "b", "m", "x", "y"];
    let mut channels = vec![
        cheap_channel(OUT, "us", "a", 5_000_000, 4_000_000),
        cheap_channel(INC, "us", "b", 5_000_000, 1_000_000),
        cheap_channel("700001x1x0", "a", "m", 2_000_000, big_sat),
        cheap_channel("700001x2x0", "a", "m", 2_000_000, small_sat),
    ];
    channels.extend(ways_from_m());
    hand_made(named_nodes(&names), cheap_policy(), channels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_over_parallel_channels_are_not_proven_by_the_same_liquidity_twice() {
    // a -> m holds 900,000 sat on one channel and nothing on the other, so 900,000 sat can move
    // (600,000 by one way, 300,000 by the other). A set of two parts, one asked of each a -> m
    // channel, has each part's probe reach us alone (a sends each over the full channel), but
    // together they cannot go: one channel's worth is all that can be proven there (before:
    // both channels "proven", 1.2M sat claimed).
    let (r, node) = rebalancer(parallel(900_000, 0), hops_unpriced());
    let before = node.channel_state();
    let most = r.rebalance_probe(probe(None), None).await.unwrap();
    let max = most["max_msat"].as_u64().unwrap();
    assert!(
        (500_000 * SAT..=900_000 * SAT).contains(&max),
        "no more than the full channel holds: {most}"
    );
    let v = r
        .rebalance_probe(probe(Some(1_100_000 * SAT)), None)
        .await
        .unwrap();
    assert_eq!(v["feasible"], false, "{v}");
    untouched(&node, &before);
}

//! A rebalance that runs out of `retry_for` says where its tries failed when one peer's side
//! was short: the channels into the incoming peer, or out of the outgoing one. In-process over
//! the stand-in's network model, on the hop clock (each failure costs 1 s a hop each way).
//!
//! The network: us -> a (ours), b -> us (the peer's), and six ways a -> p1..p6 -> b. Either
//! every p -> b is empty (b gets nothing from its other peers) or every a -> p is (a has
//! nothing to send on), or some of each (no side to name: then how long a try took).

mod common;

use cln_rebalance::clock::ManualClock;
use common::{
    SimNode, assert_clean, cheap_channel, cheap_policy, hand_made, hooked, named_nodes,
    nine_of_ten, node_id, one_route_params, pay_at_once,
};
use std::sync::Arc;

const OUT: &str = "800001x1x0";
const INC: &str = "800002x1x0";
const SAT: u64 = 1000;

/// `rebalance` of 100,000 sat on the network whose ways are empty into b (`into_b`) or out
/// of a, with `retry_for` 10 s (or `long`: 60 s, time to try all six): its error, after
/// checking nothing moved and nothing was left behind.
async fn gives_up(into_b: bool, long: bool) -> cln_rebalance::error::RpcFailure {
    gives_up_on(|_| into_b, long).await
}

/// [`gives_up`] with way `i` (1-6) empty into b where `into_b(i)`, else out of a.
async fn gives_up_on(into_b: impl Fn(u32) -> bool, long: bool) -> cln_rebalance::error::RpcFailure {
    let names = ["us", "a", "b", "p1", "p2", "p3", "p4", "p5", "p6"];
    let mut channels = vec![
        nine_of_ten(OUT, "us", "a", 10),
        nine_of_ten(INC, "b", "us", 10),
    ];
    for i in 1..=6 {
        let p = format!("p{i}");
        let (a_side, p_side) = if into_b(i) {
            (9_000_000, 0)
        } else {
            (0, 9_000_000)
        };
        channels.push(cheap_channel(
            &format!("70000{i}x1x0"),
            "a",
            &p,
            10_000_000,
            a_side,
        ));
        channels.push(cheap_channel(
            &format!("70000{i}x2x0"),
            &p,
            "b",
            10_000_000,
            p_side,
        ));
    }
    let net = hand_made(named_nodes(&names), cheap_policy(), channels);
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let node = SimNode::new(net).with_hop_clock(clock.clone(), 1000);
    let r = hooked(node.clone(), pay_at_once(), clock);
    let before = node.channel_state();
    let mut p = one_route_params(OUT, INC, 100_000 * SAT);
    if long {
        p.retry_for = Some(60);
    }
    let e = r.rebalance(p).await.unwrap_err();
    assert_eq!(node.channel_state(), before, "nothing moved");
    assert_clean(&node);
    e
}

/// Out of time with the ways empty into b (`into_b`) or out of a: 210, naming that peer and
/// what may go instead, its failures counted on that side.
async fn out_of_time_naming(into_b: bool) {
    let e = gives_up(into_b, false).await;
    assert_eq!(e.code, 210, "{e}");
    assert!(e.message.starts_with("gave up after 10s and "), "{e}");
    let (side, peer, other, key, not) = match into_b {
        true => (
            "into the incoming",
            node_id(2),
            "incoming",
            "into_incoming_peer",
            "out_of_outgoing_peer",
        ),
        false => (
            "out of the outgoing",
            node_id(1),
            "outgoing",
            "out_of_outgoing_peer",
            "into_incoming_peer",
        ),
    };
    let says = format!("were on channels {side} peer {peer}");
    assert!(e.message.contains(&says), "{e}");
    assert!(
        !e.message.contains("A try took"),
        "a side named is the hint: {e}"
    );
    assert!(
        e.message.contains(&format!("another {other} channel")),
        "{e}"
    );
    let counted = &e.data.as_ref().unwrap()["liquidity_failures"];
    assert!(counted[key].as_u64() >= Some(2), "{e:?}");
    assert_eq!(counted[not], 0, "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_time_with_the_incoming_peers_side_empty_says_so() {
    out_of_time_naming(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_time_with_the_outgoing_peers_side_empty_says_so() {
    out_of_time_naming(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_way_left_with_the_incoming_peers_side_empty_says_so() {
    // Time for all six ways: each fails into b, and then there is none left.
    let e = gives_up(true, true).await;
    assert_eq!(e.code, 205, "{e}");
    let b = node_id(2);
    let says = format!(
        "no more routes after 6 failed attempt(s). Of its 6 failures for lack of liquidity, \
         all were on channels into the incoming peer {b}"
    );
    assert!(e.message.starts_with(&says), "{e}");
    let counted = &e.data.as_ref().unwrap()["liquidity_failures"];
    assert_eq!(counted["into_incoming_peer"], 6, "{e:?}");
}

/// Out of time with failures on both sides (no side to name), a try taking a large share of
/// `retry_for`: the error says how long one took and what `retry_for` holds twice as many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_time_with_slow_tries_says_how_long_one_took() {
    // Ways 1, 3, 5 empty into b, 2, 4, 6 out of a; a try is 4 hops at 2 s a hop there and
    // back (the hop clock's 1 s each way), so 10 s hold fewer than four.
    let e = gives_up_on(|i| i % 2 == 1, false).await;
    assert_eq!(e.code, 210, "{e}");
    assert!(
        !e.message.contains("were on channels"),
        "no side to name: {e}"
    );
    let says = "A try took about 8s here (4 hops at 2.0s a hop there and back), so 10s held \
                few; retry_for=20 (or the option rebalance-retry-for) leaves room for more";
    assert!(e.message.contains(says), "{e}");
}

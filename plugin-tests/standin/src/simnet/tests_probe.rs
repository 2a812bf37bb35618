//! Probes around a circle (an HTLC for a hash no invoice has) and routes too long for the
//! onion, as lightningd v26.06.6 answers them (pay.c `remote_routing_failure`,
//! peer_htlcs.c `handle_localpay`, htlc_set.c; master's 90c60d01f for the onion).

use super::pay::Stage;
use super::pay::{MAX_ROUTE_HOPS, ROUTING_INFO_SIZE, RouteHop, onion_payload_bytes};
use super::tests::{ALICE, CAROL, TRIANGLE, US, call, demo, new_invoice, route, settled, wait};
use super::*;
use serde_json::{Value, json};

/// A payment hash no invoice has.
const PROBE_HASH: &str = "7b1bc1a6a2b3e8d2f1a1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9";

fn balances(n: &Network) -> Vec<[u64; 2]> {
    n.channels.iter().map(|c| c.balance_msat).collect()
}

fn probe(n: &mut Network, r: Value) -> RpcError {
    let before = balances(n);
    call(
        n,
        "sendpay",
        json!({"route": r, "payment_hash": PROBE_HASH}),
    )
    .unwrap();
    let e = wait(n, PROBE_HASH).unwrap_err();
    assert_eq!(balances(n), before, "a probe moves nothing");
    assert!(n.channels.iter().all(|c| c.htlcs.is_empty()));
    assert!(n.htlc_sets.is_empty());
    e
}

#[test]
fn a_probe_reaching_us_fails_at_once_with_16399_from_us() {
    let mut n = demo();
    let r = route(&mut n, &TRIANGLE, 50_000_000, 18);
    let e = probe(&mut n, r);
    assert_eq!(e.code, 203);
    assert_eq!(
        e.message,
        "failed: WIRE_INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS (reply from remote)"
    );
    let d = e.data.unwrap();
    assert_eq!(d["failcode"], 16399);
    assert_eq!(d["erring_index"], 3);
    assert_eq!(d["erring_node"], US);
    assert_eq!(d["erring_channel"], "800004x1x0");
    assert_eq!(d["erring_direction"], 1); // carol 035f... > us 0205...
    assert_eq!(d["status"], "failed");

    // With a payment_secret it is the same: there is no invoice, so no hold either.
    let r = route(&mut n, &TRIANGLE, 50_000_000, 18);
    call(
        &mut n,
        "sendpay",
        json!({"route": r, "payment_hash": PROBE_HASH, "payment_secret": PROBE_HASH,
               "groupid": 7}),
    )
    .unwrap();
    let e = wait(&mut n, PROBE_HASH).unwrap_err();
    assert_eq!(
        (e.code, e.data.unwrap()["failcode"].clone()),
        (203, json!(16399))
    );
}

#[test]
fn a_probe_passes_the_htlc_accepted_hook_first() {
    let mut n = demo();
    n.hooks.htlc_accepted = true;
    let r = route(&mut n, &TRIANGLE, 50_000_000, 18);
    let (_, ev) = n
        .call("sendpay", &json!({"route": r, "payment_hash": PROBE_HASH}))
        .unwrap()
        .unwrap();
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::HtlcAcceptedHook { .. }))
    );
    let pid = n.payments.len() - 1;
    assert_eq!(n.payments[pid].stage, Stage::AwaitHtlcAccepted);
    n.htlc_accepted_result(pid, Some(&json!({"result": "continue"})));
    let e = wait(&mut n, PROBE_HASH).unwrap_err();
    assert_eq!(
        (e.code, e.data.unwrap()["erring_index"].clone()),
        (203, json!(3))
    );
}

#[test]
fn a_final_cltv_below_cltv_final_reads_like_a_probe() {
    let mut n = demo();
    let (hash, secret) = new_invoice(&mut n, "cltv", 50_000_000);
    // expiry = blockheight + 1 + delay must reach blockheight + cltv_final (18).
    let r = route(&mut n, &TRIANGLE, 50_000_000, 16);
    call(
        &mut n,
        "sendpay",
        json!({"route": r, "payment_hash": hash, "payment_secret": secret}),
    )
    .unwrap();
    let e = wait(&mut n, &hash).unwrap_err();
    let d = e.data.unwrap();
    assert_eq!((e.code, d["failcode"].clone()), (203, json!(16399)));
    assert_eq!(
        (d["erring_index"].clone(), d["erring_node"].clone()),
        (json!(3), json!(US))
    );
    // One block more and the same payment succeeds.
    let r = route(&mut n, &TRIANGLE, 50_000_000, 17);
    settled(&mut n, r, &hash, &secret);
}

#[test]
fn a_probe_failing_on_the_way_reads_as_a_payment_would() {
    let mut n = demo();
    call(&mut n, "dev-drain", json!(["700101x7x1", "alice"])).unwrap();
    let r = route(&mut n, &TRIANGLE, 50_000_000, 18);
    let e = probe(&mut n, r);
    assert_eq!(e.code, 204);
    let d = e.data.unwrap();
    assert_eq!(d["failcode"], 4103);
    assert_eq!(d["erring_index"], 1);
    assert_eq!(d["erring_node"], ALICE);
    assert_eq!(d["erring_channel"], "700101x7x1");
    assert_ne!(d["erring_node"], CAROL);
}

fn hop(amount_msat: u64, delay: u32) -> RouteHop {
    RouteHop {
        node_id: US.into(),
        node: None,
        scid: "800001x1x0".into(),
        amount_msat,
        delay,
    }
}

#[test]
fn onion_bytes_as_lightningd_lays_them_out() {
    // Non-final: amt (2 bytes) + cltv (3) + scid (8) as TLVs = 19, its length 1, HMAC 32.
    // Final: amt + cltv + payment_data (32 + 2) = 45, length 1, HMAC 32.
    assert_eq!(
        onion_payload_bytes(&[hop(1000, 50), hop(1000, 49)], 800_001, 1000, true, None),
        52 + 78
    );
    // Without payment_secret there is no payment_data (36 bytes less).
    assert_eq!(
        onion_payload_bytes(&[hop(1000, 50)], 800_001, 1000, false, None),
        78 - 36
    );
    // CLN's test_sendpay_onion_overflow: 30 hops of 1000 msat cannot fit.
    let hops: Vec<RouteHop> = (0..30).map(|_| hop(1000, 5)).collect();
    assert!(onion_payload_bytes(&hops, 800_001, 1000, true, None) > ROUTING_INFO_SIZE);
}

/// TRIANGLE `times` times over: a circle of 3 * times hops ending at us.
fn circles(n: &mut Network, times: usize) -> Value {
    let hops: Vec<(&str, &str)> = TRIANGLE.iter().copied().cycle().take(3 * times).collect();
    route(n, &hops, 1_000_000, 18)
}

#[test]
fn routes_over_20_hops_are_refused_and_logged_broken() {
    let mut n = demo();
    let (hash, secret) = new_invoice(&mut n, "long", 1_000_000);
    // 18 hops: fine, and it pays.
    let r = circles(&mut n, 6);
    settled(&mut n, r, &hash, &secret);
    assert!(n.broken.is_empty());

    let (hash, secret) = new_invoice(&mut n, "longer", 1_000_000);
    // 21 hops fit the onion but are over the limit; 27 do not fit.
    for (times, why) in [(7, "is over 20 hops"), (9, "does not fit the onion")] {
        assert!(3 * times > MAX_ROUTE_HOPS);
        let r = circles(&mut n, times);
        let e = n
            .call(
                "sendpay",
                &json!({"route": r, "payment_hash": hash, "payment_secret": secret}),
            )
            .unwrap()
            .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (-1, "Could not create onion packet")
        );
        let last = n.broken.last().unwrap();
        assert!(
            last.contains(&format!("a route of {} hops", 3 * times)),
            "{last}"
        );
        assert!(last.contains(why), "{last}");
        let logged = n.take_events();
        assert!(
            logged.iter().any(|e| matches!(
                e,
                Event::Log {
                    level: "broken",
                    ..
                }
            )),
            "{logged:?}"
        );
    }
    assert_eq!(n.broken.len(), 2);
    // Nothing was recorded for them.
    assert_eq!(
        n.payments.iter().filter(|p| p.payment_hash == hash).count(),
        0
    );
}

//! Multi-part payments to ourselves (lightningd/pay.c `check_progress`, htlc_set.c,
//! invoice.c of v26.06.6): sendpay's rules for parts and groups, our node holding parts until
//! they add up (at most 70 s of network time), the hooks once per part / once per set, and a
//! refused or timed-out set failing every part with nothing moved.

use super::pay::{MPP_TIMEOUT_SECS, Stage, WaitState};
use super::tests::{BOB, CAROL, TRIANGLE, US, balance, call, demo, new_invoice, route};
use super::*;
use serde_json::{Value, json};

const DAVE: &str = "02c44416ab1cc959eeb36f39f64e06b950e283b955a70b23c196b02c424de08e44";
const ERIN: &str = "02c336a8f9eee6999b68d79326c216b4a9cb61133d21a4d159d66bf6b124e76b69";
const FRANK: &str = "023433b2dbf5a4666662b9f8b89e5dd9a7db890acf7ec69fe5651bbf1944159501";

/// us -> bob -> erin -> frank -> dave -> us: a circle that shares no channel with TRIANGLE.
const VIA_DAVE: [(&str, &str); 5] = [
    (BOB, "800003x1x0"),
    (ERIN, "700105x9x0"),
    (FRANK, "700103x5x0"),
    (DAVE, "700104x2x1"),
    (US, "800005x1x0"),
];

const TOTAL: u64 = 300_000_000;

/// sendpay of one part: `amount` delivered over `hops`, of a payment of `total`.
fn part(
    n: &mut Network,
    hops: &[(&str, &str)],
    amount: u64,
    (hash, secret): (&str, &str),
    partid: u64,
    groupid: Option<u64>,
) -> Result<(Value, Vec<Event>), RpcError> {
    let r = route(n, hops, amount, 18);
    let mut p = json!({"route": r, "payment_hash": hash, "payment_secret": secret,
                       "amount_msat": TOTAL, "partid": partid});
    if let Some(g) = groupid {
        p["groupid"] = json!(g);
    }
    n.call("sendpay", &p).expect("served")
}

fn wait_part(n: &mut Network, hash: &str, partid: u64, groupid: u64) -> WaitState {
    n.waitsendpay_check(&json!({"payment_hash": hash, "partid": partid, "groupid": groupid}))
        .unwrap()
        .0
}

fn done(state: WaitState) -> Result<Value, RpcError> {
    match state {
        WaitState::Done(r) => r,
        WaitState::Pending(_) => panic!("still pending"),
    }
}

fn balances(n: &Network) -> Vec<[u64; 2]> {
    n.channels.iter().map(|c| c.balance_msat).collect()
}

fn invoice(n: &mut Network, label: &str) -> Value {
    call(n, "listinvoices", json!({"label": label})).unwrap()["invoices"][0].clone()
}

fn count<F: Fn(&Event) -> bool>(events: &[Event], f: F) -> usize {
    events.iter().filter(|e| f(e)).count()
}

#[test]
fn two_parts_pay_the_invoice_once_with_one_hook_call() {
    let mut n = demo();
    n.hooks.invoice_payment = true;
    n.hooks.htlc_accepted = true;
    let (hash, secret) = new_invoice(&mut n, "mpp", TOTAL);
    let hs = (hash.as_str(), secret.as_str());
    let before = (balance(&n, "800004x1x0", US), balance(&n, "800005x1x0", US));

    // Part 1: htlc_accepted for it alone, then it waits in the set.
    let (v, ev) = part(&mut n, &TRIANGLE, 100_000_000, hs, 1, Some(1)).unwrap();
    assert_eq!(
        (v["partid"].clone(), v["groupid"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(v["amount_msat"], 100_000_000u64);
    assert_eq!(
        count(&ev, |e| matches!(e, Event::HtlcAcceptedHook { .. })),
        1
    );
    let Some(Event::HtlcAcceptedHook { payload, .. }) = ev
        .iter()
        .find(|e| matches!(e, Event::HtlcAcceptedHook { .. }))
    else {
        unreachable!()
    };
    assert_eq!(payload["onion"]["total_msat"], TOTAL);
    assert_eq!(payload["onion"]["forward_msat"], 100_000_000u64);
    assert_eq!(payload["htlc"]["short_channel_id"], "800004x1x0");
    let p1 = n.payments.len() - 1;
    let ev = n.htlc_accepted_result(p1, Some(&json!({"result": "continue"})));
    assert_eq!(
        count(&ev, |e| matches!(e, Event::InvoicePaymentHook { .. })),
        0
    );
    assert_eq!(n.payments[p1].stage, Stage::AwaitParts);
    assert!(matches!(
        wait_part(&mut n, &hash, 1, 1),
        WaitState::Pending(_)
    ));
    assert_eq!(invoice(&mut n, "mpp")["status"], "unpaid");
    // Its HTLC is held on the channel it arrived on.
    let pc = call(
        &mut n,
        "listpeerchannels",
        json!({"short_channel_id": "800004x1x0"}),
    )
    .unwrap()["channels"][0]
        .clone();
    assert_eq!(pc["htlcs"][0]["direction"], "in");
    assert_eq!(pc["htlcs"][0]["amount_msat"], 100_000_000u64);

    // Part 2 over another channel completes the set: one invoice_payment call with the sum.
    let (_, ev) = part(&mut n, &VIA_DAVE, 200_000_000, hs, 2, Some(1)).unwrap();
    let p2 = n.payments.len() - 1;
    let ev2 = n.htlc_accepted_result(p2, Some(&json!({"result": "continue"})));
    assert_eq!(
        count(&ev, |e| matches!(e, Event::HtlcAcceptedHook { .. })),
        1
    );
    let hooks: Vec<&Value> = ev2
        .iter()
        .filter_map(|e| match e {
            Event::InvoicePaymentHook { payload, .. } => Some(payload),
            _ => None,
        })
        .collect();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["payment"]["msat"], TOTAL);
    assert_eq!(hooks[0]["payment"]["label"], "mpp");
    assert_eq!(n.payments[p1].stage, Stage::AwaitInvoicePayment);

    let ev = n.invoice_payment_result(p2, Some(&json!({"result": "continue"})));
    assert_eq!(count(&ev, |e| matches!(e, Event::InvoicePaid { .. })), 1);
    assert_eq!(count(&ev, |e| matches!(e, Event::PaymentDone { .. })), 2);
    let inv = invoice(&mut n, "mpp");
    assert_eq!(inv["status"], "paid");
    assert_eq!(inv["amount_received_msat"], TOTAL);
    for (partid, amount) in [(1, 100_000_000u64), (2, 200_000_000)] {
        let d = done(wait_part(&mut n, &hash, partid, 1)).unwrap();
        assert_eq!(d["status"], "complete");
        assert_eq!(d["partid"], partid);
        assert_eq!(d["amount_msat"], amount);
    }
    assert_eq!(balance(&n, "800004x1x0", US), before.0 + 100_000_000);
    assert_eq!(balance(&n, "800005x1x0", US), before.1 + 200_000_000);
    assert!(n.htlc_sets.is_empty());
    assert!(n.channels.iter().all(|c| c.htlcs.is_empty()));
    let l = call(&mut n, "listsendpays", json!({"payment_hash": hash})).unwrap();
    let parts: Vec<(Value, Value)> = l["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["partid"].clone(), p["groupid"].clone()))
        .collect();
    assert_eq!(parts, vec![(json!(1), json!(1)), (json!(2), json!(1))]);

    // Once a part succeeded, no new part and no new group.
    let e = part(&mut n, &TRIANGLE, 1_000_000, hs, 3, Some(1)).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (201, "Already succeeded other parts")
    );
    let e = part(&mut n, &TRIANGLE, 1_000_000, hs, 4, Some(2)).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (201, "Already succeeded other parts")
    );
    let e = part(&mut n, &TRIANGLE, 1_000_000, hs, 1, Some(2)).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            201,
            "Already succeeded with amount 100000000msat (not 1000000msat)"
        )
    );
    // The same part again is idempotent.
    let (v, _) = part(&mut n, &TRIANGLE, 100_000_000, hs, 1, Some(1)).unwrap();
    assert_eq!(v["status"], "complete");
}

#[test]
fn a_lone_part_times_out_after_70_seconds_with_mpp_timeout() {
    let mut n = demo();
    let (hash, secret) = new_invoice(&mut n, "t", TOTAL);
    let before = balances(&n);
    part(&mut n, &TRIANGLE, 100_000_000, (&hash, &secret), 1, Some(1)).unwrap();
    assert_eq!(n.htlc_sets[0].deadline, Some(n.now() + MPP_TIMEOUT_SECS));
    call(
        &mut n,
        "dev-timetravel",
        json!({"seconds": MPP_TIMEOUT_SECS - 1}),
    )
    .unwrap();
    assert!(matches!(
        wait_part(&mut n, &hash, 1, 1),
        WaitState::Pending(_)
    ));
    let (_, ev) = n
        .call("dev-timetravel", &json!({"seconds": 1}))
        .unwrap()
        .unwrap();
    assert_eq!(count(&ev, |e| matches!(e, Event::PaymentDone { .. })), 1);
    let e = done(wait_part(&mut n, &hash, 1, 1)).unwrap_err();
    assert_eq!(e.code, 204);
    assert_eq!(e.message, "failed: WIRE_MPP_TIMEOUT (reply from remote)");
    let d = e.data.unwrap();
    assert_eq!(d["failcode"], 23);
    assert_eq!(d["erring_index"], 3);
    assert_eq!(d["erring_node"], US);
    assert_eq!(d["erring_channel"], "800004x1x0");
    assert_eq!(d["partid"], 1);
    assert_eq!(balances(&n), before, "a timed-out part moves nothing");
    assert!(n.channels.iter().all(|c| c.htlcs.is_empty()));
    assert!(n.htlc_sets.is_empty());
    assert_eq!(invoice(&mut n, "t")["status"], "unpaid");

    // A new try: a new group, and this time in parts that add up.
    let hs = (hash.as_str(), secret.as_str());
    part(&mut n, &TRIANGLE, 150_000_000, hs, 1, Some(2)).unwrap();
    // 30 s later the first part is still waiting for the second.
    n.fixed_time = Some(n.now() + 30);
    part(&mut n, &VIA_DAVE, 150_000_000, hs, 2, Some(2)).unwrap();
    assert_eq!(invoice(&mut n, "t")["status"], "paid");
    assert_eq!(invoice(&mut n, "t")["amount_received_msat"], TOTAL);
}

#[test]
fn timers_fire_on_any_call_after_the_clock_moved() {
    let mut n = demo();
    let (hash, secret) = new_invoice(&mut n, "c", TOTAL);
    part(&mut n, &TRIANGLE, 100_000_000, (&hash, &secret), 1, Some(1)).unwrap();
    n.fixed_time = Some(n.now() + MPP_TIMEOUT_SECS);
    let (_, ev) = n.call("getinfo", &json!({})).unwrap().unwrap();
    assert_eq!(count(&ev, |e| matches!(e, Event::PaymentDone { .. })), 1);
    assert_eq!(done(wait_part(&mut n, &hash, 1, 1)).unwrap_err().code, 204);
}

#[test]
fn a_rejected_set_fails_every_part_and_pays_nothing() {
    let mut n = demo();
    n.hooks.invoice_payment = true;
    let (hash, secret) = new_invoice(&mut n, "r", TOTAL);
    let hs = (hash.as_str(), secret.as_str());
    let before = balances(&n);
    part(&mut n, &TRIANGLE, 100_000_000, hs, 1, Some(1)).unwrap();
    let (_, ev) = part(&mut n, &VIA_DAVE, 200_000_000, hs, 2, Some(1)).unwrap();
    let Some(&Event::InvoicePaymentHook { payment, .. }) = ev
        .iter()
        .find(|e| matches!(e, Event::InvoicePaymentHook { .. }))
    else {
        panic!("one invoice_payment call for the set")
    };
    // While the hook runs, a third part would exceed the total: refused at the payer.
    let e = part(&mut n, &TRIANGLE, 1_000_000, hs, 3, Some(1)).unwrap_err();
    assert_eq!(e.code, 200);
    assert_eq!(
        e.message,
        "Already have 300000000msat of 300000000msat payments in progress"
    );
    let ev = n.invoice_payment_result(payment, Some(&json!({"result": "reject"})));
    assert_eq!(count(&ev, |e| matches!(e, Event::PaymentDone { .. })), 2);
    assert_eq!(count(&ev, |e| matches!(e, Event::InvoicePaid { .. })), 0);
    for (partid, route_len) in [(1, 3), (2, 5)] {
        let e = done(wait_part(&mut n, &hash, partid, 1)).unwrap_err();
        assert_eq!(e.code, 203);
        let d = e.data.unwrap();
        assert_eq!(d["failcode"], 16399);
        assert_eq!(d["erring_index"], route_len);
        assert_eq!(d["erring_node"], US);
    }
    assert_eq!(balances(&n), before);
    assert_eq!(invoice(&mut n, "r")["status"], "unpaid");
    // An answer for a set that is gone changes nothing.
    assert!(
        n.invoice_payment_result(payment, Some(&json!({"result": "continue"})))
            .is_empty()
    );
}

#[test]
fn sendpay_rules_for_parts_and_groups() {
    let mut n = demo();
    let (hash, secret) = new_invoice(&mut n, "g", TOTAL);
    let hs = (hash.as_str(), secret.as_str());
    let r = route(&mut n, &TRIANGLE, 100_000_000, 18);
    let err = |n: &mut Network, p: Value| n.call("sendpay", &p).unwrap().unwrap_err();

    let e = err(
        &mut n,
        json!({"route": r, "payment_hash": hash, "partid": 1}),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (-32602, "Must specify msatoshi with partid")
    );
    let e = err(
        &mut n,
        json!({"route": r, "payment_hash": hash, "partid": 1, "amount_msat": TOTAL}),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (-32602, "partid requires payment_secret")
    );
    let e = err(
        &mut n,
        json!({"route": r, "payment_hash": hash, "payment_secret": secret, "partid": 1,
               "amount_msat": 99_999_999}),
    );
    assert_eq!(
        e.message,
        "Final amount 100000000msat is greater than 99999999msat, despite MPP"
    );

    // groupid left out: the first part gets 1, the second 2 and is refused.
    let (v, _) = part(&mut n, &TRIANGLE, 100_000_000, hs, 1, None).unwrap();
    assert_eq!(v["groupid"], 1);
    let e = part(&mut n, &VIA_DAVE, 100_000_000, hs, 2, None).unwrap_err();
    assert_eq!(e.code, 200);
    assert_eq!(
        e.message,
        "Payment with groupid=1 still in progress, cannot retry before that completes."
    );
    // A single (partid 0) payment cannot join parts.
    let e = err(
        &mut n,
        json!({"route": r, "payment_hash": hash, "payment_secret": secret, "groupid": 1}),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (200, "Already have parallel payment in progress")
    );
    // Every pending part carries the same total.
    let mut p = json!({"route": route(&mut n, &VIA_DAVE, 100_000_000, 18), "payment_hash": hash,
                       "payment_secret": secret, "amount_msat": TOTAL + 1, "partid": 2,
                       "groupid": 1});
    let e = err(&mut n, p.clone());
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            -32602,
            "msatoshi was previously 300000000msat, now 300000001msat"
        )
    );
    // The same part again answers as the first time (pending), a changed one is refused.
    let (v, _) = part(&mut n, &TRIANGLE, 100_000_000, hs, 1, Some(1)).unwrap();
    assert_eq!(v["status"], "pending");
    let e = part(&mut n, &TRIANGLE, 100_000_001, hs, 1, Some(1)).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            201,
            "Already pending with amount 100000000msat (not 100000001msat)"
        )
    );
    // A part that fails on the way...
    call(
        &mut n,
        "dev-fail",
        json!(["700105x9x0", "bob", "temporary_channel_failure"]),
    )
    .unwrap();
    p["amount_msat"] = json!(TOTAL);
    n.call("sendpay", &p).unwrap().unwrap();
    let e = done(wait_part(&mut n, &hash, 2, 1)).unwrap_err();
    assert_eq!(
        (e.code, e.data.unwrap()["failcode"].clone()),
        (204, json!(4103))
    );
    // ... keeps its (partid, groupid): the replacement needs a new partid in the same group.
    call(&mut n, "dev-fail", json!(["700105x9x0", "bob"])).unwrap();
    let e = n.call("sendpay", &p).unwrap().unwrap_err();
    assert_eq!(e.code, 201);
    assert_eq!(
        e.message,
        format!(
            "There already is a payment with payment_hash={hash}, groupid=1, partid=2. Either \
             change the partid, or wait for the payment to complete and start a new group."
        )
    );
    let e = n.waitsendpay_check(&json!([hash, null, 7, 1])).unwrap_err();
    assert_eq!(
        (e.code, e.message),
        (208, format!("Never attempted payment part 7 for '{hash}'"))
    );
    part(&mut n, &VIA_DAVE, 200_000_000, hs, 3, Some(1)).unwrap();
    assert_eq!(
        done(wait_part(&mut n, &hash, 1, 1)).unwrap()["status"],
        "complete"
    );
    assert_eq!(
        done(wait_part(&mut n, &hash, 3, 1)).unwrap()["status"],
        "complete"
    );
    assert_eq!(invoice(&mut n, "g")["amount_received_msat"], TOTAL);
}

#[test]
fn a_part_arriving_after_the_invoice_is_paid_fails_alone() {
    let mut n = demo();
    let (hash, secret) = new_invoice(&mut n, "late", TOTAL);
    let hs = (hash.as_str(), secret.as_str());
    // Part 1 waits at carol (HTLCs arriving over alice-carol are held there).
    call(
        &mut n,
        "dev-hold",
        json!({"short_channel_id": "700101x7x1"}),
    )
    .unwrap();
    part(&mut n, &TRIANGLE, 50_000_000, hs, 1, Some(1)).unwrap();
    // Parts 2 and 3 reach us over dave and make the total on their own.
    part(&mut n, &VIA_DAVE, 100_000_000, hs, 2, Some(1)).unwrap();
    part(&mut n, &VIA_DAVE, 200_000_000, hs, 3, Some(1)).unwrap();
    assert_eq!(invoice(&mut n, "late")["amount_received_msat"], TOTAL);
    call(&mut n, "dev-release", json!({})).unwrap();
    let e = done(wait_part(&mut n, &hash, 1, 1)).unwrap_err();
    assert_eq!(
        (e.code, e.data.unwrap()["failcode"].clone()),
        (203, json!(16399))
    );
    assert_eq!(
        done(wait_part(&mut n, &hash, 3, 1)).unwrap()["status"],
        "complete"
    );
    assert_eq!(invoice(&mut n, "late")["status"], "paid");
}

#[test]
fn a_part_whose_channel_closes_fails_its_whole_set() {
    let mut n = demo();
    let (hash, secret) = new_invoice(&mut n, "gone", TOTAL);
    let hs = (hash.as_str(), secret.as_str());
    part(&mut n, &TRIANGLE, 100_000_000, hs, 1, Some(1)).unwrap();
    part(&mut n, &VIA_DAVE, 100_000_000, hs, 2, Some(1)).unwrap();
    assert_eq!(n.htlc_sets[0].parts.len(), 2);
    call(
        &mut n,
        "dev-set-channel-state",
        json!(["800004x1x0", "ONCHAIN"]),
    )
    .unwrap();
    // Part 1's HTLC went to chain with the channel: carol fails it upstream.
    let e = done(wait_part(&mut n, &hash, 1, 1)).unwrap_err();
    let d = e.data.unwrap();
    assert_eq!(
        (e.code, d["failcode"].clone()),
        (204, json!(wire::PERMANENT_CHANNEL_FAILURE))
    );
    assert_eq!(
        (d["erring_index"].clone(), d["erring_node"].clone()),
        (json!(2), json!(CAROL))
    );
    assert_eq!(d["erring_channel"], "800004x1x0");
    // The rest of the set fails with mpp_timeout.
    let e = done(wait_part(&mut n, &hash, 2, 1)).unwrap_err();
    assert_eq!(e.data.unwrap()["failcode"], 23);
    assert!(n.htlc_sets.is_empty());
    assert!(n.channels.iter().all(|c| c.htlcs.is_empty()));
}

#[test]
fn dev_state_shows_the_sets() {
    let mut n = demo();
    let (hash, secret) = new_invoice(&mut n, "s", TOTAL);
    part(&mut n, &TRIANGLE, 100_000_000, (&hash, &secret), 1, Some(4)).unwrap();
    let s = call(&mut n, "dev-state", json!({})).unwrap();
    assert_eq!(s["htlc_sets"][0]["so_far_msat"], 100_000_000u64);
    assert_eq!(s["htlc_sets"][0]["total_msat"], TOTAL);
    assert_eq!(s["htlc_sets"][0]["parts"][0]["groupid"], 4);
    assert_eq!(s["payments"][0]["stage"], "awaitparts");
    assert_eq!(s["payments"][0]["total_msat"], TOTAL);
}

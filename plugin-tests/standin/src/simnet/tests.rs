//! Unit tests of the network model on networks/demo.json: hop checks and their failcodes,
//! settlement, holds, hooks, non-strict forwarding, invoices, and the mainnet loader.

use super::pay::WaitState;
use super::*;
use serde_json::{Value, json};

pub(super) const US: &str = "02052542beeec28bf08fb2405f391dec5db7675b1d95a5b70c86d77ceba71e2179";
pub(super) const ALICE: &str = "03047956f08ae0e563aec714876e11230c5a42382061032717ce7b2d1335541efd";
pub(super) const BOB: &str = "02850f6af24e982b6e55bcc5760c63a58e9b91ac5babd9a917e3aae497344d16b6";
pub(super) const CAROL: &str = "035fbca922e71a2a473c1668e510b4747d4fd5ac541e16eb571c6c993540ce43ce";

pub(super) fn demo() -> Network {
    let text = include_str!("../../networks/demo.json");
    let mut n = Network::from_json_str(text).expect("demo loads");
    n.fixed_time = Some(1_750_000_000);
    n
}

pub(super) fn call(n: &mut Network, method: &str, params: Value) -> Result<Value, RpcError> {
    n.call(method, &params)
        .expect("known method")
        .map(|(v, _)| v)
}

pub(super) fn call_ev(n: &mut Network, method: &str, params: Value) -> (Value, Vec<Event>) {
    n.call(method, &params).expect("known method").expect("ok")
}

/// Builds sendpay hops backwards from (node, scid) pairs, as a correct payer would: each hop's
/// amount/delay is what the node at its end receives; fees from the listchannels entry of the
/// node at the start of the next hop.
pub(super) fn route(
    n: &mut Network,
    hops: &[(&str, &str)],
    amount: u64,
    final_delay: u32,
) -> Value {
    let mut out = Vec::new();
    let mut amt = amount;
    let mut delay = final_delay;
    for i in (0..hops.len()).rev() {
        out.push(
            json!({"id": hops[i].0, "channel": hops[i].1, "amount_msat": amt, "delay": delay}),
        );
        if i > 0 {
            let src = hops[i - 1].0;
            let chans = call(n, "listchannels", json!({"short_channel_id": hops[i].1})).unwrap();
            let e = chans["channels"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["source"] == src)
                .unwrap()
                .clone();
            let ppm = e["fee_per_millionth"].as_u64().unwrap();
            let fee =
                e["base_fee_millisatoshi"].as_u64().unwrap() + (amt * ppm).div_ceil(1_000_000);
            amt += fee;
            delay += e["delay"].as_u64().unwrap() as u32;
        }
    }
    out.reverse();
    Value::Array(out)
}

pub(super) fn balance(n: &Network, scid: &str, node: &str) -> u64 {
    let c = n.channel_by_scid(scid).unwrap();
    let s = n.side_of(c, n.node_by_id(node).unwrap()).unwrap();
    n.channels[c].balance_msat[s]
}

pub(super) fn new_invoice(n: &mut Network, label: &str, amount: u64) -> (String, String) {
    let inv = call(
        n,
        "invoice",
        json!({"amount_msat": amount, "label": label, "description": "test"}),
    )
    .unwrap();
    (
        inv["payment_hash"].as_str().unwrap().to_string(),
        inv["payment_secret"].as_str().unwrap().to_string(),
    )
}

pub(super) fn wait(n: &mut Network, hash: &str) -> Result<Value, RpcError> {
    match n
        .waitsendpay_check(&json!({"payment_hash": hash}))
        .unwrap()
        .0
    {
        WaitState::Done(r) => r,
        WaitState::Pending(_) => panic!("still pending"),
    }
}

pub(super) const TRIANGLE: [(&str, &str); 3] = [
    (ALICE, "800001x1x0"),
    (CAROL, "700101x7x1"),
    (US, "800004x1x0"),
];

#[test]
fn views_parse_as_cln_rpc_responses() {
    use cln_rpc::model::responses::*;
    let mut n = demo();
    let v = call(&mut n, "getinfo", json!({})).unwrap();
    let _: GetinfoResponse = serde_json::from_value(v).unwrap();
    let v = call(&mut n, "listpeerchannels", json!({})).unwrap();
    assert_eq!(v["channels"].as_array().unwrap().len(), 5);
    let _: ListpeerchannelsResponse = serde_json::from_value(v).unwrap();
    let v = call(&mut n, "listchannels", json!({})).unwrap();
    assert_eq!(v["channels"].as_array().unwrap().len(), 22);
    let _: ListchannelsResponse = serde_json::from_value(v).unwrap();
    let v = call(&mut n, "listnodes", json!({})).unwrap();
    let _: ListnodesResponse = serde_json::from_value(v).unwrap();
    let v = call(&mut n, "listpeers", json!({})).unwrap();
    let _: ListpeersResponse = serde_json::from_value(v).unwrap();
    let v = call(&mut n, "invoice", json!(["10000sat", "l1", "d"])).unwrap();
    let _: InvoiceResponse = serde_json::from_value(v).unwrap();
    let v = call(&mut n, "listinvoices", json!({"label": "l1"})).unwrap();
    let _: ListinvoicesResponse = serde_json::from_value(v).unwrap();
}

#[test]
fn listpeerchannels_numbers() {
    let mut n = demo();
    let v = call(
        &mut n,
        "listpeerchannels",
        json!({"short_channel_id": "800001x1x0"}),
    )
    .unwrap();
    let c = &v["channels"][0];
    assert_eq!(c["peer_id"], ALICE);
    assert_eq!(c["to_us_msat"], 800_000_000u64);
    assert_eq!(c["total_msat"], 1_000_000_000u64);
    assert_eq!(c["our_reserve_msat"], 10_000_000u64);
    assert_eq!(c["spendable_msat"], 790_000_000u64);
    assert_eq!(c["receivable_msat"], 190_000_000u64);
    assert_eq!(c["direction"], 0); // 0205... < 0304...
    assert_eq!(c["updates"]["remote"]["fee_proportional_millionths"], 200);
    assert_eq!(c["updates"]["local"]["fee_proportional_millionths"], 50);
    let v = call(&mut n, "listpeerchannels", json!({"id": ALICE})).unwrap();
    assert_eq!(v["channels"].as_array().unwrap().len(), 2);
    let v = call(&mut n, "listchannels", json!({"source": ALICE})).unwrap();
    assert!(
        v["channels"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["source"] == ALICE)
    );
    assert_eq!(v["channels"].as_array().unwrap().len(), 4);
}

#[test]
fn triangle_success_moves_balances_and_pays_invoice() {
    let mut n = demo();
    let (hash, secret) = new_invoice(&mut n, "tri", 100_000_000);
    let r = route(&mut n, &TRIANGLE, 100_000_000, 18);
    let sent = r[0]["amount_msat"].as_u64().unwrap();
    let mid = r[1]["amount_msat"].as_u64().unwrap();
    assert_eq!(mid, 100_000_000 + 500 + 10_000);
    assert_eq!(sent, mid + 1000 + (mid * 120).div_ceil(1_000_000));
    let before = (
        balance(&n, "800001x1x0", US),
        balance(&n, "700101x7x1", ALICE),
        balance(&n, "800004x1x0", US),
    );
    let (v, _ev) = call_ev(
        &mut n,
        "sendpay",
        json!({"route": r, "payment_hash": hash, "payment_secret": secret}),
    );
    assert_eq!(v["status"], "pending");
    assert_eq!(v["message"], "Monitor status with listpays or waitsendpay");
    let done = wait(&mut n, &hash).unwrap();
    assert_eq!(done["status"], "complete");
    assert_eq!(done["amount_msat"], 100_000_000u64);
    assert_eq!(done["amount_sent_msat"], sent);
    assert!(done["payment_preimage"].is_string());
    let _: cln_rpc::model::responses::WaitsendpayResponse = serde_json::from_value(done).unwrap();
    assert_eq!(balance(&n, "800001x1x0", US), before.0 - sent);
    assert_eq!(balance(&n, "700101x7x1", ALICE), before.1 - mid);
    assert_eq!(balance(&n, "800004x1x0", US), before.2 + 100_000_000);
    let inv = call(&mut n, "listinvoices", json!({"label": "tri"})).unwrap();
    assert_eq!(inv["invoices"][0]["status"], "paid");
    assert_eq!(inv["invoices"][0]["amount_received_msat"], 100_000_000u64);
    let l = call(&mut n, "listsendpays", json!({"payment_hash": hash})).unwrap();
    assert_eq!(l["payments"][0]["status"], "complete");
    // The preimage hashes to the payment hash.
    let pre = crate::sha256::unhex(l["payments"][0]["payment_preimage"].as_str().unwrap()).unwrap();
    assert_eq!(crate::sha256::hex(&crate::sha256::sha256(&pre)), hash);
    // Paying again with the same hash is idempotent success.
    let r = route(&mut n, &TRIANGLE, 100_000_000, 18);
    let (v, _) = call_ev(
        &mut n,
        "sendpay",
        json!({"route": r, "payment_hash": hash, "payment_secret": secret}),
    );
    assert_eq!(v["status"], "complete");
}

/// Sends `r` and waits: the payment must complete.
pub(super) fn settled(n: &mut Network, r: Value, hash: &str, secret: &str) {
    call(
        n,
        "sendpay",
        json!({"route": r, "payment_hash": hash, "payment_secret": secret}),
    )
    .unwrap();
    assert_eq!(wait(n, hash).unwrap()["status"], "complete");
}

fn failed(n: &mut Network, r: Value, hash: &str, secret: &str) -> RpcError {
    let before: Vec<[u64; 2]> = n.channels.iter().map(|c| c.balance_msat).collect();
    call(
        n,
        "sendpay",
        json!({"route": r, "payment_hash": hash, "payment_secret": secret}),
    )
    .unwrap();
    let e = wait(n, hash).unwrap_err();
    let after: Vec<[u64; 2]> = n.channels.iter().map(|c| c.balance_msat).collect();
    assert_eq!(before, after, "a failed payment moves nothing");
    assert!(n.channels.iter().all(|c| c.htlcs.is_empty()));
    e
}

#[test]
fn fee_insufficient_at_alice() {
    let mut n = demo();
    let (hash, secret) = new_invoice(&mut n, "f", 100_000_000);
    let mut r = route(&mut n, &TRIANGLE, 100_000_000, 18);
    r[0]["amount_msat"] = json!(r[0]["amount_msat"].as_u64().unwrap() - 1);
    let e = failed(&mut n, r, &hash, &secret);
    assert_eq!(e.code, 204);
    assert_eq!(
        e.message,
        "failed: WIRE_FEE_INSUFFICIENT (reply from remote)"
    );
    let d = e.data.unwrap();
    assert_eq!(d["erring_index"], 1);
    assert_eq!(d["erring_node"], ALICE);
    assert_eq!(d["erring_channel"], "700101x7x1");
    assert_eq!(d["erring_direction"], 0); // 0304... < 035f...
    assert_eq!(d["failcode"], 4108);
    assert_eq!(d["failcodename"], "WIRE_FEE_INSUFFICIENT");
    // Asked after the fact it says "failed"; a waiter woken by the failure sees "pending".
    assert_eq!(d["status"], "failed");
    let WaitState::Done(Err(live)) = n.wait_state(n.payments.len() - 1, true) else {
        panic!("failed payment")
    };
    let live = live.data.unwrap();
    assert_eq!(live["status"], "pending");
    // Only the woken waiter gets the failure message: failcode, the HTLC's amount at alice,
    // and her channel_update (type 258) for 700101x7x1, direction 0, enabled.
    assert!(d.get("raw_message").is_none());
    let raw = live["raw_message"].as_str().unwrap();
    let amt = live["amount_sent_msat"].as_u64().unwrap(); // alice is the first node
    assert!(raw.starts_with(&format!("100c{amt:016x}008a0102")), "{raw}");
    let update = &raw[(2 + 8 + 2) * 2..];
    // type 2 + signature 64 + chain 32, then the scid, the timestamp, the two flag bytes.
    assert_eq!(
        &update[(2 + 64 + 32) * 2..(2 + 64 + 32 + 8) * 2],
        "0aaec50000070001"
    );
    assert_eq!(
        &update[(2 + 64 + 32 + 8 + 4) * 2..(2 + 64 + 32 + 8 + 4 + 2) * 2],
        "0100"
    );
    // The update, handed back with addgossip as pay plugins do, is taken and changes nothing.
    let gossip =
        |n: &mut Network| call(n, "listchannels", json!({"short_channel_id": "700101x7x1"}));
    let known = gossip(&mut n).unwrap();
    assert_eq!(
        call(&mut n, "addgossip", json!({"message": update})).unwrap(),
        json!({})
    );
    assert_eq!(gossip(&mut n).unwrap(), known);
    // gossipd's errors: a truncated update, another message type; lightningd's for no hex.
    let e = call(&mut n, "addgossip", json!([&update[..200]])).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            -1,
            &*format!("channel_update: malformed {}", &update[..200])
        )
    );
    let e = call(&mut n, "addgossip", json!(["0103"])).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (-1, "unknown gossip type 259")
    );
    let e = call(&mut n, "addgossip", json!({"message": "zz"})).unwrap_err();
    assert_eq!(e.code, -32602);
    assert!(
        e.message.contains("message: should be a hex value"),
        "{}",
        e.message
    );
}

#[test]
fn incorrect_cltv_at_alice_and_final_cltv() {
    let mut n = demo();
    let (hash, secret) = new_invoice(&mut n, "c", 100_000_000);
    let mut r = route(&mut n, &TRIANGLE, 100_000_000, 18);
    r[0]["delay"] = json!(r[0]["delay"].as_u64().unwrap() - 1);
    let e = failed(&mut n, r, &hash, &secret);
    assert_eq!(e.data.unwrap()["failcode"], wire::INCORRECT_CLTV_EXPIRY);

    // Final delay below cltv_final: permanent failure at the destination (index 3).
    let r = route(&mut n, &TRIANGLE, 100_000_000, 10);
    let e = failed(&mut n, r, &hash, &secret);
    assert_eq!(e.code, 203);
    let d = e.data.unwrap();
    assert_eq!(d["erring_index"], 3);
    assert_eq!(d["erring_node"], US);
    assert_eq!(d["erring_channel"], "800004x1x0");
    assert_eq!(
        d["failcodename"],
        "WIRE_INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS"
    );
    assert_eq!(d["groupid"], 2);
}

/// Pays the triangle, which must fail with temporary_channel_failure at alice (index 1).
fn failed_at_alice(n: &mut Network, hash: &str, secret: &str) {
    let r = route(n, &TRIANGLE, 100_000_000, 18);
    let d = failed(n, r, hash, secret).data.unwrap();
    assert_eq!(
        (d["failcode"].as_u64(), d["erring_index"].as_u64()),
        (Some(4103), Some(1))
    );
}

#[test]
fn liquidity_unknown_channel_offline_wrong_secret() {
    let mut n = demo();
    let (hash, secret) = new_invoice(&mut n, "l", 100_000_000);
    call(
        &mut n,
        "dev-drain",
        json!({"short_channel_id": "700101x7x1", "node": "alice"}),
    )
    .unwrap();
    failed_at_alice(&mut n, &hash, &secret);

    let mut r = route(&mut n, &TRIANGLE, 100_000_000, 18);
    r[1]["channel"] = json!("999x9x9");
    let e = failed(&mut n, r, &hash, &secret);
    let d = e.data.unwrap();
    assert_eq!(d["failcodename"], "WIRE_UNKNOWN_NEXT_PEER");
    assert_eq!(d["erring_channel"], "999x9x9");

    call(
        &mut n,
        "dev-set-balance",
        json!(["700101x7x1", "alice", 2_500_000_000u64]),
    )
    .unwrap();
    call(
        &mut n,
        "dev-set-online",
        json!({"node": "carol", "online": false}),
    )
    .unwrap();
    failed_at_alice(&mut n, &hash, &secret);
    call(
        &mut n,
        "dev-set-online",
        json!({"node": "carol", "online": true}),
    )
    .unwrap();

    let r = route(&mut n, &TRIANGLE, 100_000_000, 18);
    let e = failed(&mut n, r, &hash, &"00".repeat(32));
    assert_eq!(e.code, 203);

    let r = route(&mut n, &TRIANGLE, 100_000_000, 18);
    call(&mut n, "dev-fail", json!({"short_channel_id": "800004x1x0", "source": "carol", "failcode": "WIRE_TEMPORARY_NODE_FAILURE"})).unwrap();
    let e = failed(&mut n, r, &hash, &secret);
    let d = e.data.unwrap();
    assert_eq!(
        (d["failcode"].as_u64(), d["erring_index"].as_u64()),
        (Some(8194), Some(2))
    );
}

#[test]
fn sendpay_immediate_errors() {
    let mut n = demo();
    let (hash, secret) = new_invoice(&mut n, "i", 100_000_000);
    let e = call(
        &mut n,
        "sendpay",
        json!({"route": "x", "payment_hash": hash}),
    )
    .unwrap_err();
    assert_eq!(e.code, -32602);
    assert_eq!(e.message, "route: must be an array: invalid token '\"x\"'");
    let mut r = route(&mut n, &TRIANGLE, 100_000_000, 18);
    r[0]["channel"] = json!("800003x1x0"); // bob's channel, named with alice's id
    let e = call(&mut n, "sendpay", json!({"route": r, "payment_hash": hash})).unwrap_err();
    assert_eq!(e.code, 204);
    assert_eq!(e.message, "No connection to first peer found");
    let d = e.data.unwrap();
    assert_eq!(d["failcode"], 16394);
    assert_eq!(d["erring_index"], 0);
    assert!(d.get("erring_channel").is_none());

    call(
        &mut n,
        "dev-set-online",
        json!({"node": ALICE, "online": false}),
    )
    .unwrap();
    let r = route(&mut n, &TRIANGLE, 100_000_000, 18);
    let e = call(&mut n, "sendpay", json!({"route": r, "payment_hash": hash})).unwrap_err();
    assert_eq!(
        e.message,
        "failed: WIRE_TEMPORARY_CHANNEL_FAILURE (First peer not ready)"
    );
    assert_eq!(e.data.unwrap()["erring_channel"], "800001x1x0");
    call(
        &mut n,
        "dev-set-online",
        json!({"node": ALICE, "online": true}),
    )
    .unwrap();

    // Our own channel short of funds: pending first, then a local failure at index 0.
    let r = route(&mut n, &TRIANGLE, 900_000_000, 18);
    let (v, _) = call_ev(
        &mut n,
        "sendpay",
        json!({"route": r, "payment_hash": hash, "payment_secret": secret}),
    );
    assert_eq!(v["status"], "pending");
    let e = wait(&mut n, &hash).unwrap_err();
    assert_eq!(e.code, 204);
    assert!(e.message.starts_with(
        "failed: WIRE_TEMPORARY_CHANNEL_FAILURE (WIRE_TEMPORARY_CHANNEL_FAILURE: Capacity exceeded"
    ));
    assert_eq!(e.data.unwrap()["erring_index"], 0);

    let e = n.call("waitsendpay", &json!({"payment_hash": "11".repeat(32)}));
    assert!(e.is_none(), "waitsendpay is the host's (it blocks)");
    let e = n
        .waitsendpay_check(&json!({"payment_hash": "11".repeat(32)}))
        .unwrap_err();
    assert_eq!(e.code, 208);
}

#[test]
fn held_htlc_stays_in_flight_then_completes() {
    let mut n = demo();
    let (hash, secret) = new_invoice(&mut n, "h", 100_000_000);
    call(&mut n, "dev-hold", json!({"node": "carol"})).unwrap();
    let r = route(&mut n, &TRIANGLE, 100_000_000, 18);
    let sent = r[0]["amount_msat"].as_u64().unwrap();
    call(
        &mut n,
        "sendpay",
        json!({"route": r.clone(), "payment_hash": hash, "payment_secret": secret}),
    )
    .unwrap();
    assert!(matches!(
        n.waitsendpay_check(&json!({"payment_hash": hash}))
            .unwrap()
            .0,
        WaitState::Pending(_)
    ));
    // Our outgoing HTLC is visible and locks spendable.
    let v = call(
        &mut n,
        "listpeerchannels",
        json!({"short_channel_id": "800001x1x0"}),
    )
    .unwrap();
    let c = &v["channels"][0];
    assert_eq!(c["htlcs"][0]["direction"], "out");
    assert_eq!(c["htlcs"][0]["payment_hash"], hash);
    assert_eq!(c["spendable_msat"], 790_000_000 - sent);
    assert_eq!(c["to_us_msat"], 800_000_000u64);
    // A second attempt on the same hash is refused while the first is in flight.
    let e = call(
        &mut n,
        "sendpay",
        json!({"route": r, "payment_hash": hash, "payment_secret": secret}),
    )
    .unwrap_err();
    assert_eq!(e.code, 200);
    assert_eq!(
        e.message,
        "Payment with groupid=1 still in progress, cannot retry before that completes."
    );
    let (v, ev) = call_ev(&mut n, "dev-release", json!({}));
    assert_eq!(v["released"], 1);
    assert!(ev.iter().any(|e| matches!(e, Event::PaymentDone { .. })));
    assert_eq!(wait(&mut n, &hash).unwrap()["status"], "complete");
}

#[test]
fn invoice_payment_hook_sees_htlcs_and_can_reject() {
    let mut n = demo();
    n.hooks.invoice_payment = true;
    let (hash, secret) = new_invoice(&mut n, "k", 100_000_000);
    let r = route(&mut n, &TRIANGLE, 100_000_000, 18);
    let (_, ev) = call_ev(
        &mut n,
        "sendpay",
        json!({"route": r, "payment_hash": hash, "payment_secret": secret}),
    );
    let (pid, payload) = ev
        .iter()
        .find_map(|e| match e {
            Event::InvoicePaymentHook { payment, payload } => Some((*payment, payload.clone())),
            _ => None,
        })
        .expect("hook called");
    assert_eq!(payload["payment"]["label"], "k");
    assert_eq!(payload["payment"]["msat"], 100_000_000u64);
    let v = call(&mut n, "listpeerchannels", json!({})).unwrap();
    let find = |scid: &str| {
        v["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["short_channel_id"] == scid)
            .unwrap()["htlcs"]
            .clone()
    };
    assert_eq!(find("800004x1x0")[0]["direction"], "in");
    assert_eq!(find("800004x1x0")[0]["payment_hash"], hash);
    assert_eq!(find("800001x1x0")[0]["direction"], "out");
    let ev = n.invoice_payment_result(pid, Some(&json!({"result": "reject"})));
    assert!(ev.iter().any(|e| matches!(e, Event::PaymentDone { .. })));
    let e = wait(&mut n, &hash).unwrap_err();
    assert_eq!(e.code, 203);
    assert_eq!(e.data.unwrap()["erring_index"], 3);
    let inv = call(&mut n, "listinvoices", json!({"label": "k"})).unwrap();
    assert_eq!(inv["invoices"][0]["status"], "unpaid");
}

#[test]
fn htlc_accepted_hook_then_continue() {
    let mut n = demo();
    n.hooks.htlc_accepted = true;
    n.hooks.plugin_name = "cln-rebalance".into();
    let (hash, secret) = new_invoice(&mut n, "a", 100_000_000);
    let r = route(&mut n, &TRIANGLE, 100_000_000, 18);
    let (_, ev) = call_ev(
        &mut n,
        "sendpay",
        json!({"route": r, "payment_hash": hash, "payment_secret": secret}),
    );
    let (pid, payload) = ev
        .iter()
        .find_map(|e| match e {
            Event::HtlcAcceptedHook { payment, payload } => Some((*payment, payload.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(payload["htlc"]["short_channel_id"], "800004x1x0");
    assert_eq!(payload["htlc"]["payment_hash"], hash);
    assert_eq!(payload["onion"]["payment_secret"], secret);
    let v = call(
        &mut n,
        "listpeerchannels",
        json!({"short_channel_id": "800004x1x0"}),
    )
    .unwrap();
    assert_eq!(
        v["channels"][0]["htlcs"][0]["status"],
        "Waiting for the htlc_accepted hook of plugin cln-rebalance"
    );
    n.htlc_accepted_result(pid, Some(&json!({"result": "continue"})));
    assert_eq!(wait(&mut n, &hash).unwrap()["status"], "complete");
}

#[test]
fn non_strict_forwarding_uses_the_fuller_channel() {
    for strict in [false, true] {
        let mut n = demo();
        call(
            &mut n,
            "dev-set-strict",
            json!({"node": "alice", "strict": strict}),
        )
        .unwrap();
        let (hash, secret) = new_invoice(&mut n, "ns", 50_000_000);
        // Out over carol, back from alice asking for the 1M channel 800001x1x0.
        let hops = [
            (CAROL, "800004x1x0"),
            (ALICE, "700101x7x1"),
            (US, "800001x1x0"),
        ];
        let r = route(&mut n, &hops, 50_000_000, 18);
        let b1 = balance(&n, "800001x1x0", US);
        let b2 = balance(&n, "800002x1x0", US);
        call(
            &mut n,
            "sendpay",
            json!({"route": r, "payment_hash": hash, "payment_secret": secret}),
        )
        .unwrap();
        assert_eq!(wait(&mut n, &hash).unwrap()["status"], "complete");
        if strict {
            assert_eq!(balance(&n, "800001x1x0", US), b1 + 50_000_000);
            assert_eq!(balance(&n, "800002x1x0", US), b2);
        } else {
            // alice has 480k spendable on 800002 vs 190k on 800001: she substitutes.
            assert_eq!(balance(&n, "800001x1x0", US), b1);
            assert_eq!(balance(&n, "800002x1x0", US), b2 + 50_000_000);
        }
    }
}

/// lightningd checks the cltv against its one `cltv-delta` whichever channel it substitutes:
/// a fuller channel to the same peer with a larger delta in its (foreign) gossip still takes the
/// HTLC the onion built for the requested one. The onion's gap short of the requested delta
/// fails as before.
#[test]
fn non_strict_forwarding_checks_the_requested_delta() {
    let mut n = demo();
    let c = n.channel_by_scid("800002x1x0").unwrap();
    let s = n.side_of(c, n.node_by_id(ALICE).unwrap()).unwrap();
    n.channels[c].policy[s].cltv_expiry_delta += 100;
    let hops = [
        (CAROL, "800004x1x0"),
        (ALICE, "700101x7x1"),
        (US, "800001x1x0"),
    ];
    // One block short of the requested channel's delta at alice: refused.
    let (hash, secret) = new_invoice(&mut n, "short", 50_000_000);
    let mut r = route(&mut n, &hops, 50_000_000, 18);
    r[1]["delay"] = json!(r[1]["delay"].as_u64().unwrap() - 1);
    let e = failed(&mut n, r, &hash, &secret);
    let d = e.data.unwrap();
    assert_eq!(
        (d["failcode"].as_u64(), d["erring_index"].as_u64()),
        (Some(wire::INCORRECT_CLTV_EXPIRY as u64), Some(2))
    );
    // The requested delta exactly: forwarded over the fuller substitute (delta 100 larger).
    let (hash, secret) = new_invoice(&mut n, "delta", 50_000_000);
    let b2 = balance(&n, "800002x1x0", US);
    let r = route(&mut n, &hops, 50_000_000, 18);
    settled(&mut n, r, &hash, &secret);
    assert_eq!(balance(&n, "800002x1x0", US), b2 + 50_000_000);
}

#[test]
fn invoice_lifecycle() {
    let mut n = demo();
    let (hash, _) = new_invoice(&mut n, "inv", 1000);
    let e = call(
        &mut n,
        "invoice",
        json!({"amount_msat": 5, "label": "inv", "description": "x"}),
    )
    .unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (900, "Duplicate label 'inv'"));
    let e = call(
        &mut n,
        "invoice",
        json!({"amount_msat": 0, "label": "z", "description": "x"}),
    )
    .unwrap_err();
    assert_eq!(e.code, -32602);
    let l = call(&mut n, "listinvoices", json!({"payment_hash": hash})).unwrap();
    assert_eq!(l["invoices"][0]["status"], "unpaid");
    let e = call(
        &mut n,
        "delinvoice",
        json!({"label": "inv", "status": "paid"}),
    )
    .unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (906, "Invoice status is unpaid not paid")
    );
    assert_eq!(e.data.unwrap()["current_status"], "unpaid");
    let e = call(
        &mut n,
        "delinvoice",
        json!({"label": "nope", "status": "unpaid"}),
    )
    .unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (905, "Unknown invoice"));
    let d = call(&mut n, "delinvoice", json!(["inv", "unpaid"])).unwrap();
    assert_eq!(d["label"], "inv");
    assert!(
        call(&mut n, "listinvoices", json!({})).unwrap()["invoices"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    new_invoice(&mut n, "exp", 1000);
    call(&mut n, "dev-timetravel", json!({"seconds": 3600 * 24 * 8})).unwrap();
    let l = call(&mut n, "listinvoices", json!({"label": "exp"})).unwrap();
    assert_eq!(l["invoices"][0]["status"], "expired");
}

#[test]
fn unknown_param_and_bob_view() {
    let mut n = demo();
    let e = call(&mut n, "listpeerchannels", json!({"bogus": 1})).unwrap_err();
    assert_eq!(e.code, -32602);
    let v = call(&mut n, "listpeerchannels", json!([BOB])).unwrap();
    assert_eq!(v["channels"][0]["short_channel_id"], "800003x1x0");
}

#[test]
fn mainnet_graph_loads_with_hidden_balances() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/mainnet-2021-04-16.listchannels.json.gz");
    if !path.exists() {
        eprintln!("skipping: {} not found", path.display());
        return;
    }
    let a = Network::from_listchannels(&path, None, 11).unwrap();
    let b = Network::from_listchannels(&path, None, 11).unwrap();
    assert!(a.channels.len() > 30_000);
    assert!(a.nodes.len() > 8_000);
    let deg = |n: &Network| n.our_channels().len();
    assert!(deg(&a) > 500, "us is the best-connected node");
    let bal: Vec<u64> = a.channels.iter().map(|c| c.balance_msat[0]).collect();
    assert_eq!(
        bal,
        b.channels
            .iter()
            .map(|c| c.balance_msat[0])
            .collect::<Vec<_>>()
    );
    assert!(
        a.channels
            .iter()
            .all(|c| c.balance_msat[0] + c.balance_msat[1] == c.capacity_msat)
    );
    let c = Network::from_listchannels(&path, None, 12).unwrap();
    assert_ne!(
        bal,
        c.channels
            .iter()
            .map(|c| c.balance_msat[0])
            .collect::<Vec<_>>()
    );
    let mut a = a;
    let v = a.listchannels(&json!({})).unwrap();
    assert!(v["channels"].as_array().unwrap().len() > 60_000);
}

/// `active` of the listchannels entry of `scid` from `source`.
fn listed_active(n: &mut Network, scid: &str, source: &str) -> bool {
    let v = call(n, "listchannels", json!({"short_channel_id": scid})).unwrap();
    let entries = v["channels"].as_array().unwrap();
    let e = entries
        .iter()
        .find(|c| c["source"] == source)
        .expect("listed");
    e["active"].as_bool().unwrap()
}

#[test]
fn an_offline_node_is_disabled_at_once_or_as_lightningd_does() {
    // Default: carol's channels look disabled both ways the moment she is offline.
    let mut n = demo();
    call(&mut n, "dev-set-online", json!(["carol", false])).unwrap();
    assert!(!listed_active(&mut n, "700101x7x1", ALICE));
    assert!(!listed_active(&mut n, "700101x7x1", CAROL));
    assert!(!listed_active(&mut n, "800004x1x0", CAROL));
    call(&mut n, "dev-set-online", json!(["carol", true])).unwrap();
    assert!(listed_active(&mut n, "700101x7x1", ALICE));

    // lazy_disable: listed active until a forward towards her fails; then alice's direction
    // only, until carol is back.
    let mut n = demo();
    n.config.lazy_disable = true;
    let (hash, secret) = new_invoice(&mut n, "lazy", 100_000_000);
    call(&mut n, "dev-set-online", json!(["carol", false])).unwrap();
    assert!(listed_active(&mut n, "700101x7x1", ALICE));
    failed_at_alice(&mut n, &hash, &secret);
    assert!(!listed_active(&mut n, "700101x7x1", ALICE));
    assert!(listed_active(&mut n, "700101x7x1", CAROL));
    // Alice's update in the failure says so: channel_flags 2 (disabled), direction 0.
    let WaitState::Done(Err(live)) = n.wait_state(n.payments.len() - 1, true) else {
        panic!("failed payment")
    };
    let raw = live.data.unwrap()["raw_message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(raw.starts_with("1007008a0102"), "{raw}");
    assert_eq!(
        &raw[(4 + 2 + 64 + 32 + 8 + 4) * 2..(4 + 2 + 64 + 32 + 8 + 4 + 2) * 2],
        "0102"
    );
    assert!(listed_active(&mut n, "800004x1x0", CAROL));
    // Tried again, alice answers as before (lightningd does not check its own update's
    // disabled bit when forwarding, only that the peer is there).
    let r = route(&mut n, &TRIANGLE, 100_000_000, 18);
    let e = failed(&mut n, r, &hash, &secret);
    assert_eq!(
        e.data.unwrap()["failcodename"],
        "WIRE_TEMPORARY_CHANNEL_FAILURE"
    );
    assert!(!listed_active(&mut n, "700101x7x1", ALICE));
    call(&mut n, "dev-set-online", json!(["carol", true])).unwrap();
    assert!(listed_active(&mut n, "700101x7x1", ALICE));
    let r = route(&mut n, &TRIANGLE, 100_000_000, 18);
    settled(&mut n, r, &hash, &secret);
}

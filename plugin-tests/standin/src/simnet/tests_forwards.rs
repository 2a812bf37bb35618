//! listforwards after dev-forward, setchannel, and the fields a rebalancing report reads
//! (listpeerchannels counters, listinvoices/listsendpays of a paid circular payment).

use super::tests::{
    ALICE, BOB, CAROL, TRIANGLE, US, balance, call, demo, new_invoice, route, wait,
};
use super::*;
use serde_json::{Value, json};

const T0: f64 = 1_750_000_000.0;

fn err(n: &mut Network, method: &str, params: Value) -> RpcError {
    call(n, method, params).expect_err("should fail")
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn peer_channel(n: &mut Network, scid: &str) -> Value {
    call(n, "listpeerchannels", json!({"short_channel_id": scid})).unwrap()["channels"][0].clone()
}

fn forwards(n: &mut Network, p: Value) -> Vec<Value> {
    call(n, "listforwards", p).unwrap()["forwards"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn dev_forward_settles_and_listforwards_shows_it() {
    let mut n = demo();
    // Carol pays through us to alice: 100_000 sat out, our fee on 800001x1x0 (base 1000,
    // 50 ppm) is 6000 msat.
    let v = call(
        &mut n,
        "dev-forward",
        json!({"in_channel": "800004x1x0", "out_channel": "800001x1x0",
               "amount_msat": 100_000_000u64}),
    )
    .unwrap();
    assert_eq!(
        v,
        json!({"created_index": 1, "updated_index": 1, "in_channel": "800004x1x0",
               "in_htlc_id": 0, "out_channel": "800001x1x0", "out_htlc_id": 0,
               "in_msat": 100_006_000u64, "out_msat": 100_000_000u64, "fee_msat": 6000,
               "status": "settled", "style": "tlv", "received_time": T0, "resolved_time": T0})
    );
    // json_add_forwarding_fields' order.
    assert_eq!(
        keys(&v),
        [
            "created_index",
            "updated_index",
            "in_channel",
            "in_htlc_id",
            "out_channel",
            "out_htlc_id",
            "in_msat",
            "out_msat",
            "fee_msat",
            "status",
            "style",
            "received_time",
            "resolved_time"
        ]
    );
    assert_eq!(balance(&n, "800004x1x0", US), 100_000_000 + 100_006_000);
    assert_eq!(balance(&n, "800004x1x0", CAROL), 900_000_000 - 100_006_000);
    assert_eq!(balance(&n, "800001x1x0", US), 700_000_000);
    assert_eq!(balance(&n, "800001x1x0", ALICE), 300_000_000);
    assert_eq!(forwards(&mut n, json!({})), vec![v]);
    let info = call(&mut n, "getinfo", json!({})).unwrap();
    assert_eq!(info["fees_collected_msat"], 6000);

    // The channel counters an operator's view reads.
    let c = peer_channel(&mut n, "800004x1x0");
    assert_eq!(c["to_us_msat"], 200_006_000u64);
    assert_eq!(c["in_payments_offered"], 1);
    assert_eq!(c["in_offered_msat"], 100_006_000u64);
    assert_eq!(c["in_payments_fulfilled"], 1);
    assert_eq!(c["in_fulfilled_msat"], 100_006_000u64);
    assert_eq!(c["out_payments_offered"], 0);
    let c = peer_channel(&mut n, "800001x1x0");
    assert_eq!(c["out_payments_fulfilled"], 1);
    assert_eq!(c["out_fulfilled_msat"], 100_000_000u64);
    // HTLC ids move on: the next forward over the same channels gets 1.
    let v = call(
        &mut n,
        "dev-forward",
        json!(["800004x1x0", "800001x1x0", "1000sat", 2000]),
    )
    .unwrap();
    assert_eq!(
        (v["in_htlc_id"].clone(), v["out_htlc_id"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(v["fee_msat"], 2000);
}

#[test]
fn dev_forward_failures_are_recorded_as_lightningd_does() {
    let mut n = demo();
    let before = n
        .channels
        .iter()
        .map(|c| c.balance_msat)
        .collect::<Vec<_>>();
    // Our channeld refuses: 285_000 sat > our 280_000 sat spendable toward dave.
    let v = call(
        &mut n,
        "dev-forward",
        json!({"in_channel": "800004x1x0", "out_channel": "800005x1x0",
               "amount_msat": 285_000_000u64}),
    )
    .unwrap();
    let fee = 1000 + 285_000_000u64 * 50 / 1_000_000;
    assert_eq!(
        v,
        json!({"created_index": 1, "in_channel": "800004x1x0", "in_htlc_id": 0,
               "out_channel": "800005x1x0", "in_msat": 285_000_000 + fee,
               "status": "local_failed", "failcode": 4103,
               "failreason": "WIRE_TEMPORARY_CHANNEL_FAILURE", "style": "tlv",
               "received_time": T0})
    );
    // Too small a fee.
    let v = call(
        &mut n,
        "dev-forward",
        json!({"in_channel": "800004x1x0", "out_channel": "800001x1x0",
               "amount_msat": 1_000_000, "fee_msat": 1049}),
    )
    .unwrap();
    assert_eq!(
        (v["status"].clone(), v["failcode"].clone()),
        (json!("local_failed"), json!(4108))
    );
    assert_eq!(v["failreason"], "WIRE_FEE_INSUFFICIENT");
    // Toward a channel we do not have: the onion's scid is what is recorded.
    let v = call(
        &mut n,
        "dev-forward",
        json!({"in_channel": "800004x1x0", "out_channel": "1x2x3", "amount_msat": 1000}),
    )
    .unwrap();
    assert_eq!(v["out_channel"], "1x2x3");
    assert_eq!(v["failcode"], 16394);
    assert_eq!(v["failreason"], "WIRE_UNKNOWN_NEXT_PEER");
    // Next peer offline; a dev-fail on our direction.
    call(&mut n, "dev-set-online", json!(["dave", false])).unwrap();
    let v = call(
        &mut n,
        "dev-forward",
        json!(["800004x1x0", "800005x1x0", 1000]),
    )
    .unwrap();
    assert_eq!(v["failcode"], 4103);
    call(&mut n, "dev-set-online", json!(["dave", true])).unwrap();
    call(
        &mut n,
        "dev-fail",
        json!(["800005x1x0", "standin", "WIRE_CHANNEL_DISABLED"]),
    )
    .unwrap();
    let v = call(
        &mut n,
        "dev-forward",
        json!(["800004x1x0", "800005x1x0", 1000]),
    )
    .unwrap();
    assert_eq!(v["failcode"], 4116);
    // The downstream fails it: out fields and resolved_time, no failcode.
    let v = call(
        &mut n,
        "dev-forward",
        json!({"in_channel": "800001x1x0", "out_channel": "800004x1x0",
               "amount_msat": 1000, "outcome": "failed"}),
    )
    .unwrap();
    assert_eq!(
        v,
        json!({"created_index": 6, "updated_index": 1, "in_channel": "800001x1x0",
               "in_htlc_id": 0, "out_channel": "800004x1x0", "out_htlc_id": 0,
               "in_msat": 2001, "out_msat": 1000, "fee_msat": 1001, "status": "failed",
               "style": "tlv", "received_time": T0, "resolved_time": T0})
    );
    // Nothing moved.
    let after = n
        .channels
        .iter()
        .map(|c| c.balance_msat)
        .collect::<Vec<_>>();
    assert_eq!(before, after);
    assert_eq!(
        call(&mut n, "getinfo", json!({})).unwrap()["fees_collected_msat"],
        0
    );
    // A failed forward still counts as offered on both channels, fulfilled on neither.
    let c = peer_channel(&mut n, "800001x1x0");
    assert_eq!(
        (
            c["in_payments_offered"].clone(),
            c["in_payments_fulfilled"].clone()
        ),
        (json!(1), json!(0))
    );

    // Refused before it reaches us: no forward at all.
    let e = err(
        &mut n,
        "dev-forward",
        json!(["700101x7x1", "800001x1x0", 1000]),
    );
    assert!(
        e.message.contains("not one of our channels"),
        "{}",
        e.message
    );
    let e = err(
        &mut n,
        "dev-forward",
        json!(["800004x1x0", "800001x1x0", "900000sat"]),
    );
    assert!(
        e.message.contains("the peer can send only"),
        "{}",
        e.message
    );
    let e = err(
        &mut n,
        "dev-forward",
        json!({"in_channel": "800004x1x0",
        "out_channel": "800001x1x0", "amount_msat": 1000, "outcome": "offered"}),
    );
    assert!(
        e.message
            .starts_with("outcome: should be 'settled' or 'failed'")
    );
    assert_eq!(forwards(&mut n, json!({})).len(), 6);

    let v = call(&mut n, "listforwards", json!({})).unwrap();
    let r: cln_rpc::model::responses::ListforwardsResponse = serde_json::from_value(v).unwrap();
    assert_eq!(r.forwards.len(), 6);
    assert!(r.forwards[0].out_msat.is_none());
    assert_eq!(r.forwards[5].received_time, T0);
}

#[test]
fn listforwards_filters_and_paging() {
    let mut n = demo();
    let fwd = |n: &mut Network, i: &str, o: &str, amount: u64, outcome: &str| {
        call(
            n,
            "dev-forward",
            json!({"in_channel": i, "out_channel": o, "amount_msat": amount,
                   "outcome": outcome}),
        )
        .unwrap()
    };
    fwd(&mut n, "800004x1x0", "800001x1x0", 1_000_000, "settled"); // c1 u1
    fwd(&mut n, "800004x1x0", "800005x1x0", 285_000_000, "settled"); // c2 local_failed
    fwd(&mut n, "800001x1x0", "800004x1x0", 1_000_000, "failed"); // c3 u2
    fwd(&mut n, "800003x1x0", "800004x1x0", 2_000_000, "settled"); // c4 u3
    let created = |v: Vec<Value>| -> Vec<u64> {
        v.iter()
            .map(|f| f["created_index"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(created(forwards(&mut n, json!({}))), [1, 2, 3, 4]);
    assert_eq!(
        created(forwards(&mut n, json!({"status": "settled"}))),
        [1, 4]
    );
    assert_eq!(
        created(forwards(&mut n, json!({"status": "local_failed"}))),
        [2]
    );
    assert_eq!(
        created(forwards(&mut n, json!({"status": "offered"}))),
        [] as [u64; 0]
    );
    assert_eq!(
        created(forwards(&mut n, json!({"in_channel": "800004x1x0"}))),
        [1, 2]
    );
    assert_eq!(
        created(forwards(&mut n, json!({"out_channel": "800004x1x0"}))),
        [3, 4]
    );
    assert_eq!(
        created(forwards(
            &mut n,
            json!({"in_channel": "800004x1x0", "out_channel": "800005x1x0"})
        )),
        [2]
    );
    assert_eq!(
        created(forwards(
            &mut n,
            json!({"status": "failed", "out_channel": "800004x1x0"})
        )),
        [3]
    );
    assert_eq!(
        created(forwards(
            &mut n,
            json!({"index": "created", "start": 2, "limit": 2})
        )),
        [2, 3]
    );
    // By updated_index: the never-updated row (0) first, unless start skips it.
    assert_eq!(
        created(forwards(&mut n, json!({"index": "updated"}))),
        [2, 1, 3, 4]
    );
    assert_eq!(
        created(forwards(&mut n, json!({"index": "updated", "start": 2}))),
        [3, 4]
    );
    // The channel query ignores index and limit.
    assert_eq!(
        created(forwards(
            &mut n,
            json!({"in_channel": "800004x1x0", "index": "created", "limit": 1})
        )),
        [1, 2]
    );
    // Positional.
    assert_eq!(
        created(forwards(&mut n, json!(["settled", null, "800004x1x0"]))),
        [4]
    );

    let e = err(&mut n, "listforwards", json!({"status": "done"}));
    assert_eq!(
        e.message,
        "status: Unrecognized status: invalid token '\"done\"'"
    );
    let e = err(&mut n, "listforwards", json!({"start": 1}));
    assert_eq!(e.message, "Can only specify {start} with {index}");
    let e = err(&mut n, "listforwards", json!({"limit": 1}));
    assert_eq!(e.message, "Can only specify {limit} with {index}");
    let e = err(
        &mut n,
        "listforwards",
        json!({"out_channel": "800004x1x0", "index": "created", "start": 1}),
    );
    assert_eq!(e.message, "Cannot use start with in_channel or out_channel");
    let e = err(&mut n, "listforwards", json!({"index": "newest"}));
    assert_eq!(
        e.message,
        "index: unknown index: invalid token '\"newest\"'"
    );
    let e = err(&mut n, "listforwards", json!({"in_channel": "800004"}));
    assert_eq!(e.code, -32602);
}

#[test]
fn setchannel_sets_our_side_everywhere() {
    use cln_rpc::model::responses::SetchannelResponse;
    let mut n = demo();
    let v = call(
        &mut n,
        "setchannel",
        json!({"id": "800001x1x0", "feebase": 2000, "feeppm": 100}),
    )
    .unwrap();
    let cid = n.channels[n.channel_by_scid("800001x1x0").unwrap()]
        .channel_id
        .clone();
    assert_eq!(
        v,
        json!({"channels": [{"peer_id": ALICE, "channel_id": cid,
            "short_channel_id": "800001x1x0", "fee_base_msat": 2000,
            "fee_proportional_millionths": 100, "minimum_htlc_out_msat": 1,
            "maximum_htlc_out_msat": 1_000_000_000u64, "ignore_fee_limits": false}]})
    );
    let _: SetchannelResponse = serde_json::from_value(v).unwrap();
    let c = peer_channel(&mut n, "800001x1x0");
    assert_eq!(c["updates"]["local"]["fee_base_msat"], 2000);
    assert_eq!(c["updates"]["local"]["fee_proportional_millionths"], 100);
    assert_eq!(c["fee_base_msat"], 2000);
    assert_eq!(c["fee_proportional_millionths"], 100);
    assert!(c.get("ignore_fee_limits").is_none());
    // The remote side is untouched.
    assert_eq!(c["updates"]["remote"]["fee_proportional_millionths"], 200);
    let l = call(&mut n, "listchannels", json!({"source": US})).unwrap();
    let ours = l["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["short_channel_id"] == "800001x1x0")
        .unwrap();
    assert_eq!(ours["base_fee_millisatoshi"], 2000);
    assert_eq!(ours["fee_per_millionth"], 100);

    // The old, lower fee is still accepted for enforcedelay (600 s by default) ...
    let fwd = |n: &mut Network, fee: u64| {
        call(
            n,
            "dev-forward",
            json!({"in_channel": "800004x1x0", "out_channel": "800001x1x0",
                   "amount_msat": 100_000, "fee_msat": fee}),
        )
        .unwrap()["status"]
            .clone()
    };
    assert_eq!(fwd(&mut n, 1005), "settled");
    assert_eq!(fwd(&mut n, 1004), "local_failed");
    // ... and not after.
    call(&mut n, "dev-timetravel", json!({"seconds": 600})).unwrap();
    assert_eq!(fwd(&mut n, 1005), "local_failed");
    assert_eq!(fwd(&mut n, 2010), "settled");
    // enforcedelay 0: at once.
    call(
        &mut n,
        "setchannel",
        json!(["800001x1x0", 3000, null, null, null, 0]),
    )
    .unwrap();
    assert_eq!(fwd(&mut n, 2010), "local_failed");
    // Lowering starts no grace period (and needs none).
    call(&mut n, "setchannel", json!(["800001x1x0", 0, 0])).unwrap();
    assert_eq!(fwd(&mut n, 0), "settled");

    // HTLC limits: clamped to what the peer accepts and what the channel can carry.
    let v = call(
        &mut n,
        "setchannel",
        json!({"id": "800001x1x0", "htlcmin": 0, "htlcmax": "2000000sat",
               "ignorefeelimits": true}),
    )
    .unwrap();
    let c = &v["channels"][0];
    assert_eq!(c["minimum_htlc_out_msat"], 1);
    assert_eq!(
        c["warning_htlcmin_too_low"],
        "Set minimum_htlc_out_msat to minimum allowed by peer"
    );
    assert_eq!(c["maximum_htlc_out_msat"], 990_000_000u64);
    assert_eq!(
        c["warning_htlcmax_too_high"],
        "Set maximum_htlc_out_msat to maximum possible in channel"
    );
    assert_eq!(c["ignore_fee_limits"], true);
    assert_eq!(
        keys(c),
        [
            "peer_id",
            "channel_id",
            "short_channel_id",
            "fee_base_msat",
            "fee_proportional_millionths",
            "minimum_htlc_out_msat",
            "warning_htlcmin_too_low",
            "maximum_htlc_out_msat",
            "ignore_fee_limits",
            "warning_htlcmax_too_high"
        ]
    );
    let pc = peer_channel(&mut n, "800001x1x0");
    assert_eq!(pc["ignore_fee_limits"], true);
    assert_eq!(pc["updates"]["local"]["htlc_maximum_msat"], 990_000_000u64);
    assert_eq!(pc["maximum_htlc_out_msat"], 990_000_000u64);
    let _: cln_rpc::model::responses::ListpeerchannelsResponse =
        serde_json::from_value(call(&mut n, "listpeerchannels", json!({})).unwrap()).unwrap();

    // dev-set-policy with source = our node sets the same thing (updates.local).
    call(
        &mut n,
        "dev-set-policy",
        json!({"short_channel_id": "800001x1x0", "source": "standin", "fee_base_msat": 7}),
    )
    .unwrap();
    assert_eq!(
        peer_channel(&mut n, "800001x1x0")["updates"]["local"]["fee_base_msat"],
        7
    );
}

#[test]
fn setchannel_ids_and_errors() {
    let mut n = demo();
    let scids = |v: &Value| -> Vec<String> {
        v["channels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["short_channel_id"].as_str().unwrap().to_string())
            .collect()
    };
    let v = call(&mut n, "setchannel", json!({"id": ALICE, "feeppm": 7})).unwrap();
    assert_eq!(scids(&v), ["800001x1x0", "800002x1x0"]);
    let v = call(&mut n, "setchannel", json!({"id": "all", "feeppm": 8})).unwrap();
    assert_eq!(scids(&v).len(), 5);
    let cid = n.channels[n.channel_by_scid("800004x1x0").unwrap()]
        .channel_id
        .clone();
    let v = call(&mut n, "setchannel", json!({"id": cid, "feeppm": 9})).unwrap();
    assert_eq!(scids(&v), ["800004x1x0"]);
    let alias = peer_channel(&mut n, "800005x1x0")["alias"]["local"].clone();
    let v = call(&mut n, "setchannel", json!({"id": alias, "feeppm": 9})).unwrap();
    assert_eq!(scids(&v), ["800005x1x0"]);

    // A closed channel: by scid an error, skipped by "all", and a peer with only that one.
    call(
        &mut n,
        "dev-set-channel-state",
        json!(["800003x1x0", "ONCHAIN"]),
    )
    .unwrap();
    let e = err(&mut n, "setchannel", json!({"id": "800003x1x0"}));
    assert_eq!(
        e.message,
        "id: Channel in state ONCHAIN: invalid token '\"800003x1x0\"'"
    );
    let v = call(&mut n, "setchannel", json!({"id": "all"})).unwrap();
    assert_eq!(scids(&v).len(), 4);
    let e = err(&mut n, "setchannel", json!({"id": BOB}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            -1,
            "Could not find any active channels of peer with that id"
        )
    );
    // Not a peer of ours: the node id is then tried as a channel.
    let erin = n.nodes[n.node_by_ref("erin").unwrap()].id.clone();
    let e = err(&mut n, "setchannel", json!({"id": erin}));
    assert_eq!(
        e.message,
        format!("id: should be a channel ID or short channel ID: invalid token '\"{erin}\"'")
    );
    let e = err(&mut n, "setchannel", json!({"id": "1x1x1"}));
    assert_eq!(
        e.message,
        "id: Short channel id not found: invalid token '\"1x1x1\"'"
    );
    let e = err(&mut n, "setchannel", json!({"id": "00".repeat(32)}));
    assert!(e.message.starts_with("id: Channel id not found"));
    let e = err(
        &mut n,
        "setchannel",
        json!({"id": "all", "feebase": 5_000_000_000u64}),
    );
    assert_eq!(
        e.message,
        "feebase: exceeds u32 max: invalid token '5000000000'"
    );
    let e = err(&mut n, "setchannel", json!({"id": "all", "feeppm": "x"}));
    assert_eq!(
        e.message,
        "feeppm: should be an integer: invalid token '\"x\"'"
    );
    let e = err(
        &mut n,
        "setchannel",
        json!({"id": "all", "htlcmin": 10, "htlcmax": 9}),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (-1, "htlcmax cannot be less than htlcmin")
    );
    let e = err(&mut n, "setchannel", json!({}));
    assert_eq!(e.message, "missing required parameter: id");
}

#[test]
fn paid_circular_payment_fields_a_report_reads() {
    let mut n = demo();
    let (hash, secret) = new_invoice(&mut n, "tri", 100_000_000);
    let r = route(&mut n, &TRIANGLE, 100_000_000, 18);
    let sent = r[0]["amount_msat"].as_u64().unwrap();
    call(
        &mut n,
        "sendpay",
        json!({"route": r, "payment_hash": hash, "payment_secret": secret}),
    )
    .unwrap();
    wait(&mut n, &hash).unwrap();
    let inv = call(&mut n, "listinvoices", json!({"label": "tri"})).unwrap()["invoices"][0].clone();
    assert_eq!(inv["status"], "paid");
    assert_eq!(inv["amount_received_msat"], 100_000_000u64);
    assert_eq!(inv["paid_at"], 1_750_000_000u64);
    assert_eq!(inv["description"], "test");
    assert_eq!(inv["created_index"], 1);
    assert_eq!(inv["updated_index"], 1);
    assert_eq!(inv["pay_index"], 1);
    let pay =
        call(&mut n, "listsendpays", json!({"payment_hash": hash})).unwrap()["payments"][0].clone();
    assert_eq!(pay["created_at"], 1_750_000_000u64);
    assert_eq!(pay["completed_at"], 1_750_000_000u64);
    assert_eq!(pay["amount_sent_msat"], sent);
    assert_eq!(pay["amount_msat"], 100_000_000u64);
    assert_eq!(
        (pay["created_index"].clone(), pay["updated_index"].clone()),
        (json!(1), json!(1))
    );
    // Our two channels count the HTLCs; a self-payment through us is no forward.
    let out = peer_channel(&mut n, "800001x1x0");
    assert_eq!(out["out_payments_offered"], 1);
    assert_eq!(out["out_payments_fulfilled"], 1);
    assert_eq!(out["out_fulfilled_msat"], sent);
    let inc = peer_channel(&mut n, "800004x1x0");
    assert_eq!(inc["in_payments_fulfilled"], 1);
    assert_eq!(inc["in_fulfilled_msat"], 100_000_000u64);
    assert!(forwards(&mut n, json!({})).is_empty());

    // created_index is never reused after a delinvoice (each subsystem counts on its own).
    new_invoice(&mut n, "a", 1000);
    call(&mut n, "delinvoice", json!(["a", "unpaid"])).unwrap();
    new_invoice(&mut n, "b", 1000);
    let b = call(&mut n, "listinvoices", json!({"label": "b"})).unwrap();
    assert_eq!(b["invoices"][0]["created_index"], 3);
}

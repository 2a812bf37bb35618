//! The rebalance algorithm in-process, against the stand-in's network model through the
//! `Lightningd` trait: real outcomes (balances moved, fee within cap, invoices cleaned up).

mod common;

use cln_rebalance::config::Config;
use cln_rebalance::params::RebalanceParams;
use cln_rebalance::progress::Collected;
use cln_rebalance::rebalance::session::Extra;
use common::{assert_clean, demo_network, pay_at_once, rebalancer};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const BOB: &str = "800003x1x0"; // we hold 1.2M of 1.5M sat
const CAROL: &str = "800004x1x0"; // we hold 100k of 1M sat
const DAVE: &str = "800005x1x0"; // we hold 300k of 2M sat
const ALICE_SMALL: &str = "800001x1x0";
const ALICE_BIG: &str = "800002x1x0";

fn req(out: &str, inc: &str, amount_msat: u64) -> RebalanceParams {
    RebalanceParams {
        outgoing: out.into(),
        incoming: inc.into(),
        amount_msat: Some(amount_msat),
        maxfeeppm: None,
        exemptfee: None,
        retry_for: Some(10),
        dryrun: false,
        maxparts: None,
        amount_max: false,
    }
}

/// A request with room in the fee cap, for tests about something other than fees.
fn generous(out: &str, inc: &str, amount_msat: u64) -> RebalanceParams {
    RebalanceParams {
        maxfeeppm: Some(10_000),
        ..req(out, inc, amount_msat)
    }
}

#[tokio::test]
async fn moves_the_amount_and_pays_only_the_reported_fee() {
    let (r, node) = rebalancer(demo_network(), Config::default());
    let (out0, in0) = (node.to_us(BOB), node.to_us(CAROL));
    let v = r.rebalance(req(BOB, CAROL, 100_000_000)).await.unwrap();
    assert_eq!(v["status"], "complete");
    let fee = v["fee_msat"].as_u64().unwrap();
    assert!(
        fee > 0 && fee <= 100_000,
        "fee {fee} within the 1000 ppm cap"
    );
    node.assert_moved(&v, (BOB, CAROL), (out0, in0), 100_000_000);
    // rebalance.py's names mean the same.
    assert_eq!(v["sent"], format!("{}msat", 100_000_000 + fee));
    assert_eq!(v["received"], "100000000msat");
    assert_eq!(v["fee"], format!("{fee}msat"));
    assert_eq!(v["sent_msat"], 100_000_000 + fee);
    assert_eq!(v["received_msat"], 100_000_000);
    let route = v["route"].as_array().unwrap();
    assert_eq!(route.first().unwrap()["short_channel_id"], BOB);
    assert_eq!(route.last().unwrap()["short_channel_id"], CAROL);
    assert_eq!(route.last().unwrap()["amount_msat"], 100_000_000);
    assert_eq!(route.first().unwrap()["amount_msat"], 100_000_000 + fee);
    assert_clean(&node);
}

#[tokio::test]
async fn dryrun_quotes_and_pays_nothing() {
    let (r, node) = rebalancer(demo_network(), Config::default());
    let before = (node.to_us(BOB), node.to_us(CAROL));
    let mut p = req(BOB, CAROL, 50_000_000);
    p.dryrun = true;
    let quote = r.rebalance(p).await.unwrap();
    assert_eq!(quote["status"], "dryrun");
    assert!(node.invoices().is_empty() && node.sendpays().is_empty());
    assert_eq!(before, (node.to_us(BOB), node.to_us(CAROL)));
    // The quote is what the payment then costs.
    let paid = r.rebalance(req(BOB, CAROL, 50_000_000)).await.unwrap();
    assert_eq!(paid["fee_msat"], quote["fee_msat"]);
    assert_eq!(paid["route"], quote["route"]);
}

#[tokio::test]
async fn fee_cap_too_low_is_206_and_nothing_is_paid() {
    let (r, node) = rebalancer(demo_network(), Config::default());
    let mut p = req(BOB, CAROL, 100_000_000);
    p.maxfeeppm = Some(1);
    p.exemptfee = Some(0);
    let e = r.rebalance(p).await.unwrap_err();
    assert_eq!(e.code, 206);
    let data = e.data.unwrap();
    assert!(data["cheapest_fee_msat"].as_u64().unwrap() > data["fee_cap_msat"].as_u64().unwrap());
    assert_eq!(data["fee_cap_msat"], 100);
    assert!(node.invoices().is_empty() && node.sendpays().is_empty());
}

#[tokio::test]
async fn a_depleted_hop_forces_a_retry_on_another_route() {
    let (r, node) = rebalancer(demo_network(), pay_at_once());
    // alice's cheapest way to carol is their direct channel; the other goes via erin and frank.
    // One route at a time: the retry on another route is what this is about.
    let single = |mut p: RebalanceParams| {
        p.maxparts = Some(1);
        p
    };
    let mut p = single(req(ALICE_BIG, CAROL, 100_000_000));
    p.dryrun = true;
    let quote = r.rebalance(p).await.unwrap();
    assert_eq!(quote["hops"], 3, "{quote}");
    // Drain the first middle channel of the cheapest route on its sending side.
    let hop = &quote["route"][1];
    let (scid, from) = (
        hop["short_channel_id"].as_str().unwrap(),
        quote["route"][0]["node_id"].as_str().unwrap(),
    );
    node.call("dev-drain", json!({"short_channel_id": scid, "node": from}))
        .unwrap();
    let heard = Arc::new(Collected::default());
    let extra = Extra {
        progress: Some(heard.clone()),
        ..Extra::default()
    };
    let v = r
        .rebalance_with(single(req(ALICE_BIG, CAROL, 100_000_000)), extra)
        .await
        .unwrap();
    assert_eq!(v["status"], "complete");
    assert_eq!(v["attempts"], 2, "{v}");
    // Whoever follows it hears each attempt, the failure and why, and the outcome.
    let lines = heard.lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(
        lines[0].starts_with(&format!("attempt 1: 3 hops via {scid}, fee ")),
        "{lines:#?}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "attempt 1 failed: WIRE_TEMPORARY_CHANNEL_FAILURE at hop 1 (channel {scid})"
        )) && lines[1].contains("a channel had too little liquidity for it; trying another route"),
        "{lines:#?}"
    );
    assert!(lines[2].starts_with("attempt 2: "), "{lines:#?}");
    assert_eq!(lines[3], v["message"], "{lines:#?}");
    let bars = heard.bars.lock().unwrap().clone();
    assert_eq!(bars.len(), 2, "a bar step per attempt");
    assert!(bars.iter().all(|&(n, t)| t == 10 && n < t), "{bars:?}");
    assert_ne!(v["route"], quote["route"]);
    assert_eq!(
        node.sendpays()
            .iter()
            .filter(|s| s["status"] == "complete")
            .count(),
        1
    );
    assert_clean(&node);
}

#[tokio::test]
async fn a_return_over_the_wrong_channel_is_refused_and_costs_nothing() {
    let (r, node) = rebalancer(demo_network(), Config::default());
    // alice has two channels to us and forwards over the one with the most spendable on her
    // side (800001x1x0: 200k vs 800002x1x0: 500k theirs): ask for the other one.
    let before: Vec<u64> = [BOB, ALICE_SMALL, ALICE_BIG]
        .iter()
        .map(|s| node.to_us(s))
        .collect();
    let e = r
        .rebalance(req(BOB, ALICE_SMALL, 50_000_000))
        .await
        .unwrap_err();
    assert_eq!(e.code, 210, "{e}");
    assert!(
        e.message.contains("came back over channel 800002x1x0"),
        "{}",
        e.message
    );
    let after: Vec<u64> = [BOB, ALICE_SMALL, ALICE_BIG]
        .iter()
        .map(|s| node.to_us(s))
        .collect();
    assert_eq!(before, after, "nothing moved, no fee paid");
    assert_clean(&node);
}

#[tokio::test]
async fn a_held_htlc_is_never_paid_twice() {
    let (r, node) = rebalancer(demo_network(), Config::default());
    let before = (node.to_us(BOB), node.to_us(CAROL));
    node.call("dev-hold", json!({"node": "carol"})).unwrap();
    let mut p = req(BOB, CAROL, 20_000_000);
    p.retry_for = Some(2);
    let e = r.rebalance(p).await.unwrap_err();
    assert_eq!(e.code, 210, "{e}");
    assert!(e.message.contains("still in flight"), "{}", e.message);
    assert_eq!(
        node.sendpays().len(),
        1,
        "one attempt only while the HTLC was held"
    );
    assert!(
        node.invoices().is_empty(),
        "the invoice is deleted so the held HTLC cannot complete"
    );
    node.call("dev-release", json!({"node": "carol"})).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        before,
        (node.to_us(BOB), node.to_us(CAROL)),
        "released HTLC failed back"
    );
    assert_clean(&node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_lists_a_rebalance_while_its_htlc_is_held() {
    let (r, node) = rebalancer(demo_network(), pay_at_once());
    node.call("dev-hold", json!({"node": "carol"})).unwrap();
    let mut p = req(BOB, CAROL, 20_000_000);
    p.retry_for = Some(3);
    let running = {
        let r = r.clone();
        tokio::spawn(async move { r.rebalance(p).await })
    };
    let mut listed = serde_json::Value::Null;
    for _ in 0..200 {
        let report = r.rebalancereport(None).await.unwrap();
        if report["in_flight"][0]["htlcs_out"] == 1 {
            listed = report;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let f = &listed["in_flight"][0];
    assert_eq!(
        listed["in_flight"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(f["outgoing_scid"], BOB);
    assert_eq!(f["incoming_scid"], CAROL);
    assert_eq!(f["amount_msat"], 20_000_000);
    assert_eq!(f["parts"], 1);
    assert_eq!(
        f["attempts"], 1,
        "the first attempt counts while its part is out"
    );
    assert_eq!(f["job_id"], 0);
    assert!(f["payment_hash"].as_str().is_some_and(|h| h.len() == 64));
    let text = listed["text"].as_str().unwrap();
    assert!(text.contains("In flight now:"), "{text}");
    assert!(
        text.contains(&format!(
            "{BOB} -> {CAROL} 20000sat: attempt 1, 1 part(s) and 1 HTLC(s) out"
        )),
        "{text}"
    );
    assert!(running.await.unwrap().is_err(), "held past retry_for");
    node.call("dev-release", json!({"node": "carol"})).unwrap();
    let after = r.rebalancereport(None).await.unwrap();
    assert_eq!(
        after["in_flight"],
        json!([]),
        "nothing in flight once it ended"
    );
}

#[tokio::test]
async fn two_rebalances_at_once_both_complete() {
    let (r, node) = rebalancer(demo_network(), Config::default());
    let (bob0, dave0, carol0) = (node.to_us(BOB), node.to_us(DAVE), node.to_us(CAROL));
    let (a, b) = tokio::join!(
        r.rebalance(req(BOB, CAROL, 30_000_000)),
        r.rebalance(req(BOB, DAVE, 40_000_000))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a["payment_hash"], b["payment_hash"]);
    let fees = a["fee_msat"].as_u64().unwrap() + b["fee_msat"].as_u64().unwrap();
    assert_eq!(node.to_us(BOB), bob0 - 70_000_000 - fees);
    assert_eq!(node.to_us(CAROL), carol0 + 30_000_000);
    assert_eq!(node.to_us(DAVE), dave0 + 40_000_000);
    assert_clean(&node);
}

#[tokio::test]
async fn bad_channels_are_refused_before_anything_is_created() {
    let (r, node) = rebalancer(demo_network(), Config::default());
    let cases = [
        (req("9x9x9", CAROL, 1_000_000), "outgoing"),
        (req(BOB, "nonsense", 1_000_000), "incoming"),
        (req(BOB, BOB, 1_000_000), "incoming"),
        (req(BOB, CAROL, 2_000_000_000_000), "incoming"),
        (req(CAROL, BOB, 900_000_000), "incoming"),
    ];
    for (p, param) in cases {
        let e = r.rebalance(p.clone()).await.unwrap_err();
        assert_eq!(e.code, -32602, "{p:?}: {e}");
        assert!(
            e.message.starts_with(&format!("{param}: ")),
            "{p:?}: {}",
            e.message
        );
    }
    node.call("dev-set-online", json!({"node": "bob", "online": false}))
        .unwrap();
    let e = r.rebalance(req(BOB, CAROL, 1_000_000)).await.unwrap_err();
    assert!(
        e.message.starts_with("outgoing: ") && e.message.contains("not connected"),
        "{}",
        e.message
    );
    assert!(node.invoices().is_empty() && node.sendpays().is_empty());
}

#[tokio::test]
async fn no_amount_brings_a_channel_to_half() {
    let (r, node) = rebalancer(demo_network(), Config::default());
    let mut p = req(BOB, CAROL, 0);
    p.amount_msat = None;
    let v = r.rebalance(p).await.unwrap();
    // bob: 1.2M of 1.5M ours -> surplus 450k; carol: 100k of 1M -> deficit 400k: moves 400k.
    assert_eq!(v["amount_msat"], 400_000_000u64);
    assert_eq!(node.to_us(CAROL), 500_000_000);
    let mut again = req(BOB, CAROL, 0);
    again.amount_msat = None;
    let e = r.rebalance(again).await.unwrap_err();
    assert!(
        e.message.starts_with("amount_msat: ")
            && e.message.contains("incoming channel 800004x1x0 is already"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn stale_invoices_from_an_earlier_run_are_deleted() {
    let (r, node) = rebalancer(demo_network(), Config::default());
    for label in ["rebalance-left-by-a-crash", "someone-elses"] {
        node.call(
            "invoice",
            json!({"amount_msat": 1000, "label": label, "description": "x"}),
        )
        .unwrap();
    }
    assert_eq!(
        cln_rebalance::rebalance::cleanup::delete_stale_invoices(&r).await,
        1
    );
    let labels: Vec<_> = node
        .invoices()
        .iter()
        .map(|i| i["label"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(labels, ["someone-elses"]);
}

#[tokio::test]
async fn a_private_incoming_channel_is_named_by_the_peers_alias() {
    let mut net = demo_network();
    let carol = net.channel_by_scid(CAROL).unwrap();
    net.channels[carol].public = false;
    let (r, node) = rebalancer(net, Config::default());
    let chans = node.call("listpeerchannels", json!({})).unwrap();
    let entry = chans["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["short_channel_id"] == CAROL)
        .unwrap()
        .clone();
    assert_eq!(entry["private"], true);
    let before = node.to_us(CAROL);
    let v = r.rebalance(req(BOB, CAROL, 10_000_000)).await.unwrap();
    assert_eq!(v["incoming_scid"], CAROL);
    assert_eq!(
        v["route"].as_array().unwrap().last().unwrap()["short_channel_id"],
        entry["alias"]["remote"]
    );
    assert_eq!(node.to_us(CAROL), before + 10_000_000);
    assert_clean(&node);

    // The same route naming the real scid is refused, as lightningd refuses it.
    let mut route = v["route"].clone();
    let last = route.as_array().unwrap().len() - 1;
    route[last]["short_channel_id"] = json!(CAROL);
    let hops: Vec<_> = route
        .as_array()
        .unwrap()
        .iter()
        .map(|h| json!({"id": h["node_id"], "channel": h["short_channel_id"], "amount_msat": h["amount_msat"], "delay": h["delay"]}))
        .collect();
    let inv = node
        .call(
            "invoice",
            json!({"amount_msat": 10_000_000, "label": "raw", "description": "x"}),
        )
        .unwrap();
    node.call("sendpay", json!({"route": hops, "payment_hash": inv["payment_hash"], "payment_secret": inv["payment_secret"]})).unwrap();
    let e = cln_rebalance::lightningd::Lightningd::waitsendpay(
        &node,
        inv["payment_hash"].as_str().unwrap(),
        5,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, Some(204));
    assert_eq!(e.data.unwrap()["failcodename"], "WIRE_UNKNOWN_NEXT_PEER");
}

#[tokio::test]
async fn balances_match_listpeerchannels_with_aliases() {
    let (r, node) = rebalancer(demo_network(), Config::default());
    let v = r
        .balances(cln_rebalance::params::BalancesParams {
            id: None,
            quote: false,
        })
        .await
        .unwrap();
    let truth = node.call("listpeerchannels", json!({})).unwrap();
    let truth = truth["channels"].as_array().unwrap();
    let rows = v["channels"].as_array().unwrap();
    assert_eq!(rows.len(), truth.len());
    for t in truth {
        let row = rows
            .iter()
            .find(|r| r["short_channel_id"] == t["short_channel_id"])
            .unwrap();
        for f in [
            "peer_id",
            "state",
            "peer_connected",
            "private",
            "to_us_msat",
            "total_msat",
            "spendable_msat",
            "receivable_msat",
        ] {
            assert_eq!(row[f], t[f], "{f}");
        }
    }
    let bob = rows.iter().find(|r| r["short_channel_id"] == BOB).unwrap();
    assert_eq!(bob["alias"], "bob");
    assert_eq!(bob["our_percent"], 80.0);
    let total: u64 = truth
        .iter()
        .map(|t| t["to_us_msat"].as_u64().unwrap())
        .sum();
    assert_eq!(v["totals"]["to_us_msat"], total);
    let one = r
        .balances(cln_rebalance::params::BalancesParams {
            id: Some(BOB.into()),
            quote: false,
        })
        .await
        .unwrap();
    assert_eq!(one["totals"]["channels"], 1);
    let e = r
        .balances(cln_rebalance::params::BalancesParams {
            id: Some("1x2x3".into()),
            quote: false,
        })
        .await
        .unwrap_err();
    assert!(e.message.starts_with("id: "), "{}", e.message);
}

#[tokio::test]
async fn paid_just_as_we_stopped_waiting_is_reported_complete() {
    let (r, node) = rebalancer(demo_network(), pay_at_once());
    let (out0, in0) = (node.to_us(BOB), node.to_us(CAROL));
    node.call("dev-hold", json!({"node": "carol"})).unwrap();
    *node.release_before_delinvoice.lock().unwrap() = Some("carol".into());
    let mut p = req(BOB, CAROL, 20_000_000);
    p.retry_for = Some(1);
    let v = r.rebalance(p).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    node.assert_moved(&v, (BOB, CAROL), (out0, in0), 20_000_000);
    assert_eq!(v["outgoing_scid"], BOB);
    assert_eq!(
        v["route"].as_array().unwrap().last().unwrap()["amount_msat"],
        20_000_000
    );
    assert_eq!(node.sendpays().len(), 1);
    assert_clean(&node);
}

#[tokio::test]
async fn the_graph_is_cached_and_refreshed_after_a_newer_policy() {
    use std::sync::atomic::Ordering::SeqCst;
    let (r, node) = rebalancer(demo_network(), Config::default());
    let fetches = || node.listchannels_calls.load(SeqCst);
    let first = r
        .rebalance(generous(ALICE_BIG, CAROL, 10_000_000))
        .await
        .unwrap();
    assert_eq!(first["hops"], 3, "alice -> carol direct: {first}");
    r.rebalance(generous(BOB, DAVE, 10_000_000)).await.unwrap();
    assert_eq!(fetches(), 1, "one listchannels for both rebalances");

    // alice raises her fee towards carol; our cached gossip still has the old one.
    node.call(
        "dev-set-policy",
        json!({"short_channel_id": "700101x7x1", "source": "alice", "fee_proportional_millionths": 2000}),
    )
    .unwrap();
    let second = r
        .rebalance(generous(ALICE_BIG, CAROL, 10_000_000))
        .await
        .unwrap();
    // The try failed as it was sent, before the plugin waited on it: the failure message (with
    // alice's new channel_update) came by the `sendpay_failure` notification.
    assert_eq!(
        second["attempts"], 2,
        "fee_insufficient, then the new fee: {second}"
    );
    assert_eq!(node.calls_to("addgossip"), 1);
    // The failure's update made the graph stale: it was read again before the next plan, and
    // the next rebalance quotes alice's new fee from that copy.
    assert_eq!(fetches(), 2);
    let mut p = generous(ALICE_BIG, CAROL, 10_000_000);
    p.dryrun = true;
    let third = r.rebalance(p).await.unwrap();
    assert_eq!(fetches(), 2);
    assert!(
        third["fee_msat"].as_u64() != first["fee_msat"].as_u64(),
        "{third}"
    );

    // With no reuse allowed, every rebalance reads the graph.
    let (r, node) = rebalancer(
        demo_network(),
        Config {
            graph_max_age: Duration::ZERO,
            ..Config::default()
        },
    );
    for _ in 0..2 {
        let mut p = generous(BOB, CAROL, 1_000_000);
        p.dryrun = true;
        r.rebalance(p).await.unwrap();
    }
    assert_eq!(node.listchannels_calls.load(SeqCst), 2);
}

//! The liquidity model in the rebalance loop, in-process over the stand-in's network model:
//! memory across rebalances saves attempts, and the model survives a restart through the
//! datastore (and a corrupt record there is ignored).

mod common;

use cln_rebalance::config::{Config, Routing};
use cln_rebalance::lightningd::Lightningd;
use cln_rebalance::lightningd::store::LIQUIDITY_KEY;
use cln_rebalance::params::LiquidityParams;
use cln_rebalance::state::State;
use common::{
    SimNode, assert_clean, demo_network, demo_network_file, network_from, one_route_params,
    rebalancer,
};
use serde_json::{Value, json};
use std::sync::Arc;

const ALICE_BIG: &str = "800002x1x0"; // we hold 1.5M of 2M sat
const CAROL: &str = "800004x1x0"; // we hold 100k of 1M sat

/// Drains the cheapest middle channel from alice to carol (their direct one), as
/// `a_depleted_hop_forces_a_retry_on_another_route` does; returns its scid.
async fn drain_cheapest(r: &State<SimNode>, node: &SimNode) -> String {
    let mut p = one_route_params(ALICE_BIG, CAROL, 100_000_000);
    p.dryrun = true;
    let quote = r.rebalance(p).await.unwrap();
    assert_eq!(quote["hops"], 3, "{quote}");
    let scid = quote["route"][1]["short_channel_id"]
        .as_str()
        .unwrap()
        .to_string();
    let alice = quote["route"][0]["node_id"].as_str().unwrap();
    node.call(
        "dev-drain",
        json!({"short_channel_id": scid, "node": alice}),
    )
    .unwrap();
    scid
}

fn routed_through(v: &Value, scid: &str) -> bool {
    v["route"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["short_channel_id"] == scid)
}

/// Two identical rebalances through a drained cheapest channel: how many attempts each took.
async fn twice(config: Config) -> (u64, u64) {
    // What the first one's failed payment attempt taught: paid at once, unprobed.
    let config = Config {
        probe_first: false,
        ..config
    };
    let (r, node) = rebalancer(demo_network(), config);
    let drained = drain_cheapest(&r, &node).await;
    let first = r
        .rebalance(one_route_params(ALICE_BIG, CAROL, 100_000_000))
        .await
        .unwrap();
    let second = r
        .rebalance(one_route_params(ALICE_BIG, CAROL, 100_000_000))
        .await
        .unwrap();
    assert_eq!(first["status"], "complete");
    assert_eq!(second["status"], "complete");
    assert!(!routed_through(&second, &drained), "{second}");
    (
        first["attempts"].as_u64().unwrap(),
        second["attempts"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn memory_saves_the_second_rebalance_its_failed_attempt() {
    assert_eq!(twice(Config::default()).await, (2, 1), "with memory");
    let no_memory = Config {
        liquidity_memory: false,
        ..Config::default()
    };
    assert_eq!(twice(no_memory).await, (2, 2), "without memory");
    let fee_only = Config {
        routing: Routing::FeeOnly,
        ..Config::default()
    };
    assert_eq!(twice(fee_only).await, (2, 2), "fee only");
}

#[tokio::test]
async fn the_model_shows_what_it_learned_and_forgets_on_reset() {
    let (r, node) = rebalancer(demo_network(), Config::default());
    let drained = drain_cheapest(&r, &node).await;
    r.rebalance(one_route_params(ALICE_BIG, CAROL, 100_000_000))
        .await
        .unwrap();
    let p = LiquidityParams {
        short_channel_id: Some(drained.parse().unwrap()),
        reset: false,
    };
    let v = r.liquidity_report(p.clone()).await.unwrap();
    let chans = v["channels"].as_array().unwrap();
    assert_eq!(chans.len(), 2, "both directions: {v}");
    // alice's side of the drained channel failed to carry 100k sat plus carol's fee for the
    // last hop (500 msat + 100 ppm): it holds less than that.
    let failed = chans
        .iter()
        .find(|c| c["learned_max_msat"].as_u64().is_some())
        .unwrap_or_else(|| panic!("a learned upper bound: {v}"));
    assert_eq!(failed["learned_max_msat"], 100_010_499, "{v}");
    assert_eq!(failed["probability"]["50%"], 0.0);
    // The other direction was not learned: it shows the prior over the capacity.
    let other = chans.iter().find(|c| c["learned"] == false).unwrap();
    assert_eq!(other["min_msat"], 0);
    assert_eq!(other["max_msat"], other["capacity_msat"]);
    let all = r
        .liquidity_report(LiquidityParams {
            short_channel_id: None,
            reset: false,
        })
        .await
        .unwrap();
    assert!(
        all["learned_channel_directions"].as_u64().unwrap() >= 3,
        "{all}"
    );
    let reset = r
        .liquidity_report(LiquidityParams {
            reset: true,
            ..p.clone()
        })
        .await
        .unwrap();
    assert_eq!(reset["reset"], 1);
    let v = r.liquidity_report(p).await.unwrap();
    assert!(
        v["channels"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["learned"] == false),
        "{v}"
    );
}

/// A second plugin process on the same node: a new Rebalancer over the same network.
fn restarted(node: &SimNode) -> Arc<State<SimNode>> {
    Arc::new(State::new(node.clone(), Config::default()))
}

#[tokio::test]
async fn the_model_survives_a_restart_through_the_datastore() {
    let (r, node) = rebalancer(demo_network(), Config::default());
    let drained = drain_cheapest(&r, &node).await;
    let first = r
        .rebalance(one_route_params(ALICE_BIG, CAROL, 100_000_000))
        .await
        .unwrap();
    assert_eq!(first["attempts"], 2);
    let saved = node.listdatastore(&LIQUIDITY_KEY).await.unwrap();
    assert_eq!(
        saved.len(),
        1,
        "written once the rebalance ended: {saved:?}"
    );
    assert!(
        saved[0]
            .hex
            .as_ref()
            .is_some_and(|h| h.starts_with("43524c51")),
        "CRLQ magic"
    );
    drop(r);
    let r2 = restarted(&node);
    assert!(r2.load_liquidity().await >= 1);
    let second = r2
        .rebalance(one_route_params(ALICE_BIG, CAROL, 100_000_000))
        .await
        .unwrap();
    assert_eq!(second["attempts"], 1, "{second}");
    assert!(!routed_through(&second, &drained));
}

#[tokio::test]
async fn a_corrupt_or_foreign_saved_model_is_ignored() {
    let (_, node) = rebalancer(demo_network(), Config::default());
    for bad in [
        json!({"key": LIQUIDITY_KEY, "hex": "00ff00ff", "mode": "create-or-replace"}),
        json!({"key": LIQUIDITY_KEY, "string": "{\"some\": \"other plugin\"}", "mode": "create-or-replace"}),
        // The right magic, a version from the future.
        json!({"key": LIQUIDITY_KEY, "hex": "43524c5109", "mode": "create-or-replace"}),
    ] {
        node.call("datastore", bad.clone()).unwrap();
        let r = restarted(&node);
        assert_eq!(r.load_liquidity().await, 0, "{bad}");
        assert!(r.liquidity().is_empty());
        // And the plugin works on, replacing the bad record with a good one.
        let v = r
            .rebalance(one_route_params(ALICE_BIG, CAROL, 50_000_000))
            .await
            .unwrap();
        assert_eq!(v["status"], "complete");
        let saved = node.listdatastore(&LIQUIDITY_KEY).await.unwrap();
        assert!(saved[0].hex.as_ref().unwrap().starts_with("43524c5101"));
    }
}

/// lightningd forwards non-strictly: asked for one of two channels to the same peer at the
/// same fees, alice sends over whichever has more. Both drained, the first attempt fails at
/// one of them, and the failure is learned for both: the retry in the same call does not try
/// the other, and the model bounds both.
#[tokio::test]
async fn a_failure_teaches_the_parallel_channel_at_the_same_fees_too() {
    const PARALLEL: &str = "700107x1x0";
    let mut file = demo_network_file();
    let twin = file["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["short_channel_id"] == "700101x7x1")
        .cloned()
        .unwrap();
    let mut added = twin.clone();
    added["short_channel_id"] = json!(PARALLEL);
    added["capacity_sat"] = json!(3_000_000);
    added["node1_msat"] = json!(1_500_000_000u64);
    file["channels"].as_array_mut().unwrap().push(added);
    let (r, node) = rebalancer(network_from(&file), Config::default());
    let alice = node.call("listnodes", json!({})).unwrap()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["alias"] == "alice")
        .unwrap()["nodeid"]
        .as_str()
        .unwrap()
        .to_string();
    for scid in ["700101x7x1", PARALLEL] {
        node.call(
            "dev-drain",
            json!({"short_channel_id": scid, "node": alice}),
        )
        .unwrap();
    }
    let v = r
        .rebalance(one_route_params(ALICE_BIG, CAROL, 100_000_000))
        .await
        .unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(
        v["attempts"], 2,
        "one failure at alice -> carol, then elsewhere: {v}"
    );
    assert!(
        !routed_through(&v, "700101x7x1") && !routed_through(&v, PARALLEL),
        "{v}"
    );
    for scid in ["700101x7x1", PARALLEL] {
        let l = r
            .liquidity_report(LiquidityParams {
                short_channel_id: Some(scid.parse().unwrap()),
                reset: false,
            })
            .await
            .unwrap();
        let from_alice = l["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["source"] == alice.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{l}"));
        // 100k sat plus carol's fee for the last hop (500 msat + 100 ppm), less 1.
        assert_eq!(from_alice["learned_max_msat"], 100_010_499, "{scid}: {l}");
    }
}

#[tokio::test]
async fn an_unsure_route_is_probed_first_and_paid_around_what_the_probe_found() {
    // The defaults (`rebalance-probe-first`): nothing is known of the middle channels, so the
    // set for half a channel's worth is probed before it is paid; the probe fails on the drained channel, the next set's
    // probe carries, and the payment goes that way on its first attempt. (Paid at once, the
    // same rebalance takes two attempts: `memory_saves_the_second_rebalance_its_failed_attempt`.)
    let (r, node) = rebalancer(demo_network(), Config::default());
    let drained = drain_cheapest(&r, &node).await;
    let (out0, in0) = (node.to_us(ALICE_BIG), node.to_us(CAROL));
    let v = r
        .rebalance(one_route_params(ALICE_BIG, CAROL, 500_000_000))
        .await
        .unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(v["attempts"], 1, "{v}");
    assert_eq!(v["probes"], 2, "one failed, one carried: {v}");
    assert!(!routed_through(&v, &drained), "{v}");
    node.assert_moved(&v, (ALICE_BIG, CAROL), (out0, in0), 500_000_000);
    // Paid once, by the invoice; the probes (random hashes) all failed, none was paid.
    let hash = v["payment_hash"].as_str().unwrap();
    let sends = node.sendpays();
    let paid: Vec<&Value> = sends.iter().filter(|s| s["status"] == "complete").collect();
    assert_eq!(paid.len(), 1, "{sends:?}");
    assert_eq!(paid[0]["payment_hash"], hash);
    let probes: Vec<&Value> = sends.iter().filter(|s| s["payment_hash"] != hash).collect();
    assert_eq!(probes.len(), 2, "{sends:?}");
    assert!(probes.iter().all(|s| s["status"] == "failed"), "{sends:?}");
    assert_clean(&node);
}

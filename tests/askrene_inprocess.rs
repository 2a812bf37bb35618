//! Sharing what is learned with lightningd's payer, in-process over the stand-in's askrene:
//! what xpay's layer says is folded into the model (and a rebalance routes around it), what a
//! rebalance learns is published into our layer `cln-rebalance` (as the model has it, not our
//! own channels, kept across a restart), the layer stays bounded over many rebalances, the
//! options turn each direction off, and a lightningd without askrene gets one log line.

mod common;

use cln_rebalance::clock::{Clock, ManualClock, SystemClock};
use cln_rebalance::config::Config;
use cln_rebalance::core::liquidity::ModelConfig;
use cln_rebalance::lightningd::Lightningd;
use cln_rebalance::params::LiquidityParams;
use cln_rebalance::state::State;
use cln_rebalance::state::askrene::{OUR_LAYER, XPAY_LAYER};
use common::{SimNode, demo_network, hooked, one_route_params, rebalancer};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, Once};

const ALICE_BIG: &str = "800002x1x0"; // we hold 1.5M of 2M sat
const CAROL: &str = "800004x1x0"; // we hold 100k of 1M sat
const OURS: [&str; 5] = [
    "800001x1x0",
    "800002x1x0",
    "800003x1x0",
    "800004x1x0",
    "800005x1x0",
];

/// Log lines at info and above, from every test of this file (they run at once: each test
/// looks for its own).
static LOGGED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            LOGGED.lock().unwrap().push(r.args().to_string());
        }
    }
    fn flush(&self) {}
}

fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::set_boxed_logger(Box::new(Capture)).unwrap();
        log::set_max_level(log::LevelFilter::Info);
    });
}

/// The demo network with xpay's layer, as a v26.06 node starts.
fn network_with_xpay() -> cln_standin::simnet::Network {
    let mut net = demo_network();
    net.start_xpay();
    net
}

/// Drains `scid` at `alice`'s side and tells askrene what xpay would after a 50k sat payment
/// failed there.
fn drained_as_xpay_learned(node: &SimNode, scid: &str, dir: u64, alice: &str) {
    node.call(
        "dev-drain",
        json!({"short_channel_id": scid, "node": alice}),
    )
    .unwrap();
    node.call(
        "askrene-inform-channel",
        json!({"layer": XPAY_LAYER, "short_channel_id_dir": format!("{scid}/{dir}"),
               "amount_msat": 50_000_000, "inform": "constrained"}),
    )
    .unwrap();
}

/// The middle channel the cheapest route from alice to carol takes, and its direction:
/// `(scid, direction, alice's id)`.
async fn cheapest_middle(r: &State<SimNode>) -> (String, u64, String) {
    let mut p = one_route_params(ALICE_BIG, CAROL, 100_000_000);
    p.dryrun = true;
    let quote = r.rebalance(p).await.unwrap();
    assert_eq!(quote["hops"], 3, "{quote}");
    let hop = &quote["route"][1];
    (
        hop["short_channel_id"].as_str().unwrap().to_string(),
        hop["direction"].as_u64().unwrap(),
        quote["route"][0]["node_id"].as_str().unwrap().to_string(),
    )
}

fn routed_through(v: &Value, scid: &str) -> bool {
    v["route"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["short_channel_id"] == scid)
}

/// The constraints of a layer, as askrene lists them.
fn layer(node: &SimNode, name: &str) -> Vec<Value> {
    let v = node
        .call("askrene-listlayers", json!({"layer": name}))
        .unwrap();
    v["layers"][0]["constraints"].as_array().unwrap().clone()
}

/// What `rebalance-liquidity` says of one direction of `scid`.
async fn learned(r: &State<SimNode>, scid: &str, direction: u64) -> Value {
    let v = r
        .liquidity_report(LiquidityParams {
            short_channel_id: Some(scid.parse().unwrap()),
            reset: false,
        })
        .await
        .unwrap();
    v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["direction"] == direction)
        .unwrap_or_else(|| panic!("{scid}/{direction} not in {v}"))
        .clone()
}

/// xpay's payment failed over the drained channel: the model learns its bound from xpay's
/// layer, `rebalance-liquidity` shows it, and the next rebalance routes around it at once.
#[tokio::test]
async fn what_a_payment_learned_is_folded_and_routed_around() {
    let (r, node) = rebalancer(network_with_xpay(), Config::default());
    r.start_askrene().await;
    let (scid, dir, alice) = cheapest_middle(&r).await;
    drained_as_xpay_learned(&node, &scid, dir, &alice);
    let c = learned(&r, &scid, dir).await;
    assert_eq!(c["learned_max_msat"], 49_999_999, "{c}");
    assert_eq!(c["max_msat"], 49_999_999, "{c}");
    let done = r
        .rebalance(one_route_params(ALICE_BIG, CAROL, 100_000_000))
        .await
        .unwrap();
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["attempts"], 1, "{done}");
    assert!(!routed_through(&done, &scid), "{done}");
    common::assert_clean(&node);
}

/// The same without reading xpay's layer: the rebalance pays for the lesson itself.
#[tokio::test]
async fn with_reading_off_the_payments_lesson_is_not_used() {
    let config = Config {
        askrene_read: false,
        ..Config::default()
    };
    let (r, node) = rebalancer(network_with_xpay(), config);
    r.start_askrene().await;
    let (scid, dir, alice) = cheapest_middle(&r).await;
    drained_as_xpay_learned(&node, &scid, dir, &alice);
    assert_eq!(learned(&r, &scid, dir).await["learned"], false);
    let done = r
        .rebalance(one_route_params(ALICE_BIG, CAROL, 100_000_000))
        .await
        .unwrap();
    assert_eq!(done["status"], "complete", "{done}");
    assert!(done["attempts"].as_u64().unwrap() >= 2, "{done}");
}

/// A rebalance that failed over a drained channel before it found another route publishes what
/// it learned into our layer, exactly as the model has it, and nothing of our own channels; a
/// restarted plugin finds the layer as it was.
#[tokio::test]
async fn a_rebalance_publishes_what_it_learned() {
    let (r, node) = rebalancer(network_with_xpay(), Config::default());
    r.start_askrene().await;
    assert_eq!(layer(&node, OUR_LAYER), Vec::<Value>::new());
    let (scid, dir, alice) = cheapest_middle(&r).await;
    node.call(
        "dev-drain",
        json!({"short_channel_id": scid, "node": alice}),
    )
    .unwrap();
    let done = r
        .rebalance(one_route_params(ALICE_BIG, CAROL, 100_000_000))
        .await
        .unwrap();
    assert_eq!(done["status"], "complete", "{done}");
    assert!(done["attempts"].as_u64().unwrap() >= 2, "{done}");
    let published = layer(&node, OUR_LAYER);
    let drained = format!("{scid}/{dir}");
    let c = published
        .iter()
        .find(|c| c["short_channel_id_dir"] == drained.as_str())
        .unwrap_or_else(|| panic!("{drained} not published: {published:?}"));
    // Less than what failed there: 100k sat and the fee of the hop after it.
    let max = c["maximum_msat"].as_u64().unwrap();
    assert!(max < 100_000_000 + 100_000, "{c}");
    // Every constraint is what the model learned, and none is on one of our channels.
    for c in &published {
        let (s, d) = c["short_channel_id_dir"]
            .as_str()
            .unwrap()
            .split_once('/')
            .unwrap();
        assert!(!OURS.contains(&s), "our own channel published: {c}");
        let m = learned(&r, s, d.parse().unwrap()).await;
        if let Some(max) = c.get("maximum_msat") {
            assert_eq!(*max, m["learned_max_msat"], "{c} vs {m}");
        }
        if let Some(min) = c.get("minimum_msat") {
            assert_eq!(*min, m["learned_min_msat"], "{c} vs {m}");
        }
    }
    // The route that paid taught something too (its middle hops moved liquidity).
    let paid_middle = done["route"][1]["short_channel_id"].as_str().unwrap();
    assert!(
        published.iter().any(|c| c["short_channel_id_dir"]
            .as_str()
            .unwrap()
            .starts_with(paid_middle)),
        "{published:?}"
    );
    assert_eq!(r.askrene.published_count(), published.len());
    // A dry run learns nothing and publishes nothing.
    let mut p = one_route_params(CAROL, ALICE_BIG, 50_000_000);
    p.dryrun = true;
    r.rebalance(p).await.unwrap();
    assert_eq!(layer(&node, OUR_LAYER).len(), published.len());
    // The layer is persistent: a restarted plugin counts what it holds.
    let again = hooked(node.clone(), Config::default(), Arc::new(SystemClock));
    again.start_askrene().await;
    assert_eq!(again.askrene.published_count(), published.len());
    assert_eq!(layer(&node, OUR_LAYER), published);
}

/// Publishing off: no layer is made, nothing is sent.
#[tokio::test]
async fn with_publishing_off_no_layer_is_made() {
    let config = Config {
        askrene_publish: false,
        ..Config::default()
    };
    let (r, node) = rebalancer(network_with_xpay(), config);
    r.start_askrene().await;
    let (scid, _, alice) = cheapest_middle(&r).await;
    node.call(
        "dev-drain",
        json!({"short_channel_id": scid, "node": alice}),
    )
    .unwrap();
    let done = r
        .rebalance(one_route_params(ALICE_BIG, CAROL, 100_000_000))
        .await
        .unwrap();
    assert!(done["attempts"].as_u64().unwrap() >= 2, "{done}");
    let e = node
        .call("askrene-listlayers", json!({"layer": OUR_LAYER}))
        .unwrap_err();
    assert!(e.message.contains("Unknown layer"), "{e:?}");
    let calls = node.calls.lock().unwrap().clone();
    assert!(
        !calls
            .iter()
            .any(|m| m == "askrene-inform-channel" || m == "askrene-create-layer"),
        "{calls:?}"
    );
}

/// Sixteen rebalances back and forth on a clock that moves 2 minutes each (the model's
/// half-life 10 minutes, at most 3 constraints a publish, `cap` in the layer): after each, what
/// the layer holds, as `(short_channel_id_dir, timestamp)`, with the time. Checks on the way
/// that the layer never holds more than `cap`, that the plugin's count agrees with askrene's,
/// and that the datastore record holds no more than the constraints listed.
async fn many_rebalances(cap: Option<usize>) -> Vec<(u64, Vec<(String, u64)>)> {
    let clock = Arc::new(ManualClock::new(1_750_000_000_000));
    let node = SimNode::new(network_with_xpay()).with_hop_clock(clock.clone(), 0);
    let config = Config {
        model: ModelConfig {
            half_life_secs: HALF_LIFE,
            ..ModelConfig::default()
        },
        ..Config::default()
    };
    let r = hooked(node.clone(), config, clock.clone());
    if let Some(cap) = cap {
        r.askrene.set_limits(3, cap);
    }
    r.start_askrene().await;
    let mut seen = Vec::new();
    for i in 0..16 {
        let (out, inc) = if i % 2 == 0 {
            (ALICE_BIG, CAROL)
        } else {
            (CAROL, ALICE_BIG)
        };
        let done = r
            .rebalance(one_route_params(out, inc, 30_000_000))
            .await
            .unwrap();
        assert_eq!(done["status"], "complete", "{done}");
        let held = layer(&node, OUR_LAYER);
        assert!(held.len() <= cap.unwrap_or(usize::MAX), "{held:?}");
        assert_eq!(held.len(), r.askrene.published_count());
        let record = node
            .listdatastore(&["askrene", "layers", OUR_LAYER])
            .await
            .unwrap();
        let bytes = record[0].hex.as_deref().map_or(0, |h| h.len() / 2);
        assert_eq!(bytes, held.len() * 29, "one 29-byte record a constraint");
        let held = held
            .iter()
            .map(|c| {
                (
                    c["short_channel_id_dir"].as_str().unwrap().to_string(),
                    c["timestamp"].as_u64().unwrap(),
                )
            })
            .collect();
        seen.push((clock.now_secs(), held));
        clock.advance_ms(120_000);
    }
    // Two hours later nothing in it counts: aging empties it.
    clock.advance_ms(2 * 3600 * 1000);
    r.askrene.age(&node, clock.now_secs(), HALF_LIFE).await;
    assert_eq!(layer(&node, OUR_LAYER), Vec::<Value>::new());
    assert_eq!(r.askrene.published_count(), 0);
    seen
}

const HALF_LIFE: u64 = 600;

/// Aged with the model's half-life: nothing older than a half-life and the aging interval
/// (5 minutes) stays, so the layer holds what the last eight rebalances taught (two
/// constraints each: the middle hop both ways), not all sixteen's.
#[tokio::test]
async fn the_layer_is_aged_with_the_half_life() {
    let seen = many_rebalances(None).await;
    for (now, held) in &seen {
        assert!(held.len() <= 2 * 8, "{now}: {held:?}");
        for (c, t) in held {
            assert!(
                t + HALF_LIFE + 300 >= *now,
                "{c} at {t} is too old at {now}"
            );
        }
    }
    // It was full once (the aging is what emptied it again).
    assert!(seen.iter().any(|(_, h)| h.len() == 2 * 8), "{seen:?}");
}

/// A cap smaller than a half-life's worth: the oldest go early to make room for the newest.
#[tokio::test]
async fn the_layer_never_holds_more_than_its_cap() {
    let seen = many_rebalances(Some(5)).await;
    // Each publish sent what its rebalance learned: the newest are always in.
    for (now, held) in &seen {
        assert!(held.iter().any(|(_, t)| t == now), "{now}: {held:?}");
    }
    // Younger than a half-life, yet gone: the cap, not the age, made room.
    let early = seen.windows(2).any(|w| {
        w[0].1
            .iter()
            .any(|c| !w[1].1.contains(c) && c.1 + HALF_LIFE > w[1].0)
    });
    assert!(early, "{seen:?}");
}

/// lightningd without askrene: rebalances, the liquidity report and start-up work as before;
/// one log line says so, and askrene is asked once, never again.
#[tokio::test]
async fn without_askrene_nothing_breaks_and_one_line_says_so() {
    capture_logs();
    let mut net = demo_network();
    net.askrene = None;
    let (r, node) = rebalancer(net, Config::default());
    r.start_askrene().await;
    let (scid, dir, alice) = cheapest_middle(&r).await;
    node.call(
        "dev-drain",
        json!({"short_channel_id": scid, "node": alice}),
    )
    .unwrap();
    let done = r
        .rebalance(one_route_params(ALICE_BIG, CAROL, 100_000_000))
        .await
        .unwrap();
    assert_eq!(done["status"], "complete", "{done}");
    assert!(done["attempts"].as_u64().unwrap() >= 2, "{done}");
    assert!(learned(&r, &scid, dir).await["learned_max_msat"].is_u64());
    let back = r
        .rebalance(one_route_params(CAROL, ALICE_BIG, 30_000_000))
        .await
        .unwrap();
    assert_eq!(back["status"], "complete", "{back}");
    r.askrene.age(&node, r.now_secs(), 1800).await;
    let calls = node.calls.lock().unwrap().clone();
    let askrene: Vec<&String> = calls.iter().filter(|m| m.starts_with("askrene-")).collect();
    assert_eq!(askrene.len(), 1, "{askrene:?}");
    let lines: Vec<String> = LOGGED
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("askrene not available"))
        .cloned()
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("Unknown command"), "{lines:?}");
    common::assert_clean(&node);
}

//! A rebalance whose every plan the model gives almost no chance (`probe::UNLIKELY_PLAN`),
//! in-process over the stand-in's network model: probes search for a set that moves the
//! amount (as `rebalance-probe` does) and the proven set is paid.
//!
//! The network: us -> a (ours), b -> us (the peer's), and two ways from a to b, through `x`
//! and through `y`, on channels of 1.5M sat; a holds 600k sat toward x and toward y, so 1M sat
//! moves only as two parts. The model is taught that a -> x and a -> y each failed at 520k sat
//! (stale: they hold 600k), on a clock that stands still, so it gives a 500k-sat part on either
//! 1 chance in 26 and the two-part plan about 1 in 700.

mod common;

use cln_rebalance::clock::ManualClock;
use cln_rebalance::config::Config;
use cln_rebalance::core::graph::Scid;
use cln_rebalance::core::liquidity::ChanDir;
use cln_rebalance::params::RebalanceParams;
use cln_rebalance::progress::Collected;
use cln_rebalance::rebalance::probe::before::UNLIKELY_PLAN;
use cln_rebalance::rebalance::session::Extra;
use cln_rebalance::state::State;
use cln_standin::simnet::Network;
use common::{
    SimNode, assert_clean, cheap_channel, cheap_policy, hand_made, hooked, named_nodes,
    parts_params,
};
use std::sync::Arc;
use std::time::Duration;

const OUT: &str = "800001x1x0";
const INC: &str = "800002x1x0";
const A_X: &str = "700001x1x0";
const A_Y: &str = "700002x1x0";
const SAT: u64 = 1000;
const AMOUNT: u64 = 1_000_000 * SAT;
const CAPACITY: u64 = 1_500_000 * SAT;

fn network() -> Network {
    let names = ["us", "a", "b", "x", "y"];
    let channels = vec![
        cheap_channel(OUT, "us", "a", 10_000_000, 9_000_000),
        cheap_channel(INC, "us", "b", 10_000_000, 1_000_000),
        cheap_channel(A_X, "a", "x", 1_500_000, 600_000),
        cheap_channel("700001x1x1", "x", "b", 1_500_000, 1_200_000),
        cheap_channel(A_Y, "a", "y", 1_500_000, 600_000),
        cheap_channel("700002x1x1", "y", "b", 1_500_000, 1_200_000),
    ];
    hand_made(named_nodes(&names), cheap_policy(), channels)
}

/// A rebalancer whose clock stands still, taught that a's channels to x and y each failed at
/// 520k sat just now.
fn taught(config: Config) -> (Arc<State<SimNode>>, SimNode) {
    let node = SimNode::new(network());
    let clock = Arc::new(ManualClock::new(1_770_000_000_000));
    let r = hooked(node.clone(), config, clock);
    let now = r.now_secs();
    let half_life = r.config.model.half_life_secs;
    let mut m = r.model.lock();
    for scid in [A_X, A_Y] {
        // a's id sorts before x's and y's: a -> x and a -> y are direction 0.
        let cd = ChanDir::new(scid.parse::<Scid>().unwrap(), 0);
        m.failed(cd, 520_000 * SAT, CAPACITY, now, half_life);
    }
    drop(m);
    (r, node)
}

fn req(dryrun: bool) -> RebalanceParams {
    RebalanceParams {
        dryrun,
        ..parts_params(OUT, INC, AMOUNT)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlikely_plan_is_searched_around_by_probes_and_the_proven_set_paid() {
    let (r, node) = taught(Config::default());
    // The plan: two parts, which the model gives almost no chance.
    let q = r.rebalance(req(true)).await.unwrap();
    assert_eq!(q["parts"].as_array().map(Vec::len), Some(2), "{q}");
    let p = q["probability"].as_f64().unwrap();
    assert!(p < UNLIKELY_PLAN, "{q}");
    let before = (node.to_us(OUT), node.to_us(INC));
    let heard = Arc::new(Collected::default());
    let extra = Extra {
        progress: Some(heard.clone()),
        ..Extra::default()
    };
    let v = r.rebalance_with(req(false), extra).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(
        v["attempts"], 1,
        "the proven set paid at its first attempt: {v}"
    );
    assert_eq!(v["parts"].as_array().map(Vec::len), Some(2), "{v}");
    assert!(v["probes"].as_u64().unwrap() >= 2, "{v}");
    let fee = v["fee_msat"].as_u64().unwrap();
    assert!(fee <= AMOUNT / 1000, "within the cap: {v}");
    let lines = heard.lines.lock().unwrap().clone();
    assert!(
        lines[0].starts_with("the plan is unlikely to go (P 0.00"),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "probes proved a set of 2 part(s) that moves it"),
        "{lines:#?}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        (node.to_us(OUT), node.to_us(INC)),
        (before.0 - AMOUNT - fee, before.1 + AMOUNT),
        "{v}"
    );
    assert_clean(&node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_probing_off_the_unlikely_plan_is_paid_as_planned() {
    let (r, node) = taught(common::pay_at_once());
    let heard = Arc::new(Collected::default());
    let extra = Extra {
        progress: Some(heard.clone()),
        ..Extra::default()
    };
    let before = (node.to_us(OUT), node.to_us(INC));
    let v = r.rebalance_with(req(false), extra).await.unwrap();
    assert_eq!(v["status"], "complete", "{v}");
    assert_eq!(v["probes"].as_u64().unwrap_or(0), 0, "{v}");
    let lines = heard.lines.lock().unwrap().clone();
    assert!(!lines.iter().any(|l| l.contains("unlikely")), "{lines:#?}");
    let fee = v["fee_msat"].as_u64().unwrap();
    assert_eq!(node.to_us(INC), before.1 + AMOUNT, "{v}");
    assert_eq!(node.to_us(OUT), before.0 - AMOUNT - fee, "{v}");
    assert_clean(&node);
}

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

use cln_rebalance::config::Config;
use cln_rebalance::params::RebalanceParams;
use cln_rebalance::progress::Collected;
use cln_rebalance::rebalance::probe::before::UNLIKELY_PLAN;
use cln_rebalance::rebalance::session::Extra;
use common::two_ways::{INC, OUT, SAT, taught};
use common::{assert_clean, parts_params};
use std::sync::Arc;
use std::time::Duration;

const AMOUNT: u64 = 1_000_000 * SAT;

fn req(dryrun: bool) -> RebalanceParams {
    RebalanceParams {
        dryrun,
        ..parts_params(OUT, INC, AMOUNT)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlikely_plan_is_searched_around_by_probes_and_the_proven_set_paid() {
    let (r, node) = taught(600_000, 520_000, Config::default());
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
    let (r, node) = taught(600_000, 520_000, common::pay_at_once());
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

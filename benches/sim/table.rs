//! `make bench-sim`'s first table, per amount: attempts, first attempt, fee against the
//! oracle's cheapest route, search time and the model's memory for every strategy, and issue
//! 9's targets for the model with memory (one route per attempt).

use super::{Args, Outcome, Stats, join, kib, ms, pct};
use crate::mainnet;
use crate::sim::{Dist, Strategy};
use std::collections::BTreeMap;
use std::time::Duration;

/// The figures of one strategy at one amount.
struct Row {
    tasks: usize,
    feasible: usize,
    success: usize,
    /// Solved although the oracle found no route (its search is a heuristic in corner cases).
    success_infeasible: usize,
    att_mean: f64,
    att_p90: usize,
    att_max: usize,
    within: [f64; 3],
    first_attempt: f64,
    /// Share of feasible tasks solved on the first attempt, per seed.
    first_by_seed: Vec<(u64, f64)>,
    fee_p50: f64,
    fee_p90: f64,
    zero_oracle: usize,
    /// Fee paid above the oracle's, msat, p50 and p90 (the ratio alone overstates cheap routes).
    excess_msat: (u64, u64),
    sim_mean: f64,
    sim_p90: f64,
    search_p50: Duration,
    search_p99: Duration,
    model: (usize, usize),
    reasons: Vec<(usize, String)>,
    /// Feasible tasks whose first attempt failed, by why.
    first_failures: BTreeMap<&'static str, usize>,
    /// Solved tasks that paid over 1.5x the oracle: on the first attempt, after a failure.
    dear: (usize, usize),
}

/// Per seed, the share of its feasible tasks solved on the first attempt.
fn first_by_seed(feasible: &[&Outcome]) -> Vec<(u64, f64)> {
    let mut by: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    for o in feasible {
        let e = by.entry(o.seed).or_default();
        e.0 += 1;
        if o.solved() && o.attempts <= 1 {
            e.1 += 1;
        }
    }
    by.into_iter().map(|(k, (n, f))| (k, pct(f, n))).collect()
}

/// The standard deviation of `v` between seeds (points), and the standard error of their
/// mean: how far another set of as many nodes could land from this one.
fn spread(v: &[f64]) -> (f64, f64) {
    if v.len() < 2 {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    (sd, sd / n.sqrt())
}

impl Row {
    /// Of the first attempt per seed: the standard deviation between seeds and the standard
    /// error of their mean (see [`spread`]).
    fn first_spread(&self) -> (f64, f64) {
        spread(
            &self
                .first_by_seed
                .iter()
                .map(|&(_, x)| x)
                .collect::<Vec<_>>(),
        )
    }
}

fn row(s: &Stats) -> Row {
    let feasible: Vec<&Outcome> = s
        .outcomes
        .iter()
        .filter(|o| o.oracle_fee_msat.is_some())
        .collect();
    let solved: Vec<&&Outcome> = feasible.iter().filter(|o| o.solved()).collect();
    let mut att: Vec<usize> = solved.iter().map(|o| o.attempts).collect();
    att.sort_unstable();
    let within = [1, 3, 10].map(|k| pct(att.iter().filter(|&&x| x <= k).count(), feasible.len()));
    let mut ratios: Vec<f64> = solved
        .iter()
        .filter_map(|o| {
            let (paid, best) = (o.paid_fee_msat?, o.oracle_fee_msat?);
            (best > 0).then(|| paid as f64 / best as f64)
        })
        .collect();
    ratios.sort_unstable_by(|a, b| a.total_cmp(b));
    // Tasks paying more than 1.5x the oracle (what fee p90 counts against), by whether the
    // first attempt solved them (the risk cost chose a dearer route) or a later one did.
    let mut dear = (0, 0);
    for o in &solved {
        if let (Some(paid), Some(best)) = (o.paid_fee_msat, o.oracle_fee_msat)
            && best > 0
            && paid as f64 > 1.5 * best as f64
        {
            if o.attempts <= 1 {
                dear.0 += 1;
            } else {
                dear.1 += 1;
            }
        }
    }
    let mut excess: Vec<u64> = solved
        .iter()
        .filter_map(|o| Some(o.paid_fee_msat?.saturating_sub(o.oracle_fee_msat?)))
        .collect();
    excess.sort_unstable();
    let excess_msat = if excess.is_empty() {
        (0, 0)
    } else {
        (
            mainnet::quantile(&excess, 0.5),
            mainnet::quantile(&excess, 0.9),
        )
    };
    let zero_oracle = solved
        .iter()
        .filter(|o| o.oracle_fee_msat == Some(0))
        .count();
    let mut sim: Vec<u64> = s.outcomes.iter().map(|o| o.sim_ms).collect();
    sim.sort_unstable();
    let mut search = s.search.clone();
    search.sort_unstable();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for o in &feasible {
        if let Some(w) = &o.why {
            *reasons.entry(w.clone()).or_default() += 1;
        }
    }
    let mut first_failures = BTreeMap::new();
    for w in feasible.iter().filter_map(|o| o.first_failure) {
        *first_failures.entry(w).or_default() += 1;
    }
    let mut reasons: Vec<(usize, String)> = reasons.into_iter().map(|(k, v)| (v, k)).collect();
    reasons.sort_unstable_by(|a, b| b.cmp(a));
    let first_by_seed = first_by_seed(&feasible);
    let q = |v: &[f64], p| {
        if v.is_empty() {
            f64::NAN
        } else {
            mainnet::quantile(v, p)
        }
    };
    Row {
        tasks: s.outcomes.len(),
        feasible: feasible.len(),
        success: solved.len(),
        success_infeasible: s
            .outcomes
            .iter()
            .filter(|o| o.oracle_fee_msat.is_none() && o.solved())
            .count(),
        att_mean: att.iter().sum::<usize>() as f64 / att.len().max(1) as f64,
        att_p90: if att.is_empty() {
            0
        } else {
            mainnet::quantile(&att, 0.9)
        },
        att_max: att.last().copied().unwrap_or(0),
        within,
        first_attempt: within[0],
        first_by_seed,
        fee_p50: q(&ratios, 0.5),
        fee_p90: q(&ratios, 0.9),
        excess_msat,
        zero_oracle,
        sim_mean: sim.iter().sum::<u64>() as f64 / 1000.0 / sim.len().max(1) as f64,
        sim_p90: if sim.is_empty() {
            0.0
        } else {
            mainnet::quantile(&sim, 0.9) as f64 / 1000.0
        },
        search_p50: if search.is_empty() {
            Duration::ZERO
        } else {
            mainnet::quantile(&search, 0.5)
        },
        search_p99: if search.is_empty() {
            Duration::ZERO
        } else {
            mainnet::quantile(&search, 0.99)
        },
        model: s
            .model_bytes
            .iter()
            .copied()
            .max_by_key(|m| m.0 + m.1)
            .unwrap_or((0, 0)),
        reasons,
        first_failures,
        dear,
    }
}

pub fn print_table(amount_sat: u64, a: &Args, stats: &BTreeMap<Strategy, Stats>) {
    println!(
        "\n== {} sat: {} rebalances per seed, seeds {}",
        amount_sat,
        a.rebalances,
        join(&a.seeds)
    );
    println!(
        "  {:<17} {:>9} {:>8} | {:>5} {:>3} {:>3} | {:>6} {:>6} {:>6} | {:>6} {:>6} | {:>6} {:>6} | {:>7} {:>7} | {:>9}",
        "strategy",
        "feasible",
        "success",
        "att",
        "p90",
        "max",
        "in 1",
        "in 3",
        "in 10",
        "fee50",
        "fee90",
        "sim s",
        "p90",
        "srch50",
        "srch99",
        "model KiB"
    );
    let rows: BTreeMap<Strategy, Row> = stats.iter().map(|(k, s)| (*k, row(s))).collect();
    for (k, r) in &rows {
        println!(
            "  {:<17} {:>4}/{:<4} {:>7.1}% | {:>5.2} {:>3} {:>3} | {:>5.1}% {:>5.1}% {:>5.1}% | {:>5.3}x {:>5.3}x | {:>6.1} {:>6.1} | {:>7.3} {:>7.3} | {:>4.0}+{:<4.0}",
            k.name(),
            r.feasible,
            r.tasks,
            pct(r.success, r.feasible),
            r.att_mean,
            r.att_p90,
            r.att_max,
            r.within[0],
            r.within[1],
            r.within[2],
            r.fee_p50,
            r.fee_p90,
            r.sim_mean,
            r.sim_p90,
            ms(r.search_p50),
            ms(r.search_p99),
            kib(r.model.0),
            kib(r.model.1),
        );
    }
    println!(
        "  (att: attempts per success, mean/p90/max; in k: share of feasible tasks solved within k attempts; \
         fee50/90: fee paid over the oracle's, p50/p90; sim s: simulated seconds per rebalance, mean/p90; \
         srch: route search ms, p50/p99; model: Liquidity::heap_bytes + search view, KiB)"
    );
    for (k, r) in &rows {
        let top: Vec<String> = r
            .reasons
            .iter()
            .take(3)
            .map(|(n, w)| format!("{n}x \"{w}\""))
            .collect();
        println!(
            "  {:<17} wall {:>5.1} s; solved though the oracle found nothing: {}; oracle fee 0: {}; \
             feasible but failed: {}",
            k.name(),
            stats[k].wall.as_secs_f64(),
            r.success_infeasible,
            r.zero_oracle,
            if top.is_empty() {
                "none".to_string()
            } else {
                top.join(", ")
            }
        );
        let first: Vec<String> = r
            .first_failures
            .iter()
            .map(|(w, n)| format!("{w} {n}"))
            .collect();
        println!(
            "  {:<17} fee above the oracle's p50 {:.1} sat, p90 {:.1} sat; over 1.5x the oracle's: {} \
             solved on the first attempt, {} later; first attempt failed on {} feasible tasks: {}",
            "",
            r.excess_msat.0 as f64 / 1000.0,
            r.excess_msat.1 as f64 / 1000.0,
            r.dear.0,
            r.dear.1,
            r.first_failures.values().sum::<usize>(),
            first.join(", ")
        );
        let (sd, se) = r.first_spread();
        println!(
            "  {:<17} first attempt by seed: {}; between nodes sd {sd:.1} points, so the mean of \
             {} nodes +-{se:.1}",
            "",
            r.first_by_seed
                .iter()
                .map(|(k, x)| format!("{k} {x:.1}%"))
                .collect::<Vec<_>>()
                .join(", "),
            r.first_by_seed.len()
        );
    }
    if let Some(m) = rows.get(&Strategy::Memory) {
        let fee_search = rows.get(&Strategy::Fee).map(|f| f.search_p50);
        // Issue 9's targets are for 100k sat; at 1M sat only the attempts have one. The rest
        // is shown at 1M too, marked as the 100k figure it would have to meet.
        let small = amount_sat <= 100_000;
        let tag = |ok: bool, target: bool| match (ok, target) {
            (true, true) => "MET   ",
            (false, true) => "MISSED",
            (true, false) => "(ok)  ",
            (false, false) => "(over)",
        };
        let success = pct(m.success, m.feasible);
        let att_target = if small { 1.3 } else { 2.5 };
        let mut checks = vec![
            (
                format!("success among feasible >= 98%: {success:.1}%"),
                success >= 98.0,
                small,
            ),
            (
                format!("mean attempts <= {att_target}: {:.2}", m.att_mean),
                m.att_mean <= att_target,
                true,
            ),
            (
                format!(
                    "first attempt >= 80%: {:.1}% (+-{:.1} between sets of {} nodes)",
                    m.first_attempt,
                    m.first_spread().1,
                    m.first_by_seed.len()
                ),
                m.first_attempt >= 80.0,
                small,
            ),
            (
                format!("fee p50 <= 1.10x oracle: {:.3}x", m.fee_p50),
                m.fee_p50 <= 1.10,
                small,
            ),
            (
                format!("fee p90 <= 1.5x oracle: {:.3}x", m.fee_p90),
                m.fee_p90 <= 1.5,
                small,
            ),
        ];
        if let Some(f) = fee_search {
            let x = m.search_p50.as_secs_f64() / f.as_secs_f64().max(1e-12);
            checks.push((
                format!("search p50 <= 1.5x fee-only: {x:.2}x"),
                x <= 1.5,
                small,
            ));
        }
        let world_kind = if a.dist == Dist::Bimodal && a.traffic > 0.0 {
            ""
        } else {
            " (the targets are for the bimodal world with traffic)"
        };
        println!(
            "  targets, model with memory{world_kind}{}:",
            if small {
                ""
            } else {
                " (at 1M sat only the attempts; the rest in brackets against the 100k targets)"
            }
        );
        for (what, ok, target) in checks {
            println!("    {} {what}", tag(ok, target));
        }
    }
}

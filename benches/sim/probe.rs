//! `make bench-sim SIM_ARGS="--probe ..."`: probing measured on the simulation's world (issue
//! 23 item 5), two tables.
//!
//! (a) `rebalance-probe` without an amount on every task's two channels, the model remembering
//! across tasks as the plugin's does, against the flow oracle's true maximum: the most that
//! moves within the fee cap at its amount (`max_flow_within_cap` over the true balances, the
//! plugin's part limits, to 0.5% of what the outgoing channel can send), never more than the
//! incoming channel can receive. Found / true at p10 and p50 (over tasks where something can
//! move); answers above the oracle's figure; answers whose set does not fit the true balances
//! (the parts' amounts summed per channel direction against what it can forward, no offline
//! node): "never more than can really move", it must be 0; probes and simulated seconds per
//! answer. The world moves between tasks as in the main run (`--interval`, `--traffic`,
//! `--flaky`).
//!
//! (b) The same tasks paid (`--amounts`' first amount) by the `mpp` strategy (the plugin's
//! defaults), without and with background probing (`--probe-per-hour`, default
//! [`PER_HOUR`]): after each task, idle time, in which the prober probes the next task as its
//! planned move (one round: its probes count against the hour, `rebalance-probe-max-locked`'s
//! default); then the world moves on and the task runs. First try (flow-feasible tasks paid by
//! the set sent first), success, HTLCs per success counting the probes sent for it, probes per
//! task.

use super::sim::{PartLimits, Strategy, Task, World, delivered};
use super::{Args, Outcome, Runner, START_MS, TUNING_SEEDS, join, pct};
use cln_rebalance::clock::Clock;
use cln_rebalance::config::Config;
use cln_rebalance::core::amount::fee_cap_msat;
use cln_rebalance::core::flow::{self, FlowScratch};
use cln_rebalance::core::graph::EdgeIdx;
use cln_rebalance::params::ProbeParams;
use cln_standin::simnet::Network;
use serde_json::Value;
use std::collections::HashMap;
use tokio::runtime::Runtime;

/// Background probes an hour in table (b) unless `--probe-per-hour` says otherwise: one a
/// minute, the rate the README suggests turning it on at.
pub const PER_HOUR: u32 = 60;

/// One `rebalance-probe` answer against the truth.
struct Answer {
    seed: u64,
    found_msat: u64,
    /// The most that moves: the oracle's (capped by what the incoming channel can receive),
    /// or the answer where it fits the true balances and is more.
    true_msat: u64,
    oracle_msat: u64,
    /// The incoming peer's htlc maximum on our channel (see [`inc_htlc_max`]).
    htlc_max_msat: u64,
    /// The answer's set fits the true balances.
    fits: bool,
    probes: u64,
    sim_ms: u64,
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// What `in_chan` can receive now (its peer's spendable toward us).
fn receivable(net: &Network, c: usize) -> u64 {
    let ours = net.side_of(c, net.us).expect("our channel");
    net.spendable(c, 1 - ours)
}

/// The flow oracle's most that moves for `t` now within the cap at its amount, never more than
/// the incoming channel receives.
fn true_max(world: &World, net: &Network, t: &Task, a: &Args, scratch: &mut FlowScratch) -> u64 {
    let Some(ends) = world.circle_ends(net, t) else {
        return 0;
    };
    let caps = world.capacities(net);
    let ex = world.offline_exclusions(net);
    let upper = ends.max_source_msat;
    let limits = PartLimits {
        max_parts: Config::default().max_parts,
        min_part_msat: Config::default().min_part_msat,
    };
    let req = ends.request(upper, limits.max_parts, limits.min_part_msat, upper, &ex);
    let fee_cap = |x: u64| fee_cap_msat(x, a.maxfeeppm, a.exemptfee_msat);
    let most = flow::max_flow_within_cap(
        &world.graph,
        &req,
        |e: EdgeIdx| caps[e as usize],
        fee_cap,
        (upper / 200).max(1_000_000),
        scratch,
    );
    most.map_or(0, |f| delivered(&f))
        .min(receivable(net, t.in_chan))
}

/// The most the incoming peer forwards to us over our channel in one rebalance: its htlc
/// maximum in each of the plugin's parts (before 2026-12-04 one rebalance, so a probe's answer,
/// moved at most one htlc maximum; the row that shows it stays to show that cap is gone).
fn inc_htlc_max(net: &Network, c: usize) -> u64 {
    let ours = net.side_of(c, net.us).expect("our channel");
    let parts = u64::try_from(Config::default().max_parts).unwrap_or(1);
    net.channels[c].policy[1 - ours]
        .htlc_maximum_msat
        .saturating_mul(parts)
}

/// Whether the answer's parts fit the true balances: what they put on each channel direction
/// (between our two hops) within what it forwards, no offline node on the way. Parallel
/// channels at the same fees are one group (forwarding is non-strict: a node sends a part over
/// any of them, as `World::capacities` says), so the parts on a group are packed into its
/// channels, each HTLC whole, the largest first, each into the channel with the most left.
fn fits(world: &World, net: &Network, v: &Value) -> bool {
    let caps = world.capacities(net);
    let ex = world.offline_exclusions(net);
    let mut used: HashMap<EdgeIdx, u64> = HashMap::new();
    let mut htlcs: HashMap<EdgeIdx, Vec<u64>> = HashMap::new();
    for part in v["parts"].as_array().into_iter().flatten() {
        let hops = part["route"].as_array().cloned().unwrap_or_default();
        for h in hops.iter().skip(1).take(hops.len().saturating_sub(2)) {
            let (Some(scid), Some(dir)) = (
                h["short_channel_id"].as_str().and_then(|s| s.parse().ok()),
                h["direction"].as_u64(),
            ) else {
                return false;
            };
            let Some(e) = world.graph.edge_by_scid(scid, dir as u8) else {
                return false;
            };
            let edge = world.graph.edge(e);
            if ex.nodes.contains(&edge.source) || ex.nodes.contains(&edge.destination) {
                return false;
            }
            let amount = h["amount_msat"].as_u64().unwrap_or(u64::MAX);
            *used.entry(e).or_default() += amount;
            htlcs
                .entry(world.graph.parallel_lead(e))
                .or_default()
                .push(amount);
        }
    }
    let ok = htlcs.into_iter().all(|(g, mut amounts)| {
        let mut left: Vec<u64> = world
            .graph
            .parallel_group(g)
            .map(|e| caps[e as usize])
            .collect();
        amounts.sort_unstable_by(|a, b| b.cmp(a));
        amounts.into_iter().all(|a| {
            let most = left.iter_mut().max().expect("a group has its own edge");
            let fits = a <= *most;
            *most = most.saturating_sub(a);
            fits
        })
    });
    if !ok && std::env::var_os("PROBE_DEBUG").is_some() {
        for (&e, &amt) in &used {
            let edge = world.graph.edge(e);
            eprintln!(
                "  UNFIT edge {} dir {} used {amt} cap {}",
                edge.short_channel_id, edge.direction, caps[e as usize]
            );
        }
    }
    ok
}

/// Table (a) for one seed: every task's channels probed without an amount.
fn probe_max_on(world: &World, tasks: &[Task], a: &Args, rt: &Runtime, out: &mut Vec<Answer>) {
    let mut runner = Runner::new(world, Strategy::Parts, a, false);
    let mut scratch = FlowScratch::default();
    for (i, t) in tasks.iter().enumerate() {
        let truth = {
            let mut net = runner.node.net.lock().unwrap();
            if i > 0 {
                runner.clock.advance_ms(a.interval_secs * 1000);
                world.between(&mut net, &mut runner.events);
            }
            world.restore_ours(&mut net);
            true_max(world, &net, t, a, &mut scratch)
        };
        let t0 = runner.clock.now_ms();
        let debug = std::env::var_os("PROBE_DEBUG").is_some();
        let lines = std::sync::Arc::new(cln_rebalance::progress::Collected::default());
        let v = rt.block_on(runner.r.rebalance_probe(
            ProbeParams {
                outgoing: t.out_scid.clone(),
                incoming: t.in_scid.clone(),
                amount_msat: None,
                maxfeeppm: Some(a.maxfeeppm),
                exemptfee: Some(a.exemptfee_msat),
                maxparts: None,
            },
            debug.then(|| lines.clone() as std::sync::Arc<dyn cln_rebalance::progress::Progress>),
        ));
        let sim_ms = runner.clock.now_ms() - t0;
        if debug && let Err(e) = &v {
            eprintln!("task {i}: ERROR {} {}", e.code, e.message);
        }
        let v = v.unwrap_or_default();
        let found = v["max_msat"].as_u64().unwrap_or(0);
        let fit = found == 0 || fits(world, &runner.node.net.lock().unwrap(), &v);
        if debug {
            for l in lines.lines.lock().unwrap().iter() {
                eprintln!("    {l}");
            }
            eprintln!(
                "task {i}: found {} true {truth} probes {} sim {} s parts {} recv {}",
                found,
                v["probes"],
                sim_ms / 1000,
                v["parts"].as_array().map_or(0, |p| p.len()),
                receivable(&runner.node.net.lock().unwrap(), t.in_chan)
            );
        }
        out.push(Answer {
            seed: world.config.seed,
            found_msat: found,
            // An answer that fits the true balances is a witness: the oracle's search (to
            // 0.5%, parts of at least the smallest part) may find a little less.
            true_msat: if fit { truth.max(found) } else { truth },
            oracle_msat: truth,
            htlc_max_msat: inc_htlc_max(&runner.node.net.lock().unwrap(), t.in_chan),
            fits: fit,
            probes: v["probes"].as_u64().unwrap_or(0),
            sim_ms,
        });
    }
}

/// Table (b) for one seed: the tasks paid without and with background probing.
fn paid_on(world: &World, tasks: &[Task], a: &Args, rt: &Runtime, out: &mut [Vec<Outcome>; 2]) {
    let mut plain = Runner::new(world, Strategy::Parts, a, false);
    // The idle time before each task (after the last one ended): the next move probed
    // (`Runner::probe_before`).
    let mut probing = Runner::new(world, Strategy::Probing, a, false);
    for (i, t) in tasks.iter().enumerate() {
        out[0].push(plain.task(world, i, t, a, rt));
        out[1].push(probing.task(world, i, t, a, rt));
    }
}

/// Runs both tables over `a.seeds` and prints them.
pub fn bench(a: &Args) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let amount_sat = a.amounts_sat[0];
    let mut answers = Vec::new();
    let mut paid: [Vec<Outcome>; 2] = [Vec::new(), Vec::new()];
    for &seed in &a.seeds {
        let world = match World::load(a.world(seed)) {
            Ok(w) => w,
            Err(e) => {
                println!("SKIP seed {seed}: {e}");
                continue;
            }
        };
        let tasks = match world.tasks(
            amount_sat * 1000,
            a.maxfeeppm,
            a.exemptfee_msat,
            a.rebalances,
        ) {
            Ok(t) => t,
            Err(e) => {
                println!("SKIP seed {seed}: {e}");
                continue;
            }
        };
        let started = std::time::Instant::now();
        probe_max_on(&world, &tasks, a, &rt, &mut answers);
        // `PROBE_ONLY_A=1`: table (a) only (tuning the search; table (b) does not use it).
        if std::env::var_os("PROBE_ONLY_A").is_none() {
            paid_on(&world, &tasks, a, &rt, &mut paid);
        }
        println!(
            "seed {seed}: us {} ({} channels), {} tasks in {:.0} s",
            world.us_id,
            world.our_channel_count,
            tasks.len(),
            started.elapsed().as_secs_f64()
        );
    }
    let tuning = a.seeds.iter().any(|s| TUNING_SEEDS.contains(s));
    println!(
        "\nprobing, seeds {} ({}); simulated clock from {START_MS}",
        join(&a.seeds),
        if tuning {
            "INCLUDES TUNING SEEDS: not a report"
        } else {
            "report seeds"
        }
    );
    print_max(&answers, a);
    print_paid(&paid, a, amount_sat);
}

/// Table (a).
fn print_max(answers: &[Answer], a: &Args) {
    let movable: Vec<&Answer> = answers.iter().filter(|x| x.true_msat > 0).collect();
    let mut ratios: Vec<f64> = movable
        .iter()
        .map(|x| x.found_msat as f64 / x.true_msat as f64)
        .collect();
    // Against the most one rebalance may move (the truth within the incoming htlc maximum).
    let mut within: Vec<f64> = movable
        .iter()
        .map(|x| x.found_msat as f64 / x.true_msat.min(x.htlc_max_msat).max(1) as f64)
        .collect();
    let capped = movable
        .iter()
        .filter(|x| x.true_msat > x.htlc_max_msat)
        .count();
    let above = answers
        .iter()
        .filter(|x| x.found_msat > x.oracle_msat)
        .count();
    let unfit = answers.iter().filter(|x| !x.fits).count();
    let mut probes: Vec<f64> = answers.iter().map(|x| x.probes as f64).collect();
    let mut secs: Vec<f64> = answers.iter().map(|x| x.sim_ms as f64 / 1000.0).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (p10, p50) = (quantile(&mut ratios, 0.1), quantile(&mut ratios, 0.5));
    println!(
        "\n(a) rebalance-probe without an amount vs the oracle's true maximum (fee cap max({} msat, {} ppm), \
         at most {} probes and {} s a call)",
        a.exemptfee_msat,
        a.maxfeeppm,
        Config::default().probe_max_probes,
        Config::default().probe_max_secs
    );
    println!(
        "  answers {} ({} where something can move); found/true p10 {:.1}% p50 {:.1}% mean {:.1}%; \
         >= 90% in {:.0}%",
        answers.len(),
        movable.len(),
        p10 * 100.0,
        p50 * 100.0,
        mean(&ratios) * 100.0,
        pct(ratios.iter().filter(|&&r| r >= 0.9).count(), ratios.len())
    );
    println!(
        "  against the truth within maxparts x the incoming peer's htlc maximum (what one rebalance may move; \
         it binds in {} answers): p10 {:.1}% p50 {:.1}%; >= 90% in {:.0}%",
        capped,
        quantile(&mut within, 0.1) * 100.0,
        quantile(&mut within, 0.5) * 100.0,
        pct(within.iter().filter(|&&r| r >= 0.9).count(), within.len())
    );
    println!(
        "  above the oracle's figure {} ({:.1}%, each checked: its set fits); sets that do not fit the true \
         balances {} (must be 0)",
        above,
        pct(above, answers.len()),
        unfit
    );
    println!(
        "  probes per answer mean {:.1} p90 {:.0} max {:.0}; simulated s per answer mean {:.1} p90 {:.1} max {:.1}",
        mean(&probes),
        quantile(&mut probes, 0.9),
        quantile(&mut probes, 1.0),
        mean(&secs),
        quantile(&mut secs, 0.9),
        quantile(&mut secs, 1.0)
    );
    let mut by_seed: Vec<String> = Vec::new();
    let mut seeds: Vec<u64> = answers.iter().map(|x| x.seed).collect();
    seeds.dedup();
    for s in seeds {
        let mut r: Vec<f64> = movable
            .iter()
            .filter(|x| x.seed == s)
            .map(|x| x.found_msat as f64 / x.true_msat as f64)
            .collect();
        by_seed.push(format!(
            "{s}: {:.0}/{:.0}%",
            quantile(&mut r, 0.1) * 100.0,
            quantile(&mut r, 0.5) * 100.0
        ));
    }
    println!("  p10/p50 by seed: {}", by_seed.join(", "));
    let met = |ok: bool| if ok { "MET" } else { "MISSED" };
    println!(
        "  targets: p50 >= 90% {}, p10 >= 75% {}, never above what can move {}, <= 20 probes {}, <= 60 s {}",
        met(p50 >= 0.9),
        met(p10 >= 0.75),
        met(unfit == 0),
        met(quantile(&mut probes, 1.0) <= 20.0),
        met(quantile(&mut secs, 1.0) <= 60.0)
    );
}

/// Table (b).
fn print_paid(paid: &[Vec<Outcome>; 2], a: &Args, amount_sat: u64) {
    println!(
        "\n(b) {amount_sat} sat, strategy mpp, without and with background probing ({} probes an hour, \
         the next task probed in the idle time before it); HTLCs per success count the probes sent for it",
        a.probe_per_hour
    );
    println!(
        "  {:<24} {:>6} {:>9} {:>8} {:>9} {:>12} {:>13}  1st try by seed",
        "", "tasks", "feasible", "success", "1st try", "HTLCs/succ", "probes/task"
    );
    for (k, rows) in paid.iter().enumerate() {
        let feasible: Vec<&Outcome> = rows.iter().filter(|p| p.oracle.flow_feasible()).collect();
        let solved: Vec<&Outcome> = rows.iter().filter(|p| p.solved()).collect();
        let first = feasible.iter().filter(|p| p.pay.first_paid).count();
        let htlcs: usize = solved.iter().map(|p| p.pay.htlcs + p.probes).sum();
        let probes: usize = rows.iter().map(|p| p.probes).sum();
        let mut seeds: Vec<u64> = rows.iter().map(|p| p.seed).collect();
        seeds.dedup();
        let by_seed: Vec<String> = seeds
            .iter()
            .map(|&s| {
                let f: Vec<&&Outcome> = feasible.iter().filter(|p| p.seed == s).collect();
                let ok = f.iter().filter(|p| p.pay.first_paid).count();
                format!("{:.0}", pct(ok, f.len()))
            })
            .collect();
        println!(
            "  {:<24} {:>6} {:>9} {:>7.1}% {:>8.1}% {:>12.2} {:>13.2}  {}",
            if k == 0 {
                "mpp"
            } else {
                "mpp + background probing"
            },
            rows.len(),
            feasible.len(),
            pct(
                feasible.iter().filter(|p| p.solved()).count(),
                feasible.len()
            ),
            pct(first, feasible.len()),
            htlcs as f64 / solved.len().max(1) as f64,
            probes as f64 / rows.len().max(1) as f64,
            by_seed.join("/")
        );
    }
    let with = &paid[1];
    let f: Vec<&Outcome> = with.iter().filter(|p| p.oracle.flow_feasible()).collect();
    let first = pct(f.iter().filter(|p| p.pay.first_paid).count(), f.len());
    let left: usize = with.iter().map(|p| p.htlcs_left).sum();
    println!(
        "  target: >= 90% first try at {amount_sat} sat with background probing: {} ({first:.1}%); HTLCs left in the network {left}",
        if first >= 90.0 { "MET" } else { "MISSED" }
    );
}

//! `make bench-sim`: how many attempts a circular rebalance needs on mainnet, and what it costs
//! against the cheapest route the true balances allow, for each routing strategy.
//!
//! The world (`tests/support/sim.rs`): the 2026-02-03 mainnet graph as the stand-in's network
//! model, every channel's balance hidden and drawn from a seeded distribution (`--dist`:
//! `bimodal` = a quarter of channels in [0, 10%] of the capacity, a quarter in [90, 100%], half
//! uniform, as the stand-in's loader draws them; or `uniform`). "Us" is a seeded pick among
//! the routing nodes of the largest strongly connected component with 20-60 usable channels;
//! half of those are made outbound-heavy (80-95% ours), half inbound-heavy (5-20% ours).
//!
//! The run: `--rebalances` sequential tasks per amount (`--amounts`, sat), each from an
//! outbound-heavy channel that can pay the amount and fee cap to an inbound-heavy one whose
//! peer can send it, through the real `State` (the plugin's state and its rebalance algorithm) in-process (`SimNode`: the plugin's
//! `Lightningd` trait over the network model), so balances along the route move after each
//! success. Our own channels return to their initial balances before each task (our routing
//! traffic unbalances them again), so every strategy gets the same tasks. Between two tasks:
//! the clock moves `--interval` seconds; other traffic draws `--traffic` of all other channels
//! anew; each of the flaky nodes (`--flaky` of the SCC's nodes, never us or our peers) is
//! offline or online at even odds. Each attempt costs simulated time on a `ManualClock` given
//! to `State::with_clock`: `--hop-ms` for every hop its HTLC travelled, there and back,
//! so `retry_for` binds.
//!
//! The oracle knows the true balances: the plugin's own `find_path` on the snapshot's graph,
//! each channel direction limited to what it can really forward (reserve, HTLCs, htlc limits,
//! the network model's non-strict forwarding), offline nodes excluded, our own first and last
//! hops added as the plugin adds them. A task is feasible if the oracle's route is within the
//! fee cap (`--maxfeeppm`, `--exemptfee`).
//!
//! Strategies, each on its own copy of the same world with the same tasks, traffic and flaky
//! nodes: `fee` (the cheapest route by fee, failures ruled out for the call), `nomem` (the
//! liquidity model, each rebalance starting from the prior), `mem` (the model, remembering
//! across rebalances). Printed per strategy: feasible tasks, success among them within
//! `retry_for`, attempts per success, share solved within 1 / 3 / 10 attempts, fee paid over
//! the oracle's, simulated time per rebalance, route search time (`take_search_times`), the
//! model's memory; the first attempt per seed and how much it varies between nodes (each seed
//! is another "us": a six-node mean is only as good as its standard error); then the targets
//! of issue 9, and the model of the whole graph.
//!
//! Usage: `cargo bench --bench sim -- [--seeds 11,12,13,14,15,16] [--dist bimodal|uniform] [--traffic 0.02]
//! [--flaky 0.02] [--amounts 100000,1000000] [--rebalances 200] [--interval 60] [--hop-ms 1000]
//! [--retry-for 60] [--maxfeeppm 1000] [--exemptfee 5000] [--half-life 1800]
//! [--prior bimodal|uniform] [--depleted 0.04] [--risk-base 2000] [--risk-ppm 100]
//! [--strategies fee,nomem,mem]
//! [--graph-max-age 3600] [--us NODE_ID]`. Tune on [`TUNING_SEEDS`]; report on others.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/support/mainnet.rs"]
mod mainnet;
#[path = "../tests/support/sim.rs"]
mod sim;

use cln_rebalance::clock::{Clock, ManualClock};
use cln_rebalance::config::Config;
use cln_rebalance::core::liquidity::{Beliefs, ChanDir, Liquidity, ModelConfig, Prior};
use cln_rebalance::core::pathfind::Scratch;
use cln_rebalance::params::RebalanceParams;
use cln_rebalance::state::State;
use cln_standin::prng::SplitMix64;
use common::SimNode;
use sim::{Dist, Strategy, Task, World, WorldConfig, parse_list, parse_one};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// Seeds the model's defaults were chosen on (`ModelConfig::default`): never the report's.
const TUNING_SEEDS: [u64; 6] = [1, 2, 3, 4, 5, 6];
/// Seeds of the default run (the report): as many as the tuning seeds, since each seed is
/// another node and two nodes proved too few to tell a setting from a node's peculiarity
/// (seeds 11 and 12 alone were the report until 2026-12-02).
const REPORT_SEEDS: [u64; 6] = [11, 12, 13, 14, 15, 16];
/// Where the simulated clock starts (unix ms).
const START_MS: u64 = 1_770_000_000_000;

#[derive(Debug, Clone)]
struct Args {
    seeds: Vec<u64>,
    dist: Dist,
    traffic: f64,
    flaky: f64,
    amounts_sat: Vec<u64>,
    rebalances: usize,
    interval_secs: u64,
    hop_ms: u64,
    retry_for: u64,
    maxfeeppm: u64,
    exemptfee_msat: u64,
    model: ModelConfig,
    strategies: Vec<Strategy>,
    graph_max_age_secs: u64,
    us: Option<String>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            seeds: REPORT_SEEDS.to_vec(),
            dist: Dist::Bimodal,
            traffic: 0.02,
            flaky: 0.02,
            amounts_sat: vec![100_000, 1_000_000],
            rebalances: 200,
            interval_secs: 60,
            hop_ms: 1000,
            retry_for: 60,
            maxfeeppm: 1000,
            exemptfee_msat: 5000,
            model: ModelConfig::default(),
            strategies: vec![Strategy::Fee, Strategy::NoMemory, Strategy::Memory],
            // The snapshot's gossip does not change in this world (offline nodes' channels show
            // as inactive in a fresh listchannels); refreshed hourly rather than every 5 minutes
            // as the plugin does, to keep the run short.
            graph_max_age_secs: 3600,
            us: None,
        }
    }
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut a = Args::default();
        let mut it = std::env::args().skip(1).filter(|x| x != "--bench");
        while let Some(flag) = it.next() {
            let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--seed" | "--seeds" => a.seeds = parse_list(&val()?)?,
                "--dist" => a.dist = val()?.parse()?,
                "--traffic" => a.traffic = parse_one(&val()?)?,
                "--flaky" => a.flaky = parse_one(&val()?)?,
                "--amounts" => a.amounts_sat = parse_list(&val()?)?,
                "--rebalances" => a.rebalances = parse_one(&val()?)?,
                "--interval" => a.interval_secs = parse_one(&val()?)?,
                "--hop-ms" => a.hop_ms = parse_one(&val()?)?,
                "--retry-for" => a.retry_for = parse_one(&val()?)?,
                "--maxfeeppm" => a.maxfeeppm = parse_one(&val()?)?,
                "--exemptfee" => a.exemptfee_msat = parse_one(&val()?)?,
                "--half-life" => a.model.half_life_secs = parse_one(&val()?)?,
                "--prior" => a.model.prior = val()?.parse::<Prior>()?,
                "--depleted" => {
                    let share: f64 = parse_one(&val()?)?;
                    if !(0.0..=1.0).contains(&share) {
                        return Err(format!("--depleted {share}: a share in [0, 1]"));
                    }
                    a.model.depleted_ppm = (share * 1e6).round() as u32;
                }
                "--risk-base" => a.model.risk_base_msat = parse_one(&val()?)?,
                "--risk-ppm" => a.model.risk_ppm = parse_one(&val()?)?,
                "--strategies" => a.strategies = parse_list(&val()?)?,
                "--graph-max-age" => a.graph_max_age_secs = parse_one(&val()?)?,
                "--us" => a.us = Some(val()?),
                "-h" | "--help" => {
                    return Err("see the //! doc of benches/sim.rs for the flags".into());
                }
                other => return Err(format!("unknown flag {other:?}")),
            }
        }
        if a.seeds.is_empty() || a.amounts_sat.is_empty() || a.strategies.is_empty() {
            return Err("--seeds, --amounts and --strategies need at least one item".into());
        }
        Ok(a)
    }
}

/// One task's outcome.
#[derive(Debug, Clone)]
struct Outcome {
    /// The world's seed (each seed is another "us").
    seed: u64,
    oracle_fee_msat: Option<u64>,
    paid_fee_msat: Option<u64>,
    attempts: usize,
    sim_ms: u64,
    /// Why it failed (code and the start of the message).
    why: Option<String>,
    /// Why its first attempt failed, if it did (see [`first_failure`]).
    first_failure: Option<&'static str>,
}

impl Outcome {
    /// The rebalance succeeded (within `retry_for`).
    fn solved(&self) -> bool {
        self.paid_fee_msat.is_some()
    }
}

/// Why the first payment at or after `from` in `net.payments` failed: the next node was
/// offline, the channel lacked liquidity, or something else; `None` if it did not fail.
fn first_failure(net: &cln_standin::simnet::Network, from: usize) -> Option<&'static str> {
    use cln_standin::simnet::pay::PayStatus;
    let p = net.payments.get(from)?;
    if p.status != PayStatus::Failed {
        return None;
    }
    let f = p.failure.as_ref()?;
    let next = p.route.get(f.erring_index).and_then(|h| h.node);
    Some(if next.is_some_and(|n| !net.nodes[n].online) {
        "next node offline"
    } else if f.failcode == cln_standin::simnet::wire::TEMPORARY_CHANNEL_FAILURE {
        "liquidity"
    } else {
        "other"
    })
}

/// Everything one strategy did, pooled over seeds.
#[derive(Default)]
struct Stats {
    outcomes: Vec<Outcome>,
    search: Vec<Duration>,
    /// Per seed: the shared model's heap bytes and its search view's.
    model_bytes: Vec<(usize, usize)>,
    wall: Duration,
}

/// The start of a failure message, each run of digits read as `N`, so like failures group
/// together and still read as a sentence.
fn reason(code: i32, message: &str) -> String {
    let words: Vec<&str> = message.split_whitespace().take(7).collect();
    let mut text = String::new();
    let mut in_digits = false;
    for c in words.join(" ").chars() {
        let digit = c.is_ascii_digit();
        if !digit {
            text.push(c);
        } else if !in_digits {
            text.push('N');
        }
        in_digits = digit;
    }
    format!("{code}: {text}")
}

/// One strategy's rebalancer on its own copy of the world.
struct Runner {
    strategy: Strategy,
    clock: Arc<ManualClock>,
    node: SimNode,
    r: Arc<State<SimNode>>,
    /// The world's events between rebalances: the same seed for every strategy, consumed by
    /// the world only, so every strategy sees the same traffic and flaky nodes.
    events: SplitMix64,
    scratch: Scratch,
}

impl Runner {
    fn new(world: &World, strategy: Strategy, a: &Args) -> Runner {
        let clock = Arc::new(ManualClock::new(START_MS));
        let node = SimNode::new(world.net.clone()).with_hop_clock(clock.clone(), a.hop_ms);
        let config = strategy.config(Config {
            maxfeeppm: a.maxfeeppm,
            exemptfee_msat: a.exemptfee_msat,
            retry_for_secs: a.retry_for,
            graph_max_age: Duration::from_secs(a.graph_max_age_secs),
            model: a.model,
            ..Config::default()
        });
        let r = common::hooked(node.clone(), config, clock.clone());
        Runner {
            strategy,
            clock,
            node,
            r,
            events: SplitMix64::new(world.config.seed ^ 0xE7E7_5EED),
            scratch: Scratch::default(),
        }
    }

    /// Task `i`: the world moves on (after the first), the oracle looks, the rebalancer runs.
    fn task(&mut self, world: &World, i: usize, t: &Task, a: &Args, rt: &Runtime) -> Outcome {
        let oracle = {
            let mut net = self.node.net.lock().unwrap();
            if i > 0 {
                self.clock.advance_ms(a.interval_secs * 1000);
                world.between(&mut net, &mut self.events);
            }
            world.restore_ours(&mut net);
            world.oracle(&net, t, a.maxfeeppm, a.exemptfee_msat, &mut self.scratch)
        };
        let oracle_fee_msat = oracle.map(|o| o.fee_msat);
        let first_payment = self.node.net.lock().unwrap().payments.len();
        let t0 = self.clock.now_ms();
        let result = rt.block_on(self.r.rebalance(RebalanceParams {
            outgoing: t.out_scid.clone(),
            incoming: t.in_scid.clone(),
            amount_msat: Some(t.amount_msat),
            maxfeeppm: Some(a.maxfeeppm),
            exemptfee: Some(a.exemptfee_msat),
            retry_for: Some(a.retry_for),
            dryrun: false,
            maxparts: None,
        }));
        let sim_ms = self.clock.now_ms() - t0;
        let first_failure = first_failure(&self.node.net.lock().unwrap(), first_payment);
        match result {
            Ok(v) => Outcome {
                seed: world.config.seed,
                oracle_fee_msat,
                paid_fee_msat: v["fee_msat"].as_u64(),
                attempts: v["attempts"].as_u64().unwrap_or(0) as usize,
                sim_ms,
                why: None,
                first_failure,
            },
            Err(e) => Outcome {
                seed: world.config.seed,
                oracle_fee_msat,
                paid_fee_msat: None,
                attempts: e
                    .data
                    .as_ref()
                    .and_then(|d| d["attempts"].as_array())
                    .map_or(0, |v| v.len()),
                sim_ms,
                why: Some(reason(e.code, &e.message)),
                first_failure,
            },
        }
    }

    /// What is left to count once every task ran: search times and the model's memory.
    fn finish(self, world: &World, a: &Args, stats: &mut Stats) {
        stats.search.extend(self.r.take_search_times());
        let liq = self.r.liquidity().clone();
        let mut view = Beliefs::default();
        view.rebuild(&world.graph, &liq, self.clock.now_secs(), a.model);
        stats
            .model_bytes
            .push((liq.heap_bytes(), view.heap_bytes()));
    }
}

/// Runs `tasks` for every strategy, each on its own copy of `world`, interleaved task by task
/// so that the load of a shared machine weighs on every strategy's search times alike.
fn run(world: &World, tasks: &[Task], a: &Args, stats: &mut BTreeMap<Strategy, Stats>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut runners: Vec<Runner> = a
        .strategies
        .iter()
        .map(|&k| Runner::new(world, k, a))
        .collect();
    for (i, t) in tasks.iter().enumerate() {
        for runner in &mut runners {
            let started = Instant::now();
            let o = runner.task(world, i, t, a, &rt);
            let s = stats.entry(runner.strategy).or_default();
            s.outcomes.push(o);
            s.wall += started.elapsed();
        }
    }
    for runner in runners {
        let s = stats.entry(runner.strategy).or_default();
        runner.finish(world, a, s);
    }
}

fn pct(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        100.0 * n as f64 / d as f64
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn kib(b: usize) -> f64 {
    b as f64 / 1024.0
}

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

fn print_table(amount_sat: u64, a: &Args, stats: &BTreeMap<Strategy, Stats>) {
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

fn join(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// The model of the whole graph: an entry for every channel direction, and its search view.
fn whole_graph_model(world: &World, model: ModelConfig) {
    let g = &world.graph;
    let now = START_MS / 1000;
    let mut l = Liquidity::new();
    for e in g.edges() {
        let cd = ChanDir::new(e.short_channel_id, e.direction);
        l.failed(
            cd,
            e.amount_msat / 2 + 1,
            e.amount_msat,
            now,
            model.half_life_secs,
        );
    }
    let mut view = Beliefs::default();
    view.rebuild(g, &l, now, model);
    let (chans, _) = l.len();
    let total = l.heap_bytes() + view.heap_bytes();
    println!(
        "\nmodel of the whole graph: {chans} channel directions, Liquidity {:.1} MiB + search view {:.1} MiB \
         = {:.1} MiB (target <= 16 MiB: {})",
        l.heap_bytes() as f64 / (1 << 20) as f64,
        view.heap_bytes() as f64 / (1 << 20) as f64,
        total as f64 / (1 << 20) as f64,
        if total <= 16 << 20 { "MET" } else { "MISSED" }
    );
}

fn main() {
    let a = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench sim: {e}");
            std::process::exit(2);
        }
    };
    if !sim::bench_header("simulation bench") {
        return;
    }
    let tuning = a.seeds.iter().any(|s| TUNING_SEEDS.contains(s));
    println!(
        "seeds {} ({}); the defaults were tuned on seeds {}",
        join(&a.seeds),
        if tuning {
            "INCLUDES TUNING SEEDS: not a report"
        } else {
            "report seeds"
        },
        join(&TUNING_SEEDS)
    );
    println!(
        "world: {}, balances {}, between rebalances {} s, {:.1}% of channels redrawn, {:.1}% of SCC nodes \
         flaky; {} ms per hop each way; retry_for {} s; fee cap max({} msat, {} ppm)",
        sim::SNAPSHOT,
        a.dist.name(),
        a.interval_secs,
        a.traffic * 100.0,
        a.flaky * 100.0,
        a.hop_ms,
        a.retry_for,
        a.exemptfee_msat,
        a.maxfeeppm
    );
    println!(
        "model: half-life {} s, prior {:?} with {}% depleted, risk {} msat + {} ppm of the amount per bit of -log2 P",
        a.model.half_life_secs,
        a.model.prior,
        a.model.depleted() * 100.0,
        a.model.risk_base_msat,
        a.model.risk_ppm
    );
    let mut all: BTreeMap<u64, BTreeMap<Strategy, Stats>> = BTreeMap::new();
    let mut last_world = None;
    for &seed in &a.seeds {
        let t = Instant::now();
        let world = match World::load(WorldConfig {
            seed,
            dist: a.dist,
            traffic: a.traffic,
            flaky: a.flaky,
            us: a.us.clone(),
        }) {
            Ok(w) => w,
            Err(e) => {
                println!("SKIP seed {seed}: {e}");
                continue;
            }
        };
        println!(
            "seed {seed}: us {} ({} channels: {} outbound-heavy, {} inbound-heavy); {} flaky nodes of {} \
             in the largest SCC; loaded in {:.1} s",
            world.us_id,
            world.our_channel_count,
            world.outbound.len(),
            world.inbound.len(),
            world.flaky.len(),
            world.scc_nodes,
            t.elapsed().as_secs_f64()
        );
        for &sat in &a.amounts_sat {
            let tasks = match world.tasks(sat * 1000, a.maxfeeppm, a.exemptfee_msat, a.rebalances) {
                Ok(t) => t,
                Err(e) => {
                    println!("  SKIP {sat} sat: {e}");
                    continue;
                }
            };
            run(&world, &tasks, &a, all.entry(sat).or_default());
        }
        last_world = Some(world);
    }
    for (sat, stats) in &all {
        print_table(*sat, &a, stats);
    }
    if let Some(w) = &last_world {
        whole_graph_model(w, a.model);
    }
    println!(
        "peak memory (VmHWM) {:.0} MiB",
        mainnet::proc_status_kib("VmHWM") as f64 / 1024.0
    );
}

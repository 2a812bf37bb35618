//! `make bench-rebalanceall`: one `rebalanceall` over the mainnet simulation (issue 10): how far
//! toward target it gets, at what fee, in how many attempts, against the budget; per routing
//! strategy, side by side on copies of the same world.
//!
//! The world is `make bench-sim`'s (`tests/support/sim/`): the 2026-02-03 mainnet graph with
//! hidden balances (`--dist`), "us" a seeded routing node with 20-60 channels, half of them
//! outbound-heavy (80-95% ours) and half inbound-heavy (5-20%). Our channels' own fees are
//! the snapshot's, so the economics rule (fee cap = `feeratio` x what we charge to forward the
//! amount out through the incoming channel, at most `maxfeeppm`) works on real fee settings.
//!
//! The run: the real `State::rebalanceall` in-process (`SimNode`, the plugin's
//! `Lightningd` trait over the network model), with the plugin's defaults for the planner
//! (target 50%, min amount 100000sat, feeratio 0.5, maxfeeppm 1000) and for
//! `rebalance-parallel` (2) unless flags say otherwise; a fresh liquidity model, as on a node's
//! first job. Each attempt costs simulated time (`--hop-ms` per hop each way), and while the
//! job runs the world moves on: every `--interval` simulated seconds other traffic redraws
//! `--traffic` of the other channels and the flaky nodes (`--flaky`) come and go.
//!
//! Printed per seed, budget and strategy: moves completed and failed (from the history: every
//! move started), pairs the job quoted and skipped before any move (no set within the fee cap
//! even at the min amount: not moves, nothing sent, in a column of their own), amount moved, fee paid
//! (sat, ppm of the amount, and over what one forward out through the incoming channels earns:
//! the economics rule keeps it at most `feeratio`), attempts (in all, per completed move), our
//! off-target channels before and after, the sinks' deficit closed (against the most the
//! planner could move at the start: min of the sources' and the sinks' movable amounts), the
//! budget used, simulated and wall time, and why the job ended. Checked on every run: the fee
//! never exceeds the budget, and no invoice or HTLC is left behind.
//!
//! Beside the strategies (`fee`, `nomem`, `mem` one route per attempt; `mpp` in up to
//! `--maxparts` parts of at least `--min-part`), each with sized moves (the plugin's default:
//! probes size a move before it goes), the strategies of `--halving` once more with sized moves
//! off (a failed move halved and tried again, as before issue 23), and the informed job
//! (`oracle.rs`): what a job that knew the true balances closes of the sinks' deficit under the
//! same planner, economics and budget, paying each move with the flow oracle's cheapest set of
//! parts; and each job's deficit closed against it (target: at least 80%), and sized against
//! halving (targets: failed moves halved, no less deficit closed). HTLCs count every `sendpay`
//! the job made, parts, replacements and probes alike (the informed job's: its parts).
//!
//! Usage: `cargo bench --bench rebalanceall -- [--seeds 11,12] [--dist bimodal|uniform]
//! [--traffic 0.02] [--flaky 0.02] [--interval 60] [--hop-ms 1000] [--retry-for 120]
//! [--budgets none,500] (sat per run) [--parallel 2] [--target 50] [--feeratio 0.5]
//! [--strategies fee,nomem,mem,mpp] [--halving mpp|none] [--maxparts 4] [--min-part 20000] (sat)
//! [--no-oracle] [--us NODE_ID] [--show-failures]`.

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/support/mainnet.rs"]
mod mainnet;
mod oracle; // the informed job: what a job knowing the true balances closes
#[path = "../../tests/support/sim/mod.rs"]
mod sim;
mod table; // the rows: a job's figures, against the informed job, sized against halving

use cln_rebalance::channels::our_channel;
use cln_rebalance::clock::{Clock, ManualClock};
use cln_rebalance::config::{AutoConfig, Config};
use cln_rebalance::core::amount::fee_msat;
use cln_rebalance::core::budget::Budget;
use cln_rebalance::core::history::Outcome;
use cln_rebalance::core::plan::{Imbalance, OurChannel, PlanConfig, Settings, plan};
use cln_rebalance::lightningd::Lightningd;
use cln_rebalance::params::RebalanceallParams;
use cln_standin::prng::SplitMix64;
use common::SimNode;
use sim::{Dist, PartLimits, Strategy, World, WorldConfig, parse_list, parse_one};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use table::{
    ORACLE_NAME, budget_name, header, print_against_oracle, print_row, print_sized_vs_halving, sat,
};

/// Seeds of the default run; the liquidity model's defaults were tuned on 1-6 (`benches/sim.rs`).
const REPORT_SEEDS: [u64; 2] = [11, 12];
/// Where the simulated clock starts (unix ms).
const START_MS: u64 = 1_770_000_000_000;
/// A job that has not ended after this much simulated time is reported as hung.
const MAX_JOB_SIM_SECS: u64 = 6 * 3600;

#[derive(Debug, Clone)]
struct Args {
    seeds: Vec<u64>,
    dist: Dist,
    traffic: f64,
    flaky: f64,
    interval_secs: u64,
    hop_ms: u64,
    retry_for: u64,
    /// Per-run fee budgets, msat; `None` = no budget.
    budgets: Vec<Option<u64>>,
    parallel: usize,
    plan: PlanConfig,
    strategies: Vec<Strategy>,
    /// Strategies run a second time with sized moves off (halving what fails).
    halving: Vec<Strategy>,
    /// The `mpp` strategy's parts, and the informed job's: the plugin's defaults unless set.
    parts: PartLimits,
    /// Run the informed job too (`--no-oracle`: not).
    oracle: bool,
    us: Option<String>,
    /// Print every failed move of every job.
    show_failures: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            seeds: REPORT_SEEDS.to_vec(),
            dist: Dist::Bimodal,
            traffic: 0.02,
            flaky: 0.02,
            interval_secs: 60,
            hop_ms: 1000,
            retry_for: cln_rebalance::config::DEFAULT_RETRY_FOR_SECS,
            budgets: vec![None, Some(500_000)],
            parallel: AutoConfig::default().parallel,
            plan: PlanConfig::default(),
            strategies: vec![
                Strategy::Fee,
                Strategy::NoMemory,
                Strategy::Memory,
                Strategy::Parts,
            ],
            // The plugin's default strategy (the model with memory, in parts).
            halving: vec![Strategy::Parts],
            parts: PartLimits {
                max_parts: Config::default().max_parts,
                min_part_msat: Config::default().min_part_msat,
            },
            oracle: true,
            us: None,
            show_failures: false,
        }
    }
}

fn budget_sat(v: &str) -> Result<Option<u64>, String> {
    match v.trim() {
        "none" => Ok(None),
        x => parse_one::<u64>(x).map(|sat| Some(sat * 1000)),
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
                "--interval" => a.interval_secs = parse_one::<u64>(&val()?)?.max(1),
                "--hop-ms" => a.hop_ms = parse_one(&val()?)?,
                "--retry-for" => a.retry_for = parse_one(&val()?)?,
                "--budgets" => {
                    a.budgets = val()?
                        .split(',')
                        .map(budget_sat)
                        .collect::<Result<_, _>>()?;
                }
                "--parallel" => a.parallel = parse_one::<usize>(&val()?)?.max(1),
                "--target" => a.plan.target_percent = parse_one(&val()?)?,
                "--feeratio" => {
                    a.plan.feeratio_millionths = (parse_one::<f64>(&val()?)? * 1e6).round() as u32;
                }
                "--strategies" => a.strategies = parse_list(&val()?)?,
                "--halving" => {
                    a.halving = match val()?.as_str() {
                        "none" => Vec::new(),
                        v => parse_list(v)?,
                    };
                }
                "--maxparts" => a.parts.max_parts = parse_one::<usize>(&val()?)?.max(1),
                "--min-part" => a.parts.min_part_msat = parse_one::<u64>(&val()?)? * 1000,
                "--no-oracle" => a.oracle = false,
                "--us" => a.us = Some(val()?),
                "--show-failures" => a.show_failures = true,
                "-h" | "--help" => {
                    return Err("see the //! doc of benches/rebalanceall.rs for the flags".into());
                }
                other => return Err(format!("unknown flag {other:?}")),
            }
        }
        a.plan.validate()?;
        if a.seeds.is_empty() || a.budgets.is_empty() || a.strategies.is_empty() {
            return Err("--seeds, --budgets and --strategies need at least one item".into());
        }
        Ok(a)
    }
}

/// Our channels against their targets, as the planner sees them.
#[derive(Debug, Clone, Copy, Default)]
struct Standing {
    /// Channels off target by at least the min amount (sources and sinks).
    off_target: usize,
    /// What the sinks lack (msat).
    deficit_msat: u64,
    /// The most the planner could move now: min of the sources' and sinks' movable amounts.
    movable_msat: u64,
}

fn standing(chans: &[OurChannel], config: &PlanConfig) -> Standing {
    let p = plan(chans, &Settings::default(), config);
    let movable = |v: &[Imbalance]| v.iter().map(|i| i.movable_msat).sum::<u64>();
    Standing {
        off_target: p.sources.len() + p.sinks.len(),
        deficit_msat: p.sinks.iter().map(|i| i.distance_msat.unsigned_abs()).sum(),
        movable_msat: movable(&p.sources).min(movable(&p.sinks)),
    }
}

/// One job's figures.
#[derive(Debug, Clone, Default)]
struct JobRun {
    budget_msat: Option<u64>,
    before: Standing,
    after: Standing,
    completed: u32,
    failed: u32,
    /// Of the failed moves, those that sent an HTLC (the others were refused before any:
    /// no route within the cap).
    failed_sent: u32,
    moved_msat: u64,
    fee_msat: u64,
    /// What one forward of each moved amount out through its incoming channel earns at our fee.
    earns_msat: u64,
    attempts: u64,
    /// Every `sendpay` of the job: parts, replacements and probes.
    htlcs: u64,
    /// Probes sent to size moves, and moves they found could not go (nothing paid was sent).
    probes: u64,
    sized_out: u32,
    /// Pairs quoted before any move and skipped: no set within the cap (not moves, nothing
    /// sent; the informed job's: the pairs it found no set for).
    skipped: u32,
    sim_ms: u64,
    wall: Duration,
    ended: String,
}

impl JobRun {
    fn closed_msat(&self) -> u64 {
        self.before
            .deficit_msat
            .saturating_sub(self.after.deficit_msat)
    }
}

async fn our_channels(node: &SimNode) -> Vec<OurChannel> {
    node.listpeerchannels()
        .await
        .expect("listpeerchannels")
        .iter()
        .filter_map(our_channel)
        .collect()
}

/// What ran a job: a strategy with sized moves on or off, or the informed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ours { strategy: Strategy, sized: bool },
    Oracle,
}

impl Kind {
    fn name(self) -> String {
        match self {
            Kind::Ours {
                strategy,
                sized: true,
            } => strategy.name().to_string(),
            Kind::Ours {
                strategy,
                sized: false,
            } => format!("{}, halving", strategy.name()),
            Kind::Oracle => ORACLE_NAME.to_string(),
        }
    }
}

/// One `rebalanceall` with `strategy`, sized moves on or off and `budget` on a fresh copy of
/// `world`.
fn run_job(
    world: &Arc<World>,
    strategy: Strategy,
    sized: bool,
    budget: Option<u64>,
    a: &Args,
) -> JobRun {
    let clock = Arc::new(ManualClock::new(START_MS));
    // The world moves on every `interval` of simulated time, as in the sim bench between two
    // rebalances; the same seed for every strategy (which attempts see which event differs).
    let events = Mutex::new((
        SplitMix64::new(world.config.seed ^ 0x10B5_EED5),
        START_MS + a.interval_secs * 1000,
    ));
    let (w, step) = (world.clone(), a.interval_secs * 1000);
    let tick: common::Tick = Arc::new(move |net, now_ms| {
        let mut ev = events.lock().unwrap();
        while now_ms >= ev.1 {
            w.between(net, &mut ev.0);
            ev.1 += step;
        }
    });
    let node = SimNode::new(world.net.clone())
        .with_hop_clock(clock.clone(), a.hop_ms)
        .with_world_events(tick);
    let config = strategy.config(Config {
        retry_for_secs: a.retry_for,
        max_parts: a.parts.max_parts,
        min_part_msat: a.parts.min_part_msat,
        auto: AutoConfig {
            plan: a.plan,
            budget: Budget {
                per_run_msat: budget,
                daily_msat: None,
            },
            parallel: a.parallel,
            sized_moves: sized,
            ..AutoConfig::default()
        },
        ..Config::default()
    });
    let r = common::hooked(node.clone(), config, clock.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let sendpays_before = node.net.lock().unwrap().sendpay_index.created;
    let mut out = rt.block_on(async {
        let before = standing(&our_channels(&node).await, &a.plan);
        r.rebalanceall(RebalanceallParams::default())
            .await
            .expect("rebalanceall starts");
        let ended = loop {
            if let Some(why) = r.last_job().and_then(|j| j.ended()) {
                break why;
            }
            if clock.now_ms() - START_MS > MAX_JOB_SIM_SECS * 1000 {
                r.rebalancestop().await.expect("rebalancestop");
                break format!("HUNG: still running after {MAX_JOB_SIM_SECS} simulated s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        JobRun {
            budget_msat: budget,
            before,
            after: standing(&our_channels(&node).await, &a.plan),
            ended,
            ..JobRun::default()
        }
    });
    out.wall = started.elapsed();
    out.sim_ms = clock.now_ms() - START_MS;
    out.htlcs = node.net.lock().unwrap().sendpay_index.created - sendpays_before;
    let chans = rt.block_on(our_channels(&node));
    let fee_of = |scid| {
        chans
            .iter()
            .find(|c| c.short_channel_id == scid)
            .map_or((0, 0), |c| (c.fee_base_msat, c.fee_proportional_millionths))
    };
    for e in rt.block_on(r.history_entries()) {
        out.attempts += u64::from(e.attempts);
        if e.outcome == Outcome::Complete {
            out.completed += 1;
            out.moved_msat += e.amount_msat;
            out.fee_msat += e.fee_msat;
            let (base, ppm) = fee_of(e.incoming);
            let earns = fee_msat(e.amount_msat, u32::try_from(base).unwrap_or(u32::MAX), ppm);
            out.earns_msat = out.earns_msat.saturating_add(earns.unwrap_or(u64::MAX));
        } else {
            out.failed += 1;
            out.failed_sent += u32::from(e.attempts > 0);
            if a.show_failures {
                println!(
                    "    failed: {} -> {} {} sat, {} attempt(s): {:?} {}",
                    e.outgoing,
                    e.incoming,
                    e.amount_msat / 1000,
                    e.attempts,
                    e.outcome,
                    e.error
                );
            }
        }
    }
    let p = r.last_job().expect("a job ran").progress();
    out.probes = u64::from(p.probes);
    out.sized_out = p.moves_sized_out;
    out.skipped = p.pairs_skipped;
    assert_eq!(
        (p.moves_completed, p.fee_msat),
        (out.completed, out.fee_msat),
        "the job's progress and its history agree"
    );
    // Nothing left behind: no unpaid invoice, no HTLC on any channel.
    common::assert_clean(&node);
    out
}

fn main() {
    let a = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench rebalanceall: {e}");
            std::process::exit(2);
        }
    };
    if !sim::bench_header("rebalanceall bench") {
        return;
    }
    println!(
        "world: {}, balances {}, every {} simulated s {:.1}% of the other channels redrawn and {:.1}% of \
         SCC nodes flaky; {} ms per hop each way; retry_for {} s",
        sim::SNAPSHOT,
        a.dist.name(),
        a.interval_secs,
        a.traffic * 100.0,
        a.flaky * 100.0,
        a.hop_ms,
        a.retry_for
    );
    println!(
        "job: target {}%, min amount {:.0} sat, feeratio {:.2}, maxfeeppm {}, parallel {}; a fresh liquidity model",
        a.plan.target_percent,
        sat(a.plan.min_amount_msat),
        f64::from(a.plan.feeratio_millionths) / 1e6,
        a.plan.maxfeeppm,
        a.parallel
    );
    println!(
        "(ok/fail: moves completed/failed; f/sent: failed moves that sent an HTLC (the others: no route \
         within the cap); s/out: moves probes found could not go, nothing paid sent; \
         q/skip: pairs quoted before any move and skipped, no set within the fee cap (not moves); \
         f/earn: fee over what one forward of the moved amounts out through their incoming channels \
         earns; att: payment attempts, in all and per completed move; HTLCs: every sendpay, parts, \
         replacements and probes; probes: of those, sent to size moves; \
         off tgt: our channels off target before->after; deficit: what the sinks lack, thousand sat, \
         before->after; closed: deficit closed over the most the planner could move at the start; \
         budget: share of the per-run budget spent; oracle job: the informed job, its q/skip the pairs \
         it found no set for)"
    );
    // Per budget and kind of job, every seed's run.
    let mut pooled: Vec<(Option<u64>, Kind, Vec<JobRun>)> = Vec::new();
    let kinds: Vec<Kind> = a
        .strategies
        .iter()
        .map(|&strategy| Kind::Ours {
            strategy,
            sized: true,
        })
        .chain(a.halving.iter().map(|&strategy| Kind::Ours {
            strategy,
            sized: false,
        }))
        .chain(a.oracle.then_some(Kind::Oracle))
        .collect();
    let mut over_budget = 0;
    for &seed in &a.seeds {
        let t = Instant::now();
        let world = match World::load(WorldConfig {
            seed,
            dist: a.dist,
            traffic: a.traffic,
            flaky: a.flaky,
            us: a.us.clone(),
            lazy_disable: false,
            fee_churn: 0.0,
        }) {
            Ok(w) => Arc::new(w),
            Err(e) => {
                println!("SKIP seed {seed}: {e}");
                continue;
            }
        };
        println!(
            "\n== seed {seed}: us {} ({} channels: {} outbound-heavy, {} inbound-heavy); loaded in {:.1} s",
            world.us_id,
            world.our_channel_count,
            world.outbound.len(),
            world.inbound.len(),
            t.elapsed().as_secs_f64()
        );
        for &budget in &a.budgets {
            println!("  -- {}", budget_name(budget));
            header();
            let mut runs: Vec<(Kind, JobRun)> = Vec::new();
            for &k in &kinds {
                let j = match k {
                    Kind::Ours { strategy, sized } => run_job(&world, strategy, sized, budget, &a),
                    Kind::Oracle => oracle::oracle_job(&world, budget, a.parts, &a),
                };
                print_row(&k.name(), &j);
                runs.push((k, j));
            }
            print_against_oracle(&runs, false);
            print_sized_vs_halving(&runs, false);
            for (k, j) in runs {
                if budget.is_some_and(|b| j.fee_msat > b) {
                    over_budget += 1;
                }
                match pooled.iter_mut().find(|(b, s, _)| *b == budget && *s == k) {
                    Some((_, _, v)) => v.push(j),
                    None => pooled.push((budget, k, vec![j])),
                }
            }
        }
    }
    if a.seeds.len() > 1 {
        println!("\n== all seeds pooled");
        for &budget in &a.budgets {
            println!("  -- {}", budget_name(budget));
            header();
            let mut totals: Vec<(Kind, JobRun)> = Vec::new();
            for (_, k, runs) in pooled.iter().filter(|(b, _, _)| *b == budget) {
                let mut t = JobRun {
                    budget_msat: budget.map(|b| b * runs.len() as u64),
                    ended: format!("{} jobs", runs.len()),
                    ..JobRun::default()
                };
                for j in runs {
                    t.completed += j.completed;
                    t.failed += j.failed;
                    t.failed_sent += j.failed_sent;
                    t.moved_msat += j.moved_msat;
                    t.fee_msat += j.fee_msat;
                    t.earns_msat += j.earns_msat;
                    t.attempts += j.attempts;
                    t.htlcs += j.htlcs;
                    t.probes += j.probes;
                    t.sized_out += j.sized_out;
                    t.skipped += j.skipped;
                    t.sim_ms += j.sim_ms;
                    t.wall += j.wall;
                    for (into, from) in [(&mut t.before, &j.before), (&mut t.after, &j.after)] {
                        into.off_target += from.off_target;
                        into.deficit_msat += from.deficit_msat;
                        into.movable_msat += from.movable_msat;
                    }
                }
                print_row(&k.name(), &t);
                totals.push((*k, t));
            }
            print_against_oracle(&totals, true);
            print_sized_vs_halving(&totals, true);
        }
    }
    println!(
        "\nchecks: fee within the per-run budget on every job: {}; nothing left in flight: checked after every job",
        if over_budget == 0 {
            "MET".to_string()
        } else {
            format!("MISSED on {over_budget} job(s)")
        }
    );
    println!(
        "peak memory (VmHWM) {:.0} MiB",
        mainnet::proc_status_kib("VmHWM") as f64 / 1024.0
    );
}

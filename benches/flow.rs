//! `make bench-flow`: the multi-part solver (`core::flow`) on the 2026 mainnet graph: its time,
//! and how its plans would fare against the true balances of the simulation's world.
//!
//! The world is `tests/support/sim/`'s (hidden balances drawn bimodal, "us" a seeded routing
//! node with half its channels outbound-heavy and half inbound-heavy, 2% of the channels
//! redrawn and the flaky nodes drawn anew before each task). For each seed and amount,
//! `--tasks` circular tasks from an outbound-heavy channel of ours to an inbound-heavy one,
//! fee cap `max(5000 msat, 1000 ppm)`, each planned four ways: the solver and the single best
//! route (the search the rebalance runs today: `find_path_with` on the model's view within
//! the cap), each with the view of a fresh model (prior only) and of a model that learned from
//! the solver's earlier plans of the run (what each would have taught: a failure at the first
//! hop that cannot carry, forwards before it). Nothing is paid: the world moves only by its
//! traffic.
//!
//! Printed per amount:
//! - time: the solver's p50 / p99 / max per task (each the median of `--passes` runs), and the
//!   single search's, with each view; the parts it chose;
//! - one round: the share of tasks whose plan gets through at once under the true balances
//!   (every hop of every part carries what all parts put on it, every node online), among the
//!   tasks the oracle can do at all (its cheapest set within the cap, `core::flow::cheapest_set`
//!   on the true balances, offline nodes excluded), and how many it can do in one route;
//! - the oracle: its time, and where it cannot do the whole amount, the most that moves within
//!   the cap (`core::flow::max_flow_within_cap`);
//! - fee: the plan's fee over the oracle's cheapest set's, p50 / p90, over the tasks where both
//!   exist, and over those where the plan got through.
//!
//! Usage: `cargo bench --bench flow -- [--seeds 11,12,13,14,15,16] [--amounts 1000000,2000000,5000000]
//! [--tasks 60] [--passes 3] [--max-parts 4] [--min-part-share 0.1] [--min-part 100000000]
//! [--chunks 2,4] [--segments 8] [--ref-parts 2] [--combine 4] [--grid 16] [--allocations 3]
//! [--alloc-depth 10] [--penalty-base 0] [--penalty-ppm 0] [--prior uniform|bimodal]
//! [--no-learned]`. Tune on seeds 1-6; the report is seeds 11-16.

#[path = "../tests/support/flowsim.rs"]
mod flowsim;
#[path = "../tests/support/mainnet.rs"]
mod mainnet;
#[path = "../tests/support/sim/mod.rs"]
mod sim;

use cln_rebalance::core::amount::fee_cap_msat;
use cln_rebalance::core::flow::{
    Flow, FlowConfig, FlowRequest, FlowScratch, cheapest_set, default_config, max_flow_within_cap,
    solve_with,
};
use cln_rebalance::core::liquidity::{Beliefs, Liquidity, ModelConfig};
use cln_rebalance::core::pathfind::{Exclusions, Query, Scratch, find_path_with};
use cln_standin::prng::SplitMix64;
use flowsim::Truth;
use sim::{Dist, World, WorldConfig, parse_list, parse_one};
use std::time::{Duration, Instant};

const REPORT_SEEDS: [u64; 6] = [11, 12, 13, 14, 15, 16];
const MAXFEEPPM: u64 = 1000;
const EXEMPTFEE_MSAT: u64 = 5000;
/// Seconds between tasks on the model's clock (learned bounds fade with the half-life).
const INTERVAL_SECS: u64 = 60;
const START_SECS: u64 = 1_770_000_000;

struct Args {
    seeds: Vec<u64>,
    amounts_sat: Vec<u64>,
    tasks: usize,
    passes: usize,
    max_parts: usize,
    min_part_share: f64,
    min_part_msat: u64,
    config: FlowConfig,
    learned: bool,
    model: ModelConfig,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut a = Args {
            seeds: REPORT_SEEDS.to_vec(),
            amounts_sat: vec![1_000_000, 2_000_000, 5_000_000],
            tasks: 60,
            passes: 3,
            max_parts: cln_rebalance::config::DEFAULT_MAX_PARTS,
            min_part_share: 0.1,
            min_part_msat: 100_000_000,
            config: default_config(),
            learned: true,
            model: ModelConfig::default(),
        };
        let mut it = std::env::args().skip(1).filter(|x| x != "--bench");
        while let Some(flag) = it.next() {
            let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--seeds" => a.seeds = parse_list(&val()?)?,
                "--amounts" => a.amounts_sat = parse_list(&val()?)?,
                "--tasks" => a.tasks = parse_one(&val()?)?,
                "--passes" => a.passes = parse_one::<usize>(&val()?)?.max(1),
                "--max-parts" => a.max_parts = parse_one(&val()?)?,
                "--min-part-share" => a.min_part_share = parse_one(&val()?)?,
                "--min-part" => a.min_part_msat = parse_one(&val()?)?,
                "--chunks" => a.config.chunks = parse_list(&val()?)?,
                "--segments" => a.config.segments = parse_one(&val()?)?,
                "--ref-parts" => a.config.ref_parts = parse_one(&val()?)?,
                "--combine" => a.config.combine_paths = parse_one(&val()?)?,
                "--grid" => a.config.grid = parse_one(&val()?)?,
                "--allocations" => a.config.allocations = parse_one(&val()?)?,
                "--alloc-depth" => a.config.alloc_depth = parse_one(&val()?)?,
                "--penalty-base" => a.config.part_penalty_base_msat = parse_one(&val()?)?,
                "--penalty-ppm" => a.config.part_penalty_ppm = parse_one(&val()?)?,
                "--prior" => a.model.prior = val()?.parse()?,
                "--no-learned" => a.learned = false,
                "-h" | "--help" => return Err("see the //! doc of benches/flow.rs".into()),
                other => return Err(format!("unknown flag {other:?}")),
            }
        }
        Ok(a)
    }

    /// The least part for `amount_msat`: a share of it, never below the floor.
    fn min_part(&self, amount_msat: u64) -> u64 {
        ((amount_msat as f64 * self.min_part_share) as u64).max(self.min_part_msat)
    }
}

/// What one plan (the solver's or the single route) did on one task.
#[derive(Default, Clone, Copy)]
struct Plan {
    found: bool,
    through: bool,
    fee_msat: u64,
    parts: usize,
}

/// One task's outcome, per view: [fresh, learned] x [solver, single].
#[derive(Default, Clone)]
struct Outcome {
    oracle_fee_msat: Option<u64>,
    oracle_single: bool,
    plans: [[Plan; 2]; 2],
    times: [[Duration; 2]; 2],
    /// Per view: the solver's plan is not the single route.
    differs: [bool; 2],
    /// The oracle's time for its cheapest set.
    oracle_time: Duration,
    /// When the oracle cannot do the whole amount: the most it can move within the cap.
    most_msat: Option<u64>,
    /// Per view: what the solver minimised, for its plan and for the single route (fee plus
    /// the cost of every channel at the whole amount's rate, plus the part penalty).
    objective: [Option<(u64, u64)>; 2],
}

fn main() {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if !sim::bench_header("flow bench: multi-part rebalancing on mainnet") {
        return;
    }
    println!(
        "seeds {:?}, {} tasks per amount and seed, fee cap max({EXEMPTFEE_MSAT} msat, {MAXFEEPPM} \
         ppm), max_parts {}, min part max({} x amount, {} sat); knobs {:?}",
        args.seeds,
        args.tasks,
        args.max_parts,
        args.min_part_share,
        args.min_part_msat / 1000,
        args.config
    );
    let mut all: Vec<(u64, Outcome)> = Vec::new();
    let mut scratch_bytes = 0;
    for &seed in &args.seeds {
        let started = Instant::now();
        let world = match World::load(WorldConfig {
            seed,
            dist: Dist::Bimodal,
            traffic: 0.02,
            flaky: 0.02,
            us: None,
            lazy_disable: false,
            fee_churn: 0.0,
        }) {
            Ok(w) => w,
            Err(e) => {
                println!("seed {seed}: SKIP {e}");
                continue;
            }
        };
        println!(
            "seed {seed}: us {}.., {} channels, world loaded in {:.1}s",
            &world.us_id[..16],
            world.our_channel_count,
            started.elapsed().as_secs_f64()
        );
        for &sat in &args.amounts_sat {
            match run(&args, &world, seed, sat * 1000) {
                Ok((outcomes, bytes)) => {
                    scratch_bytes = scratch_bytes.max(bytes);
                    all.extend(outcomes.into_iter().map(|o| (sat, o)));
                }
                Err(e) => println!("seed {seed} {sat} sat: SKIP {e}"),
            }
        }
    }
    report(&args, &all);
    println!(
        "memory: FlowScratch holds {:.2} MiB beyond the route search's scratch (largest seen)",
        scratch_bytes as f64 / (1 << 20) as f64
    );
}

/// Every task of one seed and amount.
fn run(
    args: &Args,
    world: &World,
    seed: u64,
    amount_msat: u64,
) -> Result<(Vec<Outcome>, usize), String> {
    let tasks = world.tasks(amount_msat, MAXFEEPPM, EXEMPTFEE_MSAT, args.tasks)?;
    let g = &world.graph;
    let model_config = args.model;
    let mut net = world.net.clone();
    let mut rng = SplitMix64::new(seed ^ amount_msat ^ 0xF10E);
    let mut now = START_SECS;
    let mut fresh = Beliefs::default();
    fresh.rebuild(g, &Liquidity::new(), now, model_config);
    let mut learned_model = Liquidity::new();
    let mut learned = Beliefs::default();
    let mut scratch = FlowScratch::default();
    let mut oracle_scratch = FlowScratch::default();
    let mut search = Scratch::default();
    let mut us_only = Exclusions::default();
    us_only.nodes.insert(world.us_idx);
    let mut out = Vec::with_capacity(tasks.len());
    for task in &tasks {
        world.between(&mut net, &mut rng);
        now += INTERVAL_SECS;
        let truth = Truth::of(world, &net);
        let min_part = args.min_part(amount_msat);
        let request = |ex| {
            flowsim::request(
                world,
                &net,
                task,
                ex,
                args.max_parts,
                min_part,
                MAXFEEPPM,
                EXEMPTFEE_MSAT,
            )
        };
        let Some(req) = request(&us_only) else {
            continue;
        };
        let mut o = Outcome::default();
        // The oracle: the cheapest set on the true balances, and whether one route would do.
        let oracle_ex = truth.exclusions(world.us_idx);
        let oracle_req = request(&oracle_ex).expect("same task");
        let capacity = |e: u32| truth.forwardable[e as usize];
        let t = Instant::now();
        o.oracle_fee_msat = cheapest_set(g, &oracle_req, capacity, &mut oracle_scratch)
            .ok()
            .map(|f| f.fee_msat);
        o.oracle_time = t.elapsed();
        if o.oracle_fee_msat.is_none() {
            let cap = |a: u64| fee_cap_msat(a, MAXFEEPPM, EXEMPTFEE_MSAT);
            let most = max_flow_within_cap(
                g,
                &FlowRequest {
                    min_part_msat: 0,
                    ..oracle_req.clone()
                },
                capacity,
                cap,
                amount_msat / 100,
                &mut oracle_scratch,
            );
            o.most_msat = Some(most.map_or(0, |f| f.parts.iter().map(|p| p.amount_msat).sum()));
        }
        let one = FlowRequest {
            max_parts: 1,
            ..oracle_req.clone()
        };
        o.oracle_single = cheapest_set(g, &one, capacity, &mut oracle_scratch).is_ok();
        learned.rebuild(g, &learned_model, now, model_config);
        for (v, view) in [&fresh, &learned].into_iter().enumerate() {
            if v == 1 && !args.learned {
                break;
            }
            // The solver, timed.
            let mut runs = Vec::with_capacity(args.passes);
            let mut flow = None;
            for _ in 0..args.passes {
                let t = Instant::now();
                let f = solve_with(g, &req, view, &args.config, &mut scratch);
                runs.push(t.elapsed());
                flow = Some(f);
            }
            o.times[v][0] = median(runs);
            let flow = flow.expect("a pass").ok();
            let solver_edges: Option<Vec<Vec<u32>>> = flow
                .as_ref()
                .map(|f| f.parts.iter().map(|p| p.edges.clone()).collect());
            o.plans[v][0] = judge(g, &req, &truth, flow.as_ref());
            if v == 1
                && let Some(f) = &flow
            {
                flowsim::teach(
                    &mut learned_model,
                    g,
                    &req,
                    &truth,
                    f,
                    now,
                    model_config.half_life_secs,
                );
            }
            // The single route, as the rebalance searches it today, timed.
            let query = Query {
                from: req.from,
                to: req.to,
                deliver_msat: amount_msat + req.last_hop.fee_msat(amount_msat).expect("fee"),
                deliver_delay: req.final_delay + req.last_hop.delay,
                max_edges: req.max_edges,
                max_delay: req.max_delay,
                max_amount_msat: amount_msat + req.max_fee_msat,
            };
            let mut runs = Vec::with_capacity(args.passes);
            let mut path = None;
            for _ in 0..args.passes {
                let t = Instant::now();
                path = find_path_with(g, &query, req.exclude, view, &mut search);
                runs.push(t.elapsed());
            }
            o.times[v][1] = median(runs);
            let single = path.map(|p| {
                let fee_msat = p.source_amount_msat - amount_msat;
                Flow {
                    parts: vec![cln_rebalance::core::flow::Part {
                        edges: p.edges,
                        amount_msat,
                        fee_msat,
                        source_amount_msat: p.source_amount_msat,
                        source_delay: p.source_delay,
                        probability: 0.0,
                    }],
                    fee_msat,
                    risk_msat: p.extra_msat,
                    probability: 0.0,
                }
            });
            let single = single.filter(|f| f.parts[0].source_amount_msat <= req.max_source_msat);
            o.differs[v] = solver_edges != single.as_ref().map(|f| vec![f.parts[0].edges.clone()]);
            if let (Some(f), Some(s)) = (&flow, &single) {
                let penalty = (args.config.part_penalty_base_msat
                    + amount_msat / 1_000_000 * args.config.part_penalty_ppm)
                    * (f.parts.len() as u64 - 1);
                let single_cost = s.fee_msat + whole_rate_risk(g, &req, view, &s.parts[0].edges);
                o.objective[v] = Some((f.cost_msat() + penalty, single_cost));
            }
            o.plans[v][1] = judge(g, &req, &truth, single.as_ref());
        }
        out.push(o);
    }
    Ok((out, scratch.heap_bytes()))
}

/// The single route's cost beyond fees as the solver prices it: every hop at the whole
/// amount's rate.
fn whole_rate_risk(
    g: &cln_rebalance::core::graph::Graph,
    req: &FlowRequest,
    view: &Beliefs,
    edges: &[u32],
) -> u64 {
    use cln_rebalance::core::flow::FlowCost;
    let mut carried = req.amount_msat + req.last_hop.fee_msat(req.amount_msat).expect("fee");
    let mut risk = 0;
    for &e in edges.iter().rev() {
        let edge = g.edge(e);
        risk += view
            .cost_msat(g, e, edge.source, carried, req.amount_msat)
            .unwrap_or(0);
        carried += edge.policy.fee_msat(carried).expect("fee");
    }
    risk
}

fn judge(
    g: &cln_rebalance::core::graph::Graph,
    req: &FlowRequest,
    truth: &Truth,
    flow: Option<&Flow>,
) -> Plan {
    match flow {
        None => Plan::default(),
        Some(f) => Plan {
            found: true,
            through: truth.one_round(g, req, f),
            fee_msat: f.fee_msat,
            parts: f.parts.len(),
        },
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pct(n: usize, of: usize) -> f64 {
    100.0 * n as f64 / of.max(1) as f64
}

/// The tables of the doc comment.
fn report(args: &Args, all: &[(u64, Outcome)]) {
    let views: &[(usize, &str)] = if args.learned {
        &[(0, "fresh"), (1, "learned")]
    } else {
        &[(0, "fresh")]
    };
    println!(
        "\ntime per task, ms: p50 / p99 / max (median of {} runs each)",
        args.passes
    );
    println!(
        "  {:>9} {:>6} {:>8} {:>26} {:>26}   parts 1/2/3/4+ (%)",
        "amount", "tasks", "view", "solver", "single search"
    );
    for &sat in &args.amounts_sat {
        let os: Vec<&Outcome> = all
            .iter()
            .filter(|(s, _)| *s == sat)
            .map(|(_, o)| o)
            .collect();
        if os.is_empty() {
            continue;
        }
        for &(v, name) in views {
            let q = |k: usize| {
                let mut t: Vec<Duration> = os.iter().map(|o| o.times[v][k]).collect();
                t.sort();
                format!(
                    "{:>7.2} / {:>6.2} / {:>6.2}",
                    ms(mainnet::quantile(&t, 0.5)),
                    ms(mainnet::quantile(&t, 0.99)),
                    ms(*t.last().expect("tasks"))
                )
            };
            let found: Vec<usize> = os
                .iter()
                .filter(|o| o.plans[v][0].found)
                .map(|o| o.plans[v][0].parts)
                .collect();
            let share = |n: usize| pct(found.iter().filter(|&&p| p == n).count(), found.len());
            println!(
                "  {:>5}k sat {:>6} {:>8} {:>26} {:>26}   {:.0}/{:.0}/{:.0}/{:.0}",
                sat / 1000,
                os.len(),
                name,
                q(0),
                q(1),
                share(1),
                share(2),
                share(3),
                pct(found.iter().filter(|&&p| p >= 4).count(), found.len()),
            );
        }
    }
    println!(
        "\nwhere the solver's plan is not the single route: tasks, and how many got through with \
         the solver only / the single route only"
    );
    for &sat in &args.amounts_sat {
        let os: Vec<&Outcome> = all
            .iter()
            .filter(|(s, _)| *s == sat)
            .map(|(_, o)| o)
            .collect();
        for &(v, name) in views {
            let differ: Vec<&&Outcome> = os.iter().filter(|o| o.differs[v]).collect();
            println!(
                "  {:>5}k sat {:>8} {:>5} differ: {:>4} solver only, {:>4} single only",
                sat / 1000,
                name,
                differ.len(),
                differ
                    .iter()
                    .filter(|o| o.plans[v][0].through && !o.plans[v][1].through)
                    .count(),
                differ
                    .iter()
                    .filter(|o| !o.plans[v][0].through && o.plans[v][1].through)
                    .count(),
            );
        }
    }
    println!(
        "\nthe solver's objective (fee + risk + part penalty) against the single route's: \
         mean saving, share of tasks it saves on"
    );
    for &sat in &args.amounts_sat {
        let os: Vec<&Outcome> = all
            .iter()
            .filter(|(s, _)| *s == sat)
            .map(|(_, o)| o)
            .collect();
        for &(v, name) in views {
            let pairs: Vec<(u64, u64)> = os.iter().filter_map(|o| o.objective[v]).collect();
            let saved: f64 = pairs
                .iter()
                .map(|&(f, s)| (s as f64 - f as f64) / s.max(1) as f64)
                .sum::<f64>()
                / pairs.len().max(1) as f64;
            println!(
                "  {:>5}k sat {:>8} {:>6.2}% saved, on {:>5.1}% of {} tasks",
                sat / 1000,
                name,
                100.0 * saved,
                pct(pairs.iter().filter(|&&(f, s)| f < s).count(), pairs.len()),
                pairs.len()
            );
        }
    }
    println!("\none round under the true balances, % of the tasks the oracle can do");
    println!(
        "  {:>9} {:>6} {:>8} {:>12} {:>8} {:>8} {:>8} {:>8}",
        "amount", "tasks", "oracle", "oracle 1 rt", "view", "solver", "single", "found"
    );
    for &sat in &args.amounts_sat {
        let os: Vec<&Outcome> = all
            .iter()
            .filter(|(s, _)| *s == sat)
            .map(|(_, o)| o)
            .collect();
        if os.is_empty() {
            continue;
        }
        let doable: Vec<&&Outcome> = os.iter().filter(|o| o.oracle_fee_msat.is_some()).collect();
        for &(v, name) in views {
            let through = |k: usize| doable.iter().filter(|o| o.plans[v][k].through).count();
            println!(
                "  {:>5}k sat {:>6} {:>7.1}% {:>11.1}% {:>8} {:>7.1}% {:>7.1}% {:>4.0}/{:.0}%",
                sat / 1000,
                os.len(),
                pct(doable.len(), os.len()),
                pct(doable.iter().filter(|o| o.oracle_single).count(), os.len()),
                name,
                pct(through(0), doable.len()),
                pct(through(1), doable.len()),
                pct(
                    doable.iter().filter(|o| o.plans[v][0].found).count(),
                    doable.len()
                ),
                pct(
                    doable.iter().filter(|o| o.plans[v][1].found).count(),
                    doable.len()
                ),
            );
        }
    }
    println!(
        "\nthe oracle: time of its cheapest set p50 / p99; where it cannot do the whole amount, \
         the most that moves within the cap (max_flow_within_cap, no least part), share of the \
         amount p10 / p50 / p90"
    );
    for &sat in &args.amounts_sat {
        let os: Vec<&Outcome> = all
            .iter()
            .filter(|(s, _)| *s == sat)
            .map(|(_, o)| o)
            .collect();
        if os.is_empty() {
            continue;
        }
        let mut t: Vec<Duration> = os.iter().map(|o| o.oracle_time).collect();
        t.sort();
        let mut shares: Vec<f64> = os
            .iter()
            .filter_map(|o| o.most_msat)
            .map(|m| m as f64 / (sat * 1000) as f64)
            .collect();
        shares.sort_by(f64::total_cmp);
        let q = |x: f64| {
            if shares.is_empty() {
                "-".to_string()
            } else {
                format!("{:.0}%", 100.0 * mainnet::quantile(&shares, x))
            }
        };
        println!(
            "  {:>5}k sat  {:>6.1} / {:>6.1} ms; {} tasks: {} / {} / {}",
            sat / 1000,
            ms(mainnet::quantile(&t, 0.5)),
            ms(mainnet::quantile(&t, 0.99)),
            shares.len(),
            q(0.1),
            q(0.5),
            q(0.9)
        );
    }
    println!(
        "\nfee over the oracle's cheapest set: p50 / p90 (all plans found; plans that got through)"
    );
    println!(
        "  {:>9} {:>8} {:>24} {:>24}",
        "amount", "view", "solver", "single"
    );
    for &sat in &args.amounts_sat {
        let os: Vec<&Outcome> = all
            .iter()
            .filter(|(s, _)| *s == sat)
            .map(|(_, o)| o)
            .collect();
        if os.is_empty() {
            continue;
        }
        for &(v, name) in views {
            let ratios = |k: usize, through_only: bool| {
                let mut r: Vec<f64> = os
                    .iter()
                    .filter_map(|o| {
                        let p = o.plans[v][k];
                        let oracle = o.oracle_fee_msat?;
                        (p.found && (!through_only || p.through))
                            .then(|| p.fee_msat as f64 / oracle.max(1) as f64)
                    })
                    .collect();
                r.sort_by(f64::total_cmp);
                if r.is_empty() {
                    return "-".to_string();
                }
                format!(
                    "{:.2}x / {:.2}x",
                    mainnet::quantile(&r, 0.5),
                    mainnet::quantile(&r, 0.9)
                )
            };
            println!(
                "  {:>5}k sat {:>8} {:>11} ;{:>11} {:>11} ;{:>11}",
                sat / 1000,
                name,
                ratios(0, false),
                ratios(0, true),
                ratios(1, false),
                ratios(1, true),
            );
        }
    }
}

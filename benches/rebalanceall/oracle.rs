//! The informed job: what a `rebalanceall` that knew the true balances could close of the
//! sinks' deficit under the same economics and budget, to judge ours against.
//!
//! It plans as the plugin's planner does (`plan_avoiding`: target, min amount, feeratio x our
//! fee out through the sink, `maxfeeppm`, lost profit if set), from the current balances, and
//! prices every planned move with the flow oracle's cheapest set of parts within its cap (the
//! planner's, within what the per-run budget leaves; the plugin's part limits, 20 hops, the
//! true capacities); when no set carries the whole amount within the cap, the most that does
//! within the cap of that amount (at least the min amount). Of those, the cheapest per sat
//! moved is paid (with a budget, that closes the most for it; the plugin's job starts the
//! largest first and halves what fails); a pair with no set is ruled out, and the sink is
//! paired with the next source when the job plans again, as the plugin's job does with a pair
//! whose route is too dear. Paying moves the balances along the parts (`World::pay_flow`), so
//! later moves see what earlier ones used. The world stands still meanwhile (no traffic, the
//! flaky nodes as they were at the start): an informed job needs no retries, so it takes no
//! time.

use super::{Args, JobRun, our_channels, standing};
use crate::common::SimNode;
use crate::sim::{Oracle, PartLimits, Task, World, delivered};
use cln_rebalance::core::amount::fee_msat;
use cln_rebalance::core::budget::{Budget, Spent};
use cln_rebalance::core::economics::{OurFee, fee_cap_msat};
use cln_rebalance::core::flow::Flow;
use cln_rebalance::core::plan::{OurChannel, Settings, plan_avoiding};
use std::collections::HashSet;
use std::time::Instant;

/// A guard: no job makes more moves than this.
const MAX_MOVES: u32 = 10_000;

fn our_fee(c: &OurChannel) -> OurFee {
    OurFee {
        fee_base_msat: c.fee_base_msat,
        fee_proportional_millionths: c.fee_proportional_millionths,
    }
}

/// The informed job on a fresh copy of `world` with `budget` (msat per run, `None`: none).
pub fn oracle_job(world: &World, budget: Option<u64>, limits: PartLimits, a: &Args) -> JobRun {
    let started = Instant::now();
    let node = SimNode::new(world.net.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let chans = rt.block_on(our_channels(&node));
    let mut out = JobRun {
        budget_msat: budget,
        before: standing(&chans, &a.plan),
        ..JobRun::default()
    };
    let budget = Budget {
        per_run_msat: budget,
        daily_msat: None,
    };
    let mut oracle = Oracle::default();
    let mut avoid = HashSet::new();
    let mut ended = "every channel is within target or no move is left".to_string();
    while out.completed < MAX_MOVES {
        let chans = rt.block_on(our_channels(&node));
        let spent = Spent {
            run_msat: out.fee_msat,
            last_24h_msat: 0,
            reserved_msat: 0,
        };
        let left = budget.remaining_msat(&spent).unwrap_or(u64::MAX);
        if left == 0 {
            ended = "fee budget spent".into();
            break;
        }
        let p = plan_avoiding(&chans, &Settings::default(), &a.plan, &avoid);
        if p.moves.is_empty() {
            break;
        }
        // Every planned move priced with its cheapest set; the cheapest per sat moved goes
        // first (with a budget, the most deficit closed for it).
        let mut best: Option<(u128, Task, crate::sim::CircleEnds, Flow, OurFee)> = None;
        let mut net = node.net.lock().unwrap();
        for m in &p.moves {
            let find = |scid| chans.iter().find(|c| c.short_channel_id == scid);
            let (Some(source), Some(sink)) = (find(m.outgoing), find(m.incoming)) else {
                continue;
            };
            let (source_fee, sink_fee) = (our_fee(source), our_fee(sink));
            // The planner's cap for a move of `x`, within what the budget leaves.
            let cap = |x: u64| {
                fee_cap_msat(
                    x,
                    sink_fee,
                    source_fee,
                    a.plan.lost_profit,
                    a.plan.feeratio_millionths,
                    a.plan.maxfeeppm,
                )
                .min(left)
            };
            let (Some(out_chan), Some(in_chan)) = (
                net.channel_by_scid(&m.outgoing.to_string()),
                net.channel_by_scid(&m.incoming.to_string()),
            ) else {
                continue;
            };
            let task = Task {
                out_chan,
                in_chan,
                out_scid: m.outgoing.to_string(),
                in_scid: m.incoming.to_string(),
                amount_msat: m.amount_msat,
            };
            match oracle.job_move(world, &net, &task, &cap, limits, a.plan.min_amount_msat) {
                Some((ends, flow)) => {
                    let ppm = u128::from(flow.fee_msat) * 1_000_000 / u128::from(delivered(&flow));
                    if best.as_ref().is_none_or(|b| ppm < b.0) {
                        best = Some((ppm, task, ends, flow, sink_fee));
                    }
                }
                None => {
                    out.skipped += 1;
                    avoid.insert((m.outgoing, m.incoming));
                }
            }
        }
        let Some((_, task, ends, flow, sink_fee)) = best else {
            continue; // every pair planned is ruled out: plan again without them
        };
        if let Err(e) = world.pay_flow(&mut net, &task, &ends, &flow) {
            println!("    oracle job: a set it found could not be paid: {e}");
            break;
        }
        let moved = delivered(&flow);
        out.completed += 1;
        out.moved_msat += moved;
        out.fee_msat += flow.fee_msat;
        let earns = fee_msat(
            moved,
            u32::try_from(sink_fee.fee_base_msat).unwrap_or(u32::MAX),
            sink_fee.fee_proportional_millionths,
        );
        out.earns_msat = out.earns_msat.saturating_add(earns.unwrap_or(u64::MAX));
        out.attempts += flow.parts.len() as u64;
        out.htlcs += flow.parts.len() as u64;
    }
    if budget
        .per_run_msat
        .is_some_and(|b| out.fee_msat.saturating_mul(100) >= b.saturating_mul(99))
    {
        ended = "fee budget spent (99% or more)".into();
    }
    out.after = standing(&rt.block_on(our_channels(&node)), &a.plan);
    out.wall = started.elapsed();
    out.ended = ended;
    out
}

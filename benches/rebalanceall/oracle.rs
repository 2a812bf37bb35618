//! The informed job: what a `rebalanceall` that knew the true balances could close of the
//! sinks' deficit under the same economics and budget, to judge ours against.
//!
//! It plans as the plugin's planner does (`plan_avoiding`: target, min amount, feeratio x our
//! fee out through the sink, `maxfeeppm`, lost profit if set; the per-run budget applied to
//! each move's cap), one move at a time from the current balances, largest first as the job
//! starts them. Each move is paid with the flow oracle's cheapest set of parts within its cap
//! (the plugin's part limits, 20 hops, the true capacities); when no set carries the whole
//! amount within the cap, the most that does within the cap of that amount (at least the min
//! amount); when not even that, the pair is avoided and the sink is paired with the next
//! source, as the job does with a pair whose route is too dear. Paying moves the balances
//! along the parts (`World::pay_flow`), so later moves see what earlier ones used. The world
//! stands still meanwhile (no traffic, the flaky nodes as they were at the start): an informed
//! job needs no retries, so it takes no time.

use super::{Args, JobRun, our_channels, standing};
use crate::common::SimNode;
use crate::sim::{Oracle, PartLimits, Task, World, delivered};
use cln_rebalance::core::amount::fee_msat;
use cln_rebalance::core::budget::{Budget, Spent};
use cln_rebalance::core::economics::{OurFee, fee_cap_msat};
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
    while out.completed + out.failed < MAX_MOVES {
        let chans = rt.block_on(our_channels(&node));
        let spent = Spent {
            run_msat: out.fee_msat,
            last_24h_msat: 0,
            reserved_msat: 0,
        };
        let mut p = plan_avoiding(&chans, &Settings::default(), &a.plan, &avoid);
        p.apply_budget(&budget, spent);
        let Some(m) = p.moves.first().cloned() else {
            if let Some((_, why)) = p.skipped.iter().find(|(_, w)| w.contains("budget")) {
                ended = why.clone();
            }
            break;
        };
        let find = |scid| chans.iter().find(|c| c.short_channel_id == scid);
        let (Some(source), Some(sink)) = (find(m.outgoing), find(m.incoming)) else {
            break;
        };
        let (source_fee, sink_fee) = (our_fee(source), our_fee(sink));
        let left = budget.remaining_msat(&spent).unwrap_or(u64::MAX);
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
        let mut net = node.net.lock().unwrap();
        let (Some(out_chan), Some(in_chan)) = (
            net.channel_by_scid(&m.outgoing.to_string()),
            net.channel_by_scid(&m.incoming.to_string()),
        ) else {
            break;
        };
        let task = Task {
            out_chan,
            in_chan,
            out_scid: m.outgoing.to_string(),
            in_scid: m.incoming.to_string(),
            amount_msat: m.amount_msat,
        };
        let paid = oracle
            .job_move(world, &net, &task, &cap, limits, a.plan.min_amount_msat)
            .and_then(|(ends, flow)| {
                world
                    .pay_flow(&mut net, &task, &ends, &flow)
                    .map_err(|e| println!("    oracle job: a set it found could not be paid: {e}"))
                    .ok()
                    .map(|()| flow)
            });
        match paid {
            Some(flow) => {
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
            }
            None => {
                out.failed += 1;
                avoid.insert((m.outgoing, m.incoming));
            }
        }
    }
    out.after = standing(&rt.block_on(our_channels(&node)), &a.plan);
    out.wall = started.elapsed();
    out.ended = ended;
    out
}

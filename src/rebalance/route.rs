//! Step 2 of an attempt: the best route not yet ruled out (by fee, or fee + risk from the
//! liquidity model), and the model's estimate that a route succeeds.

use super::session::{Session, attempts_json};
use crate::config::Routing;
use crate::core::amount::display_sat;
use crate::core::flow::{self, Flow, FlowRequest, FlowScratch, NoFlow};
use crate::core::graph::Graph;
use crate::core::liquidity::{Beliefs, ChanDir};
use crate::core::pathfind::FeeOnly;
use crate::core::route::{Hop, set_fee_msat};
use crate::error::{self, RpcFailure};
use crate::lightningd::Lightningd;
use crate::state::State;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// Most times one rebalance reads the graph again because a failure brought a changed policy
/// (each read is the whole of `listchannels`; a node may sign new updates as fast as it likes).
const POLICY_REREADS: u32 = 3;

/// Before the next plan: when a failure brought a changed policy (handed to gossipd), the
/// graph as gossipd has it now, so the plan prices the channel at its new fee instead of
/// leaving it out (`Circle::rebase`). The graph it replaced, for the caller to move what it
/// keeps by edge onto the new one; `None` when nothing changed. If the read fails, the plan
/// stays on the graph it had.
pub async fn reread_changed_policy<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
) -> Option<Arc<Graph>> {
    if !std::mem::take(&mut s.policy_changed) || s.rereads >= POLICY_REREADS {
        return None;
    }
    s.rereads += 1;
    st.graph_cache.mark_stale().await;
    match st.graph().await {
        Ok(graph) => {
            let old = s.graph.clone();
            s.rebase(graph);
            Some(old)
        }
        Err(e) => {
            log::warn!("reading the graph for a changed policy: {}", e.message);
            None
        }
    }
}

/// How many sets may fail (their probe or their payment) while the next plan is still the
/// cheaper one of `flow::cheap_first_config`; after that the model's risk is weighed in full.
/// On the tuning seeds at 1M sat, 1, 3 and 5 were tried: 3 had the lowest fee p90 at the same
/// first try (`benches/README.md`).
pub const CHEAP_PLANS: u32 = 3;

/// The solver's knobs for a plan that is not a cheap first one, once `failed` sets have
/// failed: the model's (`flow::default_config`), and from the [`CHEAP_PLANS`]th failure on
/// without the part penalty, as for replacements (`flow::replacement_config`). The penalty keeps
/// a plan to one route while one route is likely enough; once sets have failed, the ways tried
/// are learned short of the amount, and parts over several ways are likelier than the whole
/// amount over one more. With the penalty kept, the flow tried every untried way alone before
/// splitting. Without it, on the same tasks: no set of seeds lost a task; tuning seeds 423 of
/// 433 paid at 1M sat (420 before), report seeds the same 387 and 182 at 1M and 5M sat with
/// more first tries (96.1% against 95.6%, 87.9% against 85.0%), seeds never run before 397 of
/// 406 (394) and 317 of 348 (315), for 5-10% more HTLCs a success (`benches/README.md`).
/// When the time left holds no more than three tries ([`Session::urgent`]), the risk weighs
/// more (`flow::urgent_config`).
pub fn plan_config<N: Lightningd>(st: &State<N>, s: &Session, failed: u32) -> flow::FlowConfig {
    let config = if failed < CHEAP_PLANS {
        flow::default_config()
    } else {
        flow::replacement_config()
    };
    urgent_if(st, s, config)
}

/// `config`, weighing the risk more ([`flow::urgent_config`]) when the time left is
/// [`Session::urgent`].
fn urgent_if<N: Lightningd>(
    st: &State<N>,
    s: &Session,
    config: flow::FlowConfig,
) -> flow::FlowConfig {
    if s.urgent(st.now_ms()) {
        flow::urgent_config(&config)
    } else {
        config
    }
}

/// The best set of parts for `amount_msat` (the whole amount, or what a failed part left
/// missing) not yet ruled out, within `max_fee_msat` and `max_source_msat` sent in all: one
/// route when the request allows one part, or the circle is straight through one peer, or when
/// one route is the best plan; or why there is none.
pub fn next_set<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    amount_msat: u64,
    max_fee_msat: u64,
    max_source_msat: u64,
) -> Result<Vec<Vec<Hop>>, RpcFailure> {
    next_set_with(
        st,
        s,
        amount_msat,
        max_fee_msat,
        max_source_msat,
        &flow::default_config(),
    )
}

/// [`next_set`] with the solver's knobs given.
pub fn next_set_with<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    amount_msat: u64,
    max_fee_msat: u64,
    max_source_msat: u64,
    config: &flow::FlowConfig,
) -> Result<Vec<Vec<Hop>>, RpcFailure> {
    let limits = (max_fee_msat, max_source_msat);
    plan_set(st, s, amount_msat, limits, s.max_parts, config, true)
}

/// The set for what a failed part left missing while the others are held
/// ([`flow::replacement_config`]): as [`next_set_with`], but never a set the model rules out
/// (see [`solve_set`]). Replacements planned by fees alone went out part after part into
/// channels the model knew drained (on seeds 81-86 at 1M sat, 15-26 more HTLCs in a task);
/// without a replacement the held parts fail back and the whole amount is planned again,
/// where that fallback applies. Weighing the risk more once the time is [`Session::urgent`],
/// as plans do. In at most `max_parts` parts: what `maxparts` leaves beside the parts out.
pub fn replacement_set<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    missing_msat: u64,
    max_fee_msat: u64,
    max_source_msat: u64,
    max_parts: usize,
) -> Result<Vec<Vec<Hop>>, RpcFailure> {
    let config = urgent_if(st, s, flow::replacement_config());
    let limits = (max_fee_msat, max_source_msat);
    plan_set(st, s, missing_msat, limits, max_parts, &config, false)
}

/// For [`crate::rebalance::probe::before::cheaper`]: the best set for the whole amount as the
/// cheap first plans are made (`flow::cheap_first_config`), within `max_fee_msat`, among what
/// the model says can carry it; `None` when there is none, or the circle plans single routes.
pub fn cheaper_set<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    max_fee_msat: u64,
) -> Option<Vec<Vec<Hop>>> {
    if s.max_parts <= 1 || s.circle.same_peer() {
        return None;
    }
    let (amount, spendable) = (s.req.amount_msat, s.req.out.spendable_msat);
    let limits = (max_fee_msat, spendable);
    let config = flow::cheap_first_config();
    plan_set(st, s, amount, limits, s.max_parts, &config, false)
        .ok()
        .filter(|set| set_fee_msat(set) <= max_fee_msat)
}

/// [`next_set_with`] in at most `max_parts` parts; `by_fees`: whether a set the model rules
/// out may still be planned.
fn plan_set<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    amount_msat: u64,
    (max_fee_msat, max_source_msat): (u64, u64),
    max_parts: usize,
    config: &flow::FlowConfig,
    by_fees: bool,
) -> Result<Vec<Vec<Hop>>, RpcFailure> {
    if s.max_parts <= 1 || s.circle.same_peer() {
        return next_route(st, s).map(|hops| vec![hops]);
    }
    let started = Instant::now();
    refresh_view(st, s);
    let Some(req) = s.circle.flow_request(
        amount_msat,
        max_parts,
        st.config.min_part_msat.min(amount_msat),
        max_fee_msat,
        max_source_msat,
    ) else {
        return Err(no_route(s));
    };
    let scratch = s.flow.get_or_insert_with(FlowScratch::default);
    let flow = solve_set(
        &s.graph,
        &req,
        &s.beliefs,
        st.config.routing,
        config,
        by_fees,
        scratch,
    );
    st.model.record_search_time(started.elapsed());
    match flow {
        Ok(f) => s
            .circle
            .set_hops(&s.graph, &f)
            .ok_or_else(|| RpcFailure::new(error::PLUGIN_ERROR, "a part's route could not be built")),
        Err(NoFlow::OverFeeCap { fee_msat }) => Err(RpcFailure::new(
            error::PAY_ROUTE_TOO_EXPENSIVE,
            format!(
                "the cheapest set of parts{} costs {fee_msat}msat, more than the fee cap of {max_fee_msat}msat",
                if s.attempts.is_empty() { "" } else { " left" }
            ),
        )
        .with_data(json!({"cheapest_fee_msat": fee_msat, "fee_cap_msat": max_fee_msat,
                          "attempts": attempts_json(&s.attempts)}))),
        Err(NoFlow::NoPath) => Err(no_route(s)),
        Err(e @ (NoFlow::Insufficient | NoFlow::Invalid(_))) => Err(RpcFailure::new(
            error::PAY_ROUTE_NOT_FOUND,
            format!(
                "no set of at most {} parts carries {} from {} back to {}: {e}",
                max_parts,
                display_sat(amount_msat),
                s.req.out.peer_id,
                s.req.inc.peer_id
            ),
        )
        .with_data(json!({"attempts": attempts_json(&s.attempts)}))),
    }
}

/// The set `config` plans for `req`; where it finds none (no path, or paths that cannot carry
/// the amount in the parts allowed), the same searched harder ([`flow::thorough`]: channels
/// that each carry a fifth of the amount are missed at halves and quarters); and where even
/// that finds none with the model's beliefs and `by_fees`, the cheapest set by fees within the
/// channels' capacities. The model then believes nothing carries the amount, but beliefs fade
/// and may be out of date (a channel drained an hour ago may be full again), so, as
/// [`next_route`] falls back to the cheapest way not ruled out, the set is tried (probed first
/// with `rebalance-probe-first`) rather than refused. What this call's failures ruled out
/// stays out (the request's exclusions). On tuning seeds 7-10, 17 and 18 at 1M sat
/// (`benches/README.md`) successes went from 361 to 366 of 396 (seed 17 refused 5 rebalances
/// at once, a set there); at 1M sat on seeds 1 and 3-6 and the report seeds every rebalance
/// came out the same; at 5M sat on the report seeds it ran in a few, and success moved within
/// a run's noise. When no pass finds a set, the first one's reason is the answer.
fn solve_set(
    graph: &Graph,
    req: &FlowRequest,
    beliefs: &Beliefs,
    routing: Routing,
    config: &flow::FlowConfig,
    by_fees: bool,
    scratch: &mut FlowScratch,
) -> Result<Flow, NoFlow> {
    let solve = |config: &flow::FlowConfig, scratch: &mut FlowScratch| match routing {
        Routing::FeeOnly => flow::solve_with(graph, req, &FeeOnly, config, scratch),
        Routing::Probabilistic => flow::solve_with(graph, req, beliefs, config, scratch),
    };
    let none = |r: &Result<Flow, NoFlow>| matches!(r, Err(NoFlow::NoPath | NoFlow::Insufficient));
    let first = solve(config, scratch);
    if !none(&first) {
        return first;
    }
    let harder = flow::thorough(config);
    let second = solve(&harder, scratch);
    if !none(&second) {
        return second;
    }
    if routing == Routing::FeeOnly || !by_fees {
        return first;
    }
    match flow::solve_with(graph, req, &FeeOnly, &harder, scratch) {
        Ok(f) => Ok(f),
        // None at all: why the first search found none, as before the fallbacks.
        Err(_) => first,
    }
}

/// The search's view of the model, brought up to date: other rebalances learn meanwhile.
fn refresh_view<N: Lightningd>(st: &State<N>, s: &mut Session) {
    if st.config.routing == Routing::Probabilistic {
        let now = st.now_secs();
        let mut beliefs = std::mem::take(&mut s.beliefs);
        beliefs.rebuild(&s.graph, &s.model(st), now, st.config.model);
        s.beliefs = beliefs;
    }
}

/// No route at all, or none left after failures.
fn no_route(s: &Session) -> RpcFailure {
    let why = if s.attempts.is_empty() {
        format!(
            "no route from {} back to {} for {} (checked {} channel directions)",
            s.req.out.peer_id,
            s.req.inc.peer_id,
            display_sat(s.req.amount_msat),
            s.graph.edge_count()
        )
    } else {
        format!(
            "no more routes after {} failed attempt(s){}",
            s.attempts.len(),
            s.liquidity_hint()
        )
    };
    let failures = s.liquidity_failures.to_json();
    RpcFailure::new(error::PAY_ROUTE_NOT_FOUND, why)
        .with_data(json!({"attempts": attempts_json(&s.attempts), "liquidity_failures": failures}))
}

/// The best route not yet ruled out, or why there is none.
pub fn next_route<N: Lightningd>(st: &State<N>, s: &mut Session) -> Result<Vec<Hop>, RpcFailure> {
    // The search time counts the view's rebuild: it is part of every probabilistic search.
    let started = Instant::now();
    refresh_view(st, s);
    let route = match st.config.routing {
        Routing::FeeOnly => s
            .circle
            .next_route(&s.graph, &FeeOnly, None, &mut s.scratch),
        // The cap is a limit, the risk only a preference: the search keeps to the cap, so
        // the likeliest route it finds is one that may be paid. If there is none (every way
        // within the cap crosses a channel the model believes too small, and beliefs fade
        // and may be out of date), the cheapest way this call has not ruled out itself; if
        // even that is over the cap, the refusal names it, as it says.
        Routing::Probabilistic => s
            .circle
            .next_route(&s.graph, &s.beliefs, Some(s.cap_msat), &mut s.scratch)
            .or_else(|| {
                s.circle
                    .next_route(&s.graph, &FeeOnly, None, &mut s.scratch)
            }),
    };
    st.model.record_search_time(started.elapsed());
    route.ok_or_else(|| no_route(s))
}

/// The model's estimate that every part of `set` gets through at once: each channel direction
/// (between our two hops) carrying what all the parts put on it together, and the node before
/// it forwarding (parts sharing a channel are not independent: priced part by part, two parts
/// over a channel that holds one look as likely as one).
pub fn set_probability<N: Lightningd>(st: &State<N>, s: &Session, set: &[Vec<Hop>]) -> f64 {
    let now = st.now_secs();
    let m = s.model(st);
    let mut used: std::collections::HashMap<(ChanDir, &str), u64> = Default::default();
    for hops in set {
        let n = hops.len();
        for (i, h) in hops.iter().enumerate().take(n.saturating_sub(1)).skip(1) {
            let key = (
                ChanDir::new(h.short_channel_id, h.direction),
                hops[i - 1].node_id.as_str(),
            );
            let u = used.entry(key).or_default();
            *u = u.saturating_add(h.amount_msat);
        }
    }
    let mut p = 1.0;
    for ((cd, before), amount) in used {
        let Some(e) = s.graph.edge_by_scid(cd.short_channel_id, cd.direction) else {
            continue;
        };
        let cap = s.graph.edge_capacity_msat(e);
        p *= m.probability(cd, amount, cap, now, &st.config.model);
        p *= m.node_factor(before, now, st.config.model.half_life_secs);
    }
    p
}

/// The model's estimate that `hops` succeeds now (our own two hops are certain).
pub fn route_probability<N: Lightningd>(st: &State<N>, s: &Session, hops: &[Hop]) -> f64 {
    let now = st.now_secs();
    let m = s.model(st);
    let n = hops.len();
    let mut p = 1.0;
    for (i, h) in hops.iter().enumerate().take(n.saturating_sub(1)).skip(1) {
        let Some(e) = s.graph.edge_by_scid(h.short_channel_id, h.direction) else {
            continue;
        };
        let cap = s.graph.edge_capacity_msat(e);
        p *= m.probability(
            ChanDir::new(h.short_channel_id, h.direction),
            h.amount_msat,
            cap,
            now,
            &st.config.model,
        );
        p *= m.node_factor(&hops[i - 1].node_id, now, st.config.model.half_life_secs);
    }
    p
}

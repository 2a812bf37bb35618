//! The solver's entry points: candidates, flow, parts at each risk weight until a set keeps
//! every limit (see the module doc of `flow`).

use super::config::{FlowConfig, MAX_RISK_WEIGHT, default_config};
use super::cost::FlowCost;
use super::types::{Flow, FlowRequest, MAX_PARTS, NoFlow};
use super::{assemble, candidates, mcf, price};
use crate::core::graph::Graph;
use crate::core::pathfind::Scratch;

/// Memory kept between solves: the route search's scratch and the per-edge and per-node
/// indices of the subgraph. Its size follows the graph (about 4 bytes per edge and per node
/// beyond the search's own), never the number of solves.
#[derive(Default)]
pub struct FlowScratch {
    search: Scratch,
    sub: candidates::Subgraph,
    mcf: mcf::Mcf,
    assemble: price::Buffers,
}

impl FlowScratch {
    /// Bytes this scratch holds beyond the route search's (for the benchmark's memory report).
    pub fn heap_bytes(&self) -> usize {
        self.sub.heap_bytes() + self.mcf.heap_bytes() + self.assemble.heap_bytes()
    }
}

/// The set of at most `max_parts` parts that delivers `amount_msat` at the least fee + cost
/// within the fee cap (see the module doc), with the default knobs.
pub fn solve<C: FlowCost>(
    graph: &Graph,
    req: &FlowRequest,
    cost: &C,
    scratch: &mut FlowScratch,
) -> Result<Flow, NoFlow> {
    solve_with(graph, req, cost, &default_config(), scratch)
}

/// [`solve`] with the given knobs.
pub fn solve_with<C: FlowCost>(
    graph: &Graph,
    req: &FlowRequest,
    cost: &C,
    config: &FlowConfig,
    scratch: &mut FlowScratch,
) -> Result<Flow, NoFlow> {
    let req = &FlowRequest {
        max_parts: req.max_parts.min(MAX_PARTS),
        ..req.clone()
    };
    check_request(graph, req)?;
    if req.from == req.to {
        return assemble::direct(req);
    }
    if let Some(flow) = leashed(graph, req, cost, config, scratch) {
        return Ok(flow);
    }
    let mut why = NoFlow::NoPath;
    for &alpha in &config.risk_weights {
        let alpha = risk_weight(alpha);
        match solve_at(graph, req, cost, config, alpha, scratch) {
            Ok(flow) => return Ok(flow),
            // Only sets over the cap are worth weighing the risk less for: the weight changes
            // which paths are preferred, never which are refused. And a route within the cap
            // the risk-weighed search missed (it keeps one label a node: the likelier one may
            // be over the cap where a cheaper one is not), as `Plan` falls back to fees only.
            Err(Fail::Sets(e @ NoFlow::OverFeeCap { .. })) => why = more_telling(why, e),
            Err(Fail::NoPathWithinCap(NoFlow::OverFeeCap { fee_msat }))
                if fee_msat <= req.max_fee_msat =>
            {
                why = more_telling(why, NoFlow::Insufficient)
            }
            Err(Fail::Sets(e) | Fail::NoPathWithinCap(e)) => return Err(more_telling(why, e)),
        }
    }
    Err(why)
}

/// A risk weight as the solver uses it: within [0, [`MAX_RISK_WEIGHT`]], 1 for one that is
/// not a number.
fn risk_weight(alpha: f64) -> f64 {
    if alpha.is_finite() {
        alpha.clamp(0.0, MAX_RISK_WEIGHT)
    } else {
        1.0
    }
}

/// The fee leash ([`FlowConfig::fee_leash_pct`]): the pass at the first risk weight with the
/// fee cap lowered to what the leash allows over the cheapest single route; `None` when there
/// is no leash, it does not bind, or no set is found within it.
fn leashed<C: FlowCost>(
    graph: &Graph,
    req: &FlowRequest,
    cost: &C,
    config: &FlowConfig,
    scratch: &mut FlowScratch,
) -> Option<Flow> {
    let alpha = risk_weight(config.risk_weights.first().copied()?);
    if config.fee_leash_pct == 0 || alpha == 0.0 {
        return None;
    }
    let cheapest =
        candidates::cheapest_fee(graph, req, cost, &mut scratch.sub, &mut scratch.search)?;
    let by_share = u64::try_from(u128::from(cheapest) * u128::from(config.fee_leash_pct) / 100)
        .unwrap_or(u64::MAX);
    let by_amount = cheapest.saturating_add(
        u64::try_from(u128::from(req.amount_msat) * u128::from(config.fee_leash_ppm) / 1_000_000)
            .unwrap_or(u64::MAX),
    );
    let leash = by_share.max(by_amount);
    if leash >= req.max_fee_msat {
        return None;
    }
    let tight = FlowRequest {
        max_fee_msat: leash,
        ..req.clone()
    };
    solve_at(graph, &tight, cost, config, alpha, scratch).ok()
}

/// Of two reasons, the one that says more: a fee over the cap (the least such fee) before
/// paths that cannot carry the amount, before no path at all.
fn more_telling(a: NoFlow, b: NoFlow) -> NoFlow {
    match (a, b) {
        (NoFlow::OverFeeCap { fee_msat: x }, NoFlow::OverFeeCap { fee_msat: y }) => {
            NoFlow::OverFeeCap { fee_msat: x.min(y) }
        }
        (a @ NoFlow::OverFeeCap { .. }, _) | (_, a @ NoFlow::OverFeeCap { .. }) => a,
        (a @ NoFlow::Invalid(_), _) | (_, a @ NoFlow::Invalid(_)) => a,
        (NoFlow::Insufficient, _) | (_, NoFlow::Insufficient) => NoFlow::Insufficient,
        (a, _) => a,
    }
}

/// Why a pass found no set.
enum Fail {
    /// The searches found no path for any part within the cap.
    NoPathWithinCap(NoFlow),
    /// Paths were found; no set of them keeps every limit.
    Sets(NoFlow),
}

/// One pass at risk weight `alpha`: candidates, flow, parts.
fn solve_at<C: FlowCost>(
    graph: &Graph,
    req: &FlowRequest,
    cost: &C,
    config: &FlowConfig,
    alpha: f64,
    scratch: &mut FlowScratch,
) -> Result<Flow, Fail> {
    let FlowScratch {
        search,
        sub,
        mcf,
        assemble,
    } = scratch;
    let found = candidates::generate(graph, req, cost, config, alpha, sub, search);
    if sub.paths.is_empty() {
        // Not even one part within the cap: over it (the cheapest route says by how much), or
        // no path at all.
        return Err(Fail::NoPathWithinCap(match found.uncapped_fee {
            Some(fee_msat) => NoFlow::OverFeeCap { fee_msat },
            None => NoFlow::NoPath,
        }));
    }
    let flow_paths = if req.max_parts > 1 {
        mcf.run(graph, req, cost, config, alpha, sub)
    } else {
        Vec::new()
    };
    assemble::choose(
        graph,
        req,
        cost,
        config,
        alpha,
        sub,
        &found,
        &flow_paths,
        assemble,
    )
    .map_err(Fail::Sets)
}

/// Refuses what no set can meet, saying why.
fn check_request(graph: &Graph, req: &FlowRequest) -> Result<(), NoFlow> {
    let n = graph.node_count();
    if req.from as usize >= n || req.to as usize >= n {
        return Err(NoFlow::Invalid("a peer is not in the graph".into()));
    }
    if req.amount_msat == 0 {
        return Err(NoFlow::Invalid("nothing to deliver".into()));
    }
    if req.max_parts == 0 {
        return Err(NoFlow::Invalid("max_parts is 0".into()));
    }
    if req.exclude.nodes.contains(&req.from) || req.exclude.nodes.contains(&req.to) {
        return Err(NoFlow::Invalid("a peer is excluded".into()));
    }
    let last = &req.last_hop;
    let parts = req.max_parts as u64;
    if req.amount_msat < last.htlc_minimum_msat
        || req.amount_msat.div_ceil(parts) > last.htlc_maximum_msat
    {
        return Err(NoFlow::Invalid(format!(
            "the incoming peer forwards between {}msat and {}msat a part",
            last.htlc_minimum_msat, last.htlc_maximum_msat
        )));
    }
    if req.deliver_delay().is_none_or(|d| d > req.delay_cap()) {
        return Err(NoFlow::Invalid(
            "the final delay is over the CLTV cap".into(),
        ));
    }
    Ok(())
}

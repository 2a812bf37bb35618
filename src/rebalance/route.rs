//! Step 2 of an attempt: the best route not yet ruled out (by fee, or fee + risk from the
//! liquidity model), and the model's estimate that a route succeeds.

use super::session::{Session, attempts_json};
use crate::config::Routing;
use crate::core::amount::display_sat;
use crate::core::liquidity::ChanDir;
use crate::core::pathfind::FeeOnly;
use crate::core::route::Hop;
use crate::error::{self, RpcFailure};
use crate::lightningd::Lightningd;
use crate::state::State;
use serde_json::json;
use std::time::Instant;

/// The best route not yet ruled out, or why there is none.
pub fn next_route<N: Lightningd>(st: &State<N>, s: &mut Session) -> Result<Vec<Hop>, RpcFailure> {
    // The search time counts the view's rebuild: it is part of every probabilistic search.
    let started = Instant::now();
    if st.config.routing == Routing::Probabilistic {
        let now = st.now_secs();
        // The view is rebuilt before every search: other rebalances learn meanwhile.
        let mut beliefs = std::mem::take(&mut s.beliefs);
        beliefs.rebuild(&s.graph, &s.model(st), now, st.config.model);
        s.beliefs = beliefs;
    }
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
    route.ok_or_else(|| {
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
                "no more routes after {} failed attempt(s)",
                s.attempts.len()
            )
        };
        RpcFailure::new(error::PAY_ROUTE_NOT_FOUND, why)
            .with_data(json!({"attempts": attempts_json(&s.attempts)}))
    })
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

//! Probing before paying (`rebalance-probe-first`): a set the model is not sure of is probed
//! before it is paid.

use super::super::route;
use super::super::session::{Pace, Session};
use super::{Found, ProbeBudget, SURE, SetProbed, probe_set};
use crate::core::graph::{EdgeIdx, Graph};
use crate::core::route::{Hop, set_fee_msat};
use crate::error::RpcFailure;
use crate::lightningd::Lightningd;
use crate::state::State;
use std::collections::HashMap;

/// What a rebalance's probes before paying proved so far (`rebalance-probe-first`).
#[derive(Default)]
pub struct BeforePaying {
    proven: HashMap<EdgeIdx, u64>,
    found: Found,
}

/// `rebalance-probe-first`: whether `set`, about to be paid, may go. When the model is not
/// sure it moves (P < [`SURE`]) its parts are probed first, one after the other; `false` when
/// a probe failed (the model and the circle learned why: plan again, nothing was held or
/// paid). Paid at once, unprobed, when the time left cannot hold the probes and then the
/// payment (at the slowest pace per hop seen), when the probe budget is spent, or while
/// another probe is out through the outgoing channel (one at a time).
pub async fn before_paying<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    set: &[Vec<Hop>],
    seen: &mut BeforePaying,
) -> Result<bool, RpcFailure> {
    s.pace.hops = longest(set);
    if !seen.could_probe(st, s, set)
        || route::set_probability(st, s, set) >= SURE
        || !st.inflight.start_probe(&s.req.out_scid, false)
    {
        return Ok(true);
    }
    let budget = ProbeBudget {
        probes: st.config.probe_max_probes,
        secs: s.retry_for,
    };
    let probed = probe_set(st, s, set, &mut seen.proven, &mut seen.found, budget).await;
    st.inflight.end_probe(&s.req.out_scid);
    s.probes = seen.found.probes;
    s.pace.ms_per_hop = seen.found.ms_per_hop;
    Ok(probed? != SetProbed::Failed)
}

/// Sets [`cheaper`] may probe before paying the one it was given: six since `retry_for`
/// defaults to 120 s, which leaves the seconds for them (three before). Side by side on the
/// simulation (`benches/README.md`), six against three paid as many tasks (one more on the
/// tuning and on the report seeds; at 5M sat on seeds never run before 96.1% of the
/// flow-feasible either way) with the fee over the oracle's set at p90: tuning seeds
/// 7-10, 17 and 18 at 1M sat 1.624x against 1.660x, at 5M sat 3.809x against 4.937x; report
/// seeds 11-16 1.400x against 1.429x and 5.578x against 5.408x (p50 1.237x against 1.301x);
/// at 5M sat on seeds never run before (312, 314, 315) 1.861x against 2.230x; for 5-9% more
/// HTLCs a success. Six at up to 80% of the fee, or at 66% and then 80%, were dearer at 5M sat.
const CHEAPER_LOOKS: u32 = 6;

/// A cheaper set is looked for only at most this share (%) of the fee of the one in hand.
pub const CHEAPER_PCT: u64 = 66;

/// Before paying `set`, which its probes proved (or the model is sure of): a set at most
/// [`CHEAPER_PCT`]% of its fee, planned as the first plans are (`flow::cheap_first_config`)
/// among what the model says can carry the amount, is probed; one that carries is what is paid
/// (and a cheaper one still looked for), one that fails teaches the model. At most
/// [`CHEAPER_LOOKS`] sets, each probe only while the time left after it holds two payments.
/// The set to pay. The model's risk price buys likelier sets with fee; at 5M sat the first
/// plans paid as planned were the dearest (a p90 of 8.9x the oracle's set on tuning seeds 7-10,
/// 17 and 18), over ways that earlier failures or our own payments left the model doubting,
/// which the world's traffic had refilled since. On those seeds (`benches/README.md`) the fee
/// paid above the oracle's set fell from 39.9 to 32.2 ppm of the amount on average at 5M sat
/// (p90 ratio 8.76x to 6.16x), success within a task, for 5% more HTLCs; at 1M sat within the
/// noise. 50% and 75%, five sets, and reserving one payment's time (not two) were no better at
/// 60 s.
pub async fn cheaper<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    set: Vec<Vec<Hop>>,
    seen: &mut BeforePaying,
) -> Result<Vec<Vec<Hop>>, RpcFailure> {
    let mut best = set;
    for _ in 0..CHEAPER_LOOKS {
        let limit = set_fee_msat(&best).saturating_mul(CHEAPER_PCT) / 100;
        let Some(c) = route::cheaper_set(st, s, limit) else {
            break;
        };
        // Each probe goes only while the time left after it holds the payment of `c` and,
        // should that fail, of the set in hand: probing stops at the first that fails. The pace
        // is the slowest seen, at least a second a hop (none seen yet when the set in hand was
        // paid unprobed, the model sure of it). `probe_set` keeps to the deadline it is given,
        // so the session's is lowered by that reserve while it runs.
        let reserve_ms = Pace {
            ms_per_hop: seen.found.ms_per_hop,
            hops: longest(&c) + longest(&best),
        }
        .try_ms();
        let first = c.first().map_or(0, Vec::len);
        if !seen.may_probe(st, s)
            || !seen
                .found
                .time_left(first, st.now_ms().saturating_add(reserve_ms), s.deadline_ms)
            || !st.inflight.start_probe(&s.req.out_scid, false)
        {
            break;
        }
        let budget = ProbeBudget {
            probes: st.config.probe_max_probes,
            secs: s.retry_for,
        };
        let deadline_ms = s.deadline_ms;
        s.deadline_ms = deadline_ms.saturating_sub(reserve_ms);
        let probed = probe_set(st, s, &c, &mut seen.proven, &mut seen.found, budget).await;
        s.deadline_ms = deadline_ms;
        st.inflight.end_probe(&s.req.out_scid);
        s.probes = seen.found.probes;
        s.pace.ms_per_hop = seen.found.ms_per_hop;
        match probed? {
            SetProbed::Carried => {
                s.pace.hops = longest(&c);
                best = c;
            }
            SetProbed::Failed => {}
            SetProbed::OutOfBudget | SetProbed::Unprovable => break,
        }
    }
    Ok(best)
}

impl BeforePaying {
    /// The same, on `new`, a later read of the graph `old`.
    pub fn rebase(&mut self, old: &Graph, new: &Graph) {
        super::rebase_edges(&mut self.proven, old, new);
    }

    /// Whether [`before_paying`] could probe `set` now: probing first is on, the probe budget
    /// is not spent, no other probe goes out through the outgoing channel, and the time left
    /// holds the set's probes and then its payment.
    pub fn could_probe<N: Lightningd>(&self, st: &State<N>, s: &Session, set: &[Vec<Hop>]) -> bool {
        self.may_probe(st, s)
            && self
                .found
                .time_left(probe_then_pay_hops(set), st.now_ms(), s.deadline_ms)
    }

    /// Whether probing first is on, the probe budget is not spent, and no other probe goes
    /// out through the outgoing channel.
    fn may_probe<N: Lightningd>(&self, st: &State<N>, s: &Session) -> bool {
        st.config.probe_first
            && self.found.probes < st.config.probe_max_probes
            && !st.inflight.probing(&s.req.out_scid)
    }

    /// A payment attempt that failed after `took_ms`: its pace per hop (to where it failed and
    /// back) counts as a probe's would, so the next set is probed only with time left to pay,
    /// and the session's pace ([`Session::urgent`]) is the slowest seen.
    pub fn paced(&mut self, s: &mut Session, took_ms: u64) {
        if let Some(went) = s.last_erring_index.filter(|&i| i > 0) {
            let pace = took_ms / went as u64;
            self.found.ms_per_hop = self.found.ms_per_hop.max(pace);
            s.pace.ms_per_hop = self.found.ms_per_hop;
        }
    }
}

/// The hops of `set`'s longest route.
fn longest(set: &[Vec<Hop>]) -> usize {
    set.iter().map(Vec::len).max().unwrap_or(0)
}

/// The hops `set`'s probes go (one route after the other) and then its payment (its longest
/// route: the parts go at once).
fn probe_then_pay_hops(set: &[Vec<Hop>]) -> usize {
    let hops: usize = set.iter().map(Vec::len).sum();
    hops + longest(set)
}

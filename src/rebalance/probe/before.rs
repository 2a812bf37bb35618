//! Probing before paying (`rebalance-probe-first`): a set the model is not sure of is probed
//! before it is paid; a plan the model gives almost no chance is replaced by a search, by
//! probes, for a set that moves the amount.

use super::super::route;
use super::super::session::Session;
use super::{Found, ProbeBudget, SURE, SetProbed, probe_max, probe_set};
use crate::core::amount::display_sat;
use crate::core::graph::EdgeIdx;
use crate::core::route::Hop;
use crate::error::RpcFailure;
use crate::lightningd::Lightningd;
use crate::state::State;
use std::collections::HashMap;

/// A plan the model gives less than this chance is not probed as planned: a search by probes
/// (as `rebalance-probe` makes for the amount, [`probe_max`]) looks for a set that moves it.
/// Seen on 5M-sat rebalances whose outgoing peer's channels had all failed the amount before:
/// one single route after another probed at P ~0.01, each failing out of that peer, until the
/// time ran out, where the true balances allowed a set of two to four parts. Tried at 0.02
/// and 0.05 on the tuning seeds (1, 5, 6 at 5M sat; 1, 3-6 at 1M sat, 100 tasks each; see
/// `benches/README.md`): 0.05 (the first figures, before / after) 92.6% -> 96.5% of the
/// flow-feasible at 5M sat, 97.0% -> 97.0% at 1M sat.
pub const UNLIKELY_PLAN: f64 = 0.05;

/// What a rebalance's probes before paying proved so far (`rebalance-probe-first`).
#[derive(Default)]
pub struct BeforePaying {
    proven: HashMap<EdgeIdx, u64>,
    found: Found,
    /// Whether an unlikely plan was searched around already (once a rebalance).
    searched: bool,
}

/// What [`before_paying`] says of the set about to be paid.
#[derive(Debug, PartialEq, Eq)]
pub enum BeforePay {
    /// Pay it: probes proved it, or it goes unprobed.
    Pay,
    /// Pay this set instead, which probes proved moves the amount (the plan was unlikely).
    PayProven(Vec<Vec<Hop>>),
    /// Plan again: a probe failed (the model and the circle learned why), or the search for
    /// an unlikely plan found less than the amount can move. Nothing was held or paid.
    Replan,
}

/// `rebalance-probe-first`: whether `set`, about to be paid, may go. When the model is not
/// sure it moves (P < [`SURE`]) its parts are probed first, one after the other; when it gives
/// it almost no chance (P < [`UNLIKELY_PLAN`], once a rebalance) probes search for a set that
/// moves the amount instead. Paid at once, unprobed, when the time left cannot hold the probes
/// and then the payment (at the slowest pace per hop seen), when the probe budget is spent, or
/// while another probe is out through the outgoing channel (one at a time).
pub async fn before_paying<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    set: &[Vec<Hop>],
    seen: &mut BeforePaying,
) -> Result<BeforePay, RpcFailure> {
    let p = route::set_probability(st, s, set);
    if p < UNLIKELY_PLAN && seen.could_search(st, s) {
        return seen.search(st, s, p).await;
    }
    if !seen.could_probe(st, s, set)
        || p >= SURE
        || !st.inflight.start_probe(&s.req.out_scid, false)
    {
        return Ok(BeforePay::Pay);
    }
    let budget = ProbeBudget {
        probes: st.config.probe_max_probes,
        secs: s.retry_for,
    };
    let probed = probe_set(st, s, set, &mut seen.proven, &mut seen.found, budget).await;
    st.inflight.end_probe(&s.req.out_scid);
    s.probes = seen.found.probes;
    Ok(match probed? {
        SetProbed::Failed => BeforePay::Replan,
        _ => BeforePay::Pay,
    })
}

impl BeforePaying {
    /// Whether [`before_paying`] could probe `set` now: probing first is on, the probe budget
    /// is not spent, no other probe goes out through the outgoing channel, and the time left
    /// holds the set's probes and then its payment.
    pub fn could_probe<N: Lightningd>(&self, st: &State<N>, s: &Session, set: &[Vec<Hop>]) -> bool {
        self.may_probe(st, s)
            && self
                .found
                .time_left(probe_then_pay_hops(set), st.now_ms(), s.deadline_ms)
    }

    /// Whether an unlikely plan may be searched around now: as [`Self::may_probe`], and not
    /// searched yet in this rebalance.
    fn could_search<N: Lightningd>(&self, st: &State<N>, s: &Session) -> bool {
        !self.searched && self.may_probe(st, s)
    }

    /// Probing first is on, the probe budget is not spent, and no other probe goes out
    /// through the outgoing channel.
    fn may_probe<N: Lightningd>(&self, st: &State<N>, s: &Session) -> bool {
        st.config.probe_first
            && self.found.probes < st.config.probe_max_probes
            && !st.inflight.probing(&s.req.out_scid)
    }

    /// The search for a set that moves the whole amount, with the probes and seconds left:
    /// the proven set, or plan again (what it found short of the amount is not paid).
    async fn search<N: Lightningd>(
        &mut self,
        st: &State<N>,
        s: &mut Session,
        p: f64,
    ) -> Result<BeforePay, RpcFailure> {
        if !st.inflight.start_probe(&s.req.out_scid, false) {
            return Ok(BeforePay::Pay);
        }
        self.searched = true;
        s.tell(&format!(
            "the plan is unlikely to go (P {:.3}): probing for a set that moves {}",
            p,
            display_sat(s.req.amount_msat)
        ));
        let budget = ProbeBudget {
            probes: st.config.probe_max_probes - self.found.probes,
            secs: s.retry_for,
        };
        let found = probe_max(st, s, s.req.amount_msat, budget).await;
        st.inflight.end_probe(&s.req.out_scid);
        let found = found?;
        self.found.probes += found.probes;
        self.found.ms_per_hop = self.found.ms_per_hop.max(found.ms_per_hop);
        s.probes = self.found.probes;
        Ok(
            if found.amount_msat >= s.req.amount_msat && !found.set.is_empty() {
                s.tell(&format!(
                    "probes proved a set of {} part(s) that moves it",
                    found.set.len()
                ));
                BeforePay::PayProven(found.set)
            } else {
                s.tell(&format!(
                    "probes found {} that can move now; planning again",
                    display_sat(found.amount_msat)
                ));
                BeforePay::Replan
            },
        )
    }

    /// A payment attempt that failed after `took_ms`: its pace per hop (to where it failed and
    /// back) counts as a probe's would, so the next set is probed only with time left to pay.
    pub fn paced(&mut self, s: &Session, took_ms: u64) {
        if let Some(went) = s.last_erring_index.filter(|&i| i > 0) {
            let pace = took_ms / went as u64;
            self.found.ms_per_hop = self.found.ms_per_hop.max(pace);
        }
    }
}

/// The hops `set`'s probes go (one route after the other) and then its payment (its longest
/// route: the parts go at once).
fn probe_then_pay_hops(set: &[Vec<Hop>]) -> usize {
    let hops: usize = set.iter().map(Vec::len).sum();
    hops + set.iter().map(Vec::len).max().unwrap_or(0)
}

//! Background probing of a planned move: whether it moves (probed only when the model is
//! unsure), then scouts for cheaper ways than the one the model would pay for it.

use super::before::CHEAPER_PCT;
use super::plan::{SURE, plan};
use super::routes::proven_together;
use super::{Found, ProbeBudget, SetProbed, probe_amount, probe_set, sure};
use crate::core::route::set_fee_msat;
use crate::error::RpcFailure;
use crate::lightningd::Lightningd;
use crate::params::ProbeParams;
use crate::rebalance::route;
use crate::rebalance::session::Session;
use crate::state::State;
use std::collections::HashMap;

impl<N: Lightningd> State<N> {
    /// Background probing of one planned move from `outgoing` to `incoming` within `cap_msat`
    /// ([`in_background`]); every probe counted against the hourly budget. What
    /// was found, the probes sent with it.
    pub async fn probe_in_background(
        &self,
        outgoing: &str,
        incoming: &str,
        amount_msat: u64,
        cap_msat: u64,
        budget: ProbeBudget,
        scout_probes: u32,
    ) -> Result<Found, RpcFailure> {
        let p = ProbeParams::for_move(outgoing, incoming, Some(amount_msat));
        self.probe_found(&p, None, Some(cap_msat), budget, None, Some(scout_probes))
            .await
            .map(|(_, found, _)| found)
    }
}

/// One planned move of `amount_msat`: what the model is sure of needs no probe, else it is
/// probed within `budget`; then [`scout_cheaper`] with `scout_probes` more. The move's answer
/// stands whatever stops the scouts (something else started, the hour's probes are spent).
pub async fn in_background<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    amount_msat: u64,
    budget: ProbeBudget,
    scout_probes: u32,
) -> Result<Found, RpcFailure> {
    let mut found = if sure(st, s, amount_msat) {
        Found::default()
    } else {
        probe_amount(st, s, amount_msat, budget).await?
    };
    let scouts = ProbeBudget {
        probes: found.probes.saturating_add(scout_probes),
        ..budget
    };
    if let Err(e) = scout_cheaper(st, s, amount_msat, &mut found, scouts).await {
        log::debug!("background probing: scouts stopped: {}", e.message);
    }
    Ok(found)
}

/// Cheaper sets background probing looks for after a planned move ([`scout_cheaper`]).
const SCOUT_LOOKS: u32 = 6;

/// Background probing's scouts: after a planned move is probed (or the model was sure of it),
/// sets cheaper than the one the model would pay for it now, each at most
/// [`CHEAPER_PCT`]% of the fee of the best so far and planned as a rebalance's cheap
/// first plans are (`flow::cheap_first_config`, never over a channel the model rules out),
/// are probed, unless the model is sure of one already (then a cheaper one still is looked
/// for): at most [`SCOUT_LOOKS`] sets, within `budget` (the probes `found` counts included).
/// A set that carried is what `found` says moves, and every probe teaches the model, so the
/// next rebalance of the move plans from it, with no time of its own spent finding it. A
/// rebalance's own cheaper look has only the seconds `retry_for` leaves, about one set of long
/// parts at 5M sat with the 60 s it had before a401999 (`benches/README.md`). On bench-sim's
/// tuning seeds (7-10, 17, 18), the next task's move probed before it (480 probes an hour, a
/// task a minute; `retry_for` 60 s): fee paid over the flow oracle's set at p90 1M sat 1.739x,
/// 5M sat 5.203x, against 2.125x and 8.761x with background probing without scouts (60 an
/// hour) and 2.227x and 6.955x without background probing, for 1.7-1.8 probes a task. Three
/// looks (not six) paid 5.678x at 5M sat; twelve at up to 90% of the fee no better (6.139x).
pub async fn scout_cheaper<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    amount_msat: u64,
    found: &mut Found,
    budget: ProbeBudget,
) -> Result<(), RpcFailure> {
    let mut fee = match plan(st, s, amount_msat) {
        Ok(best) => set_fee_msat(&best),
        Err(_) => return Ok(()),
    };
    let mut proven = HashMap::new();
    for _ in 0..SCOUT_LOOKS {
        let limit = fee.saturating_mul(CHEAPER_PCT) / 100;
        let Some(c) = route::cheaper_set(st, s, limit) else {
            break;
        };
        if route::set_probability(st, s, &c) >= SURE {
            fee = set_fee_msat(&c);
            continue;
        }
        match probe_set(st, s, &c, &mut proven, found, budget).await? {
            SetProbed::Carried => {
                fee = set_fee_msat(&c);
                if proven_together(s, &c, &proven) {
                    found.proven(amount_msat, c);
                }
            }
            SetProbed::Failed => {}
            SetProbed::OutOfBudget | SetProbed::Unprovable => break,
        }
    }
    Ok(())
}

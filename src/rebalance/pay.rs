//! Steps 3 and 4 of an attempt: our invoice (made once, on the first attempt, and registered
//! for the arrival check), then the set of routes paid. One route is sent whole, as a plain
//! `sendpay`, and waited for. Several are sent together as the parts of one try (one `groupid`,
//! each its `partid`, each naming the total); our node holds the parts that arrive until they
//! add up to the total. A part that fails teaches the model, and a replacement for what it was
//! to deliver goes out on another route while the others are held, within lightningd's 70 s
//! hold; past that, or with nothing to replace it, the held parts fail back (`mpp_timeout`) and
//! nothing is paid.

use super::learn::{failed, learn_settled};
use super::route::replacement_set;
use super::session::{Attempt, OurInvoice, Outcome, Session, middle, via};
use crate::core::liquidity::ChanDir;
use crate::core::route::{Hop, route_fee_msat};
use crate::error::{self, RpcFailure};
use crate::lightningd::{Lightningd, Part, PaymentComplete};
use crate::state::State;
use cln_rpc::RpcError;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Seconds lightningd (the receiver, us) holds parts for the rest to arrive (htlc_set.c).
pub const HOLD_SECS: u64 = 70;
/// A replacement part goes out only this long after its try started: it must reach us before
/// the first part's hold ends, and a route's hops take their time.
const REPLACE_WITHIN_SECS: u64 = 45;
/// The longest a try in parts lasts: its last replacement, then the hold that part may start.
const TRY_SECS: u64 = REPLACE_WITHIN_SECS + HOLD_SECS;
/// Past `retry_for`, how long one wait for a try's parts lasts before `rebalancestop` is
/// looked at again.
const STOP_SLICE_MS: u64 = 5000;
/// Where our explicit `groupid`s start: above any lightningd gives a whole payment itself
/// (the highest for the hash, plus one), so the two never meet.
const GROUPID_BASE: u64 = 1 << 32;

/// Creates the invoice on the first attempt (and registers it for the hook).
pub async fn ensure_invoice<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
) -> Result<(), RpcFailure> {
    if s.invoice.is_some() {
        return Ok(());
    }
    let (out_scid, inc_scid) = (&s.req.out_scid, &s.req.inc_scid);
    let label = st.inflight.new_label(out_scid, inc_scid);
    let inv = st
        .node
        .invoice(
            s.req.amount_msat,
            &label,
            &format!("cln-rebalance {out_scid} -> {inc_scid}"),
            // Past `retry_for`: a try in parts started just before it may complete as late
            // as the end of its hold.
            s.retry_for + TRY_SECS + 60,
            st.config.final_cltv,
        )
        .await
        .map_err(|e| error::from_lightningd("invoice", &e))?;
    st.inflight.update(s.id, |r| {
        r.label = Some(label.clone());
        r.payment_hash = Some(inv.payment_hash.clone());
    });
    s.invoice = Some(OurInvoice {
        label,
        payment_hash: inv.payment_hash,
        payment_secret: inv.payment_secret,
    });
    Ok(())
}

/// Marks (or unmarks) a route's middle hops as carrying our HTLC, so a concurrent search
/// does not count on that liquidity.
fn mark_in_flight<N: Lightningd>(st: &State<N>, s: &Session, hops: &[Hop], add: bool) {
    let mut m = s.model(st);
    for h in middle(hops) {
        m.in_flight(
            ChanDir::new(h.short_channel_id, h.direction),
            h.amount_msat,
            add,
        );
    }
}

/// Pays `set`: one route whole, or several as the parts of one try.
pub async fn attempt<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    set: Vec<Vec<Hop>>,
    attempt: &mut Attempt,
) -> Outcome {
    match <[Vec<Hop>; 1]>::try_from(set) {
        Ok([hops]) => whole(st, s, &hops, attempt).await,
        Err(set) => {
            let outcome = parts(st, s, set, attempt).await;
            one_htlc_if_diverted(st, s, outcome, attempt)
        }
    }
}

/// One sendpay + waitsendpay for the whole amount. Learns from the outcome.
async fn whole<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    hops: &[Hop],
    attempt: &mut Attempt,
) -> Outcome {
    let inv = s.invoice.clone().expect("invoice made before an attempt");
    let hash = &inv.payment_hash;
    if let Err(e) = st
        .node
        .sendpay(hops, hash, &inv.payment_secret, &inv.label, None)
        .await
    {
        return failed(st, s, e, hops, attempt).await;
    }
    mark_in_flight(st, s, hops, true);
    st.inflight.update(s.id, |r| r.parts_in_flight = 1);
    let outcome = loop {
        match st.node.waitsendpay(hash, remaining_secs(st, s), None).await {
            Ok(done) if done.status == "complete" => {
                let fee = done.amount_sent_msat.saturating_sub(done.amount_msat);
                attempt.outcome = "complete".into();
                break Outcome::Paid { fee_msat: fee };
            }
            Ok(other) => break unexpected(attempt, &other),
            Err(e) if e.code == Some(error::PAY_IN_PROGRESS) => {
                // Still in flight: never start another attempt that could pay twice.
                if st.now_ms() >= s.deadline_ms {
                    attempt.outcome = "still in flight when time ran out".into();
                    break Outcome::StillInFlight;
                }
            }
            Err(e) => {
                mark_in_flight(st, s, hops, false);
                st.inflight.update(s.id, |r| r.parts_in_flight = 0);
                return failed(st, s, e, hops, attempt).await;
            }
        }
    };
    mark_in_flight(st, s, hops, false);
    st.inflight.update(s.id, |r| r.parts_in_flight = 0);
    if let Outcome::Paid { .. } = outcome {
        learn_settled(st, s, hops);
        s.paid_set = vec![hops.to_vec()];
    }
    outcome
}

/// Seconds left to wait: to the deadline, at least one.
fn remaining_secs<N: Lightningd>(st: &State<N>, s: &Session) -> u64 {
    secs_until(st, s.deadline_ms)
}

/// Seconds from now to `until_ms`, at least one.
fn secs_until<N: Lightningd>(st: &State<N>, until_ms: u64) -> u64 {
    until_ms.saturating_sub(st.now_ms()).div_ceil(1000).max(1)
}

/// How long a try in parts started at `started_ms` is waited for: while it can still complete
/// (`replacing`: a failed part may still be replaced), past `retry_for` to the end of
/// lightningd's hold, since `retry_for` bounds when tries start, and parts held at our node
/// are locked there until the set completes or the hold ends anyway; once no part may be
/// sent, to the session's deadline.
fn try_until_ms(s: &Session, started_ms: u64, replacing: bool) -> u64 {
    if !replacing {
        return s.deadline_ms;
    }
    let hold_end = started_ms.saturating_add(TRY_SECS * 1000);
    s.deadline_ms.max(hold_end)
}

fn unexpected(attempt: &mut Attempt, other: &PaymentComplete) -> Outcome {
    attempt.outcome = format!("unexpected status {}", other.status);
    Outcome::Stop(RpcFailure::new(
        error::PLUGIN_ERROR,
        format!("waitsendpay answered status {}", other.status),
    ))
}

/// A part sent and not yet answered.
struct Out {
    part: Part,
    hops: Vec<Hop>,
}

/// The parts of one try: sent together, waited for together, a failed one replaced while the
/// others are held; the set pays or fails back whole.
async fn parts<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    set: Vec<Vec<Hop>>,
    attempt: &mut Attempt,
) -> Outcome {
    let inv = s.invoice.clone().expect("invoice made before an attempt");
    s.groupid = GROUPID_BASE + s.attempts.len() as u64 + 1;
    let groupid = s.groupid;
    let started_ms = st.now_ms();
    let mut out: Vec<Out> = Vec::new();
    // What failed parts were to deliver, not yet replaced.
    let mut missing_msat = 0u64;
    // Set when no part may be sent any more: why the try ends once the held parts are back.
    let mut ending: Option<Outcome> = None;
    let mut outcomes: Vec<String> = Vec::new();
    send(
        st,
        s,
        &inv,
        groupid,
        set,
        &mut out,
        &mut missing_msat,
        &mut ending,
        &mut outcomes,
    )
    .await;
    let paid = loop {
        if missing_msat > 0 && ending.is_none() {
            match replacement(st, s, &out, missing_msat, started_ms) {
                Ok(more) => {
                    s.tell(&format!(
                        "{} part(s) replace {}msat: {}",
                        more.len(),
                        missing_msat,
                        more.iter()
                            .map(|h| via(h).trim_start().to_string())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ));
                    missing_msat = 0;
                    send(
                        st,
                        s,
                        &inv,
                        groupid,
                        more,
                        &mut out,
                        &mut missing_msat,
                        &mut ending,
                        &mut outcomes,
                    )
                    .await;
                    continue;
                }
                // The held parts fail back (mpp_timeout): a new try may follow.
                Err(why) => ending = Some(why),
            }
        }
        if out.is_empty() {
            break None;
        }
        st.inflight
            .update(s.id, |r| r.parts_in_flight = out.len() as u32);
        let until_ms = try_until_ms(s, started_ms, ending.is_none() && !s.stopped());
        // Past `retry_for`, waited for in slices: `rebalancestop` is heard within one.
        let now = st.now_ms();
        let wait_to = if now < s.deadline_ms {
            s.deadline_ms
        } else {
            until_ms.min(now.saturating_add(STOP_SLICE_MS))
        };
        let (i, result) =
            wait_any(&st.node, &inv.payment_hash, &out, secs_until(st, wait_to)).await;
        match result {
            Ok(done) if done.status == "complete" => break Some((i, done)),
            Ok(other) => {
                ending = Some(unexpected(attempt, &other));
                let p = out.swap_remove(i);
                mark_in_flight(st, s, &p.hops, false);
            }
            Err(e) if e.code == Some(error::PAY_IN_PROGRESS) => {
                if st.now_ms() >= until_ms {
                    // The invoice is deleted next: the held parts can only fail back. Nothing
                    // of this rebalance waits for them any more, so, as for one route, the
                    // model stops counting them (it kept them in flight for good before).
                    attempt.outcome = "parts still in flight when time ran out".into();
                    for p in &out {
                        mark_in_flight(st, s, &p.hops, false);
                    }
                    st.inflight.update(s.id, |r| r.parts_in_flight = 0);
                    return Outcome::StillInFlight;
                }
            }
            Err(e) => {
                let p = out.swap_remove(i);
                mark_in_flight(st, s, &p.hops, false);
                let mut one = Attempt::default();
                match failed(st, s, e, &p.hops, &mut one).await {
                    Outcome::Retry => missing_msat += delivered(&p.hops),
                    other => {
                        ending.get_or_insert(other);
                    }
                }
                // The client sees where and why a part failed, as it does for a whole attempt.
                s.tell(&format!(
                    "part {} ({}msat) failed: {}",
                    p.part.partid,
                    delivered(&p.hops),
                    one.outcome
                ));
                outcomes.push(format!("part {}: {}", p.part.partid, one.outcome));
            }
        }
    };
    st.inflight.update(s.id, |r| r.parts_in_flight = 0);
    let Some((i, first)) = paid else {
        attempt.outcome = outcomes.join("; ");
        // Every part failed: another try, unless a failure said to stop.
        return ending.unwrap_or(Outcome::Retry);
    };
    // The set is paid: every part held at our node settles with it.
    let done = out.swap_remove(i);
    let mut fee = first.amount_sent_msat.saturating_sub(first.amount_msat);
    mark_in_flight(st, s, &done.hops, false);
    learn_settled(st, s, &done.hops);
    s.paid_set = vec![done.hops.clone()];
    for p in out {
        if let Ok(d) = st
            .node
            .waitsendpay(&inv.payment_hash, remaining_secs(st, s), Some(p.part))
            .await
        {
            fee = fee.saturating_add(d.amount_sent_msat.saturating_sub(d.amount_msat));
        } else {
            // Our invoice is paid, so this part's HTLC settles too: count its fee as sent.
            fee = fee.saturating_add(route_fee_msat(&p.hops));
        }
        mark_in_flight(st, s, &p.hops, false);
        learn_settled(st, s, &p.hops);
        s.paid_set.push(p.hops);
    }
    attempt.outcome = "complete".into();
    Outcome::Paid { fee_msat: fee }
}

/// Sends each route of `set` as a new part of try `groupid`; a part sendpay refuses is learned
/// from at once (its amount goes missing, or the try ends).
#[allow(clippy::too_many_arguments)]
async fn send<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    inv: &OurInvoice,
    groupid: u64,
    set: Vec<Vec<Hop>>,
    out: &mut Vec<Out>,
    missing_msat: &mut u64,
    ending: &mut Option<Outcome>,
    outcomes: &mut Vec<String>,
) {
    for hops in set {
        s.next_partid += 1;
        let part = Part {
            partid: s.next_partid,
            groupid,
            total_msat: s.req.amount_msat,
        };
        s.last_sent = hops.clone();
        match st
            .node
            .sendpay(
                &hops,
                &inv.payment_hash,
                &inv.payment_secret,
                &inv.label,
                Some(part),
            )
            .await
        {
            Ok(()) => {
                mark_in_flight(st, s, &hops, true);
                out.push(Out { part, hops });
            }
            Err(e) => {
                let mut one = Attempt::default();
                match failed(st, s, e, &hops, &mut one).await {
                    Outcome::Retry => *missing_msat += delivered(&hops),
                    other => {
                        ending.get_or_insert(other);
                    }
                }
                outcomes.push(format!("part {}: {}", part.partid, one.outcome));
            }
        }
    }
}

/// What a part delivers to us.
fn delivered(hops: &[Hop]) -> u64 {
    hops.last().map_or(0, |h| h.amount_msat)
}

/// Parts for `missing_msat` while the others are held: within what the fee cap and our outgoing
/// channel leave after the parts out, and only early enough to arrive before the hold ends
/// (also past `retry_for`, which bounds when a try starts).
/// Planned without the part penalty ([`crate::core::flow::replacement_config`]): the set is
/// split already, so the missing amount may split again where the model prefers it.
fn replacement<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    out: &[Out],
    missing_msat: u64,
    started_ms: u64,
) -> Result<Vec<Vec<Hop>>, Outcome> {
    // Not bound by `retry_for`: the try started within it, and its held parts are locked at
    // our node until the set completes or the hold ends either way.
    let too_late =
        st.now_ms().saturating_sub(started_ms) > REPLACE_WITHIN_SECS * 1000 || s.stopped();
    if too_late {
        return Err(Outcome::Retry);
    }
    let fees_out: u64 = out.iter().map(|p| route_fee_msat(&p.hops)).sum();
    let sent_out: u64 = out.iter().map(|p| p.hops[0].amount_msat).sum();
    let fee_left = s.cap_msat.saturating_sub(fees_out);
    let source_left = s.req.out.spendable_msat.saturating_sub(sent_out);
    // `maxparts` bounds the parts out at once, so the set paid too (as xpay's `maxparts`): a
    // failed part's place is free again, so there is always one.
    let slots = s.max_parts.saturating_sub(out.len()).max(1);
    match replacement_set(st, s, missing_msat, fee_left, source_left, slots) {
        Ok(set) => Ok(set),
        Err(e) => {
            s.tell(&format!(
                "no replacement for {missing_msat}msat: {}; the held parts fail back",
                e.message
            ));
            Err(Outcome::Retry)
        }
    }
}

/// A set refused because the incoming peer sent a part to us over another of its channels
/// (non-strict forwarding: lightningd forwards over the channel to us with the most spendable,
/// and each part held on the incoming channel lowers its spendable, so a later part goes over
/// the other): the rest of the rebalance goes as one HTLC, which arrives over the incoming
/// channel when it is the peer's choice as the rebalance starts, instead of stopping. Only
/// when the amount is within the peer's htlc maximum there; nothing was paid for the set.
fn one_htlc_if_diverted<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    outcome: Outcome,
    attempt: &mut Attempt,
) -> Outcome {
    let diverted = st.inflight.get(s.id).and_then(|r| r.rejected_arrival);
    let fits = s.req.inc.updates.remote.is_none_or(|u| {
        u.htlc_maximum_msat
            .is_none_or(|max| s.req.amount_msat <= max)
    });
    match (outcome, diverted) {
        (Outcome::Stop(f), Some(other)) if s.max_parts > 1 && fits => {
            s.diverted = Some(f);
            st.inflight.update(s.id, |r| r.rejected_arrival = None);
            s.max_parts = 1;
            let why = format!(
                "the incoming peer sent a part over channel {other}, not {}: refused, no fee; \
                 the rest goes as one HTLC",
                s.req.inc_scid
            );
            s.tell(&why);
            attempt.outcome = format!("{}; {why}", attempt.outcome);
            Outcome::Retry
        }
        (outcome, _) => outcome,
    }
}

/// Waits for the first of `parts` to be answered: its index and the answer.
async fn wait_any<N: Lightningd>(
    node: &N,
    payment_hash: &str,
    parts: &[Out],
    timeout_secs: u64,
) -> (usize, Result<PaymentComplete, RpcError>) {
    type Wait<'a> = Pin<Box<dyn Future<Output = Result<PaymentComplete, RpcError>> + Send + 'a>>;
    let mut waits: Vec<Wait<'_>> = parts
        .iter()
        .map(|p| Box::pin(node.waitsendpay(payment_hash, timeout_secs, Some(p.part))) as Wait<'_>)
        .collect();
    std::future::poll_fn(|cx| {
        for (i, w) in waits.iter_mut().enumerate() {
            if let Poll::Ready(r) = w.as_mut().poll(cx) {
                return Poll::Ready((i, r));
            }
        }
        Poll::Pending
    })
    .await
}

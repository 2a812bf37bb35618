//! The rebalance algorithm, as a session over the plugin's [`State`]: check the channels, quote
//! a circular route, pay ourselves along it, learn from every attempt and retry until
//! `retry_for` runs out, and always clean up the invoice.
//!
//! Talks to lightningd only through [`Lightningd`]. Route math lives in `core::pathfind` and
//! `core::route`; what is learned lives in `core::liquidity`, shared through the state, so what
//! one rebalance learns the next, or a concurrent one, uses.
//!
//! A rebalance, step by step ([`State::rebalance`]), one file a step:
//! 1. [`check`]: both channels exist, differ, are usable, carry the amount;
//! 2. [`route`]: the best route not ruled out ([`circle`]), by fee (+ risk with the model),
//!    within the fee cap and what the outgoing channel can spend ([`Session::check_route`]);
//! 3. [`pay`]: our invoice, made once; then sendpay + waitsendpay;
//! 4. [`learn`]: what the outcome teaches the model and the circle; retry or stop;
//! 5. [`cleanup`]: delete an unpaid invoice, save the model, record the history.
//!
//! [`answer`] words the result; [`arrival`] is the `invoice_payment` hook's check.

pub mod answer; // the quote of a dry run, the result of a completed rebalance
pub mod arrival; // the invoice_payment hook: refuse a payment back over the wrong channel
pub mod check; // step 1: the request's channels and amount
pub mod circle; // the fixed first and last hops and the search between them
pub mod cleanup; // step 5: no invoice left, model saved, history recorded
pub mod learn; // step 4: the model and the circle learn; retry or stop
pub mod pay; // step 3: invoice, sendpay, waitsendpay
pub mod route; // step 2: the best route not ruled out
pub mod session; // one rebalance in progress

use crate::core::amount::{display_sat, fee_cap_msat, ppm};
use crate::core::liquidity::Liquidity;
use crate::core::route::{Hop, route_fee_msat};
use crate::error::{self, RpcFailure};
use crate::lightningd::Lightningd;
use crate::params::RebalanceParams;
use crate::state::State;
use crate::state::inflight::Running;
use check::{Checked, check_request};
use circle::Circle;
use log::info;
use serde_json::{Value, json};
use session::{Attempt, Extra, Outcome, Session, attempts_json, via};
use std::sync::Mutex;
use std::sync::atomic::Ordering;

/// Blocks added to the final delay so a block found mid-payment does not fail it.
const FINAL_CLTV_MARGIN: u32 = 3;

impl<N: Lightningd> State<N> {
    /// `rebalance`: see the README for the parameters and results.
    pub async fn rebalance(&self, p: RebalanceParams) -> Result<Value, RpcFailure> {
        self.rebalance_with(p, Extra::default()).await
    }

    /// `rebalance` with what the automatic job adds (a fee cap, its id, a stop signal).
    pub async fn rebalance_with(
        &self,
        p: RebalanceParams,
        extra: Extra,
    ) -> Result<Value, RpcFailure> {
        let started_ms = self.now_ms();
        let req = check_request(&self.node, &p).await?;
        let id = self.inflight.start(Running {
            outgoing_scid: req.out_scid.clone(),
            incoming_scid: req.inc_scid.clone(),
            amount_msat: req.amount_msat,
            job_id: extra.job_id,
            started_ms,
            dryrun: p.dryrun,
            ..Running::default()
        });
        let result = async {
            // What lightningd's own payments learned since the last rebalance.
            self.read_xpay_layer().await;
            let graph = self.graph().await?;
            let mut s = new_session(self, id, &p, req, graph, started_ms, extra)?;
            let result = run(self, &mut s, p.dryrun).await;
            Ok::<_, RpcFailure>((s, result))
        }
        .await;
        let out = match result {
            Ok((s, result)) => cleanup::finish(self, s, result, p.dryrun).await,
            Err(e) => Err(e),
        };
        self.inflight.end(id);
        out
    }
}

/// A session for a checked request: the fee cap, the deadline, the fixed hops.
fn new_session<N: Lightningd>(
    st: &State<N>,
    id: u64,
    p: &RebalanceParams,
    req: Checked,
    graph: std::sync::Arc<crate::core::graph::Graph>,
    started_ms: u64,
    extra: Extra,
) -> Result<Session, RpcFailure> {
    let maxfeeppm = p.maxfeeppm.unwrap_or(st.config.maxfeeppm);
    let exemptfee_msat = p.exemptfee.unwrap_or(st.config.exemptfee_msat);
    let retry_for = p.retry_for.unwrap_or(st.config.retry_for_secs);
    let circle = Circle::new(
        &req.our_id,
        &req.out,
        &req.inc,
        req.amount_msat,
        st.config.final_cltv + FINAL_CLTV_MARGIN,
        &graph,
    )?;
    let local_model = (!st.config.liquidity_memory).then(|| Mutex::new(Liquidity::new()));
    let (beliefs, scratch) = st.model.take_view();
    let s = Session {
        id,
        cap_msat: extra
            .fee_cap_msat
            .unwrap_or_else(|| fee_cap_msat(req.amount_msat, maxfeeppm, exemptfee_msat)),
        extra,
        maxfeeppm,
        exemptfee_msat,
        retry_for,
        deadline_ms: started_ms.saturating_add(retry_for.saturating_mul(1000)),
        started_ms,
        req,
        circle,
        graph,
        attempts: Vec::new(),
        invoice: None,
        scratch,
        beliefs,
        local_model,
        last_sent: Vec::new(),
        paid_set: Vec::new(),
        max_parts: p
            .maxparts
            .map_or(st.config.max_parts, |m| m as usize)
            .max(1),
        groupid: 0,
        next_partid: 0,
        flow: None,
    };
    learn::learn_our_channels(st, &s);
    Ok(s)
}

/// Why the loop must not start another attempt, if it must not.
fn must_stop<N: Lightningd>(st: &State<N>, s: &Session) -> Option<RpcFailure> {
    let why = if s
        .extra
        .cancel
        .as_ref()
        .is_some_and(|c| c.load(Ordering::SeqCst))
    {
        format!(
            "stopped by rebalancestop after {} attempt(s)",
            s.attempts.len()
        )
    } else if st.now_ms() >= s.deadline_ms {
        format!(
            "gave up after {}s and {} attempt(s)",
            s.retry_for,
            s.attempts.len()
        )
    } else {
        return None;
    };
    Some(
        RpcFailure::new(error::PAY_STOPPED_RETRYING, why)
            .with_data(json!({"attempts": attempts_json(&s.attempts)})),
    )
}

/// The attempt loop: route, check, pay, learn, until paid, stopped or out of time.
async fn run<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    dryrun: bool,
) -> Result<Value, RpcFailure> {
    loop {
        let amount = s.req.amount_msat;
        let (cap, spendable) = (s.cap_msat, s.req.out.spendable_msat);
        let set = route::next_set(st, s, amount, cap, spendable)?;
        let fee_msat: u64 = set.iter().map(|h| route_fee_msat(h)).sum();
        s.check_set(&set, fee_msat)?;
        if dryrun {
            return Ok(answer::quote(st, s, &set, fee_msat));
        }
        if let Some(stop) = must_stop(st, s) {
            return Err(stop);
        }
        pay::ensure_invoice(st, s).await?;
        // Routes are built to end at us; refuse to send anything that does not.
        if set
            .iter()
            .any(|hops| hops.last().map(|h| h.node_id.as_str()) != Some(s.req.our_id.as_str()))
        {
            return Err(RpcFailure::new(
                error::PLUGIN_ERROR,
                "internal error: a route that does not end at our node; nothing was sent",
            ));
        }
        let scids = |hops: &Vec<Hop>| -> Vec<String> {
            hops.iter()
                .map(|h| h.short_channel_id.to_string())
                .collect()
        };
        let mut attempt = Attempt {
            route: scids(&set[0]),
            fee_msat,
            outcome: String::new(),
            parts: set.iter().map(scids).collect(),
        };
        s.last_sent = set[0].clone();
        s.tell_time(st.now_ms());
        s.tell(&match set.as_slice() {
            [hops] => format!(
                "attempt {}: {} hops{}, fee {fee_msat}msat ({} ppm)",
                s.attempts.len() + 1,
                hops.len(),
                via(hops),
                ppm(fee_msat, s.req.amount_msat)
            ),
            parts => format!(
                "attempt {}: {} parts, fee {fee_msat}msat ({} ppm): {}",
                s.attempts.len() + 1,
                parts.len(),
                ppm(fee_msat, s.req.amount_msat),
                parts
                    .iter()
                    .map(|h| format!(
                        "{}{}",
                        display_sat(h.last().map_or(0, |l| l.amount_msat)),
                        via(h)
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        });
        let outcome = pay::attempt(st, s, set, &mut attempt).await;
        info!(
            "rebalance {} -> {} {}msat, attempt {} via {} for {fee_msat}msat: {}",
            s.req.out_scid,
            s.req.inc_scid,
            s.req.amount_msat,
            s.attempts.len() + 1,
            attempt.route.join(","),
            attempt.outcome
        );
        s.attempts.push(attempt);
        let attempts = s.attempts.len() as u32;
        st.inflight.update(s.id, |r| r.attempts = attempts);
        match &outcome {
            Outcome::Retry => s.tell(&format!(
                "attempt {attempts} failed: {}; trying another route",
                s.attempts.last().map_or("", |a| a.outcome.as_str())
            )),
            Outcome::Stop(f) => s.tell(&format!("attempt {attempts} failed: {}", f.message)),
            Outcome::Paid { .. } | Outcome::StillInFlight => {}
        }
        match outcome {
            Outcome::Paid { fee_msat } => {
                let done = answer::paid(st, s, fee_msat);
                s.tell(done["message"].as_str().unwrap_or("rebalanced"));
                return Ok(done);
            }
            Outcome::Retry => continue,
            Outcome::Stop(f) => {
                let mut data = f.data.clone().unwrap_or_else(|| json!({}));
                data["attempts"] = attempts_json(&s.attempts);
                return Err(f.with_data(data));
            }
            Outcome::StillInFlight => {
                let hash = s
                    .invoice
                    .as_ref()
                    .map(|i| i.payment_hash.clone())
                    .unwrap_or_default();
                return Err(RpcFailure::new(
                    error::PAY_STOPPED_RETRYING,
                    format!(
                        "gave up after {}s with a payment still in flight; its invoice is \
                         deleted, so it cannot complete and will fail back when released",
                        s.retry_for
                    ),
                )
                .with_data(json!({"attempts": attempts_json(&s.attempts), "payment_hash": hash})));
            }
        }
    }
}

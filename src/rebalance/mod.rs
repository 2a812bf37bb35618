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
//! 3. [`pay`]: our invoice, made once; then sendpay + waitsendpay (a set the model is unsure
//!    of is probed first: [`probe::before::before_paying`]);
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
pub mod probe; // how much can move now, found with probes that pay nothing
pub mod route; // step 2: the best route not ruled out
pub mod session; // one rebalance in progress

use crate::config::Config;
use crate::core::amount::MSAT_PER_SAT;
use crate::core::amount::{display_sat, fee_cap_msat, ppm};
use crate::core::flow::cheap_first_config;
use crate::core::liquidity::Liquidity;
use crate::core::route::{Hop, set_fee_msat};
use crate::error::{self, RpcFailure};
use crate::lightningd::Lightningd;
use crate::params::{ProbeParams, RebalanceParams};
use crate::state::State;
use crate::state::inflight::Running;
use check::{Checked, check_request};
use circle::Circle;
use log::info;
use probe::{Found, ProbeBudget, ProbeSummary};
use serde_json::{Value, json};
use session::{Attempt, Extra, Outcome, Session, attempts_json, via};
use std::sync::Mutex;

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
        mut p: RebalanceParams,
        extra: Extra,
    ) -> Result<Value, RpcFailure> {
        if p.amount_max {
            // The most that can move now, found by probing first; then that, as asked.
            let budget = self.probe_budget();
            let found = self
                .probe_found(
                    &probe_params(&p),
                    None,
                    None,
                    budget,
                    extra.progress.clone(),
                    None,
                )
                .await?;
            if found.1.amount_msat == 0 {
                return Err(RpcFailure::new(
                    error::PAY_ROUTE_NOT_FOUND,
                    format!(
                        "amount_msat=max: probes found nothing that moves from {} to {} within the fee cap \
                         ({} probes)",
                        p.outgoing, p.incoming, found.1.probes
                    ),
                ));
            }
            p.amount_msat = Some(found.1.amount_msat);
            p.amount_max = false;
        }
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
            let mut s = new_session(self, id, &p, req.clone(), graph, started_ms, extra.clone())?;
            let mut result = run(self, &mut s, p.dryrun).await;
            if refused_unsent(&s, &result)
                && (self.graph_cache.age_ms(self.now_ms()).await)
                    .is_some_and(|a| a >= REREAD_GRAPH_MS)
            {
                self.graph_cache.mark_stale().await;
                let graph = self.graph().await?;
                s = new_session(self, id, &p, req, graph, started_ms, extra)?;
                result = run(self, &mut s, p.dryrun).await;
            }
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

/// A rebalance refused before anything went out (no route or set, or none within the fee
/// cap), planned on a graph read at least this long ago, plans once more on a fresh one:
/// channels come back as their nodes do (a channel whose end was found offline is disabled
/// until the two reconnect), and a copy minutes old may lack the way (`make bench-sim`, seed
/// 175 at 1M sat: three rebalances refused with 206 whose route at 17-215 sat ran through a
/// node back online).
const REREAD_GRAPH_MS: u64 = 60_000;

/// Whether `result` refuses the rebalance before any probe or payment went out.
fn refused_unsent(s: &Session, result: &Result<Value, RpcFailure>) -> bool {
    s.attempts.is_empty()
        && s.probes == 0
        && matches!(result, Err(f) if f.code == error::PAY_ROUTE_NOT_FOUND
            || f.code == error::PAY_ROUTE_TOO_EXPENSIVE)
}

/// Probes a job may send to size one move.
const SIZING_PROBES: u32 = 8;

/// The probe a `rebalance amount_msat=max` runs first.
fn probe_params(p: &RebalanceParams) -> ProbeParams {
    ProbeParams {
        outgoing: p.outgoing.clone(),
        incoming: p.incoming.clone(),
        amount_msat: None,
        maxfeeppm: p.maxfeeppm,
        exemptfee: p.exemptfee,
        maxparts: p.maxparts,
    }
}

impl<N: Lightningd> State<N> {
    /// `rebalance-probe`: without an amount, the most that can move now from `outgoing` to
    /// `incoming` within the fee cap; with one, whether it can. Nothing is paid.
    pub async fn rebalance_probe(
        &self,
        p: ProbeParams,
        progress: Option<std::sync::Arc<dyn crate::progress::Progress>>,
    ) -> Result<Value, RpcFailure> {
        let budget = self.probe_budget();
        let (s, found, took_ms) = self
            .probe_found(&p, None, None, budget, progress, None)
            .await?;
        Ok(answer::probed(&s, &p, &found, took_ms))
    }

    /// What one probing call may spend, from the options.
    fn probe_budget(&self) -> ProbeBudget {
        ProbeBudget {
            probes: self.config.probe_max_probes,
            secs: self.config.probe_max_secs,
        }
    }

    /// How much of an automatic move of `planned_msat` (fee cap `cap_msat`) can go now: all of
    /// it when the model is sure enough it moves, else what probes find (never more than
    /// planned), the cap scaled to the amount. The probes sent come with it.
    pub async fn size_move(
        &self,
        outgoing: &str,
        incoming: &str,
        planned_msat: u64,
        cap_msat: u64,
    ) -> Result<Found, RpcFailure> {
        let p = ProbeParams::for_move(outgoing, incoming, None);
        let budget = ProbeBudget {
            probes: SIZING_PROBES.min(self.config.probe_max_probes),
            secs: self.config.probe_max_secs,
        };
        self.probe_found(&p, Some(planned_msat), Some(cap_msat), budget, None, None)
            .await
            .map(|(_, found, _)| found)
    }

    /// Runs the probes `p` asks for (the most that can move, up to `upper` when given; or
    /// whether `p`'s amount can), with `cap` for the upper amount when given (else the fee cap
    /// options and `p` say); the session's summary and what was found. `scouts`, given for
    /// background probing (its scouts' probes): see [`Extra::background`]; its channels do
    /// not count as busy.
    async fn probe_found(
        &self,
        p: &ProbeParams,
        upper: Option<u64>,
        cap: Option<u64>,
        budget: ProbeBudget,
        progress: Option<std::sync::Arc<dyn crate::progress::Progress>>,
        scouts: Option<u32>,
    ) -> Result<(ProbeSummary, Found, u64), RpcFailure> {
        let started_ms = self.now_ms();
        let background = scouts.is_some();
        // The channels, checked as a rebalance checks them (for the smallest amount: how much
        // can move is the question).
        let rp = RebalanceParams {
            outgoing: p.outgoing.clone(),
            incoming: p.incoming.clone(),
            amount_msat: Some(p.amount_msat.unwrap_or(MSAT_PER_SAT)),
            maxfeeppm: p.maxfeeppm,
            exemptfee: p.exemptfee,
            retry_for: Some(budget.secs.max(1)),
            dryrun: true,
            maxparts: p.maxparts,
            amount_max: false,
        };
        let upper_asked = upper;
        let mut req = check_request(&self.node, &rp).await?;
        let maxfeeppm = rp.maxfeeppm.unwrap_or(self.config.maxfeeppm);
        // At most what the outgoing channel can send with the most fee the cap allows, and
        // what the incoming one can receive.
        let upper =
            (req.out.spendable_msat as u128 * 1_000_000 / (1_000_000 + maxfeeppm as u128)) as u64;
        // A rebalance's amount is within the incoming peer's htlc limits on our channel, in
        // each of its parts (the circle checks it), so the most is too.
        let parts = circle::parts_in(&req.out, &req.inc, max_parts(&rp, &self.config));
        let inc_htlc_max = req
            .inc
            .updates
            .remote
            .as_ref()
            .and_then(|u| u.htlc_maximum_msat)
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::try_from(parts).unwrap_or(u64::MAX));
        let upper = upper
            .min(req.inc.receivable_msat)
            .min(inc_htlc_max)
            .min(upper_asked.unwrap_or(u64::MAX))
            / MSAT_PER_SAT
            * MSAT_PER_SAT;
        if p.amount_msat.is_none() {
            req.amount_msat = upper.max(MSAT_PER_SAT);
        }
        let out_scid = req.out_scid.clone();
        // Background probing gives way: it stops before its next probe once this call is
        // registered, so wait out the probe it has in flight.
        let claim = Running {
            outgoing_scid: req.out_scid.clone(),
            incoming_scid: req.inc_scid.clone(),
            amount_msat: req.amount_msat,
            started_ms,
            dryrun: true,
            background,
            ..Running::default()
        };
        let id = self.inflight.start(claim);
        // At most the budget's seconds, in steps of 50 ms of real time.
        let mut steps = budget.secs.max(1).saturating_mul(20);
        while !background && steps > 0 && self.inflight.background_probe_on(&out_scid) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            steps -= 1;
        }
        if !self.inflight.start_probe(&out_scid, background) {
            self.inflight.end(id);
            return Err(RpcFailure::new(
                error::PLUGIN_ERROR,
                format!("a probe is already running out through channel {out_scid}: one at a time"),
            ));
        }
        let result = async {
            let graph = self.graph().await?;
            let extra = Extra {
                progress,
                fee_cap_msat: cap,
                background,
                ..Extra::default()
            };
            let mut s = new_session(self, id, &rp, req, graph, started_ms, extra)?;
            if !background {
                s.beliefs.hop_bits = self.config.probe_hop_bits;
            }
            let found = match p.amount_msat {
                Some(a) if let Some(n) = scouts => {
                    probe::scout::in_background(self, &mut s, a, budget, n).await
                }
                Some(a) => probe::probe_amount(self, &mut s, a, budget).await,
                // Sizing a move: when the model is sure it goes whole, no probe is needed.
                None if cap.is_some() && probe::sure(self, &mut s, upper) => Ok(Found {
                    amount_msat: upper,
                    ..Found::default()
                }),
                None => probe::probe_max(self, &mut s, upper, budget).await,
            };
            Ok::<_, RpcFailure>((s, found))
        }
        .await;
        self.inflight.end(id);
        self.inflight.end_probe(&out_scid);
        let (s, found) = result?;
        self.save_liquidity().await;
        let summary = ProbeSummary {
            out_scid: s.req.out_scid.clone(),
            inc_scid: s.req.inc_scid.clone(),
            cap_msat: fee_cap_msat(
                found.as_ref().map_or(0, |f| f.amount_msat),
                s.maxfeeppm,
                s.exemptfee_msat,
            ),
        };
        self.model.give_view((s.beliefs, s.scratch));
        Ok((summary, found?, self.now_ms().saturating_sub(started_ms)))
    }
}

/// Most parts a set of `p` may have: its `maxparts`, else the option.
fn max_parts(p: &RebalanceParams, config: &Config) -> usize {
    p.maxparts.map_or(config.max_parts, |m| m as usize).max(1)
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
    let max_parts = max_parts(p, &st.config);
    let circle = Circle::new(
        &req.our_id,
        &req.out,
        &req.inc,
        req.amount_msat,
        max_parts,
        st.config.final_cltv + FINAL_CLTV_MARGIN,
        &graph,
    )?;
    let local_model = (!st.config.liquidity_memory).then(|| Mutex::new(Liquidity::new()));
    let (mut beliefs, scratch) = st.model.take_view();
    // The view is handed from call to call: what a probe call priced hops at must not stay.
    beliefs.hop_bits = 0.0;
    let planned_msat = req.amount_msat;
    let mut s = Session {
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
        max_parts,
        groupid: 0,
        next_partid: 0,
        flow: None,
        planned_msat: 0,
        probes: 0,
        last_erring_index: None,
        diverted: None,
        policy_changed: false,
        rereads: 0,
        last_hop_updates: 0,
        liquidity_failures: Default::default(),
        pace: Default::default(),
    };
    s.planned_msat = planned_msat;
    learn::learn_our_channels(st, &s);
    Ok(s)
}

/// `f` with this rebalance's attempts in its data.
fn with_attempts(f: RpcFailure, s: &Session) -> RpcFailure {
    let mut data = f.data.clone().unwrap_or_else(|| json!({}));
    data["attempts"] = attempts_json(&s.attempts);
    f.with_data(data)
}

/// Why the loop must not start another attempt, if it must not.
fn must_stop<N: Lightningd>(st: &State<N>, s: &Session) -> Option<RpcFailure> {
    let why = if s.stopped() {
        format!(
            "stopped by rebalancestop after {} attempt(s)",
            s.attempts.len()
        )
    } else if st.now_ms() >= s.deadline_ms {
        s.gave_up()
    } else {
        return None;
    };
    let failures = s.liquidity_failures.to_json();
    Some(
        RpcFailure::new(error::PAY_STOPPED_RETRYING, why).with_data(
            json!({"attempts": attempts_json(&s.attempts), "liquidity_failures": failures}),
        ),
    )
}

/// The attempt loop: route, check, pay, learn, until paid, stopped or out of time.
async fn run<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    dryrun: bool,
) -> Result<Value, RpcFailure> {
    let mut probed = probe::before::BeforePaying::default();
    // Sets whose probe or payment failed: how the next is planned (`route::plan_config`).
    let mut failed = 0;
    loop {
        if let Some(old) = route::reread_changed_policy(st, s).await {
            probed.rebase(&old, &s.graph);
        }
        let amount = s.req.amount_msat;
        let (cap, spendable) = (s.cap_msat, s.req.out.spendable_msat);
        // A set probed before it is paid may be a cheaper, less certain one: its probe failing
        // costs time, not fee (`flow::cheap_first_config`).
        let cheap = (failed < route::CHEAP_PLANS)
            .then(|| route::next_set_with(st, s, amount, cap, spendable, &cheap_first_config()))
            .and_then(Result::ok)
            .filter(|set| probed.could_probe(st, s, set));
        let set = match cheap {
            Some(set) => set,
            None => {
                let config = route::plan_config(st, s, failed);
                route::next_set_with(st, s, amount, cap, spendable, &config)
                    .map_err(|e| s.diverted.take().map_or(e, |d| with_attempts(d, s)))?
            }
        };
        let fee_msat = set_fee_msat(&set);
        s.check_set(&set, fee_msat)?;
        if dryrun {
            return Ok(answer::quote(st, s, &set, fee_msat));
        }
        if let Some(stop) = must_stop(st, s) {
            return Err(stop);
        }
        if !probe::before::before_paying(st, s, &set, &mut probed).await? {
            failed += 1;
            continue;
        }
        let set = probe::before::cheaper(st, s, set, &mut probed).await?;
        let fee_msat = set_fee_msat(&set);
        s.check_set(&set, fee_msat)?;
        if let Some(stop) = must_stop(st, s) {
            return Err(stop);
        }
        // Routes are built to end at us and deliver the amount: refuse to send any that do not.
        s.check_sendable(&set)?;
        pay::ensure_invoice(st, s).await?;
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
        let sent_ms = st.now_ms();
        let outcome = pay::attempt(st, s, set, &mut attempt).await;
        if matches!(outcome, Outcome::Retry) {
            probed.paced(s, st.now_ms().saturating_sub(sent_ms));
        }
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
            Outcome::Retry => {
                failed += 1;
                continue;
            }
            Outcome::Stop(f) => return Err(with_attempts(f, s)),
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

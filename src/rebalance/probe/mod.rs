//! Probing: how much can move now from `outgoing` to `incoming` within the fee cap, or whether
//! a given amount can, found with HTLCs that can never be paid. A probe is a route (a part of a
//! set) sent with a random payment hash: our node knows no invoice for it and fails it at once
//! (`incorrect_or_unknown_payment_details` from the route's end), so reaching us proves every
//! hop carried its amount, and a failure on the way reads as an attempt's would. Every probe
//! teaches the model; nothing is paid, no invoice is made.
//!
//! The most that can move is searched between what probes proved and what the planner ruled
//! out: after a failed set, at the amount the model (having learned it) now weighs best, and
//! by halving when it has none; the answer is the largest set of parts the proven amounts can
//! carry together within the cap (a flow over the channels at what probes proved they carry),
//! so it is never more than the probes showed can move. A part planned over a route a probe
//! proved at a little less (within 1/32) is cut to what was proven, not probed again. Where
//! parts meet again past their fork (their sum there unprovable) and no one route carries the
//! amount, those channels are planned at no more than was proven for the rest of the call.
//! Parallel channels at the same fees count as one ([`routes::pool_of`]: a node forwards over
//! whichever has the most), so one channel's liquidity is never proven once per channel. One
//! probe at a time: never more than one probe of ours in flight on a channel of ours.
//! Background probing's probes also count against the hourly budget and stop as soon as
//! anything else runs.

pub mod before;
mod found;
mod plan;
mod routes;
pub mod scout;

use super::learn::{failed, learn_carried};
use super::route;
use super::session::{Attempt, Outcome, Session, via};
use crate::core::amount::{MSAT_PER_SAT, display_sat};
use crate::core::flow::{self, FlowScratch};
use crate::core::graph::{EdgeIdx, Graph};
use crate::core::route::{Hop, set_fee_msat};
use crate::error::{self, RpcFailure};
use crate::lightningd::Lightningd;
use crate::lightningd::types::PayFailure;
use crate::lightningd::types::failcode::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS;
use crate::state::State;
use found::MIN_HOPS;
pub use found::{Found, ProbeBudget};
pub use plan::sure;
use plan::{SURE, next_amount, plan, plan_in_time, plan_one_route};
use routes::{cut_to_proven, past_last_hop, proven_together, set_use};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// The label of every probe's sendpay.
pub const PROBE_LABEL: &str = "cln-rebalance probe";

/// The most sets [`probe_max`] plans in one call (a few per probe at most in practice).
const MAX_PLANS: u32 = 256;

/// What a probe's answer says of its request.
pub struct ProbeSummary {
    pub out_scid: String,
    pub inc_scid: String,
    /// The fee cap at the amount found.
    pub cap_msat: u64,
}

/// How one probe ended.
enum Probe {
    /// It reached us: every hop carried its amount.
    Carried,
    /// It failed on the way (learned from): another route may do. How many hops it went
    /// before the one that failed it, and why it failed.
    Failed(usize, String),
    /// Probing must stop (a failure on our own channels, a probe stuck in flight, ...).
    Stop(RpcFailure),
}

/// A payment hash no invoice of ours has (hex): random, so it can never be paid.
fn random_hash() -> String {
    let mut out = String::with_capacity(64);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    for i in 0..4u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(seed ^ i);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Sends one probe along `hops` and waits for it; learns from how it ended.
async fn probe<N: Lightningd>(st: &State<N>, s: &mut Session, hops: &[Hop]) -> Probe {
    let hash = random_hash();
    let secret = random_hash();
    if let Err(e) = st
        .node
        .sendpay(hops, &hash, &secret, PROBE_LABEL, None)
        .await
    {
        return classify(st, s, e, hops).await;
    }
    let wait = s
        .deadline_ms
        .saturating_sub(st.now_ms())
        .div_ceil(1000)
        .clamp(1, 60);
    match st.node.waitsendpay(&hash, wait, None).await {
        Ok(_) => Probe::Stop(RpcFailure::new(
            error::PLUGIN_ERROR,
            "a probe was paid: lightningd knows an invoice for a random payment hash",
        )),
        Err(e) if e.code == Some(error::PAY_IN_PROGRESS) => Probe::Stop(RpcFailure::new(
            error::PAY_STOPPED_RETRYING,
            "a probe is still in flight (held on the way): probing stops; it can only fail back",
        )),
        Err(e) => classify(st, s, e, hops).await,
    }
}

/// A probe's failure: from our own node at the route's end it carried; elsewhere learn.
async fn classify<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    e: cln_rpc::RpcError,
    hops: &[Hop],
) -> Probe {
    let f: PayFailure = e
        .data
        .clone()
        .and_then(|d| serde_json::from_value(d).ok())
        .unwrap_or_default();
    // Any failure from a route's end other than us (a probe of shared channels) proves the
    // route too: only its end could answer it.
    if f.erring_index == Some(hops.len() as u64)
        && (f.failcode == Some(INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS) || !ends_at_us(s, hops))
    {
        learn_carried(st, s, hops);
        return Probe::Carried;
    }
    // A probe asking more of the incoming peer's hop to us than it forwards fails there:
    // having reached the peer, it proves every hop before.
    let n = hops.len();
    if f.erring_index == Some(n.saturating_sub(1) as u64)
        && n >= 2
        && ends_at_us(s, hops)
        && past_last_hop(s, &hops[n - 1])
    {
        learn_carried(st, s, &hops[..n - 1]);
        return Probe::Carried;
    }
    let mut one = Attempt::default();
    let went = f
        .erring_index
        .map_or(hops.len(), |i| (i as usize).clamp(1, hops.len()));
    match failed(st, s, e, hops, &mut one).await {
        Outcome::Retry => Probe::Failed(went, one.outcome),
        Outcome::Stop(f) => Probe::Stop(f),
        Outcome::Paid { .. } | Outcome::StillInFlight => Probe::Stop(RpcFailure::new(
            error::PLUGIN_ERROR,
            "unexpected outcome of a probe",
        )),
    }
}

/// How probing a set ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetProbed {
    /// Every route reached us.
    Carried,
    /// A route failed on the way (the model learned why).
    Failed,
    /// A route was not sent: the probes or the seconds left could not pay for it. Planning
    /// again would find what was just planned, so probing ends.
    OutOfBudget,
    /// Every part was proven alone already, but not what parts put together on a channel they
    /// share past where they fork (no probe can prove that: one at a time through our
    /// channel): probing this set again would prove nothing more.
    Unprovable,
}

/// Probes every route of `set`, one after the other; notes what each proved in `proven`.
async fn probe_set<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    set: &[Vec<Hop>],
    proven: &mut HashMap<EdgeIdx, u64>,
    found: &mut Found,
    budget: ProbeBudget,
) -> Result<SetProbed, RpcFailure> {
    let used = set_use(s, set);
    let before = found.probes;
    for i in 0..set.len() {
        if let Some(hops) = routes::for_part(s, set, i, &used, proven)
            && let Some(end) = probe_one(st, s, &hops, proven, found, budget).await?
        {
            return Ok(end);
        }
    }
    // The channels parts share, last: worth a probe only once every part carried.
    while let Some(hops) = routes::for_shared(s, set, &used, proven) {
        if let Some(end) = probe_one(st, s, &hops, proven, found, budget).await? {
            return Ok(end);
        }
    }
    if found.probes == before && !proven_together(s, set, proven) {
        return Ok(SetProbed::Unprovable);
    }
    Ok(SetProbed::Carried)
}

/// Sends one probe of a set along `hops`, when the budget allows; notes what it proved in
/// `proven`. `None` when it carried; else how the set's probing ends.
async fn probe_one<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    hops: &[Hop],
    proven: &mut HashMap<EdgeIdx, u64>,
    found: &mut Found,
    budget: ProbeBudget,
) -> Result<Option<SetProbed>, RpcFailure> {
    if found.probes >= budget.probes || !found.time_left(hops.len(), st.now_ms(), s.deadline_ms) {
        return Ok(Some(SetProbed::OutOfBudget));
    }
    if s.extra.background {
        background_may_send(st)?;
        st.background.record(st.now_secs());
    }
    found.probes += 1;
    let sent_ms = st.now_ms();
    let outcome = probe(st, s, hops).await;
    // The pace over the hops it went (to the failing one and back, or round to us).
    let went = match &outcome {
        Probe::Failed(went, _) => *went,
        _ => hops.len(),
    };
    let took_ms = st.now_ms().saturating_sub(sent_ms);
    found.ms_per_hop = found.ms_per_hop.max(took_ms / went.max(1) as u64);
    s.tell(&format!(
        "probe {}: {} over {} hops{}: {}",
        found.probes,
        display_sat(hops.last().map_or(0, |h| h.amount_msat)),
        hops.len(),
        via(hops),
        match &outcome {
            Probe::Carried if !ends_at_us(s, hops) => {
                "reached the node where the parts part ways".to_string()
            }
            Probe::Carried if past_last_hop(s, &hops[hops.len() - 1]) => {
                "reached the incoming peer (asked more than one HTLC's worth of it)".to_string()
            }
            Probe::Carried => "reached us".to_string(),
            Probe::Failed(_, why) => format!("failed: {why}"),
            Probe::Stop(e) => e.message.clone(),
        }
    ));
    // What it proved: every hop between our own two (to the route's end when it is not ours)
    // when it carried; the hops before the failing one when it failed.
    let end = match &outcome {
        Probe::Carried => hops.len() - usize::from(ends_at_us(s, hops)),
        Probe::Failed(went, _) if *went < hops.len() => *went,
        _ => 1,
    };
    for h in hops.get(1..end).unwrap_or_default() {
        if let Some(e) = routes::pool_of(s, h) {
            let p = proven.entry(e).or_default();
            *p = (*p).max(h.amount_msat);
        }
    }
    match outcome {
        Probe::Carried => {
            found.carried += 1;
            Ok(None)
        }
        Probe::Failed(..) => Ok(Some(SetProbed::Failed)),
        Probe::Stop(e) => Err(e),
    }
}

/// Whether `hops` come back to us (a probe of the channels parts share ends where they fork).
fn ends_at_us(s: &Session, hops: &[Hop]) -> bool {
    hops.last().is_some_and(|h| h.node_id == s.req.our_id)
}

/// Whether background probing may send one more probe now: no other rebalance, probe or job
/// runs, and the hour's budget is not spent (an error says which).
fn background_may_send<N: Lightningd>(st: &State<N>) -> Result<(), RpcFailure> {
    let why = if st.inflight.foreground_running() || st.running_job().is_some() {
        "background probing yields: a rebalance, a probe or a job runs"
    } else if st
        .background
        .remaining(st.now_secs(), st.config.probe_per_hour)
        == 0
    {
        "background probing: the hour's probes are spent"
    } else {
        return Ok(());
    };
    Err(RpcFailure::new(error::PAY_STOPPED_RETRYING, why))
}

/// Whether `amount_msat` can move now: a set planned and probed, replanned around what failed
/// while the budget lasts. A set whose parts each carried but whose sum on a channel they
/// share past their fork no probe can prove is tried once as one route for the whole amount
/// (whose probe proves or rules it out), as in [`probe_max`].
pub async fn probe_amount<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    amount_msat: u64,
    budget: ProbeBudget,
) -> Result<Found, RpcFailure> {
    let mut found = Found::default();
    let mut proven = HashMap::new();
    let (mut one_route, mut tried_one) = (false, false);
    while found.probes < budget.probes && found.time_left(MIN_HOPS, st.now_ms(), s.deadline_ms) {
        if let Some(old) = route::reread_changed_policy(st, s).await {
            rebase_edges(&mut proven, &old, &s.graph);
        }
        let whole = std::mem::take(&mut one_route);
        let planned = if whole {
            plan_one_route(st, s, amount_msat, &found)
        } else {
            plan(st, s, amount_msat)
        };
        let set = match planned {
            Ok(set) => set,
            Err(e) if e.code == error::INVALID_PARAMS => return Err(e),
            // Nothing left that could carry it within the cap: it cannot move now.
            Err(_) => break,
        };
        let carried = match probe_set(st, s, &set, &mut proven, &mut found, budget).await? {
            SetProbed::Carried | SetProbed::Unprovable => true,
            SetProbed::Failed => false,
            SetProbed::OutOfBudget => break,
        };
        if carried && proven_together(s, &set, &proven) {
            found.proven(amount_msat, set);
            return Ok(found);
        }
        if carried && set.len() > 1 && !tried_one {
            (one_route, tried_one) = (true, true);
        } else if carried {
            // Probing the same set again would prove no more.
            break;
        }
    }
    // Each part carried alone, but parts share a channel beyond what one probe proved: the
    // amount moves if what was proven carries it together.
    let lo = amount_msat.saturating_sub(1);
    if let Some((a, set)) = combine(s, &proven, lo, amount_msat, st.config.min_part_msat) {
        found.proven(a, set);
    }
    Ok(found)
}

/// The most that can move now, within `upper_msat` and the fee cap at each amount.
pub async fn probe_max<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    upper_msat: u64,
    budget: ProbeBudget,
) -> Result<Found, RpcFailure> {
    let mut found = Found::default();
    let mut proven: HashMap<EdgeIdx, u64> = HashMap::new();
    // Amounts: `lo` proven to move, `hi` ruled out (or the upper bound, untried).
    let (mut lo, mut hi) = (0u64, upper_msat);
    let mut amount = upper_msat;
    // Close enough: within 1/32 of what is proven (and never finer than 1,000 sat).
    let close = |lo: u64, hi: u64| hi.saturating_sub(lo) <= (lo / 32).max(1000 * MSAT_PER_SAT);
    // After a set whose parts share a channel past their fork (their sum there unprovable):
    // the same amount over one route, whose probe proves or rules out the whole of it.
    let mut one_route = false;
    let mut tried_one: Option<u64> = None;
    // What an unprovable set put on channels past its fork more than probes proved there:
    // capped at what was proven once the one route for its amount has been tried.
    let mut caps: Vec<EdgeIdx> = Vec::new();
    // Plans made: a guard against a search that plans without ever sending (each step below
    // narrows the amounts or sends, but a plan costs CPU and no simulated or probe time).
    let mut plans = 0u32;
    while found.probes < budget.probes
        && plans < MAX_PLANS
        && found.time_left(MIN_HOPS, st.now_ms(), s.deadline_ms)
        && !close(lo, hi)
        // Nothing below the smallest HTLC our two peers take can move.
        && amount >= s.circle.htlc_minimum_msat()
    {
        plans += 1;
        if let Some(old) = route::reread_changed_policy(st, s).await {
            rebase_edges(&mut proven, &old, &s.graph);
            caps = (caps.iter())
                .filter_map(|&e| old.same_edge_in(e, &s.graph))
                .collect();
        }
        let whole = std::mem::take(&mut one_route);
        let planned = if whole {
            plan_one_route(st, s, amount, &found)
        } else {
            plan_in_time(st, s, amount, &found)
        };
        let mut set = match planned {
            Ok(set) => set,
            // No set within the cap for this amount (or none at all): less, then.
            Err(e) if e.code == error::INVALID_PARAMS => return Err(e),
            // No one route either, where the set's sum was unprovable: less, then.
            Err(_) if whole => {
                cap_edges(s, std::mem::take(&mut caps), &proven);
                hi = amount;
                amount = halfway(lo, hi);
                continue;
            }
            Err(_) => {
                hi = amount;
                amount = next_amount(st, s, lo, hi - 1, &found, budget)
                    .unwrap_or_else(|| halfway(lo, hi));
                continue;
            }
        };
        // Parts a probe proved a little short of what they ask are cut to it: the set then
        // moves a little less, but needs no probe of those parts again.
        let mut moves = amount;
        if let Some((cut, total)) = cut_to_proven(s, &set, &proven, lo)
            && set_fee_msat(&cut) <= s.cap_for(total, s.planned_msat)
        {
            (set, moves) = (cut, total);
        }
        // A set the time left cannot probe counts as failed here: a smaller amount may go
        // over shorter routes, and halving ends the search in any case.
        let probed = probe_set(st, s, &set, &mut proven, &mut found, budget).await?;
        let pending = std::mem::take(&mut caps);
        if whole && probed != SetProbed::Carried {
            cap_edges(s, pending, &proven);
        }
        if probed == SetProbed::Carried && proven_together(s, &set, &proven) {
            lo = moves;
            found.proven(moves, set);
            if lo >= hi {
                break;
            }
            amount = halfway(lo, hi);
        } else if probed == SetProbed::Unprovable && set.len() > 1 && tried_one != Some(amount) {
            // The planner would offer the same set again: one route for the whole amount.
            one_route = true;
            tried_one = Some(amount);
            caps = unprovable(s, &set, &proven);
        } else if probed == SetProbed::Unprovable {
            // Nor does one route (none, or it was tried): the same amount planned again with
            // no more on the channels past the fork than was proven there, so the rest goes
            // by ways probes can prove; less when nothing there was over.
            let over = unprovable(s, &set, &proven);
            if over.is_empty() {
                hi = amount;
                amount = halfway(lo, hi);
            }
            cap_edges(s, over, &proven);
        } else {
            // The failure taught the model a channel to route around: the amount whose set
            // now weighs most, the same one while it still does (one failed set does not rule
            // an amount out); halving only when the planner has nothing worth sending below.
            match next_amount(st, s, lo, amount, &found, budget) {
                Some(a) => amount = a,
                None => {
                    hi = amount;
                    amount = halfway(lo, hi);
                }
            }
        }
    }
    // What the proven amounts carry together: at least what one set proved, sometimes more
    // (parts of different rounds combined), never more than probes showed.
    if let Some(more) = combine(s, &proven, lo, upper_msat, st.config.min_part_msat) {
        found.proven(more.0, more.1);
    }
    Ok(found)
}

/// `map`, made on graph `old`, on `new` (a later read): each edge by its channel direction,
/// those `new` lacks dropped.
pub(super) fn rebase_edges<V>(map: &mut HashMap<EdgeIdx, V>, old: &Graph, new: &Graph) {
    *map = std::mem::take(map)
        .into_iter()
        .filter_map(|(e, v)| Some((old.same_edge_in(e, new)?, v)))
        .collect();
}

/// `lo < x <= hi` halfway between, in whole satoshis.
fn halfway(lo: u64, hi: u64) -> u64 {
    let mid = lo + (hi - lo) / 2;
    (mid / MSAT_PER_SAT * MSAT_PER_SAT)
        .max(lo + MSAT_PER_SAT)
        .min(hi)
}

/// The largest set, above `lo` and up to `upper_msat`, the channels carry at what probes proved
/// (our own two hops aside: the request checked them), within the fee cap at its amount.
fn combine(
    s: &Session,
    proven: &HashMap<EdgeIdx, u64>,
    lo: u64,
    upper_msat: u64,
    min_part_msat: u64,
) -> Option<(u64, Vec<Vec<Hop>>)> {
    if proven.is_empty() {
        return None;
    }
    let req = s.circle.flow_request(
        upper_msat,
        s.max_parts,
        min_part_msat.min(lo.max(1000 * MSAT_PER_SAT)),
        s.cap_for(upper_msat, s.planned_msat),
        s.req.out.spendable_msat,
    )?;
    let mut scratch = FlowScratch::default();
    let flow = flow::max_flow_within_cap(
        &s.graph,
        &req,
        // Per parallel group: its own channel direction carries what was proven, the others
        // none (the same liquidity, forwarded non-strictly, is not counted once per channel).
        |e| proven.get(&e).copied().unwrap_or(0),
        |a| s.cap_for(a, s.planned_msat),
        1000 * MSAT_PER_SAT,
        &mut scratch,
    )?;
    let amount: u64 = flow.parts.iter().map(|p| p.amount_msat).sum();
    if amount <= lo {
        return None;
    }
    Some((amount, s.circle.set_hops(&s.graph, &flow)?))
}

/// No one route carried an unprovable set's amount: from now on no set puts more on `edges`
/// (that set's channels past its fork, each standing for its parallel group) than probes
/// proved there, all of it on the group's own channel direction ([`routes::pool_of`]).
fn cap_edges(s: &mut Session, edges: Vec<EdgeIdx>, proven: &HashMap<EdgeIdx, u64>) {
    for e in edges {
        let most = proven.get(&e).copied().unwrap_or(0);
        let group: Vec<EdgeIdx> = s.graph.parallel_group(e).collect();
        for m in group {
            s.circle.cap_edge(m, if m == e { most } else { 0 });
        }
    }
}

/// The channels `set`'s parts put more on together than probes proved they carry: the parts'
/// sum past their fork, which no probe can prove (one at a time through our channel).
fn unprovable(s: &Session, set: &[Vec<Hop>], proven: &HashMap<EdgeIdx, u64>) -> Vec<EdgeIdx> {
    set_use(s, set)
        .map(|used| {
            used.into_iter()
                .filter(|(e, u)| proven.get(e).is_some_and(|p| u > p))
                .map(|(e, _)| e)
                .collect()
        })
        .unwrap_or_default()
}

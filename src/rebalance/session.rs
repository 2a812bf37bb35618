//! One rebalance in progress: the checked request, its circle, fee cap and deadline, the
//! search state it uses, its invoice, and what each attempt did.

use super::check::Checked;
use super::circle::Circle;
use crate::core::amount::{display_sat, ppm};
use crate::core::flow::FlowScratch;
use crate::core::graph::Graph;
use crate::core::liquidity::{Beliefs, Liquidity};
use crate::core::pathfind::Scratch;
use crate::core::route::{Hop, set_delivered_msat};
use crate::error::{self, RpcFailure};
use crate::lightningd::Lightningd;
use crate::progress::Progress;
use crate::state::State;
use serde_json::{Value, json};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

/// What a caller inside the plugin (the automatic job) adds to a request.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// This fee cap instead of the one `maxfeeppm`/`exemptfee` give (for the request's amount;
    /// probing scales it to the amounts it tries).
    pub fee_cap_msat: Option<u64>,
    /// The job the rebalance belongs to, for the history (0 = manual).
    pub job_id: u64,
    /// Set: start no further attempt (`rebalancestop`).
    pub cancel: Option<Arc<AtomicBool>>,
    /// Who hears of each attempt as it goes (lightning-cli's `# ...` lines).
    pub progress: Option<Arc<dyn Progress>>,
    /// Background probing: each probe counts against the hourly budget, and probing stops as
    /// soon as a rebalance, a probe or a job starts.
    pub background: bool,
}

/// What one attempt did, for the result and error `data`.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    /// The route (of the first part, when there were several).
    pub route: Vec<String>,
    pub fee_msat: u64,
    pub outcome: String,
    /// Every part's route, when the attempt was paid in several.
    pub parts: Vec<Vec<String>>,
}

impl Attempt {
    pub fn to_json(&self) -> Value {
        let mut v =
            json!({"route": self.route, "fee_msat": self.fee_msat, "outcome": self.outcome});
        if self.parts.len() > 1 {
            v["parts"] = json!(self.parts);
        }
        v
    }
}

/// A route in short for a person: the channels between our own two hops.
pub fn via(hops: &[Hop]) -> String {
    let middle: Vec<String> = middle(hops)
        .map(|h| h.short_channel_id.to_string())
        .collect();
    if middle.is_empty() {
        String::new()
    } else {
        format!(" via {}", middle.join(" > "))
    }
}

pub fn attempts_json(a: &[Attempt]) -> Value {
    Value::Array(a.iter().map(Attempt::to_json).collect())
}

pub fn hops_json(hops: &[Hop]) -> Value {
    Value::Array(
        hops.iter()
            .map(|h| {
                json!({"short_channel_id": h.short_channel_id.to_string(), "direction": h.direction,
                       "node_id": h.node_id, "amount_msat": h.amount_msat, "delay": h.delay})
            })
            .collect(),
    )
}

/// A set's parts for results: each one's route, what it delivers, its fee.
pub fn parts_json(set: &[Vec<Hop>]) -> Value {
    Value::Array(
        set.iter()
            .map(|hops| {
                json!({
                    "amount_msat": hops.last().map_or(0, |h| h.amount_msat),
                    "fee_msat": crate::core::route::route_fee_msat(hops),
                    "hops": hops.len(),
                    "route": hops_json(hops),
                })
            })
            .collect(),
    )
}

/// How an attempt ended.
pub enum Outcome {
    Paid {
        fee_msat: u64,
    },
    /// Try another route.
    Retry,
    /// Stop: retrying cannot help.
    Stop(RpcFailure),
    /// An HTLC is still in flight when time ran out.
    StillInFlight,
}

/// The invoice a rebalance pays itself.
#[derive(Debug, Clone)]
pub struct OurInvoice {
    pub label: String,
    pub payment_hash: String,
    pub payment_secret: String,
}

/// One rebalance in progress.
pub struct Session {
    /// Its entry in the registry of rebalances in flight.
    pub id: u64,
    pub req: Checked,
    pub circle: Circle,
    pub graph: Arc<Graph>,
    pub cap_msat: u64,
    pub maxfeeppm: u64,
    pub exemptfee_msat: u64,
    pub retry_for: u64,
    pub deadline_ms: u64,
    pub started_ms: u64,
    pub attempts: Vec<Attempt>,
    pub invoice: Option<OurInvoice>,
    pub scratch: Scratch,
    pub beliefs: Beliefs,
    /// Without memory across rebalances, this rebalance's own model.
    pub local_model: Option<Mutex<Liquidity>>,
    pub last_sent: Vec<Hop>,
    /// The routes of the parts that paid (one when paid whole).
    pub paid_set: Vec<Vec<Hop>>,
    pub extra: Extra,
    /// Most parts a set may have (the request's `maxparts`, else the option).
    pub max_parts: usize,
    /// The try being paid (every part of it shares this `groupid`), and the last part's id.
    pub groupid: u64,
    pub next_partid: u64,
    /// The flow's scratch, made when a set is first planned.
    pub flow: Option<FlowScratch>,
    /// The amount asked for when the session began (probing tries others).
    pub planned_msat: u64,
    /// Probes sent before paying (`rebalance-probe-first`), none of them paid.
    pub probes: u32,
    /// How far the last failure learned from had gone (its `erring_index`).
    pub last_erring_index: Option<usize>,
    /// Why a set was refused when the incoming peer sent a part over another channel (the
    /// rest then goes as one HTLC): the answer if no one route is found after it.
    pub diverted: Option<RpcFailure>,
    /// A fee, delay or minimum failure brought the channel's update, and gossipd took it
    /// (`addgossip`): the next plan reads the graph again first.
    pub policy_changed: bool,
    /// Times this rebalance read the graph again for a changed policy.
    pub rereads: u32,
    /// Times the incoming peer's hop to us failed on a policy it had just changed, and the
    /// circle took the new one (see `learn::last_hop_changed`).
    pub last_hop_updates: u32,
    /// Where the tries and probes failed for lack of liquidity.
    pub liquidity_failures: LiquidityFailures,
    /// How long a try of this rebalance takes, from what it has sent.
    pub pace: Pace,
}

/// Once the time left holds no more than this many tries at the rebalance's pace
/// ([`Session::urgent`]), its plans weigh the risk more (`flow::urgent_config`).
pub const URGENT_TRIES: u64 = 3;

/// A rebalance that gave up having had room for fewer tries than this in its `retry_for`
/// says how long one took ([`Session::pace_hint`]).
pub const ROOMY_TRIES: u64 = 4;

/// The slowest pace per hop a rebalance has seen (its probes, and payments that failed: there
/// and back to where they failed) and the longest route of the last set it probed or paid: what
/// one more try takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pace {
    pub ms_per_hop: u64,
    pub hops: usize,
}

impl Pace {
    /// The time one try takes: the longest route at the pace, at least a second a hop (the
    /// pace of a set paid unprobed is not known until it fails). Also what the cheaper look
    /// (`probe::before::cheaper`) keeps in reserve for its payments.
    pub fn try_ms(self) -> u64 {
        self.ms_per_hop.max(1000).saturating_mul(self.hops as u64)
    }

    /// The same at the pace measured alone (no floor): 0 while none was measured.
    pub fn measured_try_ms(self) -> u64 {
        self.ms_per_hop.saturating_mul(self.hops as u64)
    }
}

/// Where a rebalance's tries and probes failed for lack of liquidity
/// (`temporary_channel_failure` at a middle hop): what an operator is told when it gives up.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LiquidityFailures {
    /// On a channel out of the outgoing peer (the route's second hop).
    pub out_of_outgoing_peer: u32,
    /// Further on, before the channel into the incoming peer.
    pub between: u32,
    /// On a channel into the incoming peer (the hop before its hop to us).
    pub into_incoming_peer: u32,
}

impl LiquidityFailures {
    /// A failure at hop `index` of a route of `hops` hops (the first ours, the last the
    /// incoming peer's to us). On a three-hop circle the middle hop is both the outgoing
    /// peer's and into the incoming one: counted between.
    pub fn count(&mut self, index: usize, hops: usize) {
        let c = match index {
            1 if hops > 3 => &mut self.out_of_outgoing_peer,
            i if i + 2 == hops && hops > 3 => &mut self.into_incoming_peer,
            _ => &mut self.between,
        };
        *c += 1;
    }

    pub fn to_json(self) -> Value {
        json!({"out_of_outgoing_peer": self.out_of_outgoing_peer, "between": self.between,
               "into_incoming_peer": self.into_incoming_peer})
    }

    /// What to tell an operator when at least two thirds of three or more such failures were
    /// on the channels out of the outgoing peer, or into the incoming one: that peer is short
    /// of liquidity on its other side now, whichever way the plugin goes.
    pub fn hint(self, outgoing_peer: &str, incoming_peer: &str) -> Option<String> {
        let total = self.out_of_outgoing_peer + self.between + self.into_incoming_peer;
        let into = self.into_incoming_peer >= self.out_of_outgoing_peer;
        let n = if into {
            self.into_incoming_peer
        } else {
            self.out_of_outgoing_peer
        };
        if total < 3 || 3 * n < 2 * total {
            return None;
        }
        let (side, other) = if into {
            let side = format!(
                "into the incoming peer {incoming_peer}: little of its other peers' liquidity \
                 can reach it now to forward to us"
            );
            (side, "incoming")
        } else {
            let side = format!(
                "out of the outgoing peer {outgoing_peer}: it has little on its other channels \
                 to forward what we send it now"
            );
            (side, "outgoing")
        };
        let share = if n == total {
            "all".to_string()
        } else {
            n.to_string()
        };
        Some(format!(
            ". Of its {total} failures for lack of liquidity, {share} were on channels {side}; a \
             smaller amount, another {other} channel, or a later try may go"
        ))
    }
}

impl Session {
    /// Whether the time left at `now_ms` holds no more than [`URGENT_TRIES`] tries at the
    /// rebalance's pace: a failed try then costs the rebalance rather than a try, and the plans
    /// weigh the risk more (`route::plan_config`, `route::replacement_set`). Never before a
    /// set was probed or paid.
    pub fn urgent(&self, now_ms: u64) -> bool {
        self.pace.hops > 0
            && self.deadline_ms.saturating_sub(now_ms)
                < self.pace.try_ms().saturating_mul(URGENT_TRIES)
    }

    /// The fee cap for `amount_msat`: the caller's cap scaled from the amount it was given for
    /// (`planned_msat`), or `max(exemptfee, amount x maxfeeppm)`.
    pub fn cap_for(&self, amount_msat: u64, planned_msat: u64) -> u64 {
        match self.extra.fee_cap_msat {
            Some(cap) if planned_msat > 0 => {
                (cap as u128 * amount_msat as u128 / planned_msat as u128) as u64
            }
            Some(cap) => cap,
            None => {
                crate::core::amount::fee_cap_msat(amount_msat, self.maxfeeppm, self.exemptfee_msat)
            }
        }
    }

    /// Plans on `graph` from now on, a later read of the graph (see [`Circle::rebase`]).
    pub fn rebase(&mut self, graph: Arc<Graph>) {
        self.circle.rebase(&self.graph, &graph);
        self.graph = graph;
    }

    /// Why the rebalance stopped when `retry_for` ran out, and where its tries failed if one
    /// peer's side was short of liquidity.
    pub fn gave_up(&self) -> String {
        let n = self.attempts.len();
        let mut hint = self.liquidity_hint();
        if hint.is_empty() {
            hint = self.pace_hint();
        }
        format!("gave up after {}s and {n} attempt(s){hint}", self.retry_for)
    }

    /// When one try took so long here that `retry_for` held fewer than [`ROOMY_TRIES`] of
    /// them (the longest route of the last set at the slowest pace measured): how long, and
    /// the `retry_for` that holds twice as many. Nothing when no pace was measured, or
    /// `retry_for` is already the most a call may ask.
    pub fn pace_hint(&self) -> String {
        let try_ms = self.pace.measured_try_ms();
        let budget_ms = self.retry_for.saturating_mul(1000);
        let longer = self
            .retry_for
            .saturating_mul(2)
            .min(crate::params::MAX_RETRY_FOR);
        if try_ms == 0
            || try_ms.saturating_mul(ROOMY_TRIES) <= budget_ms
            || longer <= self.retry_for
        {
            return String::new();
        }
        format!(
            ". A try took about {}s here ({} hops at {:.1}s a hop there and back), so {}s held \
             few; retry_for={longer} (or the option rebalance-retry-for) leaves room for more",
            try_ms.div_ceil(1000),
            self.pace.hops,
            self.pace.ms_per_hop as f64 / 1000.0,
            self.retry_for,
        )
    }

    /// [`LiquidityFailures::hint`] for this rebalance's peers, or nothing.
    pub fn liquidity_hint(&self) -> String {
        let (out, inc) = (&self.req.out.peer_id, &self.req.inc.peer_id);
        self.liquidity_failures.hint(out, inc).unwrap_or_default()
    }

    /// Tells whoever follows this rebalance `text`.
    pub fn tell(&self, text: &str) {
        if let Some(p) = &self.extra.progress {
            p.message(text);
        }
    }

    /// Whether `rebalancestop` asked this rebalance to stop.
    pub fn stopped(&self) -> bool {
        self.extra
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Moves the bar over `retry_for` to `now_ms`.
    pub fn tell_time(&self, now_ms: u64) {
        if let Some(p) = &self.extra.progress {
            let secs = now_ms.saturating_sub(self.started_ms) / 1000;
            p.progress(secs as u32, self.retry_for.max(2) as u32);
        }
    }

    /// The model this session learns into: the shared one, or its own without memory.
    pub fn model<'a, N: Lightningd>(&'a self, st: &'a State<N>) -> MutexGuard<'a, Liquidity> {
        match &self.local_model {
            Some(m) => m.lock().expect("local model lock"),
            None => st.liquidity(),
        }
    }

    /// The last guard before a set is sent: every route ends at our node, and the parts
    /// deliver together exactly the amount the rebalance was asked to move.
    pub fn check_sendable(&self, set: &[Vec<Hop>]) -> Result<(), RpcFailure> {
        let delivered = set_delivered_msat(set, &self.req.our_id);
        let what = match delivered {
            None => "a route that does not end at our node".to_string(),
            Some(msat)
                if msat != self.planned_msat || self.req.amount_msat != self.planned_msat =>
            {
                format!(
                    "a set that delivers {msat}msat, not the {}msat asked",
                    self.planned_msat
                )
            }
            Some(_) => return Ok(()),
        };
        Err(RpcFailure::new(
            error::PLUGIN_ERROR,
            format!("internal error: {what}; nothing was sent"),
        ))
    }

    /// Refuses a set whose fees together are above the fee cap, or one the outgoing channel
    /// cannot pay for in all, before anything is paid.
    pub fn check_set(&self, set: &[Vec<Hop>], fee_msat: u64) -> Result<(), RpcFailure> {
        if let [hops] = set {
            return self.check_route(hops, fee_msat);
        }
        let first_hops: u64 = set
            .iter()
            .map(|h| h[0].amount_msat)
            .fold(0, u64::saturating_add);
        let cap = self.cap_msat;
        if fee_msat > cap {
            return Err(RpcFailure::new(
                error::PAY_ROUTE_TOO_EXPENSIVE,
                format!(
                    "the cheapest set of {} parts costs {fee_msat}msat ({} ppm), more than the fee cap of {cap}msat",
                    set.len(),
                    ppm(fee_msat, self.req.amount_msat)
                ),
            )
            .with_data(json!({"cheapest_fee_msat": fee_msat, "fee_cap_msat": cap,
                              "parts": parts_json(set), "attempts": attempts_json(&self.attempts)})));
        }
        if first_hops > self.req.out.spendable_msat {
            return Err(RpcFailure::param(
                "outgoing",
                format!(
                    "channel {} can spend {}, not the {} these parts need with fees",
                    self.req.out_scid,
                    display_sat(self.req.out.spendable_msat),
                    display_sat(first_hops)
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a route above the fee cap, or one the outgoing channel cannot pay for, before
    /// anything is paid.
    pub fn check_route(&self, hops: &[Hop], fee_msat: u64) -> Result<(), RpcFailure> {
        let (cap, amount) = (self.cap_msat, self.req.amount_msat);
        if fee_msat > cap {
            return Err(RpcFailure::new(
                error::PAY_ROUTE_TOO_EXPENSIVE,
                format!(
                    "the cheapest route{} costs {fee_msat}msat ({} ppm), more than the fee cap of {cap}msat \
                     ({})",
                    if self.attempts.is_empty() { "" } else { " left" },
                    ppm(fee_msat, amount),
                    match self.extra.fee_cap_msat {
                        // A rebalanceall move: the planner's economics and the budget set it.
                        Some(_) => format!(
                            "the job's cap for this move: feeratio x our fee out through {}, at most \
                             maxfeeppm, within the fee budget",
                            self.req.inc_scid
                        ),
                        None => format!(
                            "max of exemptfee {}msat and maxfeeppm {} x amount",
                            self.exemptfee_msat, self.maxfeeppm
                        ),
                    }
                ),
            )
            .with_data(json!({"cheapest_fee_msat": fee_msat, "fee_cap_msat": cap,
                              "route": hops_json(hops), "attempts": attempts_json(&self.attempts)})));
        }
        let spendable = self.req.out.spendable_msat;
        if hops[0].amount_msat > spendable {
            return Err(RpcFailure::param(
                "outgoing",
                format!(
                    "channel {} can spend {}, not the {} this route needs with fees",
                    self.req.out_scid,
                    display_sat(spendable),
                    display_sat(hops[0].amount_msat)
                ),
            ));
        }
        Ok(())
    }
}

/// The hops between our own two: the ones the model knows nothing exact about.
pub fn middle(hops: &[Hop]) -> impl Iterator<Item = &Hop> {
    let n = hops.len();
    hops.iter().take(n.saturating_sub(1)).skip(1)
}

#[cfg(test)]
mod tests {
    use super::LiquidityFailures;

    fn counted(at: &[(usize, usize)]) -> LiquidityFailures {
        let mut f = LiquidityFailures::default();
        for &(index, hops) in at {
            f.count(index, hops);
        }
        f
    }

    #[test]
    fn failures_are_placed_by_hop() {
        // Hop 1 is out of the outgoing peer, the one before the last into the incoming peer;
        // a three-hop circle's one middle hop is both, counted between.
        let f = counted(&[(1, 5), (2, 5), (3, 5), (2, 4), (1, 3)]);
        assert_eq!(
            (f.out_of_outgoing_peer, f.between, f.into_incoming_peer),
            (1, 2, 2)
        );
    }

    #[test]
    fn a_peer_is_named_when_two_thirds_of_three_or_more_failed_on_its_side() {
        let hint = |at: &[(usize, usize)]| counted(at).hint("A", "B");
        // Too few, or spread out.
        assert_eq!(hint(&[(1, 4), (2, 4)]), None);
        assert_eq!(hint(&[(2, 4), (2, 4), (1, 4), (2, 5)]), None);
        let into = hint(&[(2, 4), (2, 4), (1, 4)]).unwrap();
        assert!(
            into.starts_with(". Of its 3 failures for lack of liquidity, 2 were"),
            "{into}"
        );
        assert!(into.contains("into the incoming peer B: "), "{into}");
        let out = hint(&[(1, 4), (1, 6), (1, 5)]).unwrap();
        assert!(
            out.starts_with(". Of its 3 failures for lack of liquidity, all were"),
            "{out}"
        );
        assert!(out.contains("out of the outgoing peer A: "), "{out}");
        assert!(out.ends_with("another outgoing channel, or a later try may go"));
    }
}

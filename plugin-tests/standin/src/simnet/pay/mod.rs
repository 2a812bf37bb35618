//! Payments from our node: sendpay, waitsendpay, listsendpays (lightningd/pay.c), and the
//! forwarding model that carries an HTLC hop by hop (lightningd/peer_htlcs.c `forward_htlc`,
//! channeld's offer checks, BOLT 4 failure codes), holds it where a test asked, hands it to the
//! plugin's hooks at our node, and settles or fails it.
//!
//! Route semantics (sendpay): hop i's `amount_msat`/`delay` is what the node at the END of hop i
//! must receive; absolute expiry = blockheight + 1 + delay (lightningd's `base_expiry`).

use super::params::{
    self, PAY_DESTINATION_PERM_FAIL, PAY_IN_PROGRESS, PAY_NO_SUCH_PAYMENT, PAY_RHASH_ALREADY_USED,
    PAY_TRY_OTHER_ROUTE, RpcError, RpcResult,
};
use super::wire::{self, failure_message};
use super::{Event, Htlc, Network};
use crate::sha256::{hex, sha256, unhex};
use serde_json::{Map, Value, json};

/// One hop of a sendpay route, as given.
#[derive(Debug, Clone)]
pub struct RouteHop {
    pub node_id: String,
    /// The node, if the network has it.
    pub node: Option<usize>,
    pub scid: String,
    pub amount_msat: u64,
    pub delay: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayStatus {
    Pending,
    Complete,
    Failed,
}

/// Where a pending payment's HTLC is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Moving (only transiently inside a call).
    InFlight,
    /// Waiting at a held node or channel (dev-hold).
    Held,
    /// At our node, waiting for the plugin's htlc_accepted answer.
    AwaitHtlcAccepted,
    /// At our node, waiting for the plugin's invoice_payment answer.
    AwaitInvoicePayment,
    Done,
}

/// Why a payment failed, in lightningd's terms (`struct routing_failure` + the RPC code).
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// 204 (try another route) or 203 (permanent failure at the destination).
    pub errcode: i64,
    pub failcode: u16,
    pub erring_index: usize,
    pub erring_node: String,
    pub erring_channel: Option<String>,
    pub erring_direction: u8,
    /// lightningd's failstr: "reply from remote", or the local reason.
    pub details: String,
}

#[derive(Debug, Clone)]
pub struct Payment {
    pub created_index: u64,
    pub payment_hash: String,
    pub groupid: u64,
    pub partid: u64,
    pub destination: Option<String>,
    pub amount_msat: u64,
    pub amount_sent_msat: u64,
    pub created_at: u64,
    pub completed_at: Option<u64>,
    pub status: PayStatus,
    pub preimage: Option<String>,
    pub label: Option<String>,
    pub bolt11: Option<String>,
    pub description: Option<String>,
    pub payment_secret: Option<String>,
    pub route: Vec<RouteHop>,
    /// The HTLC added on each hop so far: (channel, htlc id).
    pub legs: Vec<(usize, u64)>,
    pub stage: Stage,
    pub failure: Option<Failure>,
    pub updated_index: Option<u64>,
}

/// What a `waitsendpay` call finds.
#[derive(Debug)]
pub enum WaitState {
    Done(RpcResult),
    Pending(usize),
}

fn fmt_msat(m: u64) -> String {
    format!("{m}msat")
}

/// Parses sendpay's `route` as lightningd's `param_route_hops` does (old and new hop names).
fn parse_route(net: &Network, tok: &Value) -> Result<Vec<RouteHop>, RpcError> {
    let Some(hops) = tok.as_array() else {
        return Err(RpcError::badparam("route", "must be an array", tok));
    };
    let either = |hop: &Value, a: &str, b: &str| -> Result<Value, RpcError> {
        hop.get(a).or_else(|| hop.get(b)).cloned().ok_or_else(|| {
            RpcError::badparam("route", &format!("must have either {a} or {b}"), hop)
        })
    };
    let mut out = Vec::new();
    for hop in hops {
        let sc = either(hop, "short_channel_id_dir", "channel")?;
        let scid = sc
            .as_str()
            .map(|s| s.split('/').next().unwrap_or(s))
            .and_then(params::normalize_scid)
            .ok_or_else(|| RpcError::badparam("route", "bad short_channel_id", &sc))?;
        let id = either(hop, "node_id_out", "id")?;
        let node_id = id
            .as_str()
            .filter(|s| params::is_node_id(s))
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| RpcError::badparam("route", "bad node_id", &id))?;
        let am = either(hop, "amount_out_msat", "amount_msat")?;
        let amount_msat = params::parse_msat(&am)
            .ok_or_else(|| RpcError::badparam("route", "bad amount", &am))?;
        let d = either(hop, "cltv_out", "delay")?;
        let delay = params::number_u64(&d)
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| RpcError::badparam("route", "bad cltv_out/delay", &d))?;
        out.push(RouteHop {
            node: net.node_by_id(&node_id),
            node_id,
            scid,
            amount_msat,
            delay,
        });
    }
    Ok(out)
}

impl Network {
    /// `json_add_payment_fields`.
    pub fn payment_fields(&self, pid: usize, shown_status: PayStatus) -> Map<String, Value> {
        let p = &self.payments[pid];
        let mut o = Map::new();
        o.insert("created_index".into(), json!(p.created_index));
        o.insert("id".into(), json!(p.created_index));
        o.insert("payment_hash".into(), json!(p.payment_hash));
        o.insert("groupid".into(), json!(p.groupid));
        if let Some(u) = p.updated_index {
            o.insert("updated_index".into(), json!(u));
        }
        if p.partid != 0 {
            o.insert("partid".into(), json!(p.partid));
        }
        if let Some(d) = &p.destination {
            o.insert("destination".into(), json!(d));
        }
        if p.amount_msat > 0 {
            o.insert("amount_msat".into(), json!(p.amount_msat));
        }
        o.insert("amount_sent_msat".into(), json!(p.amount_sent_msat));
        o.insert("created_at".into(), json!(p.created_at));
        if shown_status != PayStatus::Pending
            && let Some(c) = p.completed_at
        {
            o.insert("completed_at".into(), json!(c));
        }
        o.insert(
            "status".into(),
            json!(match shown_status {
                PayStatus::Pending => "pending",
                PayStatus::Complete => "complete",
                PayStatus::Failed => "failed",
            }),
        );
        if shown_status == PayStatus::Complete
            && let Some(pre) = &p.preimage
        {
            o.insert("payment_preimage".into(), json!(pre));
        }
        if let Some(l) = &p.label {
            o.insert("label".into(), json!(l));
        }
        if let Some(b) = &p.bolt11 {
            o.insert("bolt11".into(), json!(b));
        }
        if let Some(d) = &p.description {
            o.insert("description".into(), json!(d));
        }
        o
    }

    fn pending_response(&self, pid: usize) -> Value {
        let mut o = Map::new();
        o.insert(
            "message".into(),
            json!("Monitor status with listpays or waitsendpay"),
        );
        o.extend(self.payment_fields(pid, PayStatus::Pending));
        Value::Object(o)
    }

    /// The error lightningd gives for a failed payment: code, message, data.
    fn failure_error(&self, pid: usize, live: bool) -> RpcError {
        let p = &self.payments[pid];
        let f = p.failure.as_ref().expect("failed payment has a failure");
        // Waiters woken by the failure see the payment as it was before its status changed.
        let shown = if live {
            PayStatus::Pending
        } else {
            PayStatus::Failed
        };
        let mut data = self.payment_fields(pid, shown);
        add_routefail_info(&mut data, f);
        RpcError::new(f.errcode, failure_message(f.failcode, &f.details))
            .with_data(Value::Object(data))
    }

    fn max_groupid(&self, hash: &str) -> u64 {
        self.payments
            .iter()
            .filter(|p| p.payment_hash == hash)
            .map(|p| p.groupid)
            .max()
            .unwrap_or(0)
    }

    pub fn sendpay(&mut self, p: &Value) -> Result<(Value, Vec<Event>), RpcError> {
        let p = params::parse(
            p,
            &[
                ("route", true),
                ("payment_hash", true),
                ("label", false),
                ("amount_msat", false),
                ("bolt11", false),
                ("payment_secret", false),
                ("partid", false),
                ("localinvreqid", false),
                ("groupid", false),
                ("payment_metadata", false),
                ("description", false),
                ("dev_legacy_hop", false),
            ],
        )?;
        let route = parse_route(self, p.get("route").unwrap_or(&Value::Null))?;
        let hash = p.sha256("payment_hash")?.unwrap_or_default();
        let label = p.string("label")?;
        let msat = p.msat("amount_msat")?;
        let bolt11 = p.string("bolt11")?;
        let secret = p.hex32("payment_secret", "should be a 32 byte hex value")?;
        let partid = p.u64("partid")?.unwrap_or(0);
        let groupid = match p.u64("groupid")? {
            Some(g) => g,
            None => self.max_groupid(&hash) + 1,
        };
        let description = p.string("description")?;
        if partid != 0 && msat.is_none() {
            return Err(RpcError::invalid("Must specify msatoshi with partid"));
        }
        if route.is_empty() {
            let Some(msat) = msat else {
                return Err(RpcError::invalid("Self-payment requires amount_msat"));
            };
            if partid != 0 {
                return Err(RpcError::invalid(
                    "Self-payment does not allow (non-zero) partid",
                ));
            }
            return self.self_payment(hash, groupid, msat, label, bolt11, description, secret);
        }
        let final_amount = route.last().map(|h| h.amount_msat).unwrap_or(0);
        if let Some(m) = msat {
            if partid == 0 && m != final_amount {
                return Err(RpcError::invalid(format!(
                    "Do not specify msatoshi ({}) without partid: if you do, it must be exactly \
                     the final amount ({})",
                    fmt_msat(m),
                    fmt_msat(final_amount)
                )));
            }
            if partid != 0 && final_amount > m {
                return Err(RpcError::invalid(format!(
                    "Final amount {} is greater than {}, despite MPP",
                    fmt_msat(final_amount),
                    fmt_msat(m)
                )));
            }
        }
        if partid != 0 && secret.is_none() {
            return Err(RpcError::invalid("partid requires payment_secret"));
        }
        let destination = route.last().map(|h| h.node_id.clone());

        // check_progress: reconcile with earlier attempts on the same hash.
        let mut have_complete = false;
        for (i, old) in self.payments.iter().enumerate() {
            if old.payment_hash != hash {
                continue;
            }
            match old.status {
                PayStatus::Complete => {
                    have_complete = true;
                    if old.partid != partid {
                        continue;
                    }
                    if old.amount_msat != final_amount {
                        return Err(RpcError::new(
                            PAY_RHASH_ALREADY_USED,
                            format!(
                                "Already succeeded with amount {} (not {})",
                                fmt_msat(old.amount_msat),
                                fmt_msat(final_amount)
                            ),
                        ));
                    }
                    if old.destination.is_some() && old.destination != destination {
                        return Err(RpcError::new(
                            PAY_RHASH_ALREADY_USED,
                            format!(
                                "Already succeeded to {}",
                                old.destination.clone().unwrap_or_default()
                            ),
                        ));
                    }
                    return Ok((
                        Value::Object(self.payment_fields(i, PayStatus::Complete)),
                        vec![],
                    ));
                }
                PayStatus::Pending => {
                    if old.groupid != groupid {
                        return Err(RpcError::new(
                            PAY_IN_PROGRESS,
                            format!(
                                "Payment with groupid={} still in progress, cannot retry before \
                                 that completes.",
                                old.groupid
                            ),
                        ));
                    }
                    if (old.partid == 0) != (partid == 0) {
                        return Err(RpcError::new(
                            PAY_IN_PROGRESS,
                            format!(
                                "Already have {} payment in progress",
                                if old.partid != 0 {
                                    "parallel"
                                } else {
                                    "non-parallel"
                                }
                            ),
                        ));
                    }
                    if old.partid == partid {
                        if old.amount_msat != final_amount {
                            return Err(RpcError::new(
                                PAY_RHASH_ALREADY_USED,
                                format!(
                                    "Already pending with amount {} (not {})",
                                    fmt_msat(old.amount_msat),
                                    fmt_msat(final_amount)
                                ),
                            ));
                        }
                        return Ok((self.pending_response(i), vec![]));
                    }
                }
                PayStatus::Failed => {}
            }
            if old.partid == partid && old.groupid == groupid {
                return Err(RpcError::new(
                    PAY_RHASH_ALREADY_USED,
                    format!(
                        "There already is a payment with payment_hash={hash}, groupid={groupid}, \
                         partid={partid}. Either change the partid, or wait for the payment to \
                         complete and start a new group."
                    ),
                ));
            }
        }
        if have_complete {
            return Err(RpcError::new(
                PAY_RHASH_ALREADY_USED,
                "Already succeeded other parts",
            ));
        }

        // find_channel_for_htlc_add: our channel to the first peer, by scid or local alias.
        let first = &route[0];
        let us = self.us;
        let chan = first.node.and_then(|peer| {
            let mut ours = self.our_channels();
            ours.retain(|&c| self.channels[c].nodes.contains(&peer) && self.can_add_htlc(c));
            let s_us = |c: usize| self.side_of(c, us).unwrap_or(0);
            ours.iter()
                .copied()
                .find(|&c| {
                    self.channels[c].scid == first.scid
                        || self.channels[c].alias[s_us(c)] == first.scid
                })
                .or_else(|| {
                    (first.scid == "0x0x0")
                        .then(|| {
                            ours.iter().copied().find(|&c| {
                                self.channels[c].balance_msat[s_us(c)] > first.amount_msat
                            })
                        })
                        .flatten()
                })
        });
        let Some(c0) = chan else {
            let mut data = Map::new();
            add_routefail_info(
                &mut data,
                &Failure {
                    errcode: PAY_TRY_OTHER_ROUTE,
                    failcode: wire::UNKNOWN_NEXT_PEER,
                    erring_index: 0,
                    erring_node: self.us_id().to_string(),
                    erring_channel: None,
                    erring_direction: 0,
                    details: String::new(),
                },
            );
            return Err(
                RpcError::new(PAY_TRY_OTHER_ROUTE, "No connection to first peer found")
                    .with_data(Value::Object(data)),
            );
        };
        let peer = first.node.expect("found channel implies known peer");
        if !self.nodes[peer].online {
            let f = Failure {
                errcode: PAY_TRY_OTHER_ROUTE,
                failcode: wire::TEMPORARY_CHANNEL_FAILURE,
                erring_index: 0,
                erring_node: self.us_id().to_string(),
                erring_channel: Some(self.channels[c0].scid.clone()),
                erring_direction: self.direction(us, peer),
                details: "First peer not ready".into(),
            };
            let mut data = Map::new();
            add_routefail_info(&mut data, &f);
            return Err(
                RpcError::new(f.errcode, failure_message(f.failcode, &f.details))
                    .with_data(Value::Object(data)),
            );
        }

        let now = self.now();
        let created_index = self.sendpay_index.next_created();
        self.payments.push(Payment {
            created_index,
            payment_hash: hash,
            groupid,
            partid,
            destination,
            amount_msat: final_amount,
            amount_sent_msat: first.amount_msat,
            created_at: now,
            completed_at: None,
            status: PayStatus::Pending,
            preimage: None,
            label,
            bolt11,
            description,
            payment_secret: secret,
            route,
            legs: Vec::new(),
            stage: Stage::InFlight,
            failure: None,
            updated_index: None,
        });
        let pid = self.payments.len() - 1;
        let response = self.pending_response(pid);
        let events = self.launch(pid, c0);
        Ok((response, events))
    }

    /// Our channeld offers the first HTLC (or refuses it: a local failure, erring_index 0).
    fn launch(&mut self, pid: usize, c0: usize) -> Vec<Event> {
        let us = self.us;
        let s = self.side_of(c0, us).expect("our channel");
        let amount = self.payments[pid].route[0].amount_msat;
        let refusal = if let Some(code) = self.channels[c0].forced_failure[s] {
            Some((code, "forced by dev-fail".to_string()))
        } else if amount < self.channels[c0].policy[1 - s].htlc_minimum_msat {
            Some((
                wire::AMOUNT_BELOW_MINIMUM,
                format!(
                    "HTLC too small ({} minimum)",
                    fmt_msat(self.channels[c0].policy[1 - s].htlc_minimum_msat)
                ),
            ))
        } else if self.spendable(c0, s) < amount {
            Some((
                wire::TEMPORARY_CHANNEL_FAILURE,
                "Capacity exceeded - HTLC fee: 0sat".to_string(),
            ))
        } else if self.channels[c0].htlcs.len() >= self.config.max_accepted_htlcs {
            Some((
                wire::TEMPORARY_CHANNEL_FAILURE,
                "Too many HTLCs".to_string(),
            ))
        } else {
            None
        };
        if let Some((code, why)) = refusal {
            let peer = self.channels[c0].nodes[1 - s];
            let f = Failure {
                errcode: PAY_TRY_OTHER_ROUTE,
                failcode: code,
                erring_index: 0,
                erring_node: self.us_id().to_string(),
                erring_channel: Some(self.channels[c0].scid.clone()),
                erring_direction: self.direction(us, peer),
                details: format!("{}: {why}", wire::failcode_name(code).unwrap_or("UNKNOWN")),
            };
            return self.fail_payment(pid, f);
        }
        let delay = self.payments[pid].route[0].delay;
        self.add_leg(pid, c0, s, amount, delay);
        self.advance(pid)
    }

    fn add_leg(&mut self, pid: usize, c: usize, from: usize, amount: u64, delay: u32) {
        let expiry = self.blockheight + 1 + delay;
        let hash = self.payments[pid].payment_hash.clone();
        let us_side = self.side_of(c, self.us);
        let ch = &mut self.channels[c];
        // channel_stats_incr_{in,out}_offered, on our channels.
        match us_side {
            Some(u) if u == from => {
                ch.stats.out_payments_offered += 1;
                ch.stats.out_offered_msat += amount;
            }
            Some(_) => {
                ch.stats.in_payments_offered += 1;
                ch.stats.in_offered_msat += amount;
            }
            None => {}
        }
        let id = ch.next_htlc_id[from];
        ch.next_htlc_id[from] += 1;
        ch.htlcs.push(Htlc {
            id,
            from,
            amount_msat: amount,
            expiry,
            payment_hash: hash,
            payment: pid,
            status: None,
        });
        self.payments[pid].legs.push((c, id));
    }

    /// Carries payment `pid`'s HTLC onwards from wherever it is, until it is held, needs a hook
    /// answer, settles or fails.
    pub fn advance(&mut self, pid: usize) -> Vec<Event> {
        loop {
            let pay = &self.payments[pid];
            if pay.status != PayStatus::Pending {
                return vec![];
            }
            let k = pay.legs.len();
            let n = pay.route.len();
            let at = pay.route[k - 1]
                .node
                .expect("a leg only reaches known nodes");
            let in_chan = pay.legs[k - 1].0;
            if self.held_nodes.contains(&at) || self.channels[in_chan].held {
                self.payments[pid].stage = Stage::Held;
                return vec![Event::Changed];
            }
            self.payments[pid].stage = Stage::InFlight;
            if k == n {
                return self.arrive_final(pid);
            }
            match self.forward_check(pid, k) {
                Ok((c, from)) => {
                    let hop = &self.payments[pid].route[k];
                    let (amount, delay) = (hop.amount_msat, hop.delay);
                    self.add_leg(pid, c, from, amount, delay);
                }
                Err(code) => {
                    let f = self.remote_failure(pid, k - 1, code);
                    return self.fail_payment(pid, f);
                }
            }
        }
    }

    /// `remote_routing_failure`: the node at route index `origin` (the end of hop `origin`)
    /// returned `failcode`.
    fn remote_failure(&self, pid: usize, origin: usize, failcode: u16) -> Failure {
        let route = &self.payments[pid].route;
        let n = route.len();
        let id_of = |i: usize| route[i].node_id.clone();
        let dir = |a: &str, b: &str| u8::from(a > b);
        if origin == n - 1 {
            let prev = if origin == 0 {
                self.us_id().to_string()
            } else {
                id_of(origin - 1)
            };
            Failure {
                errcode: if failcode & wire::PERM != 0 {
                    PAY_DESTINATION_PERM_FAIL
                } else {
                    PAY_TRY_OTHER_ROUTE
                },
                failcode,
                erring_index: origin + 1,
                erring_node: id_of(origin),
                erring_channel: Some(route[origin].scid.clone()),
                erring_direction: dir(&prev, &id_of(origin)),
                details: "reply from remote".into(),
            }
        } else {
            Failure {
                errcode: PAY_TRY_OTHER_ROUTE,
                failcode,
                erring_index: origin + 1,
                erring_node: id_of(origin),
                erring_channel: Some(route[origin + 1].scid.clone()),
                erring_direction: dir(&id_of(origin), &id_of(origin + 1)),
                details: "reply from remote".into(),
            }
        }
    }

    /// The checks the node at the end of hop `k - 1` makes before forwarding hop `k`; the
    /// channel and side it forwards from, or the failcode it returns.
    fn forward_check(&self, pid: usize, k: usize) -> Result<(usize, usize), u16> {
        let pay = &self.payments[pid];
        let x = pay.route[k - 1].node.expect("known");
        let in_amount = pay.route[k - 1].amount_msat;
        let in_expiry = self.blockheight + 1 + pay.route[k - 1].delay;
        let hop = &pay.route[k];
        let out_expiry = self.blockheight + 1 + hop.delay;
        let amt = hop.amount_msat;

        // The onion names a channel; it must be one of X's, usable, to the named node. X knows
        // it by its real scid or by the alias X gave it (any_channel_by_scid, privacy_leak_ok
        // false) ...
        let by_alias = || {
            (0..self.channels.len()).find(|&c| {
                self.side_of(c, x)
                    .is_some_and(|s| self.channels[c].alias[s] == hop.scid)
            })
        };
        let requested = self
            .channel_by_scid(&hop.scid)
            .or_else(by_alias)
            .filter(|&c| self.channels[c].nodes.contains(&x));
        let Some(req) = requested else {
            return Err(wire::UNKNOWN_NEXT_PEER);
        };
        let sx = self.side_of(req, x).expect("x is an end");
        // ... but a private (option_scid_alias) channel never by its real scid (BOLT 2).
        if !self.channels[req].public && self.channels[req].alias[sx] != hop.scid {
            return Err(wire::UNKNOWN_NEXT_PEER);
        }
        let next = self.channels[req].nodes[1 - sx];
        if !self.can_add_htlc(req) || Some(next) != hop.node {
            return Err(wire::UNKNOWN_NEXT_PEER);
        }
        // best_channel: unless strict, the channel to the same peer with the most spendable
        // among those with the same fees (the requested one included).
        let mut c = req;
        if !self.nodes[x].strict_forwarding {
            let fee = |ch: usize| {
                let s = self.side_of(ch, x).unwrap_or(0);
                let p = &self.channels[ch].policy[s];
                (p.fee_base_msat, p.fee_proportional_millionths)
            };
            let mut best_spendable = 0;
            for cand in 0..self.channels.len() {
                let ch = &self.channels[cand];
                if !(ch.nodes.contains(&x) && ch.nodes.contains(&next) && self.can_add_htlc(cand)) {
                    continue;
                }
                let s = self.side_of(cand, x).unwrap_or(0);
                let sp = self.spendable(cand, s);
                if sp <= best_spendable || fee(cand) != fee(req) {
                    continue;
                }
                if amt < ch.policy[1 - s].htlc_minimum_msat {
                    continue;
                }
                c = cand;
                best_spendable = sp;
            }
        }
        let s = self.side_of(c, x).expect("x is an end");
        let ch = &self.channels[c];
        let pol = &ch.policy[s];
        if let Some(code) = ch.forced_failure[s] {
            return Err(code);
        }
        if !pol.active || !ch.update_set[s] {
            return Err(wire::CHANNEL_DISABLED);
        }
        let prop = if self.config.fee_rounding_ceil {
            (amt as u128 * pol.fee_proportional_millionths as u128).div_ceil(1_000_000)
        } else {
            amt as u128 * pol.fee_proportional_millionths as u128 / 1_000_000
        };
        let fee = pol.fee_base_msat as u128 + prop;
        if (in_amount as u128) < amt as u128 + fee {
            return Err(wire::FEE_INSUFFICIENT);
        }
        if amt > pol.htlc_maximum_msat || amt < pol.htlc_minimum_msat {
            return Err(wire::TEMPORARY_CHANNEL_FAILURE);
        }
        let delta = pol.cltv_expiry_delta;
        if !(delta < in_expiry && in_expiry - delta >= out_expiry) {
            return Err(wire::INCORRECT_CLTV_EXPIRY);
        }
        if self.blockheight >= out_expiry {
            return Err(wire::EXPIRY_TOO_SOON);
        }
        if self.blockheight + self.config.max_htlc_cltv < out_expiry {
            return Err(wire::EXPIRY_TOO_FAR);
        }
        if !self.nodes[next].online {
            return Err(wire::TEMPORARY_CHANNEL_FAILURE);
        }
        // channeld's offer checks.
        if amt < ch.policy[1 - s].htlc_minimum_msat {
            return Err(wire::AMOUNT_BELOW_MINIMUM);
        }
        if self.spendable(c, s) < amt || ch.htlcs.len() >= self.config.max_accepted_htlcs {
            return Err(wire::TEMPORARY_CHANNEL_FAILURE);
        }
        Ok((c, s))
    }

    /// The HTLC reached the end of the route.
    fn arrive_final(&mut self, pid: usize) -> Vec<Event> {
        let pay = &self.payments[pid];
        let n = pay.route.len();
        let last = &pay.route[n - 1];
        let expiry = self.blockheight + 1 + last.delay;
        if last.node != Some(self.us) {
            // Only our node has invoices in this network.
            let f = self.remote_failure(pid, n - 1, wire::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS);
            return self.fail_payment(pid, f);
        }
        if self.blockheight + self.config.cltv_final > expiry {
            let f = self.remote_failure(pid, n - 1, wire::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS);
            return self.fail_payment(pid, f);
        }
        if self.hooks.htlc_accepted {
            self.payments[pid].stage = Stage::AwaitHtlcAccepted;
            let payload = self.htlc_accepted_payload(pid);
            let status = format!(
                "Waiting for the htlc_accepted hook of plugin {}",
                self.hooks_plugin_name()
            );
            self.set_final_htlc_status(pid, Some(status));
            return vec![
                Event::Changed,
                Event::HtlcAcceptedHook {
                    payment: pid,
                    payload,
                },
            ];
        }
        self.after_htlc_accepted(pid)
    }

    fn hooks_plugin_name(&self) -> String {
        self.hooks.plugin_name.clone()
    }

    fn set_final_htlc_status(&mut self, pid: usize, status: Option<String>) {
        if let Some(&(c, id)) = self.payments[pid].legs.last() {
            let s_us = self.side_of(c, self.us);
            if let Some(h) = self.channels[c]
                .htlcs
                .iter_mut()
                .find(|h| h.id == id && Some(h.from) != s_us)
            {
                h.status = status;
            }
        }
    }

    fn htlc_accepted_payload(&self, pid: usize) -> Value {
        let pay = &self.payments[pid];
        let &(c, id) = pay.legs.last().expect("arrived");
        let last = pay.route.last().expect("route");
        let expiry = self.blockheight + 1 + last.delay;
        let s_us = self.side_of(c, self.us).unwrap_or(0);
        let peer = self.channels[c].nodes[1 - s_us];
        let mut onion = json!({
            "payload": "",
            "type": "tlv",
            "forward_msat": last.amount_msat,
            "outgoing_cltv_value": expiry,
            "next_onion": "00".repeat(1366),
            "shared_secret": hex(&sha256(format!("ss{}", pay.payment_hash).as_bytes())),
        });
        if let Some(sec) = &pay.payment_secret {
            onion["total_msat"] = json!(pay.amount_msat);
            onion["payment_secret"] = json!(sec);
        }
        json!({
            "peer_id": self.nodes[peer].id,
            "onion": onion,
            "htlc": {
                "short_channel_id": self.channels[c].scid,
                "id": id,
                "amount_msat": last.amount_msat,
                "cltv_expiry": expiry,
                "cltv_expiry_relative": expiry as i64 - self.blockheight as i64,
                "payment_hash": pay.payment_hash,
            }
        })
    }

    /// The plugin's answer to htlc_accepted (`None`: the plugin died, lightningd continues).
    pub fn htlc_accepted_result(&mut self, pid: usize, answer: Option<&Value>) -> Vec<Event> {
        if self.payments[pid].stage != Stage::AwaitHtlcAccepted {
            return vec![];
        }
        self.payments[pid].stage = Stage::InFlight;
        self.set_final_htlc_status(pid, None);
        let n = self.payments[pid].route.len();
        let result = answer
            .and_then(|a| a.get("result"))
            .and_then(Value::as_str)
            .unwrap_or("continue");
        match result {
            "continue" => self.after_htlc_accepted(pid),
            "resolve" => {
                let key = answer
                    .and_then(|a| a.get("payment_key"))
                    .and_then(Value::as_str)
                    .and_then(unhex);
                match key {
                    Some(k) if hex(&sha256(&k)) == self.payments[pid].payment_hash => {
                        self.settle(pid, hex(&k), false)
                    }
                    _ => {
                        let f = self.remote_failure(pid, n - 1, wire::TEMPORARY_NODE_FAILURE);
                        self.fail_payment(pid, f)
                    }
                }
            }
            _ => {
                let code = answer
                    .and_then(|a| a.get("failure_message"))
                    .and_then(Value::as_str)
                    .and_then(unhex)
                    .filter(|b| b.len() >= 2)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]))
                    .unwrap_or(wire::TEMPORARY_NODE_FAILURE);
                let f = self.remote_failure(pid, n - 1, code);
                self.fail_payment(pid, f)
            }
        }
    }

    /// handle_localpay's invoice checks, then the invoice_payment hook or settlement.
    fn after_htlc_accepted(&mut self, pid: usize) -> Vec<Event> {
        let n = self.payments[pid].route.len();
        if let Err(_why) = self.invoice_check_payment(pid) {
            let f = self.remote_failure(pid, n - 1, wire::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS);
            return self.fail_payment(pid, f);
        }
        if self.hooks.invoice_payment {
            let inv = self
                .invoice_by_hash(&self.payments[pid].payment_hash)
                .expect("checked");
            self.payments[pid].stage = Stage::AwaitInvoicePayment;
            let payload = json!({"payment": {
                "label": self.invoices[inv].label,
                "preimage": self.invoices[inv].preimage,
                "msat": self.payments[pid].route[n - 1].amount_msat,
            }});
            return vec![
                Event::Changed,
                Event::InvoicePaymentHook {
                    payment: pid,
                    payload,
                },
            ];
        }
        let pre = self.invoice_preimage(pid);
        self.settle(pid, pre, true)
    }

    fn invoice_preimage(&self, pid: usize) -> String {
        self.invoice_by_hash(&self.payments[pid].payment_hash)
            .map(|i| self.invoices[i].preimage.clone())
            .unwrap_or_default()
    }

    /// lightningd's `invoice_check_payment`, plus the invoice's own min_final_cltv_expiry.
    fn invoice_check_payment(&self, pid: usize) -> Result<(), String> {
        let pay = &self.payments[pid];
        let last = pay.route.last().expect("route");
        let msat = last.amount_msat;
        let Some(i) = self.invoice_by_hash(&pay.payment_hash) else {
            return Err(format!("Unknown invoice {}", pay.payment_hash));
        };
        if self.invoice_status(i) != super::invoices::InvoiceStatus::Unpaid {
            return Err(format!(
                "Already paid or expired invoice {}",
                pay.payment_hash
            ));
        }
        let inv = &self.invoices[i];
        match &pay.payment_secret {
            None => {
                return Err(format!(
                    "Attempt to pay {} without secret",
                    inv.payment_hash
                ));
            }
            Some(s) if *s != inv.payment_secret => {
                return Err(format!(
                    "Attempt to pay {} with wrong payment_secret",
                    inv.payment_hash
                ));
            }
            _ => {}
        }
        if let Some(expected) = inv.amount_msat {
            if msat < expected {
                return Err(format!(
                    "Attempt to pay {} with amount {} < {}",
                    inv.payment_hash,
                    fmt_msat(msat),
                    fmt_msat(expected)
                ));
            }
            if msat > expected.saturating_mul(2) {
                return Err(format!(
                    "Attempt to pay {} with amount {} > {}",
                    inv.payment_hash,
                    fmt_msat(msat),
                    fmt_msat(expected * 2)
                ));
            }
        }
        let expiry = self.blockheight + 1 + last.delay;
        if self.blockheight + inv.cltv > expiry {
            return Err(format!(
                "Expiry cltv too soon for invoice cltv {}",
                inv.cltv
            ));
        }
        Ok(())
    }

    /// The plugin's answer to invoice_payment (`None`: the plugin died, lightningd continues).
    pub fn invoice_payment_result(&mut self, pid: usize, answer: Option<&Value>) -> Vec<Event> {
        if self.payments[pid].stage != Stage::AwaitInvoicePayment {
            return vec![];
        }
        self.payments[pid].stage = Stage::InFlight;
        let n = self.payments[pid].route.len();
        let failcode = match answer {
            None => None,
            Some(a) => match a.get("result").and_then(Value::as_str) {
                Some("continue") => None,
                Some("reject") => Some(wire::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS),
                _ => Some(
                    a.get("failure_message")
                        .and_then(Value::as_str)
                        .and_then(unhex)
                        .filter(|b| b.len() >= 2)
                        .map(|b| u16::from_be_bytes([b[0], b[1]]))
                        .unwrap_or(wire::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS),
                ),
            },
        };
        // Paid or expired while the hook ran: fail (invoice_payment_hooks_done).
        let failcode = failcode.or_else(|| {
            self.invoice_check_payment(pid)
                .err()
                .map(|_| wire::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS)
        });
        match failcode {
            Some(code) => {
                let f = self.remote_failure(pid, n - 1, code);
                self.fail_payment(pid, f)
            }
            None => {
                let pre = self.invoice_preimage(pid);
                self.settle(pid, pre, true)
            }
        }
    }

    /// Fulfills every HTLC of the payment: balances move hop by hop, the invoice is paid.
    fn settle(&mut self, pid: usize, preimage: String, pay_invoice: bool) -> Vec<Event> {
        let legs = std::mem::take(&mut self.payments[pid].legs);
        for &(c, id) in &legs {
            let us_side = self.side_of(c, self.us);
            let ch = &mut self.channels[c];
            if let Some(pos) = ch.htlcs.iter().position(|h| h.id == id && h.payment == pid) {
                let h = ch.htlcs.remove(pos);
                ch.balance_msat[h.from] -= h.amount_msat;
                ch.balance_msat[1 - h.from] += h.amount_msat;
                match us_side {
                    Some(u) if u == h.from => {
                        ch.stats.out_payments_fulfilled += 1;
                        ch.stats.out_fulfilled_msat += h.amount_msat;
                    }
                    Some(_) => {
                        ch.stats.in_payments_fulfilled += 1;
                        ch.stats.in_fulfilled_msat += h.amount_msat;
                    }
                    None => {}
                }
            }
        }
        self.payments[pid].legs = legs;
        let now = self.now();
        let mut events = vec![Event::Changed];
        if pay_invoice && let Some(i) = self.invoice_by_hash(&self.payments[pid].payment_hash) {
            let received = self.payments[pid].amount_msat;
            let pay_index = self.invoices.iter().filter(|i| i.paid.is_some()).count() as u64 + 1;
            let upd = self.invoice_index.next_updated();
            let inv = &mut self.invoices[i];
            inv.paid = Some(super::invoices::PaidInfo {
                pay_index,
                amount_received_msat: received,
                paid_at: now,
            });
            inv.updated_index = Some(upd);
            events.push(Event::InvoicePaid {
                notification: (
                    "invoice_payment".into(),
                    json!({"invoice_payment": {
                        "msat": received,
                        "preimage": inv.preimage,
                        "label": inv.label,
                    }}),
                ),
            });
        }
        let upd = self.sendpay_index.next_updated();
        let p = &mut self.payments[pid];
        p.status = PayStatus::Complete;
        p.stage = Stage::Done;
        p.preimage = Some(preimage);
        p.completed_at = Some(now);
        p.updated_index = Some(upd);
        let fields = self.payment_fields(pid, PayStatus::Complete);
        events.push(Event::PaymentDone {
            payment: pid,
            notification: ("sendpay_success".into(), json!({"sendpay_success": fields})),
        });
        events
    }

    /// Fails every HTLC of the payment back: nothing moves.
    pub(crate) fn fail_payment(&mut self, pid: usize, f: Failure) -> Vec<Event> {
        for &(c, id) in &self.payments[pid].legs {
            self.channels[c]
                .htlcs
                .retain(|h| !(h.id == id && h.payment == pid));
        }
        let now = self.now();
        let upd = self.sendpay_index.next_updated();
        let p = &mut self.payments[pid];
        p.status = PayStatus::Failed;
        p.stage = Stage::Done;
        p.completed_at = Some(now);
        p.updated_index = Some(upd);
        p.failure = Some(f);
        let err = self.failure_error(pid, true);
        vec![
            Event::Changed,
            Event::PaymentDone {
                payment: pid,
                notification: (
                    "sendpay_failure".into(),
                    json!({"sendpay_failure": err.to_json()}),
                ),
            },
        ]
    }

    /// sendpay with an empty route: pay our own invoice without any HTLC.
    #[allow(clippy::too_many_arguments)]
    fn self_payment(
        &mut self,
        hash: String,
        groupid: u64,
        msat: u64,
        label: Option<String>,
        bolt11: Option<String>,
        description: Option<String>,
        secret: Option<String>,
    ) -> Result<(Value, Vec<Event>), RpcError> {
        let now = self.now();
        let created_index = self.sendpay_index.next_created();
        let us_id = self.us_id().to_string();
        self.payments.push(Payment {
            created_index,
            payment_hash: hash,
            groupid,
            partid: 0,
            destination: Some(us_id.clone()),
            amount_msat: msat,
            amount_sent_msat: msat,
            created_at: now,
            completed_at: None,
            status: PayStatus::Pending,
            preimage: None,
            label,
            bolt11,
            description,
            payment_secret: secret,
            // A pseudo-route ending at us, for the invoice checks.
            route: vec![RouteHop {
                node_id: us_id.clone(),
                node: Some(self.us),
                scid: "0x0x0".into(),
                amount_msat: msat,
                delay: self.config.cltv_final.max(1000),
            }],
            legs: Vec::new(),
            stage: Stage::InFlight,
            failure: None,
            updated_index: None,
        });
        let pid = self.payments.len() - 1;
        if let Err(why) = self.invoice_check_payment(pid) {
            let f = Failure {
                errcode: PAY_DESTINATION_PERM_FAIL,
                failcode: wire::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS,
                erring_index: 0,
                erring_node: us_id,
                erring_channel: None,
                erring_direction: 0,
                details: why.clone(),
            };
            let mut events = self.fail_payment(pid, f);
            events.retain(|e| matches!(e, Event::Changed));
            let mut err = self.failure_error(pid, false);
            err.message = why;
            return Err(err);
        }
        let pre = self.invoice_preimage(pid);
        let events = self.settle(pid, pre, true);
        Ok((
            Value::Object(self.payment_fields(pid, PayStatus::Complete)),
            events,
        ))
    }

    /// waitsendpay's lookup: the result now, or the payment to wait on.
    pub fn waitsendpay_check(&mut self, p: &Value) -> Result<(WaitState, Option<u32>), RpcError> {
        let p = params::parse(
            p,
            &[
                ("payment_hash", true),
                ("timeout", false),
                ("partid", false),
                ("groupid", false),
            ],
        )?;
        let hash = p.sha256("payment_hash")?.unwrap_or_default();
        let timeout = p.u32("timeout")?;
        let partid = p.u64("partid")?.unwrap_or(0);
        let groupid = match p.u64("groupid")? {
            Some(g) => g,
            None => self.max_groupid(&hash),
        };
        let found = self
            .payments
            .iter()
            .position(|x| x.payment_hash == hash && x.partid == partid && x.groupid == groupid);
        let Some(pid) = found else {
            return Err(RpcError::new(
                PAY_NO_SUCH_PAYMENT,
                format!("Never attempted payment part {partid} for '{hash}'"),
            ));
        };
        Ok((self.wait_state(pid, false), timeout))
    }

    /// The result waitsendpay gives for payment `pid` (`live`: the caller was waiting when it
    /// finished).
    pub fn wait_state(&self, pid: usize, live: bool) -> WaitState {
        match self.payments[pid].status {
            PayStatus::Pending => WaitState::Pending(pid),
            PayStatus::Complete => WaitState::Done(Ok(Value::Object(
                self.payment_fields(pid, PayStatus::Complete),
            ))),
            PayStatus::Failed => WaitState::Done(Err(self.failure_error(pid, live))),
        }
    }

    pub fn listsendpays(&mut self, p: &Value) -> RpcResult {
        let p = params::parse(
            p,
            &[
                ("bolt11", false),
                ("payment_hash", false),
                ("status", false),
                ("index", false),
                ("start", false),
                ("limit", false),
            ],
        )?;
        let bolt11 = p.string("bolt11")?;
        let hash = p.sha256("payment_hash")?;
        let status = p.string("status")?;
        if bolt11.is_some() && hash.is_some() {
            return Err(RpcError::invalid(
                "Can only specify one of {bolt11} or {payment_hash}",
            ));
        }
        if let Some(s) = &status
            && !["pending", "complete", "failed"].contains(&s.as_str())
        {
            return Err(RpcError::badparam(
                "status",
                "should be an invoice status",
                &json!(s),
            ));
        }
        let list: Vec<Value> = (0..self.payments.len())
            .filter(|&i| {
                let x = &self.payments[i];
                hash.as_ref().is_none_or(|h| x.payment_hash == *h)
                    && bolt11.as_ref().is_none_or(|b| x.bolt11.as_ref() == Some(b))
                    && status.as_ref().is_none_or(|s| {
                        *s == match x.status {
                            PayStatus::Pending => "pending",
                            PayStatus::Complete => "complete",
                            PayStatus::Failed => "failed",
                        }
                    })
            })
            .map(|i| Value::Object(self.payment_fields(i, self.payments[i].status)))
            .collect();
        Ok(json!({"payments": list}))
    }
}

/// `json_add_routefail_info`.
fn add_routefail_info(o: &mut Map<String, Value>, f: &Failure) {
    o.insert("erring_index".into(), json!(f.erring_index));
    o.insert("failcode".into(), json!(f.failcode));
    if let Some(n) = wire::failcode_name(f.failcode) {
        o.insert("failcodename".into(), json!(n));
    }
    o.insert("erring_node".into(), json!(f.erring_node));
    if let Some(c) = &f.erring_channel {
        o.insert("erring_channel".into(), json!(c));
        o.insert("erring_direction".into(), json!(f.erring_direction));
    }
}

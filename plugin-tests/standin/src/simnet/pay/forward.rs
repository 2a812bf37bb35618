//! An HTLC hop by hop: our channeld offering the first one, each forwarding node's checks in
//! lightningd's order (lightningd/peer_htlcs.c `forward_htlc`, `best_channel`, channeld's offer
//! checks) with their BOLT 4 failcodes, holds a test asked for, and the end of a payment:
//! every HTLC settled (balances move) or failed back (nothing moves).

use super::super::params::PAY_DESTINATION_PERM_FAIL;
use super::super::params::PAY_TRY_OTHER_ROUTE;
use super::super::wire;
use super::super::{Event, Htlc, Network};
use super::{Failure, PayStatus, Stage, fmt_msat};
use serde_json::json;

impl Network {
    /// Our channeld offers the first HTLC (or refuses it: a local failure, erring_index 0).
    pub(super) fn launch(&mut self, pid: usize, c0: usize) -> Vec<Event> {
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
                raw_message: None,
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
                    self.disable_towards_offline(pid, k, code);
                    let f = self.remote_failure(pid, k - 1, code);
                    return self.fail_payment(pid, f);
                }
            }
        }
    }

    /// With `lazy_disable`: hop `k`'s forward refused, with a channel_update, while its next
    /// node is offline makes the forwarding node disable that direction: lightningd builds
    /// the update of such a failure with `channel_gossip_update_for_error`, which disables a
    /// channel whose peer is gone (only for a forwarded HTLC, and only when the channel it
    /// picked is the one the onion named: `channel_update_for_error`).
    fn disable_towards_offline(&mut self, pid: usize, k: usize, code: u16) {
        if !self.config.lazy_disable || code & wire::UPDATE == 0 {
            return;
        }
        let pay = &self.payments[pid];
        let (Some(x), Some(next)) = (pay.route[k - 1].node, pay.route[k].node) else {
            return;
        };
        let Some(req) = self.channel_by_scid(&pay.route[k].scid) else {
            return;
        };
        if self.nodes[next].online || !self.channels[req].nodes.contains(&next) {
            return;
        }
        if self.best_channel(x, next, req, pay.route[k].amount_msat) != req {
            return;
        }
        if let Some(s) = self.side_of(req, x) {
            self.channels[req].disabled_by_peer[s] = true;
        }
    }

    /// `remote_routing_failure`: the node at route index `origin` (the end of hop `origin`)
    /// returned `failcode`.
    pub(super) fn remote_failure(&self, pid: usize, origin: usize, failcode: u16) -> Failure {
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
                raw_message: wire::failure_raw(
                    failcode,
                    route[origin].amount_msat,
                    self.blockheight,
                    None,
                ),
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
                raw_message: wire::failure_raw(
                    failcode,
                    route[origin].amount_msat,
                    self.blockheight + 1 + route[origin].delay,
                    self.update_for_error(&route[origin + 1].scid, route[origin].node),
                ),
            }
        }
    }

    /// The channel_update node `x` puts in a failure over channel `scid`
    /// (`channel_gossip_update_for_error`): its policy, disabled if the far end is offline.
    fn update_for_error(&self, scid: &str, x: Option<usize>) -> Option<Vec<u8>> {
        let c = self.channel_by_scid(scid)?;
        let s = self.side_of(c, x?)?;
        let ch = &self.channels[c];
        let next = ch.nodes[1 - s];
        let p = &ch.policy[s];
        let disabled = !p.active || !self.nodes[next].online;
        Some(wire::channel_update(
            scid,
            p,
            self.direction(ch.nodes[s], next),
            disabled,
        ))
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
        let c = self.best_channel(x, next, req, amt);
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
        // lightningd checks one delta for all its channels (`cltv-delta`, `forward_htlc`), so
        // a substitute's is the one the onion was built with: the requested channel's.
        let delta = self.channels[req].policy[sx].cltv_expiry_delta;
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

    /// lightningd's `best_channel`: unless `x` forwards strictly, its channel to `next` with
    /// the most spendable among those with the requested channel's fees (`req` included).
    fn best_channel(&self, x: usize, next: usize, req: usize, amt: u64) -> usize {
        let mut c = req;
        if self.nodes[x].strict_forwarding {
            return c;
        }
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
        c
    }

    /// Fulfills every HTLC of payment `pid` with `preimage`: balances move hop by hop and the
    /// payment completes (`payment_succeeded`). The invoice, if any, is the receiver's business.
    pub(crate) fn settle_part(&mut self, pid: usize, preimage: String) -> Vec<Event> {
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
        let upd = self.sendpay_index.next_updated();
        let p = &mut self.payments[pid];
        p.status = PayStatus::Complete;
        p.stage = Stage::Done;
        p.preimage = Some(preimage);
        p.completed_at = Some(now);
        p.updated_index = Some(upd);
        let fields = self.payment_fields(pid, PayStatus::Complete);
        vec![
            Event::Changed,
            Event::PaymentDone {
                payment: pid,
                notification: ("sendpay_success".into(), json!({"sendpay_success": fields})),
            },
        ]
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
        self.failure_events(pid)
    }
}

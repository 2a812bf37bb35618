//! Our node as the final node of a payment, as lightningd v26.06.6 is: the `htlc_accepted`
//! hook for every HTLC (lightningd/peer_htlcs.c), then `handle_localpay` (cltv_final), then the
//! HTLC set of that payment hash (lightningd/htlc_set.c: parts from any channel add up to the
//! onion's total_msat, at most [`MPP_TIMEOUT_SECS`] from the first, else every part fails with
//! mpp_timeout), then the `invoice_payment` hook once per complete set and the invoice paid
//! once (lightningd/invoice.c). A refusal at our node is a failure "from the remote" at the
//! route's last index, as the payer (also us) decodes it.

use super::super::invoices::InvoiceStatus;
use super::super::wire;
use super::super::{Event, Network};
use super::{Stage, fmt_msat};
use crate::sha256::{hex, sha256, unhex};
use serde_json::{Value, json};

/// lightningd/htlc_set.c: `new_reltimer(..., time_from_sec(70), timeout_htlc_set, set)`.
pub const MPP_TIMEOUT_SECS: u64 = 70;

/// lightningd's `struct htlc_set`: the HTLCs that arrived for one payment hash.
#[derive(Debug, Clone)]
pub struct HtlcSet {
    pub payment_hash: String,
    /// The first part's onion total_msat; every part must carry the same.
    pub total_msat: u64,
    pub so_far_msat: u64,
    /// The parts (payments) whose final HTLCs the set holds, in arrival order.
    pub parts: Vec<usize>,
    /// Network time at which the set fails with mpp_timeout; `None` once it is complete
    /// (lightningd frees the timer then, "in case invoice_hook is slow").
    pub deadline: Option<u64>,
    /// invoice_payment hook calls not yet answered: (the part whose arrival made the call, the
    /// `msat` it offered). A part arriving while the hook runs calls it again, as lightningd.
    pub hook_calls: Vec<(usize, u64)>,
}

impl Network {
    /// The HTLC reached the end of the route.
    pub(super) fn arrive_final(&mut self, pid: usize) -> Vec<Event> {
        let last = self.payments[pid].route.last().expect("route");
        if last.node != Some(self.us) {
            // Only our node has invoices in this network.
            return self.fail_final(pid, wire::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS);
        }
        if self.hooks.htlc_accepted {
            self.payments[pid].stage = Stage::AwaitHtlcAccepted;
            let payload = self.htlc_accepted_payload(pid);
            let status = format!(
                "Waiting for the htlc_accepted hook of plugin {}",
                self.hooks.plugin_name
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
        self.handle_localpay(pid)
    }

    /// Payment `pid` fails at our node (the end of its route) with `failcode`.
    fn fail_final(&mut self, pid: usize, failcode: u16) -> Vec<Event> {
        let n = self.payments[pid].route.len();
        let f = self.remote_failure(pid, n - 1, failcode);
        self.fail_payment(pid, f)
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
        });
        // total_msat and payment_secret travel together (payment_data).
        if let Some(sec) = &pay.payment_secret {
            onion["total_msat"] = json!(pay.total_msat);
            onion["payment_secret"] = json!(sec);
        }
        if let Some(m) = &pay.payment_metadata {
            onion["payment_metadata"] = json!(hex(m));
        }
        onion["next_onion"] = json!("00".repeat(1366));
        onion["shared_secret"] = json!(hex(&sha256(
            format!("ss{}{}", pay.payment_hash, pay.partid).as_bytes()
        )));
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
        let result = answer
            .and_then(|a| a.get("result"))
            .and_then(Value::as_str)
            .unwrap_or("continue");
        match result {
            "continue" => self.handle_localpay(pid),
            "resolve" => {
                let key = answer
                    .and_then(|a| a.get("payment_key"))
                    .and_then(Value::as_str)
                    .and_then(unhex);
                match key {
                    Some(k) if hex(&sha256(&k)) == self.payments[pid].payment_hash => {
                        self.settle_part(pid, hex(&k))
                    }
                    _ => self.fail_final(pid, wire::TEMPORARY_NODE_FAILURE),
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
                self.fail_final(pid, code)
            }
        }
    }

    /// `handle_localpay`: the final node's own checks on one HTLC, then its HTLC set.
    fn handle_localpay(&mut self, pid: usize) -> Vec<Event> {
        let pay = &self.payments[pid];
        let expiry = self.blockheight + 1 + pay.route.last().expect("route").delay;
        if self.blockheight + self.config.cltv_final > expiry {
            return self.fail_final(pid, wire::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS);
        }
        // Stricter than lightningd, which never checks the invoice's own min_final_cltv_expiry.
        let invoice_cltv = self
            .invoice_by_hash(&pay.payment_hash)
            .map_or(0, |i| self.invoices[i].cltv);
        if self.blockheight + invoice_cltv > expiry {
            return self.fail_final(pid, wire::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS);
        }
        if pay.payment_metadata.is_some() {
            return self.fail_final(pid, wire::INVALID_ONION_PAYLOAD);
        }
        self.htlc_set_add(pid)
    }

    fn set_of_hash(&self, hash: &str) -> Option<usize> {
        self.htlc_sets.iter().position(|s| s.payment_hash == hash)
    }

    /// `htlc_set_add`: checks the part against the invoice (with the onion's total), adds it
    /// to the set of its payment hash, and pays the invoice when the set adds up.
    fn htlc_set_add(&mut self, pid: usize) -> Vec<Event> {
        let pay = &self.payments[pid];
        let hash = pay.payment_hash.clone();
        let total = pay.total_msat;
        let msat = pay.amount_msat;
        let has_secret = pay.payment_secret.is_some();
        if self
            .invoice_check_payment(&hash, total, pay.payment_secret.as_deref())
            .is_err()
        {
            return self.fail_final(pid, wire::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS);
        }
        let si = match self.set_of_hash(&hash) {
            None => {
                let deadline = self.now() + MPP_TIMEOUT_SECS;
                self.htlc_sets.push(HtlcSet {
                    payment_hash: hash,
                    total_msat: total,
                    so_far_msat: 0,
                    parts: vec![pid],
                    deadline: Some(deadline),
                    hook_calls: Vec::new(),
                });
                self.htlc_sets.len() - 1
            }
            Some(si) => {
                // MPP needs payment_secret on every part: refused at once (probing).
                if !has_secret {
                    return self.fail_final(pid, wire::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS);
                }
                self.htlc_sets[si].parts.push(pid);
                si
            }
        };
        self.payments[pid].stage = Stage::AwaitParts;
        let set = &mut self.htlc_sets[si];
        // BOLT 4: fail the entire set if total_msat is not the same for all its HTLCs.
        if total != set.total_msat {
            return self.fail_set(si, wire::FINAL_INCORRECT_HTLC_AMOUNT);
        }
        let Some(so_far) = set.so_far_msat.checked_add(msat) else {
            return self.fail_set(si, wire::FINAL_INCORRECT_HTLC_AMOUNT);
        };
        set.so_far_msat = so_far;
        if so_far >= total {
            set.deadline = None;
            return self.invoice_try_pay(si, pid);
        }
        if !has_secret {
            return self.fail_set(si, wire::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS);
        }
        vec![Event::Changed]
    }

    /// `invoice_try_pay`: the set adds up (made so by part `pid`); the invoice_payment hook
    /// decides, or, with none registered, the invoice is paid at once.
    fn invoice_try_pay(&mut self, si: usize, pid: usize) -> Vec<Event> {
        let msat = self.htlc_sets[si].so_far_msat;
        if !self.hooks.invoice_payment {
            return self.invoice_payment_hooks_done(si, msat);
        }
        let set = &mut self.htlc_sets[si];
        set.hook_calls.push((pid, msat));
        for &p in &set.parts {
            self.payments[p].stage = Stage::AwaitInvoicePayment;
        }
        let inv = self
            .invoice_by_hash(&self.payments[pid].payment_hash)
            .expect("checked by invoice_check_payment");
        let payload = json!({"payment": {
            "label": self.invoices[inv].label,
            "preimage": self.invoices[inv].preimage,
            "msat": msat,
        }});
        vec![
            Event::Changed,
            Event::InvoicePaymentHook {
                payment: pid,
                payload,
            },
        ]
    }

    /// The plugin's answer to the invoice_payment call made when part `pid` completed its set
    /// (`None`: the plugin died, lightningd continues). Ignored if the set is gone meanwhile
    /// (timed out, or a part's HTLC vanished), as lightningd ignores it.
    pub fn invoice_payment_result(&mut self, pid: usize, answer: Option<&Value>) -> Vec<Event> {
        let Some(si) = self
            .htlc_sets
            .iter()
            .position(|s| s.hook_calls.iter().any(|&(p, _)| p == pid))
        else {
            return vec![];
        };
        let calls = &mut self.htlc_sets[si].hook_calls;
        let (_, msat) = calls.remove(calls.iter().position(|&(p, _)| p == pid).expect("found"));
        let failcode = answer.and_then(|a| match a.get("result").and_then(Value::as_str) {
            Some("continue") => None,
            // htlc_set_fail with an empty message: incorrect_or_unknown for each part.
            Some("reject") => Some(wire::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS),
            _ => Some(
                a.get("failure_message")
                    .and_then(Value::as_str)
                    .and_then(unhex)
                    .filter(|b| b.len() >= 2)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]))
                    .unwrap_or(wire::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS),
            ),
        });
        match failcode {
            Some(code) => self.fail_set(si, code),
            None => self.invoice_payment_hooks_done(si, msat),
        }
    }

    /// `invoice_payment_hooks_done`: pays the invoice with `msat` and fulfills every part, or
    /// fails them all if the invoice was deleted, paid or expired meanwhile.
    fn invoice_payment_hooks_done(&mut self, si: usize, msat: u64) -> Vec<Event> {
        let hash = self.htlc_sets[si].payment_hash.clone();
        let inv = self
            .invoice_by_hash(&hash)
            .filter(|&i| self.invoice_status(i) == InvoiceStatus::Unpaid);
        let Some(inv) = inv else {
            return self.fail_set(si, wire::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS);
        };
        let set = self.htlc_sets.remove(si);
        let preimage = self.invoices[inv].preimage.clone();
        // The invoice is resolved (and its notification sent) before the fulfilled HTLCs reach
        // the payer, whose sendpay_success comes after.
        let mut events = self.resolve_invoice(inv, msat);
        for &p in &set.parts {
            events.extend(self.settle_part(p, preimage.clone()));
        }
        events
    }

    /// `htlc_set_fail`: every part of set `si` fails with `failcode`; the set is gone.
    fn fail_set(&mut self, si: usize, failcode: u16) -> Vec<Event> {
        let set = self.htlc_sets.remove(si);
        let mut events = Vec::new();
        for &p in &set.parts {
            events.extend(self.fail_final(p, failcode));
        }
        events
    }

    /// `invoices_resolve`: invoice `inv` is paid with `msat`; its notification.
    pub(super) fn resolve_invoice(&mut self, inv: usize, msat: u64) -> Vec<Event> {
        let now = self.now();
        let pay_index = self.invoices.iter().filter(|i| i.paid.is_some()).count() as u64 + 1;
        let upd = self.invoice_index.next_updated();
        let i = &mut self.invoices[inv];
        i.paid = Some(super::super::invoices::PaidInfo {
            pay_index,
            amount_received_msat: msat,
            paid_at: now,
        });
        i.updated_index = Some(upd);
        vec![
            Event::Changed,
            Event::InvoicePaid {
                notification: (
                    "invoice_payment".into(),
                    json!({"invoice_payment": {
                        "msat": msat,
                        "preimage": i.preimage,
                        "label": i.label,
                    }}),
                ),
            },
        ]
    }

    /// lightningd's `invoice_check_payment` (with the onion's total_msat): the invoice index,
    /// or why the payment is refused.
    pub(super) fn invoice_check_payment(
        &self,
        hash: &str,
        msat: u64,
        secret: Option<&str>,
    ) -> Result<usize, String> {
        let Some(i) = self.invoice_by_hash(hash) else {
            return Err(format!("Unknown invoice {hash}"));
        };
        if self.invoice_status(i) != InvoiceStatus::Unpaid {
            return Err(format!("Already paid or expired invoice {hash}"));
        }
        let inv = &self.invoices[i];
        match secret {
            None => return Err(format!("Attempt to pay {hash} without secret")),
            Some(s) if *s != inv.payment_secret => {
                return Err(format!("Attempt to pay {hash} with wrong payment_secret"));
            }
            _ => {}
        }
        if let Some(expected) = inv.amount_msat {
            if msat < expected {
                return Err(format!(
                    "Attempt to pay {hash} with amount {} < {}",
                    fmt_msat(msat),
                    fmt_msat(expected)
                ));
            }
            if let Some(twice) = expected.checked_mul(2)
                && msat > twice
            {
                return Err(format!(
                    "Attempt to pay {hash} with amount {} > {}",
                    fmt_msat(msat),
                    fmt_msat(twice)
                ));
            }
        }
        Ok(i)
    }

    /// `timeout_htlc_set`: every set still short of its total [`MPP_TIMEOUT_SECS`] after its
    /// first part fails with mpp_timeout.
    pub(crate) fn fire_mpp_timeouts(&mut self) -> Vec<Event> {
        let now = self.now();
        let mut events = Vec::new();
        while let Some(si) = self
            .htlc_sets
            .iter()
            .position(|s| s.deadline.is_some_and(|d| d <= now))
        {
            events.extend(self.fail_set(si, wire::MPP_TIMEOUT));
        }
        events
    }

    /// The HTLCs held in an HTLC set over channel `c` vanish (the channel closed: the peer
    /// takes them back on chain by timeout). Each such part fails as the peer then fails it
    /// upstream (permanent_channel_failure, from the node before us); the rest of its set
    /// fails with mpp_timeout (`htlc_set_inpay_destroyed`).
    pub(crate) fn drop_set_htlcs_on(&mut self, c: usize) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some((si, pid)) = self.htlc_sets.iter().enumerate().find_map(|(si, s)| {
            s.parts
                .iter()
                .find(|&&p| self.payments[p].legs.last().is_some_and(|&(lc, _)| lc == c))
                .map(|&p| (si, p))
        }) {
            self.htlc_sets[si].parts.retain(|&p| p != pid);
            let n = self.payments[pid].route.len();
            let f = self.remote_failure(pid, n.saturating_sub(2), wire::PERMANENT_CHANNEL_FAILURE);
            events.extend(self.fail_payment(pid, f));
            events.extend(self.fail_set(si, wire::MPP_TIMEOUT));
        }
        events
    }
}

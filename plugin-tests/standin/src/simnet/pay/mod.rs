//! Payments from our node (lightningd/pay.c) and the HTLCs that carry them, in named parts:
//!
//! - this file: what a payment is, how lightningd prints it (`json_add_payment_fields`, its
//!   errors), `waitsendpay` and `listsendpays`
//! - `sendpay`  the request: route parsing, the onion size, `check_progress` (parts, groups),
//!   the first hop, self-payments
//! - `forward`  the HTLC hop by hop (lightningd/peer_htlcs.c `forward_htlc`, channeld's offer
//!   checks, BOLT 4 failures), settling and failing a payment
//! - `receive`  the final node (`handle_localpay`, lightningd/htlc_set.c, invoice.c): the
//!   hooks, HTLC sets of multi-part payments, the 70 s MPP timeout
//!
//! Route semantics (sendpay): hop i's `amount_msat`/`delay` is what the node at the END of hop i
//! must receive; absolute expiry = blockheight + 1 + delay (lightningd's `base_expiry`).

mod forward;
mod receive;
mod sendpay;

pub use receive::{HtlcSet, MPP_TIMEOUT_SECS};
pub use sendpay::{MAX_ROUTE_HOPS, ROUTING_INFO_SIZE, onion_payload_bytes};

use super::params::{self, PAY_NO_SUCH_PAYMENT, RpcError, RpcResult};
use super::wire::{self, failure_message};
use super::{Event, Network};
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

impl PayStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PayStatus::Pending => "pending",
            PayStatus::Complete => "complete",
            PayStatus::Failed => "failed",
        }
    }
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
    /// At our node, in an HTLC set that does not yet add up to the onion's total_msat
    /// (a part of a multi-part payment, held at most [`MPP_TIMEOUT_SECS`]).
    AwaitParts,
    /// At our node, its set complete, waiting for the plugin's invoice_payment answer.
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
    /// The decrypted failure message, hex (a remote failure's; see `wire::failure_raw`).
    pub raw_message: Option<String>,
}

/// One sendpay: a single payment, or one part of a multi-part payment (`partid` != 0).
#[derive(Debug, Clone)]
pub struct Payment {
    pub created_index: u64,
    pub payment_hash: String,
    pub groupid: u64,
    pub partid: u64,
    pub destination: Option<String>,
    /// What this part delivers (lightningd's `msatoshi`: the route's final amount).
    pub amount_msat: u64,
    /// What the whole payment delivers (the onion's `total_msat`: sendpay's `amount_msat`,
    /// or this part's amount when not given).
    pub total_msat: u64,
    pub amount_sent_msat: u64,
    pub created_at: u64,
    pub completed_at: Option<u64>,
    pub status: PayStatus,
    pub preimage: Option<String>,
    pub label: Option<String>,
    pub bolt11: Option<String>,
    pub description: Option<String>,
    pub payment_secret: Option<String>,
    /// sendpay's `payment_metadata` (our node, as final node, refuses any).
    pub payment_metadata: Option<Vec<u8>>,
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

/// lightningd's `fmt_amount_msat`.
pub(crate) fn fmt_msat(m: u64) -> String {
    format!("{m}msat")
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
        o.insert("status".into(), json!(shown_status.as_str()));
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

    /// `json_sendpay_in_progress`.
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
        if live {
            add_raw_message(&mut data, f);
        }
        RpcError::new(f.errcode, failure_message(f.failcode, &f.details))
            .with_data(Value::Object(data))
    }

    /// `wallet_payment_get_groupid`: the highest groupid used for `hash`, 0 if none.
    fn max_groupid(&self, hash: &str) -> u64 {
        self.payments
            .iter()
            .filter(|p| p.payment_hash == hash)
            .map(|p| p.groupid)
            .max()
            .unwrap_or(0)
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
                    && status.as_ref().is_none_or(|s| s == x.status.as_str())
            })
            .map(|i| Value::Object(self.payment_fields(i, self.payments[i].status)))
            .collect();
        Ok(json!({"payments": list}))
    }

    /// The events that tell everyone payment `pid` failed (`tell_waiters_failed`).
    fn failure_events(&self, pid: usize) -> Vec<Event> {
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

/// `raw_message`: only to a waiter woken by the failure (lightningd does not store it: a
/// `waitsendpay` after the failure reads it from the database without, `pay.c`).
fn add_raw_message(o: &mut Map<String, Value>, f: &Failure) {
    if let Some(raw) = &f.raw_message {
        o.insert("raw_message".into(), json!(raw));
    }
}

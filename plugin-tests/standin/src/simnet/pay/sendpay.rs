//! `sendpay` as lightningd/pay.c v26.06.6 handles it: parameters (`json_sendpay`), the onion it
//! would build (`send_payment`; a route too long for it is refused and logged BROKEN, since
//! v26.06 crashes there), reconciling with earlier attempts on the same hash (`check_progress`:
//! parts, groups, totals), the first channel (`find_channel_for_htlc_add`), and payments to
//! ourselves with an empty route (`self_payment`).

use super::super::params::{
    self, LIGHTNINGD, PAY_DESTINATION_PERM_FAIL, PAY_IN_PROGRESS, PAY_RHASH_ALREADY_USED,
    PAY_TRY_OTHER_ROUTE, RpcError,
};
use super::super::wire::{self, failure_message};
use super::super::{Event, Network};
use super::{Failure, PayStatus, Payment, RouteHop, Stage, add_routefail_info, fmt_msat};
use serde_json::{Map, Value};

/// lightningd's `ROUTING_INFO_SIZE`: the onion's payload space.
pub const ROUTING_INFO_SIZE: usize = 1300;
/// The longest route the stand-in accepts (CLN's documented limit; the onion's byte limit
/// lets lightningd build some routes of 21 to ~26 hops, but v26.06 crashes on the first that
/// does not fit, so no route over 20 hops is let through).
pub const MAX_ROUTE_HOPS: usize = 20;
const HMAC_SIZE: usize = 32;

/// What `check_progress` found for a new part.
enum Progress {
    /// Nothing in the way: send it.
    New,
    /// The same part already succeeded: answer with it.
    Succeeded(usize),
    /// The same part is in flight: answer as sendpay did (`json_sendpay_in_progress`).
    Pending(usize),
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

/// Bytes of a BOLT 1 `bigsize`.
fn bigsize_len(n: usize) -> usize {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Bytes of a truncated integer (`tu64`/`tu32`): no leading zero bytes.
fn tu_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).div_ceil(8)
}

/// A TLV record of `len` bytes whose type fits one byte.
fn tlv_len(len: usize) -> usize {
    1 + bigsize_len(len) + len
}

/// The onion payload space a route takes, as lightningd's `send_payment` lays it out
/// (common/onion_encode.c, sphinx.c): per hop its TLV payload (with its length) plus an HMAC.
pub fn onion_payload_bytes(
    route: &[RouteHop],
    base_expiry: u32,
    total_msat: u64,
    payment_secret: bool,
    payment_metadata_len: Option<usize>,
) -> usize {
    let hop = |payload: usize| bigsize_len(payload) + payload + HMAC_SIZE;
    let n = route.len();
    let mut size = 0;
    for next in &route[1..] {
        // amt_to_forward, outgoing_cltv_value, short_channel_id.
        size += hop(tlv_len(tu_len(next.amount_msat))
            + tlv_len(tu_len(u64::from(base_expiry + next.delay)))
            + tlv_len(8));
    }
    let last = &route[n - 1];
    let mut payload =
        tlv_len(tu_len(last.amount_msat)) + tlv_len(tu_len(u64::from(base_expiry + last.delay)));
    if payment_secret {
        payload += tlv_len(32 + tu_len(total_msat));
    }
    if let Some(m) = payment_metadata_len {
        payload += tlv_len(m);
    }
    size + hop(payload)
}

impl Network {
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
        // param_bin_from_hex: bad hex counts as not given.
        let metadata = p
            .get("payment_metadata")
            .and_then(Value::as_str)
            .filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(crate::sha256::unhex);
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
        let total_msat = msat.unwrap_or(final_amount);
        self.check_onion_fits(&route, total_msat, secret.is_some(), metadata.as_deref())?;
        let destination = route.last().map(|h| h.node_id.clone());
        match self.check_progress(
            &hash,
            final_amount,
            total_msat,
            partid,
            groupid,
            &destination,
        )? {
            Progress::New => {}
            // Previous success is idempotent.
            Progress::Succeeded(i) => {
                return Ok((
                    Value::Object(self.payment_fields(i, PayStatus::Complete)),
                    vec![],
                ));
            }
            Progress::Pending(i) => return Ok((self.pending_response(i), vec![])),
        }
        let c0 = self.first_channel(&route[0])?;

        let now = self.now();
        let created_index = self.sendpay_index.next_created();
        let amount_sent_msat = route[0].amount_msat;
        self.payments.push(Payment {
            created_index,
            payment_hash: hash,
            groupid,
            partid,
            destination,
            amount_msat: final_amount,
            total_msat,
            amount_sent_msat,
            created_at: now,
            completed_at: None,
            status: PayStatus::Pending,
            preimage: None,
            label,
            bolt11,
            description,
            payment_secret: secret,
            payment_metadata: metadata,
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

    /// `create_onionpacket` fails on a route whose payloads exceed the onion, and lightningd
    /// v26.06.6 then crashes (SIGSEGV in `send_payment`; fixed on master by 90c60d01f, which
    /// answers -1 `Could not create onion packet`). The stand-in answers as the fix does, for
    /// such a route and for any over [`MAX_ROUTE_HOPS`], and logs it BROKEN so the test that
    /// sent it fails.
    fn check_onion_fits(
        &mut self,
        route: &[RouteHop],
        total_msat: u64,
        secret: bool,
        metadata: Option<&[u8]>,
    ) -> Result<(), RpcError> {
        let base_expiry = self.blockheight + 1;
        let bytes = onion_payload_bytes(
            route,
            base_expiry,
            total_msat,
            secret,
            metadata.map(<[u8]>::len),
        );
        if route.len() <= MAX_ROUTE_HOPS && bytes <= ROUTING_INFO_SIZE {
            return Ok(());
        }
        let why = if bytes > ROUTING_INFO_SIZE {
            "does not fit the onion: lightningd v26.06.6 crashes here (SIGSEGV in send_payment, \
             fixed after v26.06 by 90c60d01f)"
        } else {
            "is over 20 hops: lightningd v26.06.6 crashes on any route that does not fit the \
             onion (fixed after v26.06 by 90c60d01f); the stand-in refuses every route over 20 \
             hops"
        };
        self.log_broken(format!(
            "sendpay: a route of {} hops ({bytes} of {ROUTING_INFO_SIZE} onion bytes) {why}",
            route.len()
        ));
        Err(RpcError::new(LIGHTNINGD, "Could not create onion packet"))
    }

    /// `check_progress`: reconciles a new part with earlier attempts on the same hash.
    fn check_progress(
        &self,
        hash: &str,
        msat: u64,
        total_msat: u64,
        partid: u64,
        groupid: u64,
        destination: &Option<String>,
    ) -> Result<Progress, RpcError> {
        let mut have_complete = false;
        let mut already_pending: u64 = 0;
        let already = |what: &str, old: &Payment| -> Option<RpcError> {
            if old.amount_msat != msat {
                return Some(RpcError::new(
                    PAY_RHASH_ALREADY_USED,
                    format!(
                        "Already {what} with amount {} (not {})",
                        fmt_msat(old.amount_msat),
                        fmt_msat(msat)
                    ),
                ));
            }
            match (&old.destination, destination) {
                (Some(d), Some(new)) if d != new => Some(RpcError::new(
                    PAY_RHASH_ALREADY_USED,
                    format!("Already {what} to {d}"),
                )),
                _ => None,
            }
        };
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
                    return match already("succeeded", old) {
                        Some(e) => Err(e),
                        None => Ok(Progress::Succeeded(i)),
                    };
                }
                PayStatus::Pending => {
                    // At most one payment group can be in flight at any time.
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
                        if let Some(e) = already("pending", old) {
                            return Err(e);
                        }
                        return Ok(Progress::Pending(i));
                    }
                    if old.total_msat != total_msat {
                        return Err(RpcError::invalid(format!(
                            "msatoshi was previously {}, now {}",
                            fmt_msat(old.total_msat),
                            fmt_msat(total_msat)
                        )));
                    }
                    already_pending =
                        already_pending
                            .checked_add(old.amount_msat)
                            .ok_or_else(|| {
                                RpcError::new(
                                    LIGHTNINGD,
                                    format!(
                                        "Internal amount overflow! {} + {}",
                                        fmt_msat(already_pending),
                                        fmt_msat(old.amount_msat)
                                    ),
                                )
                            })?;
                }
                PayStatus::Failed => {}
            }
            // (payment_hash, partid, groupid) is the database's primary key.
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
        // BOLT 4: no new HTLC once the set's parts in flight already reach total_msat.
        if total_msat != 0 && already_pending >= total_msat {
            return Err(RpcError::new(
                PAY_IN_PROGRESS,
                format!(
                    "Already have {} of {} payments in progress",
                    fmt_msat(already_pending),
                    fmt_msat(total_msat)
                ),
            ));
        }
        Ok(Progress::New)
    }

    /// `find_channel_for_htlc_add`: our channel to the first peer, by scid or our local alias
    /// (or any with enough funds for scid 0x0x0); then `send_onion`'s refusal when the peer is
    /// offline. Both fail before any payment is recorded.
    fn first_channel(&self, first: &RouteHop) -> Result<usize, RpcError> {
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
                    raw_message: None,
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
                raw_message: None,
            };
            let mut data = Map::new();
            add_routefail_info(&mut data, &f);
            return Err(
                RpcError::new(f.errcode, failure_message(f.failcode, &f.details))
                    .with_data(Value::Object(data)),
            );
        }
        Ok(c0)
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
        let checked = self.invoice_check_payment(&hash, msat, secret.as_deref());
        self.payments.push(Payment {
            created_index,
            payment_hash: hash,
            groupid,
            partid: 0,
            destination: Some(us_id.clone()),
            amount_msat: msat,
            total_msat: msat,
            amount_sent_msat: msat,
            created_at: now,
            completed_at: None,
            status: PayStatus::Pending,
            preimage: None,
            label,
            bolt11,
            description,
            payment_secret: secret,
            payment_metadata: None,
            // A pseudo-route ending at us (lightningd keeps none), for dev-state.
            route: vec![RouteHop {
                node_id: us_id.clone(),
                node: Some(self.us),
                scid: "0x0x0".into(),
                amount_msat: msat,
                delay: self.config.cltv_final,
            }],
            legs: Vec::new(),
            stage: Stage::InFlight,
            failure: None,
            updated_index: None,
        });
        let pid = self.payments.len() - 1;
        let inv = match checked {
            Ok(inv) => inv,
            Err(why) => {
                let f = Failure {
                    errcode: PAY_DESTINATION_PERM_FAIL,
                    failcode: wire::INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS,
                    erring_index: 0,
                    erring_node: us_id,
                    erring_channel: None,
                    erring_direction: 0,
                    details: why.clone(),
                    raw_message: None,
                };
                // tell_waiters_failed still sends sendpay_failure; the caller gets the
                // payment as lightningd holds it in memory (still "pending"), and the reason.
                let events = self.fail_payment(pid, f);
                self.queue_events(events);
                let mut err = self.failure_error(pid, true);
                err.message = why;
                return Err(err);
            }
        };
        let preimage = self.invoices[inv].preimage.clone();
        let mut events = self.resolve_invoice(inv, msat);
        events.extend(self.settle_part(pid, preimage));
        Ok((
            Value::Object(self.payment_fields(pid, PayStatus::Complete)),
            events,
        ))
    }
}

//! Payments forwarded through our node: `listforwards` (lightningd/forwards.c,
//! wallet/wallet.c `forwarding_first`) and the `dev-forward` control method that makes one
//! happen (lightningd/peer_htlcs.c `forward_htlc`, for our node's checks).
//!
//! Nothing in the model routes other nodes' payments through us by itself; `dev-forward`
//! stands for "someone paid through us": an HTLC arrives on `in_channel`, our node checks it
//! as lightningd's `forward_htlc` and channeld would, offers `amount_msat` on `out_channel`,
//! and the downstream settles (or fails) it at once.
//!
//! The records look as lightningd writes them:
//! - `settled`: created as `offered` when the outgoing HTLC is committed, then updated, so it
//!   has `updated_index`, `out_htlc_id`, `out_msat`, `fee_msat` and `resolved_time`;
//! - `failed` (the downstream failed it): the same, balances unchanged, no `failcode` (the
//!   onion error is not ours to read);
//! - `local_failed` (refused by our node or our channeld): one row, no `updated_index`, no
//!   `out_htlc_id`, no `out_msat`/`fee_msat`, no `resolved_time`; `out_channel` the one asked
//!   for; `failcode` and `failreason`.

use super::params::{self, RpcError, RpcResult};
use super::{Event, Network, wire};
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardStatus {
    Offered,
    Settled,
    Failed,
    LocalFailed,
}

impl ForwardStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardStatus::Offered => "offered",
            ForwardStatus::Settled => "settled",
            ForwardStatus::Failed => "failed",
            ForwardStatus::LocalFailed => "local_failed",
        }
    }

    fn parse(s: &str) -> Option<ForwardStatus> {
        Some(match s {
            "offered" => ForwardStatus::Offered,
            "settled" => ForwardStatus::Settled,
            "failed" => ForwardStatus::Failed,
            "local_failed" => ForwardStatus::LocalFailed,
            _ => return None,
        })
    }
}

/// One row of lightningd's `forwards` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    /// The rowid, from the forwards "created" wait index.
    pub created_index: u64,
    /// 0 until the row is updated (the DB default; listforwards then omits it).
    pub updated_index: u64,
    /// Real scid (lightningd records `channel_scid_or_local_alias`).
    pub in_channel: String,
    pub in_htlc_id: u64,
    pub out_channel: Option<String>,
    pub out_htlc_id: Option<u64>,
    pub in_msat: u64,
    /// `None` when the HTLC never left (local_failed).
    pub out_msat: Option<u64>,
    pub status: ForwardStatus,
    pub failcode: Option<u16>,
    pub received_time: u64,
    pub resolved_time: Option<u64>,
}

/// Our channel's fees and htlc limits before a `setchannel` raised them, honoured until
/// `until` (lightningd's `old_feerate_timeout`, `enforcedelay` seconds, BOLT 7's grace).
#[derive(Debug, Clone, PartialEq)]
pub struct OldFees {
    pub fee_base_msat: u64,
    pub fee_proportional_millionths: u64,
    pub htlc_minimum_msat: u64,
    pub htlc_maximum_msat: u64,
    pub until: u64,
}

/// A channel's HTLC counters (`in_payments_offered` ... in listpeerchannels), our side's view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelStats {
    pub in_payments_offered: u64,
    pub in_offered_msat: u64,
    pub in_payments_fulfilled: u64,
    pub in_fulfilled_msat: u64,
    pub out_payments_offered: u64,
    pub out_offered_msat: u64,
    pub out_payments_fulfilled: u64,
    pub out_fulfilled_msat: u64,
}

/// `json_add_timeabs`: seconds with a fraction (lightningd prints nine digits).
fn timeabs(t: u64) -> Value {
    json!(t as f64)
}

/// `json_add_forwarding_fields`, in its order.
pub fn forward_json(f: &Forward) -> Value {
    let mut o = Map::new();
    o.insert("created_index".into(), json!(f.created_index));
    if f.updated_index != 0 {
        o.insert("updated_index".into(), json!(f.updated_index));
    }
    o.insert("in_channel".into(), json!(f.in_channel));
    o.insert("in_htlc_id".into(), json!(f.in_htlc_id));
    if let Some(c) = &f.out_channel {
        o.insert("out_channel".into(), json!(c));
        if let Some(id) = f.out_htlc_id {
            o.insert("out_htlc_id".into(), json!(id));
        }
    }
    o.insert("in_msat".into(), json!(f.in_msat));
    if let Some(out) = f.out_msat.filter(|&m| m != 0) {
        o.insert("out_msat".into(), json!(out));
        o.insert("fee_msat".into(), json!(f.in_msat.saturating_sub(out)));
    }
    o.insert("status".into(), json!(f.status.as_str()));
    if let Some(code) = f.failcode.filter(|&c| c != 0) {
        o.insert("failcode".into(), json!(code));
        o.insert(
            "failreason".into(),
            json!(
                wire::failcode_name(code)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("UNKNOWN {code}"))
            ),
        );
    }
    o.insert("style".into(), json!("tlv"));
    o.insert("received_time".into(), timeabs(f.received_time));
    if let Some(t) = f.resolved_time {
        o.insert("resolved_time".into(), timeabs(t));
    }
    Value::Object(o)
}

impl Network {
    /// `getinfo`'s `fees_collected_msat` (`wallet_total_forward_fees`): settled forwards only.
    pub fn fees_collected_msat(&self) -> u64 {
        self.forwards
            .iter()
            .filter(|f| f.status == ForwardStatus::Settled)
            .map(|f| f.in_msat.saturating_sub(f.out_msat.unwrap_or(0)))
            .sum()
    }

    pub fn listforwards(&mut self, p: &Value) -> RpcResult {
        let p = params::parse(
            p,
            &[
                ("status", false),
                ("in_channel", false),
                ("out_channel", false),
                ("index", false),
                ("start", false),
                ("limit", false),
            ],
        )?;
        let status = match p.get("status") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .and_then(ForwardStatus::parse)
                    .ok_or_else(|| RpcError::badparam("status", "Unrecognized status", v))?,
            ),
        };
        let chan_in = p.scid("in_channel")?;
        let chan_out = p.scid("out_channel")?;
        let index = match p.get("index") {
            None => None,
            Some(v) => match v.as_str() {
                Some(s @ ("created" | "updated" | "deleted")) => Some(s.to_string()),
                _ => return Err(RpcError::badparam("index", "unknown index", v)),
            },
        };
        let start = p.u64("start")?.unwrap_or(0);
        let limit = p.u32("limit")?;
        if start != 0 && index.is_none() {
            return Err(RpcError::invalid("Can only specify {start} with {index}"));
        }
        if limit.is_some() && index.is_none() {
            return Err(RpcError::invalid("Can only specify {limit} with {index}"));
        }
        if (chan_in.is_some() || chan_out.is_some()) && start != 0 {
            return Err(RpcError::invalid(
                "Cannot use start with in_channel or out_channel",
            ));
        }
        let status_ok = |f: &&Forward| status.is_none_or(|s| f.status == s);
        let list: Vec<&Forward> = if chan_in.is_some() || chan_out.is_some() {
            // The channel query has no index, start or limit (forwarding_first).
            self.forwards
                .iter()
                .filter(status_ok)
                .filter(|f| chan_in.as_ref().is_none_or(|c| f.in_channel == *c))
                .filter(|f| {
                    chan_out
                        .as_ref()
                        .is_none_or(|c| f.out_channel.as_ref() == Some(c))
                })
                .collect()
        } else {
            let limit = limit.map_or(usize::MAX, |l| l as usize);
            let by_updated = index.as_deref() == Some("updated");
            let mut v: Vec<&Forward> = self
                .forwards
                .iter()
                .filter(status_ok)
                .filter(|f| {
                    if by_updated {
                        f.updated_index >= start
                    } else {
                        f.created_index >= start
                    }
                })
                .collect();
            if by_updated {
                v.sort_by_key(|f| f.updated_index);
            }
            v.truncate(limit);
            v
        };
        Ok(json!({"forwards": list.into_iter().map(forward_json).collect::<Vec<_>>()}))
    }

    /// Our node's checks on an HTLC to forward over our channel `c` (side `s`), in
    /// `forward_htlc`'s order and then channeld's; the failcode if it refuses.
    fn our_forward_check(&self, c: usize, s: usize, out: u64, incoming: u64) -> Option<u16> {
        let ch = &self.channels[c];
        if !self.can_add_htlc(c) {
            return Some(wire::UNKNOWN_NEXT_PEER);
        }
        if let Some(code) = ch.forced_failure[s] {
            return Some(code);
        }
        let pol = &ch.policy[s];
        let old = ch.old_fees.as_ref().filter(|o| self.now() < o.until);
        let fee_ok = |base: u64, ppm: u64| {
            incoming as u128 >= out as u128 + self.fee_for(out, base, ppm) as u128
        };
        if !fee_ok(pol.fee_base_msat, pol.fee_proportional_millionths)
            && !old.is_some_and(|o| fee_ok(o.fee_base_msat, o.fee_proportional_millionths))
        {
            return Some(wire::FEE_INSUFFICIENT);
        }
        let in_range = |min: u64, max: u64| out >= min && out <= max;
        if !in_range(pol.htlc_minimum_msat, pol.htlc_maximum_msat)
            && !old.is_some_and(|o| in_range(o.htlc_minimum_msat, o.htlc_maximum_msat))
        {
            return Some(wire::TEMPORARY_CHANNEL_FAILURE);
        }
        let peer = ch.nodes[1 - s];
        if !self.nodes[peer].online {
            return Some(wire::TEMPORARY_CHANNEL_FAILURE);
        }
        // channeld's offer checks.
        if out < ch.policy[1 - s].htlc_minimum_msat {
            return Some(wire::AMOUNT_BELOW_MINIMUM);
        }
        if self.spendable(c, s) < out || ch.htlcs.len() >= self.config.max_accepted_htlcs {
            return Some(wire::TEMPORARY_CHANNEL_FAILURE);
        }
        None
    }

    /// `dev-forward in_channel out_channel amount_msat [fee_msat] [outcome]`.
    pub(crate) fn dev_forward(&mut self, p: &Value) -> Result<(Value, Vec<Event>), RpcError> {
        let p = params::parse(
            p,
            &[
                ("in_channel", true),
                ("out_channel", true),
                ("amount_msat", true),
                ("fee_msat", false),
                ("outcome", false),
            ],
        )?;
        let us = self.us;
        let ours = |net: &Network, name: &str| -> Result<(String, Option<usize>), RpcError> {
            let scid = p.scid(name)?.expect("required");
            let c = net
                .channel_by_scid(&scid)
                .or_else(|| {
                    (0..net.channels.len()).find(|&c| {
                        net.side_of(c, us)
                            .is_some_and(|s| net.channels[c].alias[s] == scid)
                    })
                })
                .filter(|&c| net.channels[c].nodes.contains(&us));
            Ok((scid, c))
        };
        let (in_scid, cin) = ours(self, "in_channel")?;
        let Some(cin) = cin else {
            return Err(RpcError::invalid(format!(
                "in_channel: {in_scid} is not one of our channels"
            )));
        };
        let (out_scid, cout) = ours(self, "out_channel")?;
        let amount = p.msat("amount_msat")?.expect("required");
        if amount == 0 {
            return Err(RpcError::invalid("amount_msat: must be positive"));
        }
        let fee = match p.msat("fee_msat")? {
            Some(f) => f,
            None => match cout {
                Some(c) => {
                    let s = self.side_of(c, us).expect("ours");
                    let pol = &self.channels[c].policy[s];
                    self.fee_for(amount, pol.fee_base_msat, pol.fee_proportional_millionths)
                }
                None => 0,
            },
        };
        let settle = match p.string("outcome")?.as_deref() {
            None | Some("settled") => true,
            Some("failed") => false,
            Some(_) => {
                return Err(RpcError::badparam(
                    "outcome",
                    "should be 'settled' or 'failed'",
                    p.get("outcome").expect("given"),
                ));
            }
        };
        let incoming = amount
            .checked_add(fee)
            .ok_or_else(|| RpcError::invalid("fee_msat: too large"))?;

        // The HTLC must be able to reach us at all: that is the peer's channeld's business,
        // and no forward is recorded if it cannot.
        let s_in = self.side_of(cin, us).expect("ours");
        let peer_in = self.channels[cin].nodes[1 - s_in];
        if !self.can_add_htlc(cin) || !self.nodes[peer_in].online {
            return Err(RpcError::invalid(format!(
                "in_channel: {} cannot carry an HTLC (state {}, peer {})",
                self.channels[cin].scid,
                self.channels[cin].state,
                if self.nodes[peer_in].online {
                    "online"
                } else {
                    "offline"
                }
            )));
        }
        let can_send = self.spendable(cin, 1 - s_in);
        if can_send < incoming || self.channels[cin].htlcs.len() >= self.config.max_accepted_htlcs {
            return Err(RpcError::invalid(format!(
                "in_channel: the peer can send only {can_send}msat on {}, not {incoming}msat",
                self.channels[cin].scid
            )));
        }

        let now = self.now();
        let in_htlc_id = {
            let ch = &mut self.channels[cin];
            let id = ch.next_htlc_id[1 - s_in];
            ch.next_htlc_id[1 - s_in] += 1;
            ch.stats.in_payments_offered += 1;
            ch.stats.in_offered_msat += incoming;
            id
        };
        self.forward_index.created += 1;
        let mut fwd = Forward {
            created_index: self.forward_index.created,
            updated_index: 0,
            in_channel: self.channels[cin].scid.clone(),
            in_htlc_id,
            out_channel: None,
            out_htlc_id: None,
            in_msat: incoming,
            out_msat: None,
            status: ForwardStatus::LocalFailed,
            failcode: None,
            received_time: now,
            resolved_time: None,
        };
        let refusal = match cout {
            None => {
                // An scid we have no channel for: the onion's scid is what gets recorded.
                fwd.out_channel = Some(out_scid);
                Some(wire::UNKNOWN_NEXT_PEER)
            }
            Some(c) => {
                fwd.out_channel = Some(self.channels[c].scid.clone());
                let s = self.side_of(c, us).expect("ours");
                self.our_forward_check(c, s, amount, incoming)
            }
        };
        if let Some(code) = refusal {
            fwd.failcode = Some(code);
        } else {
            let c = cout.expect("checked");
            let s_out = self.side_of(c, us).expect("ours");
            {
                let ch = &mut self.channels[c];
                fwd.out_htlc_id = Some(ch.next_htlc_id[s_out]);
                ch.next_htlc_id[s_out] += 1;
                ch.stats.out_payments_offered += 1;
                ch.stats.out_offered_msat += amount;
            }
            fwd.out_msat = Some(amount);
            fwd.resolved_time = Some(now);
            self.forward_index.updated += 1;
            fwd.updated_index = self.forward_index.updated;
            if settle {
                fwd.status = ForwardStatus::Settled;
                let ch = &mut self.channels[c];
                ch.balance_msat[s_out] -= amount;
                ch.balance_msat[1 - s_out] += amount;
                ch.stats.out_payments_fulfilled += 1;
                ch.stats.out_fulfilled_msat += amount;
                let ch = &mut self.channels[cin];
                ch.balance_msat[1 - s_in] -= incoming;
                ch.balance_msat[s_in] += incoming;
                ch.stats.in_payments_fulfilled += 1;
                ch.stats.in_fulfilled_msat += incoming;
            } else {
                fwd.status = ForwardStatus::Failed;
            }
        }
        let out = forward_json(&fwd);
        self.forwards.push(fwd);
        Ok((out, vec![Event::Changed]))
    }
}

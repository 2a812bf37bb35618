//! The rows of `balances`: one per channel with what an operator decides with, per-peer
//! totals, the planner's moves as suggestions, and the whole JSON answer.

use crate::channels::{bar, our_percent};
use crate::core::history::{Entry, Outcome};
use crate::core::plan::Plan;
use crate::lightningd::PeerChannel;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One channel as `balances` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub peer_id: String,
    pub alias: String,
    pub short_channel_id: String,
    pub state: String,
    pub peer_connected: bool,
    pub private: bool,
    pub to_us_msat: u64,
    pub total_msat: u64,
    pub spendable_msat: u64,
    pub receivable_msat: u64,
    pub our_reserve_msat: u64,
    pub their_reserve_msat: u64,
    /// What we charge to forward out through it (`updates.local`).
    pub fee_base_msat: u64,
    pub fee_proportional_millionths: u32,
    /// What the peer charges to forward to us through it (`updates.remote`).
    pub peer_fee_base_msat: u64,
    pub peer_fee_proportional_millionths: u32,
    pub htlcs_in: usize,
    pub htlcs_in_msat: u64,
    pub htlcs_out: usize,
    pub htlcs_out_msat: u64,
    pub target_percent: u8,
    /// `to_us - target share`: positive holds too much of ours (a source), negative too little.
    pub distance_msat: i64,
    /// source, sink, balanced, excluded or unusable.
    pub role: String,
    pub role_reason: Option<String>,
    pub last_rebalance: Option<Value>,
}

impl Row {
    fn to_json(&self) -> Value {
        json!({
            "peer_id": self.peer_id,
            "alias": self.alias,
            "short_channel_id": self.short_channel_id,
            "state": self.state,
            "peer_connected": self.peer_connected,
            "private": self.private,
            "to_us_msat": self.to_us_msat,
            "total_msat": self.total_msat,
            "spendable_msat": self.spendable_msat,
            "receivable_msat": self.receivable_msat,
            "our_reserve_msat": self.our_reserve_msat,
            "their_reserve_msat": self.their_reserve_msat,
            "our_percent": our_percent(self.to_us_msat, self.total_msat),
            "bar": bar(self.to_us_msat, self.total_msat),
            "fee_base_msat": self.fee_base_msat,
            "fee_proportional_millionths": self.fee_proportional_millionths,
            "peer_fee_base_msat": self.peer_fee_base_msat,
            "peer_fee_proportional_millionths": self.peer_fee_proportional_millionths,
            "htlcs_in": self.htlcs_in,
            "htlcs_in_msat": self.htlcs_in_msat,
            "htlcs_out": self.htlcs_out,
            "htlcs_out_msat": self.htlcs_out_msat,
            "target_percent": self.target_percent,
            "distance_msat": self.distance_msat,
            "role": self.role,
            "role_reason": self.role_reason,
            "last_rebalance": self.last_rebalance,
        })
    }
}

/// The rows for `channels` (sorted least-ours first), with the plan's view of each.
pub fn rows(
    channels: &[PeerChannel],
    aliases: &HashMap<String, String>,
    plan: &Plan,
    targets: &HashMap<String, (u8, bool)>,
    history: &[Entry],
) -> Vec<Row> {
    let mut last: HashMap<String, &Entry> = HashMap::new();
    for e in history {
        for scid in [e.outgoing.to_string(), e.incoming.to_string()] {
            last.insert(scid, e); // history is oldest first: the last one wins
        }
    }
    let sources: HashSet<String> = plan
        .sources
        .iter()
        .map(|i| i.short_channel_id.to_string())
        .collect();
    let sinks: HashSet<String> = plan
        .sinks
        .iter()
        .map(|i| i.short_channel_id.to_string())
        .collect();
    let skipped: HashMap<String, &String> = plan
        .skipped
        .iter()
        .map(|(s, why)| (s.to_string(), why))
        .collect();
    let mut out: Vec<Row> = channels
        .iter()
        .map(|c| {
            let scid = c.short_channel_id.clone().unwrap_or_default();
            let (target, excluded) = targets.get(&scid).copied().unwrap_or((50, false));
            let target_msat = (c.total_msat as u128 * target as u128 / 100) as i128;
            let distance = (c.to_us_msat as i128 - target_msat)
                .clamp(i64::MIN as i128, i64::MAX as i128) as i64;
            let (role, reason) = if excluded {
                ("excluded", None)
            } else if sources.contains(&scid) {
                ("source", None)
            } else if sinks.contains(&scid) {
                ("sink", None)
            } else if let Some(why) = skipped.get(&scid) {
                let usable = c.state == "CHANNELD_NORMAL" && c.peer_connected;
                (
                    if usable { "balanced" } else { "unusable" },
                    Some(why.to_string()),
                )
            } else if c.state != "CHANNELD_NORMAL" || !c.peer_connected {
                ("unusable", None)
            } else {
                ("balanced", None)
            };
            let sum = |dir: &str| {
                c.htlcs.iter().filter(|h| h.direction == dir).fold(
                    (0usize, 0u64),
                    |(n, m), h| (n + 1, m.saturating_add(h.amount_msat)),
                )
            };
            let (htlcs_in, htlcs_in_msat) = sum("in");
            let (htlcs_out, htlcs_out_msat) = sum("out");
            let local = c.updates.local.unwrap_or_default();
            let remote = c.updates.remote.unwrap_or_default();
            let last_rebalance = last.get(&scid).map(|e| {
                let into = e.incoming.to_string() == scid;
                json!({
                    "started_at": e.started_at,
                    "direction": if into { "in" } else { "out" },
                    "other_channel": if into { e.outgoing.to_string() } else { e.incoming.to_string() },
                    "amount_msat": e.amount_msat,
                    "fee_msat": e.fee_msat,
                    "outcome": match e.outcome {
                        Outcome::Complete => "complete".to_string(),
                        Outcome::Failed { code } => format!("failed ({code})"),
                    },
                })
            });
            Row {
                peer_id: c.peer_id.clone(),
                alias: aliases.get(&c.peer_id).cloned().unwrap_or_default(),
                short_channel_id: scid,
                state: c.state.clone(),
                peer_connected: c.peer_connected,
                private: c.private,
                to_us_msat: c.to_us_msat,
                total_msat: c.total_msat,
                spendable_msat: c.spendable_msat,
                receivable_msat: c.receivable_msat,
                our_reserve_msat: c.our_reserve_msat,
                their_reserve_msat: c.their_reserve_msat,
                fee_base_msat: local.fee_base_msat,
                fee_proportional_millionths: local.fee_proportional_millionths,
                peer_fee_base_msat: remote.fee_base_msat,
                peer_fee_proportional_millionths: remote.fee_proportional_millionths,
                htlcs_in,
                htlcs_in_msat,
                htlcs_out,
                htlcs_out_msat,
                target_percent: target,
                distance_msat: distance,
                role: role.to_string(),
                role_reason: reason,
                last_rebalance,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        our_percent(a.to_us_msat, a.total_msat)
            .total_cmp(&our_percent(b.to_us_msat, b.total_msat))
            .then_with(|| a.short_channel_id.cmp(&b.short_channel_id))
    });
    out
}

/// Totals per peer, for peers with more than one channel.
fn peer_totals(rows: &[Row]) -> Vec<Value> {
    let mut by_peer: BTreeMap<&str, (usize, u64, u64, &str)> = BTreeMap::new();
    for r in rows {
        let e = by_peer.entry(&r.peer_id).or_insert((0, 0, 0, &r.alias));
        e.0 += 1;
        e.1 = e.1.saturating_add(r.to_us_msat);
        e.2 = e.2.saturating_add(r.total_msat);
    }
    by_peer
        .into_iter()
        .filter(|(_, v)| v.0 > 1)
        .map(|(id, (n, us, total, alias))| {
            json!({"peer_id": id, "alias": alias, "channels": n, "to_us_msat": us,
                   "total_msat": total, "our_percent": our_percent(us, total),
                   "bar": bar(us, total)})
        })
        .collect()
}

/// The planner's moves as ready-to-run suggestions.
fn suggestions(plan: &Plan) -> Vec<Value> {
    plan.moves
        .iter()
        .map(|m| {
            let mut v = m.to_json();
            v["command"] = json!(format!(
                "lightning-cli rebalance {} {} {}",
                m.outgoing,
                m.incoming,
                crate::core::amount::display_sat(m.amount_msat)
            ));
            v
        })
        .collect()
}

/// The whole `balances` answer.
pub fn view(rows: &[Row], plan: &Plan) -> Value {
    let sum = |f: fn(&Row) -> u64| rows.iter().map(f).fold(0u64, u64::saturating_add);
    let (to_us, total) = (sum(|r| r.to_us_msat), sum(|r| r.total_msat));
    json!({
        "channels": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        "peers": peer_totals(rows),
        "totals": {
            "channels": rows.len(),
            "to_us_msat": to_us,
            "total_msat": total,
            "spendable_msat": sum(|r| r.spendable_msat),
            "receivable_msat": sum(|r| r.receivable_msat),
            "our_percent": our_percent(to_us, total),
        },
        "suggestions": suggestions(plan),
    })
}

//! `balances [id] [quote]`: how each channel's funds are split and what an operator decides
//! with (fees both ways, HTLCs in flight, reserves, distance from target, source or sink, the
//! last rebalance that touched it), per-peer totals, and the moves the planner would make,
//! each ready to run (and with `quote`, priced by a dry run through the liquidity model).
//! `balances-table [id]` is the same as a table to scan.
//!
//! Why two commands: lightning-cli prints a result with several members field by field even
//! under `-H`, and only a result with one member as that member alone. So scripts get the JSON
//! from `balances`, and a person gets `balances-table`, whose only member is the table (with
//! `format-hint: simple`, lightning-cli prints it as is, as it does `help`).

use crate::channels::our_channel;
use crate::channels::{bar, our_percent};
use crate::core::history::{Entry, Outcome};
use crate::core::plan::Plan;
use crate::error::{self, RpcFailure};
use crate::lightningd::{Lightningd, PeerChannel};
use crate::params::BalancesParams;
use crate::state::State;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;

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

/// Whole sats with thousands separators, for columns a person scans.
fn sats(msat: u64) -> String {
    group(&(msat / 1000).to_string())
}

fn signed_sats(msat: i64) -> String {
    let s = group(&(msat.unsigned_abs() / 1000).to_string());
    match msat.signum() {
        -1 => format!("-{s}"),
        1 => format!("+{s}"),
        _ => s,
    }
}

fn group(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `s` cut or padded to `width` characters (counted as chars: a wide CJK glyph counts one).
fn fit(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n > width {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    } else {
        format!("{s}{}", " ".repeat(width - n))
    }
}

/// The table `balances-table` prints: one line per channel, peer totals, the total, and the
/// suggested moves as commands to run.
pub fn table(rows: &[Row], view: &Value, now: u64) -> String {
    const ALIAS: usize = 20;
    let mut lines: Vec<[String; 12]> = vec![[
        "alias".into(),
        "short_channel_id".into(),
        "ours(sat)".into(),
        "theirs(sat)".into(),
        "ours%".into(),
        "bar".into(),
        "to target".into(),
        "role".into(),
        "fee out".into(),
        "fee in".into(),
        "htlcs".into(),
        "last rebalance".into(),
    ]];
    for r in rows {
        let name = if r.alias.is_empty() {
            r.peer_id.chars().take(16).collect()
        } else {
            r.alias.clone()
        };
        let mut role = r.role.clone();
        if r.state != "CHANNELD_NORMAL" {
            role = r.state.clone();
        } else if !r.peer_connected {
            role = "offline".into();
        }
        let last = match &r.last_rebalance {
            None => String::new(),
            Some(l) => format!(
                "{} {} {}",
                l["direction"].as_str().unwrap_or(""),
                sats(l["amount_msat"].as_u64().unwrap_or(0)),
                ago(now.saturating_sub(l["started_at"].as_u64().unwrap_or(now)))
            ),
        };
        lines.push([
            fit(&name, ALIAS).trim_end().to_string(),
            r.short_channel_id.clone(),
            sats(r.to_us_msat),
            sats(r.total_msat.saturating_sub(r.to_us_msat)),
            format!("{:.1}", our_percent(r.to_us_msat, r.total_msat)),
            bar(r.to_us_msat, r.total_msat),
            if r.role == "balanced" || r.role == "source" || r.role == "sink" {
                signed_sats(-r.distance_msat)
            } else {
                String::new()
            },
            role,
            format!("{}/{}", r.fee_base_msat, r.fee_proportional_millionths),
            format!(
                "{}/{}",
                r.peer_fee_base_msat, r.peer_fee_proportional_millionths
            ),
            if r.htlcs_in + r.htlcs_out == 0 {
                String::new()
            } else {
                format!("{}in {}out", r.htlcs_in, r.htlcs_out)
            },
            last,
        ]);
    }
    let t = &view["totals"];
    let total_us = t["to_us_msat"].as_u64().unwrap_or(0);
    let total = t["total_msat"].as_u64().unwrap_or(0);
    let mut footer: Vec<[String; 12]> = Vec::new();
    for p in view["peers"].as_array().into_iter().flatten() {
        let us = p["to_us_msat"].as_u64().unwrap_or(0);
        let all = p["total_msat"].as_u64().unwrap_or(0);
        let name = p["alias"]
            .as_str()
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| {
                p["peer_id"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(16)
                    .collect()
            });
        footer.push(row_of(
            format!("{} ({} ch)", fit(&name, 14).trim_end(), p["channels"]),
            us,
            all,
        ));
    }
    footer.push(row_of(
        format!("total ({} channels)", rows.len()),
        total_us,
        total,
    ));
    let all: Vec<&[String; 12]> = lines.iter().chain(footer.iter()).collect();
    let mut widths = [0usize; 12];
    for l in &all {
        for (w, c) in widths.iter_mut().zip(l.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    // Numbers are right-aligned, text left.
    let right = [
        false, false, true, true, true, false, true, false, true, true, false, false,
    ];
    let mut out = String::new();
    for (i, l) in all.iter().enumerate() {
        if i == lines.len() {
            let width: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            let _ = writeln!(out, "{}", "-".repeat(width.min(160)));
        }
        let mut cells = Vec::with_capacity(12);
        for (k, c) in l.iter().enumerate() {
            let pad = widths[k].saturating_sub(c.chars().count());
            cells.push(if right[k] {
                format!("{}{c}", " ".repeat(pad))
            } else {
                format!("{c}{}", " ".repeat(pad))
            });
        }
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    let moves = view["suggestions"].as_array().cloned().unwrap_or_default();
    if moves.is_empty() {
        let _ = writeln!(
            out,
            "\nno moves suggested: every usable channel is within target"
        );
    } else {
        let _ = writeln!(out, "\nsuggested moves (what rebalanceall would do):");
        for m in moves {
            let quote = match m.get("quote") {
                Some(q) if q["status"] == "dryrun" => format!(
                    "; quote {}msat, success {:.0}%",
                    q["fee_msat"],
                    q["probability"].as_f64().unwrap_or(0.0) * 100.0
                ),
                Some(q) => format!("; no quote: {}", q["message"].as_str().unwrap_or("")),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "  {}   # fee at most {}msat{quote}",
                m["command"].as_str().unwrap_or(""),
                m["fee_cap_msat"]
            );
        }
    }
    out
}

fn row_of(label: String, us: u64, total: u64) -> [String; 12] {
    [
        label,
        String::new(),
        sats(us),
        sats(total.saturating_sub(us)),
        format!("{:.1}", our_percent(us, total)),
        bar(us, total),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    ]
}

fn ago(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s if s < 172_800 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

impl<N: Lightningd> State<N> {
    /// `balances`: every channel listpeerchannels knows, with what an operator decides with.
    pub async fn balances(&self, p: BalancesParams) -> Result<Value, RpcFailure> {
        Ok(self.balances_rows(&p).await?.1)
    }

    /// `balances-table`: the same, as one table (a single-member result lightning-cli prints
    /// as it is).
    pub async fn balances_table(&self, p: BalancesParams) -> Result<Value, RpcFailure> {
        let (rows, view) = self.balances_rows(&p).await?;
        // lightning-cli ends what it prints with a newline of its own.
        let text = table(&rows, &view, self.now_secs());
        Ok(json!({"format-hint": "simple", "table": text.trim_end_matches('\n')}))
    }

    async fn balances_rows(&self, p: &BalancesParams) -> Result<(Vec<Row>, Value), RpcFailure> {
        let chans = self
            .node
            .listpeerchannels()
            .await
            .map_err(|e| error::from_lightningd("listpeerchannels", &e))?;
        if let Some(id) = &p.id
            && !chans
                .iter()
                .any(|c| &c.peer_id == id || c.short_channel_id.as_deref() == Some(id.as_str()))
        {
            return Err(RpcFailure::param(
                "id",
                format!("no channel with peer or short_channel_id {id}"),
            ));
        }
        // One small listnodes per peer, not the whole network's. Aliases are a nicety: a
        // failing listnodes must not fail balances.
        let mut aliases: HashMap<String, String> = HashMap::new();
        for c in &chans {
            if aliases.contains_key(&c.peer_id) {
                continue;
            }
            let alias = match self.node.listnodes(&c.peer_id).await {
                Ok(nodes) => nodes.into_iter().find_map(|n| n.alias).unwrap_or_default(),
                Err(_) => String::new(),
            };
            aliases.insert(c.peer_id.clone(), alias);
        }
        let config = self.config.auto.plan;
        let settings = self.settings().await;
        let mut targets = HashMap::new();
        for oc in chans.iter().filter_map(our_channel) {
            let e = settings.effective(oc.short_channel_id, &oc.peer_id, &config);
            targets.insert(
                oc.short_channel_id.to_string(),
                (e.target_percent, e.exclude),
            );
        }
        let ours: Vec<_> = chans.iter().filter_map(our_channel).collect();
        let mut plan = crate::core::plan::plan(&ours, &settings, &config);
        let spent = crate::core::budget::Spent {
            run_msat: 0,
            last_24h_msat: self.fees_last_24h().await,
            reserved_msat: 0,
        };
        plan.apply_budget(&self.config.auto.budget, spent);
        let history = self.history_entries().await;
        let shown: Vec<PeerChannel> = chans
            .into_iter()
            .filter(|c| match &p.id {
                None => true,
                Some(f) => &c.peer_id == f || c.short_channel_id.as_deref() == Some(f.as_str()),
            })
            .collect();
        let rows = rows(&shown, &aliases, &plan, &targets, &history);
        let mut view = view(&rows, &plan);
        if p.quote {
            let mut quoted = Vec::new();
            for (m, mut v) in plan
                .moves
                .iter()
                .zip(view["suggestions"].as_array().cloned().unwrap_or_default())
            {
                let q = self
                    .rebalance_with(
                        super::auto::plan::move_params(m, true),
                        crate::rebalance::session::Extra {
                            fee_cap_msat: Some(m.fee_cap_msat),
                            ..Default::default()
                        },
                    )
                    .await;
                v["quote"] = match q {
                    Ok(q) => json!({"status": "dryrun", "fee_msat": q["fee_msat"],
                                    "fee_ppm": q["fee_ppm"], "probability": q["probability"],
                                    "hops": q["hops"], "route": q["route"]}),
                    Err(e) => json!({"status": "no route", "code": e.code, "message": e.message}),
                };
                quoted.push(v);
            }
            view["suggestions"] = json!(quoted);
        }
        Ok((rows, view))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::{OurChannel, PlanConfig, Settings, plan};
    use crate::lightningd::{ChannelUpdate, ChannelUpdates, Htlc};

    fn chan(scid: &str, peer: u8, ours_sat: u64, total_sat: u64, state: &str) -> PeerChannel {
        PeerChannel {
            peer_id: format!("02{}", format!("{peer:02x}").repeat(32)),
            peer_connected: true,
            state: state.into(),
            short_channel_id: Some(scid.into()),
            private: false,
            to_us_msat: ours_sat * 1000,
            total_msat: total_sat * 1000,
            spendable_msat: (ours_sat * 1000).saturating_sub(total_sat * 10),
            receivable_msat: ((total_sat - ours_sat) * 1000).saturating_sub(total_sat * 10),
            our_reserve_msat: total_sat * 10,
            their_reserve_msat: total_sat * 10,
            direction: Some(0),
            htlcs: vec![],
            updates: ChannelUpdates {
                local: Some(ChannelUpdate {
                    fee_base_msat: 1000,
                    fee_proportional_millionths: 200,
                    ..Default::default()
                }),
                remote: Some(ChannelUpdate {
                    fee_base_msat: 0,
                    fee_proportional_millionths: 10,
                    ..Default::default()
                }),
            },
            alias: None,
        }
    }

    fn render(
        chans: &[PeerChannel],
        aliases: &HashMap<String, String>,
    ) -> (Vec<Row>, Value, String) {
        let ours: Vec<OurChannel> = chans.iter().filter_map(our_channel).collect();
        let p = plan(&ours, &Settings::default(), &PlanConfig::default());
        let targets = HashMap::new();
        let rows = rows(chans, aliases, &p, &targets, &[]);
        let v = view(&rows, &p);
        let t = table(&rows, &v, 0);
        (rows, v, t)
    }

    #[test]
    fn golden_table() {
        let chans = vec![
            chan("100x1x0", 1, 900_000, 1_000_000, "CHANNELD_NORMAL"),
            chan("100x2x0", 2, 100_000, 1_000_000, "CHANNELD_NORMAL"),
            chan("100x3x0", 2, 500_000, 1_000_000, "CHANNELD_NORMAL"),
        ];
        let aliases: HashMap<String, String> = [
            (chans[0].peer_id.clone(), "alice".to_string()),
            (chans[1].peer_id.clone(), "bob".to_string()),
        ]
        .into();
        let (rows, v, t) = render(&chans, &aliases);
        assert_eq!(rows[0].role, "sink");
        assert_eq!(rows[2].role, "source");
        assert_eq!(rows[0].distance_msat, -400_000_000);
        let expected = "\
alias               short_channel_id  ours(sat)  theirs(sat)  ours%  bar                     to target  role       fee out  fee in  htlcs  last rebalance
bob                 100x2x0             100,000      900,000   10.0  [##------------------]   +400,000  sink      1000/200    0/10
bob                 100x3x0             500,000      500,000   50.0  [##########----------]          0  balanced  1000/200    0/10
alice               100x1x0             900,000      100,000   90.0  [##################--]   -400,000  source    1000/200    0/10
---------------------------------------------------------------------------------------------------------------------------------------------------------
bob (2 ch)                              600,000    1,400,000   30.0  [######--------------]
total (3 channels)                    1,500,000    1,500,000   50.0  [##########----------]

suggested moves (what rebalanceall would do):
  lightning-cli rebalance 100x1x0 100x2x0 400000sat   # fee at most 40500msat
";
        assert_eq!(t, expected, "\n{t}");
        assert_eq!(v["peers"].as_array().unwrap().len(), 1);
        assert_eq!(
            v["suggestions"][0]["command"],
            "lightning-cli rebalance 100x1x0 100x2x0 400000sat"
        );
    }

    #[test]
    fn long_and_unicode_aliases_zero_capacity_and_closing_channels() {
        let mut chans = vec![
            chan("1x1x0", 1, 0, 0, "CHANNELD_NORMAL"),
            chan("1x2x0", 2, 300_000, 1_000_000, "ONCHAIN"),
            chan("1x3x0", 3, 300_000, 1_000_000, "CHANNELD_NORMAL"),
        ];
        chans[2].peer_connected = false;
        chans[2].htlcs = vec![Htlc {
            direction: "out".into(),
            payment_hash: "00".repeat(32),
            amount_msat: 5000,
        }];
        let aliases: HashMap<String, String> = [
            (
                chans[0].peer_id.clone(),
                "a-very-long-alias-that-goes-on-and-on".to_string(),
            ),
            (chans[1].peer_id.clone(), "⚡闪电节点🌩️".to_string()),
        ]
        .into();
        let (rows, _, t) = render(&chans, &aliases);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].starts_with("a-very-long-alias-t… "), "{t}");
        assert!(t.contains("⚡闪电节点🌩️"), "{t}");
        assert!(t.contains("ONCHAIN"), "{t}");
        assert!(t.contains("offline"), "{t}");
        assert!(t.contains("0in 1out"), "{t}");
        assert_eq!(
            rows.iter().find(|r| r.total_msat == 0).unwrap().role,
            "balanced"
        );
        assert_eq!(
            rows.iter().find(|r| r.state == "ONCHAIN").unwrap().role,
            "unusable"
        );
        // Every line of the channel part has its columns at the same character offsets.
        let col = |l: &str| l.chars().position(|c| c == '[');
        let first = col(lines[1]);
        assert!(lines[1..4].iter().all(|l| col(l) == first), "{t}");
    }

    #[test]
    fn five_hundred_channels() {
        let chans: Vec<PeerChannel> = (0..500)
            .map(|i| {
                let scid = format!("{}x1x0", 1000 + i);
                chan(
                    &scid,
                    (i % 250) as u8,
                    (i as u64 * 1999) % 1_000_000,
                    1_000_000,
                    "CHANNELD_NORMAL",
                )
            })
            .collect();
        let (rows, v, t) = render(&chans, &HashMap::new());
        assert_eq!(rows.len(), 500);
        assert_eq!(v["totals"]["channels"], 500);
        assert_eq!(v["peers"].as_array().unwrap().len(), 250);
        // 500 channels, the rule, 250 peers and the total, and the suggestions.
        assert!(
            t.lines().count() > 500 + 1 + 250 + 1,
            "{}",
            t.lines().count()
        );
        assert!(!v["suggestions"].as_array().unwrap().is_empty());
    }
}

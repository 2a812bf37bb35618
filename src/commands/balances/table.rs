//! `balances-table`'s text: the rows as a table to scan, peer totals, the suggested moves.

use super::rows::Row;
use crate::channels::{bar_of, our_percent};
use serde_json::Value;
use std::fmt::Write;

/// Whole sats with thousands separators, for columns a person scans.
fn sats(msat: u64) -> String {
    group(&(msat / 1000).to_string())
}

/// An amount in sat, short: `400k`, `1.5M`, `250` (the table's last-rebalance column).
pub(super) fn short_sats(msat: u64) -> String {
    let sat = msat / 1000;
    let (unit, div) = match sat {
        s if s >= 1_000_000 => ("M", 1_000_000),
        s if s >= 1_000 => ("k", 1_000),
        _ => return sat.to_string(),
    };
    let tenths = sat * 10 / div;
    if tenths.is_multiple_of(10) || tenths >= 1000 {
        format!("{}{unit}", tenths / 10)
    } else {
        format!("{}.{}{unit}", tenths / 10, tenths % 10)
    }
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

/// Columns of `balances-table`: what each holds, and whether it is right-aligned (numbers).
const COLUMNS: [(&str, bool); 10] = [
    ("alias", false),
    ("channel", false),
    ("ours(sat)", true),
    ("ours%", true),
    ("bar", false),
    ("to target", true),
    ("role", false),
    ("fees out|in", false),
    ("htlcs", false),
    ("last rebalance", false),
];
/// Columns left out when no row has anything in them.
const OPTIONAL: [usize; 2] = [8, 9];
/// The table's bar is half the JSON's: the table stays within ~110 columns.
const TABLE_BAR: usize = 10;

/// The table `balances-table` prints: one line per channel, peer totals, the total, and the
/// suggested moves as commands to run. The JSON (`balances`) has every figure in msat; this is
/// for scanning.
pub fn table(rows: &[Row], view: &Value, now: u64) -> String {
    const ALIAS: usize = 16;
    type Line = [String; COLUMNS.len()];
    let mut lines: Vec<Line> = vec![COLUMNS.map(|(h, _)| h.to_string())];
    for r in rows {
        let name = if r.alias.is_empty() {
            r.peer_id.chars().take(ALIAS).collect()
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
            Some(l) => {
                let outcome = l["outcome"].as_str().unwrap_or("");
                format!(
                    "{} {}{} {}",
                    l["direction"].as_str().unwrap_or(""),
                    short_sats(l["amount_msat"].as_u64().unwrap_or(0)),
                    // A failed rebalance moved nothing: say so, not just that one was tried.
                    if outcome == "complete" {
                        String::new()
                    } else {
                        format!(" {}", outcome.replace(['(', ')'], ""))
                    },
                    ago(now.saturating_sub(l["started_at"].as_u64().unwrap_or(now)))
                )
            }
        };
        lines.push([
            fit(&name, ALIAS).trim_end().to_string(),
            r.short_channel_id.clone(),
            sats(r.to_us_msat),
            format!("{:.1}", our_percent(r.to_us_msat, r.total_msat)),
            bar_of(r.to_us_msat, r.total_msat, TABLE_BAR),
            if r.role == "balanced" || r.role == "source" || r.role == "sink" {
                signed_sats(-r.distance_msat)
            } else {
                String::new()
            },
            role,
            format!(
                "{}/{}|{}/{}",
                r.fee_base_msat,
                r.fee_proportional_millionths,
                r.peer_fee_base_msat,
                r.peer_fee_proportional_millionths
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
    let mut footer: Vec<Line> = Vec::new();
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
                    .take(ALIAS)
                    .collect()
            });
        footer.push(row_of(
            format!("{} ({} ch)", fit(&name, 12).trim_end(), p["channels"]),
            us,
            all,
        ));
    }
    footer.push(row_of(
        format!("total ({} ch)", rows.len()),
        total_us,
        total,
    ));
    let all: Vec<&Line> = lines.iter().chain(footer.iter()).collect();
    let shown: Vec<usize> = (0..COLUMNS.len())
        .filter(|k| !OPTIONAL.contains(k) || all[1..].iter().any(|l| !l[*k].is_empty()))
        .collect();
    let mut widths = [0usize; COLUMNS.len()];
    for l in &all {
        for (w, c) in widths.iter_mut().zip(l.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (i, l) in all.iter().enumerate() {
        if i == lines.len() {
            let width: usize =
                shown.iter().map(|&k| widths[k]).sum::<usize>() + 2 * (shown.len() - 1);
            let _ = writeln!(out, "{}", "-".repeat(width.min(120)));
        }
        let cells: Vec<String> = shown
            .iter()
            .map(|&k| {
                let c = &l[k];
                let pad = widths[k].saturating_sub(c.chars().count());
                if COLUMNS[k].1 {
                    format!("{}{c}", " ".repeat(pad))
                } else {
                    format!("{c}{}", " ".repeat(pad))
                }
            })
            .collect();
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

fn row_of(label: String, us: u64, total: u64) -> [String; COLUMNS.len()] {
    let mut row: [String; COLUMNS.len()] = Default::default();
    row[0] = label;
    row[2] = sats(us);
    row[3] = format!("{:.1}", our_percent(us, total));
    row[4] = bar_of(us, total, TABLE_BAR);
    row
}

fn ago(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s if s < 172_800 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

//! `rebalancereport [days]`: what rebalancing did over the last `days`, what it cost, and
//! whether it paid back in forwarding fees.
//!
//! Pure: computed from history entries, forwards (a plain mirror of `listforwards`) and the
//! running job's progress, all passed in, at a `now` passed in. Linear in the number of entries
//! and forwards (plus sorting the channels touched).
//!
//! "Paid back" compares what rebalancing cost with what forwarding earned out through the
//! channels we moved liquidity into, over the same period. That is an upper bound on what the
//! rebalances earned: some of those forwards would have happened anyway.

use crate::core::amount::{display_sat, msat_string, ppm};
use crate::core::budget::Budget;
use crate::core::economics::OurFee;
use crate::core::graph::Scid;
use crate::core::history::{DAY_SECS, Entry, day_name};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};

/// `listforwards` `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardStatus {
    Offered,
    Settled,
    LocalFailed,
    Failed,
}

impl std::str::FromStr for ForwardStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "offered" => Ok(ForwardStatus::Offered),
            "settled" => Ok(ForwardStatus::Settled),
            "local_failed" => Ok(ForwardStatus::LocalFailed),
            "failed" => Ok(ForwardStatus::Failed),
            _ => Err(format!("unknown forward status '{s}'")),
        }
    }
}

/// One `listforwards` entry, the parts the report reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub in_channel: Scid,
    /// Absent when the forward failed before an outgoing channel was chosen.
    pub out_channel: Option<Scid>,
    pub status: ForwardStatus,
    pub in_msat: u64,
    pub out_msat: Option<u64>,
    pub fee_msat: Option<u64>,
    /// Unix seconds (listforwards' fractional seconds, truncated).
    pub received_time: u64,
    pub resolved_time: Option<u64>,
}

impl Forward {
    /// What we earned: the fee of a settled forward (`in - out` if `fee_msat` is missing).
    pub fn earned_msat(&self) -> u64 {
        if self.status != ForwardStatus::Settled {
            return 0;
        }
        self.fee_msat.unwrap_or_else(|| {
            self.in_msat
                .saturating_sub(self.out_msat.unwrap_or(self.in_msat))
        })
    }

    /// When the fee was earned (resolution), or when it arrived if not resolved.
    pub fn time(&self) -> u64 {
        self.resolved_time.unwrap_or(self.received_time)
    }
}

/// The running `rebalanceall` job, as the runner reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobProgress {
    pub job_id: u64,
    pub started_at: u64,
    pub moves_completed: u32,
    pub moves_failed: u32,
    pub moves_in_flight: u32,
    pub moved_msat: u64,
    pub fee_msat: u64,
    /// Probes sent to size its moves, and moves they found could not go (nothing was sent).
    pub probes: u32,
    pub moves_sized_out: u32,
    /// Pairs not started because their quote found no set within the fee cap (or no route):
    /// not moves, nothing was sent (`core::pairing`).
    pub pairs_skipped: u32,
}

impl JobProgress {
    fn to_json(&self) -> Value {
        json!({
            "job_id": self.job_id,
            "started_at": self.started_at,
            "moves_completed": self.moves_completed,
            "moves_failed": self.moves_failed,
            "moves_in_flight": self.moves_in_flight,
            "moved_msat": self.moved_msat,
            "fee_msat": self.fee_msat,
            "probes": self.probes,
            "moves_sized_out": self.moves_sized_out,
            "pairs_skipped": self.pairs_skipped,
        })
    }
}

/// One channel that rebalancing touched in the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelReport {
    pub short_channel_id: Scid,
    /// Liquidity moved into it (it was the incoming channel of complete rebalances).
    pub moved_in_msat: u64,
    /// Liquidity moved out of it (the outgoing channel).
    pub moved_out_msat: u64,
    pub rebalances_in: u32,
    pub rebalances_out: u32,
    /// Failed rebalances it took part in, either end.
    pub failed_rebalances: u32,
    /// Fees of the rebalances into it: what filling it cost.
    pub fees_paid_msat: u64,
    /// What forwarding out through it earned in the period.
    pub forward_fees_msat: u64,
    /// What the liquidity moved out of it would have earned forwarded out through it, at our
    /// fee on it now (an estimate: lost profit, the other cost of a rebalance).
    pub lost_profit_msat: u64,
}

impl ChannelReport {
    pub fn new(short_channel_id: Scid) -> Self {
        ChannelReport {
            short_channel_id,
            moved_in_msat: 0,
            moved_out_msat: 0,
            rebalances_in: 0,
            rebalances_out: 0,
            failed_rebalances: 0,
            fees_paid_msat: 0,
            forward_fees_msat: 0,
            lost_profit_msat: 0,
        }
    }

    pub fn net_msat(&self) -> i64 {
        signed_diff(self.forward_fees_msat, self.fees_paid_msat)
    }

    fn to_json(&self) -> Value {
        json!({
            "short_channel_id": self.short_channel_id.to_string(),
            "moved_in_msat": self.moved_in_msat,
            "moved_out_msat": self.moved_out_msat,
            "rebalances_in": self.rebalances_in,
            "rebalances_out": self.rebalances_out,
            "failed_rebalances": self.failed_rebalances,
            "fees_paid_msat": self.fees_paid_msat,
            "forward_fees_msat": self.forward_fees_msat,
            "net_msat": self.net_msat(),
            "lost_profit_msat": self.lost_profit_msat,
            "net_after_lost_profit_msat": self
                .net_msat()
                .saturating_sub(i64::try_from(self.lost_profit_msat).unwrap_or(i64::MAX)),
        })
    }
}

fn signed_diff(a: u64, b: u64) -> i64 {
    let d = a as i128 - b as i128;
    d.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

fn signed_amount(msat: i64) -> String {
    let sign = if msat < 0 { "-" } else { "+" };
    format!("{sign}{}", display_sat(msat.unsigned_abs()))
}

/// `rebalancereport`'s data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub days: u64,
    /// Start of the period, unix seconds (`now - days * 86400`).
    pub since: u64,
    pub now: u64,
    /// The running job, if any.
    pub job: Option<JobProgress>,
    pub total_successful_rebalances: u64,
    pub failed_rebalances: u64,
    /// Moved by complete rebalances, msat.
    pub total_rebalanced_amount_msat: u64,
    pub total_rebalance_fee_msat: u64,
    /// `total_rebalance_fee / total_rebalanced_amount` in ppm, rounded.
    pub average_rebalance_fee_ppm: u64,
    /// By short_channel_id.
    pub channels: Vec<ChannelReport>,
    /// Fees of rebalances started in the last 24 h (whatever `days` is).
    pub fees_last_24h_msat: u64,
    pub daily_budget_msat: Option<u64>,
    /// All settled forwards of the period.
    pub forward_fees_msat: u64,
    /// Settled forwards of the period out through a channel we rebalanced into.
    pub forward_fees_rebalanced_msat: u64,
}

/// `; N pair(s) skipped: ...` for a job's line, or nothing when none was.
pub fn skipped_pairs(n: u32) -> String {
    if n == 0 {
        return String::new();
    }
    format!("; {n} pair(s) skipped: no route within the fee cap")
}

/// A rebalance in flight now, as the report lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub outgoing_scid: String,
    pub incoming_scid: String,
    pub amount_msat: u64,
    /// Parts of the current attempt in flight, and attempts that have ended.
    pub parts: u32,
    pub attempts: u32,
    /// Our HTLCs of this payment on our channels now (outgoing ones).
    pub htlcs_out: u32,
    pub seconds: u64,
    /// The job it belongs to (0 = a manual `rebalance`).
    pub job_id: u64,
    pub payment_hash: Option<String>,
}

impl InFlight {
    /// Attempts made, the one with parts in flight now included (what the text calls
    /// "attempt N").
    fn attempts_made(&self) -> u32 {
        self.attempts + u32::from(self.parts > 0)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "outgoing_scid": self.outgoing_scid,
            "incoming_scid": self.incoming_scid,
            "amount_msat": self.amount_msat,
            "parts": self.parts,
            "attempts": self.attempts_made(),
            "htlcs_out": self.htlcs_out,
            "seconds": self.seconds,
            "job_id": self.job_id,
            "payment_hash": self.payment_hash,
        })
    }

    /// One line of the report's text.
    pub fn to_text(&self) -> String {
        format!(
            "  {} -> {} {}: attempt {}, {} part(s) and {} HTLC(s) out, {}s, {}",
            self.outgoing_scid,
            self.incoming_scid,
            display_sat(self.amount_msat),
            self.attempts_made(),
            self.parts,
            self.htlcs_out,
            self.seconds,
            match self.job_id {
                0 => "manual".to_string(),
                j => format!("job {j}"),
            }
        )
    }
}

/// Builds the report over `[now - days * 86400, now]`. `history` may hold more (all of it is
/// fine): the 24 h budget figure is taken from it whatever `days` is.
/// `our_fees`: our fee on each channel now, for the lost-profit estimate (none: counted 0).
pub fn report(
    history: &[Entry],
    forwards: &[Forward],
    our_fees: &HashMap<Scid, OurFee>,
    job: Option<&JobProgress>,
    budget: &Budget,
    days: u64,
    now: u64,
) -> Report {
    let since = now.saturating_sub(days.saturating_mul(DAY_SECS));
    let day_ago = now.saturating_sub(DAY_SECS);
    let mut r = Report {
        days,
        since,
        now,
        job: job.cloned(),
        daily_budget_msat: budget.daily_msat,
        ..Report::default()
    };
    let mut channels: HashMap<Scid, ChannelReport> = HashMap::new();
    fn row(channels: &mut HashMap<Scid, ChannelReport>, scid: Scid) -> &mut ChannelReport {
        channels
            .entry(scid)
            .or_insert_with(|| ChannelReport::new(scid))
    }
    for e in history {
        if e.started_at >= day_ago {
            r.fees_last_24h_msat = r.fees_last_24h_msat.saturating_add(e.fee_msat);
        }
        if e.started_at < since {
            continue;
        }
        r.total_rebalance_fee_msat = r.total_rebalance_fee_msat.saturating_add(e.fee_msat);
        if e.is_complete() {
            r.total_successful_rebalances += 1;
            r.total_rebalanced_amount_msat =
                r.total_rebalanced_amount_msat.saturating_add(e.amount_msat);
            let out = row(&mut channels, e.outgoing);
            out.moved_out_msat = out.moved_out_msat.saturating_add(e.amount_msat);
            out.rebalances_out += 1;
            let lost = our_fees.get(&e.outgoing).map_or(0, |f| {
                u64::try_from(f.earns_msat(e.amount_msat)).unwrap_or(u64::MAX)
            });
            out.lost_profit_msat = out.lost_profit_msat.saturating_add(lost);
            let inc = row(&mut channels, e.incoming);
            inc.moved_in_msat = inc.moved_in_msat.saturating_add(e.amount_msat);
            inc.rebalances_in += 1;
            inc.fees_paid_msat = inc.fees_paid_msat.saturating_add(e.fee_msat);
        } else {
            r.failed_rebalances += 1;
            row(&mut channels, e.outgoing).failed_rebalances += 1;
            if e.incoming != e.outgoing {
                row(&mut channels, e.incoming).failed_rebalances += 1;
            }
            // A failed rebalance pays nothing, but if a record says otherwise, count it.
            let inc = row(&mut channels, e.incoming);
            inc.fees_paid_msat = inc.fees_paid_msat.saturating_add(e.fee_msat);
        }
    }
    r.average_rebalance_fee_ppm = ppm(r.total_rebalance_fee_msat, r.total_rebalanced_amount_msat);
    let filled: HashSet<Scid> = channels
        .values()
        .filter(|c| c.rebalances_in > 0)
        .map(|c| c.short_channel_id)
        .collect();
    for f in forwards {
        let earned = f.earned_msat();
        if earned == 0 || f.time() < since {
            continue;
        }
        r.forward_fees_msat = r.forward_fees_msat.saturating_add(earned);
        let Some(out) = f.out_channel else { continue };
        if let Some(c) = channels.get_mut(&out) {
            c.forward_fees_msat = c.forward_fees_msat.saturating_add(earned);
        }
        if filled.contains(&out) {
            r.forward_fees_rebalanced_msat = r.forward_fees_rebalanced_msat.saturating_add(earned);
        }
    }
    r.channels = channels.into_values().collect();
    r.channels.sort_unstable_by_key(|c| c.short_channel_id);
    r
}

/// `2026-12-02 13:05Z` for people.
fn utc(secs: u64) -> String {
    let in_day = secs % DAY_SECS;
    format!(
        "{} {:02}:{:02}Z",
        day_name(secs),
        in_day / 3600,
        in_day % 3600 / 60
    )
}

impl Report {
    /// What forwarding out through the channels we rebalanced into earned, less what the
    /// rebalancing cost.
    pub fn net_msat(&self) -> i64 {
        signed_diff(
            self.forward_fees_rebalanced_msat,
            self.total_rebalance_fee_msat,
        )
    }

    /// Whether those forwards earned at least what the rebalancing cost.
    pub fn paid_back(&self) -> bool {
        self.forward_fees_rebalanced_msat >= self.total_rebalance_fee_msat
    }

    /// JSON: rebalance.py's `rebalancereport` names where it has one, CLN-style names for ours.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "rebalanceall_is_running": self.job.is_some(),
            "days": self.days,
            "since": self.since,
            "total_successful_rebalances": self.total_successful_rebalances,
            "failed_rebalances": self.failed_rebalances,
            // rebalance.py's form of its own names; ours in integer msat beside them.
            "total_rebalanced_amount": msat_string(self.total_rebalanced_amount_msat),
            "total_rebalance_fee": msat_string(self.total_rebalance_fee_msat),
            "total_rebalanced_amount_msat": self.total_rebalanced_amount_msat,
            "total_rebalance_fee_msat": self.total_rebalance_fee_msat,
            "average_rebalance_fee_ppm": self.average_rebalance_fee_ppm,
            "fees_last_24h_msat": self.fees_last_24h_msat,
            "forward_fees_msat": self.forward_fees_msat,
            "forward_fees_rebalanced_msat": self.forward_fees_rebalanced_msat,
            "net_msat": self.net_msat(),
            "paid_back": self.paid_back(),
            "channels": self.channels.iter().map(ChannelReport::to_json).collect::<Vec<_>>(),
        });
        if let Some(job) = &self.job {
            v["job"] = job.to_json();
        }
        if let Some(b) = self.daily_budget_msat {
            v["daily_budget_msat"] = json!(b);
        }
        v
    }

    /// The report for a person: a few lines of totals, then a table of channels.
    pub fn to_text(&self) -> String {
        let mut lines = vec![format!(
            "rebalancereport: the last {} day{}, since {}",
            self.days,
            if self.days == 1 { "" } else { "s" },
            utc(self.since)
        )];
        lines.push(match &self.job {
            Some(j) => {
                format!(
                    "rebalanceall: running, job {} since {}: {} complete, {} failed, {} in flight; \
                 {} moved for {} in fees",
                    j.job_id,
                    utc(j.started_at),
                    j.moves_completed,
                    j.moves_failed,
                    j.moves_in_flight,
                    display_sat(j.moved_msat),
                    display_sat(j.fee_msat)
                ) + &skipped_pairs(j.pairs_skipped)
            }
            None => "rebalanceall: not running".to_string(),
        });
        lines.push(format!(
            "rebalances: {} complete, {} failed; {} moved for {} in fees ({}ppm)",
            self.total_successful_rebalances,
            self.failed_rebalances,
            display_sat(self.total_rebalanced_amount_msat),
            display_sat(self.total_rebalance_fee_msat),
            self.average_rebalance_fee_ppm
        ));
        lines.push(match self.daily_budget_msat {
            Some(b) => format!(
                "fees in the last 24 h: {} of the {} daily budget",
                display_sat(self.fees_last_24h_msat),
                display_sat(b)
            ),
            None => format!(
                "fees in the last 24 h: {} (no daily budget)",
                display_sat(self.fees_last_24h_msat)
            ),
        });
        lines.push(format!(
            "forwarding earned {}, {} of it out through channels we rebalanced into",
            display_sat(self.forward_fees_msat),
            display_sat(self.forward_fees_rebalanced_msat)
        ));
        lines.push(format!(
            "paid back: {}, {} earned against {} spent (net {})",
            if self.paid_back() { "yes" } else { "no" },
            display_sat(self.forward_fees_rebalanced_msat),
            display_sat(self.total_rebalance_fee_msat),
            signed_amount(self.net_msat())
        ));
        if !self.channels.is_empty() {
            lines.push(String::new());
            lines.push(format!(
                "{:<18} {:>13} {:>13} {:>6} {:>13} {:>13} {:>13} {:>13}",
                "short_channel_id",
                "moved_in",
                "moved_out",
                "failed",
                "fees_paid",
                "forward_fees",
                "net",
                "lost_out"
            ));
            for c in &self.channels {
                lines.push(format!(
                    "{:<18} {:>13} {:>13} {:>6} {:>13} {:>13} {:>13} {:>13}",
                    c.short_channel_id.to_string(),
                    display_sat(c.moved_in_msat),
                    display_sat(c.moved_out_msat),
                    c.failed_rebalances,
                    display_sat(c.fees_paid_msat),
                    display_sat(c.forward_fees_msat),
                    signed_amount(c.net_msat()),
                    display_sat(c.lost_profit_msat)
                ));
            }
        }
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::history::{NO_PAYMENT_HASH, Outcome};

    const NOW: u64 = 1_796_169_600 + 12 * 3600; // 2026-12-02 12:00Z
    const SAT: u64 = 1_000;

    fn s(n: u64) -> Scid {
        format!("{n}x1x0").parse().unwrap()
    }

    fn rb(age_secs: u64, out: u64, inc: u64, amount_sat: u64, fee_msat: u64) -> Entry {
        Entry {
            started_at: NOW - age_secs,
            outgoing: s(out),
            incoming: s(inc),
            amount_msat: amount_sat * SAT,
            fee_msat,
            attempts: 1,
            outcome: Outcome::Complete,
            duration_ms: 900,
            job_id: 1,
            payment_hash: NO_PAYMENT_HASH,
            error: String::new(),
            parts: 1,
        }
    }

    fn failed(age_secs: u64, out: u64, inc: u64) -> Entry {
        Entry {
            outcome: Outcome::Failed { code: 205 },
            error: "no route".into(),
            parts: 1,
            ..rb(age_secs, out, inc, 100_000, 0)
        }
    }

    fn fwd(age_secs: u64, inc: u64, out: u64, fee_msat: u64, status: ForwardStatus) -> Forward {
        Forward {
            in_channel: s(inc),
            out_channel: Some(s(out)),
            status,
            in_msat: 1_000_000 + fee_msat,
            out_msat: Some(1_000_000),
            fee_msat: Some(fee_msat),
            received_time: NOW - age_secs - 1,
            resolved_time: Some(NOW - age_secs),
        }
    }

    #[test]
    fn lost_profit_is_what_the_liquidity_moved_out_would_have_earned() {
        let history = vec![
            rb(3600, 1, 2, 400_000, 20_000),
            rb(1800, 1, 3, 100_000, 5_000),
            failed(600, 1, 2),
        ];
        let fees: HashMap<Scid, OurFee> = [(
            s(1),
            OurFee {
                fee_base_msat: 1000,
                fee_proportional_millionths: 100,
            },
        )]
        .into();
        let r = report(&history, &[], &fees, None, &Budget::default(), 1, NOW);
        let c1 = r
            .channels
            .iter()
            .find(|c| c.short_channel_id == s(1))
            .unwrap();
        // (1000 + 40000) + (1000 + 10000): completed moves only.
        assert_eq!(c1.lost_profit_msat, 52_000);
        let j = r.to_json();
        let j1 = j["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["short_channel_id"] == "1x1x0")
            .unwrap();
        assert_eq!(j1["lost_profit_msat"], 52_000);
        assert_eq!(j1["net_after_lost_profit_msat"], -52_000);
        // A channel whose fee is not known loses nothing by this count.
        let c2 = r
            .channels
            .iter()
            .find(|c| c.short_channel_id == s(2))
            .unwrap();
        assert_eq!(c2.lost_profit_msat, 0);
        assert!(r.to_text().contains("lost_out"), "{}", r.to_text());
    }

    #[test]
    fn totals_channels_and_payback() {
        let day = DAY_SECS;
        let history = vec![
            rb(40 * day, 1, 2, 500_000, 99_999), // before the period: only in no total
            rb(5 * day, 1, 2, 300_000, 150_000),
            rb(2 * day, 3, 2, 100_000, 50_000),
            rb(3600, 1, 4, 200_000, 60_000),
            failed(1800, 1, 4),
            failed(600, 3, 5),
        ];
        let forwards = vec![
            fwd(4 * day, 9, 2, 120_000, ForwardStatus::Settled), // out through 2: rebalanced into
            fwd(3 * day, 9, 4, 7_000, ForwardStatus::Settled),
            fwd(day, 2, 9, 30_000, ForwardStatus::Settled), // out through 9: not rebalanced
            fwd(day, 9, 2, 50_000, ForwardStatus::Failed),  // failed: earned nothing
            fwd(35 * day, 9, 2, 1_000_000, ForwardStatus::Settled), // before the period
            Forward {
                fee_msat: None, // in - out
                ..fwd(10, 9, 1, 4_000, ForwardStatus::Settled)
            },
        ];
        let budget = Budget {
            per_run_msat: None,
            daily_msat: Some(100_000),
        };
        let r = report(&history, &forwards, &HashMap::new(), None, &budget, 30, NOW);
        assert_eq!(r.since, NOW - 30 * day);
        assert_eq!(r.total_successful_rebalances, 3);
        assert_eq!(r.failed_rebalances, 2);
        assert_eq!(r.total_rebalanced_amount_msat, 600_000 * SAT);
        assert_eq!(r.total_rebalance_fee_msat, 260_000);
        assert_eq!(r.average_rebalance_fee_ppm, 433); // 260000 / 600000000, rounded
        assert_eq!(r.fees_last_24h_msat, 60_000);
        assert_eq!(r.forward_fees_msat, 120_000 + 7_000 + 30_000 + 4_000);
        // Channels 2 and 4 were rebalanced into; 1 only drained (and its forward is not counted).
        assert_eq!(r.forward_fees_rebalanced_msat, 127_000);
        assert_eq!(r.net_msat(), -133_000);
        assert!(!r.paid_back());
        let rows: Vec<_> = r
            .channels
            .iter()
            .map(|c| {
                (
                    c.short_channel_id.block(),
                    c.moved_in_msat / SAT,
                    c.moved_out_msat / SAT,
                    c.failed_rebalances,
                    c.fees_paid_msat,
                    c.forward_fees_msat,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (1, 0, 500_000, 1, 0, 4_000),
                (2, 400_000, 0, 0, 200_000, 120_000),
                (3, 0, 100_000, 1, 0, 0),
                (4, 200_000, 0, 1, 60_000, 7_000),
                (5, 0, 0, 1, 0, 0),
            ]
        );

        let j = r.to_json();
        assert_eq!(j["rebalanceall_is_running"], false);
        assert_eq!(j["total_successful_rebalances"], 3);
        assert_eq!(j["total_rebalanced_amount"], "600000000msat");
        assert_eq!(j["total_rebalance_fee"], "260000msat");
        assert_eq!(j["total_rebalanced_amount_msat"], 600_000_000);
        assert_eq!(j["total_rebalance_fee_msat"], 260_000);
        assert_eq!(j["average_rebalance_fee_ppm"], 433);
        assert_eq!(j["failed_rebalances"], 2);
        assert_eq!(j["forward_fees_msat"], 161_000);
        assert_eq!(j["net_msat"], -133_000);
        assert_eq!(j["paid_back"], false);
        assert_eq!(j["daily_budget_msat"], 100_000);
        assert_eq!(j["channels"][1]["short_channel_id"], "2x1x0");
        assert_eq!(j["channels"][1]["net_msat"], -80_000);
        assert!(j.get("job").is_none());

        let text = r.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..6],
            [
                "rebalancereport: the last 30 days, since 2026-11-02 12:00Z",
                "rebalanceall: not running",
                "rebalances: 3 complete, 2 failed; 600000sat moved for 260sat in fees (433ppm)",
                "fees in the last 24 h: 60sat of the 100sat daily budget",
                "forwarding earned 161sat, 127sat of it out through channels we rebalanced into",
                "paid back: no, 127sat earned against 260sat spent (net -133sat)",
            ]
        );
        assert!(lines[7].starts_with("short_channel_id"));
        assert_eq!(lines.len(), 8 + 5);
        assert!(lines[9].starts_with("2x1x0"), "{}", lines[9]);
        assert!(lines[9].ends_with("-80sat          0sat"), "{}", lines[9]);
        assert!(lines.iter().all(|l| l.len() <= 120));
    }

    #[test]
    fn running_job_and_short_period() {
        let job = JobProgress {
            job_id: 3,
            started_at: NOW - 300,
            moves_completed: 2,
            moves_failed: 1,
            moves_in_flight: 1,
            moved_msat: 200_000 * SAT,
            fee_msat: 1_500,
            probes: 0,
            moves_sized_out: 0,
            pairs_skipped: 0,
        };
        let history = vec![
            rb(2 * DAY_SECS, 1, 2, 100_000, 10),
            rb(10, 1, 2, 100_000, 20),
        ];
        let forwards = vec![fwd(5, 9, 2, 25, ForwardStatus::Settled)];
        let r = report(
            &history,
            &forwards,
            &HashMap::new(),
            Some(&job),
            &Budget::default(),
            1,
            NOW,
        );
        assert_eq!(r.total_successful_rebalances, 1);
        assert!(r.paid_back());
        assert_eq!(r.net_msat(), 5);
        let j = r.to_json();
        assert_eq!(j["rebalanceall_is_running"], true);
        assert_eq!(j["job"]["job_id"], 3);
        assert_eq!(j["job"]["moves_in_flight"], 1);
        assert!(j.get("daily_budget_msat").is_none());
        let text = r.to_text();
        assert!(text.starts_with("rebalancereport: the last 1 day, since 2026-12-01 12:00Z\n"));
        assert!(text.contains(
            "rebalanceall: running, job 3 since 2026-12-02 11:55Z: 2 complete, 1 failed, \
             1 in flight; 200000sat moved for 1500msat in fees"
        ));
        assert!(text.contains("fees in the last 24 h: 20msat (no daily budget)"));
        assert!(text.contains("(net +5msat)"));

        // Nothing at all.
        let empty = report(&[], &[], &HashMap::new(), None, &Budget::default(), 7, NOW);
        assert_eq!(empty.average_rebalance_fee_ppm, 0);
        assert!(empty.channels.is_empty());
        assert!(empty.paid_back());
        assert_eq!(empty.to_text().lines().count(), 6);
    }

    #[test]
    fn forward_status_and_earnings() {
        assert_eq!("settled".parse(), Ok(ForwardStatus::Settled));
        assert_eq!("local_failed".parse(), Ok(ForwardStatus::LocalFailed));
        assert_eq!("offered".parse(), Ok(ForwardStatus::Offered));
        assert_eq!("failed".parse(), Ok(ForwardStatus::Failed));
        assert!("nope".parse::<ForwardStatus>().is_err());
        let f = Forward {
            out_channel: None,
            out_msat: None,
            fee_msat: None,
            resolved_time: None,
            ..fwd(0, 1, 2, 10, ForwardStatus::Settled)
        };
        assert_eq!(f.earned_msat(), 0);
        assert_eq!(f.time(), NOW - 1);
        assert_eq!(
            fwd(0, 1, 2, 10, ForwardStatus::Offered).earned_msat(),
            0,
            "not yet earned"
        );
    }

    #[test]
    fn ten_thousand_entries() {
        let history: Vec<Entry> = (0..10_000u64)
            .map(|i| rb(i * 700, i % 97, 100 + i % 89, 100_000 + i, i % 1000))
            .collect();
        let forwards: Vec<Forward> = (0..50_000u64)
            .map(|i| {
                fwd(
                    i * 100,
                    i % 50,
                    100 + i % 89,
                    1 + i % 3000,
                    ForwardStatus::Settled,
                )
            })
            .collect();
        let t = std::time::Instant::now();
        let r = report(
            &history,
            &forwards,
            &HashMap::new(),
            None,
            &Budget::default(),
            90,
            NOW,
        );
        let elapsed = t.elapsed();
        assert_eq!(r.total_successful_rebalances, 10_000);
        assert_eq!(r.channels.len(), 97 + 89);
        assert!(r.forward_fees_rebalanced_msat > 0);
        let _ = r.to_text();
        eprintln!("report over 10000 entries and 50000 forwards: {elapsed:?}");
    }
}

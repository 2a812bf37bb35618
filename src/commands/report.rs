//! `rebalancereport [days]`: whether a job runs and how far it is, totals over the period, per
//! channel, the 24 h budget, and whether it paid back (forwarding fees from `listforwards`).
//! The numbers are `core::report`'s; this gathers its inputs.

use crate::core::amount::display_sat;
use crate::core::economics::OurFee;
use crate::core::graph::Scid;
use crate::core::report::{self, Forward, ForwardStatus, InFlight};
use crate::error::{self, RpcFailure};
use crate::lightningd::{Lightningd, PeerChannel};
use crate::state::State;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Reports cover this many days unless asked otherwise.
pub const DEFAULT_REPORT_DAYS: u64 = 30;

impl<N: Lightningd> State<N> {
    pub async fn rebalancereport(&self, days: Option<u64>) -> Result<Value, RpcFailure> {
        let days = days.unwrap_or(DEFAULT_REPORT_DAYS);
        let forwards: Vec<Forward> = self
            .node
            .listforwards_settled()
            .await
            .map_err(|e| error::from_lightningd("listforwards", &e))?
            .into_iter()
            .filter_map(|f| {
                Some(Forward {
                    in_channel: f.in_channel.parse().ok()?,
                    out_channel: f.out_channel.as_deref().and_then(|s| s.parse().ok()),
                    status: f.status.parse().unwrap_or(ForwardStatus::Settled),
                    in_msat: f.in_msat,
                    out_msat: f.out_msat,
                    fee_msat: f.fee_msat,
                    received_time: f.received_time as u64,
                    resolved_time: f.resolved_time.map(|t| t as u64),
                })
            })
            .collect();
        let history = self.history_entries().await;
        // Our channels now: our fee on each (lost profit) and the HTLCs of rebalances in flight.
        let chans = self.node.listpeerchannels().await.unwrap_or_default();
        let our_fees: HashMap<Scid, OurFee> = chans
            .iter()
            .filter_map(|c| {
                let local = c.updates.local?;
                Some((
                    c.short_channel_id.as_deref()?.parse().ok()?,
                    OurFee {
                        fee_base_msat: local.fee_base_msat,
                        fee_proportional_millionths: local.fee_proportional_millionths,
                    },
                ))
            })
            .collect();
        let job = self.last_job();
        let progress = job
            .as_ref()
            .filter(|j| j.is_running())
            .map(|j| j.progress());
        let r = report::report(
            &history,
            &forwards,
            &our_fees,
            progress.as_ref(),
            &self.config.auto.budget,
            days,
            self.now_secs(),
        );
        let mut v = r.to_json();
        let mut text = r.to_text();
        if let Some(j) = job.as_ref().filter(|j| !j.is_running()) {
            // The text says only "not running" of a job that ended: say how it went.
            let p = j.progress();
            let line = format!(
                "rebalanceall: not running; job {} ended: {}\n  it made {} move(s), {} failed, {} moved for {} in fees",
                j.id,
                j.ended().unwrap_or_default(),
                p.moves_completed,
                p.moves_failed,
                display_sat(p.moved_msat),
                display_sat(p.fee_msat)
            ) + &report::skipped_pairs(p.pairs_skipped);
            text = text.replacen("rebalanceall: not running", &line, 1);
        }
        if let Some(j) = job {
            v["last_job"] = json!({
                "job_id": j.id,
                "started_at": j.started_at,
                "running": j.is_running(),
                "ended": j.ended(),
                "planned": j.initial_plan["moves"].as_array().map_or(0, |m| m.len()),
            });
        }
        let in_flight = self.in_flight_now(&chans);
        v["in_flight"] = json!(in_flight.iter().map(InFlight::to_json).collect::<Vec<_>>());
        let mut resting: Vec<(String, (u64, String))> =
            self.resting_channels().into_iter().collect();
        resting.sort();
        if !in_flight.is_empty() {
            text.push_str("\nIn flight now:\n");
            for f in &in_flight {
                text.push_str(&f.to_text());
                text.push('\n');
            }
        }
        if !resting.is_empty() {
            text.push_str("\nLeft out of jobs for now:\n");
            for (scid, (until, why)) in &resting {
                text.push_str(&format!("  {scid} until {until}: {why}\n"));
            }
        }
        v["left_out_of_jobs"] = json!(
            resting
                .iter()
                .map(|(scid, (until, why))| json!({"short_channel_id": scid, "until": until, "reason": why}))
                .collect::<Vec<_>>()
        );
        v["text"] = json!(text);
        Ok(v)
    }

    /// `rebalancereport-table [days]`: the report as text, a single-member result that
    /// lightning-cli prints as it is.
    pub async fn rebalancereport_table(&self, days: Option<u64>) -> Result<Value, RpcFailure> {
        let v = self.rebalancereport(days).await?;
        let text = v["text"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches('\n');
        Ok(json!({"format-hint": "simple", "report": text}))
    }

    /// Every rebalance in flight now, manual or automatic, with its HTLCs on our channels.
    fn in_flight_now(&self, chans: &[PeerChannel]) -> Vec<InFlight> {
        let running = self.inflight.list();
        let now_ms = self.now_ms();
        running
            .into_iter()
            .map(|r| {
                let htlcs_out = r.payment_hash.as_deref().map_or(0, |hash| {
                    chans
                        .iter()
                        .flat_map(|c| &c.htlcs)
                        .filter(|h| h.direction == "out" && h.payment_hash == hash)
                        .count() as u32
                });
                InFlight {
                    outgoing_scid: r.outgoing_scid,
                    incoming_scid: r.incoming_scid,
                    amount_msat: r.amount_msat,
                    parts: r.parts_in_flight,
                    attempts: r.attempts,
                    htlcs_out,
                    seconds: now_ms.saturating_sub(r.started_ms) / 1000,
                    job_id: r.job_id,
                    payment_hash: r.payment_hash,
                }
            })
            .collect()
    }
}

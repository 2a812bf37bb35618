//! `rebalancereport [days]`: whether a job runs and how far it is, totals over the period, per
//! channel, the 24 h budget, and whether it paid back (forwarding fees from `listforwards`).
//! The numbers are `core::report`'s; this gathers its inputs.

use crate::core::report::{self, Forward, ForwardStatus};
use crate::error::{self, RpcFailure};
use crate::lightningd::Lightningd;
use crate::state::State;
use serde_json::{Value, json};

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
        let job = self.last_job();
        let progress = job
            .as_ref()
            .filter(|j| j.is_running())
            .map(|j| j.progress());
        let r = report::report(
            &history,
            &forwards,
            progress.as_ref(),
            &self.config.auto.budget,
            days,
            self.now_secs(),
        );
        let mut v = r.to_json();
        if let Some(j) = job {
            v["last_job"] = json!({
                "job_id": j.id,
                "started_at": j.started_at,
                "running": j.is_running(),
                "ended": j.ended(),
                "planned": j.initial_plan["moves"].as_array().map_or(0, |m| m.len()),
            });
        }
        let mut resting: Vec<(String, (u64, String))> =
            self.resting_channels().into_iter().collect();
        resting.sort();
        let mut text = r.to_text();
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
}

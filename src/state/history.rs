//! The history of every rebalance in lightningd's datastore: loaded at start, one record
//! appended per rebalance (`create-or-append` to the day's key), retention applied as it grows,
//! and reconciliation with lightningd's invoices (a rebalance that completed while the plugin
//! was down is recorded once, never twice). The records themselves are `core::history`'s.

use super::inflight::{LABEL_PREFIX, label_channels};
use crate::core::history::{self, DAY_SECS, Entry, History, KEY_PREFIX, Outcome, RetentionPolicy};
use crate::lightningd::store::{self, hash_bytes};
use crate::lightningd::{Lightningd, SendpayStatus, paying_attempt};
use log::{info, warn};

/// Every rebalance recorded, in memory and in the datastore.
#[derive(Default)]
pub struct HistoryStore {
    history: tokio::sync::Mutex<History>,
}

impl HistoryStore {
    /// Reads every day's records from the datastore (a corrupt day keeps what decoded before
    /// the damage, with a log line, and the damaged bytes are dropped from the datastore).
    pub async fn load<N: Lightningd>(&self, node: &N) -> usize {
        // Held throughout: a rebalance ending meanwhile records (appends) after the load, so a
        // damaged day rewritten here cannot lose its record.
        let mut ours = self.history.lock().await;
        let days = match node.listdatastore(&KEY_PREFIX).await {
            Ok(d) => d,
            Err(e) => {
                warn!("history not loaded: listdatastore failed: {}", e.message);
                return 0;
            }
        };
        let mut entries = Vec::new();
        for day in days {
            let Some(hex) = day.hex.as_deref() else {
                continue;
            };
            let name = day.key.last().cloned().unwrap_or_default();
            let bytes = match store::from_hex(hex) {
                Ok(b) => b,
                Err(e) => {
                    warn!("ignoring history day {name}: {e}");
                    continue;
                }
            };
            let decoded = history::decode_day(&bytes);
            if decoded.newer_versions > 0 {
                info!(
                    "history day {name}: ignored {} record(s) of a newer version",
                    decoded.newer_versions
                );
            }
            if let Some(err) = &decoded.error {
                warn!(
                    "history day {name}: kept {} entries, then {err}; dropping the {} unreadable \
                     bytes from there, so the records appended to this day stay readable",
                    decoded.entries.len(),
                    bytes.len() - err.offset
                );
                // Records are appended to the day's value: left in place, the damage would
                // hide every record written after it from the next load.
                let key: Vec<&str> = day.key.iter().map(String::as_str).collect();
                let kept = &bytes[..err.offset];
                let fixed = if kept.is_empty() {
                    node.deldatastore(&key).await
                } else {
                    node.datastore(&key, &store::to_hex(kept), "create-or-replace")
                        .await
                };
                if let Err(e) = fixed {
                    warn!(
                        "history day {name}: could not drop the damaged bytes: {}",
                        e.message
                    );
                }
            }
            entries.extend(decoded.entries);
        }
        let h = History::from_entries(entries);
        let n = h.len();
        for e in h.entries() {
            ours.record(e.clone());
        }
        info!("history loaded: {n} rebalances");
        n
    }

    /// Records one rebalance: in memory, and appended to its day in the datastore (unless the
    /// same payment is recorded already). Applies retention when the history outgrows it.
    pub async fn record<N: Lightningd>(&self, node: &N, e: Entry, now: u64) {
        let mut h = self.history.lock().await;
        if !h.record(e.clone()) {
            return;
        }
        let key = e.datastore_key();
        let key: Vec<&str> = key.iter().map(String::as_str).collect();
        if let Err(err) = node
            .datastore(&key, &store::to_hex(&e.encode()), "create-or-append")
            .await
        {
            warn!(
                "could not record the rebalance in the history: {}",
                err.message
            );
        }
        let r = history::retention(&h.day_counts(), now, &RetentionPolicy::default());
        if r.is_empty() {
            return;
        }
        for day in &r.delete_days {
            let _ = node
                .deldatastore(&[KEY_PREFIX[0], KEY_PREFIX[1], day])
                .await;
        }
        h.apply_retention(&r);
        if let Some((day, _)) = &r.trim {
            let bytes = h.encode_day(day);
            let _ = node
                .datastore(
                    &[KEY_PREFIX[0], KEY_PREFIX[1], day],
                    &store::to_hex(&bytes),
                    "create-or-replace",
                )
                .await;
        }
    }

    /// Paid `rebalance-` invoices the history does not know: rebalances that completed while
    /// the plugin was not there to record them. Each is recorded once. Returns how many.
    pub async fn reconcile<N: Lightningd>(&self, node: &N, now: u64) -> usize {
        let Ok(invoices) = node.listinvoices(None).await else {
            return 0;
        };
        let mut added = 0;
        for inv in invoices {
            if inv.status != "paid" || !inv.label.starts_with(LABEL_PREFIX) {
                continue;
            }
            let hash = hash_bytes(&inv.payment_hash);
            if self.history.lock().await.contains_complete(&hash) {
                continue;
            }
            let Some((outgoing, incoming)) = label_channels(&inv.label) else {
                continue;
            };
            let sent = node
                .listsendpays(&inv.payment_hash)
                .await
                .unwrap_or_default();
            let done = paying_attempt(&sent);
            let amount_msat = inv.amount_msat.or(done.map(|d| d.0)).unwrap_or(0);
            let fee_msat = done.map_or(0, |(amount, sent)| sent.saturating_sub(amount));
            let paid_at = inv.paid_at.unwrap_or(now);
            self.record(
                node,
                Entry {
                    started_at: paid_at,
                    outgoing,
                    incoming,
                    amount_msat,
                    fee_msat,
                    attempts: u32::from(done.is_some()),
                    outcome: Outcome::Complete,
                    duration_ms: 0,
                    job_id: 0,
                    payment_hash: hash,
                    error: "recorded after a restart: completed while the plugin was down".into(),
                    parts: paying_parts(&sent),
                },
                now,
            )
            .await;
            added += 1;
        }
        if added > 0 {
            info!(
                "history: recorded {added} rebalance(s) that completed while the plugin was down"
            );
        }
        added
    }

    /// Fees of rebalances started in the last 24 hours (the daily budget's window).
    pub async fn fees_last_24h(&self, now: u64) -> u64 {
        let since = now.saturating_sub(DAY_SECS);
        self.history.lock().await.fees_since(since)
    }

    /// A copy of the history (for the report).
    pub async fn entries(&self) -> Vec<Entry> {
        self.history.lock().await.entries().to_vec()
    }
}

/// How many parts the try that paid had (1 for one sent whole).
fn paying_parts(sent: &[SendpayStatus]) -> u8 {
    let group = sent
        .iter()
        .find(|s| s.status == "complete")
        .map(|s| s.groupid);
    let n = sent
        .iter()
        .filter(|s| Some(s.groupid) == group && s.status == "complete")
        .count();
    n.clamp(1, u8::MAX as usize) as u8
}

//! The history of every rebalance in lightningd's datastore: loaded at start, one record
//! appended per rebalance (`create-or-append` to the day's key), retention applied as it grows,
//! and reconciliation with lightningd's invoices (a rebalance that completed while the plugin
//! was down is recorded once, never twice). The records themselves are `core::history`'s.

use super::rebalance::{LABEL_PREFIX, Rebalancer};
use crate::core::graph::Scid;
use crate::core::history::{
    self, DAY_SECS, Entry, History, KEY_PREFIX, NO_PAYMENT_HASH, Outcome, RetentionPolicy,
};
use crate::lightningd::Lightningd;
use crate::lightningd::store;
use log::{info, warn};

/// A payment hash as hex -> bytes (all zero if it is not one).
pub fn hash_bytes(hex: &str) -> [u8; 32] {
    store::from_hex(hex)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .unwrap_or(NO_PAYMENT_HASH)
}

/// `rebalance-<out>-<in>-...`: the two channels a rebalance invoice's label names.
fn label_channels(label: &str) -> Option<(Scid, Scid)> {
    let mut parts = label.strip_prefix(LABEL_PREFIX)?.split('-');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

impl<N: Lightningd> Rebalancer<N> {
    /// Reads every day's records from the datastore (a corrupt day keeps what decoded before
    /// the damage, with a log line, and the damaged bytes are dropped from the datastore).
    pub async fn load_history(&self) -> usize {
        // Held throughout: a rebalance ending meanwhile records (appends) after the load, so a
        // damaged day rewritten here cannot lose its record.
        let mut ours = self.history.lock().await;
        let days = match self.node.listdatastore(&KEY_PREFIX).await {
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
                    self.node.deldatastore(&key).await
                } else {
                    self.node
                        .datastore(&key, &store::to_hex(kept), "create-or-replace")
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
    pub async fn record_history(&self, e: Entry) {
        let mut h = self.history.lock().await;
        if !h.record(e.clone()) {
            return;
        }
        let key = e.datastore_key();
        let key: Vec<&str> = key.iter().map(String::as_str).collect();
        if let Err(err) = self
            .node
            .datastore(&key, &store::to_hex(&e.encode()), "create-or-append")
            .await
        {
            warn!(
                "could not record the rebalance in the history: {}",
                err.message
            );
        }
        let r = history::retention(
            &h.day_counts(),
            self.now_secs(),
            &RetentionPolicy::default(),
        );
        if r.is_empty() {
            return;
        }
        for day in &r.delete_days {
            let _ = self
                .node
                .deldatastore(&[KEY_PREFIX[0], KEY_PREFIX[1], day])
                .await;
        }
        h.apply_retention(&r);
        if let Some((day, _)) = &r.trim {
            let bytes = h.encode_day(day);
            let _ = self
                .node
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
    pub async fn reconcile_history(&self) -> usize {
        let Ok(invoices) = self.node.listinvoices(None).await else {
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
            let sent = self
                .node
                .listsendpays(&inv.payment_hash)
                .await
                .unwrap_or_default();
            let done = super::rebalance::paying_attempt(&sent);
            let amount_msat = inv.amount_msat.or(done.map(|d| d.amount_msat)).unwrap_or(0);
            let fee_msat = done
                .map(|d| d.amount_sent_msat.saturating_sub(d.amount_msat))
                .unwrap_or(0);
            let paid_at = inv.paid_at.unwrap_or_else(|| self.now_secs());
            self.record_history(Entry {
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
            })
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
    pub async fn fees_last_24h(&self) -> u64 {
        let since = self.now_secs().saturating_sub(DAY_SECS);
        self.history.lock().await.fees_since(since)
    }

    /// A copy of the history (for the report).
    pub async fn history_entries(&self) -> Vec<Entry> {
        self.history.lock().await.entries().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_their_channels() {
        let (o, i) = label_channels("rebalance-103x1x0-105x2x1-18a-77-3").unwrap();
        assert_eq!(
            (o.to_string(), i.to_string()),
            ("103x1x0".into(), "105x2x1".into())
        );
        assert!(label_channels("rebalance-x").is_none());
        assert!(label_channels("other-1x1x1-2x2x2").is_none());
        assert_eq!(hash_bytes("zz"), NO_PAYMENT_HASH);
        assert_eq!(hash_bytes(&"ab".repeat(32))[0], 0xab);
    }

    #[test]
    fn a_paid_invoice_costs_what_its_pending_attempt_sent() {
        use crate::commands::rebalance::paying_attempt;
        use crate::lightningd::SendpayStatus;
        let s = |status: &str, sent| SendpayStatus {
            status: status.into(),
            amount_msat: 1000,
            amount_sent_msat: sent,
        };
        // The outgoing peer has not settled our HTLC yet: the pending attempt is the one.
        let sent = [s("failed", 1001), s("pending", 1003)];
        assert_eq!(paying_attempt(&sent).unwrap().amount_sent_msat, 1003);
        let sent = [s("pending", 1003), s("complete", 1002)];
        assert_eq!(paying_attempt(&sent).unwrap().amount_sent_msat, 1002);
        assert!(paying_attempt(&[s("failed", 1001)]).is_none());
    }
}

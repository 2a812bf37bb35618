//! Step 6 of a rebalance, whatever happened: no unpaid invoice left behind (and a payment that
//! landed just as we stopped waiting reported as the success it is), the model saved and what
//! it learned published for lightningd's payer (askrene), the search state kept for the next
//! rebalance, the history recording it. Also the start-up
//! clean-up of invoices an earlier run left.

use super::session::{Session, hops_json};
use crate::core::amount::ppm;
use crate::core::graph::Scid;
use crate::core::history::{self, Entry, Outcome};
use crate::error::RpcFailure;
use crate::lightningd::store::hash_bytes;
use crate::lightningd::{Lightningd, paying_attempt};
use crate::state::State;
use crate::state::inflight::LABEL_PREFIX;
use log::{info, warn};
use serde_json::{Value, json};

/// Leave no unpaid rebalance invoice behind. If the invoice turns out to be paid (the payment
/// landed right after we stopped waiting), report success.
async fn cleanup<N: Lightningd>(
    node: &N,
    label: &str,
    hash: &str,
    amount_msat: u64,
    result: Result<Value, RpcFailure>,
) -> Result<Value, RpcFailure> {
    if result.is_ok() {
        return result;
    }
    let Err(e) = node.delinvoice(label, "unpaid").await else {
        return result;
    };
    let status = node
        .listinvoices(Some(label))
        .await
        .ok()
        .and_then(|v| v.into_iter().next())
        .map(|i| i.status);
    match status.as_deref() {
        Some("paid") => {
            let sent = node.listsendpays(hash).await.unwrap_or_default();
            let fee = paying_attempt(&sent).map_or(0, |(amount, sent)| sent.saturating_sub(amount));
            info!("{label}: paid after all, as we stopped waiting");
            Ok(
                json!({"status": "complete", "amount_msat": amount_msat, "fee_msat": fee,
                      "fee_ppm": ppm(fee, amount_msat), "payment_hash": hash,
                      "message": "the payment completed just as we stopped waiting"}),
            )
        }
        Some("expired") => {
            let _ = node.delinvoice(label, "expired").await;
            result
        }
        None => result,
        Some(other) => {
            warn!(
                "could not delete invoice {label} (status {other}): {}",
                e.message
            );
            result
        }
    }
}

/// Whatever happened: no unpaid invoice left, the model saved (once per rebalance, not per
/// attempt), the search state given back, the history records it.
pub async fn finish<N: Lightningd>(
    st: &State<N>,
    s: Session,
    result: Result<Value, RpcFailure>,
    dryrun: bool,
) -> Result<Value, RpcFailure> {
    if !s.attempts.is_empty() {
        st.save_liquidity().await;
        st.publish_learned(&s.req.our_id, &s.graph).await;
    }
    let result = match &s.invoice {
        None => result,
        Some(inv) => {
            let cleaned = cleanup(
                &st.node,
                &inv.label,
                &inv.payment_hash,
                s.req.amount_msat,
                result,
            )
            .await;
            cleaned.map(|mut v| {
                v["attempts"] = json!(s.attempts.len());
                v["duration_ms"] = json!(st.now_ms().saturating_sub(s.started_ms));
                if v.get("outgoing_scid").is_none() {
                    // Paid after all, as we stopped waiting: over the last route sent.
                    v["outgoing_scid"] = json!(s.req.out_scid);
                    v["incoming_scid"] = json!(s.req.inc_scid);
                    v["hops"] = json!(s.last_sent.len());
                    v["route"] = hops_json(&s.last_sent);
                }
                v
            })
        }
    };
    if !dryrun {
        st.record_history(history_entry(st, &s, &result)).await;
    }
    st.model.give_view((s.beliefs, s.scratch));
    result
}

/// The history's record of a finished rebalance.
fn history_entry<N: Lightningd>(
    st: &State<N>,
    s: &Session,
    result: &Result<Value, RpcFailure>,
) -> Entry {
    let scid = |x: &str| x.parse().unwrap_or(Scid(0));
    let (outcome, fee_msat, error) = match result {
        Ok(v) => (
            Outcome::Complete,
            v["fee_msat"].as_u64().unwrap_or(0),
            String::new(),
        ),
        Err(e) => (
            Outcome::Failed { code: e.code },
            0,
            history::bounded_error(&e.message).to_string(),
        ),
    };
    Entry {
        started_at: s.started_ms / 1000,
        outgoing: scid(&s.req.out_scid),
        incoming: scid(&s.req.inc_scid),
        amount_msat: s.req.amount_msat,
        fee_msat,
        attempts: s.attempts.len() as u32,
        outcome,
        duration_ms: st.now_ms().saturating_sub(s.started_ms),
        job_id: s.extra.job_id,
        payment_hash: s
            .invoice
            .as_ref()
            .map(|i| hash_bytes(&i.payment_hash))
            .unwrap_or(history::NO_PAYMENT_HASH),
        error,
        parts: match result {
            Ok(_) if !s.paid_set.is_empty() => s.paid_set.len(),
            _ => s.attempts.last().map_or(1, |a| a.parts.len().max(1)),
        }
        .min(u8::MAX as usize) as u8,
    }
}

/// Deletes unpaid rebalance invoices no rebalance of ours is waiting for: left by a plugin
/// that was stopped or crashed mid-rebalance. Returns how many were deleted.
pub async fn delete_stale_invoices<N: Lightningd>(st: &State<N>) -> usize {
    let Ok(invoices) = st.node.listinvoices(None).await else {
        return 0;
    };
    let mut deleted = 0;
    for inv in invoices {
        let ours = st.inflight.by_label(&inv.label).is_some();
        if inv.label.starts_with(LABEL_PREFIX) && inv.status == "unpaid" && !ours {
            match st.node.delinvoice(&inv.label, "unpaid").await {
                Ok(()) => deleted += 1,
                Err(e) => warn!(
                    "could not delete stale invoice {}: {}",
                    inv.label, e.message
                ),
            }
        }
    }
    if deleted > 0 {
        info!("deleted {deleted} unpaid rebalance invoice(s) left by an earlier run");
    }
    deleted
}

//! The arrival check, lightningd's `invoice_payment` hook: a rebalance payment that came back
//! over any channel but the one chosen as incoming is refused, so no fee is paid for a
//! rebalance that did not happen. Every other invoice is answered `continue` at once.

use crate::lightningd::{Lightningd, PeerChannel};
use crate::state::State;
use crate::state::inflight::LABEL_PREFIX;
use log::{info, warn};
use serde_json::{Value, json};

/// The hook's answer to `payload` (`{"payment": {"label", "preimage", "msat"}}`).
pub async fn on_invoice_payment<N: Lightningd>(st: &State<N>, payload: &Value) -> Value {
    let label = payload["payment"]["label"].as_str().unwrap_or_default();
    if !label.starts_with(LABEL_PREFIX) {
        return json!({"result": "continue"});
    }
    let Some((id, expected)) = st.inflight.by_label(label) else {
        // Not one of ours in flight (an operator's own label, say): not ours to judge.
        return json!({"result": "continue"});
    };
    let hash = expected.payment_hash.unwrap_or_default();
    let arrived = match st.node.listpeerchannels().await {
        Ok(chans) => arrival_channel(&chans, &hash),
        Err(e) => {
            warn!(
                "refusing payment for {label}: cannot check its arrival channel: {}",
                e.message
            );
            return json!({"result": "reject"});
        }
    };
    match arrived {
        Some(scid) if scid == expected.incoming_scid => json!({"result": "continue"}),
        other => {
            let seen = other.unwrap_or_else(|| "an unknown channel".to_string());
            info!(
                "refusing payment for {label}: it arrived on {seen}, not on incoming channel {}",
                expected.incoming_scid
            );
            st.inflight.update(id, |r| r.rejected_arrival = Some(seen));
            json!({"result": "reject"})
        }
    }
}

/// Which channel (scid) the incoming HTLC for `payment_hash` sits on.
fn arrival_channel(chans: &[PeerChannel], payment_hash: &str) -> Option<String> {
    chans
        .iter()
        .find(|c| {
            c.htlcs
                .iter()
                .any(|h| h.direction == "in" && h.payment_hash == payment_hash)
        })
        .and_then(|c| c.short_channel_id.clone())
}

//! The arrival check, lightningd's `invoice_payment` hook: a rebalance payment that came back
//! over any channel but the one chosen as incoming is refused, so no fee is paid for a
//! rebalance that did not happen. Paid in parts, the hook fires once for the whole set (every
//! part held at our node, grouped by payment hash whatever channel it came over): every part
//! must have come over the incoming channel, or the whole set is refused. Every other invoice
//! is answered `continue` at once.

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
        Ok(chans) => arrival_channel(&chans, &hash, &expected.incoming_scid),
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

/// Where the incoming HTLCs for `payment_hash` sit: `incoming` if every one of them is on it,
/// else the first other channel one came over (`None` when there is none at all).
fn arrival_channel(chans: &[PeerChannel], payment_hash: &str, incoming: &str) -> Option<String> {
    let mut on: Vec<&str> = chans
        .iter()
        .filter(|c| {
            c.htlcs
                .iter()
                .any(|h| h.direction == "in" && h.payment_hash == payment_hash)
        })
        .filter_map(|c| c.short_channel_id.as_deref())
        .collect();
    on.sort_by_key(|scid| *scid == incoming);
    on.first().map(|s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lightningd::Htlc;

    fn chan(scid: &str, hashes: &[&str]) -> PeerChannel {
        serde_json::from_value(serde_json::json!({
            "peer_id": "02aa", "state": "CHANNELD_NORMAL", "short_channel_id": scid,
        }))
        .map(|mut c: PeerChannel| {
            c.htlcs = hashes
                .iter()
                .map(|h| Htlc {
                    direction: "in".into(),
                    payment_hash: h.to_string(),
                    amount_msat: 1,
                })
                .collect();
            c
        })
        .unwrap()
    }

    #[test]
    fn every_part_must_have_come_over_the_incoming_channel() {
        let one = [chan("1x1x1", &["h"]), chan("2x2x2", &[])];
        assert_eq!(
            arrival_channel(&one, "h", "1x1x1").as_deref(),
            Some("1x1x1")
        );
        // Two parts over the incoming channel, one over a sibling: the sibling is named.
        let split = [chan("1x1x1", &["h", "h"]), chan("2x2x2", &["h"])];
        assert_eq!(
            arrival_channel(&split, "h", "1x1x1").as_deref(),
            Some("2x2x2")
        );
        assert_eq!(arrival_channel(&split, "x", "1x1x1"), None);
    }
}

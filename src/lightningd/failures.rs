//! The failure messages of lightningd's `sendpay_failure` notifications, kept a short while.
//!
//! lightningd gives a failed payment's decrypted failure message (`raw_message`, with the
//! erring channel's `channel_update`) only to a `waitsendpay` already waiting when the failure
//! comes: it does not store it (lightningd/pay.c `wait_payment`: "FIXME: We don't store
//! this!"). A part of a set that fails while the plugin is still sending the other parts, or a
//! try that fails at once, is answered bare. The `sendpay_failure` notification, sent to every
//! subscribed plugin as the failure comes (`tell_waiters_failed`), carries the message; the
//! cln-rpc adapter puts it back into such a bare answer ([`SendpayFailures::fill`]), so a fee
//! or delay a node raised reaches the rebalance however its failure came.

use super::api::Part;
use cln_rpc::RpcError;
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// How many failure messages are kept: the latest, of every payment of the node (a rebalance
/// looks its part up within moments of the failure).
const KEPT: usize = 256;

/// How long a bare answer waits for its notification: lightningd sends the notification when
/// the failure comes, before it could answer a `waitsendpay` made later, so it is on its way.
pub const NOTIFICATION_WAIT: Duration = Duration::from_millis(500);

/// BOLT 4: the failcode carries a `channel_update`.
const UPDATE: u64 = 0x1000;

/// A payment part: `(payment_hash, partid, groupid)`.
type PartKey = (String, u64, u64);

/// The failure messages of the latest `sendpay_failure` notifications.
#[derive(Debug, Default)]
pub struct SendpayFailures {
    kept: Mutex<VecDeque<(PartKey, String)>>,
}

/// The payment part a failure's `data` (or a notification's) names.
fn part_of(data: &Map<String, Value>) -> Option<PartKey> {
    Some((
        data.get("payment_hash")?.as_str()?.to_string(),
        data.get("partid").and_then(Value::as_u64).unwrap_or(0),
        data.get("groupid").and_then(Value::as_u64).unwrap_or(0),
    ))
}

impl SendpayFailures {
    /// Keeps the failure message of a `sendpay_failure` notification's params
    /// (`{"sendpay_failure": {"code", "message", "data": {...}}}`), if it has one.
    pub fn record(&self, params: &Value) {
        let n = params.get("sendpay_failure").unwrap_or(params);
        let Some(data) = n.get("data").and_then(Value::as_object) else {
            return;
        };
        let raw = data.get("raw_message").and_then(Value::as_str);
        let (Some(key), Some(raw)) = (part_of(data), raw) else {
            return;
        };
        let mut kept = self.kept.lock().expect("failures lock");
        if kept.len() >= KEPT {
            kept.pop_front();
        }
        kept.push_back((key, raw.to_string()));
    }

    fn find(&self, key: &PartKey) -> Option<String> {
        let kept = self.kept.lock().expect("failures lock");
        kept.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, m)| m.clone())
    }

    /// `e`, a `waitsendpay` failure for `payment_hash` (or its `part`), with the failure message
    /// the notification brought when lightningd answered without it: only for a failure a node
    /// on the way sent with a `channel_update` (a local failure has no message). Waits up to
    /// `wait` for the notification; after that `e` as it came.
    pub async fn fill(
        &self,
        mut e: RpcError,
        payment_hash: &str,
        part: Option<Part>,
        wait: Duration,
    ) -> RpcError {
        let Some(data) = e.data.as_mut().and_then(Value::as_object_mut) else {
            return e;
        };
        let remote = data.get("erring_index").and_then(Value::as_u64) > Some(0);
        let carries_update = data
            .get("failcode")
            .and_then(Value::as_u64)
            .is_some_and(|c| c & UPDATE != 0);
        if data.contains_key("raw_message") || !remote || !carries_update {
            return e;
        }
        // The answer names its part (lightningd's payment fields); the call's, if it does not.
        let key = part_of(data).unwrap_or((
            payment_hash.to_string(),
            part.map_or(0, |p| p.partid),
            part.map_or(0, |p| p.groupid),
        ));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(m) = self.find(&key) {
                log::debug!(
                    "waitsendpay answered part {} of group {} of {} without its failure \
                     message: taken from the sendpay_failure notification",
                    key.1,
                    key.2,
                    key.0
                );
                data.insert("raw_message".into(), Value::String(m));
                return e;
            }
            if tokio::time::Instant::now() >= deadline {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HASH: &str = "aa";

    /// A bare `waitsendpay` answer for a fee failure at hop 2 of part 1 of group 7, as
    /// lightningd gives it to a waiter that came after the failure.
    fn bare(failcode: u64, erring_index: u64) -> RpcError {
        RpcError {
            code: Some(204),
            message: "failed: WIRE_FEE_INSUFFICIENT (reply from remote)".into(),
            data: Some(
                json!({"payment_hash": HASH, "partid": 1, "groupid": 7, "status": "failed",
                              "erring_index": erring_index, "failcode": failcode}),
            ),
        }
    }

    fn notification(partid: u64, groupid: u64, raw: &str) -> Value {
        json!({"sendpay_failure": {"code": 204, "message": "failed",
               "data": {"payment_hash": HASH, "partid": partid, "groupid": groupid,
                        "status": "pending", "erring_index": 2, "failcode": 4108,
                        "raw_message": raw}}})
    }

    async fn filled(f: &SendpayFailures, e: RpcError) -> Option<String> {
        let e = f.fill(e, HASH, None, Duration::ZERO).await;
        e.data.unwrap()["raw_message"].as_str().map(str::to_string)
    }

    #[tokio::test]
    async fn a_bare_answer_gets_its_own_parts_message() {
        let f = SendpayFailures::default();
        f.record(&notification(1, 6, "100c-group-6"));
        f.record(&notification(2, 7, "100c-part-2"));
        assert_eq!(filled(&f, bare(4108, 2)).await, None);
        f.record(&notification(1, 7, "100c-mine"));
        assert_eq!(
            filled(&f, bare(4108, 2)).await.as_deref(),
            Some("100c-mine")
        );
    }

    #[tokio::test]
    async fn only_remote_failures_that_carry_an_update_are_filled() {
        let f = SendpayFailures::default();
        f.record(&notification(1, 7, "m"));
        // Our own node's failure (index 0), and one whose failcode carries no update.
        assert_eq!(filled(&f, bare(4108, 0)).await, None);
        assert_eq!(filled(&f, bare(0x400f, 2)).await, None);
        // An answer that has its message keeps it.
        let mut e = bare(4108, 2);
        e.data.as_mut().unwrap()["raw_message"] = json!("theirs");
        assert_eq!(filled(&f, e).await.as_deref(), Some("theirs"));
    }

    #[tokio::test]
    async fn a_notification_that_comes_while_waiting_is_taken() {
        let f = std::sync::Arc::new(SendpayFailures::default());
        let late = f.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            late.record(&notification(1, 7, "late"));
        });
        let e = f.fill(bare(4108, 2), HASH, None, NOTIFICATION_WAIT).await;
        assert_eq!(e.data.unwrap()["raw_message"], "late");
    }

    #[test]
    fn the_oldest_go_first() {
        let f = SendpayFailures::default();
        for g in 0..KEPT as u64 + 1 {
            f.record(&notification(1, g, "m"));
        }
        assert!(f.find(&(HASH.into(), 1, 0)).is_none());
        assert!(f.find(&(HASH.into(), 1, 1)).is_some());
        // Params without the topic's wrapper (or without a message) are read the same way.
        f.record(&notification(3, 3, "plain")["sendpay_failure"]);
        assert_eq!(f.find(&(HASH.into(), 3, 3)).as_deref(), Some("plain"));
        f.record(&json!({"sendpay_failure": {"data": {"payment_hash": HASH, "partid": 4}}}));
        assert!(f.find(&(HASH.into(), 4, 0)).is_none());
    }
}

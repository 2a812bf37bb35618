//! Request ids in, notifications out: lightningd forwards a plugin's `message` and `progress`
//! notifications to the client of a pending request (lightning-cli prints them as `# ...`
//! lines and a progress bar) only when they carry that request's id exactly as lightningd sent
//! it (lightningd/plugin.c looks the raw JSON token up among its pending requests). cln-plugin
//! 0.7 keeps the id from a method's handler, so the layer wraps the params of the commands that
//! report progress with it, and [`unwrap`] takes it out again in the handler.

use crate::progress::Progress;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// The key the layer wraps params under, with the request id beside them.
pub const REQUEST_KEY: &str = "cln_rebalance_request";

/// `params` wrapped with the request `id` (done by the layer, before cln-plugin sees them).
pub fn wrap(id: &Value, params: Value) -> Value {
    json!({REQUEST_KEY: id, "params": params})
}

/// A handler's params split into the request id (when the layer wrapped them) and the params
/// as the client sent them.
pub fn unwrap(params: Value) -> (Option<Value>, Value) {
    match params {
        Value::Object(mut m) if m.len() == 2 && m.contains_key(REQUEST_KEY) => {
            let id = m.remove(REQUEST_KEY);
            let params = m.remove("params").unwrap_or(Value::Null);
            (id, params)
        }
        other => (None, other),
    }
}

/// What the layer's writer is asked to do.
pub(super) enum Out {
    /// Write this message to lightningd.
    Message(Vec<u8>),
    /// Say when everything sent before has been written.
    Flush(oneshot::Sender<()>),
}

/// Sends notifications to lightningd, through the layer (so they never cut into another
/// message). Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    pub(super) tx: mpsc::UnboundedSender<Out>,
}

impl Notifier {
    /// Progress of the request `id`, as lightning-cli shows it.
    pub fn for_request(&self, id: Value) -> CliProgress {
        CliProgress {
            id,
            tx: self.tx.clone(),
        }
    }

    /// A notifier whose messages go to `tx` (tests).
    pub fn channel() -> (Notifier, mpsc::UnboundedReceiver<Value>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
        let (vtx, vrx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(o) = rx.recv().await {
                match o {
                    Out::Message(b) => {
                        let _ = vtx.send(serde_json::from_slice(&b).unwrap_or(Value::Null));
                    }
                    Out::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        (Notifier { tx }, vrx)
    }
}

/// One request's progress, as `message` / `progress` notifications.
pub struct CliProgress {
    id: Value,
    tx: mpsc::UnboundedSender<Out>,
}

impl CliProgress {
    fn send(&self, method: &str, params: Value) {
        let n = json!({"jsonrpc": "2.0", "method": method, "params": params});
        // A closed layer means lightningd went away: nobody to tell.
        let _ = self.tx.send(Out::Message(n.to_string().into_bytes()));
    }

    /// Waits until every notification sent so far has been written: done before the command
    /// answers, as lightningd drops a notification whose request has ended.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Out::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

impl Progress for CliProgress {
    fn message(&self, text: &str) {
        self.send(
            "message",
            json!({"id": self.id, "level": "info", "message": text}),
        );
    }

    fn progress(&self, num: u32, total: u32) {
        // lightning-cli divides by `total - 1`: a bar of one step is no bar.
        if total >= 2 {
            self.send(
                "progress",
                json!({"id": self.id, "num": num.min(total - 1), "total": total}),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_params_come_back_as_sent() {
        for (id, params) in [
            (
                json!("cli:rebalance#1/cln:rebalance#7"),
                json!(["1x1x1", "2x2x2"]),
            ),
            (json!(12), json!({"outgoing": "1x1x1"})),
            (json!("x"), Value::Null),
        ] {
            let (got_id, got) = unwrap(wrap(&id, params.clone()));
            assert_eq!((got_id, got), (Some(id), params));
        }
        // Params nobody wrapped pass as they are, even an object with that key among others.
        let odd = json!({REQUEST_KEY: 1, "params": 2, "other": 3});
        assert_eq!(unwrap(odd.clone()), (None, odd));
        assert_eq!(unwrap(json!(["a"])), (None, json!(["a"])));
    }

    #[tokio::test]
    async fn notifications_carry_the_request_id_as_given() {
        let (n, mut rx) = Notifier::channel();
        let p = n.for_request(json!("cli:rebalance#3/cln:rebalance#9"));
        p.message("attempt 1");
        p.progress(5, 60);
        p.progress(70, 60);
        p.progress(0, 1); // no bar of one step
        p.flush().await;
        let m = rx.recv().await.unwrap();
        assert_eq!(m["method"], "message");
        assert_eq!(m["params"]["id"], "cli:rebalance#3/cln:rebalance#9");
        assert_eq!(m["params"]["level"], "info");
        assert_eq!(m["params"]["message"], "attempt 1");
        let b = rx.recv().await.unwrap();
        assert_eq!(
            (b["params"]["num"].clone(), b["params"]["total"].clone()),
            (json!(5), json!(60))
        );
        let end = rx.recv().await.unwrap();
        assert_eq!(end["params"]["num"], 59, "num stays below total");
        assert!(rx.try_recv().is_err());
    }
}

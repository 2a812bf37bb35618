//! A thin layer on the plugin's stdin/stdout in front of cln-plugin, for what cln-plugin 0.7
//! cannot do: it answers lightningd's `check` itself (and adds `"cancheck": true` to the
//! manifest), and it hands the commands that report progress their request id, which
//! lightningd needs on the `message` and `progress` notifications it forwards to the client.
//! Every other message passes through unchanged.

pub mod check; // answering `check` as the command would
pub mod notify; // request ids in, `message` / `progress` notifications out

use check::{Checker, answer_check};
use notify::{Notifier, wrap};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::Mutex;

/// Splits complete JSON messages off the front of `buf`; leaves an incomplete tail.
fn take_messages(buf: &mut Vec<u8>) -> Vec<Box<RawValue>> {
    let mut out = Vec::new();
    let mut consumed = 0;
    {
        let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<Box<RawValue>>();
        loop {
            match it.next() {
                Some(Ok(v)) => {
                    out.push(v);
                    consumed = it.byte_offset();
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(_)) => {
                    // Not JSON: drop what cannot be read, as cln-plugin would fail on it anyway.
                    consumed = buf.len();
                    break;
                }
                None => {
                    consumed = buf.len();
                    break;
                }
            }
        }
    }
    buf.drain(..consumed);
    out
}

async fn write_message<W: AsyncWrite + Unpin>(out: &Mutex<W>, bytes: &[u8]) -> std::io::Result<()> {
    let mut w = out.lock().await;
    w.write_all(bytes).await?;
    w.write_all(b"\n\n").await?;
    w.flush().await
}

/// Lets the process wait, before it exits, until what cln-plugin wrote has reached lightningd
/// (the layer copies it in a task of its own).
#[derive(Clone, Default)]
pub struct Drain {
    /// Bytes cln-plugin wrote into the layer, and bytes the layer passed on.
    written: Arc<std::sync::atomic::AtomicU64>,
    passed: Arc<std::sync::atomic::AtomicU64>,
}

impl Drain {
    /// Waits (at most a second) until everything written so far has been passed on.
    pub async fn wait(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            if self.passed.load(SeqCst) >= self.written.load(SeqCst) {
                return;
            }
        }
    }
}

/// Counts the bytes cln-plugin writes, for [`Drain`].
pub struct Counted {
    inner: DuplexStream,
    written: Arc<std::sync::atomic::AtomicU64>,
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &r {
            self.written
                .fetch_add(*n as u64, std::sync::atomic::Ordering::SeqCst);
        }
        r
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What the layer does besides passing messages through: how to answer `check`, and which
/// commands report progress (their params reach cln-plugin wrapped with their request id).
#[derive(Clone, Copy)]
pub struct Front {
    pub checker: Checker,
    pub reports_progress: fn(&str) -> bool,
}

/// A request from lightningd as the layer passes it to cln-plugin: `check` answered here (None),
/// a command that reports progress with its params wrapped, anything else as it came.
fn incoming(raw: &RawValue, front: Front) -> Result<Option<String>, String> {
    let text = raw.get();
    // Only requests are looked into; a quick test spares parsing every message twice.
    if !text.contains("\"method\"") {
        return Ok(Some(text.to_string()));
    }
    let Ok(mut v) = serde_json::from_str::<Value>(text) else {
        return Ok(Some(text.to_string()));
    };
    let method = v.get("method").and_then(Value::as_str).unwrap_or_default();
    if method == "check" {
        return Err(answer_check(&v, front.checker).to_string());
    }
    if v.get("id").is_some() && (front.reports_progress)(method) {
        let params = v["params"].take();
        v["params"] = wrap(&v["id"], params);
        return Ok(Some(v.to_string()));
    }
    Ok(Some(text.to_string()))
}

/// Puts the layer between lightningd (`input`, `output`) and cln-plugin: returns the streams
/// to hand to cln-plugin's `Builder::new`, a [`Drain`] to wait on before exiting, and the
/// [`Notifier`] the commands that report progress speak through.
pub fn wire<R, W>(input: R, output: W, front: Front) -> (DuplexStream, Counted, Drain, Notifier)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (mut to_plugin, plugin_in) = tokio::io::duplex(1 << 20);
    let (plugin_out, mut from_plugin) = tokio::io::duplex(1 << 20);
    let drain = Drain::default();
    let plugin_out = Counted {
        inner: plugin_out,
        written: drain.written.clone(),
    };
    let passed = drain.passed.clone();
    let output = Arc::new(Mutex::new(output));
    let out = output.clone();
    tokio::spawn(async move {
        let mut input = input;
        let mut buf = Vec::with_capacity(1 << 16);
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            let n = match input.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            for raw in take_messages(&mut buf) {
                let sent = match incoming(&raw, front) {
                    Err(answer) => write_message(&out, answer.as_bytes()).await,
                    Ok(Some(message)) => {
                        async {
                            to_plugin.write_all(message.as_bytes()).await?;
                            to_plugin.write_all(b"\n\n").await
                        }
                        .await
                    }
                    Ok(None) => Ok(()),
                };
                if sent.is_err() {
                    return;
                }
            }
        }
        // lightningd went away: cln-plugin sees its input close.
        drop(to_plugin);
    });
    // Notifications: written whole, between cln-plugin's messages.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let notes = output.clone();
    tokio::spawn(async move {
        while let Some(o) = rx.recv().await {
            match o {
                notify::Out::Message(bytes) => {
                    if write_message(&notes, &bytes).await.is_err() {
                        return;
                    }
                }
                notify::Out::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut buf = Vec::with_capacity(1 << 16);
        let mut chunk = vec![0u8; 1 << 16];
        let mut manifest_seen = false;
        loop {
            let n = match from_plugin.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            let before = buf.len();
            let messages = take_messages(&mut buf);
            let taken = (before - buf.len()) as u64;
            for raw in messages {
                let mut bytes = raw.get().as_bytes().to_vec();
                if !manifest_seen
                    && let Ok(mut v) = serde_json::from_slice::<Value>(&bytes)
                    && v["result"].get("rpcmethods").is_some()
                {
                    manifest_seen = true;
                    v["result"]["cancheck"] = json!(true);
                    bytes = v.to_string().into_bytes();
                }
                if write_message(&output, &bytes).await.is_err() {
                    return;
                }
            }
            // Whitespace between messages counts as passed on once it is consumed.
            let pending = buf
                .iter()
                .all(u8::is_ascii_whitespace)
                .then_some(buf.len() as u64);
            passed.fetch_add(
                taken + pending.unwrap_or(0),
                std::sync::atomic::Ordering::SeqCst,
            );
            if pending.is_some() {
                buf.clear();
            }
        }
    });
    (plugin_in, plugin_out, drain, Notifier { tx })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RpcFailure;

    fn checker(name: &str, params: &Value) -> Result<(), RpcFailure> {
        match name {
            "rebalance" => crate::params::rebalance(params).map(|_| ()),
            _ => Err(RpcFailure::param(
                "command_to_check",
                format!("unknown command {name}"),
            )),
        }
    }

    const FRONT: Front = Front {
        checker,
        reports_progress: |m| m == "rebalance",
    };

    #[test]
    fn messages_are_split_whole() {
        let mut buf = b"{\"a\":1}\n\n{\"b\":\"}\"}\n\n{\"c\":".to_vec();
        let m = take_messages(&mut buf);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].get(), "{\"b\":\"}\"}");
        assert_eq!(String::from_utf8_lossy(&buf).trim_start(), "{\"c\":");
        buf.extend_from_slice(b"[1]}\n\n");
        assert_eq!(take_messages(&mut buf)[0].get(), "{\"c\":[1]}");
        assert!(buf.iter().all(|b| b.is_ascii_whitespace()));
    }

    #[tokio::test]
    async fn passes_everything_else_and_marks_the_manifest() {
        let (mut ld_in, input) = tokio::io::duplex(4096);
        let (output, mut ld_out) = tokio::io::duplex(4096);
        let (mut plugin_in, mut plugin_out, drain, _) = wire(input, output, FRONT);
        ld_in
            .write_all(
                b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"getmanifest\",\"params\":{}}\n\n",
            )
            .await
            .unwrap();
        ld_in
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":\"c\",\"method\":\"check\",\"params\":[\"rebalance\"]}\n\n")
            .await
            .unwrap();
        let mut got = vec![0u8; 4096];
        let n = plugin_in.read(&mut got).await.unwrap();
        assert!(String::from_utf8_lossy(&got[..n]).contains("getmanifest"));
        plugin_out
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"rpcmethods\":[]}}\n\n")
            .await
            .unwrap();
        let mut text = String::new();
        while !(text.contains("cancheck") && text.contains("outgoing: missing")) {
            let n = ld_out.read(&mut got).await.unwrap();
            text.push_str(&String::from_utf8_lossy(&got[..n]));
        }
        assert!(text.contains("\"cancheck\":true"), "{text}");
        drain.wait().await;
    }

    #[tokio::test]
    async fn a_command_that_reports_progress_gets_its_id_and_its_notes_reach_lightningd() {
        let (mut ld_in, input) = tokio::io::duplex(4096);
        let (output, mut ld_out) = tokio::io::duplex(4096);
        let (mut plugin_in, _plugin_out, _drain, notifier) = wire(input, output, FRONT);
        ld_in
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":\"cli:rebalance#5/cln:rebalance#2\",\"method\":\"rebalance\",\"params\":[\"1x1x1\",\"2x2x2\"]}\n\n{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"balances\",\"params\":{}}\n\n")
            .await
            .unwrap();
        let mut got = vec![0u8; 4096];
        let mut text = String::new();
        while !text.contains("balances") {
            let n = plugin_in.read(&mut got).await.unwrap();
            text.push_str(&String::from_utf8_lossy(&got[..n]));
        }
        let mut buf = text.into_bytes();
        let msgs = take_messages(&mut buf);
        let rebalance: Value = serde_json::from_str(msgs[0].get()).unwrap();
        let (id, params) = notify::unwrap(rebalance["params"].clone());
        assert_eq!(id, Some(json!("cli:rebalance#5/cln:rebalance#2")));
        assert_eq!(params, json!(["1x1x1", "2x2x2"]));
        let balances: Value = serde_json::from_str(msgs[1].get()).unwrap();
        assert_eq!(balances["params"], json!({}), "others pass as they came");
        let p = notifier.for_request(id.unwrap());
        crate::progress::Progress::message(&p, "attempt 1");
        p.flush().await;
        let n = ld_out.read(&mut got).await.unwrap();
        let note: Value =
            serde_json::from_slice(String::from_utf8_lossy(&got[..n]).trim().as_bytes()).unwrap();
        assert_eq!(note["method"], "message");
        assert_eq!(note["params"]["id"], "cli:rebalance#5/cln:rebalance#2");
    }
}

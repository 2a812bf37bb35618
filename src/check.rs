//! lightningd's `check` for our commands, which cln-plugin 0.7 cannot answer: a thin layer on
//! the plugin's stdin/stdout. It adds `"cancheck": true` to the getmanifest answer and answers
//! `check` requests itself (validating the params exactly as the command would, nothing run),
//! passing every other message through unchanged. Without it lightningd logs UNUSUAL
//! "Plugin does not support check command" on every `lightning-cli check` (and pyln-testing
//! checks every call it makes).

use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::Mutex;

/// Validates the params of `command` (`Ok` if the command would accept them).
pub type Checker = fn(&str, &Value) -> Result<(), crate::error::RpcFailure>;

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

/// The params of a `check` request without the command's name: `(name, params)`.
fn split_check(params: &Value) -> Option<(String, Value)> {
    match params {
        Value::Object(m) => {
            let name = m.get("command_to_check")?.as_str()?.to_string();
            let mut rest = m.clone();
            rest.remove("command_to_check");
            Some((name, Value::Object(rest)))
        }
        Value::Array(a) => {
            let name = a.first()?.as_str()?.to_string();
            Some((name, Value::Array(a[1..].to_vec())))
        }
        _ => None,
    }
}

/// The answer to one `check` request.
pub fn answer_check(request: &Value, checker: Checker) -> Value {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let Some((name, params)) = request.get("params").and_then(split_check) else {
        return json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602,
            "message": "command_to_check: missing"}});
    };
    match checker(&name, &params) {
        Ok(()) => json!({"jsonrpc": "2.0", "id": id, "result": {"command_to_check": name}}),
        Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": e.to_json()}),
    }
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

/// Puts the layer between lightningd (`input`, `output`) and cln-plugin: returns the streams
/// to hand to cln-plugin's `Builder::new`, and a [`Drain`] to wait on before exiting.
pub fn wire<R, W>(input: R, output: W, checker: Checker) -> (DuplexStream, Counted, Drain)
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
                let is_check = serde_json::from_str::<Value>(raw.get())
                    .ok()
                    .filter(|v| v.get("method").and_then(Value::as_str) == Some("check"));
                let sent = match is_check {
                    Some(req) => {
                        let answer = answer_check(&req, checker).to_string();
                        write_message(&out, answer.as_bytes()).await
                    }
                    None => {
                        async {
                            to_plugin.write_all(raw.get().as_bytes()).await?;
                            to_plugin.write_all(b"\n\n").await
                        }
                        .await
                    }
                };
                if sent.is_err() {
                    return;
                }
            }
        }
        // lightningd went away: cln-plugin sees its input close.
        drop(to_plugin);
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
    (plugin_in, plugin_out, drain)
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

    #[test]
    fn check_answers_like_the_command_would() {
        let ok = answer_check(
            &json!({"id": "x", "method": "check", "params": {"command_to_check": "rebalance",
                "outgoing": "1x1x1", "incoming": "2x2x2"}}),
            checker,
        );
        assert_eq!(ok["result"]["command_to_check"], "rebalance");
        let bad = answer_check(
            &json!({"id": 7, "method": "check", "params": ["rebalance", "1x1x1", "2x2x2", "lots"]}),
            checker,
        );
        assert_eq!(bad["id"], 7);
        assert_eq!(bad["error"]["code"], -32602);
        assert!(
            bad["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("amount_msat:")
        );
        let none = answer_check(&json!({"id": 1, "method": "check", "params": {}}), checker);
        assert_eq!(none["error"]["code"], -32602);
    }

    #[tokio::test]
    async fn passes_everything_else_and_marks_the_manifest() {
        let (mut ld_in, input) = tokio::io::duplex(4096);
        let (output, mut ld_out) = tokio::io::duplex(4096);
        let (mut plugin_in, mut plugin_out, drain) = wire(input, output, checker);
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
}

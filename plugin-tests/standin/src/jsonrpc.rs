//! JSON-RPC framing as lightningd speaks it, on the plugin's pipes and on the unix socket: a
//! stream of JSON objects (parsed by structure, not by separator), each written compact and
//! followed by a blank line (`\n\n`), which pyln-client relies on to split responses.

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Reads consecutive JSON values from a byte stream.
pub struct JsonReader<R> {
    inner: R,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> JsonReader<R> {
    pub fn new(inner: R) -> Self {
        JsonReader {
            inner,
            buf: Vec::new(),
        }
    }

    /// The next value; `Ok(None)` at a clean end of stream, `Err` on malformed JSON or I/O.
    pub async fn next(&mut self) -> std::io::Result<Option<Value>> {
        loop {
            let start = self
                .buf
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(self.buf.len());
            self.buf.drain(..start);
            if !self.buf.is_empty() {
                let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
                match it.next() {
                    Some(Ok(v)) => {
                        let used = it.byte_offset();
                        self.buf.drain(..used);
                        return Ok(Some(v));
                    }
                    Some(Err(e)) if e.is_eof() => {}
                    Some(Err(e)) => {
                        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
                    }
                    None => {}
                }
            }
            let mut chunk = [0u8; 65536];
            let n = self.inner.read(&mut chunk).await?;
            if n == 0 {
                return if self.buf.iter().all(|b| b.is_ascii_whitespace()) {
                    Ok(None)
                } else {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "stream ended inside a JSON value",
                    ))
                };
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A message as written on the wire: compact JSON, then `\n\n`.
pub fn frame(v: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec(v).expect("serializable");
    out.extend_from_slice(b"\n\n");
    out
}

pub fn response(id: &Value, result: Result<Value, crate::simnet::RpcError>) -> Value {
    match result {
        Ok(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
        Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": e.to_json()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_concatenated_and_split_values() {
        let data: &[u8] = b"{\"a\":1}\n\n{\"b\":\n[1,2]}  {\"c\":\"x\\n\\ny\"}\n\n";
        let mut r = JsonReader::new(data);
        assert_eq!(r.next().await.unwrap(), Some(json!({"a": 1})));
        assert_eq!(r.next().await.unwrap(), Some(json!({"b": [1, 2]})));
        assert_eq!(r.next().await.unwrap(), Some(json!({"c": "x\n\ny"})));
        assert_eq!(r.next().await.unwrap(), None);
        let mut r = JsonReader::new(&b"{\"a\":"[..]);
        assert!(r.next().await.is_err());
        assert!(!String::from_utf8(frame(&json!({"c": "x\n\ny"}))).unwrap()[..12].contains("\n\n"));
    }
}

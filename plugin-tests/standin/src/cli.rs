//! A small `lightning-cli`: a blocking client for the RPC socket (one connection per call, as
//! pyln-client does) and lightningd-cli's two renderings (cli/lightning-cli.c): JSON indented
//! by three spaces, and `-H` human mode.

use crate::simnet::RpcError;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub struct RpcClient {
    pub path: PathBuf,
    next_id: u64,
}

impl RpcClient {
    pub fn new(path: &Path) -> RpcClient {
        RpcClient {
            path: path.to_path_buf(),
            next_id: 1,
        }
    }

    /// Calls `method`; the error is the JSON-RPC error object.
    pub fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Result<Value, RpcError>> {
        let mut s = std::os::unix::net::UnixStream::connect(&self.path)?;
        let id = format!("lightning-cli-{}", self.next_id);
        self.next_id += 1;
        let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        s.write_all(&crate::jsonrpc::frame(&req))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        loop {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                anyhow::bail!("connection closed before the answer to {method}");
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(pos) = buf.windows(2).position(|w| w == b"\n\n") {
                let v: Value = serde_json::from_slice(&buf[..pos])?;
                if v.get("method").is_some() {
                    buf.drain(..pos + 2);
                    continue;
                }
                return Ok(match v.get("error") {
                    Some(e) => Err(RpcError {
                        code: e["code"].as_i64().unwrap_or(0),
                        message: e["message"].as_str().unwrap_or("").to_string(),
                        data: e.get("data").cloned(),
                    }),
                    None => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
                });
            }
        }
    }
}

/// lightning-cli's default output: JSON, three-space indent, `": "` separators.
pub fn render_json(v: &Value) -> String {
    let mut out = String::new();
    json_into(v, "", &mut out);
    out
}

fn json_into(v: &Value, indent: &str, out: &mut String) {
    let next = format!("{indent}   ");
    match v {
        Value::Array(a) if !a.is_empty() => {
            for (i, x) in a.iter().enumerate() {
                out.push_str(if i == 0 { "[\n" } else { ",\n" });
                out.push_str(&next);
                json_into(x, &next, out);
            }
            out.push('\n');
            out.push_str(indent);
            out.push(']');
        }
        Value::Object(o) if !o.is_empty() => {
            for (i, (k, x)) in o.iter().enumerate() {
                out.push_str(if i == 0 { "{\n" } else { ",\n" });
                out.push_str(&next);
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                json_into(x, &next, out);
            }
            out.push('\n');
            out.push_str(indent);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// lightning-cli `-H`: scalars bare, each array element and each object member on its own
/// line as `key=value`, single-member objects elided to their value; `format-hint` dropped.
pub fn render_human(v: &Value) -> String {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("format-hint");
    }
    let mut out = String::new();
    human_into(&v, '\n', &mut out);
    out
}

fn human_into(v: &Value, term: char, out: &mut String) {
    match v {
        Value::Array(a) => {
            for x in a {
                human_into(x, '\n', out);
            }
        }
        Value::Object(o) if o.len() == 1 => {
            let (_, x) = o.iter().next().expect("one member");
            human_into(x, '\n', out);
        }
        Value::Object(o) => {
            for (k, x) in o {
                out.push_str(k);
                out.push('=');
                human_into(x, '\n', out);
            }
        }
        Value::String(s) => {
            out.push_str(s);
            out.push(term);
        }
        other => {
            out.push_str(&other.to_string());
            out.push(term);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_lightning_cli() {
        let v = json!({"a": 1, "b": [true, {"c": "x"}], "d": {}});
        assert_eq!(
            render_json(&v),
            "{\n   \"a\": 1,\n   \"b\": [\n      true,\n      {\n         \"c\": \"x\"\n      }\n   ],\n   \"d\": {}\n}"
        );
        let v = json!({"channels": [{"alias": "alice", "bar": "[##--]"}], "format-hint": "simple"});
        assert_eq!(render_human(&v), "alias=alice\nbar=[##--]\n");
    }
}

//! A small `lightning-cli`: a blocking client for the RPC socket (one connection per call, as
//! pyln-client does) and lightningd-cli's renderings (cli/lightning-cli.c of v26.06): JSON
//! indented by three spaces, `-H` human mode, and the notifications it prints while a command
//! runs (`-N info` by default: `# message` lines and a 60-column progress bar).

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

    /// Calls `method`; the error is the JSON-RPC error object. Notifications are not asked
    /// for (lightning-cli `-N none`).
    pub fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Result<Value, RpcError>> {
        self.call_notified(method, params, None)
    }

    /// Calls `method` as lightning-cli does: with `on_notification`, first enables
    /// notifications on the connection (`notifications {"enable": true}`, answered before the
    /// call is sent), then hands it every notification that arrives before the answer.
    pub fn call_notified(
        &mut self,
        method: &str,
        params: Value,
        mut on_notification: Option<&mut dyn FnMut(&Value)>,
    ) -> anyhow::Result<Result<Value, RpcError>> {
        let s = std::os::unix::net::UnixStream::connect(&self.path)?;
        let mut reader = FrameReader {
            stream: s.try_clone()?,
            buf: Vec::new(),
        };
        let mut s = s;
        let n = self.next_id;
        self.next_id += 1;
        if on_notification.is_some() {
            let enable = json!({"jsonrpc": "2.0", "method": "notifications",
                                "id": format!("cli:notifications#{n}"),
                                "params": {"enable": true}});
            s.write_all(&crate::jsonrpc::frame(&enable))?;
            reader.next(method)?;
        }
        let id = format!("cli:{method}#{n}");
        let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        s.write_all(&crate::jsonrpc::frame(&req))?;
        loop {
            let v = reader.next(method)?;
            // handle_notify: an object with no id, a method and params.
            if v.get("id").is_none() && v.get("method").is_some() && v.get("params").is_some() {
                if let Some(f) = on_notification.as_mut() {
                    f(&v);
                }
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

/// Reads `\n\n`-terminated JSON objects from the socket.
struct FrameReader {
    stream: std::os::unix::net::UnixStream,
    buf: Vec<u8>,
}

impl FrameReader {
    fn next(&mut self, method: &str) -> anyhow::Result<Value> {
        let mut chunk = [0u8; 65536];
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let v: Value = serde_json::from_slice(&self.buf[..pos])?;
                self.buf.drain(..pos + 2);
                return Ok(v);
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                anyhow::bail!("connection closed before the answer to {method}");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// lightning-cli's `-N`/`--notifications` levels (common/status_levels.c): the notifications
/// at or above a level are printed.
const LEVELS: &[(&str, u8)] = &[
    ("io", 1),
    ("trace", 2),
    ("debug", 3),
    ("info", 4),
    ("unusual", 5),
    ("broken", 6),
    ("warn", 5),
    ("error", 6),
];

fn log_level(name: &str) -> Option<u8> {
    let name = name.to_ascii_lowercase();
    LEVELS.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}

/// What lightning-cli prints for the notifications of one call (`handle_notify`).
#[derive(Debug, Clone)]
pub struct NotificationPrinter {
    /// `None`: `-N none`, nothing printed.
    level: Option<u8>,
    last_was_progress: bool,
}

impl NotificationPrinter {
    /// `-N LEVEL`: `none`, `io`, `trace`, `debug`, `info` (lightning-cli's default),
    /// `unusual`, `broken` (or `warn`, `error`). `None` for an unknown level.
    pub fn new(level: &str) -> Option<NotificationPrinter> {
        let level = match level {
            "none" => None,
            l => Some(log_level(l)?),
        };
        Some(NotificationPrinter {
            level,
            last_was_progress: false,
        })
    }

    /// The text lightning-cli writes for `notification` (maybe nothing).
    pub fn render(&mut self, notification: &Value) -> String {
        let Some(min) = self.level else {
            return String::new();
        };
        let params = &notification["params"];
        let mut out = String::new();
        match notification["method"].as_str() {
            Some("message") => {
                let level = params["level"].as_str().and_then(log_level);
                if level.is_none_or(|l| l < min) {
                    return out;
                }
                if self.last_was_progress {
                    out.push('\n');
                }
                self.last_was_progress = false;
                if let Some(m) = params.get("message") {
                    // The token's raw text: a string's escapes are printed as sent.
                    out.push_str(&format!("# {}\n", crate::simnet::params::raw_text(m)));
                }
            }
            Some("progress") => {
                let u32_of = |v: &Value| {
                    crate::simnet::params::number_u64(v).and_then(|n| u32::try_from(n).ok())
                };
                let (Some(n), Some(total)) = (u32_of(&params["num"]), u32_of(&params["total"]))
                else {
                    return out;
                };
                out.push_str("\r# ");
                if let Some(stage) = params.get("stage") {
                    let num = u32_of(&stage["num"]).unwrap_or(0);
                    let stotal = u32_of(&stage["total"]).unwrap_or(0).to_string();
                    out.push_str(&format!(
                        "Stage {:>w$}/{stotal} ",
                        u64::from(num) + 1,
                        w = stotal.len()
                    ));
                }
                let tot = total.to_string();
                out.push_str(&format!("{:>w$}/{tot} ", u64::from(n) + 1, w = tot.len()));
                out.push('|');
                out.push_str(&progress_bar(n, total));
                out.push('|');
                // The bar stays when it is finished.
                if u64::from(n) + 1 == u64::from(total) {
                    out.push('\n');
                    self.last_was_progress = false;
                } else {
                    self.last_was_progress = true;
                }
            }
            _ => {}
        }
        out
    }

    /// What is printed after the last notification, before the result: a newline to end a
    /// progress bar still being drawn.
    pub fn finish(&mut self) -> String {
        if std::mem::take(&mut self.last_was_progress) {
            "\n".into()
        } else {
            String::new()
        }
    }
}

/// lightning-cli's 60-column bar: `60.0 / (total - 1) * num` `=` signs (as C truncates the
/// double), then spaces. With `total` 1 lightning-cli divides by zero; here the bar is full.
pub fn progress_bar(num: u32, total: u32) -> String {
    const WIDTH: usize = 60;
    let filled = if total <= 1 {
        WIDTH
    } else {
        ((WIDTH as f64 / f64::from(total - 1) * f64::from(num)) as usize).min(WIDTH)
    };
    format!("{}{}", "=".repeat(filled), " ".repeat(WIDTH - filled))
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

    fn note(method: &str, params: Value) -> Value {
        json!({"jsonrpc": "2.0", "method": method, "params": params})
    }

    #[test]
    fn messages_at_or_above_the_level() {
        let mut p = NotificationPrinter::new("info").unwrap();
        let m = |level: &str, text: &str| {
            note("message", json!({"id": 1, "level": level, "message": text}))
        };
        assert_eq!(p.render(&m("info", "hello")), "# hello\n");
        assert_eq!(p.render(&m("debug", "quiet")), "");
        assert_eq!(p.render(&m("warn", "loud")), "# loud\n");
        assert_eq!(p.render(&m("nonsense", "x")), "");
        assert_eq!(p.render(&m("info", "a\"b")), "# a\\\"b\n");
        assert_eq!(p.finish(), "");
        let mut none = NotificationPrinter::new("none").unwrap();
        assert_eq!(none.render(&m("broken", "x")), "");
        assert!(NotificationPrinter::new("loud").is_none());
        let mut debug = NotificationPrinter::new("debug").unwrap();
        assert_eq!(debug.render(&m("debug", "quiet")), "# quiet\n");
    }

    #[test]
    fn a_progress_bar_of_60_columns() {
        let mut p = NotificationPrinter::new("info").unwrap();
        let pr =
            |num: u32, total: u32| note("progress", json!({"id": 1, "num": num, "total": total}));
        let first = p.render(&pr(0, 4));
        assert_eq!(first, format!("\r# 1/4 |{}|", " ".repeat(60)));
        assert_eq!(
            p.render(&pr(1, 4)),
            format!("\r# 2/4 |{}{}|", "=".repeat(20), " ".repeat(40))
        );
        // A message interrupts the bar on a new line.
        let msg = note("message", json!({"id": 1, "level": "info", "message": "m"}));
        assert_eq!(p.render(&msg), "\n# m\n");
        assert_eq!(
            p.render(&pr(3, 4)),
            format!("\r# 4/4 |{}|\n", "=".repeat(60))
        );
        assert_eq!(p.finish(), "");
        // Numbers are right-aligned to the total's width; stages come first.
        let staged = note(
            "progress",
            json!({"id": 1, "num": 2, "total": 10,
                                             "stage": {"num": 0, "total": 3}}),
        );
        assert_eq!(
            p.render(&staged),
            format!("\r# Stage 1/3  3/10 |{}{}|", "=".repeat(13), " ".repeat(47))
        );
        assert_eq!(p.finish(), "\n");
        // lightning-cli truncates the double as C does: 60.0 / 11 * 11 is 59.999...
        assert_eq!(progress_bar(11, 12), format!("{} ", "=".repeat(59)));
        assert_eq!(
            progress_bar(11, 23),
            format!("{}{}", "=".repeat(29), " ".repeat(31))
        );
        assert_eq!(progress_bar(0, 1), "=".repeat(60));
    }
}

//! [`ClnNode`]: the [`Lightningd`] trait over lightningd's RPC socket, one connection per call.

use super::api::{Lightningd, Part, part_params, sendpay_route_json};
use super::failures::{NOTIFICATION_WAIT, SendpayFailures};
use super::types::*;
use crate::core::route::Hop;
use cln_rpc::RpcError;
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn rpc_error(message: String) -> RpcError {
    RpcError {
        code: None,
        message,
        data: None,
    }
}

fn take_list<T: serde::de::DeserializeOwned>(
    mut v: Value,
    field: &str,
) -> Result<Vec<T>, RpcError> {
    serde_json::from_value(v[field].take())
        .map_err(|e| rpc_error(format!("unexpected {field} in lightningd's answer: {e}")))
}

/// lightningd over its RPC socket: one connection per call.
#[derive(Debug, Clone)]
pub struct ClnNode {
    pub rpc_path: PathBuf,
    /// What to connect to: `rpc_path`, or the same socket relative to our working directory
    /// when the full path is too long for a unix socket address (108 bytes on Linux; test
    /// and deep data directories exceed it). lightningd starts plugins in its network
    /// directory, where the socket usually is.
    connect_path: PathBuf,
    /// The failure messages of `sendpay_failure` notifications, which the plugin's
    /// subscription records: put back into a bare `waitsendpay` failure.
    pub failures: Arc<SendpayFailures>,
}

/// The longest path a unix socket address holds (`sun_path` less its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// `path`, or a shorter equivalent relative to `cwd` when it is too long to connect to.
fn socket_path(path: &std::path::Path, cwd: Option<&std::path::Path>) -> PathBuf {
    if path.as_os_str().len() <= MAX_SOCKET_PATH {
        return path.to_path_buf();
    }
    match cwd.and_then(|c| path.strip_prefix(c).ok()) {
        Some(rel) if !rel.as_os_str().is_empty() => rel.to_path_buf(),
        _ => path.to_path_buf(),
    }
}

impl ClnNode {
    pub fn new(rpc_path: PathBuf) -> Self {
        let cwd = std::env::current_dir().ok();
        let connect_path = socket_path(&rpc_path, cwd.as_deref());
        ClnNode {
            rpc_path,
            connect_path,
            failures: Arc::default(),
        }
    }

    async fn call<R: serde::de::DeserializeOwned + std::fmt::Debug>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<R, RpcError> {
        let mut rpc = cln_rpc::ClnRpc::new(&self.connect_path)
            .await
            .map_err(|e| {
                rpc_error(format!(
                    "cannot reach lightningd at {}: {e}",
                    self.rpc_path.display()
                ))
            })?;
        rpc.call_raw(method, &params).await
    }

    /// A call whose (large) result we want as raw bytes, decoded by the caller. The result is
    /// cut out of the response in place: the response is never held twice.
    async fn call_bytes(
        &self,
        method: &str,
        params: Value,
        filter: Option<Value>,
    ) -> Result<Vec<u8>, RpcError> {
        let mut stream = tokio::net::UnixStream::connect(&self.connect_path)
            .await
            .map_err(|e| {
                rpc_error(format!(
                    "cannot reach lightningd at {}: {e}",
                    self.rpc_path.display()
                ))
            })?;
        let mut req = json!({"jsonrpc": "2.0", "id": format!("cln-rebalance:{method}"), "method": method, "params": params});
        if let Some(f) = filter {
            req["filter"] = f;
        }
        stream
            .write_all(req.to_string().as_bytes())
            .await
            .map_err(|e| rpc_error(format!("writing to lightningd: {e}")))?;
        let mut buf = Vec::with_capacity(1 << 20);
        let mut scanner = JsonEnd::default();
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| rpc_error(format!("reading from lightningd: {e}")))?;
            if n == 0 {
                return Err(rpc_error("lightningd closed the connection".into()));
            }
            let start = buf.len();
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = scanner.feed(&buf[start..]) {
                buf.truncate(start + end);
                break;
            }
        }
        #[derive(Deserialize)]
        struct Envelope<'a> {
            #[serde(borrow)]
            result: Option<&'a serde_json::value::RawValue>,
            error: Option<RpcError>,
        }
        let range = {
            let env: Envelope = serde_json::from_slice(&buf)
                .map_err(|e| rpc_error(format!("bad answer from lightningd: {e}")))?;
            match (env.result, env.error) {
                (_, Some(err)) => return Err(err),
                (Some(raw), None) => {
                    let start = raw.get().as_ptr() as usize - buf.as_ptr() as usize;
                    start..start + raw.get().len()
                }
                (None, None) => {
                    return Err(rpc_error(
                        "lightningd answered neither result nor error".into(),
                    ));
                }
            }
        };
        let len = range.len();
        buf.copy_within(range, 0);
        buf.truncate(len);
        buf.shrink_to_fit();
        Ok(buf)
    }
}

/// Finds where the first complete top-level JSON object ends in a byte stream fed in pieces.
#[derive(Default)]
struct JsonEnd {
    depth: u32,
    in_string: bool,
    escaped: bool,
    consumed: usize,
    started: bool,
}

impl JsonEnd {
    /// Feeds the next piece; returns the end offset (exclusive, from the stream start) once the
    /// object closes.
    fn feed(&mut self, piece: &[u8]) -> Option<usize> {
        for (i, &b) in piece.iter().enumerate() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    self.started = true;
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.started && self.depth == 0 {
                        let end = self.consumed + i + 1;
                        self.consumed += piece.len();
                        return Some(end);
                    }
                }
                _ => {}
            }
        }
        self.consumed += piece.len();
        None
    }
}

impl Lightningd for ClnNode {
    async fn getinfo(&self) -> Result<Getinfo, RpcError> {
        self.call("getinfo", json!({})).await
    }

    async fn listpeerchannels(&self) -> Result<Vec<PeerChannel>, RpcError> {
        // Straight from the bytes into the lean structs: a node with thousands of channels
        // answers with megabytes, which as a serde_json::Value would take several times that.
        #[derive(Deserialize)]
        struct Channels {
            channels: Vec<PeerChannel>,
        }
        let bytes = self.call_bytes("listpeerchannels", json!({}), None).await?;
        serde_json::from_slice::<Channels>(&bytes)
            .map(|c| c.channels)
            .map_err(|e| rpc_error(format!("unexpected channels in lightningd's answer: {e}")))
    }

    async fn listchannels_json(&self) -> Result<Vec<u8>, RpcError> {
        // Only the fields the graph reads (lightningd's field filtering): ~20% fewer bytes.
        let fields = json!({"source": true, "destination": true, "short_channel_id": true,
            "direction": true, "amount_msat": true, "active": true, "base_fee_millisatoshi": true,
            "fee_per_millionth": true, "delay": true, "htlc_minimum_msat": true,
            "htlc_maximum_msat": true});
        self.call_bytes(
            "listchannels",
            json!({}),
            Some(json!({"channels": [fields]})),
        )
        .await
    }

    async fn listnodes(&self, id: &str) -> Result<Vec<NodeInfo>, RpcError> {
        let v: Value = self.call("listnodes", json!({"id": id})).await?;
        take_list(v, "nodes")
    }

    async fn invoice(
        &self,
        amount_msat: u64,
        label: &str,
        description: &str,
        expiry: u64,
        cltv: u32,
    ) -> Result<Invoice, RpcError> {
        self.call(
            "invoice",
            json!({"amount_msat": amount_msat, "label": label, "description": description,
                   "expiry": expiry, "cltv": cltv}),
        )
        .await
    }

    async fn listinvoices(&self, label: Option<&str>) -> Result<Vec<InvoiceStatus>, RpcError> {
        let params = match label {
            Some(l) => json!({"label": l}),
            None => json!({}),
        };
        let v: Value = self.call("listinvoices", params).await?;
        take_list(v, "invoices")
    }

    async fn delinvoice(&self, label: &str, status: &str) -> Result<(), RpcError> {
        let _: Value = self
            .call("delinvoice", json!({"label": label, "status": status}))
            .await?;
        Ok(())
    }

    async fn sendpay(
        &self,
        route: &[Hop],
        payment_hash: &str,
        payment_secret: &str,
        label: &str,
        part: Option<Part>,
    ) -> Result<(), RpcError> {
        let mut params = json!({"route": sendpay_route_json(route), "payment_hash": payment_hash,
                                "payment_secret": payment_secret, "label": label});
        part_params(&mut params, part, true);
        let _: Value = self.call("sendpay", params).await?;
        Ok(())
    }

    async fn waitsendpay(
        &self,
        payment_hash: &str,
        timeout_secs: u64,
        part: Option<Part>,
    ) -> Result<PaymentComplete, RpcError> {
        let mut params = json!({"payment_hash": payment_hash, "timeout": timeout_secs});
        part_params(&mut params, part, false);
        // The socket call itself must not outlive lightningd's own timeout by much.
        let call = self.call("waitsendpay", params);
        match tokio::time::timeout(Duration::from_secs(timeout_secs + 30), call).await {
            Ok(Err(e)) => Err(self
                .failures
                .fill(e, payment_hash, part, NOTIFICATION_WAIT)
                .await),
            Ok(r) => r,
            Err(_) => Err(RpcError {
                code: Some(200),
                message: "Timed out while waiting (no answer from lightningd)".into(),
                data: None,
            }),
        }
    }

    async fn listsendpays(&self, payment_hash: &str) -> Result<Vec<SendpayStatus>, RpcError> {
        let v: Value = self
            .call("listsendpays", json!({"payment_hash": payment_hash}))
            .await?;
        take_list(v, "payments")
    }

    async fn datastore(&self, key: &[&str], hex: &str, mode: &str) -> Result<(), RpcError> {
        let _: Value = self
            .call("datastore", json!({"key": key, "hex": hex, "mode": mode}))
            .await?;
        Ok(())
    }

    async fn datastore_string(
        &self,
        key: &[&str],
        string: &str,
        mode: &str,
    ) -> Result<(), RpcError> {
        let _: Value = self
            .call(
                "datastore",
                json!({"key": key, "string": string, "mode": mode}),
            )
            .await?;
        Ok(())
    }

    async fn listdatastore(&self, key: &[&str]) -> Result<Vec<DatastoreEntry>, RpcError> {
        let v: Value = self.call("listdatastore", json!({"key": key})).await?;
        take_list(v, "datastore")
    }

    async fn listforwards_settled(&self) -> Result<Vec<Forward>, RpcError> {
        #[derive(Deserialize)]
        struct Forwards {
            forwards: Vec<Forward>,
        }
        let bytes = self
            .call_bytes("listforwards", json!({"status": "settled"}), None)
            .await?;
        serde_json::from_slice::<Forwards>(&bytes)
            .map(|f| f.forwards)
            .map_err(|e| rpc_error(format!("unexpected forwards in lightningd's answer: {e}")))
    }

    async fn deldatastore(&self, key: &[&str]) -> Result<(), RpcError> {
        let _: Value = self.call("deldatastore", json!({"key": key})).await?;
        Ok(())
    }

    async fn askrene_listlayers(&self, layer: &str) -> Result<Vec<AskreneConstraint>, RpcError> {
        let mut v: Value = self
            .call("askrene-listlayers", json!({"layer": layer}))
            .await?;
        match v["layers"].get_mut(0) {
            Some(l) => take_list(l.take(), "constraints"),
            None => Ok(Vec::new()),
        }
    }

    async fn askrene_create_layer(&self, layer: &str, persistent: bool) -> Result<(), RpcError> {
        let _: Value = self
            .call(
                "askrene-create-layer",
                json!({"layer": layer, "persistent": persistent}),
            )
            .await?;
        Ok(())
    }

    async fn askrene_inform_channel(
        &self,
        layer: &str,
        short_channel_id_dir: &str,
        amount_msat: u64,
        inform: AskreneInform,
    ) -> Result<(), RpcError> {
        let _: Value = self
            .call(
                "askrene-inform-channel",
                json!({"layer": layer, "short_channel_id_dir": short_channel_id_dir,
                       "amount_msat": amount_msat, "inform": inform.name()}),
            )
            .await?;
        Ok(())
    }

    async fn askrene_age(&self, layer: &str, cutoff: u64) -> Result<u64, RpcError> {
        let v: Value = self
            .call("askrene-age", json!({"layer": layer, "cutoff": cutoff}))
            .await?;
        Ok(v["num_removed"].as_u64().unwrap_or(0))
    }

    async fn addgossip(&self, message_hex: &str) -> Result<(), RpcError> {
        let _: Value = self
            .call("addgossip", json!({"message": message_hex}))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_socket_paths_are_made_relative() {
        use std::path::Path;
        let short = Path::new("/home/ln/.lightning/bitcoin/lightning-rpc");
        assert_eq!(
            socket_path(short, Some(Path::new("/home/ln/.lightning/bitcoin"))),
            short
        );
        let dir = format!("/tmp/{}/regtest", "d".repeat(120));
        let long = Path::new(&dir).join("lightning-rpc");
        assert_eq!(
            socket_path(&long, Some(Path::new(&dir))),
            Path::new("lightning-rpc")
        );
        assert_eq!(socket_path(&long, Some(Path::new("/elsewhere"))), long);
    }

    #[test]
    fn json_end_handles_strings_and_pieces() {
        let doc = br#"{"a":"}{\"","b":[1,{"c":"]"}]}

"#;
        let mut s = JsonEnd::default();
        assert_eq!(s.feed(&doc[..7]), None);
        assert_eq!(s.feed(&doc[7..]), Some(doc.len() - 2));
    }
}

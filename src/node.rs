//! The RPC surface the plugin needs from lightningd, as one trait, and its cln-rpc implementation.
//!
//! The rebalance algorithm sees lightningd only through [`Lightningd`]. [`ClnNode`] talks to the
//! node's RPC socket; tests and benchmarks implement the trait over an in-memory network.
//! Responses are decoded into lean structs with CLN's field names holding only what the plugin
//! reads, with defaults for optional fields, so a renamed or added field elsewhere in a response
//! does not break the plugin (cln-rpc's typed model also validates every public key, which costs
//! most of the time on a large `listchannels`).

use crate::route::Hop;
use cln_rpc::RpcError;
use serde::Deserialize;
use serde_json::{Value, json};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `getinfo`, the parts we use.
#[derive(Debug, Clone, Deserialize)]
pub struct Getinfo {
    pub id: String,
}

/// A channel's forwarding policy as `listpeerchannels` `updates.{local,remote}` gives it.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct ChannelUpdate {
    #[serde(default)]
    pub fee_base_msat: u64,
    #[serde(default)]
    pub fee_proportional_millionths: u32,
    #[serde(default)]
    pub cltv_expiry_delta: u32,
    #[serde(default)]
    pub htlc_minimum_msat: u64,
    pub htlc_maximum_msat: Option<u64>,
}

/// `updates`: only the peer's side (`remote`) is needed, for the last hop's fee.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChannelUpdates {
    pub remote: Option<ChannelUpdate>,
}

/// One HTLC in `listpeerchannels` `htlcs[]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Htlc {
    /// "in" or "out".
    pub direction: String,
    pub payment_hash: String,
}

/// One entry of `listpeerchannels`.
#[derive(Debug, Clone, Deserialize)]
pub struct PeerChannel {
    pub peer_id: String,
    #[serde(default)]
    pub peer_connected: bool,
    pub state: String,
    pub short_channel_id: Option<String>,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub to_us_msat: u64,
    #[serde(default)]
    pub total_msat: u64,
    #[serde(default)]
    pub spendable_msat: u64,
    #[serde(default)]
    pub receivable_msat: u64,
    pub direction: Option<u8>,
    #[serde(default)]
    pub htlcs: Vec<Htlc>,
    #[serde(default)]
    pub updates: ChannelUpdates,
    pub alias: Option<ChannelAliases>,
}

/// `listpeerchannels` `alias`: the scid aliases each side gave the channel.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChannelAliases {
    /// The alias the peer gave the channel: what it forwards over a private channel by.
    pub remote: Option<String>,
}

/// `listnodes` entry, the parts we use.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeInfo {
    pub nodeid: String,
    pub alias: Option<String>,
}

/// A new invoice.
#[derive(Debug, Clone, Deserialize)]
pub struct Invoice {
    pub payment_hash: String,
    pub payment_secret: String,
}

/// `listinvoices` entry, the parts we use.
#[derive(Debug, Clone, Deserialize)]
pub struct InvoiceStatus {
    pub label: String,
    pub status: String,
    pub payment_hash: String,
}

/// A completed payment (`waitsendpay` success).
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentComplete {
    pub status: String,
    #[serde(default)]
    pub amount_msat: u64,
    #[serde(default)]
    pub amount_sent_msat: u64,
}

/// `listsendpays` entry, the parts we use.
#[derive(Debug, Clone, Deserialize)]
pub struct SendpayStatus {
    pub status: String,
    #[serde(default)]
    pub amount_msat: u64,
    #[serde(default)]
    pub amount_sent_msat: u64,
}

/// What the plugin asks of lightningd. Every call is independent: an implementation may use one
/// connection per call, so a blocking `waitsendpay` never holds up `listpeerchannels`.
pub trait Lightningd: Send + Sync + 'static {
    fn getinfo(&self) -> impl Future<Output = Result<Getinfo, RpcError>> + Send;
    fn listpeerchannels(&self) -> impl Future<Output = Result<Vec<PeerChannel>, RpcError>> + Send;
    /// The raw JSON bytes of the `listchannels` result object (`{"channels":[...]}`), for the
    /// graph's lean decode.
    fn listchannels_json(&self) -> impl Future<Output = Result<Vec<u8>, RpcError>> + Send;
    /// `listnodes id`: the gossip we have of one node (empty if none).
    fn listnodes(&self, id: &str) -> impl Future<Output = Result<Vec<NodeInfo>, RpcError>> + Send;
    fn invoice(
        &self,
        amount_msat: u64,
        label: &str,
        description: &str,
        expiry: u64,
        cltv: u32,
    ) -> impl Future<Output = Result<Invoice, RpcError>> + Send;
    /// `listinvoices`, all of them or the one with `label`.
    fn listinvoices(
        &self,
        label: Option<&str>,
    ) -> impl Future<Output = Result<Vec<InvoiceStatus>, RpcError>> + Send;
    /// `delinvoice label status`: deletes only if the invoice still has `status`.
    fn delinvoice(
        &self,
        label: &str,
        status: &str,
    ) -> impl Future<Output = Result<(), RpcError>> + Send;
    fn sendpay(
        &self,
        route: &[Hop],
        payment_hash: &str,
        payment_secret: &str,
        label: &str,
    ) -> impl Future<Output = Result<(), RpcError>> + Send;
    fn waitsendpay(
        &self,
        payment_hash: &str,
        timeout_secs: u64,
    ) -> impl Future<Output = Result<PaymentComplete, RpcError>> + Send;
    fn listsendpays(
        &self,
        payment_hash: &str,
    ) -> impl Future<Output = Result<Vec<SendpayStatus>, RpcError>> + Send;
}

/// `sendpay` route entries in the form every lightningd accepts.
pub fn sendpay_route_json(route: &[Hop]) -> Value {
    Value::Array(
        route
            .iter()
            .map(|h| {
                json!({
                    "id": h.node_id,
                    "channel": h.short_channel_id.to_string(),
                    "direction": h.direction,
                    "amount_msat": h.amount_msat,
                    "delay": h.delay,
                })
            })
            .collect(),
    )
}

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
}

impl ClnNode {
    pub fn new(rpc_path: PathBuf) -> Self {
        ClnNode { rpc_path }
    }

    async fn call<R: serde::de::DeserializeOwned + std::fmt::Debug>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<R, RpcError> {
        let mut rpc = cln_rpc::ClnRpc::new(&self.rpc_path).await.map_err(|e| {
            rpc_error(format!(
                "cannot reach lightningd at {}: {e}",
                self.rpc_path.display()
            ))
        })?;
        rpc.call_raw(method, &params).await
    }

    /// A call whose (large) result we want as raw bytes, decoded by the caller.
    async fn call_bytes(&self, method: &str, params: Value) -> Result<Vec<u8>, RpcError> {
        let mut stream = tokio::net::UnixStream::connect(&self.rpc_path)
            .await
            .map_err(|e| rpc_error(format!("cannot reach lightningd: {e}")))?;
        let req = json!({"jsonrpc": "2.0", "id": format!("cln-rebalance:{method}"), "method": method, "params": params});
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
        let env: Envelope = serde_json::from_slice(&buf)
            .map_err(|e| rpc_error(format!("bad answer from lightningd: {e}")))?;
        match (env.result, env.error) {
            (_, Some(err)) => Err(err),
            (Some(raw), None) => Ok(raw.get().as_bytes().to_vec()),
            (None, None) => Err(rpc_error(
                "lightningd answered neither result nor error".into(),
            )),
        }
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
        let v: Value = self.call("listpeerchannels", json!({})).await?;
        take_list(v, "channels")
    }

    async fn listchannels_json(&self) -> Result<Vec<u8>, RpcError> {
        self.call_bytes("listchannels", json!({})).await
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
    ) -> Result<(), RpcError> {
        let _: Value = self
            .call(
                "sendpay",
                json!({"route": sendpay_route_json(route), "payment_hash": payment_hash,
                       "payment_secret": payment_secret, "label": label}),
            )
            .await?;
        Ok(())
    }

    async fn waitsendpay(
        &self,
        payment_hash: &str,
        timeout_secs: u64,
    ) -> Result<PaymentComplete, RpcError> {
        // The socket call itself must not outlive lightningd's own timeout by much.
        let call = self.call(
            "waitsendpay",
            json!({"payment_hash": payment_hash, "timeout": timeout_secs}),
        );
        match tokio::time::timeout(Duration::from_secs(timeout_secs + 30), call).await {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_end_handles_strings_and_pieces() {
        let doc = br#"{"a":"}{\"","b":[1,{"c":"]"}]}

"#;
        let mut s = JsonEnd::default();
        assert_eq!(s.feed(&doc[..7]), None);
        assert_eq!(s.feed(&doc[7..]), Some(doc.len() - 2));
    }

    #[test]
    fn peer_channel_tolerates_missing_fields() {
        let c: PeerChannel = serde_json::from_value(json!({
            "peer_id": "02aa", "state": "CHANNELD_AWAITING_LOCKIN", "extra_field": 5
        }))
        .unwrap();
        assert_eq!(c.short_channel_id, None);
        assert_eq!(c.to_us_msat, 0);
        assert!(c.updates.remote.is_none());
    }
}

//! The RPC surface the plugin needs from lightningd, as one trait, and the types it answers with.
//!
//! The rebalance algorithm sees lightningd only through [`Lightningd`]. [`clnrpc::ClnNode`] talks
//! to the node's RPC socket; tests and benchmarks implement the trait over an in-memory network.
//! Responses are decoded into lean structs with CLN's field names holding only what the plugin
//! reads, with defaults for optional fields, so a renamed or added field elsewhere in a response
//! does not break the plugin (cln-rpc's typed model also validates every public key, which costs
//! most of the time on a large `listchannels`).

use crate::core::route::Hop;
use cln_rpc::RpcError;
use serde::Deserialize;
use serde_json::{Value, json};
use std::future::Future;

pub mod clnrpc;
pub mod store;
pub use clnrpc::ClnNode;

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

/// `updates`: the peer's side (`remote`) for the last hop's fee, ours (`local`) for what
/// liquidity moved into a channel can earn.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChannelUpdates {
    /// Our own policy: what we charge to forward out through this channel.
    pub local: Option<ChannelUpdate>,
    pub remote: Option<ChannelUpdate>,
}

/// One HTLC in `listpeerchannels` `htlcs[]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Htlc {
    /// "in" or "out".
    pub direction: String,
    pub payment_hash: String,
    #[serde(default)]
    pub amount_msat: u64,
}

/// One `listforwards` entry, the parts the report reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Forward {
    pub in_channel: String,
    pub out_channel: Option<String>,
    pub status: String,
    #[serde(default)]
    pub in_msat: u64,
    pub out_msat: Option<u64>,
    pub fee_msat: Option<u64>,
    /// Seconds, with a fraction (lightningd prints nine decimals).
    #[serde(default)]
    pub received_time: f64,
    pub resolved_time: Option<f64>,
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
    #[serde(default)]
    pub our_reserve_msat: u64,
    #[serde(default)]
    pub their_reserve_msat: u64,
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
    pub amount_msat: Option<u64>,
    pub paid_at: Option<u64>,
    /// When it was made (`expires_at` minus the expiry we gave), for reconciling.
    pub expires_at: Option<u64>,
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

/// One `listdatastore` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct DatastoreEntry {
    pub key: Vec<String>,
    pub generation: Option<u64>,
    pub hex: Option<String>,
    pub string: Option<String>,
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
    /// `datastore key hex mode`.
    fn datastore(
        &self,
        key: &[&str],
        hex: &str,
        mode: &str,
    ) -> impl Future<Output = Result<(), RpcError>> + Send;
    /// `datastore key string mode`: a text value (settings an operator may read with
    /// `listdatastore`).
    fn datastore_string(
        &self,
        key: &[&str],
        string: &str,
        mode: &str,
    ) -> impl Future<Output = Result<(), RpcError>> + Send;
    /// `listdatastore key`: the entry at `key` and its children.
    fn listdatastore(
        &self,
        key: &[&str],
    ) -> impl Future<Output = Result<Vec<DatastoreEntry>, RpcError>> + Send;
    /// `deldatastore key`.
    fn deldatastore(&self, key: &[&str]) -> impl Future<Output = Result<(), RpcError>> + Send;
    /// `listforwards status=settled`: the forwards that earned us fees.
    fn listforwards_settled(&self) -> impl Future<Output = Result<Vec<Forward>, RpcError>> + Send;
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

#[cfg(test)]
mod tests {
    use super::*;

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

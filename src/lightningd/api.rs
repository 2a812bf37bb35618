//! The RPC surface the plugin needs from lightningd, as one trait.
//!
//! The rebalance algorithm sees lightningd only through [`Lightningd`]. `clnrpc::ClnNode` talks
//! to the node's RPC socket; tests and benchmarks implement the trait over an in-memory network.

use super::types::{
    AskreneConstraint, AskreneInform, DatastoreEntry, Forward, Getinfo, Invoice, InvoiceStatus,
    NodeInfo, PaymentComplete, PeerChannel, SendpayStatus,
};
use crate::core::route::Hop;
use cln_rpc::RpcError;
use serde_json::{Value, json};
use std::future::Future;

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
    /// `sendpay`: the whole payment over `route`, or with `part` one part of it (`partid`,
    /// `groupid`, and the total every part names as `amount_msat`).
    fn sendpay(
        &self,
        route: &[Hop],
        payment_hash: &str,
        payment_secret: &str,
        label: &str,
        part: Option<Part>,
    ) -> impl Future<Output = Result<(), RpcError>> + Send;
    /// `waitsendpay`: for the payment, or with `part` for that part of it.
    fn waitsendpay(
        &self,
        payment_hash: &str,
        timeout_secs: u64,
        part: Option<Part>,
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
    /// `askrene-listlayers layer`: the layer's constraints. A lightningd without askrene
    /// answers "Unknown command" (see `types::is_unknown_command`), a missing layer "Unknown
    /// layer" (`types::is_unknown_layer`).
    fn askrene_listlayers(
        &self,
        layer: &str,
    ) -> impl Future<Output = Result<Vec<AskreneConstraint>, RpcError>> + Send;
    /// `askrene-create-layer layer persistent`: a persistent layer that exists is kept as it is.
    fn askrene_create_layer(
        &self,
        layer: &str,
        persistent: bool,
    ) -> impl Future<Output = Result<(), RpcError>> + Send;
    /// `askrene-inform-channel layer short_channel_id_dir amount_msat inform`.
    fn askrene_inform_channel(
        &self,
        layer: &str,
        short_channel_id_dir: &str,
        amount_msat: u64,
        inform: AskreneInform,
    ) -> impl Future<Output = Result<(), RpcError>> + Send;
    /// `askrene-age layer cutoff`: drops the layer's constraints older than `cutoff` (unix
    /// seconds); returns how many went.
    fn askrene_age(
        &self,
        layer: &str,
        cutoff: u64,
    ) -> impl Future<Output = Result<u64, RpcError>> + Send;
    /// `addgossip message`: hands gossipd a `channel_update` (hex, with its type) that came in
    /// a payment failure, so the node's gossip, and our next read of it, has it at once.
    fn addgossip(&self, message_hex: &str) -> impl Future<Output = Result<(), RpcError>> + Send;
}

/// One part of a payment in several parts (lightningd/pay.c): every part of one try shares the
/// `groupid` and names the whole payment's total; a part that replaces a failed one takes a new
/// `partid`; a new try takes a new `groupid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub partid: u64,
    pub groupid: u64,
    pub total_msat: u64,
}

/// The `sendpay`/`waitsendpay` parameters a part adds.
pub fn part_params(params: &mut Value, part: Option<Part>, with_total: bool) {
    if let Some(p) = part {
        params["partid"] = json!(p.partid);
        params["groupid"] = json!(p.groupid);
        if with_total {
            params["amount_msat"] = json!(p.total_msat);
        }
    }
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

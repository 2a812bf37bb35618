//! lightningd's answers, decoded into lean structs with CLN's field names holding only what the
//! plugin reads (defaults for optional fields, so a renamed or added field elsewhere in a
//! response does not break the plugin; cln-rpc's typed model also validates every public key,
//! which costs most of the time on a large `listchannels`), and the failure details of a payment.

use serde::Deserialize;

/// `getinfo`, the parts we use.
#[derive(Debug, Clone, Deserialize)]
pub struct Getinfo {
    pub id: String,
    /// `v26.06.6` and the like (see `version::parse`).
    #[serde(default)]
    pub version: String,
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
    /// The least HTLC our node accepts over the channel (the peer may offer no less).
    #[serde(default)]
    pub minimum_htlc_in_msat: u64,
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
    /// The try (all its parts share it) and the part within it (0 for a payment sent whole).
    #[serde(default)]
    pub groupid: u64,
    #[serde(default)]
    pub partid: u64,
}

/// One `listdatastore` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct DatastoreEntry {
    pub key: Vec<String>,
    pub generation: Option<u64>,
    pub hex: Option<String>,
    pub string: Option<String>,
}

/// One constraint of an askrene layer (`askrene-listlayers` `constraints[]`, plugins/askrene
/// layer.c `json_add_constraint`): what a payer learned of one channel direction, and when.
/// `maximum_msat`: it could not carry more; `minimum_msat`: it carried at least that.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct AskreneConstraint {
    /// `123x4x5/1`.
    pub short_channel_id_dir: String,
    /// Unix seconds, askrene's clock.
    pub timestamp: u64,
    pub minimum_msat: Option<u64>,
    pub maximum_msat: Option<u64>,
}

/// `askrene-inform-channel`'s `inform`: what one payment attempt saw of a channel direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskreneInform {
    /// It could not carry `amount_msat`: askrene records maximum = amount - 1 msat (plus what
    /// askrene has reserved on it).
    Constrained,
    /// It carried `amount_msat`: askrene records minimum = amount.
    Unconstrained,
}

impl AskreneInform {
    /// The parameter's value.
    pub fn name(self) -> &'static str {
        match self {
            AskreneInform::Constrained => "constrained",
            AskreneInform::Unconstrained => "unconstrained",
        }
    }
}

/// lightningd's answer to a method nobody serves (`JSONRPC2_METHOD_NOT_FOUND`): a lightningd
/// without the askrene plugin answers every `askrene-*` call with it.
pub const METHOD_NOT_FOUND: i32 = -32601;

/// Whether lightningd answered "Unknown command".
pub fn is_unknown_command(e: &cln_rpc::RpcError) -> bool {
    e.code == Some(METHOD_NOT_FOUND)
}

/// Whether askrene answered that the layer named does not exist (-32602 `layer: Unknown
/// layer: ...`, `param_known_layer`).
pub fn is_unknown_layer(e: &cln_rpc::RpcError) -> bool {
    e.code == Some(-32602) && e.message.contains("Unknown layer")
}

/// waitsendpay / sendpay failure details (`error.data`), which cln-rpc has no type for.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PayFailure {
    pub erring_index: Option<u64>,
    pub erring_node: Option<String>,
    pub erring_channel: Option<String>,
    pub erring_direction: Option<u8>,
    pub failcode: Option<u32>,
    pub failcodename: Option<String>,
    /// The decrypted failure message (BOLT 4), hex. lightningd gives it only to a `waitsendpay`
    /// that was waiting when the failure came (it does not store it); the cln-rpc adapter
    /// fills it in from the `sendpay_failure` notification otherwise ([`super::failures`]).
    pub raw_message: Option<String>,
}

impl PayFailure {
    /// The `channel_update` in the failure message (BOLT 4), with its type (258) in front as
    /// `addgossip` takes it (older senders left the type out; CLN's `pay` puts it back the same
    /// way). `None`: no message, a failcode that carries no update, or one that does not parse.
    pub fn channel_update(&self) -> Option<Vec<u8>> {
        let m = super::store::from_hex(self.raw_message.as_deref()?).ok()?;
        let code = u16::from_be_bytes([*m.first()?, *m.get(1)?]);
        // What comes between the failcode and the update's length (BOLT 4).
        let before = match code {
            0x1007 | 0x100e => 0, // temporary_channel_failure, expiry_too_soon
            0x100b | 0x100c => 8, // amount_below_minimum, fee_insufficient: htlc_msat
            0x100d => 4,          // incorrect_cltv_expiry: cltv_expiry
            0x1014 => 2,          // channel_disabled: disabled_flags
            _ => return None,
        };
        let at = 2 + before;
        let len = usize::from(u16::from_be_bytes([*m.get(at)?, *m.get(at + 1)?]));
        let update = m.get(at + 2..at + 2 + len)?;
        let update = match update.strip_prefix(&[1u8, 2][..]) {
            Some(_) => update.to_vec(),
            None => [&[1u8, 2][..], update].concat(),
        };
        // type 2, signature 64, chain_hash 32, short_channel_id 8, timestamp 4,
        // message_flags 1, channel_flags 1, cltv_expiry_delta 2, htlc_minimum_msat 8,
        // fee_base_msat 4, fee_proportional_millionths 4, htlc_maximum_msat 8.
        (update.len() >= UPDATE_LEN).then_some(update)
    }

    /// Whether the failure's `channel_update` says its channel is disabled (`channel_flags`
    /// bit 1): lightningd puts its channel's update in such failures, disabled when the peer
    /// it would forward to is gone (`channel_gossip_update_for_error`). `None` without one.
    pub fn update_disabled(&self) -> Option<bool> {
        let update = self.channel_update()?;
        Some(update[2 + 64 + 32 + 8 + 4 + 1] & 2 != 0)
    }

    /// A `temporary_channel_failure` whose update says the channel is disabled: the peer the
    /// node would forward to is gone, not short of liquidity.
    pub fn peer_gone(&self) -> bool {
        self.failcode == Some(failcode::TEMPORARY_CHANNEL_FAILURE)
            && self.update_disabled() == Some(true)
    }

    /// The channel the failure's `channel_update` is for (its 8-byte short_channel_id), the
    /// direction it sets (`channel_flags` bit 0) and the policy it carries, with
    /// `listpeerchannels`' names. `None` without one.
    pub fn updated_policy(&self) -> Option<(u64, u8, ChannelUpdate)> {
        let u = self.channel_update()?;
        let int = |at: usize, len: usize| {
            u[at..at + len]
                .iter()
                .fold(0u64, |v, &b| (v << 8) | u64::from(b))
        };
        let at = 2 + 64 + 32; // type, signature, chain_hash
        let policy = ChannelUpdate {
            cltv_expiry_delta: int(at + 14, 2) as u32,
            htlc_minimum_msat: int(at + 16, 8),
            fee_base_msat: int(at + 24, 4),
            fee_proportional_millionths: int(at + 28, 4) as u32,
            htlc_maximum_msat: Some(int(at + 32, 8)),
        };
        Some((int(at, 8), u[at + 13] & 1, policy))
    }
}

/// The bytes of a `channel_update` with its type and `htlc_maximum_msat` (BOLT 7).
const UPDATE_LEN: usize = 2 + 64 + 32 + 8 + 4 + 1 + 1 + 2 + 8 + 4 + 4 + 8;

/// What the try that paid our invoice delivered and sent: its parts' `amount_msat` and
/// `amount_sent_msat` summed (one part when it was sent whole). The try is the one with a
/// complete part, or else the one with pending parts: our invoice is paid, so their outgoing
/// HTLCs settle as soon as the outgoing peer can give us the preimage (it may be offline a
/// while). There is at most one: no try starts while another is in flight.
pub fn paying_attempt(sent: &[SendpayStatus]) -> Option<(u64, u64)> {
    let group = sent
        .iter()
        .find(|s| s.status == "complete")
        .or_else(|| sent.iter().find(|s| s.status == "pending"))?
        .groupid;
    let parts = sent
        .iter()
        .filter(|s| s.groupid == group && (s.status == "complete" || s.status == "pending"));
    Some(parts.fold((0u64, 0u64), |(a, b), s| {
        (
            a.saturating_add(s.amount_msat),
            b.saturating_add(s.amount_sent_msat),
        )
    }))
}

/// BOLT 4 failure code flags and the codes the plugin tells apart.
pub mod failcode {
    pub const BADONION: u32 = 0x8000;
    pub const PERM: u32 = 0x4000;
    pub const NODE: u32 = 0x2000;
    pub const UPDATE: u32 = 0x1000;
    pub const TEMPORARY_CHANNEL_FAILURE: u32 = UPDATE | 7;
    pub const CHANNEL_DISABLED: u32 = UPDATE | 20;
    pub const AMOUNT_BELOW_MINIMUM: u32 = UPDATE | 11;
    pub const FEE_INSUFFICIENT: u32 = UPDATE | 12;
    pub const INCORRECT_CLTV_EXPIRY: u32 = UPDATE | 13;
    pub const INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS: u32 = PERM | 15;
    pub const MPP_TIMEOUT: u32 = 23;

    /// What a failure code means, in a person's words (BOLT 4).
    pub fn words(code: u32) -> &'static str {
        match code {
            TEMPORARY_CHANNEL_FAILURE => "a channel had too little liquidity for it",
            CHANNEL_DISABLED => "a channel is disabled",
            0x400a => "the next node is unknown or its channel closed",
            0x2002 | 0x6002 => "a node on the way failed",
            0x4008 => "a channel on the way failed for good",
            AMOUNT_BELOW_MINIMUM => "the amount is below a channel's minimum",
            FEE_INSUFFICIENT => "a node charges more than our gossip said",
            0x100d | 0x100e | 0x0012 => {
                "a delay did not fit (a new block, or a changed cltv delta)"
            }
            0x0015 => "the total delay is too long",
            INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS => "our own node refused it",
            MPP_TIMEOUT => "the other parts did not arrive in time",
            c if c & BADONION != 0 => "a node could not read the onion",
            c if c & NODE != 0 => "a node on the way failed",
            _ => "it failed on the way",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn askrene_constraints_decode_with_either_bound() {
        let v = json!({"layers": [{"layer": "xpay", "persistent": true, "constraints": [
            {"short_channel_id_dir": "103x1x0/1", "timestamp": 1700000000, "maximum_msat": 4999},
            {"short_channel_id_dir": "103x1x0/0", "timestamp": 1700000001, "minimum_msat": 7000}
        ], "biases": []}]});
        let c: Vec<AskreneConstraint> =
            serde_json::from_value(v["layers"][0]["constraints"].clone()).unwrap();
        assert_eq!(c[0].maximum_msat, Some(4999));
        assert_eq!(c[0].minimum_msat, None);
        assert_eq!(c[1].minimum_msat, Some(7000));
        assert_eq!(c[1].short_channel_id_dir, "103x1x0/0");
        let unknown = cln_rpc::RpcError {
            code: Some(-32601),
            message: "Unknown command 'askrene-listlayers'".into(),
            data: None,
        };
        assert!(is_unknown_command(&unknown) && !is_unknown_layer(&unknown));
        let no_layer = cln_rpc::RpcError {
            code: Some(-32602),
            message: "layer: Unknown layer: invalid token '\"xpay\"'".into(),
            data: None,
        };
        assert!(is_unknown_layer(&no_layer) && !is_unknown_command(&no_layer));
    }

    #[test]
    fn a_paid_invoice_costs_what_its_pending_attempt_sent() {
        let s = |status: &str, sent, groupid, partid| SendpayStatus {
            status: status.into(),
            amount_msat: 1000,
            amount_sent_msat: sent,
            groupid,
            partid,
        };
        // The outgoing peer has not settled our HTLC yet: the pending attempt is the one.
        let sent = [s("failed", 1001, 1, 0), s("pending", 1003, 2, 0)];
        assert_eq!(paying_attempt(&sent), Some((1000, 1003)));
        let sent = [s("failed", 1003, 1, 0), s("complete", 1002, 2, 0)];
        assert_eq!(paying_attempt(&sent), Some((1000, 1002)));
        assert!(paying_attempt(&[s("failed", 1001, 1, 0)]).is_none());
        // Paid in parts: every part of the try that paid, not the failed one it replaced.
        let sent = [
            s("complete", 1004, 7, 1),
            s("failed", 1009, 7, 2),
            s("complete", 1003, 7, 3),
            s("failed", 1001, 6, 1),
        ];
        assert_eq!(paying_attempt(&sent), Some((2000, 2007)));
    }

    /// `raw_message` as lightningd v26.06.6 gave it (the real-lightningd suite's
    /// `test_graph_copy_read_while_a_node_was_offline`: l2's channel to a stopped l3).
    const DISABLED_TCF: &str = "1007008a01021dd7167eba8809efb1b50d5022e805161d349f73b861d462e5aea2478cbc362f0b66ad70b050d36b2fd8fa823bed4a01e75dec2cc173a61aa153d9763b54655906226e46111a0b59caaf126043eb5bbf28c34f3a5e332a1fc7b2b73cf188910f00006700000300006b157fb1010200060000000000000000000000010000000a000000003b023380";

    #[test]
    fn the_update_in_a_failure_says_whether_the_channel_is_disabled() {
        let f = |raw: &str| PayFailure {
            raw_message: Some(raw.to_string()),
            ..PayFailure::default()
        };
        assert_eq!(f(DISABLED_TCF).update_disabled(), Some(true));
        // The same update enabled (channel_flags 0x00 instead of 0x02).
        let enabled = DISABLED_TCF.replacen("6b157fb10102", "6b157fb10100", 1);
        assert_eq!(f(&enabled).update_disabled(), Some(false));
        // Without the type prefix (older senders), length 136.
        let untyped = format!("10070088{}", &DISABLED_TCF[12..]);
        assert_eq!(f(&untyped).update_disabled(), Some(true));
        // fee_insufficient: the htlc_msat first.
        let fee = format!("100c{:016x}{}", 5000u64, &DISABLED_TCF[4..]);
        assert_eq!(f(&fee).update_disabled(), Some(true));
        // No update in these, or none that parses.
        assert_eq!(f("2002").update_disabled(), None);
        assert_eq!(f("10070000").update_disabled(), None);
        assert_eq!(f(&DISABLED_TCF[..200]).update_disabled(), None);
        assert_eq!(f("zz").update_disabled(), None);
        assert_eq!(PayFailure::default().update_disabled(), None);
        // What it sets: channel 103x3x0, direction 0, 1 msat + 10 ppm, delay 6.
        let policy = ChannelUpdate {
            fee_base_msat: 1,
            fee_proportional_millionths: 10,
            cltv_expiry_delta: 6,
            htlc_minimum_msat: 0,
            htlc_maximum_msat: Some(990_000_000),
        };
        let scid = (103 << 40) | (3 << 16);
        assert_eq!(f(&fee).updated_policy(), Some((scid, 0, policy)));
        assert_eq!(f(&untyped).updated_policy(), Some((scid, 0, policy)));
        assert_eq!(f("2002").updated_policy(), None);
        // The update as addgossip takes it: with its type, whether the sender put it or not.
        let update = super::super::store::from_hex(&DISABLED_TCF[8..]).unwrap();
        assert_eq!(update.len(), 138);
        assert_eq!(f(DISABLED_TCF).channel_update(), Some(update.clone()));
        assert_eq!(f(&untyped).channel_update(), Some(update.clone()));
        assert_eq!(f(&fee).channel_update(), Some(update));
        assert_eq!(f("2002").channel_update(), None);
    }
}

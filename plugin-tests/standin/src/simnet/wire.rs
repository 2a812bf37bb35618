//! BOLT 4 failure codes (wire/onion_wire.csv) and the names lightningd reports for them.

pub const BADONION: u16 = 0x8000;
pub const PERM: u16 = 0x4000;
pub const NODE: u16 = 0x2000;
pub const UPDATE: u16 = 0x1000;

pub const TEMPORARY_NODE_FAILURE: u16 = NODE | 2;
pub const PERMANENT_NODE_FAILURE: u16 = PERM | NODE | 2;
pub const REQUIRED_NODE_FEATURE_MISSING: u16 = PERM | NODE | 3;
pub const TEMPORARY_CHANNEL_FAILURE: u16 = UPDATE | 7;
pub const PERMANENT_CHANNEL_FAILURE: u16 = PERM | 8;
pub const REQUIRED_CHANNEL_FEATURE_MISSING: u16 = PERM | 9;
pub const UNKNOWN_NEXT_PEER: u16 = PERM | 10;
pub const AMOUNT_BELOW_MINIMUM: u16 = UPDATE | 11;
pub const FEE_INSUFFICIENT: u16 = UPDATE | 12;
pub const INCORRECT_CLTV_EXPIRY: u16 = UPDATE | 13;
pub const EXPIRY_TOO_SOON: u16 = UPDATE | 14;
pub const INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS: u16 = PERM | 15;
pub const FINAL_INCORRECT_CLTV_EXPIRY: u16 = 18;
pub const FINAL_INCORRECT_HTLC_AMOUNT: u16 = 19;
pub const CHANNEL_DISABLED: u16 = UPDATE | 20;
pub const EXPIRY_TOO_FAR: u16 = 21;
pub const INVALID_ONION_PAYLOAD: u16 = PERM | 22;
pub const MPP_TIMEOUT: u16 = 23;

const NAMES: &[(u16, &str)] = &[
    (TEMPORARY_NODE_FAILURE, "WIRE_TEMPORARY_NODE_FAILURE"),
    (PERMANENT_NODE_FAILURE, "WIRE_PERMANENT_NODE_FAILURE"),
    (
        REQUIRED_NODE_FEATURE_MISSING,
        "WIRE_REQUIRED_NODE_FEATURE_MISSING",
    ),
    (TEMPORARY_CHANNEL_FAILURE, "WIRE_TEMPORARY_CHANNEL_FAILURE"),
    (PERMANENT_CHANNEL_FAILURE, "WIRE_PERMANENT_CHANNEL_FAILURE"),
    (
        REQUIRED_CHANNEL_FEATURE_MISSING,
        "WIRE_REQUIRED_CHANNEL_FEATURE_MISSING",
    ),
    (UNKNOWN_NEXT_PEER, "WIRE_UNKNOWN_NEXT_PEER"),
    (AMOUNT_BELOW_MINIMUM, "WIRE_AMOUNT_BELOW_MINIMUM"),
    (FEE_INSUFFICIENT, "WIRE_FEE_INSUFFICIENT"),
    (INCORRECT_CLTV_EXPIRY, "WIRE_INCORRECT_CLTV_EXPIRY"),
    (EXPIRY_TOO_SOON, "WIRE_EXPIRY_TOO_SOON"),
    (
        INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS,
        "WIRE_INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS",
    ),
    (
        FINAL_INCORRECT_CLTV_EXPIRY,
        "WIRE_FINAL_INCORRECT_CLTV_EXPIRY",
    ),
    (
        FINAL_INCORRECT_HTLC_AMOUNT,
        "WIRE_FINAL_INCORRECT_HTLC_AMOUNT",
    ),
    (CHANNEL_DISABLED, "WIRE_CHANNEL_DISABLED"),
    (EXPIRY_TOO_FAR, "WIRE_EXPIRY_TOO_FAR"),
    (INVALID_ONION_PAYLOAD, "WIRE_INVALID_ONION_PAYLOAD"),
    (MPP_TIMEOUT, "WIRE_MPP_TIMEOUT"),
];

/// lightningd's name for a failcode (`onion_wire_name`), `None` for unknown codes (lightningd
/// then omits `failcodename`).
pub fn failcode_name(code: u16) -> Option<&'static str> {
    NAMES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

/// A failcode from a number or a name (`WIRE_FEE_INSUFFICIENT`, `fee_insufficient`).
pub fn parse_failcode(v: &serde_json::Value) -> Option<u16> {
    if let Some(n) = v.as_u64() {
        return u16::try_from(n).ok();
    }
    let s = v.as_str()?.to_ascii_uppercase();
    let s = if s.starts_with("WIRE_") {
        s
    } else {
        format!("WIRE_{s}")
    };
    NAMES.iter().find(|(_, n)| *n == s).map(|(c, _)| *c)
}

/// The message lightningd puts in a failed payment's error: `failed: NAME (details)`.
pub fn failure_message(code: u16, details: &str) -> String {
    let name = failcode_name(code)
        .map(str::to_string)
        .unwrap_or_else(|| format!("UNKNOWN WIRE_TYPE {code}"));
    format!("failed: {name} ({details})")
}

/// The bytes of a `channel_update` up to and with `htlc_maximum_msat`, its type included.
const CHANNEL_UPDATE_LEN: usize = 2 + 64 + 32 + 8 + 4 + 1 + 1 + 2 + 8 + 4 + 4 + 8;

/// A signed-looking `channel_update` (BOLT 7, with its type 258): zero signature and chain
/// hash, `scid`, the policy's timestamp and fees, `direction` and the disable bit in
/// `channel_flags`, `htlc_maximum_msat` always present (`message_flags` 1).
pub fn channel_update(scid: &str, p: &super::Policy, direction: u8, disabled: bool) -> Vec<u8> {
    let (block, tx, out) = super::scid_key(scid);
    let mut u = Vec::with_capacity(CHANNEL_UPDATE_LEN);
    u.extend_from_slice(&258u16.to_be_bytes());
    u.extend_from_slice(&[0u8; 64]); // signature
    u.extend_from_slice(&[0u8; 32]); // chain_hash
    u.extend_from_slice(&((block << 40) | (tx << 16) | out).to_be_bytes());
    u.extend_from_slice(&(p.last_update as u32).to_be_bytes());
    u.push(1); // message_flags: htlc_maximum_msat present
    u.push(direction | if disabled { 2 } else { 0 });
    u.extend_from_slice(&(p.cltv_expiry_delta as u16).to_be_bytes());
    u.extend_from_slice(&p.htlc_minimum_msat.to_be_bytes());
    u.extend_from_slice(&(p.fee_base_msat as u32).to_be_bytes());
    u.extend_from_slice(&(p.fee_proportional_millionths as u32).to_be_bytes());
    u.extend_from_slice(&p.htlc_maximum_msat.to_be_bytes());
    u
}

/// The decrypted failure message lightningd shows as `raw_message` (BOLT 4), hex: the
/// failcode and its data. `htlc_msat` is the amount that reached the failing node;
/// `cltv_or_height` its HTLC's expiry (`incorrect_cltv_expiry`) or the block height
/// (`incorrect_or_unknown_payment_details`); `update` the failing channel's update for the
/// failcodes that carry one (an empty one without). `None` for failcodes the stand-in does not
/// encode (`invalid_onion_payload`, `final_incorrect_*`).
pub fn failure_raw(
    failcode: u16,
    htlc_msat: u64,
    cltv_or_height: u32,
    update: Option<Vec<u8>>,
) -> Option<String> {
    let mut m = failcode.to_be_bytes().to_vec();
    let with_update = |m: &mut Vec<u8>, u: Option<Vec<u8>>| {
        let u = u.unwrap_or_default();
        m.extend_from_slice(&(u.len() as u16).to_be_bytes());
        m.extend_from_slice(&u);
    };
    match failcode {
        TEMPORARY_CHANNEL_FAILURE | EXPIRY_TOO_SOON => with_update(&mut m, update),
        AMOUNT_BELOW_MINIMUM | FEE_INSUFFICIENT => {
            m.extend_from_slice(&htlc_msat.to_be_bytes());
            with_update(&mut m, update);
        }
        INCORRECT_CLTV_EXPIRY => {
            m.extend_from_slice(&cltv_or_height.to_be_bytes());
            with_update(&mut m, update);
        }
        CHANNEL_DISABLED => {
            m.extend_from_slice(&0u16.to_be_bytes()); // disabled_flags
            with_update(&mut m, update);
        }
        INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS => {
            m.extend_from_slice(&htlc_msat.to_be_bytes());
            m.extend_from_slice(&cltv_or_height.to_be_bytes());
        }
        TEMPORARY_NODE_FAILURE
        | PERMANENT_NODE_FAILURE
        | REQUIRED_NODE_FEATURE_MISSING
        | PERMANENT_CHANNEL_FAILURE
        | REQUIRED_CHANNEL_FEATURE_MISSING
        | UNKNOWN_NEXT_PEER
        | EXPIRY_TOO_FAR
        | MPP_TIMEOUT => {}
        _ => return None,
    }
    Some(crate::sha256::hex(&m))
}

impl super::Network {
    /// `addgossip message` (lightningd/gossip_control.c, gossipd `inject_gossip`): a gossip
    /// message given by hand, as pay plugins give the `channel_update` from a failure. The
    /// stand-in's gossip is its network as it is, so every well-formed announcement or update
    /// is already known or older and changes nothing, as gossipd answers for those (`{}`). It
    /// checks no signature: an update newer than its own network's would have to be forged, and
    /// it is not taken either.
    pub fn addgossip(
        &self,
        params: &serde_json::Value,
    ) -> Result<serde_json::Value, super::params::RpcError> {
        use super::params::{self, LIGHTNINGD, RpcError};
        let p = params::parse(params, &[("message", true)])?;
        let tok = p.get("message").cloned().unwrap_or_default();
        let hex = p.string("message")?.unwrap_or_default();
        let bytes = crate::sha256::unhex(&hex)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| RpcError::badparam("message", "should be a hex value", &tok))?;
        let kind = u16::from_be_bytes([bytes[0], *bytes.get(1).unwrap_or(&0)]);
        match kind {
            256 | 257 => Ok(serde_json::json!({})),
            258 if bytes.len() >= CHANNEL_UPDATE_LEN => Ok(serde_json::json!({})),
            258 => Err(RpcError::new(
                LIGHTNINGD,
                format!("channel_update: malformed {hex}"),
            )),
            _ => Err(RpcError::new(
                LIGHTNINGD,
                format!("unknown gossip type {kind}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names() {
        assert_eq!(TEMPORARY_CHANNEL_FAILURE, 4103);
        assert_eq!(FEE_INSUFFICIENT, 4108);
        assert_eq!(INCORRECT_CLTV_EXPIRY, 4109);
        assert_eq!(UNKNOWN_NEXT_PEER, 16394);
        assert_eq!(INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, 16399);
        assert_eq!(
            parse_failcode(&serde_json::json!("fee_insufficient")),
            Some(4108)
        );
        assert_eq!(parse_failcode(&serde_json::json!(4103)), Some(4103));
        assert_eq!(
            failure_message(4103, "reply from remote"),
            "failed: WIRE_TEMPORARY_CHANNEL_FAILURE (reply from remote)"
        );
    }
}

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

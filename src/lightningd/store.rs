//! What the plugin keeps in lightningd's datastore: keys and encodings. Everything lives under
//! the plugin's own first key element, `cln-rebalance`.

use crate::core::history::NO_PAYMENT_HASH;

/// The liquidity model (hex of [`crate::core::liquidity::Liquidity::encode`]).
pub const LIQUIDITY_KEY: [&str; 2] = ["cln-rebalance", "liquidity"];

/// The most channel directions saved: keeps the record under a megabyte.
pub const MAX_SAVED_ENTRIES: usize = 20_000;

pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// A payment hash as hex -> bytes (all zero, the history's "no payment", if it is not one).
pub fn hash_bytes(hex: &str) -> [u8; 32] {
    from_hex(hex)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .unwrap_or(NO_PAYMENT_HASH)
}

pub fn from_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(format!("not a hex digit: {:?}", c as char)),
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Ok((digit(p[0])? << 4) | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_from_hex() {
        assert_eq!(hash_bytes("zz"), NO_PAYMENT_HASH);
        assert_eq!(hash_bytes(&"ab".repeat(32))[0], 0xab);
    }

    #[test]
    fn hex_round_trip() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(to_hex(&b), "0001abff");
        assert_eq!(from_hex("0001ABff").unwrap(), b);
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
    }
}

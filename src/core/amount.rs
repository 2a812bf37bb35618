//! Money: integer millisatoshi arithmetic (always checked) and CLN amount strings.
//!
//! Every amount in this crate is a `u64` msat. Nothing here does I/O.

use std::fmt;

/// Millisatoshi per satoshi.
pub const MSAT_PER_SAT: u64 = 1_000;
/// Millisatoshi per bitcoin.
pub const MSAT_PER_BTC: u64 = 100_000_000_000;
/// All bitcoin that will ever exist, in msat: no real amount can exceed it.
pub const MAX_MONEY_MSAT: u64 = 21_000_000 * MSAT_PER_BTC;

/// Why an amount could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmountError {
    /// Not a number with an optional `msat`, `sat` or `btc` unit.
    Malformed(String),
    /// A minus sign: amounts are never negative.
    Negative,
    /// A fraction of a millisatoshi.
    SubMsat,
    /// More than 21 million bitcoin.
    TooLarge,
}

impl fmt::Display for AmountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AmountError::Malformed(s) => write!(
                f,
                "'{s}' is not an amount: use msat as an integer, or a number with a unit \
                 (e.g. 250000sat, 0.0025btc, 250000000msat)"
            ),
            AmountError::Negative => write!(f, "amounts cannot be negative"),
            AmountError::SubMsat => write!(f, "amounts cannot have fractions of a millisatoshi"),
            AmountError::TooLarge => write!(f, "more than 21 million bitcoin"),
        }
    }
}

impl std::error::Error for AmountError {}

/// Reads a CLN amount: `"1000"` or `"1000msat"` (msat), `"250sat"`, `"0.001btc"`.
pub fn parse_amount(s: &str) -> Result<u64, AmountError> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(AmountError::Negative);
    }
    let (number, unit_msat, max_decimals) = if let Some(n) = t.strip_suffix("msat") {
        (n, 1, 0)
    } else if let Some(n) = t.strip_suffix("sat") {
        (n, MSAT_PER_SAT, 3)
    } else if let Some(n) = t.strip_suffix("btc") {
        (n, MSAT_PER_BTC, 11)
    } else {
        (t, 1, 0)
    };
    let malformed = || AmountError::Malformed(s.to_string());
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (number.contains('.') && !digits(frac)) {
        return Err(malformed());
    }
    let frac_trimmed = frac.trim_end_matches('0');
    if frac_trimmed.len() > max_decimals {
        return Err(AmountError::SubMsat);
    }
    let whole: u64 = whole.parse().map_err(|_| AmountError::TooLarge)?;
    let mut frac_msat: u64 = 0;
    if !frac_trimmed.is_empty() {
        let scale = 10u64.pow((max_decimals - frac_trimmed.len()) as u32);
        let f: u64 = frac_trimmed.parse().map_err(|_| malformed())?;
        // Each unit has exactly `max_decimals` digits of msat below 1 (10^11 msat in a btc), so
        // the padded fraction is already msat. (Multiplying by the unit first overflowed u64
        // for any btc fraction from 0.00184467441btc up: "0.01btc" read as 77662796msat.)
        debug_assert_eq!(unit_msat, 10u64.pow(max_decimals as u32));
        frac_msat = f * scale;
    }
    let msat = whole
        .checked_mul(unit_msat)
        .and_then(|w| w.checked_add(frac_msat))
        .ok_or(AmountError::TooLarge)?;
    if msat > MAX_MONEY_MSAT {
        return Err(AmountError::TooLarge);
    }
    Ok(msat)
}

/// The fee a node charges to forward `amount_msat` over a channel with this policy:
/// `base + ceil(amount * ppm / 1e6)`. Rounding up matches what forwarding nodes demand
/// (rounding down earns WIRE_FEE_INSUFFICIENT). `None` on overflow.
pub fn fee_msat(
    amount_msat: u64,
    fee_base_msat: u32,
    fee_proportional_millionths: u32,
) -> Option<u64> {
    let prop = (amount_msat as u128 * fee_proportional_millionths as u128).div_ceil(1_000_000);
    let total = prop.checked_add(fee_base_msat as u128)?;
    u64::try_from(total).ok()
}

/// `fee` as parts per million of `amount`, rounded to nearest (0 for a zero amount).
pub fn ppm(fee_msat: u64, amount_msat: u64) -> u64 {
    if amount_msat == 0 {
        return 0;
    }
    ((fee_msat as u128 * 1_000_000 + amount_msat as u128 / 2) / amount_msat as u128) as u64
}

/// The most a rebalance of `amount_msat` may pay in fees: `max(exemptfee, amount * maxfeeppm / 1e6)`
/// (rounded down, so the cap is never exceeded by rounding).
pub fn fee_cap_msat(amount_msat: u64, maxfeeppm: u64, exemptfee_msat: u64) -> u64 {
    let by_ppm = (amount_msat as u128 * maxfeeppm as u128 / 1_000_000).min(u64::MAX as u128) as u64;
    by_ppm.max(exemptfee_msat)
}

/// Formats msat as CLN does in its messages: whole satoshis as `300000sat`, anything else as
/// `1500msat`.
pub fn display_sat(msat: u64) -> String {
    if msat.is_multiple_of(MSAT_PER_SAT) {
        format!("{}sat", msat / MSAT_PER_SAT)
    } else {
        format!("{msat}msat")
    }
}

/// An amount as rebalance.py and pyln's `Millisatoshi` write it: `"500000000msat"`.
pub fn msat_string(msat: u64) -> String {
    format!("{msat}msat")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_amount("1000"), Ok(1000));
        assert_eq!(parse_amount("1000msat"), Ok(1000));
        assert_eq!(parse_amount("250sat"), Ok(250_000));
        assert_eq!(parse_amount("100000sat"), Ok(100_000_000));
        assert_eq!(parse_amount("0.001btc"), Ok(100_000_000));
        assert_eq!(parse_amount("1btc"), Ok(MSAT_PER_BTC));
        assert_eq!(parse_amount("1.5sat"), Ok(1_500));
        assert_eq!(parse_amount("0.00000000001btc"), Ok(1));
        assert_eq!(parse_amount("21000000btc"), Ok(MAX_MONEY_MSAT));
        assert_eq!(parse_amount(" 7sat "), Ok(7_000));
    }

    /// Found by tests/fuzz_core.rs: btc fractions overflowed (wrapped in release builds).
    #[test]
    fn btc_fractions_are_exact() {
        assert_eq!(parse_amount("0.01btc"), Ok(1_000_000_000));
        assert_eq!(parse_amount("0.5btc"), Ok(50_000_000_000));
        assert_eq!(parse_amount("0.00184467441btc"), Ok(184_467_441));
        assert_eq!(parse_amount("0.99999999999btc"), Ok(MSAT_PER_BTC - 1));
        assert_eq!(
            parse_amount("20999999.99999999999btc"),
            Ok(MAX_MONEY_MSAT - 1)
        );
        assert_eq!(parse_amount("12.345sat"), Ok(12_345));
    }

    #[test]
    fn rejects_bad_amounts() {
        assert_eq!(parse_amount("-5sat"), Err(AmountError::Negative));
        assert_eq!(parse_amount("1.5msat"), Err(AmountError::SubMsat));
        assert_eq!(parse_amount("1.0001sat"), Err(AmountError::SubMsat));
        assert_eq!(parse_amount("21000001btc"), Err(AmountError::TooLarge));
        assert_eq!(
            parse_amount("99999999999999999999999"),
            Err(AmountError::TooLarge)
        );
        for bad in [
            "", "sat", "abc", "12ab", "1.2.3sat", "1e5", "0x10", ".5sat", "5.sat", "10 sat",
        ] {
            assert!(
                matches!(parse_amount(bad), Err(AmountError::Malformed(_))),
                "{bad} should be malformed"
            );
        }
    }

    #[test]
    fn fees_round_up() {
        assert_eq!(fee_msat(1_000_000, 1, 10), Some(11));
        assert_eq!(fee_msat(1, 0, 1), Some(1));
        assert_eq!(fee_msat(999_999, 0, 1), Some(1));
        assert_eq!(fee_msat(1_000_001, 0, 1), Some(2));
        assert_eq!(fee_msat(0, 1000, 5000), Some(1000));
        assert_eq!(fee_msat(u64::MAX, u32::MAX, u32::MAX), None);
    }

    #[test]
    fn cap_and_ppm() {
        assert_eq!(fee_cap_msat(100_000_000, 1000, 5000), 100_000);
        assert_eq!(fee_cap_msat(1_000_000, 1000, 5000), 5000);
        assert_eq!(ppm(100, 1_000_000), 100);
        assert_eq!(ppm(1, 3_000_000), 0);
        assert_eq!(ppm(5, 0), 0);
        assert_eq!(display_sat(1_234_567_000), "1234567sat");
        assert_eq!(display_sat(1_500), "1500msat");
        assert_eq!(display_sat(0), "0sat");
    }
}

//! Amount strings: the parser against a reference, every written form, above the maximum of money.

use super::*;

/// A reference reader of CLN amount strings, in u128 and by digits: `N`, `Nmsat`, `N[.F]sat`
/// (F at most 3 significant decimals), `N[.F]btc` (at most 11), surrounding whitespace allowed.
pub(crate) fn reference_amount(s: &str) -> Result<u64, AmountError> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(AmountError::Negative);
    }
    let (number, decimals) = if let Some(n) = t.strip_suffix("msat") {
        (n, 0)
    } else if let Some(n) = t.strip_suffix("sat") {
        (n, 3)
    } else if let Some(n) = t.strip_suffix("btc") {
        (n, 11)
    } else {
        (t, 0)
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || (number.contains('.') && !all_digits(frac)) {
        return Err(AmountError::Malformed(s.to_string()));
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > decimals {
        return Err(AmountError::SubMsat);
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > 25 {
        return Err(AmountError::TooLarge);
    }
    let digits = |d: &str| d.bytes().fold(0u128, |v, b| v * 10 + u128::from(b - b'0'));
    // The fraction's digits, padded to `decimals`, are msat (a sat is 10^3 msat, a btc 10^11).
    let msat = digits(whole) * 10u128.pow(decimals as u32)
        + digits(frac) * 10u128.pow((decimals - frac.len()) as u32);
    if msat > u128::from(MAX_MONEY_MSAT) {
        return Err(AmountError::TooLarge);
    }
    Ok(msat as u64)
}

#[test]
pub(crate) fn fuzz_amount_arbitrary_strings() {
    let tally = Tally::default();
    let strings = prop_oneof![
        2 => any::<String>(),
        2 => tricky_string(),
        2 => "[ 0-9.]{0,24}(msat|sat|btc|)[ ]{0,2}",
        1 => "[-+ 0-9.a-z\u{661}]{0,30}",
    ];
    fuzz(
        "amount::parse_amount arbitrary",
        4000,
        strings,
        &tally,
        |s| {
            let got = parse_amount(&s);
            tally.add(if got.is_ok() { "ok" } else { "refused" });
            prop_assert_eq!(&got, &reference_amount(&s), "{:?}", s);
            if let Ok(v) = got {
                prop_assert!(v <= MAX_MONEY_MSAT);
            }
            Ok(())
        },
    );
}

/// `msat` written in one of CLN's forms, with the form's name.
pub(crate) fn written(msat: u64, form: u8, pad: bool) -> Option<(String, &'static str)> {
    let (s, name) = match form {
        0 => (format!("{msat}"), "bare"),
        1 => (format!("{msat}msat"), "msat"),
        2 if msat.is_multiple_of(1000) => (format!("{}sat", msat / 1000), "sat"),
        2 => (format!("{}.{:03}sat", msat / 1000, msat % 1000), "N.Msat"),
        3 => (
            format!(
                "{}.{:011}btc",
                msat / 100_000_000_000,
                msat % 100_000_000_000
            ),
            "N.Mbtc",
        ),
        _ => {
            // Trailing zeros of the fraction dropped: 0.5btc, 12.25sat, 3btc.
            let (per, digits, unit) = if form == 4 {
                (100_000_000_000u64, 11, "btc")
            } else {
                (1000, 3, "sat")
            };
            let frac = format!("{:0w$}", msat % per, w = digits);
            let frac = frac.trim_end_matches('0');
            let s = if frac.is_empty() {
                format!("{}{unit}", msat / per)
            } else {
                format!("{}.{frac}{unit}", msat / per)
            };
            (s, if form == 4 { "short btc" } else { "short sat" })
        }
    };
    Some((if pad { format!(" {s}\t") } else { s }, name))
}

pub(crate) fn money() -> BoxedStrategy<u64> {
    prop_oneof![
        0..=MAX_MONEY_MSAT,
        0u64..1_000_000_000,
        prop::sample::select(vec![
            0,
            1,
            999,
            1000,
            1001,
            50_000_000_000,
            99_999_999_999,
            100_000_000_000,
            MAX_MONEY_MSAT - 1,
            MAX_MONEY_MSAT,
        ]),
    ]
    .boxed()
}

#[test]
pub(crate) fn fuzz_amount_valid_forms() {
    let tally = Tally::default();
    let forms = (money(), 0u8..6, any::<bool>());
    fuzz(
        "amount::parse_amount valid forms",
        4000,
        forms,
        &tally,
        |(msat, form, pad)| {
            let (s, name) = written(msat, form, pad).expect("a form");
            tally.add(name);
            prop_assert_eq!(parse_amount(&s), Ok(msat), "{:?}", s);
            Ok(())
        },
    );
}

#[test]
pub(crate) fn fuzz_amount_above_max_money() {
    let tally = Tally::default();
    let above = (
        prop_oneof![MAX_MONEY_MSAT + 1..=u64::MAX, Just(u64::MAX)],
        0u8..6,
    );
    fuzz(
        "amount::parse_amount above 21M BTC",
        2000,
        above,
        &tally,
        |(msat, form)| {
            let (s, name) = written(msat, form, false).expect("a form");
            tally.add(name);
            prop_assert_eq!(parse_amount(&s), Err(AmountError::TooLarge), "{:?}", s);
            // Past u64 too: every unit, whole and with a fraction.
            let huge = format!(
                "{msat}{}",
                ["", "msat", "sat", "btc", "0sat", ".5btc"][form as usize]
            );
            prop_assert_eq!(
                parse_amount(&huge),
                Err(AmountError::TooLarge),
                "{:?}",
                huge
            );
            Ok(())
        },
    );
}

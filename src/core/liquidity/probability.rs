//! Success probabilities and risk: decay with a half-life, `P(L >= a)` within learned bounds
//! and under the prior, and `-log2 P` priced in msat.

use super::config::{ModelConfig, Prior};

/// `-log2 P` is capped here (P of about one in a billion): risk stays finite and summable.
pub(super) const MAX_RISK_BITS: f64 = 30.0;

/// Decay factor `2^(-elapsed/half_life)`, 1 for no time elapsed.
pub(super) fn decay(half_life_secs: u64, then: u64, now: u64) -> f64 {
    let elapsed = now.saturating_sub(then) as f64;
    (-elapsed / half_life_secs.max(1) as f64).exp2()
}

/// The probability that something that failed at `then` works now.
pub(super) fn recovered(half_life_secs: u64, then: u64, now: u64) -> f64 {
    if then == 0 {
        1.0
    } else {
        1.0 - decay(half_life_secs, then, now)
    }
}

/// Bounds `[lo, hi]` of the liquidity of one channel direction, as known now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min_msat: u64,
    pub max_msat: u64,
}

/// `P(L >= amount | lo <= L <= hi)` under `prior` for a channel of `capacity_msat`.
pub fn success_probability(prior: Prior, amount_msat: u64, b: Bounds, capacity_msat: u64) -> f64 {
    if amount_msat <= b.min_msat {
        return 1.0;
    }
    if amount_msat > b.max_msat || capacity_msat == 0 {
        return 0.0;
    }
    // Continuous over [lo, hi + 1): a liquidity of exactly `hi` still carries `hi`.
    let (lo, hi, a) = (
        b.min_msat as f64,
        b.max_msat as f64 + 1.0,
        amount_msat as f64,
    );
    // From integer differences: near 2^53 msat `hi - lo` in f64 can round to 0 (0/0 = NaN).
    // In u64 (min < amount <= max here) unless max + 1 overflows: u128 -> f64 is a library
    // call, and the search prices every learned edge it relaxes.
    let uniform = match b.max_msat.checked_add(1) {
        Some(top) => (top - amount_msat) as f64 / (top - b.min_msat) as f64,
        None => {
            (u128::from(b.max_msat) + 1 - u128::from(amount_msat)) as f64
                / (u128::from(b.max_msat) + 1 - u128::from(b.min_msat)) as f64
        }
    };
    match prior {
        Prior::Uniform => uniform,
        Prior::Bimodal => {
            let c = capacity_msat as f64;
            let g = |x: f64| (x / c - 0.5).powi(3);
            let den = g(hi) - g(lo);
            if den <= 1e-12 {
                // A sliver of the capacity around its middle: the prior is flat there.
                uniform
            } else {
                ((g(hi) - g(a)) / den).clamp(0.0, 1.0)
            }
        }
    }
}

/// The risk cost in msat of a hop with success probability `p` carrying `amount_msat`, or
/// `None` when `p` is zero (the hop cannot carry it).
pub fn risk_msat(config: &ModelConfig, amount_msat: u64, p: f64) -> Option<u64> {
    if p <= 0.0 {
        return None;
    }
    if p >= 1.0 {
        return Some(0);
    }
    Some(risk_from_bits(config, amount_msat, -p.log2()))
}

/// The risk cost in msat of `bits` of `-log2 P` (capped at [`MAX_RISK_BITS`]) carrying
/// `amount_msat`.
#[inline(always)]
pub(super) fn risk_from_bits(config: &ModelConfig, amount_msat: u64, bits: f64) -> u64 {
    let per_bit = config.risk_base_msat as f64 + amount_msat as f64 * config.risk_ppm as f64 * 1e-6;
    // Both factors are positive: adding a half and truncating rounds (`f64::round` is a
    // library call, and the search prices every edge it relaxes).
    (bits.min(MAX_RISK_BITS) * per_bit + 0.5) as u64
}

/// `-log2 P(L >= amount)` under the uniform prior with nothing learned, `-log2(1 - x)` for
/// the share `x = amount / capacity`; `None` when the edge cannot carry the amount. While
/// `x <= 1/16` (nearly every edge a search relaxes) it is the series
/// `(x + x^2/2 + x^3/3 + x^4/4 + x^5/5) / ln 2`, whose remainder is under `x^5 / 5` of the
/// value (2e-7 at most): far below the msat the cost is rounded to, and a few times faster than
/// the `log2` call it replaces in the search's innermost loop.
#[inline(always)]
pub fn uniform_prior_bits(amount_msat: u64, capacity_msat: u64) -> Option<f64> {
    if amount_msat > capacity_msat || capacity_msat == 0 {
        return None;
    }
    let x = amount_msat as f64 / capacity_msat as f64;
    if x <= 1.0 / 16.0 {
        Some(
            x * (1.0 + x * (0.5 + x * (1.0 / 3.0 + x * (0.25 + x * 0.2))))
                * std::f64::consts::LOG2_E,
        )
    } else if x >= 1.0 {
        None
    } else {
        Some(-(1.0 - x).log2())
    }
}

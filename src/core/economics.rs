//! What an automatic move may pay: a share (`feeratio`) of what the liquidity it brings into the
//! sink earns when we forward it out through the sink, at most `maxfeeppm` of the amount. With
//! lost profit counted (regolancer's `--lost-profit`, rebalance-lnd's rule), what the source
//! channel would have earned forwarding that liquidity out is taken off first: a move between
//! two channels that earn alike pays nothing back, whatever it costs.

/// Our own forwarding fee on a channel (`listpeerchannels` `updates.local`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OurFee {
    pub fee_base_msat: u64,
    pub fee_proportional_millionths: u32,
}

impl OurFee {
    /// What forwarding `amount_msat` out through the channel earns: base + ceil(amount * ppm).
    pub fn earns_msat(&self, amount_msat: u64) -> u128 {
        self.fee_base_msat as u128
            + (amount_msat as u128 * self.fee_proportional_millionths as u128).div_ceil(1_000_000)
    }
}

/// The most a move of `amount_msat` from `source` into `sink` may pay in fees:
/// `min(feeratio * (sink earns - source would have earned), amount * maxfeeppm / 1e6)`,
/// rounded down; without `lost_profit` the source's part is 0. 0 when the sink earns nothing
/// (or, with lost profit, no more than the source).
pub fn fee_cap_msat(
    amount_msat: u64,
    sink: OurFee,
    source: OurFee,
    lost_profit: bool,
    feeratio_millionths: u32,
    maxfeeppm: u32,
) -> u64 {
    let gain = sink.earns_msat(amount_msat).saturating_sub(if lost_profit {
        source.earns_msat(amount_msat)
    } else {
        0
    });
    // u64 x u32 fits in u128; only the feeratio product can overflow, and then by_ppm is smaller.
    let by_ratio = gain
        .checked_mul(feeratio_millionths as u128)
        .map_or(u128::MAX, |x| x / 1_000_000);
    let by_ppm = amount_msat as u128 * maxfeeppm as u128 / 1_000_000;
    u64::try_from(by_ratio.min(by_ppm)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fee(base: u64, ppm: u32) -> OurFee {
        OurFee {
            fee_base_msat: base,
            fee_proportional_millionths: ppm,
        }
    }

    #[test]
    fn fee_caps() {
        let free = fee(0, 0);
        let cap = |amount, sink, feeratio, maxfeeppm| {
            fee_cap_msat(amount, sink, free, false, feeratio, maxfeeppm)
        };
        // feeratio part: 0.5 x (1000 + ceil(4e8 x 100 / 1e6)) = 20500; ppm part 4e8 x 1000/1e6.
        assert_eq!(cap(400_000_000, fee(1000, 100), 500_000, 1000), 20_500);
        assert_eq!(cap(400_000_000, fee(1000, 100), 500_000, 30), 12_000);
        assert_eq!(cap(400_000_000, fee(0, 0), 500_000, 1000), 0);
        assert_eq!(cap(1, fee(0, 1), 1_000_000, 1_000_000), 1); // rounds the fee up
        assert_eq!(cap(3, fee(0, 1), 500_000, 1_000_000), 0); // and the cap down
        assert_eq!(
            cap(u64::MAX, fee(u64::MAX, u32::MAX), u32::MAX, 1),
            u64::MAX / 1_000_000
        );
        assert_eq!(
            cap(u64::MAX, fee(u64::MAX, u32::MAX), u32::MAX, u32::MAX),
            u64::MAX
        );
    }

    #[test]
    fn lost_profit_takes_what_the_source_would_have_earned_off() {
        let (sink, source) = (fee(1000, 500), fee(0, 200));
        // Sink earns 1000 + 200000 on 4e8; the source would have earned 80000.
        assert_eq!(
            fee_cap_msat(400_000_000, sink, source, false, 500_000, 5000),
            100_500
        );
        assert_eq!(
            fee_cap_msat(400_000_000, sink, source, true, 500_000, 5000),
            60_500
        );
        // A source that earns as much as the sink: nothing is worth paying.
        assert_eq!(
            fee_cap_msat(400_000_000, sink, sink, true, 500_000, 5000),
            0
        );
        assert_eq!(
            fee_cap_msat(400_000_000, source, sink, true, 500_000, 5000),
            0
        );
    }
}

//! One of our channels as the planner sees it, and which of a peer's channels to us the peer
//! forwards over. Pure: the caller converts `listpeerchannels`.

use crate::core::graph::Scid;

/// One of our channels, as the planner needs it (the caller converts `listpeerchannels`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurChannel {
    pub short_channel_id: Scid,
    /// Lowercase hex node id, as `listpeerchannels` gives it.
    pub peer_id: String,
    /// `state == "CHANNELD_NORMAL"`.
    pub state_normal: bool,
    pub peer_connected: bool,
    /// Includes outgoing HTLCs in flight, excludes incoming ones (as CLN reports it).
    pub to_us_msat: u64,
    pub total_msat: u64,
    pub spendable_msat: u64,
    pub receivable_msat: u64,
    /// Sum of `htlcs[].amount_msat` with `direction: "out"`.
    pub htlcs_out_msat: u64,
    /// Sum of `htlcs[].amount_msat` with `direction: "in"`.
    pub htlcs_in_msat: u64,
    /// Our own forwarding fee on this channel: `updates.local.fee_base_msat`.
    pub fee_base_msat: u64,
    /// `updates.local.fee_proportional_millionths`.
    pub fee_proportional_millionths: u32,
    /// The peer's fee to forward to us over this channel, `updates.remote` `fee_base_msat`
    /// and `fee_proportional_millionths` (`None` when lightningd has no update from the peer).
    pub remote_fee: Option<(u64, u32)>,
}

impl OurChannel {
    /// The channel the peer would forward a payment to us over instead of this one, if any.
    /// lightningd forwards non-strictly (`best_channel`, lightningd/peer_htlcs.c): of its
    /// channels to the next node at the same fees as the one the onion names, it takes the
    /// one it can send the most on, and what the peer can send us on a channel is what we can
    /// receive there. So while another usable channel of the peer's to us at the same fees has
    /// more receivable than this one, a rebalance into this one comes back over that other
    /// (and is refused: nothing moves, no fee). Ties are left alone (the peer's order is not
    /// known), and so are channels whose fees from the peer are not known. Other
    /// implementations choose otherwise (LND at random among the channels that can carry it):
    /// for them this is where a payment likely, not surely, comes back elsewhere.
    pub fn forwarded_over_instead<'a>(&self, channels: &'a [OurChannel]) -> Option<&'a OurChannel> {
        let fee = self.remote_fee?;
        channels
            .iter()
            .filter(|o| {
                o.short_channel_id != self.short_channel_id
                    && o.peer_id == self.peer_id
                    && o.state_normal
                    && o.remote_fee == Some(fee)
                    && o.receivable_msat > self.receivable_msat
            })
            .max_by_key(|o| (o.receivable_msat, std::cmp::Reverse(o.short_channel_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAT: u64 = 1000;

    /// Channel `n` with peer `peer`, `receivable_sat` we can receive, the peer's fee `ppm`.
    fn ch(n: u64, peer: &str, receivable_sat: u64, ppm: Option<u32>) -> OurChannel {
        OurChannel {
            short_channel_id: format!("{n}x1x0").parse().unwrap(),
            peer_id: peer.into(),
            state_normal: true,
            peer_connected: true,
            to_us_msat: 0,
            total_msat: 2_000_000 * SAT,
            spendable_msat: 0,
            receivable_msat: receivable_sat * SAT,
            htlcs_out_msat: 0,
            htlcs_in_msat: 0,
            fee_base_msat: 1000,
            fee_proportional_millionths: 100,
            remote_fee: ppm.map(|p| (1000, p)),
        }
    }

    fn scid(c: Option<&OurChannel>) -> Option<String> {
        c.map(|c| c.short_channel_id.to_string())
    }

    #[test]
    fn the_peer_forwards_over_its_channel_with_the_most_to_send_at_the_same_fees() {
        let chans = vec![
            ch(1, "p", 600_000, Some(10)),
            ch(2, "p", 800_000, Some(10)),
            ch(3, "p", 900_000, Some(20)), // other fees: not a choice for the peer
            ch(4, "q", 1_500_000, Some(10)), // another peer
            ch(5, "p", 700_000, Some(10)),
        ];
        assert_eq!(
            scid(chans[0].forwarded_over_instead(&chans)),
            Some("2x1x0".into())
        );
        assert_eq!(
            scid(chans[4].forwarded_over_instead(&chans)),
            Some("2x1x0".into())
        );
        assert_eq!(
            chans[1].forwarded_over_instead(&chans),
            None,
            "the peer's choice itself"
        );
        assert_eq!(
            chans[2].forwarded_over_instead(&chans),
            None,
            "alone at its fees"
        );
        assert_eq!(
            chans[3].forwarded_over_instead(&chans),
            None,
            "alone with its peer"
        );
    }

    #[test]
    fn ties_unknown_fees_and_closed_channels_leave_the_channel_alone() {
        let tie = vec![ch(1, "p", 800_000, Some(10)), ch(2, "p", 800_000, Some(10))];
        assert_eq!(tie[0].forwarded_over_instead(&tie), None);
        assert_eq!(tie[1].forwarded_over_instead(&tie), None);
        let unknown = vec![ch(1, "p", 600_000, None), ch(2, "p", 800_000, None)];
        assert_eq!(unknown[0].forwarded_over_instead(&unknown), None);
        let mut closing = vec![ch(1, "p", 600_000, Some(10)), ch(2, "p", 800_000, Some(10))];
        closing[1].state_normal = false;
        assert_eq!(closing[0].forwarded_over_instead(&closing), None);
    }
}

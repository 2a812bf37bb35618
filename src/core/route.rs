//! A circular path -> `sendpay` hops: every hop's amount and delay, computed backward (pure).
//!
//! Hop `i`'s `amount_msat` and `delay` are what the node at the END of hop `i` must receive
//! (sendpay's semantics). The node at the end of hop `i` charges for forwarding over hop `i+1`,
//! by its own policy for that channel direction; our own first hop is free.

use crate::core::graph::{EdgeIdx, Graph, Policy, Scid};
use std::fmt;

/// CLN refuses routes longer than this.
pub const MAX_HOPS: usize = 20;
/// The most total CLTV a route may lock funds for (BOLT 4 / CLN's default `max-locktime-blocks`).
pub const MAX_TOTAL_CLTV: u32 = 2016;

/// One hop before amounts are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopSpec {
    pub short_channel_id: Scid,
    pub direction: u8,
    /// The node at the end of this hop.
    pub node_id: String,
    /// The policy of the node at the START of this hop for this channel direction
    /// (what it charges to forward over it). Ignored for our own first hop.
    pub policy: Policy,
}

impl HopSpec {
    /// The hop over one public channel direction of the graph.
    pub fn from_edge(graph: &Graph, idx: EdgeIdx) -> HopSpec {
        let e = graph.edge(idx);
        HopSpec {
            short_channel_id: e.short_channel_id,
            direction: e.direction,
            node_id: graph.node_id(e.destination).to_string(),
            policy: e.policy,
        }
    }
}

/// One `sendpay` hop (CLN's names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub short_channel_id: Scid,
    pub direction: u8,
    pub node_id: String,
    pub amount_msat: u64,
    pub delay: u32,
}

/// Why a route cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    Empty,
    TooManyHops(usize),
    /// Total delay over [`MAX_TOTAL_CLTV`].
    CltvTooLarge(u32),
    /// A hop cannot carry its amount (htlc_minimum / htlc_maximum), named by channel.
    HtlcLimit {
        short_channel_id: Scid,
        amount_msat: u64,
    },
    Overflow,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::Empty => write!(f, "empty route"),
            RouteError::TooManyHops(n) => write!(f, "route has {n} hops, more than {MAX_HOPS}"),
            RouteError::CltvTooLarge(d) => write!(
                f,
                "route needs a delay of {d} blocks, more than {MAX_TOTAL_CLTV}"
            ),
            RouteError::HtlcLimit {
                short_channel_id,
                amount_msat,
            } => write!(
                f,
                "channel {short_channel_id} does not carry {amount_msat}msat (htlc limits)"
            ),
            RouteError::Overflow => write!(f, "amount overflow"),
        }
    }
}

/// Hops for delivering `amount_msat` with `final_cltv` to the node at the end of the last hop.
pub fn build_route(
    specs: &[HopSpec],
    amount_msat: u64,
    final_cltv: u32,
) -> Result<Vec<Hop>, RouteError> {
    if specs.is_empty() {
        return Err(RouteError::Empty);
    }
    if specs.len() > MAX_HOPS {
        return Err(RouteError::TooManyHops(specs.len()));
    }
    let mut hops: Vec<Hop> = Vec::with_capacity(specs.len());
    let (mut amount, mut delay) = (amount_msat, final_cltv);
    for (i, spec) in specs.iter().enumerate().rev() {
        if i > 0 {
            let p = &spec.policy;
            if amount < p.htlc_minimum_msat || amount > p.htlc_maximum_msat {
                return Err(RouteError::HtlcLimit {
                    short_channel_id: spec.short_channel_id,
                    amount_msat: amount,
                });
            }
        }
        hops.push(Hop {
            short_channel_id: spec.short_channel_id,
            direction: spec.direction,
            node_id: spec.node_id.clone(),
            amount_msat: amount,
            delay,
        });
        if i > 0 {
            let fee = spec.policy.fee_msat(amount).ok_or(RouteError::Overflow)?;
            amount = amount.checked_add(fee).ok_or(RouteError::Overflow)?;
            delay = delay
                .checked_add(spec.policy.delay)
                .ok_or(RouteError::Overflow)?;
        }
    }
    hops.reverse();
    if hops[0].delay > MAX_TOTAL_CLTV {
        return Err(RouteError::CltvTooLarge(hops[0].delay));
    }
    Ok(hops)
}

/// What the route costs us: what we send minus what arrives.
pub fn route_fee_msat(hops: &[Hop]) -> u64 {
    match (hops.first(), hops.last()) {
        (Some(f), Some(l)) => f.amount_msat - l.amount_msat,
        _ => 0,
    }
}

/// What a set of parts costs us: the sum of its routes' fees.
pub fn set_fee_msat(set: &[Vec<Hop>]) -> u64 {
    set.iter().map(|h| route_fee_msat(h)).sum()
}

/// What a set of parts delivers to `destination` together: the sum of its routes' last
/// amounts. `None` when a route is empty, ends elsewhere, or the sum overflows.
pub fn set_delivered_msat(set: &[Vec<Hop>], destination: &str) -> Option<u64> {
    set.iter().try_fold(0u64, |sum, hops| {
        let last = hops.last().filter(|h| h.node_id == destination)?;
        sum.checked_add(last.amount_msat)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_delivers_the_sum_of_its_last_amounts_to_one_destination() {
        let route =
            |amount: u64, end: &str| build_route(&[spec(1, "a"), spec(2, end)], amount, 9).unwrap();
        let set = [route(600_000, "us"), route(400_000, "us")];
        assert_eq!(set_delivered_msat(&set, "us"), Some(1_000_000));
        assert_eq!(
            set_fee_msat(&set),
            route_fee_msat(&set[0]) + route_fee_msat(&set[1])
        );
        assert_eq!(
            set_delivered_msat(&[route(1, "us"), route(1, "b")], "us"),
            None
        );
        assert_eq!(set_delivered_msat(&[vec![]], "us"), None);
        assert_eq!(set_delivered_msat(&[], "us"), Some(0));
        let huge = route(u64::MAX / 2 + 1, "us");
        assert_eq!(set_delivered_msat(&[huge.clone(), huge], "us"), None);
    }

    fn pyln_policy() -> Policy {
        // pyln-testing's channel defaults: base 1 msat, 10 ppm, cltv delta 6.
        Policy {
            base_fee_millisatoshi: 1,
            fee_per_millionth: 10,
            delay: 6,
            htlc_minimum_msat: 0,
            htlc_maximum_msat: u64::MAX,
        }
    }

    fn spec(block: u64, node: &str) -> HopSpec {
        HopSpec {
            short_channel_id: Scid(block << 40),
            direction: 0,
            node_id: node.into(),
            policy: pyln_policy(),
        }
    }

    #[test]
    fn triangle_vector() {
        // us -> l2 -> l3 -> us, 1,000,000 msat, final cltv 5 (CLN-NOTES' triangle).
        let hops =
            build_route(&[spec(1, "l2"), spec(2, "l3"), spec(3, "us")], 1_000_000, 5).unwrap();
        let amounts: Vec<u64> = hops.iter().map(|h| h.amount_msat).collect();
        let delays: Vec<u32> = hops.iter().map(|h| h.delay).collect();
        // l3 charges 1 + 10 = 11 on 1,000,000; l2 charges 1 + ceil(10.00011) = 12 on 1,000,011.
        assert_eq!(amounts, [1_000_023, 1_000_011, 1_000_000]);
        assert_eq!(delays, [17, 11, 5]);
        assert_eq!(route_fee_msat(&hops), 23);
    }

    #[test]
    fn first_hop_policy_is_free_and_limits_apply() {
        let mut first = spec(1, "a");
        first.policy.base_fee_millisatoshi = 1_000_000;
        first.policy.htlc_maximum_msat = 1;
        let hops = build_route(&[first, spec(2, "us")], 1_000, 9).unwrap();
        assert_eq!(route_fee_msat(&hops), 1 + 1);
        let mut tight = spec(2, "us");
        tight.policy.htlc_maximum_msat = 999;
        assert_eq!(
            build_route(&[spec(1, "a"), tight], 1_000, 9),
            Err(RouteError::HtlcLimit {
                short_channel_id: Scid(2 << 40),
                amount_msat: 1_000
            })
        );
        let long: Vec<HopSpec> = (0..21).map(|i| spec(i, "x")).collect();
        assert_eq!(build_route(&long, 1, 9), Err(RouteError::TooManyHops(21)));
        let mut slow = spec(2, "us");
        slow.policy.delay = 2016;
        assert_eq!(
            build_route(&[spec(1, "a"), slow], 1, 9),
            Err(RouteError::CltvTooLarge(2025))
        );
        assert_eq!(build_route(&[], 1, 9), Err(RouteError::Empty));
    }
}

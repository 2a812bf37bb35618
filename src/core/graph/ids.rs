//! Identifiers and what one channel direction carries: short channel ids, node and edge
//! indices, a forwarding policy and its fee, an edge as listed and as the search reads it.

use std::fmt;

/// A short channel id `block x tx x output`, packed like BOLT 7 does (3 + 3 + 2 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scid(pub u64);

impl Scid {
    pub fn block(self) -> u64 {
        self.0 >> 40
    }
}

impl std::str::FromStr for Scid {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not a short_channel_id (expected BLOCKxTXxOUTPUT)");
        let mut parts = s.split('x');
        let (Some(b), Some(t), Some(o), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let num = |p: &str, max: u64| -> Result<u64, String> {
            if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse::<u64>().ok().filter(|v| *v <= max).ok_or_else(bad)
        };
        Ok(Scid(
            (num(b, 0xFF_FFFF)? << 40) | (num(t, 0xFF_FFFF)? << 16) | num(o, 0xFFFF)?,
        ))
    }
}

impl fmt::Display for Scid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}x{}x{}",
            self.0 >> 40,
            (self.0 >> 16) & 0xFF_FFFF,
            self.0 & 0xFFFF
        )
    }
}

/// Index of a node in a [`Graph`].
pub type NodeIdx = u32;
/// Index of a channel direction in a [`Graph`].
pub type EdgeIdx = u32;

/// The forwarding policy a node advertises for one direction of a channel (CLN's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub base_fee_millisatoshi: u32,
    pub fee_per_millionth: u32,
    /// `cltv_expiry_delta`: blocks the forwarding node adds.
    pub delay: u32,
    pub htlc_minimum_msat: u64,
    pub htlc_maximum_msat: u64,
}

impl Policy {
    /// Fee the source charges to forward `amount_msat` over this direction.
    #[inline]
    pub fn fee_msat(&self, amount_msat: u64) -> Option<u64> {
        fee_msat(
            amount_msat,
            self.base_fee_millisatoshi,
            self.fee_per_millionth,
        )
    }
}

/// Same result as [`crate::core::amount::fee_msat`]; the common case stays in u64 (a u128 division
/// is a library call, and the search computes a fee for every edge it relaxes).
#[inline]
fn fee_msat(amount_msat: u64, base_fee_msat: u32, fee_per_millionth: u32) -> Option<u64> {
    match amount_msat.checked_mul(u64::from(fee_per_millionth)) {
        Some(product) => product
            .div_ceil(1_000_000)
            .checked_add(u64::from(base_fee_msat)),
        None => crate::core::amount::fee_msat(amount_msat, base_fee_msat, fee_per_millionth),
    }
}

/// One direction of a public channel, `source` -> `destination`.
#[derive(Debug, Clone, Copy)]
pub struct Edge {
    pub short_channel_id: Scid,
    pub direction: u8,
    pub source: NodeIdx,
    pub destination: NodeIdx,
    pub active: bool,
    pub amount_msat: u64,
    pub policy: Policy,
}

/// What the search reads for one channel direction, packed into 32 bytes (two per cache line).
/// Indexed like [`Graph::edges`]; only active edges are ever read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SearchEdge {
    pub htlc_minimum_msat: u64,
    /// `min(htlc_maximum_msat, amount_msat)`: the most the edge can carry.
    pub htlc_maximum_msat: u64,
    pub source: NodeIdx,
    pub base_fee_millisatoshi: u32,
    pub fee_per_millionth: u32,
    pub delay: u32,
}

impl SearchEdge {
    pub(super) fn of(e: &Edge) -> SearchEdge {
        SearchEdge {
            htlc_minimum_msat: e.policy.htlc_minimum_msat,
            htlc_maximum_msat: e.policy.htlc_maximum_msat.min(e.amount_msat),
            source: e.source,
            base_fee_millisatoshi: e.policy.base_fee_millisatoshi,
            fee_per_millionth: e.policy.fee_per_millionth,
            delay: e.policy.delay,
        }
    }

    /// Same as [`Policy::fee_msat`].
    #[inline]
    pub fn fee_msat(&self, amount_msat: u64) -> Option<u64> {
        fee_msat(
            amount_msat,
            self.base_fee_millisatoshi,
            self.fee_per_millionth,
        )
    }
}

/// No fee, a one-block delay, no htlc limits (for the core's tests).
#[cfg(test)]
pub(crate) fn free_policy() -> Policy {
    Policy {
        base_fee_millisatoshi: 0,
        fee_per_millionth: 0,
        delay: 1,
        htlc_minimum_msat: 0,
        htlc_maximum_msat: u64::MAX,
    }
}

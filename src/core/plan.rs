//! The planner: which of our channels should send liquidity to which, how much, and at what fee
//! cap; and the fee budget every automatic move must fit in.
//!
//! One place decides what should move: the `rebalanceall` runner executes a [`Plan`] (one move
//! per channel, then it plans again from fresh balances), and `balances` shows the same plan as
//! suggestions. Pure: no I/O, no clock; the caller converts `listpeerchannels` into
//! [`OurChannel`]s and passes the fees already spent.
//!
//! ## What counts as excess and deficit
//! In CLN, `to_us_msat` still includes outgoing HTLCs in flight (they leave our balance only when
//! they settle) and does not yet include incoming ones. A pending HTLC may settle or fail, so the
//! planner judges each role by the outcome that makes a move least justified:
//! - a **source**'s excess is `to_us - htlcs_out - target`: what stays ours above target even if
//!   every outgoing HTLC settles (so a step whose outgoing HTLC has not settled yet is not planned
//!   twice);
//! - a **sink**'s deficit is `target - (to_us + htlcs_in)`: what is missing even if every incoming
//!   HTLC settles.
//!
//! The two cannot both hold for one channel. `target = total * target_percent / 100`.
//!
//! ## What a move may carry
//! `amount <= min(excess, deficit, max_amount)`, so no source ends below its target and no sink
//! above it; `amount <= receivable` of the sink; and `amount + fee cap <= spendable` of the source
//! (the fee leaves through the outgoing channel too), which holds for any sink because the cap is
//! at most `amount * maxfeeppm / 1e6`. Amounts are rounded down to whole satoshis; a move below
//! `min_amount_msat` is not planned.
//!
//! ## Economics
//! Liquidity moved into a channel pays back only as fees we later earn forwarding out through
//! it, so an automatic move may spend at most `feeratio` of what we charge to forward the same
//! amount out through the incoming channel, and never more than `maxfeeppm` of the amount (see
//! [`fee_cap_msat`]). There is no `exemptfee` floor for automatic moves: a floor would let small
//! moves cost more than they can ever earn. A channel that charges nothing gets no rebalance.

use crate::core::amount::{MSAT_PER_SAT, display_sat};
use crate::core::budget::{Admission, Budget, Spent};
pub use crate::core::channel::OurChannel;
use crate::core::economics::{OurFee, fee_cap_msat};
use crate::core::graph::Scid;
use serde_json::{Value, json};
use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};

/// Our share of each channel that the planner aims for, in percent.
pub const DEFAULT_TARGET_PERCENT: u8 = 50;
/// The smallest move worth making: 100000sat. Below it a move's fee cap (at 50% of a typical
/// 100 ppm local fee, 5sat on 100000sat) hardly covers the base fees of a three-hop route
/// (~1sat each), each attempt still locks an HTLC slot on every hop, and on a 1M-sat channel
/// 100000sat is already a 10% step.
pub const DEFAULT_MIN_AMOUNT_MSAT: u64 = 100_000 * MSAT_PER_SAT;
/// Spend at most half of what the moved liquidity would earn forwarding out once.
pub const DEFAULT_FEERATIO_MILLIONTHS: u32 = 500_000;
/// The hard ceiling, the same as `rebalance-maxfeeppm`'s default.
pub const DEFAULT_MAXFEEPPM: u32 = 1_000;

/// Settings for one channel or for all channels with one peer. `None` = not set here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelSettings {
    /// Never a source nor a sink.
    pub exclude: Option<bool>,
    /// Overrides [`PlanConfig::target_percent`] (0..=100; more is read as 100).
    pub target_percent: Option<u8>,
}

/// Per-channel and per-peer settings. Each field resolves on its own: the channel's setting if
/// set, else its peer's, else the global config; so `exclude: Some(false)` on one channel keeps
/// it in play while the rest of that peer's channels are excluded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub channels: HashMap<Scid, ChannelSettings>,
    /// Keyed by lowercase hex node id.
    pub peers: HashMap<String, ChannelSettings>,
}

/// What applies to one channel once settings and config are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    pub exclude: bool,
    pub target_percent: u8,
}

impl Settings {
    pub fn effective(&self, scid: Scid, peer_id: &str, config: &PlanConfig) -> Effective {
        let chan = self.channels.get(&scid);
        let peer = self.peers.get(peer_id);
        let pick =
            |f: fn(&ChannelSettings) -> Option<u8>| chan.and_then(f).or_else(|| peer.and_then(f));
        Effective {
            exclude: chan
                .and_then(|s| s.exclude)
                .or_else(|| peer.and_then(|s| s.exclude))
                .unwrap_or(false),
            target_percent: pick(|s| s.target_percent)
                .unwrap_or(config.target_percent)
                .min(100),
        }
    }
}

/// How the planner chooses moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanConfig {
    /// Our share to aim for, percent (default 50).
    pub target_percent: u8,
    /// The smallest move, and the distance from target below which a channel counts as balanced.
    pub min_amount_msat: u64,
    /// The largest move, if any.
    pub max_amount_msat: Option<u64>,
    /// Fee cap as a share of what we charge to forward the amount out through the incoming
    /// channel, in millionths (500_000 = 0.5).
    pub feeratio_millionths: u32,
    /// Fee cap as parts per million of the amount, whatever the feeratio allows.
    pub maxfeeppm: u32,
    /// Count what the source would have earned forwarding the liquidity that leaves it
    /// (`core::economics`).
    pub lost_profit: bool,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            target_percent: DEFAULT_TARGET_PERCENT,
            min_amount_msat: DEFAULT_MIN_AMOUNT_MSAT,
            max_amount_msat: None,
            feeratio_millionths: DEFAULT_FEERATIO_MILLIONTHS,
            maxfeeppm: DEFAULT_MAXFEEPPM,
            lost_profit: false,
        }
    }
}

impl PlanConfig {
    /// Refuses settings that cannot plan anything sensible, saying which.
    pub fn validate(&self) -> Result<(), String> {
        if self.target_percent > 100 {
            return Err(format!("target {}% is more than 100%", self.target_percent));
        }
        if let Some(max) = self.max_amount_msat
            && max < self.min_amount_msat
        {
            return Err(format!(
                "max amount {} is below min amount {}",
                display_sat(max),
                display_sat(self.min_amount_msat)
            ));
        }
        Ok(())
    }
}

/// The largest `a` with `a + a * maxfeeppm / 1e6 <= spendable`: what a source can send and
/// still pay any fee cap on top.
fn sendable_with_fee(spendable_msat: u64, maxfeeppm: u32) -> u64 {
    (spendable_msat as u128 * 1_000_000 / (1_000_000 + maxfeeppm as u128)) as u64
}

fn target_msat(total_msat: u64, percent: u8) -> u64 {
    (total_msat as u128 * percent as u128 / 100) as u64
}

/// Our share in whole percent, rounded to nearest (display only).
fn percent(to_us_msat: u64, total_msat: u64) -> u64 {
    if total_msat == 0 {
        return 0;
    }
    ((to_us_msat as u128 * 100 + total_msat as u128 / 2) / total_msat as u128) as u64
}

fn signed(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// A channel off its target by at least the min amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imbalance {
    pub short_channel_id: Scid,
    pub peer_id: String,
    pub to_us_msat: u64,
    pub total_msat: u64,
    pub target_percent: u8,
    /// Excess (positive, a source) or deficit (negative, a sink), counted as the module doc says.
    pub distance_msat: i64,
    /// What a move can actually carry: the distance limited by spendable (less the fee margin)
    /// or receivable.
    pub movable_msat: u64,
}

impl Imbalance {
    fn to_json(&self) -> Value {
        json!({
            "short_channel_id": self.short_channel_id.to_string(),
            "peer_id": self.peer_id,
            "to_us_msat": self.to_us_msat,
            "total_msat": self.total_msat,
            "target_percent": self.target_percent,
            "distance_msat": self.distance_msat,
            "movable_msat": self.movable_msat,
        })
    }
}

/// One rebalance to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The source: holds more of our funds than its target.
    pub outgoing: Scid,
    /// The sink: holds less.
    pub incoming: Scid,
    pub amount_msat: u64,
    /// The most the move may pay in fees (see [`fee_cap_msat`]; [`Plan::apply_budget`] may cut it).
    pub fee_cap_msat: u64,
    /// One line for a person, e.g. "moves 300000sat from 1x1x0 (85% ours, target 50%) to
    /// 2x1x0 (10%, target 50%)".
    pub reason: String,
}

impl Move {
    pub fn to_json(&self) -> Value {
        json!({
            "outgoing": self.outgoing.to_string(),
            "incoming": self.incoming.to_string(),
            "amount_msat": self.amount_msat,
            "fee_cap_msat": self.fee_cap_msat,
            "reason": self.reason,
        })
    }
}

/// What should move now, and why every other off-target channel does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Largest first; each channel appears in at most one move.
    pub moves: Vec<Move>,
    /// Channels above target, largest excess first (ties by scid).
    pub sources: Vec<Imbalance>,
    /// Channels below target, largest deficit first (ties by scid).
    pub sinks: Vec<Imbalance>,
    /// Off-target channels (or moves) that cannot be used, with the reason; by scid.
    pub skipped: Vec<(Scid, String)>,
}

/// A candidate end of a move (`core::pairing` prices every pair of them).
pub(crate) struct End<'a> {
    pub(crate) chan: &'a OurChannel,
    target_percent: u8,
    pub(crate) movable_msat: u64,
}

/// Plans one round of moves over our channels. O(n log n) in the number of channels.
///
/// Channels within `min_amount_msat` of their target are balanced and not listed. Off-target
/// channels that are excluded, not CHANNELD_NORMAL or whose peer is offline go to `skipped`, as
/// do sources and sinks that cannot carry `min_amount_msat` and sinks that charge no fee. The
/// rest are paired greedily, largest movable amount with largest, ties by scid.
pub fn plan(channels: &[OurChannel], settings: &Settings, config: &PlanConfig) -> Plan {
    plan_avoiding(channels, settings, config, &HashSet::new())
}

/// [`plan`], never pairing an `(outgoing, incoming)` in `avoid`: each sink, largest first, takes
/// the largest source not yet taken that it may pair with. With nothing to avoid, the same
/// pairs as `plan`. A job passes the pairs its quotes found above the cap or without a route
/// (and those whose first route already cost more than the cap), so a costly source is not
/// paired again with the sinks it cannot reach.
pub fn plan_avoiding(
    channels: &[OurChannel],
    settings: &Settings,
    config: &PlanConfig,
    avoid: &HashSet<(Scid, Scid)>,
) -> Plan {
    let mut out = Plan::default();
    let (mut sources, mut sinks) = ends(channels, settings, config, &mut out);
    let by_movable = |e: &End| (Reverse(e.movable_msat), e.chan.short_channel_id);
    sources.sort_unstable_by_key(by_movable);
    sinks.sort_unstable_by_key(by_movable);
    pair(&sources, &sinks, config, avoid, &mut out);
    out.sources
        .sort_unstable_by_key(|i| (Reverse(i.distance_msat), i.short_channel_id));
    out.sinks
        .sort_unstable_by_key(|i| (i.distance_msat, i.short_channel_id));
    // Stable: a channel skipped twice keeps its reasons in the order they arose.
    out.skipped.sort_by_key(|s| s.0);
    out
}

/// The first half of planning: each off-target channel listed in `out.sources` or
/// `out.sinks` (how far off, how much may move), and returned as a source or sink to pair if
/// it can take part, or put in `out.skipped` with why not.
pub(crate) fn ends<'a>(
    channels: &'a [OurChannel],
    settings: &Settings,
    config: &PlanConfig,
    out: &mut Plan,
) -> (Vec<End<'a>>, Vec<End<'a>>) {
    let mut sources: Vec<End> = Vec::new();
    let mut sinks: Vec<End> = Vec::new();
    let min = config.min_amount_msat;
    for c in channels {
        let scid = c.short_channel_id;
        let eff = settings.effective(scid, &c.peer_id, config);
        let target = target_msat(c.total_msat, eff.target_percent);
        let low = c.to_us_msat.saturating_sub(c.htlcs_out_msat);
        let high = c.to_us_msat.saturating_add(c.htlcs_in_msat);
        let (excess, deficit) = (low.saturating_sub(target), target.saturating_sub(high));
        let off = excess.max(deficit);
        if off == 0 || off < min {
            continue;
        }
        let not_usable = if eff.exclude {
            Some("excluded by settings".to_string())
        } else if !c.state_normal {
            Some("not CHANNELD_NORMAL".to_string())
        } else if !c.peer_connected {
            Some(format!("peer {} is not connected", c.peer_id))
        } else {
            None
        };
        let role = if excess > 0 { "above" } else { "below" };
        if let Some(why) = not_usable {
            out.skipped.push((
                scid,
                format!(
                    "{} {role} target ({}% ours, target {}%), but {why}",
                    display_sat(off),
                    percent(c.to_us_msat, c.total_msat),
                    eff.target_percent
                ),
            ));
            continue;
        }
        let (movable, limit, limit_name) = if excess > 0 {
            let can = sendable_with_fee(c.spendable_msat, config.maxfeeppm);
            (
                excess.min(can),
                c.spendable_msat,
                "spendable (less room for the fee)",
            )
        } else {
            (
                deficit.min(c.receivable_msat),
                c.receivable_msat,
                "receivable",
            )
        };
        let imbalance = Imbalance {
            short_channel_id: scid,
            peer_id: c.peer_id.clone(),
            to_us_msat: c.to_us_msat,
            total_msat: c.total_msat,
            target_percent: eff.target_percent,
            distance_msat: if excess > 0 {
                signed(excess)
            } else {
                -signed(deficit)
            },
            movable_msat: movable,
        };
        let end = End {
            chan: c,
            target_percent: eff.target_percent,
            movable_msat: movable,
        };
        if movable < min {
            out.skipped.push((
                scid,
                format!(
                    "{} {role} target, but only {} {limit_name}: under the min amount {}",
                    display_sat(off),
                    display_sat(limit),
                    display_sat(min)
                ),
            ));
        } else if excess == 0 && c.fee_base_msat == 0 && c.fee_proportional_millionths == 0 {
            out.skipped.push((
                scid,
                format!(
                    "{} below target, but we charge nothing to forward out through it, \
                     so no rebalance into it can pay back",
                    display_sat(off)
                ),
            ));
        } else if excess > 0 {
            sources.push(end);
        } else if let Some(o) = c.forwarded_over_instead(channels) {
            out.skipped.push((
                scid,
                format!(
                    "{} below target, but a rebalance into it would come back over {}, the \
                     peer's channel to us with the most it can send at the same fees \
                     (non-strict forwarding), and be refused",
                    display_sat(off),
                    o.short_channel_id
                ),
            ));
        } else {
            sinks.push(end);
        }
        if excess > 0 {
            out.sources.push(imbalance);
        } else {
            out.sinks.push(imbalance);
        }
    }

    (sources, sinks)
}

/// The second half: each sink, most to move first, paired with the source that can move most
/// and is not yet taken nor in `avoid` with it (with lost profit counted: the first such
/// source the move can still pay for), into `out.moves` (or `out.skipped`, why not).
fn pair(
    sources: &[End],
    sinks: &[End],
    config: &PlanConfig,
    avoid: &HashSet<(Scid, Scid)>,
    out: &mut Plan,
) {
    let mut taken = vec![false; sources.len()];
    for dst in sinks {
        let incoming = dst.chan.short_channel_id;
        let candidates: Vec<usize> = (0..sources.len())
            .filter(|&k| !taken[k])
            .filter(|&k| !avoid.contains(&(sources[k].chan.short_channel_id, incoming)))
            .collect();
        if candidates.is_empty() {
            if taken.iter().any(|t| !t) {
                out.skipped.push((
                    incoming,
                    format!(
                        "{} below target, but every source left was found too dear or without a route to it",
                        display_sat(dst.movable_msat)
                    ),
                ));
                continue;
            }
            break;
        }
        // The first candidate's refusal is the one told when none will do.
        let mut first_refusal = None;
        let mut chosen = None;
        for &k in &candidates {
            match priced(&sources[k], dst, config) {
                Ok(m) => {
                    chosen = Some((k, m));
                    break;
                }
                Err(why) => {
                    first_refusal.get_or_insert(why);
                    // Without lost profit the source does not change the cap: one try is all.
                    if !config.lost_profit {
                        break;
                    }
                }
            }
        }
        match chosen {
            Some((k, m)) => {
                taken[k] = true;
                out.moves.push(m);
            }
            None => {
                if !config.lost_profit {
                    taken[candidates[0]] = true;
                }
                out.skipped
                    .push((incoming, first_refusal.unwrap_or_default()));
            }
        }
    }
}

/// The move from `src` into `dst`: as much as both can, within the planner's limits, and what it
/// may pay; or why there is none.
pub(crate) fn priced(src: &End, dst: &End, config: &PlanConfig) -> Result<Move, String> {
    let min = config.min_amount_msat;
    let incoming = dst.chan.short_channel_id;
    let most = src
        .movable_msat
        .min(dst.movable_msat)
        .min(config.max_amount_msat.unwrap_or(u64::MAX));
    let amount = most / MSAT_PER_SAT * MSAT_PER_SAT;
    if amount < min || amount == 0 {
        return Err(format!(
            "a move from {} could carry only {}, below the min amount {}",
            src.chan.short_channel_id,
            display_sat(amount),
            display_sat(min)
        ));
    }
    let (sink_fee, source_fee) = (our_fee(dst.chan), our_fee(src.chan));
    let cap = fee_cap_msat(
        amount,
        sink_fee,
        source_fee,
        config.lost_profit,
        config.feeratio_millionths,
        config.maxfeeppm,
    );
    if cap == 0 {
        let earns = sink_fee.earns_msat(amount);
        let lost = source_fee.earns_msat(amount);
        return Err(if config.lost_profit && earns > 0 {
            format!(
                "lost profit: {} out through {incoming} earns {earns}msat, but {} would earn {lost}msat forwarding it out (our fee there {}msat + {}ppm): moving it pays nothing back",
                display_sat(amount),
                src.chan.short_channel_id,
                source_fee.fee_base_msat,
                source_fee.fee_proportional_millionths
            )
        } else {
            format!(
                "the fee cap for {} from {} is 0msat (feeratio {}/1000000, maxfeeppm {}, \
                 our fee out {}msat + {}ppm): it could not pay back",
                display_sat(amount),
                src.chan.short_channel_id,
                config.feeratio_millionths,
                config.maxfeeppm,
                sink_fee.fee_base_msat,
                sink_fee.fee_proportional_millionths
            )
        });
    }
    Ok(Move {
        outgoing: src.chan.short_channel_id,
        incoming,
        amount_msat: amount,
        fee_cap_msat: cap,
        reason: format!(
            "moves {} from {} ({}% ours, target {}%) to {} ({}%, target {}%)",
            display_sat(amount),
            src.chan.short_channel_id,
            percent(src.chan.to_us_msat, src.chan.total_msat),
            src.target_percent,
            incoming,
            percent(dst.chan.to_us_msat, dst.chan.total_msat),
            dst.target_percent
        ),
    })
}

fn our_fee(c: &OurChannel) -> OurFee {
    OurFee {
        fee_base_msat: c.fee_base_msat,
        fee_proportional_millionths: c.fee_proportional_millionths,
    }
}

impl Plan {
    /// Fits the moves, in order, into the budget as if all were started at once: each move's
    /// fee cap is cut to what is left, or the move goes to `skipped` when nothing is.
    pub fn apply_budget(&mut self, budget: &Budget, spent: Spent) {
        let mut spent = spent;
        let mut kept = Vec::with_capacity(self.moves.len());
        for mut m in std::mem::take(&mut self.moves) {
            match budget.admit(m.fee_cap_msat, &spent) {
                Admission::Allowed { fee_cap_msat } => {
                    m.fee_cap_msat = fee_cap_msat;
                    spent.reserved_msat = spent.reserved_msat.saturating_add(fee_cap_msat);
                    kept.push(m);
                }
                Admission::Refused { reason } => self.skipped.push((m.incoming, reason)),
            }
        }
        self.moves = kept;
        self.skipped.sort_by_key(|s| s.0);
    }

    /// JSON with CLN-style field names.
    pub fn to_json(&self) -> Value {
        json!({
            "moves": self.moves.iter().map(Move::to_json).collect::<Vec<_>>(),
            "sources": self.sources.iter().map(Imbalance::to_json).collect::<Vec<_>>(),
            "sinks": self.sinks.iter().map(Imbalance::to_json).collect::<Vec<_>>(),
            "skipped": self
                .skipped
                .iter()
                .map(|(scid, reason)| json!({"short_channel_id": scid.to_string(), "reason": reason}))
                .collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::history::{DAY_SECS, Entry, History, Outcome};

    const SAT: u64 = MSAT_PER_SAT;
    const M: u64 = 1_000_000 * SAT; // a 1M-sat channel

    fn scid(n: u64) -> Scid {
        format!("{n}x1x0").parse().unwrap()
    }

    fn peer(n: u64) -> String {
        format!("02{:064x}", n)
    }

    /// Channel `n` (scid `nx1x0`, peer n) with `pct` percent ours of `total`; 1% reserve each
    /// side; our fee 1000msat + 100ppm.
    fn ch(n: u64, pct: u64, total: u64) -> OurChannel {
        let to_us = total * pct / 100;
        OurChannel {
            short_channel_id: scid(n),
            peer_id: peer(n),
            state_normal: true,
            peer_connected: true,
            to_us_msat: to_us,
            total_msat: total,
            spendable_msat: to_us.saturating_sub(total / 100),
            receivable_msat: (total - to_us).saturating_sub(total / 100),
            htlcs_out_msat: 0,
            htlcs_in_msat: 0,
            fee_base_msat: 1000,
            fee_proportional_millionths: 100,
            remote_fee: None,
        }
    }

    fn six() -> Vec<OurChannel> {
        [90, 80, 60, 40, 20, 10]
            .iter()
            .enumerate()
            .map(|(i, &p)| ch(i as u64 + 1, p, M))
            .collect()
    }

    fn moves(p: &Plan) -> Vec<(u64, u64, u64, u64)> {
        p.moves
            .iter()
            .map(|m| {
                (
                    m.outgoing.block(),
                    m.incoming.block(),
                    m.amount_msat / SAT,
                    m.fee_cap_msat,
                )
            })
            .collect()
    }

    /// `(outgoing block, incoming block, sat)` of each move.
    fn pairs(p: &Plan) -> Vec<(u64, u64, u64)> {
        moves(p).iter().map(|m| (m.0, m.1, m.2)).collect()
    }

    fn skipped(p: &Plan) -> Vec<u64> {
        p.skipped.iter().map(|s| s.0.block()).collect()
    }

    #[test]
    fn lost_profit_pairs_a_sink_with_a_source_that_earns_less() {
        // Channel 1 (the largest source) earns 1000 ppm out, as much as sink 6 does: with lost
        // profit nothing is worth paying for that pair, so sink 6 takes source 2 (100 ppm).
        let mut chans = six();
        chans[0].fee_proportional_millionths = 1000;
        chans[5].fee_proportional_millionths = 1000;
        let before = plan(&chans, &Settings::default(), &PlanConfig::default());
        assert_eq!(
            pairs(&before)[0],
            (1, 6, 400_000),
            "without it the largest pair"
        );
        let config = PlanConfig {
            lost_profit: true,
            ..PlanConfig::default()
        };
        let p = plan(&chans, &Settings::default(), &config);
        // 0.5 x ((1000 + 300000) - (1000 + 30000)) = 135000 for sink 6 from source 2.
        assert_eq!(moves(&p)[0], (2, 6, 300_000, 135_000), "{p:?}");
        // Sink 5 (100 ppm) cannot pay back against source 1 (1000 ppm) either, nor against 3:
        // both earn as much or more. It is skipped, saying it is lost profit that rules it out.
        assert!(!pairs(&p).iter().any(|m| m.1 == 5), "{p:?}");
        let why = &p.skipped.iter().find(|s| s.0.block() == 5).unwrap().1;
        assert!(why.starts_with("lost profit: "), "{why}");
        assert!(why.contains("would earn"), "{why}");
        assert!(!why.contains("  "), "one line, no gaps: {why}");
    }

    #[test]
    fn six_channels_pair_largest_with_largest() {
        let p = plan(&six(), &Settings::default(), &PlanConfig::default());
        // Caps: 0.5 x (1000 + 100ppm of the amount), far below 1000ppm of it.
        assert_eq!(
            moves(&p),
            vec![
                (1, 6, 400_000, 20_500),
                (2, 5, 300_000, 15_500),
                (3, 4, 100_000, 5_500)
            ]
        );
        assert_eq!(
            p.moves[0].reason,
            "moves 400000sat from 1x1x0 (90% ours, target 50%) to 6x1x0 (10%, target 50%)"
        );
        let dist = |v: &[Imbalance]| {
            v.iter()
                .map(|i| (i.short_channel_id.block(), i.distance_msat / SAT as i64))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            dist(&p.sources),
            vec![(1, 400_000), (2, 300_000), (3, 100_000)]
        );
        assert_eq!(
            dist(&p.sinks),
            vec![(6, -400_000), (5, -300_000), (4, -100_000)]
        );
        assert!(p.skipped.is_empty());
        let j = p.to_json();
        assert_eq!(j["moves"][0]["outgoing"], "1x1x0");
        assert_eq!(j["moves"][0]["incoming"], "6x1x0");
        assert_eq!(j["moves"][0]["amount_msat"], 400_000_000);
        assert_eq!(j["moves"][0]["fee_cap_msat"], 20_500);
        assert_eq!(j["sinks"][0]["short_channel_id"], "6x1x0");
        assert_eq!(j["sinks"][0]["distance_msat"], -400_000_000i64);
        assert_eq!(j["sources"][2]["movable_msat"], 100_000_000);
        assert_eq!(j["skipped"], json!([]));
    }

    #[test]
    fn avoided_pairs_take_the_next_source() {
        let none = HashSet::new();
        let a = plan_avoiding(&six(), &Settings::default(), &PlanConfig::default(), &none);
        assert_eq!(
            a,
            plan(&six(), &Settings::default(), &PlanConfig::default())
        );
        // 1 -> 6 failed on price: 6 takes 2 (300000sat of its 400000), 5 takes 1, 4 takes 3.
        let avoid = HashSet::from([(scid(1), scid(6))]);
        let p = plan_avoiding(&six(), &Settings::default(), &PlanConfig::default(), &avoid);
        assert_eq!(
            pairs(&p),
            vec![(2, 6, 300_000), (1, 5, 300_000), (3, 4, 100_000)]
        );
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        // Every source failed to reach 6: it is skipped, saying so; the others still pair.
        let avoid: HashSet<_> = [1, 2, 3].map(|s| (scid(s), scid(6))).into();
        let p = plan_avoiding(&six(), &Settings::default(), &PlanConfig::default(), &avoid);
        assert_eq!(pairs(&p), vec![(1, 5, 300_000), (2, 4, 100_000)]);
        assert_eq!(skipped(&p), vec![6]);
        assert!(
            p.skipped[0]
                .1
                .contains("every source left was found too dear or without a route to it"),
            "{:?}",
            p.skipped
        );
    }

    #[test]
    fn input_order_does_not_matter() {
        let mut chans = six();
        chans.extend([ch(7, 90, M), ch(8, 10, M)]); // ties with 1 and 6: broken by scid
        let a = plan(&chans, &Settings::default(), &PlanConfig::default());
        chans.reverse();
        let b = plan(&chans, &Settings::default(), &PlanConfig::default());
        assert_eq!(a, b);
        assert_eq!(
            pairs(&a),
            vec![
                (1, 6, 400_000),
                (7, 8, 400_000),
                (2, 5, 300_000),
                (3, 4, 100_000)
            ]
        );
    }

    #[test]
    fn exclusions() {
        let mut s = Settings::default();
        s.channels.insert(
            scid(1),
            ChannelSettings {
                exclude: Some(true),
                ..Default::default()
            },
        );
        let p = plan(&six(), &s, &PlanConfig::default());
        assert_eq!(pairs(&p), vec![(2, 6, 300_000), (3, 5, 100_000)]);
        assert_eq!(skipped(&p), vec![1]);
        assert_eq!(
            p.skipped[0].1,
            "400000sat above target (90% ours, target 50%), but excluded by settings"
        );
        assert!(p.sources.iter().all(|i| i.short_channel_id != scid(1)));

        // A peer-wide exclusion, with one of that peer's channels let back in.
        let mut chans = six();
        chans[5].peer_id = peer(5); // 5 and 6 share peer 5
        let mut s = Settings::default();
        s.peers.insert(
            peer(5),
            ChannelSettings {
                exclude: Some(true),
                ..Default::default()
            },
        );
        let p = plan(&chans, &s, &PlanConfig::default());
        assert_eq!(skipped(&p), vec![5, 6]);
        s.channels.insert(
            scid(6),
            ChannelSettings {
                exclude: Some(false),
                ..Default::default()
            },
        );
        let p = plan(&chans, &s, &PlanConfig::default());
        assert_eq!(skipped(&p), vec![5]);
        assert_eq!(pairs(&p), vec![(1, 6, 400_000), (2, 4, 100_000)]);
    }

    #[test]
    fn per_peer_and_per_channel_targets() {
        let mut chans = six();
        chans[4].peer_id = peer(6); // 5 and 6 share peer 6
        let mut s = Settings::default();
        s.peers.insert(
            peer(6),
            ChannelSettings {
                target_percent: Some(20),
                ..Default::default()
            },
        );
        // Peer 6 at 20%: channel 5 (20%) is balanced, 6 (10%) is 100000sat short.
        let p = plan(&chans, &s, &PlanConfig::default());
        assert_eq!(pairs(&p), vec![(1, 4, 100_000), (2, 6, 100_000)]);
        assert_eq!(
            p.moves[1].reason,
            "moves 100000sat from 2x1x0 (80% ours, target 50%) to 6x1x0 (10%, target 20%)"
        );
        // The channel's own target beats its peer's: 5 at target 70% is 500000sat short.
        s.channels.insert(
            scid(5),
            ChannelSettings {
                target_percent: Some(70),
                ..Default::default()
            },
        );
        // And channel 1 aims at 80%: 100000sat above.
        s.channels.insert(
            scid(1),
            ChannelSettings {
                target_percent: Some(80),
                ..Default::default()
            },
        );
        let p = plan(&chans, &s, &PlanConfig::default());
        assert_eq!(
            pairs(&p),
            vec![(2, 5, 300_000), (1, 4, 100_000), (3, 6, 100_000)]
        );
        assert_eq!(
            s.effective(scid(5), &peer(6), &PlanConfig::default()),
            Effective {
                exclude: false,
                target_percent: 70
            }
        );
    }

    #[test]
    fn unusable_channels_are_neither() {
        let mut chans = six();
        chans[0].state_normal = false;
        chans[5].peer_connected = false;
        chans.push(OurChannel {
            state_normal: false,
            ..ch(7, 50, M) // balanced: not even listed
        });
        let p = plan(&chans, &Settings::default(), &PlanConfig::default());
        assert_eq!(pairs(&p), vec![(2, 5, 300_000), (3, 4, 100_000)]);
        assert_eq!(skipped(&p), vec![1, 6]);
        assert!(p.skipped[0].1.ends_with("but not CHANNELD_NORMAL"));
        assert!(p.skipped[1].1.starts_with("400000sat below target"));
        assert!(p.skipped[1].1.ends_with("is not connected"));
        assert_eq!(p.sources.len(), 2);
        assert_eq!(p.sinks.len(), 2);
    }

    #[test]
    fn a_sink_the_peer_would_not_forward_into_is_skipped_for_its_sibling() {
        // Channels 5 (20% ours) and 6 (10%) both to peer 5, at the same fees from it: the
        // peer sends to us over 6 (more receivable), so a move into 5 would come back over 6.
        let mut chans = six();
        chans[5].peer_id = peer(5);
        chans[4].remote_fee = Some((1000, 10));
        chans[5].remote_fee = Some((1000, 10));
        let p = plan(&chans, &Settings::default(), &PlanConfig::default());
        let into: Vec<u64> = p.moves.iter().map(|m| m.incoming.block()).collect();
        assert!(into.contains(&6) && !into.contains(&5), "{:?}", moves(&p));
        assert_eq!(skipped(&p), vec![5]);
        assert!(
            p.skipped[0].1.contains("would come back over 6x1x0"),
            "{:?}",
            p.skipped
        );
        assert_eq!(p.sinks.len(), 3, "still listed as off target");
        // Other fees from the peer on 5: the peer would not take 6 for it; both are filled.
        chans[4].remote_fee = Some((1000, 20));
        let p = plan(&chans, &Settings::default(), &PlanConfig::default());
        let into: Vec<u64> = p.moves.iter().map(|m| m.incoming.block()).collect();
        assert!(into.contains(&6) && into.contains(&5), "{:?}", moves(&p));
    }

    #[test]
    fn min_and_max_amount() {
        let config = PlanConfig {
            min_amount_msat: 150_000 * SAT,
            ..Default::default()
        };
        // 3 and 4 are 100000sat off: balanced enough, not listed at all.
        let p = plan(&six(), &Settings::default(), &config);
        assert_eq!(pairs(&p), vec![(1, 6, 400_000), (2, 5, 300_000)]);
        assert_eq!(p.sources.len() + p.sinks.len(), 4);

        let config = PlanConfig {
            max_amount_msat: Some(250_000 * SAT),
            ..Default::default()
        };
        let p = plan(&six(), &Settings::default(), &config);
        assert_eq!(
            moves(&p).iter().map(|m| m.2).collect::<Vec<_>>(),
            vec![250_000, 250_000, 100_000]
        );

        // A source whose funds are tied up: 80% ours but only 50000sat spendable.
        let mut chans = six();
        chans[1].spendable_msat = 50_000 * SAT;
        let p = plan(&chans, &Settings::default(), &PlanConfig::default());
        assert_eq!(skipped(&p), vec![2]);
        assert!(
            p.skipped[0]
                .1
                .contains("only 50000sat spendable (less room for the fee): under the min"),
            "{}",
            p.skipped[0].1
        );
        assert_eq!(pairs(&p), vec![(1, 6, 400_000), (3, 5, 100_000)]);
        // A sink that can receive less than it lacks: the move is what it can take.
        let mut chans = six();
        chans[5].receivable_msat = 123_456_789;
        let p = plan(&chans, &Settings::default(), &PlanConfig::default());
        assert_eq!(
            pairs(&p),
            vec![(1, 5, 300_000), (2, 6, 123_456), (3, 4, 100_000)]
        );
    }

    #[test]
    fn in_flight_htlcs_count_against_the_move() {
        let mut chans = vec![ch(1, 90, M), ch(2, 10, M)];
        // 100000sat leaving channel 1 and 150000sat arriving on 2, not yet settled.
        chans[0].htlcs_out_msat = 100_000 * SAT;
        chans[1].htlcs_in_msat = 150_000 * SAT;
        let p = plan(&chans, &Settings::default(), &PlanConfig::default());
        assert_eq!(p.sources[0].distance_msat, 300_000 * SAT as i64);
        assert_eq!(p.sinks[0].distance_msat, -(250_000 * SAT as i64));
        assert_eq!(moves(&p)[0].2, 250_000);
        // Straddling the target either way: neither a source nor a sink.
        let mut c = ch(3, 55, M);
        c.htlcs_out_msat = 200_000 * SAT;
        let p = plan(&[c], &Settings::default(), &PlanConfig::default());
        assert!(p.sources.is_empty() && p.sinks.is_empty() && p.moves.is_empty());
    }

    #[test]
    fn config_validation() {
        assert!(PlanConfig::default().validate().is_ok());
        let bad = PlanConfig {
            target_percent: 101,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("101%"));
        let bad = PlanConfig {
            max_amount_msat: Some(1000),
            ..Default::default()
        };
        assert_eq!(
            bad.validate().unwrap_err(),
            "max amount 1sat is below min amount 100000sat"
        );
    }

    /// A small deterministic generator (xorshift64*), so random cases replay from the seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            if n == 0 { 0 } else { self.next() % n }
        }
    }

    fn random_channels(rng: &mut Rng, n: u64) -> Vec<OurChannel> {
        (1..=n)
            .map(|i| {
                let total = (rng.below(20) + 1) * 500_000 * SAT;
                let mut c = ch(i, rng.below(101), total);
                c.peer_id = peer(rng.below(n / 2 + 1));
                c.htlcs_out_msat = rng.below(4) * c.to_us_msat / 10;
                c.htlcs_in_msat = rng.below(4) * (total - c.to_us_msat) / 10;
                c.spendable_msat = c.spendable_msat.saturating_sub(c.htlcs_out_msat);
                c.receivable_msat = c.receivable_msat.saturating_sub(c.htlcs_in_msat);
                c.state_normal = rng.below(20) != 0;
                c.peer_connected = rng.below(20) != 0;
                c.fee_base_msat = rng.below(3) * 500;
                c.fee_proportional_millionths = rng.below(4) as u32 * 100;
                c
            })
            .collect()
    }

    #[test]
    fn a_thousand_random_channels_keep_every_rule() {
        let mut rng = Rng(0x5eed);
        let config = PlanConfig {
            max_amount_msat: Some(2_000_000 * SAT),
            ..Default::default()
        };
        for _ in 0..5 {
            let chans = random_channels(&mut rng, 1000);
            let p = plan(&chans, &Settings::default(), &config);
            assert!(!p.moves.is_empty());
            let by_scid: HashMap<Scid, &OurChannel> =
                chans.iter().map(|c| (c.short_channel_id, c)).collect();
            let mut used = std::collections::HashSet::new();
            for m in &p.moves {
                assert!(
                    used.insert(m.outgoing) && used.insert(m.incoming),
                    "once each"
                );
                let (src, dst) = (by_scid[&m.outgoing], by_scid[&m.incoming]);
                assert!(src.state_normal && src.peer_connected);
                assert!(dst.state_normal && dst.peer_connected);
                assert!(m.amount_msat >= config.min_amount_msat);
                assert!(m.amount_msat <= config.max_amount_msat.unwrap());
                assert_eq!(m.amount_msat % SAT, 0);
                assert!(m.amount_msat + m.fee_cap_msat <= src.spendable_msat);
                assert!(m.amount_msat <= dst.receivable_msat);
                let t = |c: &OurChannel| c.total_msat / 2;
                assert!(src.to_us_msat - src.htlcs_out_msat - m.amount_msat >= t(src));
                assert!(dst.to_us_msat + dst.htlcs_in_msat + m.amount_msat <= t(dst));
                assert!(m.fee_cap_msat > 0);
                assert!(m.fee_cap_msat <= m.amount_msat * config.maxfeeppm as u64 / 1_000_000);
            }
            assert!(
                p.moves
                    .windows(2)
                    .all(|w| w[0].amount_msat >= w[1].amount_msat)
            );
        }
    }

    #[test]
    fn budget_cuts_and_refuses() {
        let b = Budget {
            per_run_msat: Some(10_000),
            daily_msat: Some(25_000),
        };
        let spent = Spent {
            run_msat: 4_000,
            last_24h_msat: 20_000,
            reserved_msat: 1_000,
        };
        assert_eq!(b.remaining_msat(&spent), Some(4_000)); // daily: 25000 - 20000 - 1000
        assert_eq!(
            b.admit(3_000, &spent),
            Admission::Allowed {
                fee_cap_msat: 3_000
            }
        );
        assert_eq!(
            b.admit(9_000, &spent),
            Admission::Allowed {
                fee_cap_msat: 4_000
            }
        );
        let full = Spent {
            reserved_msat: 5_000,
            ..spent
        };
        let Admission::Refused { reason } = b.admit(1, &full) else {
            panic!("should refuse");
        };
        assert_eq!(
            reason,
            "daily fee budget 25sat used: 20sat spent in the last 24 h, 5sat reserved by attempts in flight"
        );
        let run_full = Spent {
            run_msat: 10_000,
            last_24h_msat: 0,
            reserved_msat: 0,
        };
        let Admission::Refused { reason } = b.admit(1, &run_full) else {
            panic!("should refuse");
        };
        assert!(reason.starts_with("per-run fee budget 10sat used"));
        assert_eq!(Budget::default().remaining_msat(&full), None);
        assert_eq!(
            Budget::default().admit(7, &full),
            Admission::Allowed { fee_cap_msat: 7 }
        );

        // On a plan: caps are reserved in order; the third move finds nothing left.
        let mut p = plan(&six(), &Settings::default(), &PlanConfig::default());
        p.apply_budget(
            &Budget {
                per_run_msat: Some(30_000),
                daily_msat: None,
            },
            Spent::default(),
        );
        assert_eq!(
            moves(&p),
            vec![(1, 6, 400_000, 20_500), (2, 5, 300_000, 9_500)]
        );
        assert_eq!(skipped(&p), vec![4]);
        assert!(p.skipped[0].1.starts_with("per-run fee budget 30sat used"));
    }

    /// Runs of automatic moves with random fee caps, random fees (at most the cap, as the
    /// rebalance enforces), random failures, concurrency and time passing: at every step, fees of
    /// this run + reservations stay within the per-run budget, and fees of the rolling 24 h +
    /// reservations within the daily budget.
    #[test]
    fn budgets_hold_over_random_runs() {
        let (mut cut, mut refused) = (0, 0);
        for seed in 1..=200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let budget = Budget {
                per_run_msat: (rng.below(4) != 0).then(|| rng.below(50_000) + 1),
                daily_msat: (rng.below(4) != 0).then(|| rng.below(150_000) + 1),
            };
            let mut history = History::new();
            let mut now = 1_800_000_000 + rng.below(DAY_SECS);
            let mut hash = 0u64;
            for _run in 0..rng.below(12) + 1 {
                let mut run_spent = 0u64;
                // (started_at, cap) of attempts in flight
                let mut in_flight: Vec<(u64, u64)> = Vec::new();
                let check = |history: &History, run_spent: u64, in_flight: &[(u64, u64)], now| {
                    let reserved: u64 = in_flight.iter().map(|a| a.1).sum();
                    if let Some(b) = budget.per_run_msat {
                        assert!(run_spent + reserved <= b, "seed {seed}: per-run budget");
                    }
                    if let Some(b) = budget.daily_msat {
                        // The window counted directly, not through fees_since.
                        let day: u64 = history
                            .entries()
                            .iter()
                            .filter(|e| e.started_at + DAY_SECS >= now)
                            .map(|e| e.fee_msat)
                            .sum();
                        assert!(day + reserved <= b, "seed {seed}: daily budget at {now}");
                        assert_eq!(day, history.fees_since(now - DAY_SECS));
                    }
                };
                for _step in 0..rng.below(30) + 1 {
                    match rng.below(3) {
                        0 => {
                            let spent = Spent {
                                run_msat: run_spent,
                                last_24h_msat: history.fees_since(now - DAY_SECS),
                                reserved_msat: in_flight.iter().map(|a| a.1).sum(),
                            };
                            let asked = rng.below(20_000);
                            match budget.admit(asked, &spent) {
                                Admission::Allowed { fee_cap_msat } => {
                                    assert!(fee_cap_msat <= asked);
                                    cut += usize::from(fee_cap_msat < asked);
                                    in_flight.push((now, fee_cap_msat));
                                }
                                Admission::Refused { .. } => refused += 1,
                            }
                        }
                        1 if !in_flight.is_empty() => {
                            let i = rng.below(in_flight.len() as u64) as usize;
                            let (started_at, cap) = in_flight.swap_remove(i);
                            let complete = rng.below(3) != 0;
                            let fee = if complete { rng.below(cap + 1) } else { 0 };
                            run_spent += fee;
                            hash += 1;
                            let mut payment_hash = [0u8; 32];
                            payment_hash[..8].copy_from_slice(&hash.to_be_bytes());
                            assert!(history.record(Entry {
                                started_at,
                                outgoing: scid(1),
                                incoming: scid(2),
                                amount_msat: 100_000_000,
                                fee_msat: fee,
                                attempts: 1,
                                outcome: if complete {
                                    Outcome::Complete
                                } else {
                                    Outcome::Failed { code: 204 }
                                },
                                duration_ms: 1000,
                                job_id: 1,
                                payment_hash,
                                error: String::new(),
                                parts: 1,
                            }));
                        }
                        _ => now += rng.below(4 * 3600),
                    }
                    check(&history, run_spent, &in_flight, now);
                }
                // The run ends when its attempts resolve (here: all fail, costing nothing).
                in_flight.clear();
                now += rng.below(DAY_SECS / 2);
                check(&history, run_spent, &in_flight, now);
            }
        }
        // The budgets were actually reached, often.
        assert!(cut > 100 && refused > 100, "cut {cut}, refused {refused}");
    }
}

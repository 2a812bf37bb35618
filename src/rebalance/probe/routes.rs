//! Which probes prove a set: its parts one after another (never two probes of ours at once on a
//! channel of ours), where parts share channels a probe carrying what they put on them
//! together, and what the probes proved so far against what the set needs.

use super::super::session::{Session, middle};
use crate::core::graph::EdgeIdx;
use crate::core::route::Hop;
use std::collections::HashMap;

/// The probe part `i` of `set` still needs: when other parts take exactly its channels, one
/// probe for them all unless their sum there is proven; else the part itself unless its own
/// amount is proven on every channel of it.
pub(super) fn for_part(
    s: &Session,
    set: &[Vec<Hop>],
    i: usize,
    used: &Option<HashMap<EdgeIdx, u64>>,
    proven: &HashMap<EdgeIdx, u64>,
) -> Option<Vec<Hop>> {
    if let Some(together) = together_route(s, set, i, used) {
        let sum_proven = used
            .as_ref()
            .zip(middle_edges(s, &set[i]))
            .is_some_and(|(used, path)| all_proven(&path, used, proven));
        return (!sum_proven).then_some(together);
    }
    (!already_proven(s, &set[i], proven)).then(|| set[i].clone())
}

/// Once every part carried: a probe for the channels parts share from the outgoing peer on
/// that no probe proved at their sum yet (see [`shared_prefix`]).
pub(super) fn for_shared(
    s: &Session,
    set: &[Vec<Hop>],
    used: &Option<HashMap<EdgeIdx, u64>>,
    proven: &HashMap<EdgeIdx, u64>,
) -> Option<Vec<Hop>> {
    (0..set.len()).find_map(|i| shared_prefix(s, set, i, used, proven))
}

/// What a probe carrying `most` asks: a little more (1/200), so that the next set at the same
/// amount, whose fees on the way differ a little, needs no probe of the same channels again.
fn with_margin(most: u64) -> u64 {
    most.saturating_add(most / 200)
}

/// Whether every one of `edges` was proven to carry what the set puts on it (`used`).
fn all_proven(
    edges: &[EdgeIdx],
    used: &HashMap<EdgeIdx, u64>,
    proven: &HashMap<EdgeIdx, u64>,
) -> bool {
    edges.iter().all(|e| {
        proven
            .get(e)
            .is_some_and(|p| used.get(e).is_some_and(|u| u <= p))
    })
}

/// The channel direction that stands for `h`'s parallel group (the channels between the same
/// two nodes at the same fees); `None` when it is not in the graph. A node forwards
/// non-strictly, over whichever of them has the most spendable (lightningd's `best_channel`),
/// so a probe asked of one proves one HTLC's worth over the group, never once per channel:
/// what probes prove, and what a set puts on channels, is counted per group.
pub(super) fn pool_of(s: &Session, h: &Hop) -> Option<EdgeIdx> {
    let e = s.graph.edge_by_scid(h.short_channel_id, h.direction)?;
    Some(s.graph.parallel_lead(e))
}

/// The channel directions of `hops` between our two hops, each as its group's ([`pool_of`];
/// `None` when one is not in the graph).
fn middle_edges(s: &Session, hops: &[Hop]) -> Option<Vec<EdgeIdx>> {
    middle(hops).map(|h| pool_of(s, h)).collect()
}

/// A probe of the channels part `i` shares with other parts from the outgoing peer on (the
/// same parts on each), carrying what those parts put on them together, to the node where the
/// parts part ways: it fails there as an unknown payment, having proven every hop before.
/// Parts probed one after another each prove their own amount on shared channels, never
/// their sum; the channels after the fork are left to each part's own probe. `None` when the
/// part shares no such channels, shares all of them (see [`together_route`]), or they are
/// proven already.
fn shared_prefix(
    s: &Session,
    set: &[Vec<Hop>],
    i: usize,
    used: &Option<HashMap<EdgeIdx, u64>>,
    proven: &HashMap<EdgeIdx, u64>,
) -> Option<Vec<Hop>> {
    let used = used.as_ref()?;
    let paths: Vec<Vec<EdgeIdx>> = set
        .iter()
        .map(|h| middle_edges(s, h))
        .collect::<Option<_>>()?;
    let path = &paths[i];
    let sharers = |e: &EdgeIdx| -> Vec<usize> {
        (0..paths.len()).filter(|&j| paths[j].contains(e)).collect()
    };
    let first = sharers(path.first()?);
    if first.len() < 2 {
        return None;
    }
    let k = path.iter().take_while(|e| sharers(e) == first).count();
    if k == path.len() {
        return None;
    }
    let edges = &path[..k];
    if all_proven(edges, used, proven) {
        return None;
    }
    let most = edges.iter().filter_map(|e| used.get(e)).copied().max()?;
    let hops = s
        .circle
        .probe_prefix_at(&s.graph, edges, with_margin(most))?;
    (hops[0].amount_msat <= s.req.out.spendable_msat).then_some(hops)
}

/// Whether the incoming peer's hop to us, `last`, asks more than the peer forwards in one
/// HTLC or than we can receive: a probe doing so must fail at the peer.
pub(super) fn past_last_hop(s: &Session, last: &Hop) -> bool {
    let htlc_max = s
        .req
        .inc
        .updates
        .remote
        .as_ref()
        .and_then(|u| u.htlc_maximum_msat)
        .unwrap_or(u64::MAX);
    last.amount_msat > htlc_max.min(s.req.inc.receivable_msat)
}

/// Part `i` of `set` as one probe for every part that takes the same channels: when those
/// parts are all that pass over its channels between the peers (they differ in amount only,
/// as when the incoming peer's htlc maximum splits the amount), one probe carrying what they
/// put on the channels together proves the lot, where a probe each proves each alone (one
/// probe at a time through our channel). Only the last hop, ours from the incoming peer, may
/// be asked more than it forwards in one HTLC: the probe then fails there, having proven every
/// hop before; the set's parts each stay within it. `None`: probe the part alone.
fn together_route(
    s: &Session,
    set: &[Vec<Hop>],
    i: usize,
    used: &Option<HashMap<EdgeIdx, u64>>,
) -> Option<Vec<Hop>> {
    let used = used.as_ref()?;
    let path = middle_edges(s, &set[i])?;
    let mut same = 0;
    for (j, other) in set.iter().enumerate() {
        let theirs = middle_edges(s, other)?;
        if theirs == path {
            same += 1;
        } else if j != i && theirs.iter().any(|e| path.contains(e)) {
            return None; // another part shares only some of its channels
        }
    }
    if same < 2 {
        return None;
    }
    let most = path.iter().filter_map(|e| used.get(e)).copied().max()?;
    let hops = s
        .circle
        .probe_route_at(&s.graph, &set[i], with_margin(most))?;
    (hops[0].amount_msat <= s.req.out.spendable_msat).then_some(hops)
}

/// Whether every channel direction of `set` (between our two hops) carries no more with all
/// parts together than one probe proved it carries. Parts leave through the same channel of
/// ours, so they are probed one after another: two parts over one channel each reaching us
/// prove each, not their sum.
pub(super) fn proven_together(
    s: &Session,
    set: &[Vec<Hop>],
    proven: &HashMap<EdgeIdx, u64>,
) -> bool {
    set_use(s, set).is_some_and(|used| {
        let edges: Vec<EdgeIdx> = used.keys().copied().collect();
        all_proven(&edges, &used, proven)
    })
}

/// What `set`'s parts carry together over each channel direction between our two hops, per
/// parallel group ([`pool_of`]; `None` when one is not in the graph).
pub(super) fn set_use(s: &Session, set: &[Vec<Hop>]) -> Option<HashMap<EdgeIdx, u64>> {
    let mut used: HashMap<EdgeIdx, u64> = HashMap::new();
    for hops in set {
        for h in middle(hops) {
            let e = pool_of(s, h)?;
            let u = used.entry(e).or_default();
            *u = u.saturating_add(h.amount_msat);
        }
    }
    Some(used)
}

/// Whether every channel direction of the part `hops` (between our two hops) was already
/// proven to carry the part's own amount there: probing it again would prove nothing (what
/// the parts put on channels they share is left to [`for_shared`], or cannot be proven).
fn already_proven(s: &Session, hops: &[Hop], proven: &HashMap<EdgeIdx, u64>) -> bool {
    over_proven(s, hops, proven) == Some(0)
}

/// The most any hop of `hops` between our two asks over what probes proved its channel
/// direction carries (0: every one proven for it); `None` when one was never proven (or is
/// not in the graph).
fn over_proven(s: &Session, hops: &[Hop], proven: &HashMap<EdgeIdx, u64>) -> Option<u64> {
    middle(hops).try_fold(0u64, |most, h| {
        let e = pool_of(s, h)?;
        Some(most.max(h.amount_msat.saturating_sub(*proven.get(&e)?)))
    })
}

/// A part is cut to what its route was proven to carry when that is this much short of its
/// amount at most (1/32: as close as [`super::probe_max`]'s search goes).
const CUT_AT_MOST: u64 = 32;

/// `set` with parts whose channels probes already proved to carry a little less than they ask
/// (within 1/[`CUT_AT_MOST`] of their amount) cut to what they carry, the smallest cuts first
/// while the set still moves more than `lo` (else the search would learn nothing), and what
/// the set then moves; `None` when no part is cut. After a failure the planner often plans a
/// part over a route a probe just proved, a little above what it proved (the model, having
/// learned the lower bound, prices the rest as nearly sure): probing it again would spend a
/// probe and its seconds to prove next to nothing more.
pub(super) fn cut_to_proven(
    s: &Session,
    set: &[Vec<Hop>],
    proven: &HashMap<EdgeIdx, u64>,
    lo: u64,
) -> Option<(Vec<Vec<Hop>>, u64)> {
    let delivered = |h: &[Hop]| h.last().map_or(0, |l| l.amount_msat);
    let mut total: u64 = set.iter().map(|h| delivered(h)).sum();
    let mut cuts: Vec<(u64, usize, Vec<Hop>)> = set
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let c = cut_part(s, h, proven)?;
            Some((delivered(h) - delivered(&c), i, c))
        })
        .collect();
    cuts.sort_by_key(|(by, i, _)| (*by, *i));
    let mut out = set.to_vec();
    let mut cut = false;
    for (by, i, c) in cuts {
        if total - by <= lo {
            break;
        }
        total -= by;
        out[i] = c;
        cut = true;
    }
    cut.then_some((out, total))
}

/// The part `hops` at the most its route was proven to carry, when that is short of its amount
/// by at most 1/[`CUT_AT_MOST`]; `None` otherwise (or when nothing needs cutting).
fn cut_part(s: &Session, hops: &[Hop], proven: &HashMap<EdgeIdx, u64>) -> Option<Vec<Hop>> {
    let amount = hops.last()?.amount_msat;
    let mut route = hops.to_vec();
    // Cutting what arrives by `d` cuts every hop by at least `d`: a few rounds at most.
    for _ in 0..4 {
        let excess = over_proven(s, &route, proven)?;
        let now = route.last()?.amount_msat;
        if excess == 0 {
            return (now < amount).then_some(route);
        }
        let to = now.checked_sub(excess)?;
        if amount - to > amount / CUT_AT_MOST || to == 0 {
            return None;
        }
        route = s.circle.probe_route_at(&s.graph, hops, to)?;
    }
    None
}

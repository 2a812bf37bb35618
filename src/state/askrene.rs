//! What the node's own payments learn and what rebalancing learns, shared through askrene's
//! layers: xpay's persistent layer `xpay` read (only what is new since the last read) and
//! folded into the model at its timestamps; what the model learns published into our own
//! persistent layer `cln-rebalance` (a few constraints a rebalance, aged with the model's
//! half-life and capped, so its datastore entry stays bounded), which xpay uses when the
//! operator sets `xpay-user-layer=cln-rebalance`. A lightningd without askrene is told once
//! and never asked again.
//!
//! askrene holds a layer's constraints as hard bounds without fading them, and at use takes
//! the largest minimum and the smallest maximum of all of them: a bound published here lasts
//! until it is aged out (one half-life: past it the model itself takes the channel to have
//! more likely changed than not), and a looser bound learned later cannot replace a tighter one
//! before then, so it is not sent.

use crate::core::graph::{Graph, Scid};
use crate::core::liquidity::{ChanDir, Liquidity};
use crate::lightningd::Lightningd;
use crate::lightningd::types::{
    AskreneConstraint, AskreneInform, is_unknown_command, is_unknown_layer,
};
use cln_rpc::RpcError;
use log::{debug, info, warn};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// xpay's persistent layer: what lightningd's payments learned (plugins/xpay/xpay.c).
pub const XPAY_LAYER: &str = "xpay";
/// Ours: what rebalancing learned, for xpay (`xpay-user-layer=cln-rebalance`).
pub const OUR_LAYER: &str = "cln-rebalance";
/// Most constraints one publish sends (the most recently learned first).
pub const MAX_INFORMS_PER_PUBLISH: usize = 20;
/// Most constraints our layer holds: past it the oldest are aged out early. Each is a 29-byte
/// record in askrene's datastore entry.
pub const MAX_LAYER_CONSTRAINTS: usize = 1000;
/// Our layer is aged at most this often (each age rewrites its datastore entry whole), or
/// every half-life when that is shorter.
const MAX_AGE_EVERY_SECS: u64 = 300;

const UNKNOWN: u8 = 0;
const AVAILABLE: u8 = 1;
const UNAVAILABLE: u8 = 2;

/// What askrene's layers hold of one channel direction, as far as we know: the tightest
/// bounds and when each was set (unix seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Known {
    min_msat: u64,
    min_at: u64,
    /// `None`: no maximum.
    max_msat: Option<u64>,
    max_at: u64,
}

/// Where reading xpay's layer got to: constraints up to `last` were read, and of those at
/// exactly `last`, `at_last` (a second holds several).
#[derive(Debug, Default)]
struct ReadMark {
    last: u64,
    at_last: Vec<AskreneConstraint>,
    warned: bool,
}

/// What was published, and what askrene knows.
#[derive(Debug, Default)]
struct Published {
    /// Per channel direction, what askrene's layers hold: what we published, and what we
    /// folded from xpay's layer (xpay routes over that one anyway: not sent again).
    known: HashMap<ChanDir, Known>,
    /// When each constraint in our layer was set (unix seconds): how many it holds.
    stamps: Vec<u64>,
    /// Model entries learned at or after this (unix seconds) are not published yet.
    since: u64,
    last_aged: u64,
}

/// One constraint to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Inform {
    cd: ChanDir,
    amount_msat: u64,
    inform: AskreneInform,
}

/// The plugin's side of askrene: whether lightningd has it, where reading xpay's layer got
/// to, what our layer holds.
#[derive(Debug)]
pub struct Askrene {
    available: AtomicU8,
    read: tokio::sync::Mutex<ReadMark>,
    /// One publish or age at a time.
    publishing: tokio::sync::Mutex<()>,
    published: Mutex<Published>,
    max_informs: AtomicUsize,
    max_constraints: AtomicUsize,
}

impl Default for Askrene {
    fn default() -> Self {
        Askrene {
            available: AtomicU8::new(UNKNOWN),
            read: Default::default(),
            publishing: Default::default(),
            published: Default::default(),
            max_informs: AtomicUsize::new(MAX_INFORMS_PER_PUBLISH),
            max_constraints: AtomicUsize::new(MAX_LAYER_CONSTRAINTS),
        }
    }
}

/// `123x4x5/1` as a channel direction.
fn parse_scidd(s: &str) -> Option<ChanDir> {
    let (scid, dir) = s.split_once('/')?;
    let dir = match dir {
        "0" => 0,
        "1" => 1,
        _ => return None,
    };
    Some(ChanDir::new(scid.parse::<Scid>().ok()?, dir))
}

fn scidd(cd: ChanDir) -> String {
    format!("{}/{}", cd.short_channel_id, cd.direction)
}

/// How often our layer is aged.
pub fn age_every_secs(half_life: u64) -> u64 {
    half_life.clamp(1, MAX_AGE_EVERY_SECS)
}

impl Askrene {
    /// Whether askrene may be asked: not known to be missing.
    pub fn usable(&self) -> bool {
        self.available.load(Ordering::Relaxed) != UNAVAILABLE
    }

    /// Whether askrene answered something already.
    pub fn known_available(&self) -> bool {
        self.available.load(Ordering::Relaxed) == AVAILABLE
    }

    /// Smaller limits (for tests): informs per publish, constraints in our layer.
    pub fn set_limits(&self, informs_per_publish: usize, layer_constraints: usize) {
        self.max_informs
            .store(informs_per_publish.max(1), Ordering::Relaxed);
        self.max_constraints
            .store(layer_constraints.max(1), Ordering::Relaxed);
    }

    /// Sorts an answer: "Unknown command" means lightningd has no askrene (said once, then
    /// never asked again); anything else means it has.
    fn heard<T>(&self, method: &str, r: &Result<T, RpcError>) {
        match r {
            Err(e) if is_unknown_command(e) => {
                if self.available.swap(UNAVAILABLE, Ordering::Relaxed) != UNAVAILABLE {
                    info!(
                        "askrene not available: {method}: {}; not reading the {XPAY_LAYER} layer \
                         nor publishing into {OUR_LAYER}",
                        e.message
                    );
                }
            }
            _ => {
                let _ = self.available.compare_exchange(
                    UNKNOWN,
                    AVAILABLE,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Our persistent layer, made if missing, and what it holds already (from an earlier run)
    /// noted and aged. Returns how many constraints it holds, or `None` without askrene.
    pub async fn open_our_layer<N: Lightningd>(
        &self,
        node: &N,
        now: u64,
        half_life: u64,
    ) -> Option<usize> {
        let created = node.askrene_create_layer(OUR_LAYER, true).await;
        self.heard("askrene-create-layer", &created);
        if let Err(e) = created {
            if self.usable() {
                warn!("askrene-create-layer {OUR_LAYER}: {}", e.message);
            }
            return None;
        }
        let _one = self.publishing.lock().await;
        match node.askrene_listlayers(OUR_LAYER).await {
            Ok(held) => {
                let mut p = self.published.lock().expect("askrene lock");
                for c in &held {
                    if let Some(cd) = parse_scidd(&c.short_channel_id_dir) {
                        let k = p.known.entry(cd).or_default();
                        note(k, c.minimum_msat, c.maximum_msat, c.timestamp);
                    }
                    p.stamps.push(c.timestamp);
                }
                p.since = now;
            }
            Err(e) => warn!("askrene-listlayers {OUR_LAYER}: {}", e.message),
        }
        self.age_locked(node, now, half_life, true).await;
        Some(self.published.lock().expect("askrene lock").stamps.len())
    }

    /// The constraints of xpay's layer that are new since the last read, oldest first (none
    /// without askrene, without the layer, or while another read is under way).
    pub async fn read_new<N: Lightningd>(&self, node: &N) -> Vec<AskreneConstraint> {
        if !self.usable() {
            return Vec::new();
        }
        let Ok(mut mark) = self.read.try_lock() else {
            return Vec::new();
        };
        let listed = node.askrene_listlayers(XPAY_LAYER).await;
        self.heard("askrene-listlayers", &listed);
        let all = match listed {
            Ok(all) => all,
            Err(e) if is_unknown_layer(&e) => {
                debug!("no {XPAY_LAYER} layer in askrene: nothing learned from payments yet");
                return Vec::new();
            }
            Err(e) => {
                if self.usable() && !mark.warned {
                    warn!("askrene-listlayers {XPAY_LAYER}: {}", e.message);
                    mark.warned = true;
                }
                return Vec::new();
            }
        };
        let mut new: Vec<AskreneConstraint> = all
            .iter()
            .filter(|c| {
                c.timestamp > mark.last || (c.timestamp == mark.last && !mark.at_last.contains(c))
            })
            .cloned()
            .collect();
        new.sort_by_key(|c| c.timestamp);
        if let Some(last) = all.iter().map(|c| c.timestamp).max()
            && last >= mark.last
        {
            mark.at_last = all.into_iter().filter(|c| c.timestamp == last).collect();
            mark.last = last;
        }
        new
    }

    /// Folds constraints (oldest first) into `model`, each as an observation at its timestamp
    /// (at most `now`): a maximum as a failure of one msat more, a minimum as a forward.
    /// Channels not in `graph` (whose capacity is unknown) are left out. With `publishing`,
    /// notes them as held by askrene, so they are not published again. Returns how many were
    /// learned.
    pub fn fold(
        &self,
        constraints: &[AskreneConstraint],
        model: &mut Liquidity,
        graph: &Graph,
        (now, half_life): (u64, u64),
        publishing: bool,
    ) -> usize {
        let mut p = self.published.lock().expect("askrene lock");
        let mut learned = 0;
        for c in constraints {
            let Some(cd) = parse_scidd(&c.short_channel_id_dir) else {
                continue;
            };
            let Some(edge) = graph.edge_by_scid(cd.short_channel_id, cd.direction) else {
                continue;
            };
            let capacity = graph.edge_capacity_msat(edge);
            let at = c.timestamp.min(now);
            if model.observed(cd, c.minimum_msat, c.maximum_msat, capacity, at, half_life) {
                learned += 1;
            }
            if publishing {
                note(
                    p.known.entry(cd).or_default(),
                    c.minimum_msat,
                    c.maximum_msat,
                    at,
                );
            }
        }
        learned
    }

    /// Publishes into our layer what the model learned since the last publish: for each
    /// channel direction (not ours: askrene knows our channels exactly) a maximum as
    /// `constrained` at one msat more, a minimum as `unconstrained`, unless askrene already
    /// holds it or something tighter. `learned(since)` lists the model's entries learned at or
    /// after `since`, newest first. Ages the layer when due. Returns how many were sent.
    pub async fn publish<N: Lightningd>(
        &self,
        node: &N,
        graph: &Graph,
        our_id: &str,
        now: u64,
        half_life: u64,
        learned: impl FnOnce(u64) -> Vec<(ChanDir, u64, Option<u64>, u64)>,
    ) -> usize {
        if !self.usable() {
            return 0;
        }
        let _one = self.publishing.lock().await;
        self.age_locked(node, now, half_life, false).await;
        let informs = {
            let mut p = self.published.lock().expect("askrene lock");
            let since = std::mem::replace(&mut p.since, now);
            let room = self
                .max_constraints
                .load(Ordering::Relaxed)
                .saturating_sub(p.stamps.len());
            let most = self.max_informs.load(Ordering::Relaxed).min(room);
            let ours = graph.node_idx(our_id);
            let mut informs = Vec::new();
            for (cd, min, max, at) in learned(since) {
                let Some(edge) = graph.edge_by_scid(cd.short_channel_id, cd.direction) else {
                    continue;
                };
                let e = graph.edge(edge);
                if ours.is_some_and(|o| e.source == o || e.destination == o) {
                    continue;
                }
                let capacity = graph.edge_capacity_msat(edge);
                let known = p.known.get(&cd).copied().unwrap_or_default();
                informs.extend(to_send(cd, min, max, at, capacity, known));
            }
            informs.truncate(most);
            informs
        };
        let mut sent = 0;
        for i in informs {
            let name = scidd(i.cd);
            let mut r = node
                .askrene_inform_channel(OUR_LAYER, &name, i.amount_msat, i.inform)
                .await;
            if let Err(e) = &r
                && is_unknown_layer(e)
            {
                // Not made yet, or removed under us (askrene-remove-layer): made, from nothing.
                info!("making askrene's {OUR_LAYER} layer");
                let _ = node.askrene_create_layer(OUR_LAYER, true).await;
                *self.published.lock().expect("askrene lock") = Published {
                    since: now,
                    last_aged: now,
                    ..Published::default()
                };
                r = node
                    .askrene_inform_channel(OUR_LAYER, &name, i.amount_msat, i.inform)
                    .await;
            }
            self.heard("askrene-inform-channel", &r);
            if let Err(e) = r {
                if self.usable() {
                    warn!("askrene-inform-channel {OUR_LAYER} {name}: {}", e.message);
                }
                break;
            }
            let mut p = self.published.lock().expect("askrene lock");
            let (min, max) = match i.inform {
                AskreneInform::Constrained => (None, Some(i.amount_msat - 1)),
                AskreneInform::Unconstrained => (Some(i.amount_msat), None),
            };
            note(p.known.entry(i.cd).or_default(), min, max, now);
            p.stamps.push(now);
            sent += 1;
        }
        if sent > 0 {
            debug!("published {sent} constraint(s) into askrene's {OUR_LAYER} layer");
        }
        sent
    }

    /// Ages our layer when due (see [`age_every_secs`]) or when it is full.
    pub async fn age<N: Lightningd>(&self, node: &N, now: u64, half_life: u64) {
        if !self.usable() {
            return;
        }
        let _one = self.publishing.lock().await;
        self.age_locked(node, now, half_life, false).await;
    }

    /// `askrene-age` on our layer, with the publishing lock held: what is older than a
    /// half-life goes, and the oldest too when the layer is nearly full. Only when something
    /// would go, and (unless `force`) at most every [`age_every_secs`] but for a full layer.
    async fn age_locked<N: Lightningd>(&self, node: &N, now: u64, half_life: u64, force: bool) {
        let cutoff = {
            let mut p = self.published.lock().expect("askrene lock");
            let room_needed = self.max_informs.load(Ordering::Relaxed);
            let cap = self.max_constraints.load(Ordering::Relaxed);
            let full = p.stamps.len() + room_needed > cap;
            let due = force || now >= p.last_aged.saturating_add(age_every_secs(half_life));
            if !due && !full {
                return;
            }
            let mut cutoff = now.saturating_sub(half_life);
            if full {
                let mut sorted = p.stamps.clone();
                sorted.sort_unstable();
                let drop = (p.stamps.len() + room_needed - cap).min(sorted.len());
                if drop > 0 {
                    cutoff = cutoff.max(sorted[drop - 1].saturating_add(1));
                }
            }
            // What xpay's layer held is forgotten with the rest, whether or not ours has
            // anything to age.
            p.known.retain(|_, k| forget_before(k, cutoff));
            if !p.stamps.iter().any(|&t| t < cutoff) {
                p.last_aged = now;
                return;
            }
            cutoff
        };
        let r = node.askrene_age(OUR_LAYER, cutoff).await;
        self.heard("askrene-age", &r);
        let mut p = self.published.lock().expect("askrene lock");
        p.last_aged = now;
        match r {
            Ok(n) => {
                p.stamps.retain(|&t| t >= cutoff);
                p.known.retain(|_, k| forget_before(k, cutoff));
                debug!("aged askrene's {OUR_LAYER} layer to {cutoff}: {n} constraint(s) removed");
            }
            Err(e) if is_unknown_layer(&e) => *p = Published::default(),
            Err(e) => {
                if self.usable() {
                    warn!("askrene-age {OUR_LAYER}: {}", e.message);
                }
            }
        }
    }

    /// How many constraints our layer holds, as far as we know.
    pub fn published_count(&self) -> usize {
        self.published.lock().expect("askrene lock").stamps.len()
    }
}

/// Notes a constraint askrene holds: the tightest bounds win (askrene's rule), and a bound
/// set again is as new as its latest setting.
fn note(k: &mut Known, min: Option<u64>, max: Option<u64>, at: u64) {
    if let Some(m) = min.filter(|&m| m > 0) {
        if m > k.min_msat {
            (k.min_msat, k.min_at) = (m, at);
        } else if m == k.min_msat {
            k.min_at = k.min_at.max(at);
        }
    }
    if let Some(m) = max {
        if k.max_msat.is_none_or(|k| m < k) {
            (k.max_msat, k.max_at) = (Some(m), at);
        } else if k.max_msat == Some(m) {
            k.max_at = k.max_at.max(at);
        }
    }
}

/// What aging to `cutoff` leaves of a known channel direction; false when nothing.
fn forget_before(k: &mut Known, cutoff: u64) -> bool {
    if k.min_at < cutoff {
        k.min_msat = 0;
        k.min_at = 0;
    }
    if k.max_at < cutoff {
        k.max_msat = None;
        k.max_at = 0;
    }
    k.min_msat > 0 || k.max_msat.is_some()
}

/// The informs that tell askrene a model entry `[min, max]` learned at `at`, given what it
/// holds (`known`): a maximum below the capacity as `constrained` at one msat more, a minimum
/// above zero as `unconstrained`; not what askrene holds already (the same bound set as late),
/// and not a looser bound (askrene would keep the tighter one).
fn to_send(
    cd: ChanDir,
    min: u64,
    max: Option<u64>,
    at: u64,
    capacity: u64,
    known: Known,
) -> Vec<Inform> {
    let mut v = Vec::new();
    if let Some(m) = max.filter(|&m| m < capacity) {
        let tighter = known.max_msat.is_none_or(|k| m < k);
        let again = known.max_msat == Some(m) && at > known.max_at;
        if tighter || again {
            v.push(Inform {
                cd,
                amount_msat: m + 1,
                inform: AskreneInform::Constrained,
            });
        }
    }
    if min > 0 && max.is_none_or(|m| min <= m) {
        let tighter = min > known.min_msat;
        let again = known.min_msat == min && at > known.min_at;
        if tighter || again {
            v.push(Inform {
                cd,
                amount_msat: min,
                inform: AskreneInform::Unconstrained,
            });
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cd() -> ChanDir {
        ChanDir::new("103x1x0".parse().unwrap(), 1)
    }

    #[test]
    fn scidd_round_trips() {
        assert_eq!(parse_scidd("103x1x0/1"), Some(cd()));
        assert_eq!(scidd(cd()), "103x1x0/1");
        assert_eq!(parse_scidd("103x1x0/2"), None);
        assert_eq!(parse_scidd("103x1x0"), None);
        assert_eq!(parse_scidd("x/0"), None);
    }

    #[test]
    fn only_what_askrene_lacks_is_sent() {
        const CAP: u64 = 1_000_000;
        let nothing = Known::default();
        // A maximum: constrained at one msat more (askrene subtracts it); a minimum as is.
        let v = to_send(cd(), 2_000, Some(5_000), 100, CAP, nothing);
        assert_eq!(
            v.iter()
                .map(|i| (i.amount_msat, i.inform))
                .collect::<Vec<_>>(),
            vec![
                (5_001, AskreneInform::Constrained),
                (2_000, AskreneInform::Unconstrained)
            ]
        );
        // The capacity and zero bound nothing.
        assert!(to_send(cd(), 0, Some(CAP), 100, CAP, nothing).is_empty());
        assert!(to_send(cd(), 0, None, 100, CAP, nothing).is_empty());
        // A drained channel: maximum 0, constrained at 1 msat.
        assert_eq!(
            to_send(cd(), 0, Some(0), 100, CAP, nothing)[0].amount_msat,
            1
        );
        let mut known = Known::default();
        note(&mut known, Some(2_000), Some(5_000), 100);
        // Held already, as late: nothing. Learned again later: sent again (stays fresh).
        assert!(to_send(cd(), 2_000, Some(5_000), 100, CAP, known).is_empty());
        assert_eq!(to_send(cd(), 2_000, Some(5_000), 200, CAP, known).len(), 2);
        // Looser: askrene would keep the tighter one, so nothing; tighter: sent.
        assert!(to_send(cd(), 1_000, Some(6_000), 200, CAP, known).is_empty());
        let v = to_send(cd(), 3_000, Some(4_000), 200, CAP, known);
        assert_eq!(v.len(), 2);
        // Aging forgets each bound by its own time.
        let mut k = known;
        note(&mut k, None, Some(4_000), 300);
        assert!(forget_before(&mut k, 200));
        assert_eq!(
            k,
            Known {
                min_msat: 0,
                min_at: 0,
                max_msat: Some(4_000),
                max_at: 300
            }
        );
        assert!(!forget_before(&mut k, 301));
    }
}

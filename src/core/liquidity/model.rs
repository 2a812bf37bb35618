//! The model itself: per channel direction the learned bounds and when, failed channels and
//! nodes, what our own attempts have in flight, and the change log search views catch up with.

use super::config::{ChanDir, ModelConfig};
use super::probability::{Bounds, decay, recovered, success_probability};
use crate::core::graph::{FxBuildHasher, Scid};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Below this a decay factor counts as "forgotten" (six half-lives): the entry can be pruned.
pub(super) const FORGOTTEN: f64 = 1.0 / 64.0;

/// What we know of one channel direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Entry {
    /// `L >= min_msat` when last updated.
    pub(super) min_msat: u64,
    /// `L <= max_msat` when last updated; `u64::MAX` when only the capacity bounds it.
    pub(super) max_msat: u64,
    /// When the bounds were last set (unix seconds).
    pub(super) updated: u64,
    /// When it last answered `channel_disabled` / `unknown_next_peer` (0: never).
    pub(super) failed_at: u64,
}

impl Entry {
    pub(super) const UNKNOWN: Entry = Entry {
        min_msat: 0,
        max_msat: u64::MAX,
        updated: 0,
        failed_at: 0,
    };

    /// The learned bounds, clamped to the capacity.
    #[inline]
    pub(super) fn clamped(&self, capacity_msat: u64) -> Bounds {
        let max = self.max_msat.min(capacity_msat);
        Bounds {
            min_msat: self.min_msat.min(max),
            max_msat: max,
        }
    }

    /// How much the learned bounds still count at `now`: 1 when just learned, halving every
    /// half-life.
    #[inline]
    pub(super) fn weight(&self, now: u64, half_life: u64) -> f64 {
        decay(half_life, self.updated, now)
    }

    /// `P(L >= amount)` at `now`: the learned bounds with their weight, the prior with the
    /// rest, times what a remembered `failed_at` leaves.
    #[inline]
    pub(super) fn probability(
        &self,
        config: &ModelConfig,
        amount_msat: u64,
        capacity_msat: u64,
        now: u64,
    ) -> f64 {
        let failed = recovered(config.half_life_secs, self.failed_at, now);
        if self.min_msat == 0 && self.max_msat == u64::MAX {
            // Only a `failed_at`: no bounds were learned.
            return config.prior_probability(amount_msat, capacity_msat) * failed;
        }
        let w = self.weight(now, config.half_life_secs);
        let learned = success_probability(
            config.prior,
            amount_msat,
            self.clamped(capacity_msat),
            capacity_msat,
        );
        if w >= 1.0 {
            return learned * failed;
        }
        (w * learned + (1.0 - w) * config.prior_probability(amount_msat, capacity_msat)) * failed
    }
}

/// Where model ids come from: each model (a clone, a decoded record) gets its own, so a search
/// view knows which model it last caught up with.
static NEXT_MODEL_ID: AtomicU64 = AtomicU64::new(1);

/// Most channel directions the change log holds; past it the log starts over and views that
/// had not caught up rebuild from the whole model (8,192 is a few hundred rebalances).
pub(super) const MAX_CHANGES: usize = 8192;

/// Which channel directions changed since when, so a search view ([`Beliefs`]) catches up
/// with only those instead of re-reading the whole model before every search.
/// Generations count changes: `changed[i]` is generation `start + i`.
#[derive(Debug)]
pub(super) struct ChangeLog {
    pub(super) id: u64,
    pub(super) start: u64,
    pub(super) changed: Vec<ChanDir>,
    /// Bumped whenever a node's remembered failure changes.
    pub(super) nodes_gen: u64,
}

impl Default for ChangeLog {
    fn default() -> Self {
        ChangeLog {
            id: NEXT_MODEL_ID.fetch_add(1, Ordering::Relaxed),
            start: 0,
            changed: Vec::new(),
            nodes_gen: 0,
        }
    }
}

impl Clone for ChangeLog {
    /// A copy is another model: views of the original must not take it for theirs.
    fn clone(&self) -> Self {
        ChangeLog::default()
    }
}

impl ChangeLog {
    pub(super) fn generation(&self) -> u64 {
        self.start + self.changed.len() as u64
    }

    pub(super) fn push(&mut self, cd: ChanDir) {
        if self.changed.len() >= MAX_CHANGES {
            self.start = self.generation();
            self.changed.clear();
        }
        self.changed.push(cd);
    }

    /// Everything may have changed (a reset, a prune, a merge): every view rebuilds.
    pub(super) fn invalidate(&mut self) {
        self.start = self.generation() + 1;
        self.changed.clear();
        self.nodes_gen += 1;
    }

    /// The channel directions changed since generation `since`, or `None` if the log no
    /// longer reaches back that far.
    pub(super) fn since(&self, since: u64) -> Option<&[ChanDir]> {
        let from = since.checked_sub(self.start)?;
        self.changed.get(usize::try_from(from).ok()?..)
    }
}

/// Everything learned, for every channel direction and node, shared by all rebalances.
#[derive(Debug, Clone, Default)]
pub struct Liquidity {
    pub(super) entries: HashMap<ChanDir, Entry, FxBuildHasher>,
    /// Node id -> when it last failed as a whole (NODE failcodes, offline).
    pub(super) nodes: HashMap<String, u64, FxBuildHasher>,
    /// What our own attempts have in flight over each channel direction now: not offered to
    /// another attempt.
    pub(super) in_flight: HashMap<ChanDir, u64, FxBuildHasher>,
    /// What changed, for the search views.
    pub(super) log: ChangeLog,
}

impl Liquidity {
    pub fn new() -> Self {
        Liquidity::default()
    }

    /// How many channel directions and nodes have something learned.
    pub fn len(&self) -> (usize, usize) {
        (self.entries.len(), self.nodes.len())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.nodes.is_empty()
    }

    /// Forgets everything (or everything about one channel, both directions).
    pub fn reset(&mut self, scid: Option<Scid>) -> usize {
        match scid {
            None => {
                let n = self.entries.len() + self.nodes.len();
                self.entries.clear();
                self.nodes.clear();
                self.log.invalidate();
                n
            }
            Some(s) => {
                let mut n = 0;
                for d in 0..2 {
                    let cd = ChanDir::new(s, d);
                    n += usize::from(self.entries.remove(&cd).is_some());
                    self.log.push(cd);
                }
                n
            }
        }
    }

    /// What was learned of `cd` (`[0, capacity]` if nothing) and how much it still counts at
    /// `now` (0 if nothing was learned).
    pub fn bounds(
        &self,
        cd: ChanDir,
        capacity_msat: u64,
        now: u64,
        half_life: u64,
    ) -> (Bounds, f64) {
        match self.entries.get(&cd) {
            Some(e) => (e.clamped(capacity_msat), e.weight(now, half_life)),
            None => (
                Bounds {
                    min_msat: 0,
                    max_msat: capacity_msat,
                },
                0.0,
            ),
        }
    }

    /// Sets new bounds for `cd` from the old ones, or from `[0, capacity]` when the old ones
    /// count less than half: a channel more likely changed since than not.
    pub(super) fn update(
        &mut self,
        cd: ChanDir,
        capacity_msat: u64,
        now: u64,
        half_life: u64,
        f: impl FnOnce(Bounds) -> Bounds,
    ) {
        let old = match self.bounds(cd, capacity_msat, now, half_life) {
            (b, w) if w >= 0.5 => b,
            _ => Bounds {
                min_msat: 0,
                max_msat: capacity_msat,
            },
        };
        let new = f(old);
        let e = self.entries.entry(cd).or_insert(Entry::UNKNOWN);
        e.min_msat = new.min_msat.min(capacity_msat);
        e.max_msat = new.max_msat.min(capacity_msat).max(e.min_msat);
        e.updated = now;
        self.log.push(cd);
    }

    /// `cd` could not forward `amount_msat`: `L < amount`.
    pub fn failed(
        &mut self,
        cd: ChanDir,
        amount_msat: u64,
        capacity_msat: u64,
        now: u64,
        half_life: u64,
    ) {
        self.update(cd, capacity_msat, now, half_life, |b| {
            let max = amount_msat.saturating_sub(1);
            Bounds {
                // A lower bound above what just failed is out of date.
                min_msat: if b.min_msat > max { 0 } else { b.min_msat },
                max_msat: b.max_msat.min(max),
            }
        });
    }

    /// `cd` forwarded `amount_msat` (the payment failed further on, so nothing moved):
    /// `L >= amount`.
    pub fn forwarded(
        &mut self,
        cd: ChanDir,
        amount_msat: u64,
        capacity_msat: u64,
        now: u64,
        half_life: u64,
    ) {
        self.update(cd, capacity_msat, now, half_life, |b| Bounds {
            min_msat: b.min_msat.max(amount_msat),
            // An upper bound below what just went through is out of date.
            max_msat: if b.max_msat < amount_msat {
                capacity_msat
            } else {
                b.max_msat
            },
        });
    }

    /// A payment carried `amount_msat` over `cd` and settled: it had at least that, and now has
    /// that much less; the reverse direction has that much more.
    pub fn settled(
        &mut self,
        cd: ChanDir,
        amount_msat: u64,
        capacity_msat: u64,
        now: u64,
        half_life: u64,
    ) {
        self.forwarded(cd, amount_msat, capacity_msat, now, half_life);
        self.update(cd, capacity_msat, now, half_life, |b| Bounds {
            min_msat: b.min_msat.saturating_sub(amount_msat),
            max_msat: b.max_msat.saturating_sub(amount_msat),
        });
        self.update(cd.reverse(), capacity_msat, now, half_life, |b| Bounds {
            min_msat: b.min_msat.saturating_add(amount_msat).min(capacity_msat),
            max_msat: b.max_msat.saturating_add(amount_msat).min(capacity_msat),
        });
    }

    /// What another payer saw of `cd` at `at` (unix seconds; lightningd's own payments,
    /// through askrene): it carried at least `min_msat`, or could not carry more than
    /// `max_msat`. Learned as an attempt of ours at `at` would have been, so it counts as old
    /// as it is; not at all when the model learned something of `cd` after `at`. Returns
    /// whether it was learned.
    pub fn observed(
        &mut self,
        cd: ChanDir,
        min_msat: Option<u64>,
        max_msat: Option<u64>,
        capacity_msat: u64,
        at: u64,
        half_life: u64,
    ) -> bool {
        let newer = self.entries.get(&cd).is_some_and(|e| e.updated > at);
        let min = min_msat.filter(|&m| m > 0);
        let above_max = max_msat.and_then(|m| m.checked_add(1));
        if newer || (min.is_none() && above_max.is_none()) {
            return false;
        }
        if let Some(m) = min {
            self.forwarded(cd, m, capacity_msat, at, half_life);
        }
        if let Some(a) = above_max {
            self.failed(cd, a, capacity_msat, at, half_life);
        }
        true
    }

    /// The channel directions whose bounds were set at or after `since` (unix seconds), newest
    /// first: `(channel direction, min, max, updated)` as stored (max `None`: only the
    /// capacity bounds it).
    pub fn learned_since(&self, since: u64) -> Vec<(ChanDir, u64, Option<u64>, u64)> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, e)| e.updated >= since && e.updated > 0)
            .map(|(cd, e)| {
                let max = (e.max_msat != u64::MAX).then_some(e.max_msat);
                (*cd, e.min_msat, max, e.updated)
            })
            .collect();
        v.sort_unstable_by(|a, b| b.3.cmp(&a.3).then(a.0.cmp(&b.0)));
        v
    }

    /// Exactly what `cd` can send now (our own channels, from listpeerchannels).
    pub fn exact(&mut self, cd: ChanDir, amount_msat: u64, capacity_msat: u64, now: u64) {
        let e = self.entries.entry(cd).or_insert(Entry::UNKNOWN);
        e.min_msat = amount_msat.min(capacity_msat);
        e.max_msat = e.min_msat;
        e.updated = now;
        self.log.push(cd);
    }

    /// `cd` answered `channel_disabled` or `unknown_next_peer`.
    pub fn channel_failed(&mut self, cd: ChanDir, now: u64) {
        self.entries.entry(cd).or_insert(Entry::UNKNOWN).failed_at = now;
        self.log.push(cd);
    }

    /// A node failed as a whole (a NODE failcode, or it was offline).
    pub fn node_failed(&mut self, node_id: &str, now: u64) {
        self.nodes.insert(node_id.to_string(), now);
        self.log.nodes_gen += 1;
    }

    /// Our attempt now has `amount_msat` more (`add`) or less in flight over `cd`.
    pub fn in_flight(&mut self, cd: ChanDir, amount_msat: u64, add: bool) {
        let v = self.in_flight.entry(cd).or_insert(0);
        *v = if add {
            v.saturating_add(amount_msat)
        } else {
            v.saturating_sub(amount_msat)
        };
        if *v == 0 {
            self.in_flight.remove(&cd);
        }
        self.log.push(cd);
    }

    /// What our attempts have in flight over `cd` now.
    pub fn in_flight_msat(&self, cd: ChanDir) -> u64 {
        self.in_flight.get(&cd).copied().unwrap_or(0)
    }

    /// `P(cd forwards amount_msat now)`, counting what our attempts have in flight over it and
    /// remembered failures of the channel (not of its nodes).
    pub fn probability(
        &self,
        cd: ChanDir,
        amount_msat: u64,
        capacity_msat: u64,
        now: u64,
        config: &ModelConfig,
    ) -> f64 {
        let flying = self.in_flight.get(&cd).copied().unwrap_or(0);
        let amount = amount_msat.saturating_add(flying);
        match self.entries.get(&cd) {
            Some(e) => e.probability(config, amount, capacity_msat, now),
            None => config.prior_probability(amount, capacity_msat),
        }
    }

    /// The factor a node's remembered failure puts on any hop out of it.
    pub fn node_factor(&self, node_id: &str, now: u64, half_life: u64) -> f64 {
        self.nodes
            .get(node_id)
            .map_or(1.0, |&t| recovered(half_life, t, now))
    }

    /// Takes what `older` knows of channels and nodes this model has learned nothing about yet
    /// (a saved model loaded after the first rebalances of this run began).
    pub fn merge_older(&mut self, older: Liquidity) {
        for (cd, e) in older.entries {
            self.entries.entry(cd).or_insert(e);
        }
        for (n, t) in older.nodes {
            self.nodes.entry(n).or_insert(t);
        }
        self.log.invalidate();
    }

    /// Drops what has faded to nearly nothing, and keeps at most `max_entries` channel
    /// directions (the most recently updated).
    pub fn prune(&mut self, now: u64, half_life: u64, max_entries: usize) {
        // What is dropped goes into the change log, so the views drop it too.
        let mut gone = Vec::new();
        self.entries.retain(|cd, e| {
            let keep = decay(half_life, e.updated, now) > FORGOTTEN
                || (e.failed_at != 0 && decay(half_life, e.failed_at, now) > FORGOTTEN);
            if !keep {
                gone.push(*cd);
            }
            keep
        });
        let nodes_before = self.nodes.len();
        self.nodes
            .retain(|_, &mut t| decay(half_life, t, now) > FORGOTTEN);
        if self.nodes.len() != nodes_before {
            self.log.nodes_gen += 1;
        }
        if max_entries == 0 {
            gone.extend(self.entries.keys());
            self.entries.clear();
        } else if self.entries.len() > max_entries {
            let mut times: Vec<u64> = self
                .entries
                .values()
                .map(|e| e.updated.max(e.failed_at))
                .collect();
            times.sort_unstable_by(|a, b| b.cmp(a));
            let cutoff = times[max_entries - 1];
            // Everything newer than the cutoff stays, whatever order the map visits it in;
            // entries at the cutoff fill only the places left.
            let newer = times.iter().take_while(|&&t| t > cutoff).count();
            let mut ties_left = max_entries - newer;
            self.entries.retain(|cd, e| {
                let t = e.updated.max(e.failed_at);
                let keep = t > cutoff || (t == cutoff && ties_left > 0);
                if t == cutoff && keep {
                    ties_left -= 1;
                }
                if !keep {
                    gone.push(*cd);
                }
                keep
            });
        }
        if gone.len() > MAX_CHANGES / 2 {
            self.log.invalidate();
        } else {
            for cd in gone {
                self.log.push(cd);
            }
        }
    }

    /// The learned entries, sorted, for display: `(channel direction, min, max, updated,
    /// failed_at)` as stored (not decayed).
    pub fn entries(&self) -> Vec<(ChanDir, u64, Option<u64>, u64, u64)> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .map(|(cd, e)| {
                let max = (e.max_msat != u64::MAX).then_some(e.max_msat);
                (*cd, e.min_msat, max, e.updated, e.failed_at)
            })
            .collect();
        v.sort_unstable_by_key(|x| x.0);
        v
    }

    /// Remembered node failures, sorted by node id.
    pub fn failed_nodes(&self) -> Vec<(String, u64)> {
        let mut v: Vec<_> = self.nodes.iter().map(|(k, &t)| (k.clone(), t)).collect();
        v.sort();
        v
    }

    /// Approximate heap bytes held (for the benchmark's memory report).
    pub fn heap_bytes(&self) -> usize {
        // hashbrown: one control byte per bucket plus the slot; buckets >= len * 8/7.
        let slot = |s: usize, cap: usize| cap * (s + 1);
        slot(
            std::mem::size_of::<(ChanDir, Entry)>(),
            self.entries.capacity(),
        ) + slot(std::mem::size_of::<(String, u64)>(), self.nodes.capacity())
            + self.nodes.keys().map(|k| k.capacity()).sum::<usize>()
            + slot(
                std::mem::size_of::<(ChanDir, u64)>(),
                self.in_flight.capacity(),
            )
            + self.log.changed.capacity() * std::mem::size_of::<ChanDir>()
    }
}

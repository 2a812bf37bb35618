//! The model as one search sees it ([`Beliefs`]): what was learned resolved to the graph's edge
//! indices, kept from one search to the next and caught up with the model's change log.

use super::config::{ChanDir, ModelConfig, Prior};
use super::model::{Entry, Liquidity};
use super::probability::{recovered, risk_from_bits, risk_msat, uniform_prior_bits};
use crate::core::graph::{EdgeIdx, FxBuildHasher, Graph, NodeIdx};
use std::collections::HashMap;

/// The model as one search sees it: every learned channel direction of one graph resolved to
/// its edge index, so the search reads an array instead of hashing. Kept from one search to
/// the next: before each it catches up with what changed in the model since the last (the
/// model's change log), so a search costs the channels learned meanwhile, not the whole model
/// nor the graph; what was learned is weighed at the view's `now` when the search asks.
#[derive(Debug, Default)]
pub struct Beliefs {
    /// Per edge: index into `known` + 1, or 0 for "nothing learned".
    slot: Vec<u32>,
    known: Vec<Known>,
    /// Entries of `known` still pointed at by a slot (the rest are holes left by removals).
    pub(super) live: usize,
    touched: Vec<EdgeIdx>,
    /// Per node: the factor a remembered failure puts on hops out of it (1 if none).
    node_factor: Vec<f32>,
    nodes_touched: Vec<NodeIdx>,
    /// The model's failed nodes resolved on this graph, with when they failed.
    node_times: Vec<(NodeIdx, u64)>,
    /// Learned channel directions resolved to their edge on the graph `resolved_for` (its
    /// `Graph::id`), keyed by [`packed`]; [`NOT_IN_GRAPH`] if the graph lacks it. 16 bytes an
    /// entry, so a model of the whole graph keeps its view within a few MiB more.
    resolved: HashMap<u64, EdgeIdx, FxBuildHasher>,
    resolved_for: u64,
    /// The keys a full rebuild had to resolve (kept for its allocation).
    keys: Vec<ChanDir>,
    /// The model (its change log's id) and generation this view has caught up with, and the
    /// generation of its node failures; model id 0: none yet.
    synced_model: u64,
    pub(super) synced_gen: u64,
    synced_nodes: u64,
    /// When the search is: what was learned is weighed, and failures faded, to this.
    now: u64,
    pub config: ModelConfig,
    /// `-log2(1 - depleted)` of `config`: the risk every edge the prior prices starts from.
    depleted_bits: f64,
    /// Bits of risk every hop adds to the search's cost (not to the probability): a longer
    /// route's time (probes: each hop there and back) priced as risk. 0: none.
    pub hop_bits: f64,
}

/// `resolved`'s value for a channel direction the graph does not have.
const NOT_IN_GRAPH: EdgeIdx = EdgeIdx::MAX;

/// A channel direction as one `u64`: the scid shifted up one bit, the direction below; `None`
/// for a scid whose top bit (its block height's bit 23: block 8,388,608, 150 years away) is
/// set, or a direction other than 0 and 1 (which would share a key with 0 or 1), which is
/// looked up in the graph's index each time instead.
fn packed(cd: ChanDir) -> Option<u64> {
    (cd.short_channel_id.0 >> 63 == 0 && cd.direction <= 1)
        .then(|| (cd.short_channel_id.0 << 1) | u64::from(cd.direction))
}

/// One learned edge as the model holds it (undecayed), with what is in flight over it.
#[derive(Debug, Clone, Copy)]
struct Known {
    entry: Entry,
    in_flight_msat: u64,
}

impl Beliefs {
    /// Brings the view of `model` over `graph` to `now`: a full rebuild the first time, after
    /// a change of graph, model or settings, or when the model's change log no longer reaches
    /// back to this view's last catch-up; otherwise only the channel directions changed since.
    pub fn rebuild(&mut self, graph: &Graph, model: &Liquidity, now: u64, config: ModelConfig) {
        let changes = (self.synced_model == model.log.id
            && self.config == config
            && self.resolved_for == graph.id()
            && self.slot.len() == graph.edge_count()
            && self.node_factor.len() == graph.node_count()
            // Holes from removals are reclaimed by a rebuild.
            && self.known.len() <= 2 * self.live + 1024)
            .then(|| model.log.since(self.synced_gen))
            .flatten();
        let nodes_changed = changes.is_none() || self.synced_nodes != model.log.nodes_gen;
        match changes {
            Some(changed) => {
                for &cd in changed {
                    self.catch_up(graph, model, cd);
                }
            }
            None => self.rebuild_all(graph, model, config),
        }
        self.synced_model = model.log.id;
        self.synced_gen = model.log.generation();
        if nodes_changed {
            self.node_times.clear();
            self.node_times.extend(
                model
                    .nodes
                    .iter()
                    .filter_map(|(id, &t)| Some((graph.node_idx(id)?, t))),
            );
            self.synced_nodes = model.log.nodes_gen;
        }
        if nodes_changed || now != self.now {
            for &n in &self.nodes_touched {
                self.node_factor[n as usize] = 1.0;
            }
            self.nodes_touched.clear();
            for &(n, t) in &self.node_times {
                self.node_factor[n as usize] = recovered(config.half_life_secs, t, now) as f32;
                self.nodes_touched.push(n);
            }
        }
        self.now = now;
    }

    /// Every learned channel direction anew.
    fn rebuild_all(&mut self, graph: &Graph, model: &Liquidity, config: ModelConfig) {
        self.config = config;
        self.depleted_bits = -(1.0 - config.depleted()).log2();
        if self.slot.len() != graph.edge_count() {
            self.slot = vec![0; graph.edge_count()];
            self.touched.clear();
        }
        if self.node_factor.len() != graph.node_count() {
            self.node_factor = vec![1.0; graph.node_count()];
            self.nodes_touched.clear();
        }
        for &e in &self.touched {
            self.slot[e as usize] = 0;
        }
        self.touched.clear();
        self.known.clear();
        self.live = 0;
        // Every channel direction with something learned or in flight, resolved to its edge
        // through a small cache (a learned key sits in it from the rebuild that first saw it
        // on this graph); those not in it yet are resolved together, sorted, in one walk of
        // the graph's index (see `Graph::edges_by_scid_sorted`).
        if self.resolved_for != graph.id() || self.resolved.len() > 4 * model.entries.len() + 4096 {
            self.resolved.clear();
            self.resolved_for = graph.id();
        }
        let mut keys = std::mem::take(&mut self.keys);
        keys.clear();
        keys.extend(
            model
                .entries
                .keys()
                .chain(model.in_flight.keys())
                .filter(|cd| packed(**cd).is_some_and(|k| !self.resolved.contains_key(&k)))
                .copied(),
        );
        if !keys.is_empty() {
            keys.sort_unstable();
            keys.dedup();
            for k in keys.iter().filter_map(|cd| packed(*cd)) {
                self.resolved.insert(k, NOT_IN_GRAPH);
            }
            graph.edges_by_scid_sorted(
                keys.iter().map(|cd| (cd.short_channel_id, cd.direction)),
                |(scid, direction), idx| {
                    if let Some(k) = packed(ChanDir::new(scid, direction)) {
                        self.resolved.insert(k, idx);
                    }
                },
            );
        }
        // Kept for its allocation, unless a large first rebuild made it large.
        if keys.capacity() <= 4096 {
            self.keys = keys;
        }
        let in_flight_only = model
            .in_flight
            .keys()
            .filter(|cd| !model.entries.contains_key(*cd));
        for &cd in model.entries.keys().chain(in_flight_only) {
            self.catch_up(graph, model, cd);
        }
    }

    /// The edge of `cd` on `graph` (the view's `resolved_for`), resolved once.
    fn edge_of(&mut self, graph: &Graph, cd: ChanDir) -> Option<EdgeIdx> {
        let lookup = || {
            graph
                .edge_by_scid(cd.short_channel_id, cd.direction)
                .unwrap_or(NOT_IN_GRAPH)
        };
        let found = match packed(cd) {
            Some(k) => *self.resolved.entry(k).or_insert_with(lookup),
            None => lookup(),
        };
        (found != NOT_IN_GRAPH).then_some(found)
    }

    /// What the model now holds of one changed channel direction.
    fn catch_up(&mut self, graph: &Graph, model: &Liquidity, cd: ChanDir) {
        let Some(idx) = self.edge_of(graph, cd) else {
            return;
        };
        let entry = model.entries.get(&cd).copied();
        let flying = model.in_flight.get(&cd).copied();
        let known = (entry.is_some() || flying.is_some()).then(|| Known {
            entry: entry.unwrap_or(Entry::UNKNOWN),
            in_flight_msat: flying.unwrap_or(0),
        });
        self.set(idx, known);
    }

    /// Edge `idx` now has `known` (or nothing learned).
    fn set(&mut self, idx: EdgeIdx, known: Option<Known>) {
        let slot = &mut self.slot[idx as usize];
        match (*slot, known) {
            (0, None) => {}
            (0, Some(k)) => {
                self.known.push(k);
                *slot = self.known.len() as u32;
                self.touched.push(idx);
                self.live += 1;
            }
            (s, Some(k)) => self.known[s as usize - 1] = k,
            (_, None) => {
                *slot = 0;
                self.live -= 1;
            }
        }
    }

    /// What [`Beliefs::hop_bits`] adds to the search's cost of a hop carrying `amount_msat`,
    /// at the model's price per bit.
    #[inline(always)]
    pub fn hop_msat(&self, amount_msat: u64) -> u64 {
        if self.hop_bits <= 0.0 {
            return 0;
        }
        (self.hop_bits * self.per_bit_msat(amount_msat)).round() as u64
    }

    /// The model's price per bit of `-log2 P` for `amount_msat` at stake.
    #[inline(always)]
    pub fn per_bit_msat(&self, amount_msat: u64) -> f64 {
        self.config.risk_base_msat as f64 + amount_msat as f64 * self.config.risk_ppm as f64 * 1e-6
    }

    /// Risk cost of sending `amount_msat` over edge `idx` (capacity `capacity_msat`) out of
    /// node `source`, or `None` if it cannot carry it. The common case (nothing learned of the
    /// edge or its source, uniform prior) is inlined into the search's loop; the rest is a
    /// call.
    #[inline(always)]
    pub fn risk_msat(
        &self,
        idx: EdgeIdx,
        source: NodeIdx,
        amount_msat: u64,
        capacity_msat: u64,
    ) -> Option<u64> {
        let slot = self.slot.get(idx as usize).copied().unwrap_or(0);
        // Most views remember no node failure: then skip the (random) read.
        let node = if self.nodes_touched.is_empty() {
            1.0
        } else {
            self.node_factor
                .get(source as usize)
                .copied()
                .unwrap_or(1.0)
        };
        if slot == 0 && node == 1.0 && self.config.prior == Prior::Uniform {
            // An edge nothing is known of, its risk straight from the share of the capacity
            // the amount takes (no log2 call while that share is small).
            return uniform_prior_bits(amount_msat, capacity_msat)
                .map(|bits| risk_from_bits(&self.config, amount_msat, bits + self.depleted_bits));
        }
        self.learned_risk_msat(slot, node as f64, amount_msat, capacity_msat)
    }

    /// [`Beliefs::risk_msat`] of an edge with something learned (`slot`), out of a node with
    /// factor `node`, or under the bimodal prior.
    #[inline(never)]
    fn learned_risk_msat(
        &self,
        slot: u32,
        node: f64,
        amount_msat: u64,
        capacity_msat: u64,
    ) -> Option<u64> {
        let p = if slot == 0 {
            self.config.prior_probability(amount_msat, capacity_msat)
        } else {
            let k = &self.known[slot as usize - 1];
            let amount = amount_msat.saturating_add(k.in_flight_msat);
            k.entry
                .probability(&self.config, amount, capacity_msat, self.now)
        };
        risk_msat(&self.config, amount_msat, p * node)
    }

    /// Bytes this view holds.
    pub fn heap_bytes(&self) -> usize {
        self.slot.capacity() * 4
            + self.known.capacity() * std::mem::size_of::<Known>()
            + self.touched.capacity() * 4
            + self.node_factor.capacity() * 4
            + self.nodes_touched.capacity() * 4
            + self.node_times.capacity() * std::mem::size_of::<(NodeIdx, u64)>()
            + self.keys.capacity() * std::mem::size_of::<ChanDir>()
            + self.resolved.capacity() * (std::mem::size_of::<(u64, EdgeIdx)>() + 1)
    }
}

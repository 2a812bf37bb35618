//! The graph as the search reads it: nodes interned to indices, edges laid out by destination
//! in compressed-sparse-row form, an scid index, parallel channels linked in rings.

use super::fxhash::FxBuildHasher;
use super::ids::{Edge, EdgeIdx, NodeIdx, Scid, SearchEdge};
use std::collections::HashMap;

/// The graph: nodes interned to indices, edges stored once and indexed by destination
/// (for backward searches) in compressed-sparse-row form.
#[derive(Debug, Default)]
pub struct Graph {
    pub(super) node_ids: Vec<String>,
    pub(super) node_index: HashMap<String, NodeIdx, FxBuildHasher>,
    /// Edges sorted by destination; `in_start[v]..in_start[v+1]` are the edges into `v`:
    /// first the active ones whose source leads elsewhere too (up to `in_live_end[v]`), then
    /// the active ones from dead ends (see [`Graph::dead_end`]; up to `in_active_end[v]`),
    /// then the inactive ones.
    pub(super) edges: Vec<Edge>,
    pub(super) in_start: Vec<u32>,
    pub(super) in_live_end: Vec<u32>,
    pub(super) in_active_end: Vec<u32>,
    /// The search's copy of `edges` (same indices), see [`SearchEdge`].
    pub(super) search: Vec<SearchEdge>,
    /// Each edge's channel capacity, dense (same indices): a probabilistic search reads it for
    /// every edge it relaxes, and the edges into a node are adjacent here (eight to a cache
    /// line) where in `edges` each is a cache line of its own.
    pub(super) capacity: Vec<u64>,
    /// Per node: the one node all its active in-edges come from, or [`NO_IN`] / [`MANY_IN`].
    pub(super) only_in: Vec<NodeIdx>,
    /// `(scid, direction, edge)`, sorted.
    pub(super) by_scid: Vec<(Scid, u8, EdgeIdx)>,
    /// `(edge, next)`, sorted by edge: the active edges with a parallel one (same source,
    /// destination and fees), each pointing at the next of its group in a ring. See
    /// [`Graph::parallel_next`].
    pub(super) parallel: Vec<(EdgeIdx, EdgeIdx)>,
    /// Unique to this graph among those built by this process (see [`Graph::id`]).
    pub(super) id: u64,
}

/// The next [`Graph::id`].
pub(super) static NEXT_GRAPH_ID: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(1);

/// `only_in` of a node no active edge leads into.
pub(super) const NO_IN: NodeIdx = u32::MAX - 1;
/// `only_in` of a node with active in-edges from two or more nodes.
pub(super) const MANY_IN: NodeIdx = u32::MAX;

impl Graph {
    pub fn node_count(&self) -> usize {
        self.node_ids.len()
    }

    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    pub fn node_idx(&self, node_id: &str) -> Option<NodeIdx> {
        self.node_index.get(node_id).copied()
    }

    pub fn node_id(&self, idx: NodeIdx) -> &str {
        &self.node_ids[idx as usize]
    }

    /// Edge `idx` of this graph in `other`, a later read of the same network: the same
    /// channel direction, if `other` has it.
    pub fn same_edge_in(&self, idx: EdgeIdx, other: &Graph) -> Option<EdgeIdx> {
        let e = self.edge(idx);
        other.edge_by_scid(e.short_channel_id, e.direction)
    }

    /// Node `idx` of this graph in `other`, if `other` has it.
    pub fn same_node_in(&self, idx: NodeIdx, other: &Graph) -> Option<NodeIdx> {
        other.node_idx(self.node_id(idx))
    }

    pub fn edge(&self, idx: EdgeIdx) -> &Edge {
        &self.edges[idx as usize]
    }

    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// An id no other graph built by this process has: what a cache of edge indices (which
    /// are this graph's own) checks before it trusts them.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The capacity of the channel an edge belongs to.
    #[inline]
    pub fn edge_capacity_msat(&self, idx: EdgeIdx) -> u64 {
        self.capacity[idx as usize]
    }

    /// The edges whose destination is `node` (active and inactive), with their indices.
    pub fn edges_into(&self, node: NodeIdx) -> impl Iterator<Item = (EdgeIdx, &Edge)> {
        let start = self.in_start[node as usize];
        let end = self.in_start[node as usize + 1];
        (start..end).map(move |i| (i, &self.edges[i as usize]))
    }

    /// The active edges into `node` as the search sees them, and the index of the first.
    /// Edges from dead ends (nodes a path could only leave back toward `node`) are included
    /// only when asked for: a search needs them only to reach its own starting node.
    #[inline]
    pub(crate) fn search_edges_into(
        &self,
        node: NodeIdx,
        with_dead_ends: bool,
    ) -> (EdgeIdx, &[SearchEdge]) {
        let start = self.in_start[node as usize];
        let end = if with_dead_ends {
            self.in_active_end[node as usize]
        } else {
            self.in_live_end[node as usize]
        };
        (start, &self.search[start as usize..end as usize])
    }

    /// Whether every active edge into `node` comes from `from` (or none does): a search that
    /// reached `node` from `from` could not go on from it.
    #[inline]
    pub(crate) fn dead_end(&self, node: NodeIdx, from: NodeIdx) -> bool {
        let only = self.only_in[node as usize];
        only == from || only == NO_IN
    }

    /// The edge for one direction of a channel.
    pub fn edge_by_scid(&self, scid: Scid, direction: u8) -> Option<EdgeIdx> {
        self.by_scid
            .binary_search_by(|&(s, d, _)| (s, d).cmp(&(scid, direction)))
            .ok()
            .map(|i| self.by_scid[i].2)
    }

    /// [`Graph::edge_by_scid`] for many keys at once, sorted ascending: `found(key, edge)` for
    /// each key the graph has. One walk through the sorted index, galloping from the last
    /// match, so lookups of nearby keys share cache lines instead of each descending the
    /// whole binary search (the probabilistic search resolves every learned channel this way
    /// before each attempt).
    pub fn edges_by_scid_sorted(
        &self,
        keys: impl IntoIterator<Item = (Scid, u8)>,
        mut found: impl FnMut((Scid, u8), EdgeIdx),
    ) {
        let index = &self.by_scid[..];
        let mut at = 0;
        for key in keys {
            let rest = &index[at..];
            // Gallop: the first window whose last entry is >= key, then search inside it.
            let mut hi = 1;
            while hi < rest.len() && (rest[hi - 1].0, rest[hi - 1].1) < key {
                hi *= 2;
            }
            let window = &rest[..hi.min(rest.len())];
            let i = window.partition_point(|&(s, d, _)| (s, d) < key);
            at += i;
            if let Some(&(s, d, e)) = index.get(at)
                && (s, d) == key
            {
                found(key, e);
            }
        }
    }

    /// The next active edge with the same source, destination and fees as active edge `idx`
    /// (a ring: following it comes back to `idx`), or `None` if it has none. lightningd (and
    /// LND) forward non-strictly: an HTLC asked of one channel leaves over whichever of those
    /// to the same peer, at the same fees, has the most spendable, so such a hop fails only
    /// when all of them lack the amount.
    pub fn parallel_next(&self, idx: EdgeIdx) -> Option<EdgeIdx> {
        self.parallel
            .binary_search_by_key(&idx, |&(e, _)| e)
            .ok()
            .map(|i| self.parallel[i].1)
    }

    /// `idx` and the other edges of its parallel group: what a failure of `idx` tells of.
    pub fn parallel_group(&self, idx: EdgeIdx) -> impl Iterator<Item = EdgeIdx> + '_ {
        std::iter::once(idx).chain(self.parallel_to(idx))
    }

    /// The edge that stands for `idx`'s parallel group: its lowest index (`idx` when alone).
    pub fn parallel_lead(&self, idx: EdgeIdx) -> EdgeIdx {
        self.parallel_group(idx).min().unwrap_or(idx)
    }

    /// The other edges of `idx`'s parallel group (see [`Graph::parallel_next`]).
    pub fn parallel_to(&self, idx: EdgeIdx) -> impl Iterator<Item = EdgeIdx> + '_ {
        let mut at = self.parallel_next(idx);
        std::iter::from_fn(move || {
            let e = at.filter(|&e| e != idx)?;
            at = self.parallel_next(e);
            Some(e)
        })
        .take(self.parallel.len())
    }

    /// Every `(edge, next)` of [`Graph::parallel_next`], sorted by edge.
    #[cfg(test)]
    pub(crate) fn parallel_edges(&self) -> &[(EdgeIdx, EdgeIdx)] {
        &self.parallel
    }

    /// Approximate heap bytes held, for the benchmark's memory report.
    pub fn heap_bytes(&self) -> usize {
        // A hashbrown table holds its capacity rounded up to a power of two (in 8/7 load),
        // plus one control byte per bucket.
        fn table<K, V>(len: usize) -> usize {
            let buckets = (len * 8 / 7).next_power_of_two();
            buckets * (std::mem::size_of::<(K, V)>() + 1)
        }
        let ids: usize = self.node_ids.iter().map(|s| s.capacity()).sum();
        ids * 2
            + self.node_ids.capacity() * std::mem::size_of::<String>()
            + table::<String, NodeIdx>(self.node_index.capacity())
            + self.edges.capacity() * std::mem::size_of::<Edge>()
            + self.search.capacity() * std::mem::size_of::<SearchEdge>()
            + self.capacity.capacity() * 8
            + (self.in_start.capacity()
                + self.in_live_end.capacity()
                + self.in_active_end.capacity()
                + self.only_in.capacity())
                * 4
            + self.by_scid.capacity() * std::mem::size_of::<(Scid, u8, EdgeIdx)>()
            + self.parallel.capacity() * std::mem::size_of::<(EdgeIdx, EdgeIdx)>()
    }
}

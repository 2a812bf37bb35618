//! The public channel graph: decoded from `listchannels` JSON bytes into compact, indexed arrays.
//!
//! Built once and shared (read-only) by every search. Nothing here does I/O: the caller hands in
//! the raw bytes of a `listchannels` result. The decode is deliberately lean (node ids stay hex
//! strings until interned, unknown fields are skipped) because a mainnet graph has ~100k channel
//! directions and cln-rpc's typed model spends most of its time validating public keys.

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::HashMap;
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
    fn of(e: &Edge) -> SearchEdge {
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

/// FxHash (rustc's hasher, as in rustc-hash 2): an add and a multiply per word. The keys here (node ids, scids,
/// indices) are not attacker-chosen in a way that matters for a local plugin, and SipHash was a
/// visible share of both graph building and searching with exclusions.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

/// `HashMap`/`HashSet` hasher builder for [`FxHasher`].
pub type FxBuildHasher = std::hash::BuildHasherDefault<FxHasher>;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = self
            .hash
            .wrapping_add(word)
            .wrapping_mul(0xf135_7aea_2e62_a9c5);
    }
}

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(tail) ^ rest.len() as u64);
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    /// The rotate brings the well-mixed high bits down to where hashbrown picks its bucket
    /// (keys like scids have many zero low bits, which a bare multiply leaves at zero).
    #[inline]
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

/// The graph: nodes interned to indices, edges stored once and indexed by destination
/// (for backward searches) in compressed-sparse-row form.
#[derive(Debug, Default)]
pub struct Graph {
    node_ids: Vec<String>,
    node_index: HashMap<String, NodeIdx, FxBuildHasher>,
    /// Edges sorted by destination; `in_start[v]..in_start[v+1]` are the edges into `v`:
    /// first the active ones whose source leads elsewhere too (up to `in_live_end[v]`), then
    /// the active ones from dead ends (see [`Graph::dead_end`]; up to `in_active_end[v]`),
    /// then the inactive ones.
    edges: Vec<Edge>,
    in_start: Vec<u32>,
    in_live_end: Vec<u32>,
    in_active_end: Vec<u32>,
    /// The search's copy of `edges` (same indices), see [`SearchEdge`].
    search: Vec<SearchEdge>,
    /// Each edge's channel capacity, dense (same indices): a probabilistic search reads it for
    /// every edge it relaxes, and the edges into a node are adjacent here (eight to a cache
    /// line) where in `edges` each is a cache line of its own.
    capacity: Vec<u64>,
    /// Per node: the one node all its active in-edges come from, or [`NO_IN`] / [`MANY_IN`].
    only_in: Vec<NodeIdx>,
    /// `(scid, direction, edge)`, sorted.
    by_scid: Vec<(Scid, u8, EdgeIdx)>,
    /// `(edge, next)`, sorted by edge: the active edges with a parallel one (same source,
    /// destination and fees), each pointing at the next of its group in a ring. See
    /// [`Graph::parallel_next`].
    parallel: Vec<(EdgeIdx, EdgeIdx)>,
    /// Unique to this graph among those built by this process (see [`Graph::id`]).
    id: u64,
}

/// The next [`Graph::id`].
static NEXT_GRAPH_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// `only_in` of a node no active edge leads into.
const NO_IN: NodeIdx = u32::MAX - 1;
/// `only_in` of a node with active in-edges from two or more nodes.
const MANY_IN: NodeIdx = u32::MAX;

/// Why `listchannels` bytes could not become a graph.
#[derive(Debug)]
pub struct GraphError(pub String);

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read listchannels: {}", self.0)
    }
}

impl std::error::Error for GraphError {}

/// One `listchannels` entry, borrowed from the input where it has no escapes.
#[derive(Deserialize)]
struct RawChannel<'a> {
    #[serde(borrow)]
    source: Cow<'a, str>,
    #[serde(borrow)]
    destination: Cow<'a, str>,
    #[serde(borrow)]
    short_channel_id: Cow<'a, str>,
    direction: Option<u8>,
    amount_msat: u64,
    active: bool,
    base_fee_millisatoshi: u32,
    fee_per_millionth: u32,
    delay: u32,
    htlc_minimum_msat: u64,
    htlc_maximum_msat: Option<u64>,
}

/// Streams `{"channels": [...]}` straight into a builder: no `Vec` of ~100k parsed entries is
/// ever held (it cost ~12 MiB at peak and an extra pass).
struct ListchannelsSeed<'b>(&'b mut GraphBuilder);

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum TopField {
    Channels,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for ListchannelsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ListchannelsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a listchannels result {\"channels\": [...]}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<TopField>()? {
            match key {
                TopField::Channels if !seen => {
                    map.next_value_seed(ChannelsSeed(&mut *self.0))?;
                    seen = true;
                }
                TopField::Channels => return Err(de::Error::duplicate_field("channels")),
                TopField::Other => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        if seen {
            Ok(())
        } else {
            Err(de::Error::missing_field("channels"))
        }
    }
}

struct ChannelsSeed<'b>(&'b mut GraphBuilder);

impl<'de> DeserializeSeed<'de> for ChannelsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ChannelsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of listchannels entries")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(c) = seq.next_element::<RawChannel<'de>>()? {
            self.0.add_raw(&c).map_err(de::Error::custom)?;
        }
        Ok(())
    }
}

impl Graph {
    /// Builds the graph from the raw bytes of a `listchannels` result (`{"channels": [...]}`).
    pub fn from_listchannels_json(bytes: &[u8]) -> Result<Graph, GraphError> {
        Ok(GraphBuilder::from_listchannels_json(bytes)?.build())
    }

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

/// Collects edges, then lays them out by destination.
#[derive(Default)]
pub struct GraphBuilder {
    node_ids: Vec<String>,
    node_index: HashMap<String, NodeIdx, FxBuildHasher>,
    edges: Vec<Edge>,
}

impl GraphBuilder {
    pub fn with_capacity(edges: usize) -> Self {
        GraphBuilder {
            node_ids: Vec::with_capacity(edges / 5),
            node_index: HashMap::with_capacity_and_hasher(edges / 5, FxBuildHasher::default()),
            edges: Vec::with_capacity(edges),
        }
    }

    /// Decodes `listchannels` bytes into a builder (the parse half of
    /// [`Graph::from_listchannels_json`]; [`GraphBuilder::build`] is the layout half).
    pub fn from_listchannels_json(bytes: &[u8]) -> Result<GraphBuilder, GraphError> {
        // A mainnet entry is ~450 bytes, ~365 with only the fields we read (filtered):
        // reserving a little more avoids regrowing ~100k edges (which briefly holds both).
        let mut builder = GraphBuilder::with_capacity(bytes.len() / 340);
        let mut de = serde_json::Deserializer::from_slice(bytes);
        ListchannelsSeed(&mut builder)
            .deserialize(&mut de)
            .and_then(|()| de.end())
            .map_err(|e| GraphError(e.to_string()))?;
        Ok(builder)
    }

    fn add_raw(&mut self, c: &RawChannel) -> Result<(), String> {
        let scid: Scid = c.short_channel_id.parse()?;
        let direction = match c.direction {
            Some(d) => d,
            None => u8::from(c.source > c.destination),
        };
        self.add(
            &c.source,
            &c.destination,
            scid,
            direction,
            c.active,
            c.amount_msat,
            Policy {
                base_fee_millisatoshi: c.base_fee_millisatoshi,
                fee_per_millionth: c.fee_per_millionth,
                delay: c.delay,
                htlc_minimum_msat: c.htlc_minimum_msat,
                htlc_maximum_msat: c.htlc_maximum_msat.unwrap_or(c.amount_msat),
            },
        );
        Ok(())
    }

    fn intern(&mut self, id: &str) -> NodeIdx {
        if let Some(i) = self.node_index.get(id) {
            return *i;
        }
        let i = self.node_ids.len() as NodeIdx;
        self.node_ids.push(id.to_string());
        self.node_index.insert(id.to_string(), i);
        i
    }

    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        source: &str,
        destination: &str,
        short_channel_id: Scid,
        direction: u8,
        active: bool,
        amount_msat: u64,
        policy: Policy,
    ) {
        let source = self.intern(source);
        let destination = self.intern(destination);
        self.edges.push(Edge {
            short_channel_id,
            direction,
            source,
            destination,
            active,
            amount_msat,
            policy,
        });
    }

    pub fn build(self) -> Graph {
        let n = self.node_ids.len();
        // Who leads into each node over active edges: one node, several, or none.
        let mut only_in = vec![NO_IN; n];
        for e in self.edges.iter().filter(|e| e.active) {
            let only = &mut only_in[e.destination as usize];
            if *only == NO_IN {
                *only = e.source;
            } else if *only != e.source {
                *only = MANY_IN;
            }
        }
        // Each edge's place among the edges into its destination: live (active, and its source
        // can be left toward some other node), then dead-end (active, but every edge into its
        // source comes from this destination: a leaf hanging off a hub, say), then inactive.
        let class = |e: &Edge| -> usize {
            if !e.active {
                2
            } else if matches!(only_in[e.source as usize], o if o == e.destination || o == NO_IN) {
                1
            } else {
                0
            }
        };
        // Counting sort by (destination, class): O(E), stable.
        let mut count = vec![[0u32; 3]; n];
        for e in &self.edges {
            count[e.destination as usize][class(e)] += 1;
        }
        let mut in_start = Vec::with_capacity(n + 1);
        let mut next = Vec::with_capacity(n);
        let mut at = 0u32;
        for c in &count {
            in_start.push(at);
            next.push([at, at + c[0], at + c[0] + c[1]]);
            at += c[0] + c[1] + c[2];
        }
        in_start.push(at);
        let in_live_end: Vec<u32> = next.iter().map(|s| s[1]).collect();
        let in_active_end: Vec<u32> = next.iter().map(|s| s[2]).collect();
        drop(count);
        // Move every edge to its slot in place (following permutation cycles), so the edges are
        // never held twice: at mainnet scale that is 6.5 MiB off the peak.
        let mut edges = self.edges;
        let mut slot_of: Vec<u32> = edges
            .iter()
            .map(|e| {
                let slot = &mut next[e.destination as usize][class(e)];
                *slot += 1;
                *slot - 1
            })
            .collect();
        drop(next);
        for i in 0..edges.len() {
            while slot_of[i] as usize != i {
                let j = slot_of[i] as usize;
                edges.swap(i, j);
                slot_of.swap(i, j);
            }
        }
        drop(slot_of);
        edges.shrink_to_fit();
        let search = edges.iter().map(SearchEdge::of).collect();
        let capacity = edges.iter().map(|e| e.amount_msat).collect();
        // Sorted, not hashed: looked up only when a payment fails, and half the memory.
        let mut by_scid: Vec<(Scid, u8, EdgeIdx)> = edges
            .iter()
            .enumerate()
            .map(|(i, e)| (e.short_channel_id, e.direction, i as EdgeIdx))
            .collect();
        by_scid.sort_unstable();
        let parallel = parallel_rings(&edges, &in_start, &in_active_end);
        let mut node_ids = self.node_ids;
        node_ids.shrink_to_fit();
        Graph {
            node_ids,
            node_index: self.node_index,
            edges,
            in_start,
            in_live_end,
            in_active_end,
            search,
            capacity,
            only_in,
            by_scid,
            parallel,
            id: NEXT_GRAPH_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// [`Graph::parallel`] of `edges` (laid out by destination, the active edges into `v` at
/// `in_start[v]..in_active_end[v]`): groups of two or more active edges with the same source,
/// destination and fees, each group linked into a ring.
fn parallel_rings(
    edges: &[Edge],
    in_start: &[u32],
    in_active_end: &[u32],
) -> Vec<(EdgeIdx, EdgeIdx)> {
    let key = |i: &EdgeIdx| {
        let e = &edges[*i as usize];
        (
            e.source,
            e.policy.base_fee_millisatoshi,
            e.policy.fee_per_millionth,
        )
    };
    let mut rings = Vec::new();
    let mut into = Vec::new();
    for (&start, &end) in in_start.iter().zip(in_active_end) {
        if end - start < 2 {
            continue;
        }
        into.clear();
        into.extend(start..end);
        // Stable: each group stays in index order.
        into.sort_by_key(key);
        for group in into.chunk_by(|a, b| key(a) == key(b)) {
            if group.len() > 1 {
                for (k, &e) in group.iter().enumerate() {
                    rings.push((e, group[(k + 1) % group.len()]));
                }
            }
        }
    }
    rings.sort_unstable();
    rings.shrink_to_fit();
    rings
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scid_roundtrip_and_errors() {
        let s: Scid = "103x1x0".parse().unwrap();
        assert_eq!(s.to_string(), "103x1x0");
        assert_eq!(s.block(), 103);
        let s: Scid = "16777215x16777215x65535".parse().unwrap();
        assert_eq!(s.to_string(), "16777215x16777215x65535");
        for bad in [
            "",
            "1x2",
            "1x2x3x4",
            "ax1x0",
            "16777216x0x0",
            "1x-1x0",
            "1:2:3",
        ] {
            assert!(bad.parse::<Scid>().is_err(), "{bad}");
        }
    }

    #[test]
    fn parallel_edges_at_the_same_fees_form_rings() {
        let mut b = GraphBuilder::default();
        let free = free_policy();
        let dear = Policy {
            fee_per_millionth: 10,
            ..free
        };
        // a -> b: three at the same fees, one dearer, one inactive; b -> a: one; a -> c: one.
        for (n, active, policy) in [(1, true, free), (2, true, free), (3, true, free)] {
            b.add("a", "b", Scid(n << 40), 0, active, 1000, policy);
        }
        b.add("a", "b", Scid(4 << 40), 0, true, 1000, dear);
        b.add("a", "b", Scid(5 << 40), 0, false, 1000, free);
        b.add("b", "a", Scid(1 << 40), 1, true, 1000, free);
        b.add("a", "c", Scid(6 << 40), 0, true, 1000, free);
        let g = b.build();
        let e = |n: u64, d: u8| g.edge_by_scid(Scid(n << 40), d).unwrap();
        let group = |n: u64| {
            let mut v: Vec<u64> = g
                .parallel_to(e(n, 0))
                .map(|i| g.edge(i).short_channel_id.0 >> 40)
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(group(1), [2, 3]);
        assert_eq!(group(2), [1, 3]);
        assert_eq!(group(3), [1, 2]);
        for lone in [4, 5, 6] {
            assert!(group(lone).is_empty(), "{lone}");
        }
        assert_eq!(g.parallel_next(e(1, 1)), None);
        assert_eq!(g.parallel_edges().len(), 3);
    }

    #[test]
    fn builds_from_listchannels() {
        let json = br#"{"channels":[
          {"source":"02aa","destination":"03bb","short_channel_id":"1x1x0","direction":0,"public":true,
           "amount_msat":1000000,"message_flags":1,"channel_flags":0,"active":true,"last_update":1,
           "base_fee_millisatoshi":1,"fee_per_millionth":10,"delay":6,"htlc_minimum_msat":0,
           "htlc_maximum_msat":990000,"features":""},
          {"source":"03bb","destination":"02aa","short_channel_id":"1x1x0","direction":1,"public":true,
           "amount_msat":1000000,"active":false,"last_update":1,
           "base_fee_millisatoshi":2,"fee_per_millionth":20,"delay":7,"htlc_minimum_msat":5}
        ]}"#;
        let g = Graph::from_listchannels_json(json).unwrap();
        assert_eq!(g.node_count(), 2);
        assert_eq!(g.edge_count(), 2);
        let a = g.node_idx("02aa").unwrap();
        let into_a: Vec<_> = g.edges_into(a).collect();
        assert_eq!(into_a.len(), 1);
        let e = into_a[0].1;
        assert_eq!(g.node_id(e.source), "03bb");
        assert!(!e.active);
        assert_eq!(
            e.policy.htlc_maximum_msat, 1_000_000,
            "missing max = capacity"
        );
        let idx = g.edge_by_scid("1x1x0".parse().unwrap(), 0).unwrap();
        assert_eq!(g.edge(idx).policy.fee_per_millionth, 10);
        assert!(Graph::from_listchannels_json(b"{\"channels\": 5}").is_err());
    }

    #[test]
    fn decode_errors_and_other_fields() {
        let g = Graph::from_listchannels_json(br#"{"x":[1,{"y":2}],"channels":[],"z":null}"#);
        assert_eq!(g.unwrap().node_count(), 0);
        for bad in [
            &br#"{"other": 1}"#[..],
            br#"{"channels": [], "channels": []}"#,
            br#"{"channels": []} trailing"#,
            br#"[]"#,
            br#"{"channels": [{"source": "02aa"}]}"#,
        ] {
            let e = Graph::from_listchannels_json(bad).unwrap_err();
            assert!(e.to_string().starts_with("cannot read listchannels"), "{e}");
        }
        let bad_scid = br#"{"channels":[{"source":"a","destination":"b","short_channel_id":"1:2",
            "amount_msat":1,"active":true,"base_fee_millisatoshi":0,"fee_per_millionth":0,
            "delay":1,"htlc_minimum_msat":0}]}"#;
        let e = Graph::from_listchannels_json(bad_scid).unwrap_err();
        assert!(e.to_string().contains("not a short_channel_id"), "{e}");
    }

    #[test]
    fn fee_fast_path_matches_the_u128_reference() {
        let amounts = [
            0,
            1,
            999_999,
            1_000_000,
            1_000_001,
            u64::MAX / 4_294_967_295,
            u64::MAX,
        ];
        for amount in amounts {
            for ppm in [0, 1, 10, 999_999, 1_000_000, u32::MAX] {
                for base in [0, 1, 1000, u32::MAX] {
                    let p = Policy {
                        base_fee_millisatoshi: base,
                        fee_per_millionth: ppm,
                        delay: 0,
                        htlc_minimum_msat: 0,
                        htlc_maximum_msat: 0,
                    };
                    let want = crate::core::amount::fee_msat(amount, base, ppm);
                    assert_eq!(p.fee_msat(amount), want, "{amount} {ppm} {base}");
                }
            }
        }
    }

    #[test]
    fn sorted_lookups_match_single_ones() {
        let p = free_policy();
        let mut b = GraphBuilder::default();
        // 300 channels, both directions of the even ones, one of the odd ones.
        for n in 1..=300u64 {
            let (x, y) = (format!("n{}", n % 17), format!("m{}", n % 23));
            b.add(&x, &y, Scid(n << 40), 0, true, 1000, p);
            if n % 2 == 0 {
                b.add(&y, &x, Scid(n << 40), 1, true, 1000, p);
            }
        }
        let g = b.build();
        // Every key from 0 to 301 in both directions: present and absent ones mixed, runs of
        // misses, the first and last entries, and keys past the end.
        let keys: Vec<(Scid, u8)> = (0..=301u64)
            .flat_map(|n| [(Scid(n << 40), 0), (Scid(n << 40), 1)])
            .collect();
        let mut got = Vec::new();
        g.edges_by_scid_sorted(keys.iter().copied(), |k, e| got.push((k, e)));
        let want: Vec<_> = keys
            .iter()
            .filter_map(|&(s, d)| Some(((s, d), g.edge_by_scid(s, d)?)))
            .collect();
        assert_eq!(got, want);
        assert_eq!(got.len(), 450);
        // A sparse subset, and nothing at all.
        let sparse: Vec<_> = keys.iter().copied().step_by(37).collect();
        let mut got = Vec::new();
        g.edges_by_scid_sorted(sparse.iter().copied(), |k, e| got.push((k, e)));
        let want: Vec<_> = sparse
            .iter()
            .filter_map(|&(s, d)| Some(((s, d), g.edge_by_scid(s, d)?)))
            .collect();
        assert_eq!(got, want);
        g.edges_by_scid_sorted(std::iter::empty(), |_, _| panic!("no keys"));
    }

    #[test]
    fn layout_orders_live_then_dead_end_then_inactive() {
        let p = free_policy();
        let mut b = GraphBuilder::default();
        let scid = |n: u64| Scid(n << 40);
        // "leaf" has one channel, to "hub"; "x" and "y" are connected to each other and the hub.
        b.add("leaf", "hub", scid(1), 0, true, 1000, p);
        b.add("hub", "leaf", scid(1), 1, true, 1000, p);
        b.add("x", "hub", scid(2), 0, true, 1000, p);
        b.add("hub", "x", scid(2), 1, true, 1000, p);
        b.add("y", "hub", scid(3), 0, false, 1000, p);
        b.add("hub", "y", scid(3), 1, true, 1000, p);
        b.add("x", "y", scid(4), 0, true, 1000, p);
        b.add("y", "x", scid(4), 1, true, 1000, p);
        let g = b.build();
        let (hub, leaf, x) = (
            g.node_idx("hub").unwrap(),
            g.node_idx("leaf").unwrap(),
            g.node_idx("x").unwrap(),
        );
        let sources = |dead: bool| -> Vec<&str> {
            let (first, edges) = g.search_edges_into(hub, dead);
            (0..edges.len() as u32)
                .map(|i| g.node_id(g.edge(first + i).source))
                .collect()
        };
        assert_eq!(sources(false), ["x"]);
        assert_eq!(sources(true), ["x", "leaf"]);
        let all: Vec<_> = g
            .edges_into(hub)
            .map(|(_, e)| g.node_id(e.source))
            .collect();
        assert_eq!(all, ["x", "leaf", "y"], "inactive last, still listed");
        assert!(g.dead_end(leaf, hub));
        assert!(!g.dead_end(x, hub));
        for (i, e) in g.edges().iter().enumerate() {
            assert_eq!(
                g.edge_by_scid(e.short_channel_id, e.direction),
                Some(i as u32)
            );
        }
    }
}

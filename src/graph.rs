//! The public channel graph: decoded from `listchannels` JSON bytes into compact, indexed arrays.
//!
//! Built once and shared (read-only) by every search. Nothing here does I/O: the caller hands in
//! the raw bytes of a `listchannels` result. The decode is deliberately lean (node ids stay hex
//! strings until interned, unknown fields are skipped) because a mainnet graph has ~100k channel
//! directions and cln-rpc's typed model spends most of its time validating public keys.

use serde::Deserialize;
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
    pub fn fee_msat(&self, amount_msat: u64) -> Option<u64> {
        crate::amount::fee_msat(
            amount_msat,
            self.base_fee_millisatoshi,
            self.fee_per_millionth,
        )
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

/// The graph: nodes interned to indices, edges stored once and indexed by destination
/// (for backward searches) in compressed-sparse-row form.
#[derive(Debug, Default)]
pub struct Graph {
    node_ids: Vec<String>,
    node_index: HashMap<String, NodeIdx>,
    /// Edges sorted by destination; `in_start[v]..in_start[v+1]` are the edges into `v`.
    edges: Vec<Edge>,
    in_start: Vec<u32>,
    by_scid: HashMap<(Scid, u8), EdgeIdx>,
}

/// Why `listchannels` bytes could not become a graph.
#[derive(Debug)]
pub struct GraphError(pub String);

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read listchannels: {}", self.0)
    }
}

impl std::error::Error for GraphError {}

#[derive(Deserialize)]
struct RawListchannels<'a> {
    #[serde(borrow)]
    channels: Vec<RawChannel<'a>>,
}

#[derive(Deserialize)]
struct RawChannel<'a> {
    #[serde(borrow)]
    source: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    destination: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    short_channel_id: std::borrow::Cow<'a, str>,
    direction: Option<u8>,
    amount_msat: u64,
    active: bool,
    base_fee_millisatoshi: u32,
    fee_per_millionth: u32,
    delay: u32,
    htlc_minimum_msat: u64,
    htlc_maximum_msat: Option<u64>,
}

impl Graph {
    /// Builds the graph from the raw bytes of a `listchannels` result (`{"channels": [...]}`).
    pub fn from_listchannels_json(bytes: &[u8]) -> Result<Graph, GraphError> {
        let raw: RawListchannels =
            serde_json::from_slice(bytes).map_err(|e| GraphError(e.to_string()))?;
        let mut builder = GraphBuilder::with_capacity(raw.channels.len());
        for c in &raw.channels {
            let scid: Scid = c.short_channel_id.parse().map_err(GraphError)?;
            let direction = match c.direction {
                Some(d) => d,
                None => u8::from(c.source > c.destination),
            };
            builder.add(
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
        }
        Ok(builder.build())
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

    /// The edges whose destination is `node`, with their indices.
    pub fn edges_into(&self, node: NodeIdx) -> impl Iterator<Item = (EdgeIdx, &Edge)> {
        let start = self.in_start[node as usize];
        let end = self.in_start[node as usize + 1];
        (start..end).map(move |i| (i, &self.edges[i as usize]))
    }

    /// The edge for one direction of a channel.
    pub fn edge_by_scid(&self, scid: Scid, direction: u8) -> Option<EdgeIdx> {
        self.by_scid.get(&(scid, direction)).copied()
    }

    /// Approximate heap bytes held, for the benchmark's memory report.
    pub fn heap_bytes(&self) -> usize {
        let ids: usize = self.node_ids.iter().map(|s| s.capacity() + 24).sum();
        ids * 2
            + self.node_index.capacity() * 8
            + self.edges.capacity() * std::mem::size_of::<Edge>()
            + self.in_start.capacity() * 4
            + self.by_scid.capacity() * 24
    }
}

/// Collects edges, then lays them out by destination.
#[derive(Default)]
pub struct GraphBuilder {
    node_ids: Vec<String>,
    node_index: HashMap<String, NodeIdx>,
    edges: Vec<Edge>,
}

impl GraphBuilder {
    pub fn with_capacity(edges: usize) -> Self {
        GraphBuilder {
            node_ids: Vec::with_capacity(edges / 5),
            node_index: HashMap::with_capacity(edges / 5),
            edges: Vec::with_capacity(edges),
        }
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

    pub fn build(mut self) -> Graph {
        let n = self.node_ids.len();
        // Counting sort by destination keeps this O(E).
        let mut in_start = vec![0u32; n + 1];
        for e in &self.edges {
            in_start[e.destination as usize + 1] += 1;
        }
        for i in 0..n {
            in_start[i + 1] += in_start[i];
        }
        let mut next = in_start.clone();
        let mut sorted: Vec<Option<Edge>> = vec![None; self.edges.len()];
        for e in self.edges.drain(..) {
            let slot = &mut next[e.destination as usize];
            sorted[*slot as usize] = Some(e);
            *slot += 1;
        }
        let edges: Vec<Edge> = sorted
            .into_iter()
            .map(|e| e.expect("every slot filled"))
            .collect();
        let mut by_scid = HashMap::with_capacity(edges.len());
        for (i, e) in edges.iter().enumerate() {
            by_scid.insert((e.short_channel_id, e.direction), i as EdgeIdx);
        }
        Graph {
            node_ids: self.node_ids,
            node_index: self.node_index,
            edges,
            in_start,
            by_scid,
        }
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
}

//! Test and bench support for the real mainnet graphs in `../shared/data/` (test-only code).
//!
//! Shared by `tests/mainnet_pathfind.rs` and `benches/pathfind.rs`: where the snapshots are,
//! reading them, a seeded RNG, the largest strongly connected component, and sampling the
//! circular queries the plugin runs (mirroring how `rebalance.rs`'s `Plan` builds a `Query`).
#![allow(dead_code)] // each includer uses a different part

use cln_rebalance::core::graph::{EdgeIdx, Graph, NodeIdx};
use cln_rebalance::core::pathfind::{Exclusions, Query};
use cln_rebalance::core::route::{MAX_HOPS, MAX_TOTAL_CLTV};
use std::io::Read;
use std::path::PathBuf;

/// The snapshots, oldest first (file names without the `.listchannels.json.gz` suffix).
pub const SNAPSHOTS: [&str; 3] = [
    "mainnet-2021-04-16",
    "mainnet-2024-09-22",
    "mainnet-2026-02-03",
];

/// The plugin's default `min_final_cltv_expiry` (18) plus its margin (3), as `Plan` uses them.
pub const FINAL_CLTV: u32 = 18 + 3;

/// `$CLN_REBALANCE_MAINNET_DATA`, else `<crate>/../shared/data`.
pub fn data_dir() -> PathBuf {
    match std::env::var_os("CLN_REBALANCE_MAINNET_DATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
    }
}

/// The snapshot's path, or why it cannot be used (for a printed SKIP).
pub fn snapshot_path(name: &str) -> Result<PathBuf, String> {
    let path = data_dir().join(format!("{name}.listchannels.json.gz"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{} not found", path.display()))
    }
}

/// The uncompressed `listchannels` JSON bytes of a snapshot.
pub fn read_snapshot(name: &str) -> Result<Vec<u8>, String> {
    let path = snapshot_path(name)?;
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::with_capacity(64 << 20);
    flate2::read::GzDecoder::new(std::io::BufReader::new(file))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}

/// SplitMix64: a tiny seeded generator, so samples are the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Out-adjacency (the graph itself is indexed by destination): edge indices leaving each node.
pub fn edges_out(g: &Graph) -> Vec<Vec<EdgeIdx>> {
    let mut out = vec![Vec::new(); g.node_count()];
    for (i, e) in g.edges().iter().enumerate() {
        out[e.source as usize].push(i as EdgeIdx);
    }
    out
}

/// Membership in the largest strongly connected component over active edges (Kosaraju,
/// iterative so mainnet depth cannot overflow the stack).
pub fn largest_scc(g: &Graph) -> Vec<bool> {
    let n = g.node_count();
    let out = edges_out(g);
    // Pass 1: finish order on the forward graph.
    let mut visited = vec![false; n];
    let mut order = Vec::with_capacity(n);
    for root in 0..n {
        if visited[root] {
            continue;
        }
        visited[root] = true;
        let mut stack = vec![(root, 0usize)];
        while let Some((v, i)) = stack.last_mut() {
            let v = *v;
            if let Some(&e) = out[v].get(*i) {
                *i += 1;
                let e = g.edge(e);
                let w = e.destination as usize;
                if e.active && !visited[w] {
                    visited[w] = true;
                    stack.push((w, 0));
                }
            } else {
                order.push(v);
                stack.pop();
            }
        }
    }
    // Pass 2: components on the reverse graph, in reverse finish order.
    let mut comp = vec![u32::MAX; n];
    let mut sizes = Vec::new();
    for &root in order.iter().rev() {
        if comp[root] != u32::MAX {
            continue;
        }
        let c = sizes.len() as u32;
        let mut size = 0usize;
        comp[root] = c;
        let mut stack = vec![root];
        while let Some(v) = stack.pop() {
            size += 1;
            for (_, e) in g.edges_into(v as NodeIdx) {
                let u = e.source as usize;
                if e.active && comp[u] == u32::MAX {
                    comp[u] = c;
                    stack.push(u);
                }
            }
        }
        sizes.push(size);
    }
    let biggest = (0..sizes.len()).max_by_key(|&c| sizes[c]).unwrap_or(0) as u32;
    comp.into_iter().map(|c| c == biggest).collect()
}

/// One sampled rebalance: `us -> out_peer ... in_peer -> us`, as the plugin would search it.
#[derive(Debug, Clone)]
pub struct Circle {
    pub us: NodeIdx,
    pub out_peer: NodeIdx,
    /// Our channel to the outgoing peer (its direction us -> out_peer).
    pub out_edge: EdgeIdx,
    pub in_peer: NodeIdx,
    /// The incoming peer's channel direction to us; its policy prices the last hop.
    pub in_edge: EdgeIdx,
    pub amount_msat: u64,
    pub query: Query,
}

impl Circle {
    /// What `Plan` excludes: our own node, so the circle never passes through us in the middle.
    pub fn exclusions(&self) -> Exclusions {
        let mut ex = Exclusions::default();
        ex.nodes.insert(self.us);
        ex
    }
}

/// Nodes that can play "us", ordered by node id: in the largest SCC with at least `min_channels` active channel
/// directions both into and out of it from/to that component.
pub fn candidate_us(
    g: &Graph,
    scc: &[bool],
    out: &[Vec<EdgeIdx>],
    min_channels: usize,
) -> Vec<NodeIdx> {
    (0..g.node_count() as NodeIdx)
        .filter(|&v| scc[v as usize])
        .filter(|&v| {
            let ins = g
                .edges_into(v)
                .filter(|(_, e)| e.active && scc[e.source as usize])
                .count();
            let outs = out[v as usize]
                .iter()
                .filter(|&&e| g.edge(e).active && scc[g.edge(e).destination as usize])
                .count();
            ins >= min_channels && outs >= min_channels
        })
        .collect::<Vec<_>>()
        .tap_sort_by_key(|&v| g.node_id(v))
}

/// Sorting by public names (node id, scid) keeps samples independent of internal numbering.
trait TapSort<T> {
    fn tap_sort_by_key<K: Ord>(self, f: impl FnMut(&T) -> K) -> Self;
}

impl<T> TapSort<T> for Vec<T> {
    fn tap_sort_by_key<K: Ord>(mut self, f: impl FnMut(&T) -> K) -> Self {
        self.sort_by_key(f);
        self
    }
}

/// `count` circles for `amount_msat`, seeded: `us` among `candidates`, the outgoing and the
/// incoming peer two distinct neighbours of `us`, over active channels. The query is what
/// `Plan::new` builds: deliver `amount + incoming peer's fee` with `final cltv + its delta`,
/// at most 18 edges in the middle, 2016 blocks in total. A draw whose last hop cannot carry the
/// amount (the incoming peer's htlc limits, which `Plan` refuses, or either channel's capacity)
/// is drawn again.
pub fn sample_circles(
    g: &Graph,
    scc: &[bool],
    out: &[Vec<EdgeIdx>],
    candidates: &[NodeIdx],
    seed: u64,
    amount_msat: u64,
    count: usize,
) -> Vec<Circle> {
    let mut rng = Rng::new(seed);
    let mut circles = Vec::with_capacity(count);
    let mut draws = 0usize;
    while circles.len() < count && draws < count * 100 {
        draws += 1;
        let us = *rng.pick(candidates);
        let ins: Vec<EdgeIdx> = g
            .edges_into(us)
            .filter(|(_, e)| e.active && scc[e.source as usize])
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
            .tap_sort_by_key(|&e| (g.edge(e).short_channel_id, g.edge(e).direction));
        let outs: Vec<EdgeIdx> = out[us as usize]
            .iter()
            .copied()
            .filter(|&e| g.edge(e).active && scc[g.edge(e).destination as usize])
            .collect::<Vec<_>>()
            .tap_sort_by_key(|&e| (g.edge(e).short_channel_id, g.edge(e).direction));
        let in_edge = *rng.pick(&ins);
        let out_edge = *rng.pick(&outs);
        let in_peer = g.edge(in_edge).source;
        let out_peer = g.edge(out_edge).destination;
        if in_peer == out_peer {
            continue;
        }
        let remote = g.edge(in_edge).policy;
        if amount_msat < remote.htlc_minimum_msat
            || amount_msat > remote.htlc_maximum_msat
            || amount_msat > g.edge(in_edge).amount_msat
            || amount_msat > g.edge(out_edge).amount_msat
        {
            continue;
        }
        let Some(deliver_msat) = remote
            .fee_msat(amount_msat)
            .and_then(|f| amount_msat.checked_add(f))
        else {
            continue;
        };
        circles.push(Circle {
            us,
            out_peer,
            out_edge,
            in_peer,
            in_edge,
            amount_msat,
            query: Query {
                from: out_peer,
                to: in_peer,
                deliver_msat,
                deliver_delay: FINAL_CLTV + remote.delay,
                max_edges: (MAX_HOPS - 2) as u32,
                max_delay: MAX_TOTAL_CLTV,
                max_amount_msat: u64::MAX,
            },
        });
    }
    circles
}

/// `q`-quantile (nearest rank) of sorted values.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A `/proc/self/status` field in KiB (`VmRSS`, `VmHWM`); 0 where there is no procfs.
pub fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

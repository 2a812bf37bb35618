//! The simulation benchmarks' world (test-only code, for `benches/sim/` and
//! `benches/rebalanceall/`): the 2026 mainnet graph as the stand-in's network model with hidden
//! balances, "us" and our channels, the rebalance tasks, the traffic and the flaky nodes
//! between rebalances ([`world`]), and the oracles that know the true balances ([`oracle`]:
//! the cheapest route, the cheapest set of parts, the most that can move).
//!
//! Everything is seeded: one seed gives the same node, balances, tasks, traffic and flakiness
//! on every machine and for every strategy (each strategy gets its own copy of the world).
#![allow(dead_code, unused_imports)] // not every includer uses every part

mod oracle; // what the true balances allow: one route, a set of parts, the most that moves
mod world; // the world's making, the tasks, the traffic between rebalances

pub use oracle::{MARGINS_PCT, Oracle, OracleSet, PartLimits, TaskOracle, delivered};

use crate::mainnet;
use cln_rebalance::config::{Config, Routing};
use cln_rebalance::core::flow::FlowRequest;
use cln_rebalance::core::graph::{EdgeIdx, Graph, NodeIdx};
use cln_rebalance::core::pathfind::Exclusions;
use cln_rebalance::core::route::{HopSpec, MAX_HOPS, MAX_TOTAL_CLTV};
use cln_standin::prng::SplitMix64;
use cln_standin::simnet::Network;

/// The snapshot the simulation runs on.
pub const SNAPSHOT: &str = "mainnet-2026-02-03";
/// The plugin's default `min_final_cltv_expiry` plus its margin, as `Plan` uses them.
const FINAL_CLTV: u32 = mainnet::FINAL_CLTV;
/// Our channels' share of the capacity: outbound-heavy and inbound-heavy.
const OUTBOUND_SHARE: (f64, f64) = (0.80, 0.95);
const INBOUND_SHARE: (f64, f64) = (0.05, 0.20);
/// "Us": a routing node with this many channels whose both directions are active and whose
/// peer is in the largest strongly connected component.
const OUR_CHANNELS: (usize, usize) = (20, 60);
/// `group_of` of a channel with no parallel channel.
const NO_GROUP: u32 = u32::MAX;

/// How hidden balances are drawn: the first side's share of the capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dist {
    /// Any share equally likely.
    Uniform,
    /// As the stand-in's mainnet loader draws them (`load.rs`, `hidden_balance`): a quarter of
    /// channels in [0, 10%], a quarter in [90, 100%], half uniform; 30% of the mass within 5%
    /// of an edge, as observed on mainnet.
    Bimodal,
}

impl std::str::FromStr for Dist {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uniform" => Ok(Dist::Uniform),
            "bimodal" => Ok(Dist::Bimodal),
            o => Err(format!("unknown distribution {o:?} (uniform or bimodal)")),
        }
    }
}

impl Dist {
    pub fn name(self) -> &'static str {
        match self {
            Dist::Uniform => "uniform",
            Dist::Bimodal => "bimodal",
        }
    }

    /// Side 0's balance for a channel of `capacity_msat`.
    pub fn draw(self, rng: &mut SplitMix64, capacity_msat: u64) -> u64 {
        let share = match self {
            Dist::Uniform => rng.unit(),
            Dist::Bimodal => {
                let (pick, u) = (rng.unit(), rng.unit());
                if pick < 0.25 {
                    u * 0.1
                } else if pick < 0.5 {
                    0.9 + u * 0.1
                } else {
                    u
                }
            }
        };
        ((capacity_msat as f64 * share) as u64).min(capacity_msat)
    }
}

/// How the rebalancer routes and remembers: the strategies the benchmarks compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strategy {
    /// The cheapest route by fee; failures ruled out for the call only.
    Fee,
    /// The liquidity model, each rebalance starting from the prior.
    NoMemory,
    /// The model, remembering across rebalances, one route per attempt (`maxparts` 1).
    Memory,
    /// The model with memory, paying in parts (`maxparts` and the smallest part as the base
    /// config says: the plugin's defaults unless a bench flag changes them).
    Parts,
    /// As [`Strategy::Parts`], its model told every channel's true balance as each task starts:
    /// what the plugin's planning leaves to the oracle with nothing to learn.
    Known,
    /// As [`Strategy::Known`], but told the balances as they were when the task before started
    /// (`--interval` old, weighed as old as they are; what the plugin learned since kept): more
    /// than any learner can know, as fresh as a learner's knowledge can be.
    Stale,
    /// As [`Strategy::Parts`], with background probing (`rebalance-probe-per-hour`, the base
    /// config's, else 60): in the idle time before each task, one round over that task's move.
    Probing,
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fee" => Ok(Strategy::Fee),
            "nomem" => Ok(Strategy::NoMemory),
            "mem" => Ok(Strategy::Memory),
            "mpp" => Ok(Strategy::Parts),
            "known" => Ok(Strategy::Known),
            "stale" => Ok(Strategy::Stale),
            "probing" => Ok(Strategy::Probing),
            o => Err(format!(
                "unknown strategy {o:?} (fee, nomem, mem, mpp, known, stale, probing)"
            )),
        }
    }
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Fee => "fee only",
            Strategy::NoMemory => "model, no memory",
            Strategy::Memory => "model, memory",
            Strategy::Parts => "model, parts",
            Strategy::Known => "parts, told now",
            Strategy::Stale => "parts, told before",
            Strategy::Probing => "parts + probing",
        }
    }

    /// Whether it pays in several parts.
    pub fn parts(self) -> bool {
        matches!(
            self,
            Strategy::Parts | Strategy::Known | Strategy::Stale | Strategy::Probing
        )
    }

    /// `base` with this strategy's routing, memory and parts: one route per attempt for all
    /// but the parts strategies, which keep `base`'s `max_parts` and `min_part_msat`.
    pub fn config(self, base: Config) -> Config {
        let (routing, liquidity_memory) = match self {
            Strategy::Fee => (Routing::FeeOnly, true),
            Strategy::NoMemory => (Routing::Probabilistic, false),
            Strategy::Memory
            | Strategy::Parts
            | Strategy::Known
            | Strategy::Stale
            | Strategy::Probing => (Routing::Probabilistic, true),
        };
        // Nobody pays through xpay in the simulation: it measures routing alone.
        Config {
            routing,
            liquidity_memory,
            askrene_read: false,
            askrene_publish: false,
            max_parts: if self.parts() { base.max_parts } else { 1 },
            probe_per_hour: match self {
                Strategy::Probing if base.probe_per_hour == 0 => 60,
                Strategy::Probing => base.probe_per_hour,
                _ => 0,
            },
            ..base
        }
    }
}

/// What the world is made of, and how unkind it is.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    pub seed: u64,
    pub dist: Dist,
    /// Fraction of the channels (not ours) whose balance is drawn anew between rebalances.
    pub traffic: f64,
    /// Fraction of the nodes of the largest SCC (not us, not our peers) that are flaky: each
    /// is offline or online, at even odds, drawn anew between rebalances.
    pub flaky: f64,
    /// "Us" by node id, instead of a seeded pick.
    pub us: Option<String>,
    /// The stand-in's `lazy_disable`: a flaky node's channels listed disabled only once a
    /// forward towards it failed (lightningd's rule with nobody else paying), not at once.
    pub lazy_disable: bool,
    /// Fraction of the other channels' directions whose fee (ppm) changes between rebalances,
    /// to between half and twice what it was (log-uniform), enforced at once as lnd does and
    /// listed at once, so a graph copy the plugin read before is stale there. 0: fees never
    /// change (and the world draws exactly as before the option).
    pub fee_churn: f64,
}

/// One rebalance to do: from an outbound-heavy channel of ours to an inbound-heavy one.
#[derive(Debug, Clone)]
pub struct Task {
    /// Indices into `Network::channels`.
    pub out_chan: usize,
    pub in_chan: usize,
    pub out_scid: String,
    pub in_scid: String,
    pub amount_msat: u64,
}

/// The cheapest route the true balances allow, under the fee cap.
#[derive(Debug, Clone, Copy)]
pub struct OracleRoute {
    pub fee_msat: u64,
    pub hops: usize,
}

/// One task's circle as the plugin sees it (see [`World::circle_ends`]).
#[derive(Debug, Clone)]
pub struct CircleEnds {
    /// The outgoing peer `A` and the incoming peer `B`.
    pub from: NodeIdx,
    pub to: NodeIdx,
    /// Our hop to `A`, and `B`'s hop back to us.
    pub first: HopSpec,
    pub last: HopSpec,
    /// What our outgoing channel can send in all.
    pub max_source_msat: u64,
}

impl CircleEnds {
    /// The flow's request for `amount_msat` in up to `max_parts` parts of at least
    /// `min_part_msat` (never more than the amount, as the plugin asks), fees within
    /// `max_fee_msat`, around `exclude`, 20 hops and 2016 blocks at most.
    pub fn request<'a>(
        &self,
        amount_msat: u64,
        max_parts: usize,
        min_part_msat: u64,
        max_fee_msat: u64,
        exclude: &'a Exclusions,
    ) -> FlowRequest<'a> {
        FlowRequest {
            from: self.from,
            to: self.to,
            amount_msat,
            last_hop: self.last.policy,
            final_delay: FINAL_CLTV,
            max_parts,
            min_part_msat: min_part_msat.min(amount_msat),
            max_fee_msat,
            max_source_msat: self.max_source_msat,
            exclude,
            max_edges: (MAX_HOPS - 2) as u32,
            max_delay: MAX_TOTAL_CLTV,
        }
    }
}

/// The world before the first rebalance, and what is needed to steer and judge it.
pub struct World {
    pub config: WorldConfig,
    /// The network model in its initial state (each strategy runs on a clone).
    pub net: Network,
    /// The graph of the snapshot as the plugin builds it: the oracle searches it.
    pub graph: Graph,
    pub us_id: String,
    pub us_idx: NodeIdx,
    /// Our channels (indices into `net.channels`) we made outbound- and inbound-heavy.
    pub outbound: Vec<usize>,
    pub inbound: Vec<usize>,
    /// All our channels, and their balances at the start of every task.
    ours: Vec<(usize, [u64; 2])>,
    is_ours: Vec<bool>,
    /// Nodes (indices into `net.nodes`) that come and go.
    pub flaky: Vec<usize>,
    /// `net` node -> graph node.
    node_of: Vec<Option<NodeIdx>>,
    /// `net` channel -> its graph edge per side (side s is direction s).
    edge_of: Vec<[Option<EdgeIdx>; 2]>,
    /// `net` channel -> index into `groups` of the channels between the same two nodes
    /// (non-strict forwarding may use any of them), or `NO_GROUP` if it is the only one.
    group_of: Vec<u32>,
    groups: Vec<Vec<usize>>,
    pub scc_nodes: usize,
    pub our_channel_count: usize,
}

/// A list flag's value, comma-separated (the simulation benches' flags).
pub fn parse_list<T: std::str::FromStr>(v: &str) -> Result<Vec<T>, String> {
    v.split(',')
        .map(|x| x.trim().parse().map_err(|_| format!("bad list item {x:?}")))
        .collect()
}

/// A flag's single value.
pub fn parse_one<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("bad value {v:?}"))
}

/// Prints a simulation bench's first line (`title`, build and cores); `false`, after printing
/// why, when the snapshot the world needs is absent.
pub fn bench_header(title: &str) -> bool {
    println!(
        "cln-rebalance {title} ({} build, {} cores)",
        if cfg!(debug_assertions) {
            "DEBUG"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    match mainnet::snapshot_path(SNAPSHOT) {
        Ok(_) => true,
        Err(e) => {
            println!("SKIP: {e}");
            false
        }
    }
}

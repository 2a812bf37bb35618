//! The simulation benchmark's world (test-only code, for `benches/sim.rs`): the 2026 mainnet
//! graph as the stand-in's network model with hidden balances, "us" and our channels, the
//! rebalance tasks, the traffic and the flaky nodes between rebalances, and the oracle that
//! knows the true balances.
//!
//! Everything is seeded: one seed gives the same node, balances, tasks, traffic and flakiness
//! on every machine and for every strategy (each strategy gets its own copy of the world).
#![allow(dead_code)] // not every includer uses every part

use crate::mainnet;
use cln_rebalance::config::{Config, Routing};
use cln_rebalance::core::amount::fee_cap_msat;
use cln_rebalance::core::graph::{EdgeIdx, Graph, NodeIdx, Scid};
use cln_rebalance::core::pathfind::{Exclusions, Query, Scratch, find_path};
use cln_rebalance::core::route::{HopSpec, MAX_HOPS, MAX_TOTAL_CLTV, build_route, route_fee_msat};
use cln_standin::prng::SplitMix64;
use cln_standin::simnet::Network;
use std::collections::HashMap;

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
    /// The model, remembering across rebalances (the plugin's default).
    Memory,
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fee" => Ok(Strategy::Fee),
            "nomem" => Ok(Strategy::NoMemory),
            "mem" => Ok(Strategy::Memory),
            o => Err(format!("unknown strategy {o:?} (fee, nomem, mem)")),
        }
    }
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Fee => "fee only",
            Strategy::NoMemory => "model, no memory",
            Strategy::Memory => "model, memory",
        }
    }

    /// `base` with this strategy's routing and memory.
    pub fn config(self, base: Config) -> Config {
        let (routing, liquidity_memory) = match self {
            Strategy::Fee => (Routing::FeeOnly, true),
            Strategy::NoMemory => (Routing::Probabilistic, false),
            Strategy::Memory => (Routing::Probabilistic, true),
        };
        // Nobody pays through xpay in the simulation: it measures routing alone.
        Config {
            routing,
            liquidity_memory,
            askrene_read: false,
            askrene_publish: false,
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

impl World {
    /// Loads the snapshot and builds the world of `config`.
    pub fn load(config: WorldConfig) -> Result<World, String> {
        let bytes = mainnet::read_snapshot(SNAPSHOT)?;
        let graph = Graph::from_listchannels_json(&bytes).map_err(|e| e.to_string())?;
        let scc = mainnet::largest_scc(&graph);
        let out = mainnet::edges_out(&graph);
        let us_id = match &config.us {
            Some(id) => id.to_ascii_lowercase(),
            None => {
                let candidates = routing_nodes(&graph, &scc, &out);
                if candidates.is_empty() {
                    return Err("no node with 20-60 usable channels in the largest SCC".into());
                }
                let mut rng = SplitMix64::new(config.seed);
                let pick = candidates[rng.below(candidates.len() as u64) as usize];
                graph.node_id(pick).to_string()
            }
        };
        let us_idx = graph
            .node_idx(&us_id)
            .ok_or_else(|| format!("{us_id} is not in the graph"))?;
        let text = String::from_utf8(bytes).map_err(|e| e.to_string())?;
        let mut net = Network::from_listchannels_str(&text, Some(&us_id), config.seed)
            .map_err(|e| format!("{e:#}"))?;
        drop(text);
        net.hooks.invoice_payment = true; // the plugin registers it

        let node_of: Vec<Option<NodeIdx>> =
            net.nodes.iter().map(|n| graph.node_idx(&n.id)).collect();
        let edge_of: Vec<[Option<EdgeIdx>; 2]> = net
            .channels
            .iter()
            .map(|c| {
                let scid: Option<Scid> = c.scid.parse().ok();
                [0u8, 1].map(|d| scid.and_then(|s| graph.edge_by_scid(s, d)))
            })
            .collect();

        // Hidden balances from the chosen distribution (the loader's own draw is replaced).
        let mut rng = SplitMix64::new(config.seed ^ 0xBA1A_5CE5);
        for c in &mut net.channels {
            let b0 = config.dist.draw(&mut rng, c.capacity_msat);
            c.balance_msat = [b0, c.capacity_msat - b0];
        }

        // Our channels: the usable ones half outbound-heavy, half inbound-heavy, shuffled.
        let us = net.us;
        let mut usable = Vec::new();
        for c in net.our_channels() {
            let s = net.side_of(c, us).expect("ours");
            let peer = net.channels[c].nodes[1 - s];
            let both_active = edge_of[c]
                .iter()
                .all(|e| e.is_some_and(|e| graph.edge(e).active));
            let peer_in_scc = node_of[peer].is_some_and(|p| scc[p as usize]);
            if both_active && peer_in_scc {
                usable.push(c);
            }
        }
        for i in (1..usable.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            usable.swap(i, j);
        }
        let half = usable.len() / 2;
        let (outbound, inbound) = (usable[..half].to_vec(), usable[half..].to_vec());
        for (list, (lo, hi)) in [(&outbound, OUTBOUND_SHARE), (&inbound, INBOUND_SHARE)] {
            for &c in list {
                let s = net.side_of(c, us).expect("ours");
                let ch = &mut net.channels[c];
                let share = lo + (hi - lo) * rng.unit();
                let ours = (ch.capacity_msat as f64 * share) as u64;
                ch.balance_msat[s] = ours;
                ch.balance_msat[1 - s] = ch.capacity_msat - ours;
            }
        }
        let mut is_ours = vec![false; net.channels.len()];
        let ours: Vec<(usize, [u64; 2])> = net
            .our_channels()
            .into_iter()
            .map(|c| {
                is_ours[c] = true;
                (c, net.channels[c].balance_msat)
            })
            .collect();

        // Flaky nodes: in the largest SCC, neither us nor one of our peers (our own channels
        // must stay usable, or the task itself changes).
        let mut peer = vec![false; net.nodes.len()];
        for &(c, _) in &ours {
            for n in net.channels[c].nodes {
                peer[n] = true;
            }
        }
        let mut flaky = Vec::new();
        for (n, g) in node_of.iter().enumerate() {
            if !peer[n] && g.is_some_and(|g| scc[g as usize]) && rng.unit() < config.flaky {
                flaky.push(n);
            }
        }
        for &n in &flaky {
            net.nodes[n].online = rng.unit() >= 0.5;
        }

        let mut by_pair: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
        for (i, c) in net.channels.iter().enumerate() {
            by_pair.entry((c.nodes[0], c.nodes[1])).or_default().push(i);
        }
        let mut group_of = vec![NO_GROUP; net.channels.len()];
        let mut groups: Vec<Vec<usize>> = by_pair.into_values().filter(|g| g.len() > 1).collect();
        groups.sort_unstable();
        for (i, g) in groups.iter().enumerate() {
            for &c in g {
                group_of[c] = i as u32;
            }
        }
        let scc_nodes = scc.iter().filter(|&&b| b).count();
        Ok(World {
            config,
            net,
            graph,
            us_id,
            us_idx,
            outbound,
            inbound,
            our_channel_count: ours.len(),
            ours,
            is_ours,
            flaky,
            node_of,
            edge_of,
            group_of,
            groups,
            scc_nodes,
        })
    }

    /// Our side of channel `c`.
    fn our_side(&self, net: &Network, c: usize) -> usize {
        net.side_of(c, net.us).expect("our channel")
    }

    /// `count` tasks of `amount_msat`, seeded: an outbound-heavy outgoing channel that can pay
    /// the amount and the fee cap, an inbound-heavy incoming one whose peer can send it and
    /// forwards it (htlc limits) over this very channel, to different peers. Our channels are back at their initial
    /// balances at the start of every task (see [`World::restore_ours`]), so whether a channel
    /// can carry the amount does not change between tasks.
    pub fn tasks(
        &self,
        amount_msat: u64,
        maxfeeppm: u64,
        exemptfee_msat: u64,
        count: usize,
    ) -> Result<Vec<Task>, String> {
        let net = &self.net;
        let cap = fee_cap_msat(amount_msat, maxfeeppm, exemptfee_msat);
        let outs: Vec<usize> = self
            .outbound
            .iter()
            .copied()
            .filter(|&c| {
                let s = self.our_side(net, c);
                let ch = &net.channels[c];
                net.spendable(c, s) >= amount_msat + cap
                    && amount_msat >= ch.policy[1 - s].htlc_minimum_msat
            })
            .collect();
        let ins: Vec<usize> = self
            .inbound
            .iter()
            .copied()
            .filter(|&c| {
                let s = self.our_side(net, c);
                let remote = &net.channels[c].policy[1 - s];
                net.spendable(c, 1 - s) >= amount_msat
                    // The peer would send it back over another of its channels to us, which
                    // the plugin refuses (fees paid, nothing rebalanced): not a task.
                    && self.best_channel(net, c, 1 - s, amount_msat) == c
                    && remote.active
                    && remote.htlc_minimum_msat <= amount_msat
                    && amount_msat <= remote.htlc_maximum_msat
            })
            .collect();
        if outs.is_empty() || ins.is_empty() {
            return Err(format!(
                "no task of {} sat: {} outgoing and {} incoming channels can carry it",
                amount_msat / 1000,
                outs.len(),
                ins.len()
            ));
        }
        let mut rng = SplitMix64::new(self.config.seed ^ amount_msat ^ 0x7A5C);
        let peer = |c: usize| {
            let s = self.our_side(net, c);
            net.channels[c].nodes[1 - s]
        };
        let mut tasks = Vec::with_capacity(count);
        let mut draws = 0;
        while tasks.len() < count && draws < count * 100 {
            draws += 1;
            let o = outs[rng.below(outs.len() as u64) as usize];
            let i = ins[rng.below(ins.len() as u64) as usize];
            if peer(o) == peer(i) {
                continue;
            }
            tasks.push(Task {
                out_chan: o,
                in_chan: i,
                out_scid: net.channels[o].scid.clone(),
                in_scid: net.channels[i].scid.clone(),
                amount_msat,
            });
        }
        Ok(tasks)
    }

    /// Between two rebalances: other traffic draws `traffic` of the channels (not ours) anew,
    /// and every flaky node is offline or online at even odds. Draws from `rng` only, the same
    /// number of times whatever the strategy did, so every strategy sees the same events.
    pub fn between(&self, net: &mut Network, rng: &mut SplitMix64) {
        let dist = self.config.dist;
        for (c, ch) in net.channels.iter_mut().enumerate() {
            if rng.unit() < self.config.traffic {
                // Drawn whatever happens next, so the draws stay in step across strategies.
                let b0 = dist.draw(rng, ch.capacity_msat);
                if !self.is_ours[c] && ch.htlcs.is_empty() {
                    ch.balance_msat = [b0, ch.capacity_msat - b0];
                }
            }
        }
        for &n in &self.flaky {
            net.nodes[n].online = rng.unit() >= 0.5;
        }
    }

    /// Our channels back at their initial balances: our own routing traffic unbalanced them
    /// again, which is why we rebalance at all.
    pub fn restore_ours(&self, net: &mut Network) {
        for &(c, b) in &self.ours {
            if net.channels[c].htlcs.is_empty() {
                net.channels[c].balance_msat = b;
            }
        }
    }

    /// The channel the node on side `s` of `c` uses when an onion names `c`: unless it
    /// forwards strictly, the channel to the same peer with the same fee and the most spendable
    /// (`pay.rs` `forward_check`, lightningd's `best_channel`).
    fn best_channel(&self, net: &Network, c: usize, s: usize, amount_msat: u64) -> usize {
        let x = net.channels[c].nodes[s];
        let fee = |ch: usize, side: usize| {
            let p = &net.channels[ch].policy[side];
            (p.fee_base_msat, p.fee_proportional_millionths)
        };
        let mut chosen = c;
        if !net.nodes[x].strict_forwarding
            && let Some(group) = self.groups.get(self.group_of[c] as usize)
        {
            let mut best = 0;
            for &cand in group {
                let cs = net.side_of(cand, x).expect("same pair");
                let sp = net.spendable(cand, cs);
                if !net.can_add_htlc(cand)
                    || sp <= best
                    || fee(cand, cs) != fee(c, s)
                    || amount_msat < net.channels[cand].policy[1 - cs].htlc_minimum_msat
                {
                    continue;
                }
                chosen = cand;
                best = sp;
            }
        }
        chosen
    }

    /// The channel the node on side `s` of `c` really forwards over when asked for `c`, and
    /// the most it can forward there, as the network model decides (`pay.rs` `forward_check`:
    /// non-strict forwarding picks the same-fee channel to that peer with the most spendable;
    /// then policy, htlc limits and spendable). `None`: it forwards nothing.
    fn forwardable(&self, net: &Network, c: usize, s: usize, amount_msat: u64) -> Option<u64> {
        let x = net.channels[c].nodes[s];
        let chosen = self.best_channel(net, c, s, amount_msat);
        let cs = net.side_of(chosen, x).expect("same pair");
        let ch = &net.channels[chosen];
        let pol = &ch.policy[cs];
        if !pol.active
            || !ch.update_set[cs]
            || ch.forced_failure[cs].is_some()
            || !net.can_add_htlc(chosen)
            || amount_msat < ch.policy[1 - cs].htlc_minimum_msat
        {
            return None;
        }
        Some(net.spendable(chosen, cs).min(pol.htlc_maximum_msat))
    }

    /// The cheapest route for `task` over the true balances of `net` now, if one is within the
    /// fee cap: the plugin's own search (`find_path`) on the snapshot's graph, every channel
    /// direction limited to what it can really forward, offline nodes excluded; our own first
    /// and last hops added as `Plan` adds them (the first is free, the last costs the incoming
    /// peer's fee).
    pub fn oracle(
        &self,
        net: &Network,
        task: &Task,
        maxfeeppm: u64,
        exemptfee_msat: u64,
        scratch: &mut Scratch,
    ) -> Option<OracleRoute> {
        let amount = task.amount_msat;
        let cap = fee_cap_msat(amount, maxfeeppm, exemptfee_msat);
        let mut ex = Exclusions::default();
        ex.nodes.insert(self.us_idx);
        for (n, node) in net.nodes.iter().enumerate() {
            if !node.online
                && let Some(g) = self.node_of[n]
            {
                ex.nodes.insert(g);
            }
        }
        ex.max_amount_msat.reserve(net.channels.len() * 2);
        for c in 0..net.channels.len() {
            if self.is_ours[c] {
                continue;
            }
            for s in 0..2 {
                let Some(e) = self.edge_of[c][s] else {
                    continue;
                };
                match self.forwardable(net, c, s, amount) {
                    // The search allows an edge for amounts strictly below its limit.
                    Some(most) => {
                        ex.max_amount_msat.insert(e, most.saturating_add(1));
                    }
                    None => {
                        ex.edges.insert(e);
                    }
                }
            }
        }
        let us = net.us;
        let (so, si) = (
            self.our_side(net, task.out_chan),
            self.our_side(net, task.in_chan),
        );
        let out_peer = net.channels[task.out_chan].nodes[1 - so];
        let in_peer = net.channels[task.in_chan].nodes[1 - si];
        let in_edge = self.edge_of[task.in_chan][1 - si]?;
        let remote = self.graph.edge(in_edge).policy;
        let deliver_msat = amount.checked_add(remote.fee_msat(amount)?)?;
        let query = Query {
            from: self.node_of[out_peer]?,
            to: self.node_of[in_peer]?,
            deliver_msat,
            deliver_delay: FINAL_CLTV + remote.delay,
            max_edges: (MAX_HOPS - 2) as u32,
            max_delay: MAX_TOTAL_CLTV,
            max_amount_msat: u64::MAX,
        };
        let path = find_path(&self.graph, &query, &ex, scratch)?;
        let mut specs = vec![HopSpec {
            short_channel_id: task.out_scid.parse().ok()?,
            direction: net.direction(us, out_peer),
            node_id: net.nodes[out_peer].id.clone(),
            policy: remote, // ignored: our own hop is free
        }];
        specs.extend(
            path.edges
                .iter()
                .map(|&e| HopSpec::from_edge(&self.graph, e)),
        );
        specs.push(HopSpec {
            short_channel_id: task.in_scid.parse().ok()?,
            direction: net.direction(in_peer, us),
            node_id: self.us_id.clone(),
            policy: remote,
        });
        let hops = build_route(&specs, amount, FINAL_CLTV).ok()?;
        let fee_msat = route_fee_msat(&hops);
        if fee_msat > cap || hops[0].amount_msat > net.spendable(task.out_chan, so) {
            return None;
        }
        Some(OracleRoute {
            fee_msat,
            hops: hops.len(),
        })
    }
}

/// Nodes of the largest SCC with 20-60 usable channels (both directions active, peer in the
/// SCC) and no more than 60 channels in all, in index order.
fn routing_nodes(g: &Graph, scc: &[bool], out: &[Vec<EdgeIdx>]) -> Vec<NodeIdx> {
    let mut found = Vec::new();
    for v in 0..g.node_count() as NodeIdx {
        if !scc[v as usize] {
            continue;
        }
        let total = out[v as usize].len().max(g.edges_into(v).count());
        if total > OUR_CHANNELS.1 {
            continue;
        }
        let active_in: std::collections::HashSet<Scid> = g
            .edges_into(v)
            .filter(|(_, e)| e.active && scc[e.source as usize])
            .map(|(_, e)| e.short_channel_id)
            .collect();
        let usable = out[v as usize]
            .iter()
            .filter(|&&e| g.edge(e).active && active_in.contains(&g.edge(e).short_channel_id))
            .count();
        if (OUR_CHANNELS.0..=OUR_CHANNELS.1).contains(&usable) {
            found.push(v);
        }
    }
    found
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

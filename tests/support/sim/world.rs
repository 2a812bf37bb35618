//! The world's making and its life between rebalances (see [`super`]): the snapshot with
//! hidden balances, "us" and our channels made outbound- and inbound-heavy, the flaky nodes,
//! the tasks, and the traffic between two rebalances.

use super::{
    INBOUND_SHARE, NO_GROUP, OUR_CHANNELS, OUTBOUND_SHARE, SNAPSHOT, Task, World, WorldConfig,
};
use crate::mainnet;
use cln_rebalance::core::amount::fee_cap_msat;
use cln_rebalance::core::graph::{EdgeIdx, Graph, NodeIdx, Scid};
use cln_standin::prng::SplitMix64;
use cln_standin::simnet::Network;
use std::collections::HashMap;

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
        net.config.lazy_disable = config.lazy_disable;

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
            net.set_online(n, rng.unit() >= 0.5);
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
    pub(super) fn our_side(&self, net: &Network, c: usize) -> usize {
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
    /// and every flaky node is offline or online at even odds; with `fee_churn`, fees change. Draws from `rng` only, the same
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
            net.set_online(n, rng.unit() >= 0.5);
        }
        if self.config.fee_churn > 0.0 {
            let now = net.now();
            for (c, ch) in net.channels.iter_mut().enumerate() {
                for pol in &mut ch.policy {
                    // Both drawn whatever happens, so the draws stay in step.
                    let (changes, factor) = (rng.unit(), 2f64.powf(2.0 * rng.unit() - 1.0));
                    if changes < self.config.fee_churn && !self.is_ours[c] {
                        let ppm = pol.fee_proportional_millionths as f64 * factor;
                        pol.fee_proportional_millionths = ppm.round() as u64;
                        pol.last_update = now;
                    }
                }
            }
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

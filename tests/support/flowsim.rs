//! The simulation world as the flow solver sees it (test-only code, for `benches/flow.rs`):
//! each graph edge's true forwardable amount now, the offline nodes, a task as a
//! [`FlowRequest`], whether a set of parts would get through in one round, and what such an
//! attempt would teach the liquidity model.
#![allow(dead_code)] // not every includer uses every part

use crate::sim::{Task, World};
use cln_rebalance::core::amount::fee_cap_msat;
use cln_rebalance::core::flow::{Flow, FlowRequest};
use cln_rebalance::core::graph::{EdgeIdx, Graph, NodeIdx, Policy, Scid};
use cln_rebalance::core::liquidity::{ChanDir, Liquidity};
use cln_rebalance::core::pathfind::Exclusions;
use cln_rebalance::core::route::{MAX_HOPS, MAX_TOTAL_CLTV};
use cln_standin::simnet::Network;
use std::collections::HashMap;

/// The plugin's final CLTV (its default plus margin), as `Plan` uses it.
pub const FINAL_CLTV: u32 = crate::mainnet::FINAL_CLTV;

/// What the network can really do now, per graph edge and node.
pub struct Truth {
    /// Per graph edge: the most it forwards now (0: nothing). As the network model decides
    /// (`sim.rs` `forwardable`): a node that does not forward strictly uses, of its channels
    /// to the same peer at the same fees, the one with the most spendable.
    pub forwardable: Vec<u64>,
    /// Per graph node: offline now.
    pub offline: Vec<bool>,
}

impl Truth {
    pub fn of(world: &World, net: &Network) -> Truth {
        let g = &world.graph;
        let mut forwardable = vec![0u64; g.edge_count()];
        let mut offline = vec![false; g.node_count()];
        for n in &net.nodes {
            if !n.online
                && let Some(v) = g.node_idx(&n.id)
            {
                offline[v as usize] = true;
            }
        }
        // What each channel side forwards by itself, and the groups of channels between the
        // same two nodes.
        let own = |c: usize, s: usize| -> u64 {
            let ch = &net.channels[c];
            let pol = &ch.policy[s];
            if !pol.active
                || !ch.update_set[s]
                || ch.forced_failure[s].is_some()
                || !net.can_add_htlc(c)
            {
                return 0;
            }
            net.spendable(c, s).min(pol.htlc_maximum_msat)
        };
        let mut groups: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
        for (c, ch) in net.channels.iter().enumerate() {
            let (a, b) = (ch.nodes[0].min(ch.nodes[1]), ch.nodes[0].max(ch.nodes[1]));
            groups.entry((a, b)).or_default().push(c);
        }
        for (c, ch) in net.channels.iter().enumerate() {
            let Ok(scid) = ch.scid.parse::<Scid>() else {
                continue;
            };
            for s in 0..2 {
                let Some(e) = g.edge_by_scid(scid, s as u8) else {
                    continue;
                };
                let x = ch.nodes[s];
                let fee = |c: usize, s: usize| {
                    let p = &net.channels[c].policy[s];
                    (p.fee_base_msat, p.fee_proportional_millionths)
                };
                let (a, b) = (ch.nodes[0].min(ch.nodes[1]), ch.nodes[0].max(ch.nodes[1]));
                let mut most = own(c, s);
                if !net.nodes[x].strict_forwarding {
                    // The same-fee channel with the most spendable is the one used.
                    let mut best = (0u64, c, s);
                    for &cand in &groups[&(a, b)] {
                        let cs = net.side_of(cand, x).expect("same pair");
                        if fee(cand, cs) != fee(c, s) || !net.can_add_htlc(cand) {
                            continue;
                        }
                        let sp = net.spendable(cand, cs);
                        if sp > best.0 {
                            best = (sp, cand, cs);
                        }
                    }
                    if best.0 > 0 {
                        most = own(best.1, best.2);
                    }
                }
                forwardable[e as usize] = most;
            }
        }
        Truth {
            forwardable,
            offline,
        }
    }

    /// What the oracle excludes: us (never in the middle) and every offline node.
    pub fn exclusions(&self, us: NodeIdx) -> Exclusions {
        let mut ex = Exclusions::default();
        ex.nodes.insert(us);
        for (v, &off) in self.offline.iter().enumerate() {
            if off {
                ex.nodes.insert(v as NodeIdx);
            }
        }
        ex
    }

    /// Whether every part of `flow` gets through in one round: every node on the way online,
    /// every channel direction carrying what all parts put on it.
    pub fn one_round(&self, g: &Graph, req: &FlowRequest, flow: &Flow) -> bool {
        let loads = loads(g, req, flow);
        loads
            .iter()
            .all(|(&e, &load)| load <= self.forwardable[e as usize])
            && flow.parts.iter().all(|p| {
                p.edges
                    .iter()
                    .all(|&e| !self.offline[g.edge(e).destination as usize])
            })
    }
}

/// What each channel direction of `flow` carries, all parts together (fees computed backward
/// from what `B` receives).
pub fn loads(g: &Graph, req: &FlowRequest, flow: &Flow) -> HashMap<EdgeIdx, u64> {
    let mut loads: HashMap<EdgeIdx, u64> = HashMap::new();
    for p in &flow.parts {
        let mut carried = p.amount_msat + req.last_hop.fee_msat(p.amount_msat).expect("fee");
        for &e in p.edges.iter().rev() {
            *loads.entry(e).or_default() += carried;
            carried += g.edge(e).policy.fee_msat(carried).expect("fee");
        }
    }
    loads
}

/// The rebalance of `task` as the flow solver is asked for it: what `Plan` builds for one
/// route (the incoming peer's last hop, the final delay, 18 edges, 2016 blocks, our node
/// excluded), the fee cap `max(exemptfee, maxfeeppm x amount)`, and the outgoing channel's
/// spendable as what `A` can be sent in all. `None` if a peer is not in the graph.
#[allow(clippy::too_many_arguments)]
pub fn request<'a>(
    world: &World,
    net: &Network,
    task: &Task,
    exclude: &'a Exclusions,
    max_parts: usize,
    min_part_msat: u64,
    maxfeeppm: u64,
    exemptfee_msat: u64,
) -> Option<FlowRequest<'a>> {
    let g = &world.graph;
    let us = net.us;
    let so = net.side_of(task.out_chan, us)?;
    let si = net.side_of(task.in_chan, us)?;
    let out_peer = net.channels[task.out_chan].nodes[1 - so];
    let in_peer = net.channels[task.in_chan].nodes[1 - si];
    let in_scid: Scid = task.in_scid.parse().ok()?;
    let in_edge = g.edge_by_scid(in_scid, net.direction(in_peer, us))?;
    let last_hop: Policy = g.edge(in_edge).policy;
    Some(FlowRequest {
        from: g.node_idx(&net.nodes[out_peer].id)?,
        to: g.node_idx(&net.nodes[in_peer].id)?,
        amount_msat: task.amount_msat,
        last_hop,
        final_delay: FINAL_CLTV,
        max_parts,
        min_part_msat,
        max_fee_msat: fee_cap_msat(task.amount_msat, maxfeeppm, exemptfee_msat),
        max_source_msat: net.spendable(task.out_chan, so),
        exclude,
        max_edges: (MAX_HOPS - 2) as u32,
        max_delay: MAX_TOTAL_CLTV,
    })
}

/// What an attempt of `flow` would teach the model, as the plugin learns from a failure
/// (`temporary_channel_failure` at the first hop that cannot carry: `L < amount`; the hops
/// before it forwarded) or a success (every hop forwarded; nothing is paid here, so nothing
/// moves). Parts go out in order; each hop's amount counts what earlier parts still hold on it.
pub fn teach(
    model: &mut Liquidity,
    g: &Graph,
    req: &FlowRequest,
    truth: &Truth,
    flow: &Flow,
    now: u64,
    half_life: u64,
) {
    let mut held: HashMap<EdgeIdx, u64> = HashMap::new();
    for p in &flow.parts {
        let mut carried = Vec::with_capacity(p.edges.len());
        let mut amount = p.amount_msat + req.last_hop.fee_msat(p.amount_msat).expect("fee");
        for &e in p.edges.iter().rev() {
            carried.push(amount);
            amount += g.edge(e).policy.fee_msat(amount).expect("fee");
        }
        carried.reverse();
        for (&e, &amount) in p.edges.iter().zip(&carried) {
            let edge = g.edge(e);
            let cd = ChanDir::new(edge.short_channel_id, edge.direction);
            let total = held.get(&e).copied().unwrap_or(0) + amount;
            if truth.offline[edge.destination as usize] {
                model.node_failed(g.node_id(edge.destination), now);
                break;
            }
            if total > truth.forwardable[e as usize] {
                model.failed(cd, total, edge.amount_msat, now, half_life);
                break;
            }
            model.forwarded(cd, total, edge.amount_msat, now, half_life);
            *held.entry(e).or_default() += amount;
        }
    }
}

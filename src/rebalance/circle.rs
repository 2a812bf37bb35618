//! One rebalance's circle: our first hop out to the outgoing peer and the incoming peer's last
//! hop back to us (fixed), the search between the two peers with what failures ruled out, and
//! the routes it yields as sendpay hops.

use crate::core::flow::{Flow, FlowRequest};
use crate::core::graph::{EdgeIdx, Graph, NodeIdx, Policy, Scid};
use crate::core::pathfind::{Exclusions, HopCost, Query, Scratch, find_path_with};
use crate::core::route::{Hop, HopSpec, MAX_HOPS, MAX_TOTAL_CLTV, build_route};
use crate::error::RpcFailure;
use crate::lightningd::types::PayFailure;
use crate::lightningd::types::failcode::{BADONION, NODE, PERM, TEMPORARY_CHANNEL_FAILURE};
use crate::lightningd::{ChannelUpdate, PeerChannel};
use std::collections::HashMap;

/// One rebalance's fixed hops, amount and what its failures ruled out so far.
pub struct Circle {
    /// The incoming channel's real short_channel_id (the last hop may name it by alias).
    pub incoming_scid: Scid,
    first: HopSpec,
    last: HopSpec,
    amount_msat: u64,
    final_cltv: u32,
    query: Option<Query>,
    exclude: Exclusions,
    /// Both channels go to the same peer: the only route is straight through it, tried once.
    same_peer: bool,
    direct_failed: bool,
    /// Most HTLCs the amount may arrive in over the last hop (1 for one route).
    max_parts: usize,
    /// The least the outgoing peer accepts from us in one HTLC (its channel_update's).
    out_minimum_msat: u64,
    /// Per node between the peers, the first channel into it that failed for liquidity in
    /// this rebalance (see [`Circle::learn`]).
    failed_into: HashMap<NodeIdx, EdgeIdx>,
}

/// The most HTLCs a rebalance's amount may arrive in over `inc`: `max_parts`, or one when both
/// channels go to the same peer (straight through it is one route).
pub fn parts_in(out: &PeerChannel, inc: &PeerChannel, max_parts: usize) -> usize {
    if out.peer_id == inc.peer_id {
        1
    } else {
        max_parts.max(1)
    }
}

/// The incoming peer forwards each HTLC within its `htlc_minimum_msat` and `htlc_maximum_msat`
/// on our channel: one route carries at most the maximum, a set of `max_parts` parts up to that
/// many times it (the flow keeps every part within it).
fn check_htlc_limits(
    remote: &Policy,
    amount_msat: u64,
    max_parts: usize,
    inc_scid: Scid,
) -> Result<(), RpcFailure> {
    let most = remote
        .htlc_maximum_msat
        .saturating_mul(u64::try_from(max_parts).unwrap_or(u64::MAX));
    if amount_msat >= remote.htlc_minimum_msat && amount_msat <= most {
        return Ok(());
    }
    let parts = if max_parts > 1 && amount_msat > remote.htlc_maximum_msat {
        format!(" (at most {most}msat in {max_parts} parts)")
    } else {
        String::new()
    };
    Err(RpcFailure::param(
        "amount_msat",
        format!(
            "the incoming peer forwards between {}msat and {}msat on channel {inc_scid}{parts}",
            remote.htlc_minimum_msat, remote.htlc_maximum_msat
        ),
    ))
}

/// The incoming peer's policy on its hop to us from its channel_update (`listpeerchannels`' or
/// a failure's). It offers us no HTLC under what our node accepts (channeld refuses it with
/// `amount_below_minimum` at the last hop, which stops a rebalance).
pub fn peer_policy(u: &ChannelUpdate, inc: &PeerChannel) -> Policy {
    Policy {
        base_fee_millisatoshi: u32::try_from(u.fee_base_msat).unwrap_or(u32::MAX),
        fee_per_millionth: u.fee_proportional_millionths,
        delay: u.cltv_expiry_delta,
        htlc_minimum_msat: u.htlc_minimum_msat.max(inc.minimum_htlc_in_msat),
        htlc_maximum_msat: u.htlc_maximum_msat.unwrap_or(inc.total_msat),
    }
}

/// What the incoming peer must be delivered for us to get `amount_msat` over its hop on
/// `remote`, and with what delay.
fn delivery(
    remote: &Policy,
    amount_msat: u64,
    final_cltv: u32,
    inc_scid: Scid,
) -> Result<(u64, u32), RpcFailure> {
    let deliver_msat = remote
        .fee_msat(amount_msat)
        .and_then(|f| amount_msat.checked_add(f))
        .ok_or_else(|| RpcFailure::param("amount_msat", "too large"))?;
    let deliver_delay = final_cltv.checked_add(remote.delay).ok_or_else(|| {
        RpcFailure::param(
            "incoming",
            format!(
                "the peer's cltv_expiry_delta {} on channel {inc_scid} is impossible",
                remote.delay
            ),
        )
    })?;
    Ok((deliver_msat, deliver_delay))
}

impl Circle {
    pub fn new(
        our_id: &str,
        out: &PeerChannel,
        inc: &PeerChannel,
        amount_msat: u64,
        max_parts: usize,
        final_cltv: u32,
        graph: &Graph,
    ) -> Result<Circle, RpcFailure> {
        let out_scid: Scid = out
            .short_channel_id
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| RpcFailure::param("outgoing", e))?;
        let inc_scid: Scid = inc
            .short_channel_id
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| RpcFailure::param("incoming", e))?;
        let our_dir =
            |c: &PeerChannel| c.direction.unwrap_or(u8::from(our_id > c.peer_id.as_str()));
        // The incoming peer's policy for forwarding to us: from listpeerchannels, else gossip.
        let their_dir = 1 - our_dir(inc);
        let remote = inc
            .updates
            .remote
            .map(|u| peer_policy(&u, inc))
            .or_else(|| {
                let e = graph.edge_by_scid(inc_scid, their_dir)?;
                let p = graph.edge(e).policy;
                Some(Policy {
                    htlc_minimum_msat: p.htlc_minimum_msat.max(inc.minimum_htlc_in_msat),
                    ..p
                })
            })
            .ok_or_else(|| {
                RpcFailure::param(
                    "incoming",
                    format!("the peer's fee policy for channel {inc_scid} is not known yet (no channel_update)"),
                )
            })?;
        let same_peer = out.peer_id == inc.peer_id;
        let max_parts = parts_in(out, inc, max_parts);
        check_htlc_limits(&remote, amount_msat, max_parts, inc_scid)?;
        let first = HopSpec {
            short_channel_id: out_scid,
            direction: our_dir(out),
            node_id: out.peer_id.clone(),
            policy: remote, // ignored: our own hop is free
        };
        // lightningd will not forward over a private channel named by its real scid (it hides
        // the channel from probing): the onion must name it by the alias the peer gave it.
        let last_scid = match (&inc.alias, inc.private) {
            (Some(a), true) => a
                .remote
                .as_deref()
                .and_then(|s| s.parse().ok())
                .unwrap_or(inc_scid),
            _ => inc_scid,
        };
        let last = HopSpec {
            short_channel_id: last_scid,
            direction: their_dir,
            node_id: our_id.to_string(),
            policy: remote,
        };
        let (deliver_msat, deliver_delay) = delivery(&remote, amount_msat, final_cltv, inc_scid)?;
        let mut exclude = Exclusions::default();
        if let Some(us) = graph.node_idx(our_id) {
            exclude.nodes.insert(us); // a circle never passes through us in the middle
        }
        let query = match (graph.node_idx(&out.peer_id), graph.node_idx(&inc.peer_id)) {
            (Some(from), Some(to)) => Some(Query {
                from,
                to,
                deliver_msat,
                deliver_delay,
                max_edges: (MAX_HOPS - 2) as u32,
                max_delay: MAX_TOTAL_CLTV,
                max_amount_msat: u64::MAX,
            }),
            _ => None,
        };
        Ok(Circle {
            incoming_scid: inc_scid,
            first,
            last,
            amount_msat,
            final_cltv,
            out_minimum_msat: out.updates.remote.map_or(0, |u| u.htlc_minimum_msat),
            query,
            exclude,
            same_peer,
            direct_failed: false,
            max_parts,
            failed_into: HashMap::new(),
        })
    }

    /// The best route not yet ruled out (by fee + `cost`'s extra), as sendpay hops; with
    /// `max_fee_msat`, the best whose fee is within it.
    pub fn next_route<C: HopCost>(
        &self,
        graph: &Graph,
        cost: &C,
        max_fee_msat: Option<u64>,
        scratch: &mut Scratch,
    ) -> Option<Vec<Hop>> {
        let middle: Vec<HopSpec> = if self.same_peer {
            if self.direct_failed {
                return None;
            }
            Vec::new()
        } else {
            let mut query = self.query.clone()?;
            if let Some(cap) = max_fee_msat {
                // Our first hop is free: what `A` receives beyond the amount is the fee.
                query.max_amount_msat = self.amount_msat.saturating_add(cap);
            }
            let path = find_path_with(graph, &query, &self.exclude, cost, scratch)?;
            path.edges
                .iter()
                .map(|&i| HopSpec::from_edge(graph, i))
                .collect()
        };
        let mut specs = Vec::with_capacity(middle.len() + 2);
        specs.push(self.first.clone());
        specs.extend(middle);
        specs.push(self.last.clone());
        build_route(&specs, self.amount_msat, self.final_cltv).ok()
    }

    /// The incoming peer's policy on its hop to us, as planned.
    pub fn last_policy(&self) -> Policy {
        self.last.policy
    }

    /// Plans the incoming peer's hop to us on `remote` from now on (a failure there brought
    /// its new policy). Err, with nothing changed, when the amount is outside its htlc limits.
    pub fn set_last_policy(&mut self, remote: Policy) -> Result<(), RpcFailure> {
        let inc = self.incoming_scid;
        check_htlc_limits(&remote, self.amount_msat, self.max_parts, inc)?;
        let (deliver_msat, deliver_delay) =
            delivery(&remote, self.amount_msat, self.final_cltv, inc)?;
        if let Some(q) = self.query.as_mut() {
            (q.deliver_msat, q.deliver_delay) = (deliver_msat, deliver_delay);
        }
        self.first.policy = remote;
        self.last.policy = remote;
        Ok(())
    }

    /// The least our two peers take in one HTLC (the outgoing peer from us, the incoming
    /// peer to forward to us): no amount below it can move.
    pub fn htlc_minimum_msat(&self) -> u64 {
        self.last
            .policy
            .htlc_minimum_msat
            .max(self.out_minimum_msat)
    }

    /// The same circle for another amount, what failures ruled out kept (probing tries
    /// several amounts around the same channels).
    pub fn with_amount(&self, amount_msat: u64) -> Result<Circle, RpcFailure> {
        let remote = self.last.policy;
        check_htlc_limits(&remote, amount_msat, self.max_parts, self.incoming_scid)?;
        let (deliver_msat, _) =
            delivery(&remote, amount_msat, self.final_cltv, self.incoming_scid)?;
        let mut c = Circle {
            incoming_scid: self.incoming_scid,
            first: self.first.clone(),
            last: self.last.clone(),
            amount_msat,
            final_cltv: self.final_cltv,
            query: self.query.clone(),
            exclude: self.exclude.clone(),
            same_peer: self.same_peer,
            direct_failed: self.direct_failed,
            max_parts: self.max_parts,
            out_minimum_msat: self.out_minimum_msat,
            failed_into: self.failed_into.clone(),
        };
        if let Some(q) = c.query.as_mut() {
            q.deliver_msat = deliver_msat;
        }
        Ok(c)
    }

    /// The route of `hops` (same channels, our own two included) delivering `amount_msat`
    /// instead: amounts and delays backward as for a payment. Every hop must carry it within
    /// its htlc limits except the last (the incoming peer to us): a probe may ask more of that
    /// one than it forwards, since a failure there proves every hop before it carried.
    /// `None` when a hop is not in the graph or cannot carry it.
    pub fn probe_route_at(
        &self,
        graph: &Graph,
        hops: &[Hop],
        amount_msat: u64,
    ) -> Option<Vec<Hop>> {
        let n = hops.len();
        if n < 2 {
            return None;
        }
        let mut last = self.last.clone();
        last.policy.htlc_maximum_msat = u64::MAX;
        let mut specs = Vec::with_capacity(n);
        specs.push(self.first.clone());
        for h in &hops[1..n - 1] {
            specs.push(HopSpec::from_edge(
                graph,
                graph.edge_by_scid(h.short_channel_id, h.direction)?,
            ));
        }
        specs.push(last);
        build_route(&specs, amount_msat, self.final_cltv).ok()
    }

    /// A probe's route out over our first hop and on over `edges` (from the outgoing peer),
    /// delivering `amount_msat` to the node at their end: amounts and delays backward as for a
    /// payment, every hop within its htlc limits. `None` when one cannot carry it.
    pub fn probe_prefix_at(
        &self,
        graph: &Graph,
        edges: &[EdgeIdx],
        amount_msat: u64,
    ) -> Option<Vec<Hop>> {
        let mut specs = Vec::with_capacity(edges.len() + 1);
        specs.push(self.first.clone());
        specs.extend(edges.iter().map(|&e| HopSpec::from_edge(graph, e)));
        build_route(&specs, amount_msat, self.final_cltv).ok()
    }

    /// Whether the two channels go to one peer (the only route is straight through it).
    pub fn same_peer(&self) -> bool {
        self.same_peer
    }

    /// Most edges a part may have between the peers from now on (a probe's time left allows
    /// so many hops), never over what a route of [`MAX_HOPS`] leaves.
    pub fn set_max_edges(&mut self, edges: u32) {
        if let Some(q) = self.query.as_mut() {
            q.max_edges = edges.min((MAX_HOPS - 2) as u32);
        }
    }

    /// The flow's request for `amount_msat` in up to `max_parts` parts of at least
    /// `min_part_msat`, all of them paying at most `max_fee_msat` and `A` sent at most
    /// `max_source_msat` in all, around what failures ruled out. `None`: a peer is not in the
    /// public graph.
    pub fn flow_request(
        &self,
        amount_msat: u64,
        max_parts: usize,
        min_part_msat: u64,
        max_fee_msat: u64,
        max_source_msat: u64,
    ) -> Option<FlowRequest<'_>> {
        let q = self.query.as_ref()?;
        Some(FlowRequest {
            from: q.from,
            to: q.to,
            amount_msat,
            last_hop: self.last.policy,
            final_delay: self.final_cltv,
            max_parts,
            min_part_msat,
            max_fee_msat,
            max_source_msat,
            exclude: &self.exclude,
            max_edges: q.max_edges,
            max_delay: q.max_delay,
        })
    }

    /// The flow's parts as sendpay hops, our own two added; `None` if one cannot be built.
    pub fn set_hops(&self, graph: &Graph, flow: &Flow) -> Option<Vec<Vec<Hop>>> {
        flow.parts
            .iter()
            .map(|p| p.hops(graph, &self.first, &self.last, self.final_cltv).ok())
            .collect()
    }

    /// Plans no more than `most_msat` over edge `e` from now on (all parts together).
    pub fn cap_edge(&mut self, e: EdgeIdx, most_msat: u64) {
        let limit = self.exclude.max_amount_msat.entry(e).or_insert(u64::MAX);
        *limit = (*limit).min(most_msat.saturating_add(1));
    }

    /// A second channel into the same node between the peers (not a parallel of the first)
    /// failing for liquidity in this rebalance rules the node out for the rest of it: the node
    /// is offline (its peers answer `temporary_channel_failure`, channel by channel) or has
    /// nothing left coming in. Without it the plan reaches the node by one neighbour after
    /// another. The peers themselves are never ruled out: every route goes through them. On
    /// the tuning seeds (`benches/README.md`): 1M sat 420 -> 421 of 434 and 366 -> 368 of 396
    /// tasks, 5M sat 159 -> 163 of 176; on the report seeds the same successes.
    fn failed_into_node(&mut self, graph: &Graph, e: EdgeIdx) {
        let node = graph.edge(e).destination;
        let Some(q) = &self.query else { return };
        if node == q.from || node == q.to {
            return;
        }
        match self.failed_into.get(&node) {
            None => {
                self.failed_into.insert(node, e);
            }
            Some(&first) if !graph.parallel_group(first).any(|x| x == e) => {
                self.exclude.nodes.insert(node);
            }
            Some(_) => {}
        }
    }

    /// Rules out the node edge `e` leads to, which its peer says is gone (the failure's
    /// channel_update disabled): not a liquidity failure of `e`. The two peers never (every
    /// route goes through them); `false` then, and the failure is read as liquidity.
    fn offline_node(&mut self, graph: &Graph, e: EdgeIdx) -> bool {
        let node = graph.edge(e).destination;
        let Some(q) = &self.query else { return false };
        if node == q.from || node == q.to {
            return false;
        }
        self.exclude.nodes.insert(node);
        true
    }

    /// The same circle on `new`, a later read of the graph `old` (which it was made on): what
    /// failures ruled out kept, channel by channel and node by node, except a channel whose
    /// policy changed between the two reads (ruled out for a fee or delay it no longer asks).
    pub fn rebase(&mut self, old: &Graph, new: &Graph) {
        let node = |n: NodeIdx| old.same_node_in(n, new);
        let edge = |e: EdgeIdx| old.same_edge_in(e, new);
        if let Some(q) = self.query.as_mut() {
            match (node(q.from), node(q.to)) {
                (Some(from), Some(to)) => (q.from, q.to) = (from, to),
                _ => self.query = None,
            }
        }
        let ex = std::mem::take(&mut self.exclude);
        self.exclude.nodes = ex.nodes.into_iter().filter_map(node).collect();
        self.exclude.edges = (ex.edges.into_iter())
            .filter_map(|e| edge(e).filter(|&n| new.edge(n).policy == old.edge(e).policy))
            .collect();
        self.exclude.max_amount_msat = (ex.max_amount_msat.into_iter())
            .filter_map(|(e, m)| Some((edge(e)?, m)))
            .collect();
        self.failed_into = std::mem::take(&mut self.failed_into)
            .into_iter()
            .filter_map(|(n, e)| Some((node(n)?, edge(e)?)))
            .collect();
    }

    /// Rules out what failed at hop `index` (the node at the end of hop `index` reported it).
    pub fn learn(&mut self, graph: &Graph, f: &PayFailure, hops: &[Hop], index: usize) {
        let failcode = f.failcode.unwrap_or(0);
        let erring_node = f
            .erring_node
            .clone()
            .or_else(|| hops.get(index.wrapping_sub(1)).map(|h| h.node_id.clone()));
        let edge = f
            .erring_channel
            .as_deref()
            .and_then(|s| s.parse::<Scid>().ok())
            .and_then(|scid| {
                let dir = f.erring_direction.or_else(|| {
                    hops.iter()
                        .find(|h| h.short_channel_id == scid)
                        .map(|h| h.direction)
                })?;
                graph.edge_by_scid(scid, dir)
            });
        self.direct_failed = true;
        let node_idx = erring_node.as_deref().and_then(|n| graph.node_idx(n));
        match (failcode & (NODE | BADONION) != 0, edge) {
            (true, _) | (false, None) => {
                if let Some(n) = node_idx {
                    self.exclude.nodes.insert(n);
                }
            }
            (false, Some(e)) if f.peer_gone() && self.offline_node(graph, e) => {}
            (false, Some(e)) if failcode == TEMPORARY_CHANNEL_FAILURE && failcode & PERM == 0 => {
                let carried = hops
                    .iter()
                    .find(|h| h.short_channel_id == graph.edge(e).short_channel_id)
                    .map(|h| h.amount_msat)
                    .unwrap_or(0);
                // Its parallel channels at the same fees failed with it (non-strict forwarding).
                for e in graph.parallel_group(e) {
                    let limit = self.exclude.max_amount_msat.entry(e).or_insert(u64::MAX);
                    *limit = (*limit).min(carried);
                }
                self.failed_into_node(graph, e);
            }
            (false, Some(e)) => {
                self.exclude.edges.insert(e);
            }
        }
    }
}

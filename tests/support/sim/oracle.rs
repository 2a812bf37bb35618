//! What the true balances allow (see [`super`]): what each channel direction really
//! forwards, the cheapest single route within the fee cap (the oracle of one route), each
//! channel direction's capacity for a set of parts, a task's circle as a flow request, and a
//! set of parts paid by moving the balances.

use super::{CircleEnds, FINAL_CLTV, OracleRoute, Task, World};
use cln_rebalance::core::amount::fee_cap_msat;
use cln_rebalance::core::flow::{self, Flow, FlowScratch};
use cln_rebalance::core::graph::EdgeIdx;
use cln_rebalance::core::liquidity::ChanDir;
use cln_rebalance::core::pathfind::{Exclusions, Query, Scratch, find_path};
use cln_rebalance::core::route::{
    Hop, HopSpec, MAX_HOPS, MAX_TOTAL_CLTV, build_route, route_fee_msat,
};
use cln_standin::simnet::Network;

impl World {
    /// The channel the node on side `s` of `c` uses when an onion names `c`: unless it
    /// forwards strictly, the channel to the same peer with the same fee and the most spendable
    /// (`pay.rs` `forward_check`, lightningd's `best_channel`).
    pub(super) fn best_channel(
        &self,
        net: &Network,
        c: usize,
        s: usize,
        amount_msat: u64,
    ) -> usize {
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

    /// The channel and side that really forward when the node on side `s` of `c` is asked for
    /// `c` (`pay.rs` `forward_check`: non-strict forwarding picks the same-fee channel to that
    /// peer with the most spendable; then policy and state, and with `amount_msat` the peer's
    /// htlc minimum). `None`: it forwards nothing.
    fn forwarding(
        &self,
        net: &Network,
        c: usize,
        s: usize,
        amount_msat: Option<u64>,
    ) -> Option<(usize, usize)> {
        let x = net.channels[c].nodes[s];
        // Without an amount no candidate is left out for its htlc minimum.
        let chosen = self.best_channel(net, c, s, amount_msat.unwrap_or(u64::MAX));
        let cs = net.side_of(chosen, x).expect("same pair");
        let ch = &net.channels[chosen];
        let pol = &ch.policy[cs];
        if !pol.active
            || !ch.update_set[cs]
            || ch.forced_failure[cs].is_some()
            || !net.can_add_htlc(chosen)
            || amount_msat.is_some_and(|a| a < ch.policy[1 - cs].htlc_minimum_msat)
        {
            return None;
        }
        Some((chosen, cs))
    }

    /// The most the node on side `s` of `c` forwards in one HTLC of `amount_msat` when asked
    /// for `c`, as the network model decides (see [`World::forwarding`]; then spendable and the
    /// htlc maximum). `None`: it forwards nothing.
    fn forwardable(&self, net: &Network, c: usize, s: usize, amount_msat: u64) -> Option<u64> {
        let (chosen, cs) = self.forwarding(net, c, s, Some(amount_msat))?;
        let pol = &net.channels[chosen].policy[cs];
        Some(net.spendable(chosen, cs).min(pol.htlc_maximum_msat))
    }

    /// The cheapest route for `task` over the true balances of `net` now, if one is within the
    /// fee cap: the plugin's own search (`find_path`) on the snapshot's graph, every channel
    /// direction limited to what it can really forward, offline nodes excluded; our own first
    /// and last hops added as `Plan` adds them (the first is free, the last costs the incoming
    /// peer's fee). With the route, its sendpay hops (`--check-oracle` sends them).
    pub fn oracle_route(
        &self,
        net: &Network,
        task: &Task,
        maxfeeppm: u64,
        exemptfee_msat: u64,
        scratch: &mut Scratch,
    ) -> Option<(OracleRoute, Vec<Hop>)> {
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
        Some((
            OracleRoute {
                fee_msat,
                hops: hops.len(),
            },
            hops,
        ))
    }

    /// Per graph edge, what its channel direction can forward now with every part of a set
    /// together: its own spendable when the node forwards over it or a substitute (see
    /// [`World::forwarding`]), 0 when it forwards nothing. Its own, not the substitute's:
    /// parallel channels at the same fees are a pool that holds the sum of their spendables,
    /// and the fullest's on each of them would count it once per channel (a set of 5M sat
    /// planned 966k sat over a channel holding 471k beside a fuller one, found by
    /// `--check-oracle`). Each part's htlc limits are the flow's to check, part by part, so
    /// the htlc maximum does not bound the sum. Our own channels count 0: a circle never
    /// passes through us.
    pub fn capacities(&self, net: &Network) -> Vec<u64> {
        let mut caps = vec![0u64; self.graph.edge_count()];
        for c in 0..net.channels.len() {
            if self.is_ours[c] {
                continue;
            }
            for s in 0..2 {
                if let Some(e) = self.edge_of[c][s]
                    && self.forwarding(net, c, s, None).is_some()
                {
                    caps[e as usize] = net.spendable(c, s);
                }
            }
        }
        caps
    }

    /// Every channel direction not ours as the plugin's model names it, with what it can
    /// forward now (as [`World::capacities`] counts it: its own spendable, 0 when it forwards
    /// nothing) and its capacity: what the `known` and `stale` strategies are told.
    pub fn true_liquidity(&self, net: &Network) -> Vec<(ChanDir, u64, u64)> {
        let caps = self.capacities(net);
        (0..net.channels.len())
            .filter(|&c| !self.is_ours[c])
            .flat_map(|c| self.edge_of[c].into_iter().flatten())
            .map(|e| {
                let edge = self.graph.edge(e);
                let cd = ChanDir::new(edge.short_channel_id, edge.direction);
                let capacity_msat = edge.amount_msat;
                (cd, caps[e as usize].min(capacity_msat), capacity_msat)
            })
            .collect()
    }

    /// What an oracle rules out: us in the middle of a circle, and every node offline now.
    pub fn offline_exclusions(&self, net: &Network) -> Exclusions {
        let mut ex = Exclusions::default();
        ex.nodes.insert(self.us_idx);
        for (n, node) in net.nodes.iter().enumerate() {
            if !node.online
                && let Some(g) = self.node_of[n]
            {
                ex.nodes.insert(g);
            }
        }
        ex
    }

    /// `task`'s circle as the plugin's `Circle` builds it: the two peers, our first hop (free)
    /// and the incoming peer's last hop to us (its gossip policy), and what our outgoing
    /// channel can send. `None` if a peer or the incoming channel is not in the graph.
    pub fn circle_ends(&self, net: &Network, task: &Task) -> Option<CircleEnds> {
        let us = net.us;
        let (so, si) = (
            self.our_side(net, task.out_chan),
            self.our_side(net, task.in_chan),
        );
        let out_peer = net.channels[task.out_chan].nodes[1 - so];
        let in_peer = net.channels[task.in_chan].nodes[1 - si];
        let in_edge = self.edge_of[task.in_chan][1 - si]?;
        let remote = self.graph.edge(in_edge).policy;
        Some(CircleEnds {
            from: self.node_of[out_peer]?,
            to: self.node_of[in_peer]?,
            first: HopSpec {
                short_channel_id: task.out_scid.parse().ok()?,
                direction: net.direction(us, out_peer),
                node_id: net.nodes[out_peer].id.clone(),
                policy: remote, // ignored: our own hop is free
            },
            last: HopSpec {
                short_channel_id: task.in_scid.parse().ok()?,
                direction: net.direction(in_peer, us),
                node_id: self.us_id.clone(),
                policy: remote,
            },
            max_source_msat: net.spendable(task.out_chan, so),
        })
    }

    /// Pays `flow` for `task` the way the network model would forward it, all at once: every
    /// hop's amount moves from its sender's side to the other on the channel really used (our
    /// own two hops included), each channel's parts together within its spendable; nothing
    /// moves if one does not fit. For an oracle that acts on what it knows.
    pub fn pay_flow(
        &self,
        net: &mut Network,
        task: &Task,
        ends: &CircleEnds,
        flow: &Flow,
    ) -> Result<(), String> {
        let mut moves: Vec<(usize, usize, u64)> = Vec::new();
        for part in &flow.parts {
            let hops = part
                .hops(&self.graph, &ends.first, &ends.last, FINAL_CLTV)
                .map_err(|e| format!("a part's route: {e:?}"))?;
            let n = hops.len();
            for (i, h) in hops.iter().enumerate() {
                let (c, s) = if i == 0 {
                    (task.out_chan, self.our_side(net, task.out_chan))
                } else if i == n - 1 {
                    (task.in_chan, 1 - self.our_side(net, task.in_chan))
                } else {
                    let c = net
                        .channel_by_scid(&h.short_channel_id.to_string())
                        .ok_or_else(|| format!("no channel {}", h.short_channel_id))?;
                    self.forwarding(net, c, usize::from(h.direction), Some(h.amount_msat))
                        .ok_or_else(|| format!("{} forwards nothing", h.short_channel_id))?
                };
                match moves.iter_mut().find(|m| (m.0, m.1) == (c, s)) {
                    Some(m) => m.2 += h.amount_msat,
                    None => moves.push((c, s, h.amount_msat)),
                }
            }
        }
        for &(c, s, amount) in &moves {
            if amount > net.spendable(c, s) {
                return Err(format!(
                    "channel {} side {s} cannot forward {amount}msat",
                    net.channels[c].scid
                ));
            }
        }
        for (c, s, amount) in moves {
            let b = &mut net.channels[c].balance_msat;
            b[s] -= amount;
            b[1 - s] += amount;
        }
        Ok(())
    }
}

/// The most parts and the smallest part the plugin may pay in (`rebalance-maxparts`,
/// `rebalance-min-part`): the flow oracle keeps to the same.
#[derive(Debug, Clone, Copy)]
pub struct PartLimits {
    pub max_parts: usize,
    pub min_part_msat: u64,
}

/// The cheapest set of parts the true balances allow within the fee cap.
#[derive(Debug, Clone, Copy)]
pub struct OracleSet {
    pub fee_msat: u64,
    pub parts: usize,
}

/// What the true balances allowed for one task as it started.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskOracle {
    /// The cheapest single route within the cap: "feasible for one route".
    pub route: Option<OracleRoute>,
    /// The cheapest set of parts within the cap (`flow::cheapest_set`, the plugin's part
    /// limits, 20 hops).
    pub set: Option<OracleSet>,
    /// The most that can move within the cap (`flow::max_flow_within_cap`, to 1% of the
    /// amount): the amount when feasible; `None` when not asked.
    pub max_msat: Option<u64>,
    /// How much liquidity to spare the flow-feasible task had ([`Oracle::margins`]): the
    /// largest of [`MARGINS_PCT`] such that a set still carries the amount within the cap with
    /// every channel between the two peers holding that share less; 0 when none does (the
    /// task is feasible only within 1% of the true balances); `None` when not asked or not
    /// feasible.
    pub margin_pct: Option<u8>,
}

/// The shares of liquidity taken away, largest first, to find a task's margin.
pub const MARGINS_PCT: [u8; 4] = [25, 10, 5, 1];

impl TaskOracle {
    /// Feasible for the flow: a set of parts within the cap, or one route (the set's search is
    /// a heuristic; the route's is exact for one route, and one route is a set of one).
    pub fn flow_feasible(&self) -> bool {
        self.set.is_some() || self.route.is_some()
    }

    /// The least fee the oracle found: of its set, or of its route when that is cheaper.
    pub fn fee_msat(&self) -> Option<u64> {
        match (self.set, self.route) {
            (Some(s), Some(r)) => Some(s.fee_msat.min(r.fee_msat)),
            (Some(s), None) => Some(s.fee_msat),
            (None, r) => r.map(|r| r.fee_msat),
        }
    }

    /// The parts of what [`TaskOracle::fee_msat`] pays.
    pub fn parts(&self) -> usize {
        match (self.set, self.route) {
            (Some(s), Some(r)) if r.fee_msat < s.fee_msat => 1,
            (Some(s), _) => s.parts,
            (None, Some(_)) => 1,
            (None, None) => 0,
        }
    }
}

/// The oracles' search state, kept between tasks.
#[derive(Default)]
pub struct Oracle {
    scratch: Scratch,
    flow: FlowScratch,
    /// Also find each flow-feasible task's margin ([`TaskOracle::margin_pct`]): up to four
    /// more flow solves a task, one for most.
    margins: bool,
}

impl Oracle {
    /// An oracle that also finds margins (`margins`), or not.
    pub fn with_margins(margins: bool) -> Oracle {
        Oracle {
            margins,
            ..Oracle::default()
        }
    }

    /// What the true balances of `net` allow for `task` now, within the fee cap
    /// `max(exemptfee, maxfeeppm x amount)`: one route, a set of at most `limits` parts, and
    /// (with `max_flow`, when neither is found) the most that can move.
    #[allow(clippy::too_many_arguments)]
    pub fn task(
        &mut self,
        world: &World,
        net: &Network,
        task: &Task,
        maxfeeppm: u64,
        exemptfee_msat: u64,
        limits: PartLimits,
        max_flow: bool,
    ) -> TaskOracle {
        let amount = task.amount_msat;
        let route = world
            .oracle_route(net, task, maxfeeppm, exemptfee_msat, &mut self.scratch)
            .map(|(route, _)| route);
        let mut out = TaskOracle {
            route,
            set: None,
            max_msat: None,
            margin_pct: None,
        };
        let Some(ends) = world.circle_ends(net, task) else {
            return out;
        };
        let caps = world.capacities(net);
        let ex = world.offline_exclusions(net);
        let cap = fee_cap_msat(amount, maxfeeppm, exemptfee_msat);
        let req = ends.request(amount, limits.max_parts, limits.min_part_msat, cap, &ex);
        let capacity = |e: EdgeIdx| caps[e as usize];
        out.set = flow::cheapest_set(&world.graph, &req, capacity, &mut self.flow)
            .ok()
            .map(|f| OracleSet {
                fee_msat: f.fee_msat,
                parts: f.parts.len(),
            });
        if out.flow_feasible() {
            out.max_msat = Some(amount);
            if self.margins {
                let mut spared = |pct: u8| {
                    let less = |e: EdgeIdx| caps[e as usize] / 100 * u64::from(100 - pct);
                    flow::cheapest_set(&world.graph, &req, less, &mut self.flow).is_ok()
                };
                out.margin_pct = Some(MARGINS_PCT.into_iter().find(|&p| spared(p)).unwrap_or(0));
            }
        } else if max_flow {
            let fee_cap = |a: u64| fee_cap_msat(a, maxfeeppm, exemptfee_msat);
            let most = flow::max_flow_within_cap(
                &world.graph,
                &req,
                capacity,
                fee_cap,
                amount / 100,
                &mut self.flow,
            );
            out.max_msat = Some(most.map_or(0, |f| delivered(&f)));
        }
        out
    }

    /// For a job that knows the true balances: the cheapest set that moves `task`'s amount
    /// within `fee_cap(amount)`; failing that, the most that moves within `fee_cap` of what
    /// it moves (to within `min_amount_msat / 10`), if that is at least `min_amount_msat`.
    /// The set, and the circle to pay it on ([`World::pay_flow`]).
    pub fn job_move(
        &mut self,
        world: &World,
        net: &Network,
        task: &Task,
        fee_cap: &dyn Fn(u64) -> u64,
        limits: PartLimits,
        min_amount_msat: u64,
    ) -> Option<(CircleEnds, Flow)> {
        let ends = world.circle_ends(net, task)?;
        let caps = world.capacities(net);
        let ex = world.offline_exclusions(net);
        let amount = task.amount_msat;
        let req = ends.request(
            amount,
            limits.max_parts,
            limits.min_part_msat,
            fee_cap(amount),
            &ex,
        );
        let capacity = |e: EdgeIdx| caps[e as usize];
        if let Ok(f) = flow::cheapest_set(&world.graph, &req, capacity, &mut self.flow) {
            return Some((ends, f));
        }
        let f = flow::max_flow_within_cap(
            &world.graph,
            &req,
            capacity,
            fee_cap,
            (min_amount_msat / 10).max(1000),
            &mut self.flow,
        )?;
        (delivered(&f) >= min_amount_msat).then_some((ends, f))
    }
}

/// What a set delivers to us: its parts' amounts.
pub fn delivered(f: &Flow) -> u64 {
    f.parts.iter().map(|p| p.amount_msat).sum()
}

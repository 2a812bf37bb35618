//! The `dev-` methods: steer the simulated network from tests and the demo, and read its true
//! state (balances lightningd itself could not show, e.g. remote channels) for assertions.

use super::params::{self, RpcError};
use super::pay::{PayStatus, Stage};
use super::{Event, Network, Policy, wire};
use serde_json::{Value, json};

/// The dev- methods and their usage, for `help`.
pub const CONTROL_METHODS: &[(&str, &str)] = &[
    ("dev-state", "[short_channel_id] [node]"),
    ("dev-set-online", "node online"),
    ("dev-hold", "[node] [short_channel_id]"),
    ("dev-release", "[node] [short_channel_id]"),
    ("dev-fail", "short_channel_id source [failcode]"),
    ("dev-set-balance", "short_channel_id node amount_msat"),
    ("dev-drain", "short_channel_id node [leave_msat]"),
    (
        "dev-set-policy",
        "short_channel_id source [fee_base_msat] [fee_proportional_millionths] \
         [cltv_expiry_delta] [htlc_minimum_msat] [htlc_maximum_msat] [active]",
    ),
    ("dev-set-strict", "node strict"),
    ("dev-set-channel-state", "short_channel_id state"),
    ("dev-timetravel", "[seconds] [blocks]"),
    (
        "dev-forward",
        "in_channel out_channel amount_msat [fee_msat] [outcome]",
    ),
];

/// States of a channel that has gone to chain: an HTLC our node held in an HTLC set on it is
/// lost to the set (see `drop_set_htlcs_on`).
const CLOSED_STATES: &[&str] = &[
    "AWAITING_UNILATERAL",
    "FUNDING_SPEND_SEEN",
    "ONCHAIN",
    "CLOSINGD_COMPLETE",
    "CLOSED",
];

fn policy_json(p: &Policy) -> Value {
    json!({
        "fee_base_msat": p.fee_base_msat,
        "fee_proportional_millionths": p.fee_proportional_millionths,
        "cltv_expiry_delta": p.cltv_expiry_delta,
        "htlc_minimum_msat": p.htlc_minimum_msat,
        "htlc_maximum_msat": p.htlc_maximum_msat,
        "active": p.active,
    })
}

impl Network {
    fn node_param(&self, p: &params::Params, name: &str) -> Result<Option<usize>, RpcError> {
        match p.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .and_then(|s| self.node_by_ref(s))
                .map(Some)
                .ok_or_else(|| RpcError::badparam(name, "should be a known node id or alias", v)),
        }
    }

    fn channel_param(&self, p: &params::Params, name: &str) -> Result<Option<usize>, RpcError> {
        match p.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .and_then(|s| self.channel_by_scid(s))
                .map(Some)
                .ok_or_else(|| RpcError::badparam(name, "should be a known short_channel_id", v)),
        }
    }

    /// `channel` and the side of node param `name` on it.
    fn side_param(&self, p: &params::Params, c: usize, name: &str) -> Result<usize, RpcError> {
        let n = self.node_param(p, name)?.expect("required");
        self.side_of(c, n).ok_or_else(|| {
            RpcError::invalid(format!(
                "{name}: {} is not an end of {}",
                self.nodes[n].id, self.channels[c].scid
            ))
        })
    }

    /// The true state of one channel.
    pub fn channel_state_json(&self, c: usize) -> Value {
        let ch = &self.channels[c];
        let htlcs: Vec<Value> = ch
            .htlcs
            .iter()
            .map(|h| {
                json!({
                    "from": self.nodes[ch.nodes[h.from]].id,
                    "id": h.id,
                    "amount_msat": h.amount_msat,
                    "expiry": h.expiry,
                    "payment_hash": h.payment_hash,
                })
            })
            .collect();
        json!({
            "short_channel_id": ch.scid,
            "node1": self.nodes[ch.nodes[0]].id,
            "node2": self.nodes[ch.nodes[1]].id,
            "alias1": self.nodes[ch.nodes[0]].alias,
            "alias2": self.nodes[ch.nodes[1]].alias,
            "capacity_msat": ch.capacity_msat,
            "node1_msat": ch.balance_msat[0],
            "node2_msat": ch.balance_msat[1],
            "spendable1_msat": self.spendable(c, 0),
            "spendable2_msat": self.spendable(c, 1),
            "policy1": policy_json(&ch.policy[0]),
            "policy2": policy_json(&ch.policy[1]),
            "public": ch.public,
            "state": ch.state,
            "held": ch.held,
            "forced_failure1": ch.forced_failure[0],
            "forced_failure2": ch.forced_failure[1],
            "htlcs": htlcs,
        })
    }

    pub fn control(
        &mut self,
        method: &str,
        p: &Value,
    ) -> Option<Result<(Value, Vec<Event>), RpcError>> {
        let r = match method {
            "dev-state" => self.dev_state(p).map(|v| (v, vec![])),
            "dev-set-online" => self.dev_set_online(p),
            "dev-hold" => self.dev_hold(p, true),
            "dev-release" => self.dev_hold(p, false),
            "dev-fail" => self.dev_fail(p),
            "dev-set-balance" => self.dev_set_balance(p, false),
            "dev-drain" => self.dev_set_balance(p, true),
            "dev-set-policy" => self.dev_set_policy(p),
            "dev-set-strict" => self.dev_set_strict(p),
            "dev-set-channel-state" => self.dev_set_channel_state(p),
            "dev-timetravel" => self.dev_timetravel(p),
            "dev-forward" => self.dev_forward(p),
            _ => return None,
        };
        Some(r)
    }

    fn dev_state(&self, p: &Value) -> Result<Value, RpcError> {
        let p = params::parse(p, &[("short_channel_id", false), ("node", false)])?;
        let only_chan = self.channel_param(&p, "short_channel_id")?;
        let only_node = self.node_param(&p, "node")?;
        let channels: Vec<Value> = (0..self.channels.len())
            .filter(|&c| only_chan.is_none_or(|x| x == c))
            .filter(|&c| only_node.is_none_or(|n| self.channels[c].nodes.contains(&n)))
            .map(|c| self.channel_state_json(c))
            .collect();
        if only_chan.is_some() || only_node.is_some() {
            return Ok(json!({"channels": channels}));
        }
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                json!({
                    "id": n.id,
                    "alias": n.alias,
                    "online": n.online,
                    "strict_forwarding": n.strict_forwarding,
                    "held": self.held_nodes.contains(&i),
                })
            })
            .collect();
        let payments: Vec<Value> = self
            .payments
            .iter()
            .map(|x| {
                json!({
                    "payment_hash": x.payment_hash,
                    "groupid": x.groupid,
                    "partid": x.partid,
                    "status": x.status.as_str(),
                    "stage": format!("{:?}", x.stage).to_lowercase(),
                    "amount_msat": x.amount_msat,
                    "total_msat": x.total_msat,
                    "amount_sent_msat": x.amount_sent_msat,
                    "route": x.route.iter().map(|h| json!({
                        "id": h.node_id, "channel": h.scid,
                        "amount_msat": h.amount_msat, "delay": h.delay})).collect::<Vec<_>>(),
                    "channels_used": x.legs.iter().map(|(c, _)| self.channels[*c].scid.clone())
                        .collect::<Vec<_>>(),
                    "failcode": x.failure.as_ref().map(|f| f.failcode),
                    "erring_index": x.failure.as_ref().map(|f| f.erring_index),
                })
            })
            .collect();
        let invoices: Vec<Value> = (0..self.invoices.len())
            .map(|i| self.invoice_json(i))
            .collect();
        let htlc_sets: Vec<Value> = self
            .htlc_sets
            .iter()
            .map(|s| {
                json!({
                    "payment_hash": s.payment_hash,
                    "total_msat": s.total_msat,
                    "so_far_msat": s.so_far_msat,
                    "parts": s.parts.iter().map(|&p| json!({
                        "groupid": self.payments[p].groupid,
                        "partid": self.payments[p].partid,
                        "amount_msat": self.payments[p].amount_msat,
                    })).collect::<Vec<_>>(),
                    "expires_at": s.deadline,
                })
            })
            .collect();
        Ok(json!({
            "us": self.us_id(),
            "blockheight": self.blockheight,
            "now": self.now(),
            "nodes": nodes,
            "channels": channels,
            "payments": payments,
            "invoices": invoices,
            "htlc_sets": htlc_sets,
        }))
    }

    fn dev_set_online(&mut self, p: &Value) -> Result<(Value, Vec<Event>), RpcError> {
        let p = params::parse(p, &[("node", true), ("online", true)])?;
        let n = self.node_param(&p, "node")?.expect("required");
        let online = p.bool("online")?.expect("required");
        if n == self.us {
            return Err(RpcError::invalid("node: cannot take our own node offline"));
        }
        self.set_online(n, online);
        Ok((
            json!({"id": self.nodes[n].id, "online": online}),
            vec![Event::Changed],
        ))
    }

    fn dev_hold(&mut self, p: &Value, hold: bool) -> Result<(Value, Vec<Event>), RpcError> {
        let p = params::parse(p, &[("node", false), ("short_channel_id", false)])?;
        let node = self.node_param(&p, "node")?;
        let chan = self.channel_param(&p, "short_channel_id")?;
        if hold {
            if node.is_none() && chan.is_none() {
                return Err(RpcError::invalid("give node or short_channel_id to hold"));
            }
            if let Some(n) = node {
                self.held_nodes.insert(n);
            }
            if let Some(c) = chan {
                self.channels[c].held = true;
            }
            return Ok((json!({"held": true}), vec![]));
        }
        if node.is_none() && chan.is_none() {
            self.held_nodes.clear();
            for ch in &mut self.channels {
                ch.held = false;
            }
        }
        if let Some(n) = node {
            self.held_nodes.remove(&n);
        }
        if let Some(c) = chan {
            self.channels[c].held = false;
        }
        let held: Vec<usize> = (0..self.payments.len())
            .filter(|&i| {
                self.payments[i].status == PayStatus::Pending
                    && self.payments[i].stage == Stage::Held
            })
            .collect();
        let mut events = vec![Event::Changed];
        let mut released = 0;
        for pid in held {
            let ev = self.advance(pid);
            if self.payments[pid].stage != Stage::Held {
                released += 1;
            }
            events.extend(ev);
        }
        Ok((json!({"released": released}), events))
    }

    fn dev_fail(&mut self, p: &Value) -> Result<(Value, Vec<Event>), RpcError> {
        let p = params::parse(
            p,
            &[
                ("short_channel_id", true),
                ("source", true),
                ("failcode", false),
            ],
        )?;
        let c = self
            .channel_param(&p, "short_channel_id")?
            .expect("required");
        let s = self.side_param(&p, c, "source")?;
        let code = match p.get("failcode") {
            None => None,
            Some(v) => Some(
                wire::parse_failcode(v)
                    .ok_or_else(|| RpcError::badparam("failcode", "should be a failcode", v))?,
            ),
        };
        self.channels[c].forced_failure[s] = code;
        Ok((
            json!({"short_channel_id": self.channels[c].scid, "failcode": code}),
            vec![],
        ))
    }

    fn dev_set_balance(&mut self, p: &Value, drain: bool) -> Result<(Value, Vec<Event>), RpcError> {
        let amount_name = if drain { "leave_msat" } else { "amount_msat" };
        let p = params::parse(
            p,
            &[
                ("short_channel_id", true),
                ("node", true),
                (amount_name, !drain),
            ],
        )?;
        let c = self
            .channel_param(&p, "short_channel_id")?
            .expect("required");
        let s = self.side_param(&p, c, "node")?;
        let amount = match p.msat(amount_name)? {
            Some(a) => a,
            None => self.channels[c].reserve_msat[s],
        };
        let ch = &self.channels[c];
        if amount > ch.capacity_msat {
            return Err(RpcError::invalid(format!(
                "{amount_name}: exceeds the capacity"
            )));
        }
        if !ch.htlcs.is_empty() {
            return Err(RpcError::invalid("channel has HTLCs in flight"));
        }
        let ch = &mut self.channels[c];
        ch.balance_msat[s] = amount;
        ch.balance_msat[1 - s] = ch.capacity_msat - amount;
        Ok((self.channel_state_json(c), vec![Event::Changed]))
    }

    fn dev_set_policy(&mut self, p: &Value) -> Result<(Value, Vec<Event>), RpcError> {
        let p = params::parse(
            p,
            &[
                ("short_channel_id", true),
                ("source", true),
                ("fee_base_msat", false),
                ("fee_proportional_millionths", false),
                ("cltv_expiry_delta", false),
                ("htlc_minimum_msat", false),
                ("htlc_maximum_msat", false),
                ("active", false),
            ],
        )?;
        let c = self
            .channel_param(&p, "short_channel_id")?
            .expect("required");
        let s = self.side_param(&p, c, "source")?;
        let now = self.now();
        let base = p.msat("fee_base_msat")?;
        let ppm = p.u64("fee_proportional_millionths")?;
        let delta = p.u32("cltv_expiry_delta")?;
        let min = p.msat("htlc_minimum_msat")?;
        let max = p.msat("htlc_maximum_msat")?;
        let active = p.bool("active")?;
        let pol = &mut self.channels[c].policy[s];
        if let Some(v) = base {
            pol.fee_base_msat = v;
        }
        if let Some(v) = ppm {
            pol.fee_proportional_millionths = v;
        }
        if let Some(v) = delta {
            pol.cltv_expiry_delta = v;
        }
        if let Some(v) = min {
            pol.htlc_minimum_msat = v;
        }
        if let Some(v) = max {
            pol.htlc_maximum_msat = v;
        }
        if let Some(v) = active {
            pol.active = v;
        }
        pol.last_update = now;
        self.channels[c].update_set[s] = true;
        Ok((self.channel_state_json(c), vec![Event::Changed]))
    }

    fn dev_set_strict(&mut self, p: &Value) -> Result<(Value, Vec<Event>), RpcError> {
        let p = params::parse(p, &[("node", true), ("strict", true)])?;
        let n = self.node_param(&p, "node")?.expect("required");
        let strict = p.bool("strict")?.expect("required");
        self.nodes[n].strict_forwarding = strict;
        Ok((
            json!({"id": self.nodes[n].id, "strict_forwarding": strict}),
            vec![],
        ))
    }

    fn dev_set_channel_state(&mut self, p: &Value) -> Result<(Value, Vec<Event>), RpcError> {
        let p = params::parse(p, &[("short_channel_id", true), ("state", true)])?;
        let c = self
            .channel_param(&p, "short_channel_id")?
            .expect("required");
        let state = p.string("state")?.expect("required");
        // A channel gone to chain loses the HTLCs our node holds in an HTLC set on it.
        let closed = CLOSED_STATES.contains(&state.as_str());
        self.channels[c].state = state;
        let mut events = vec![Event::Changed];
        if closed {
            events.extend(self.drop_set_htlcs_on(c));
        }
        Ok((self.channel_state_json(c), events))
    }

    fn dev_timetravel(&mut self, p: &Value) -> Result<(Value, Vec<Event>), RpcError> {
        let p = params::parse(p, &[("seconds", false), ("blocks", false)])?;
        let secs = p.u64("seconds")?.unwrap_or(0);
        let blocks = p.u32("blocks")?.unwrap_or(0);
        self.time_offset += secs as i64;
        if let Some(t) = self.fixed_time.as_mut() {
            *t += secs;
        }
        self.blockheight += blocks;
        let mut events = vec![Event::Changed];
        events.extend(self.fire_timers());
        Ok((
            json!({"now": self.now(), "blockheight": self.blockheight}),
            events,
        ))
    }
}

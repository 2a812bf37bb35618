//! Read-only lightningd methods over the network: getinfo, listpeerchannels, listpeers,
//! listchannels, listnodes, listfunds. Field names, types and order follow lightningd v26.06
//! (lightningd/peer_control.c, plugins/topology.c).

use super::params::{self, RpcError, RpcResult};
use super::{Network, scid_key};
use serde_json::{Map, Value, json};

/// Our node's features as lightningd v26.06 announces them (node_announcement hex).
pub const NODE_FEATURES: &str = "08a0880a8a59a1";

impl Network {
    pub fn getinfo(&mut self, p: &Value) -> RpcResult {
        params::parse(p, &[])?;
        let us = &self.nodes[self.us];
        let ours = self.our_channels();
        let mut peers: Vec<usize> = ours
            .iter()
            .map(|&c| self.channels[c].nodes[1 - self.side_of(c, self.us).unwrap_or(0)])
            .collect();
        peers.sort_unstable();
        peers.dedup();
        let (mut pending, mut active, mut inactive) = (0, 0, 0);
        for &c in &ours {
            match self.channels[c].state.as_str() {
                "CHANNELD_AWAITING_LOCKIN"
                | "DUALOPEND_OPEN_INIT"
                | "DUALOPEND_AWAITING_LOCKIN" => pending += 1,
                "CHANNELD_NORMAL"
                | "CHANNELD_AWAITING_SPLICE"
                | "CHANNELD_SHUTTING_DOWN"
                | "CLOSINGD_SIGEXCHANGE" => active += 1,
                _ => inactive += 1,
            }
        }
        Ok(json!({
            "id": us.id,
            "alias": us.alias,
            "color": us.color,
            "num_peers": peers.len(),
            "num_pending_channels": pending,
            "num_active_channels": active,
            "num_inactive_channels": inactive,
            "address": [],
            "binding": [],
            "version": self.config.version,
            "blockheight": self.blockheight,
            "network": "regtest",
            "fees_collected_msat": self.fees_collected_msat(),
            "lightning-dir": "",
            "our_features": {
                "init": "08a0880a8a59a1",
                "node": NODE_FEATURES,
                "channel": "",
                "invoice": "02000002024100"
            }
        }))
    }

    /// One `listpeerchannels` entry for our channel `c`.
    pub fn peer_channel_json(&self, c: usize) -> Value {
        let ch = &self.channels[c];
        let s = self.side_of(c, self.us).expect("our channel");
        let peer = ch.nodes[1 - s];
        let connected = self.nodes[peer].online;
        let local = &ch.policy[s];
        let remote = &ch.policy[1 - s];
        let mut v = Map::new();
        v.insert("peer_id".into(), json!(self.nodes[peer].id));
        v.insert("peer_connected".into(), json!(connected));
        if connected {
            v.insert("reestablished".into(), json!(true));
        }
        v.insert(
            "channel_type".into(),
            json!({"bits": [12, 22], "names": ["static_remotekey/even", "anchors/even"]}),
        );
        if ch.ignore_fee_limits {
            v.insert("ignore_fee_limits".into(), json!(true));
        }
        let mut updates = Map::new();
        updates.insert(
            "local".into(),
            json!({
                "htlc_minimum_msat": local.htlc_minimum_msat,
                "htlc_maximum_msat": local.htlc_maximum_msat,
                "cltv_expiry_delta": local.cltv_expiry_delta,
                "fee_base_msat": local.fee_base_msat,
                "fee_proportional_millionths": local.fee_proportional_millionths,
            }),
        );
        if ch.update_set[1 - s] {
            updates.insert(
                "remote".into(),
                json!({
                    "htlc_minimum_msat": remote.htlc_minimum_msat,
                    "htlc_maximum_msat": remote.htlc_maximum_msat,
                    "cltv_expiry_delta": remote.cltv_expiry_delta,
                    "fee_base_msat": remote.fee_base_msat,
                    "fee_proportional_millionths": remote.fee_proportional_millionths,
                }),
            );
        }
        v.insert("updates".into(), Value::Object(updates));
        v.insert("state".into(), json!(ch.state));
        v.insert("lost_state".into(), json!(false));
        v.insert("feerate".into(), json!({"perkw": 253, "perkb": 1012}));
        if connected && self.can_add_htlc(c) {
            v.insert("owner".into(), json!("channeld"));
        }
        v.insert("short_channel_id".into(), json!(ch.scid));
        v.insert("direction".into(), json!(self.direction(self.us, peer)));
        v.insert("channel_id".into(), json!(ch.channel_id));
        v.insert("funding_txid".into(), json!(ch.funding_txid));
        v.insert("funding_outnum".into(), json!(ch.funding_outnum));
        v.insert("private".into(), json!(!ch.public));
        v.insert(
            "opener".into(),
            json!(if ch.opener == s { "local" } else { "remote" }),
        );
        v.insert(
            "alias".into(),
            json!({"local": ch.alias[s], "remote": ch.alias[1 - s]}),
        );
        v.insert(
            "features".into(),
            json!(["option_static_remotekey", "option_anchors"]),
        );
        let (local_funds, remote_funds) = if ch.opener == s {
            (ch.capacity_msat, 0)
        } else {
            (0, ch.capacity_msat)
        };
        v.insert(
            "funding".into(),
            json!({
                "local_funds_msat": local_funds,
                "remote_funds_msat": remote_funds,
                "pushed_msat": 0,
                "withheld": false
            }),
        );
        v.insert("to_us_msat".into(), json!(ch.balance_msat[s]));
        v.insert("min_to_us_msat".into(), json!(ch.balance_msat[s]));
        v.insert("max_to_us_msat".into(), json!(ch.balance_msat[s]));
        v.insert("total_msat".into(), json!(ch.capacity_msat));
        v.insert("fee_base_msat".into(), json!(local.fee_base_msat));
        v.insert(
            "fee_proportional_millionths".into(),
            json!(local.fee_proportional_millionths),
        );
        v.insert("dust_limit_msat".into(), json!(546_000));
        v.insert(
            "their_max_htlc_value_in_flight_msat".into(),
            json!(u64::MAX),
        );
        v.insert("our_max_htlc_value_in_flight_msat".into(), json!(u64::MAX));
        v.insert("their_reserve_msat".into(), json!(ch.reserve_msat[1 - s]));
        v.insert("our_reserve_msat".into(), json!(ch.reserve_msat[s]));
        v.insert("spendable_msat".into(), json!(self.spendable(c, s)));
        v.insert("receivable_msat".into(), json!(self.receivable(c, s)));
        v.insert(
            "minimum_htlc_in_msat".into(),
            json!(local.htlc_minimum_msat),
        );
        v.insert(
            "minimum_htlc_out_msat".into(),
            json!(local.htlc_minimum_msat),
        );
        v.insert(
            "maximum_htlc_out_msat".into(),
            json!(local.htlc_maximum_msat),
        );
        v.insert("their_to_self_delay".into(), json!(144));
        v.insert("our_to_self_delay".into(), json!(144));
        v.insert(
            "max_accepted_htlcs".into(),
            json!(self.config.max_accepted_htlcs),
        );
        v.insert("state_changes".into(), json!([]));
        let status = if ch.state == "CHANNELD_NORMAL" {
            if connected {
                "CHANNELD_NORMAL:Channel ready for use."
            } else {
                "CHANNELD_NORMAL:Peer is not connected."
            }
        } else {
            ""
        };
        v.insert(
            "status".into(),
            if status.is_empty() {
                json!([])
            } else {
                json!([status])
            },
        );
        let st = &ch.stats;
        for (k, n) in [
            ("in_payments_offered", st.in_payments_offered),
            ("in_offered_msat", st.in_offered_msat),
            ("in_payments_fulfilled", st.in_payments_fulfilled),
            ("in_fulfilled_msat", st.in_fulfilled_msat),
            ("out_payments_offered", st.out_payments_offered),
            ("out_offered_msat", st.out_offered_msat),
            ("out_payments_fulfilled", st.out_payments_fulfilled),
            ("out_fulfilled_msat", st.out_fulfilled_msat),
        ] {
            v.insert(k.into(), json!(n));
        }
        let htlcs: Vec<Value> = ch
            .htlcs
            .iter()
            .map(|h| {
                let incoming = h.from != s;
                let mut o = Map::new();
                o.insert(
                    "direction".into(),
                    json!(if incoming { "in" } else { "out" }),
                );
                o.insert("id".into(), json!(h.id));
                o.insert("amount_msat".into(), json!(h.amount_msat));
                o.insert("expiry".into(), json!(h.expiry));
                o.insert("payment_hash".into(), json!(h.payment_hash));
                o.insert(
                    "state".into(),
                    json!(if incoming {
                        "RCVD_ADD_ACK_REVOCATION"
                    } else {
                        "SENT_ADD_ACK_REVOCATION"
                    }),
                );
                if let (true, Some(st)) = (incoming, &h.status) {
                    o.insert("status".into(), json!(st));
                }
                Value::Object(o)
            })
            .collect();
        v.insert("htlcs".into(), json!(htlcs));
        Value::Object(v)
    }

    pub fn listpeerchannels(&mut self, p: &Value) -> RpcResult {
        let p = params::parse(
            p,
            &[
                ("id", false),
                ("short_channel_id", false),
                ("channel_id", false),
            ],
        )?;
        let id = p.node_id("id")?;
        let scid = p.scid("short_channel_id")?;
        let cid = p.hex32("channel_id", "should be a channel id")?;
        if usize::from(id.is_some()) + usize::from(scid.is_some()) + usize::from(cid.is_some()) > 1
        {
            return Err(RpcError::invalid(
                "Must not specify more than one of short_channel_id, channel_id or id",
            ));
        }
        let chans: Vec<Value> = self
            .our_channels()
            .into_iter()
            .filter(|&c| {
                let ch = &self.channels[c];
                let s = self.side_of(c, self.us).unwrap_or(0);
                id.as_ref()
                    .is_none_or(|i| self.nodes[ch.nodes[1 - s]].id == *i)
                    && scid
                        .as_ref()
                        .is_none_or(|x| ch.scid == *x || ch.alias.contains(x))
                    && cid.as_ref().is_none_or(|x| ch.channel_id == *x)
            })
            .map(|c| self.peer_channel_json(c))
            .collect();
        Ok(json!({"channels": chans}))
    }

    pub fn listpeers(&mut self, p: &Value) -> RpcResult {
        let p = params::parse(p, &[("id", false), ("level", false)])?;
        let id = p.node_id("id")?;
        let mut peers: Vec<usize> = self
            .our_channels()
            .iter()
            .map(|&c| self.channels[c].nodes[1 - self.side_of(c, self.us).unwrap_or(0)])
            .collect();
        peers.sort_by(|a, b| self.nodes[*a].id.cmp(&self.nodes[*b].id));
        peers.dedup();
        let list: Vec<Value> = peers
            .into_iter()
            .filter(|&n| id.as_ref().is_none_or(|i| self.nodes[n].id == *i))
            .map(|n| {
                let node = &self.nodes[n];
                let num = self
                    .our_channels()
                    .iter()
                    .filter(|&&c| self.channels[c].nodes.contains(&n))
                    .count();
                let mut o = json!({
                    "id": node.id,
                    "connected": node.online,
                    "num_channels": num,
                    "features": NODE_FEATURES,
                });
                if node.online {
                    o["netaddr"] = json!(["127.0.0.1:9735"]);
                }
                o
            })
            .collect();
        Ok(json!({"peers": list}))
    }

    /// The listchannels entries of channel `c` for the directions in `dirs` (sides).
    fn halfchan_json(&self, c: usize, sides: &[usize], out: &mut Vec<Value>) {
        let ch = &self.channels[c];
        for &s in sides {
            if !ch.update_set[s] {
                continue;
            }
            let p = &ch.policy[s];
            let src = ch.nodes[s];
            let dst = ch.nodes[1 - s];
            let dir = self.direction(src, dst);
            // Disabled bit 2 in channel_flags; an offline end looks disabled to the network
            // at once, as on a busy network, or (`lazy_disable`) as lightningd's peer says so:
            // once a forward over it found the end offline, until the end is back.
            let enabled = p.active
                && if self.config.lazy_disable {
                    !ch.disabled_by_peer[s]
                } else {
                    self.nodes[src].online && self.nodes[dst].online
                };
            out.push(json!({
                "source": self.nodes[src].id,
                "destination": self.nodes[dst].id,
                "short_channel_id": ch.scid,
                "direction": dir,
                "public": ch.public,
                "amount_msat": ch.capacity_msat,
                "message_flags": 1,
                "channel_flags": dir | if enabled { 0 } else { 2 },
                "active": enabled,
                "last_update": p.last_update,
                "base_fee_millisatoshi": p.fee_base_msat,
                "fee_per_millionth": p.fee_proportional_millionths,
                "delay": p.cltv_expiry_delta,
                "htlc_minimum_msat": p.htlc_minimum_msat,
                "htlc_maximum_msat": p.htlc_maximum_msat,
                "features": "",
            }));
        }
    }

    /// Channels lightningd's gossmap knows: public ones, and our own private ones.
    fn gossip_visible(&self, c: usize) -> bool {
        let ch = &self.channels[c];
        (ch.public || ch.nodes.contains(&self.us))
            && matches!(
                ch.state.as_str(),
                "CHANNELD_NORMAL" | "CHANNELD_AWAITING_SPLICE" | "CHANNELD_SHUTTING_DOWN"
            )
    }

    pub fn listchannels(&mut self, p: &Value) -> RpcResult {
        let p = params::parse(
            p,
            &[
                ("short_channel_id", false),
                ("source", false),
                ("destination", false),
            ],
        )?;
        let scid = p.scid("short_channel_id")?;
        let source = p.node_id("source")?;
        let destination = p.node_id("destination")?;
        if usize::from(scid.is_some())
            + usize::from(source.is_some())
            + usize::from(destination.is_some())
            > 1
        {
            return Err(RpcError::invalid(
                "Can only specify one of `short_channel_id`, `source` or `destination`",
            ));
        }
        let mut out = Vec::new();
        if let Some(scid) = scid {
            if let Some(c) = self
                .channel_by_scid(&scid)
                .filter(|&c| self.gossip_visible(c))
            {
                self.halfchan_json(c, &[0, 1], &mut out);
            }
        } else if let Some(src) = source {
            if let Some(n) = self.node_by_id(&src) {
                for c in self.channels_of(n) {
                    let s = self.side_of(c, n).unwrap_or(0);
                    self.halfchan_json(c, &[s], &mut out);
                }
            }
        } else if let Some(dst) = destination {
            if let Some(n) = self.node_by_id(&dst) {
                for c in self.channels_of(n) {
                    let s = self.side_of(c, n).unwrap_or(0);
                    self.halfchan_json(c, &[1 - s], &mut out);
                }
            }
        } else {
            for c in 0..self.channels.len() {
                if self.gossip_visible(c) {
                    self.halfchan_json(c, &[0, 1], &mut out);
                }
            }
        }
        Ok(json!({"channels": out}))
    }

    /// Gossip-visible channels of node `n`, in scid order.
    fn channels_of(&self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.channels.len())
            .filter(|&c| self.channels[c].nodes.contains(&n) && self.gossip_visible(c))
            .collect();
        v.sort_by_key(|&c| scid_key(&self.channels[c].scid));
        v
    }

    pub fn listnodes(&mut self, p: &Value) -> RpcResult {
        let p = params::parse(p, &[("id", false)])?;
        let id = p.node_id("id")?;
        // gossmap knows nodes that have at least one gossip-visible channel.
        let mut known = vec![false; self.nodes.len()];
        known[self.us] = true;
        for c in 0..self.channels.len() {
            if self.gossip_visible(c) {
                for n in self.channels[c].nodes {
                    known[n] = true;
                }
            }
        }
        let nodes: Vec<Value> = (0..self.nodes.len())
            .filter(|&n| known[n])
            .filter(|&n| id.as_ref().is_none_or(|i| self.nodes[n].id == *i))
            .map(|n| {
                let node = &self.nodes[n];
                json!({
                    "nodeid": node.id,
                    "alias": node.alias,
                    "color": node.color,
                    "last_timestamp": node.last_timestamp,
                    "features": NODE_FEATURES,
                    "addresses": [],
                })
            })
            .collect();
        Ok(json!({"nodes": nodes}))
    }

    pub fn listfunds(&mut self, p: &Value) -> RpcResult {
        params::parse(p, &[("spent", false)])?;
        let chans: Vec<Value> = self
            .our_channels()
            .into_iter()
            .map(|c| {
                let ch = &self.channels[c];
                let s = self.side_of(c, self.us).unwrap_or(0);
                let peer = ch.nodes[1 - s];
                json!({
                    "peer_id": self.nodes[peer].id,
                    "connected": self.nodes[peer].online,
                    "state": ch.state,
                    "channel_id": ch.channel_id,
                    "short_channel_id": ch.scid,
                    "our_amount_msat": ch.balance_msat[s],
                    "amount_msat": ch.capacity_msat,
                    "funding_txid": ch.funding_txid,
                    "funding_output": ch.funding_outnum,
                })
            })
            .collect();
        Ok(json!({"outputs": [], "channels": chans}))
    }
}

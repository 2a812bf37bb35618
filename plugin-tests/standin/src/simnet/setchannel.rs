//! `setchannel`: our node's fees and HTLC limits on its channels (lightningd/peer_control.c
//! `json_setchannel`, `set_channel_config`, `param_channel_or_all`). What it sets is our
//! direction's channel_update: `updates.local` in listpeerchannels (and the top-level
//! `fee_base_msat`/`fee_proportional_millionths`), our entry in listchannels, and what our node
//! charges in `dev-forward`.

use super::forwards::OldFees;
use super::params::{self, LIGHTNINGD, RpcError};
use super::{Event, Network};
use serde_json::{Map, Value, json};

/// `channel_state_can_setchannel`.
fn can_setchannel(state: &str) -> bool {
    matches!(
        state,
        "CHANNELD_NORMAL"
            | "CHANNELD_AWAITING_SPLICE"
            | "CHANNELD_AWAITING_LOCKIN"
            | "DUALOPEND_AWAITING_LOCKIN"
    )
}

/// `param_number`: an unsigned int from a number or a string of digits.
fn param_number(p: &params::Params, name: &str) -> Result<Option<u32>, RpcError> {
    match p.get(name) {
        None => Ok(None),
        Some(v) => params::number_u64(v)
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| RpcError::badparam(name, "should be an integer", v)),
    }
}

struct Settings {
    base: Option<u64>,
    ppm: Option<u64>,
    htlc_min: Option<u64>,
    htlc_max: Option<u64>,
    delay: u64,
    ignore_fee_limits: Option<bool>,
}

impl Network {
    /// `param_channel_or_all`: `None` for "all".
    fn channels_param(&self, tok: &Value) -> Result<Option<Vec<usize>>, RpcError> {
        let us = self.us;
        let s = tok.as_str().unwrap_or("");
        if s == "all" {
            return Ok(None);
        }
        let ours = self.our_channels();
        let peer_of = |c: usize| self.channels[c].nodes[1 - self.side_of(c, us).unwrap_or(0)];
        if params::is_node_id(s)
            && let Some(n) = self.node_by_id(s)
            && ours.iter().any(|&c| peer_of(c) == n)
        {
            let chans: Vec<usize> = ours
                .iter()
                .copied()
                .filter(|&c| peer_of(c) == n && can_setchannel(&self.channels[c].state))
                .collect();
            if chans.is_empty() {
                return Err(RpcError::new(
                    LIGHTNINGD,
                    "Could not find any active channels of peer with that id",
                ));
            }
            return Ok(Some(chans));
        }
        let c = if params::is_hex_len(s, 64) {
            let cid = s.to_ascii_lowercase();
            ours.iter()
                .copied()
                .find(|&c| self.channels[c].channel_id == cid)
                .ok_or_else(|| RpcError::badparam("id", "Channel id not found", tok))?
        } else if let Some(scid) = params::normalize_scid(s) {
            // any_channel_by_scid(privacy_leak_ok): the real scid or our local alias.
            ours.iter()
                .copied()
                .find(|&c| {
                    let ch = &self.channels[c];
                    ch.scid == scid || ch.alias[self.side_of(c, us).unwrap_or(0)] == scid
                })
                .ok_or_else(|| RpcError::badparam("id", "Short channel id not found", tok))?
        } else {
            return Err(RpcError::badparam(
                "id",
                "should be a channel ID or short channel ID",
                tok,
            ));
        };
        if !can_setchannel(&self.channels[c].state) {
            return Err(RpcError::badparam(
                "id",
                &format!("Channel in state {}", self.channels[c].state),
                tok,
            ));
        }
        Ok(Some(vec![c]))
    }

    pub fn setchannel(&mut self, p: &Value) -> Result<(Value, Vec<Event>), RpcError> {
        let p = params::parse(
            p,
            &[
                ("id", true),
                ("feebase", false),
                ("feeppm", false),
                ("htlcmin", false),
                ("htlcmax", false),
                ("enforcedelay", false),
                ("ignorefeelimits", false),
            ],
        )?;
        let chans = self.channels_param(p.get("id").expect("required"))?;
        let base = match p.msat("feebase")? {
            Some(b) if b > u64::from(u32::MAX) => {
                return Err(RpcError::badparam(
                    "feebase",
                    "exceeds u32 max",
                    p.get("feebase").expect("given"),
                ));
            }
            b => b,
        };
        let ppm = param_number(&p, "feeppm")?.map(u64::from);
        let htlc_min = p.msat("htlcmin")?;
        let htlc_max = p.msat("htlcmax")?;
        let delay = u64::from(param_number(&p, "enforcedelay")?.unwrap_or(600));
        let ignore_fee_limits = p.bool("ignorefeelimits")?;
        if let (Some(min), Some(max)) = (htlc_min, htlc_max)
            && max < min
        {
            return Err(RpcError::new(
                LIGHTNINGD,
                "htlcmax cannot be less than htlcmin",
            ));
        }
        let chans = chans.unwrap_or_else(|| {
            self.our_channels()
                .into_iter()
                .filter(|&c| can_setchannel(&self.channels[c].state))
                .collect()
        });
        let set = Settings {
            base,
            ppm,
            htlc_min,
            htlc_max,
            delay,
            ignore_fee_limits,
        };
        let out: Vec<Value> = chans
            .into_iter()
            .map(|c| self.set_channel_config(c, &set))
            .collect();
        Ok((json!({"channels": out}), vec![Event::Changed]))
    }

    fn set_channel_config(&mut self, c: usize, set: &Settings) -> Value {
        let now = self.now();
        let s = self.side_of(c, self.us).expect("ours");
        let peer = self.channels[c].nodes[1 - s];
        let ch = &mut self.channels[c];
        let pol = &ch.policy[s];
        // Only raising what the sender must meet starts a grace period for the old values.
        if set.base.is_some_and(|b| b > pol.fee_base_msat)
            || set.ppm.is_some_and(|x| x > pol.fee_proportional_millionths)
            || set.htlc_min.is_some_and(|m| m > pol.htlc_minimum_msat)
            || set.htlc_max.is_some_and(|m| m < pol.htlc_maximum_msat)
        {
            ch.old_fees = Some(OldFees {
                fee_base_msat: pol.fee_base_msat,
                fee_proportional_millionths: pol.fee_proportional_millionths,
                htlc_minimum_msat: pol.htlc_minimum_msat,
                htlc_maximum_msat: pol.htlc_maximum_msat,
                until: now + set.delay,
            });
        }
        // We can't send what the peer refuses (its htlc_minimum), nor more than the channel
        // can carry (capacity less the peer's reserve).
        let their_min = ch.policy[1 - s].htlc_minimum_msat;
        let max_possible = ch.capacity_msat - ch.reserve_msat[1 - s];
        let (mut warn_min, mut warn_max) = (false, false);
        let pol = &mut ch.policy[s];
        if let Some(b) = set.base {
            pol.fee_base_msat = b;
        }
        if let Some(x) = set.ppm {
            pol.fee_proportional_millionths = x;
        }
        if let Some(m) = set.htlc_min {
            warn_min = m < their_min;
            pol.htlc_minimum_msat = m.max(their_min);
        }
        if let Some(m) = set.htlc_max {
            warn_max = m > max_possible;
            pol.htlc_maximum_msat = m.min(max_possible);
        }
        pol.last_update = now;
        ch.update_set[s] = true;
        if let Some(i) = set.ignore_fee_limits {
            ch.ignore_fee_limits = i;
        }
        let pol = &ch.policy[s];
        let mut o = Map::new();
        o.insert("peer_id".into(), json!(self.nodes[peer].id));
        o.insert("channel_id".into(), json!(ch.channel_id));
        o.insert("short_channel_id".into(), json!(ch.scid));
        o.insert("fee_base_msat".into(), json!(pol.fee_base_msat));
        o.insert(
            "fee_proportional_millionths".into(),
            json!(pol.fee_proportional_millionths),
        );
        o.insert("minimum_htlc_out_msat".into(), json!(pol.htlc_minimum_msat));
        if warn_min {
            o.insert(
                "warning_htlcmin_too_low".into(),
                json!("Set minimum_htlc_out_msat to minimum allowed by peer"),
            );
        }
        o.insert("maximum_htlc_out_msat".into(), json!(pol.htlc_maximum_msat));
        o.insert("ignore_fee_limits".into(), json!(ch.ignore_fee_limits));
        if warn_max {
            o.insert(
                "warning_htlcmax_too_high".into(),
                json!("Set maximum_htlc_out_msat to maximum possible in channel"),
            );
        }
        Value::Object(o)
    }
}

//! Per-channel and per-peer settings for automatic rebalancing (exclude, own target), kept in
//! lightningd's datastore under `cln-rebalance/settings` so they survive restarts, and
//! `rebalance-settings [id] [exclude] [target] [clear]` to list, set and clear them.

use super::rebalance::Rebalancer;
use crate::commands::channels::is_node_id;
use crate::core::graph::Scid;
use crate::core::plan::{ChannelSettings, Settings};
use crate::error::{self, RpcFailure};
use crate::lightningd::Lightningd;
use log::warn;
use serde_json::{Map, Value, json};

pub const SETTINGS_KEY: [&str; 2] = ["cln-rebalance", "settings"];

/// `rebalance-settings` as asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsParams {
    /// A short_channel_id or a peer's node id.
    pub id: Option<String>,
    pub exclude: Option<bool>,
    pub target_percent: Option<u8>,
    pub clear: bool,
}

fn to_json(s: &Settings) -> Value {
    let one = |c: &ChannelSettings| {
        let mut m = Map::new();
        if let Some(e) = c.exclude {
            m.insert("exclude".into(), json!(e));
        }
        if let Some(t) = c.target_percent {
            m.insert("target".into(), json!(t));
        }
        Value::Object(m)
    };
    let mut chans: Vec<_> = s.channels.iter().collect();
    chans.sort_by_key(|x| *x.0);
    let mut peers: Vec<_> = s.peers.iter().collect();
    peers.sort_by_key(|x| x.0.clone());
    json!({
        "channels": chans.into_iter().map(|(k, v)| (k.to_string(), one(v))).collect::<Map<_, _>>(),
        "peers": peers.into_iter().map(|(k, v)| (k.clone(), one(v))).collect::<Map<_, _>>(),
    })
}

/// Reads what [`to_json`] wrote; an entry that does not parse is left out, with the reason.
pub fn settings_from_json(v: &Value) -> Result<Settings, String> {
    let one = |v: &Value| -> Result<ChannelSettings, String> {
        let exclude = match v.get("exclude") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => return Err(format!("exclude {other} is not true or false")),
        };
        let target_percent = match v.get("target") {
            None => None,
            Some(t) => Some(
                t.as_u64()
                    .filter(|t| *t <= 100)
                    .ok_or_else(|| format!("target {t} is not 0..100"))? as u8,
            ),
        };
        Ok(ChannelSettings {
            exclude,
            target_percent,
        })
    };
    let mut s = Settings::default();
    for (k, c) in v["channels"].as_object().into_iter().flatten() {
        let scid: Scid = k.parse()?;
        s.channels.insert(scid, one(c)?);
    }
    for (k, c) in v["peers"].as_object().into_iter().flatten() {
        if !is_node_id(k) {
            return Err(format!("{k} is not a node id"));
        }
        s.peers.insert(k.to_ascii_lowercase(), one(c)?);
    }
    Ok(s)
}

impl<N: Lightningd> Rebalancer<N> {
    /// The settings saved with `rebalance-settings` (empty if none or unreadable).
    pub async fn stored_settings(&self) -> Settings {
        let entries = match self.node.listdatastore(&SETTINGS_KEY).await {
            Ok(e) => e,
            Err(_) => return Settings::default(),
        };
        let Some(text) = entries
            .into_iter()
            .find(|e| e.key == SETTINGS_KEY)
            .and_then(|e| e.string)
        else {
            return Settings::default();
        };
        match serde_json::from_str::<Value>(&text)
            .map_err(|e| e.to_string())
            .and_then(|v| settings_from_json(&v))
        {
            Ok(s) => s,
            Err(why) => {
                warn!("ignoring the saved settings at cln-rebalance/settings: {why}");
                Settings::default()
            }
        }
    }

    /// `rebalance-settings`: no id lists them; an id with `exclude`/`target` sets, with
    /// `clear` removes what was set for it.
    pub async fn rebalance_settings(&self, p: SettingsParams) -> Result<Value, RpcFailure> {
        let mut stored = self.stored_settings().await;
        if let Some(id) = &p.id {
            let change = |c: &mut ChannelSettings| {
                if p.exclude.is_some() {
                    c.exclude = p.exclude;
                }
                if p.target_percent.is_some() {
                    c.target_percent = p.target_percent;
                }
            };
            if is_node_id(id) {
                let id = id.to_ascii_lowercase();
                if p.clear {
                    stored.peers.remove(&id);
                } else {
                    change(stored.peers.entry(id).or_default());
                }
            } else {
                let scid: Scid = id.parse().map_err(|e| RpcFailure::param("id", e))?;
                if p.clear {
                    stored.channels.remove(&scid);
                } else {
                    change(stored.channels.entry(scid).or_default());
                }
            }
            let text = to_json(&stored).to_string();
            self.node
                .datastore_string(&SETTINGS_KEY, &text, "create-or-replace")
                .await
                .map_err(|e| error::from_lightningd("datastore", &e))?;
        }
        let effective = self.settings().await;
        Ok(json!({
            "saved": to_json(&stored),
            "in_force": to_json(&effective),
            "message": "in_force is the config file's rebalance-exclude / rebalance-channel-target with the saved settings over them",
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_bad_ones_are_refused() {
        let mut s = Settings::default();
        s.channels.insert(
            "1x2x3".parse().unwrap(),
            ChannelSettings {
                exclude: Some(true),
                target_percent: None,
            },
        );
        s.peers.insert(
            format!("02{}", "ab".repeat(32)),
            ChannelSettings {
                exclude: None,
                target_percent: Some(70),
            },
        );
        let v = to_json(&s);
        assert_eq!(v["channels"]["1x2x3"]["exclude"], true);
        assert_eq!(settings_from_json(&v).unwrap(), s);
        assert!(settings_from_json(&json!({"channels": {"nope": {}}})).is_err());
        assert!(settings_from_json(&json!({"peers": {"02ab": {}}})).is_err());
        assert!(settings_from_json(&json!({"channels": {"1x1x1": {"target": 101}}})).is_err());
    }
}

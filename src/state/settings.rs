//! Per-channel and per-peer settings for automatic rebalancing (exclude, own target) kept in
//! lightningd's datastore under `cln-rebalance/settings`, so they survive restarts; and the
//! settings in force: the config file's with the saved ones over them.

use crate::channels::is_node_id;
use crate::core::graph::Scid;
use crate::core::plan::{ChannelSettings, Settings};
use crate::lightningd::Lightningd;
use cln_rpc::RpcError;
use log::warn;
use serde_json::{Map, Value, json};

pub const SETTINGS_KEY: [&str; 2] = ["cln-rebalance", "settings"];

pub fn to_json(s: &Settings) -> Value {
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

/// The settings saved with `rebalance-settings` (empty if none or unreadable).
pub async fn load<N: Lightningd>(node: &N) -> Settings {
    let entries = match node.listdatastore(&SETTINGS_KEY).await {
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

/// Saves `s` as the settings set with `rebalance-settings`.
pub async fn save<N: Lightningd>(node: &N, s: &Settings) -> Result<(), RpcError> {
    let text = to_json(s).to_string();
    node.datastore_string(&SETTINGS_KEY, &text, "create-or-replace")
        .await
}

/// The settings in force: `configured` (the config file's) with `saved` over them.
pub fn in_force(configured: &Settings, saved: Settings) -> Settings {
    let mut s = configured.clone();
    for (k, v) in saved.channels {
        merge(s.channels.entry(k).or_default(), v);
    }
    for (k, v) in saved.peers {
        merge(s.peers.entry(k).or_default(), v);
    }
    s
}

fn merge(into: &mut ChannelSettings, from: ChannelSettings) {
    if from.exclude.is_some() {
        into.exclude = from.exclude;
    }
    if from.target_percent.is_some() {
        into.target_percent = from.target_percent;
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

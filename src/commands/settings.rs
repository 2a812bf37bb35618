//! `rebalance-settings [id] [exclude] [target] [clear]`: list, set and clear the per-channel
//! and per-peer settings for automatic rebalancing kept in the datastore (`state::settings`).

use crate::channels::is_node_id;
use crate::core::graph::Scid;
use crate::core::plan::ChannelSettings;
use crate::error::{self, RpcFailure};
use crate::lightningd::Lightningd;
use crate::params::SettingsParams;
use crate::state::{State, settings};
use serde_json::{Value, json};

impl<N: Lightningd> State<N> {
    /// `rebalance-settings`: no id lists them; an id with `exclude`/`target` sets, with
    /// `clear` removes what was set for it.
    pub async fn rebalance_settings(&self, p: SettingsParams) -> Result<Value, RpcFailure> {
        let mut stored = settings::load(&self.node).await;
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
            settings::save(&self.node, &stored)
                .await
                .map_err(|e| error::from_lightningd("datastore", &e))?;
        }
        let effective = self.settings().await;
        Ok(json!({
            "saved": settings::to_json(&stored),
            "in_force": settings::to_json(&effective),
            "message": "in_force is the config file's rebalance-exclude / rebalance-channel-target with the saved settings over them",
        }))
    }
}

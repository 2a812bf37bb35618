//! `balances`: how each channel's funds are split, with the peers' aliases.

use super::channels::balances_view;
use super::rebalance::Rebalancer;
use crate::error::{self, RpcFailure};
use crate::lightningd::Lightningd;
use crate::params::BalancesParams;
use serde_json::Value;
use std::collections::HashMap;

impl<N: Lightningd> Rebalancer<N> {
    /// `balances`: every channel listpeerchannels knows, with the peers' aliases.
    pub async fn balances(&self, p: BalancesParams) -> Result<Value, RpcFailure> {
        let chans = self
            .node
            .listpeerchannels()
            .await
            .map_err(|e| error::from_lightningd("listpeerchannels", &e))?;
        if let Some(id) = &p.id
            && !chans
                .iter()
                .any(|c| &c.peer_id == id || c.short_channel_id.as_deref() == Some(id.as_str()))
        {
            return Err(RpcFailure::param(
                "id",
                format!("no channel with peer or short_channel_id {id}"),
            ));
        }
        // One small listnodes per peer, not the whole network's. Aliases are a nicety: a
        // failing listnodes must not fail balances.
        let mut aliases: HashMap<String, String> = HashMap::new();
        for c in &chans {
            if aliases.contains_key(&c.peer_id) {
                continue;
            }
            let alias = match self.node.listnodes(&c.peer_id).await {
                Ok(nodes) => nodes.into_iter().find_map(|n| n.alias).unwrap_or_default(),
                Err(_) => String::new(),
            };
            aliases.insert(c.peer_id.clone(), alias);
        }
        Ok(balances_view(&chans, &aliases, p.id.as_deref()))
    }
}

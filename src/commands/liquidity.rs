//! `rebalance-liquidity [short_channel_id] [reset]`: what the plugin believes about channels'
//! liquidity (why a route was chosen), and a way to make it forget.

use crate::core::liquidity::ChanDir;
use crate::error::RpcFailure;
use crate::lightningd::Lightningd;
use crate::params::LiquidityParams;
use crate::state::State;
use serde_json::{Value, json};

impl<N: Lightningd> State<N> {
    pub async fn liquidity_report(&self, p: LiquidityParams) -> Result<Value, RpcFailure> {
        if p.reset {
            let forgotten = self.reset_liquidity(p.short_channel_id).await;
            let what = match p.short_channel_id {
                Some(s) => format!("channel {s}"),
                None => "every channel and node".to_string(),
            };
            return Ok(json!({
                "reset": forgotten,
                "message": format!("forgot what was learned about {what} ({forgotten} entries)"),
            }));
        }
        // What lightningd's own payments learned since the last read shows too.
        self.read_xpay_layer().await;
        let graph = self.graph().await?;
        let now = self.now_secs();
        let cfg = self.config.model;
        let model = self.liquidity();
        let learned = model.entries();
        let mut dirs: Vec<ChanDir> = match p.short_channel_id {
            Some(s) => vec![ChanDir::new(s, 0), ChanDir::new(s, 1)],
            None => learned.iter().map(|e| e.0).collect(),
        };
        dirs.dedup();
        let mut channels = Vec::with_capacity(dirs.len());
        for cd in dirs {
            let edge = graph.edge_by_scid(cd.short_channel_id, cd.direction);
            let stored = learned.iter().find(|e| e.0 == cd);
            // A channel not in the public graph (a private one of ours) shows what was learned.
            let capacity = edge.map(|e| graph.edge_capacity_msat(e));
            if edge.is_none() && stored.is_none() {
                continue;
            }
            let mut v = json!({
                "short_channel_id": cd.short_channel_id.to_string(),
                "direction": cd.direction,
            });
            if let Some(e) = edge {
                let e = graph.edge(e);
                v["source"] = json!(graph.node_id(e.source));
                v["destination"] = json!(graph.node_id(e.destination));
            }
            if let Some(cap) = capacity {
                let (b, weight) = model.bounds(cd, cap, now, cfg.half_life_secs);
                v["capacity_msat"] = json!(cap);
                v["min_msat"] = json!(b.min_msat);
                v["max_msat"] = json!(b.max_msat);
                v["weight"] = json!((weight * 1000.0).round() / 1000.0);
                let p = |share: u64| {
                    let amt = cap / 100 * share;
                    (model.probability(cd, amt, cap, now, &cfg) * 1000.0).round() / 1000.0
                };
                v["probability"] = json!({"1%": p(1), "10%": p(10), "50%": p(50)});
            }
            match stored {
                Some(&(_, min, max, updated, failed_at)) => {
                    v["learned_min_msat"] = json!(min);
                    if let Some(m) = max {
                        v["learned_max_msat"] = json!(m);
                    }
                    if updated > 0 {
                        v["learned_at"] = json!(updated);
                        v["learned_secs_ago"] = json!(now.saturating_sub(updated));
                    }
                    if failed_at > 0 {
                        v["failed_at"] = json!(failed_at);
                    }
                }
                None => v["learned"] = json!(false),
            }
            channels.push(v);
        }
        let nodes: Vec<Value> = model
            .failed_nodes()
            .into_iter()
            .map(|(id, t)| {
                json!({"id": id, "failed_at": t,
                       "factor": (model.node_factor(&id, now, cfg.half_life_secs) * 1000.0).round() / 1000.0})
            })
            .collect();
        let (n_chans, n_nodes) = model.len();
        Ok(json!({
            "routing": self.config.routing.name(),
            "prior": format!("{:?}", cfg.prior).to_lowercase(),
            "half_life_secs": cfg.half_life_secs,
            "depleted_share": cfg.depleted(),
            "learned_channel_directions": n_chans,
            "learned_nodes": n_nodes,
            "model_bytes": model.heap_bytes(),
            "channels": channels,
            "failed_nodes": nodes,
            "background_probing": {
                "probes_per_hour": self.config.probe_per_hour,
                "max_locked_msat": self.config.probe_max_locked_msat,
                "probes_last_hour": self.background.last_hour(now),
                "probes_since_start": self.background.total(),
            },
        }))
    }
}

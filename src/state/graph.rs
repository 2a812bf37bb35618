//! The cached channel graph: built from `listchannels` when missing, stale or too old, one
//! refresh at a time, shared by every call until the next.

use crate::core::graph::{Graph, GraphBuilder};
use crate::error::{self, RpcFailure};
use crate::lightningd::Lightningd;
use log::info;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Cached {
    graph: Arc<Graph>,
    built_ms: u64,
    stale: bool,
}

/// The graph every rebalance routes over.
#[derive(Default)]
pub struct GraphCache {
    cache: tokio::sync::Mutex<Option<Cached>>,
}

impl GraphCache {
    /// The cached graph, rebuilt from `listchannels` when missing, stale or older than
    /// `max_age`. Concurrent callers wait for one refresh and share its result.
    pub async fn get<N: Lightningd>(
        &self,
        node: &N,
        now_ms: impl Fn() -> u64,
        max_age: Duration,
    ) -> Result<Arc<Graph>, RpcFailure> {
        let mut cache = self.cache.lock().await;
        let max_age_ms = max_age.as_millis() as u64;
        if let Some(c) = cache.as_ref()
            && !c.stale
            && now_ms().saturating_sub(c.built_ms) < max_age_ms
        {
            return Ok(c.graph.clone());
        }
        // Drop the old graph before building the new one: a refresh never holds two.
        *cache = None;
        let started = Instant::now();
        let bytes = node
            .listchannels_json()
            .await
            .map_err(|e| error::from_lightningd("listchannels", &e))?;
        let fetched = started.elapsed();
        let graph = tokio::task::spawn_blocking(move || {
            // The JSON goes before the layout is built: the two never sit in memory together.
            let parsed = GraphBuilder::from_listchannels_json(&bytes);
            drop(bytes);
            crate::memory::release_free_memory();
            parsed.map(GraphBuilder::build)
        })
        .await
        .map_err(|e| RpcFailure::new(error::PLUGIN_ERROR, format!("graph build panicked: {e}")))?
        .map_err(|e| RpcFailure::new(error::PLUGIN_ERROR, e.to_string()))?;
        info!(
            "graph refreshed: {} nodes, {} channel directions (listchannels {} ms, build {} ms)",
            graph.node_count(),
            graph.edge_count(),
            fetched.as_millis(),
            (started.elapsed() - fetched).as_millis()
        );
        let graph = Arc::new(graph);
        *cache = Some(Cached {
            graph: graph.clone(),
            built_ms: now_ms(),
            stale: false,
        });
        Ok(graph)
    }

    /// How long ago the cached graph was read (`None`: no graph yet).
    pub async fn age_ms(&self, now_ms: u64) -> Option<u64> {
        let cache = self.cache.lock().await;
        cache.as_ref().map(|c| now_ms.saturating_sub(c.built_ms))
    }

    /// Marks the cached graph out of date (a node told us its policy changed).
    pub async fn mark_stale(&self) {
        if let Some(c) = self.cache.lock().await.as_mut() {
            c.stale = true;
        }
    }
}

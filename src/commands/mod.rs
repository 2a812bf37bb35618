//! What an operator calls, one module each. They orchestrate: read our channels and the graph,
//! ask the core for routes, talk to lightningd through the [`crate::lightningd::Lightningd`] trait.

pub mod auto; // rebalanceall, rebalancestop, the schedule: the job runner
pub mod balances; // balances: how each channel's funds are split
pub mod channels; // our channels: balances view, resolving outgoing/incoming
pub mod history; // the history of rebalances in the datastore; reconciling after a restart
pub mod liquidity; // rebalance-liquidity: what the model believes, and reset
pub mod rebalance; // quote, invoice, attempt, learn, retry, clean up
pub mod report; // rebalancereport: totals, per channel, budget, paid back
pub mod settings; // rebalance-settings: per-channel exclude / target, in the datastore

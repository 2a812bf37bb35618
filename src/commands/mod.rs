//! What an operator calls, one module each. They orchestrate: read our channels and the graph,
//! ask the core for routes, talk to lightningd through the [`crate::lightningd::Lightningd`] trait.

pub mod balances; // balances: how each channel's funds are split
pub mod channels; // our channels: balances view, resolving outgoing/incoming
pub mod liquidity; // rebalance-liquidity: what the model believes, and reset
pub mod rebalance; // quote, invoice, attempt, learn, retry, clean up

//! What an operator calls, one module each (besides `rebalance`, whose algorithm is
//! `crate::rebalance`). Each is a client of the plugin's state (`crate::state::State`) and sees
//! lightningd only through the `Lightningd` trait.

pub mod auto; // rebalanceall, rebalancestop, the schedule: the job runner
pub mod balances; // balances: how each channel's funds are split
pub mod liquidity; // rebalance-liquidity: what the model believes, and reset
pub mod report; // rebalancereport: totals, per channel, budget, paid back
pub mod settings; // rebalance-settings: per-channel exclude / target, in the datastore

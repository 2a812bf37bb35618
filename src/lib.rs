//! cln-rebalance: circular rebalancing for Core Lightning.
//!
//! Layers, one folder each; data flows one way, top to bottom, and no two files import each
//! other, directly or around a circle (`tests/layers.rs` holds the rules, `make lint` runs it):
//! - [`params`], [`error`]: the edge where requests come in and errors go out.
//! - [`commands`]: one module per thing an operator calls, each a client of [`state`].
//! - [`rebalance`]: the rebalance algorithm, a session over [`state`] in named steps.
//! - [`state`]: what the plugin keeps between calls (graph, model, in flight, history, job).
//! - [`core`]: pure (no I/O, time is a parameter): money, the graph, pathfinding, routes, the
//!   liquidity model, the planner.
//! - [`lightningd`]: the trait for lightningd's RPC surface, its types, the cln-rpc adapter.

pub mod channels; // our channels: resolving a parameter, usability, the planner's view
pub mod clock; // the time, from the system or a simulation
pub mod commands;
pub mod config; // the plugin's configuration from its options
pub mod core;
pub mod error; // error kinds -> JSON-RPC codes and messages
pub mod front; // in front of cln-plugin: `check`, request ids, notifications to the client
pub mod lightningd;
pub mod memory; // freed memory back to the system after a graph refresh
pub mod options; // the plugin's options, registered and read into the config
pub mod params; // request params (positional or keyword) -> typed requests
pub mod progress; // what a long command tells the person waiting while it works
pub mod rebalance;
pub mod state;

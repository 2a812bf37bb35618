//! cln-rebalance: circular rebalancing for Core Lightning.
//!
//! Layers, one folder each; data flows one way, top to bottom:
//! - [`params`], [`error`]: the edge where requests come in and errors go out.
//! - [`commands`]: one module per thing an operator calls; they orchestrate and see lightningd
//!   only through [`lightningd::Lightningd`].
//! - [`core`]: pure (no I/O, time is a parameter): money, the graph, pathfinding, routes.
//! - [`lightningd`]: the trait for lightningd's RPC surface, its types, the cln-rpc adapter.

pub mod check; // lightningd's `check` for our commands, in front of cln-plugin
pub mod clock; // the time, from the system or a simulation
pub mod commands;
pub mod core;
pub mod error; // error kinds -> JSON-RPC codes and messages
pub mod lightningd;
pub mod memory; // freed memory back to the system after a graph refresh
pub mod params; // request params (positional or keyword) -> typed requests

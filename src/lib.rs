//! cln-rebalance: circular rebalancing for Core Lightning.
//!
//! The pure core (no I/O): [`amount`], [`graph`], [`pathfind`], [`route`], [`channels`].
//! The edge: [`params`] (request parsing), [`node`] (the lightningd trait and its cln-rpc
//! implementation), [`error`] (JSON-RPC errors). [`rebalance`] is the algorithm, which sees
//! lightningd only through [`node::Lightningd`].

pub mod amount; // msat arithmetic (checked) and CLN amount strings
pub mod channels; // our channels: balances view, resolving outgoing/incoming
pub mod error; // error kinds -> JSON-RPC codes and messages
pub mod graph; // the public graph from listchannels, compact and indexed
pub mod node; // the lightningd trait; the cln-rpc implementation
pub mod params; // request params (positional or keyword) -> typed requests
pub mod pathfind; // cheapest-path search over the graph
pub mod rebalance; // quote, invoice, attempt, learn, retry, clean up
pub mod route; // a path -> sendpay hops, amounts and delays computed backward

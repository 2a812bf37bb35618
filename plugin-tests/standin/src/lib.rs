//! cln-standin: a stand-in for Core Lightning's `lightningd`, for running a CLN plugin end to end
//! against a simulated network (tests, CI, `make demo`).
//!
//! - [`simnet`]   the network model: nodes, channels, balances, invoices, payments (pure, no I/O)
//! - [`sha256`]   the hash behind payment hashes and secrets (tiny, std only)
//! - [`prng`]     a seeded splitmix64 for hidden balances and preimages
//! - [`plugin`]   the plugin side of lightningd: start, getmanifest/init, requests, hooks, logs
//! - [`rpc`]      the JSON-RPC unix socket and method dispatch (lightningd, dev- and plugin methods)
//! - [`jsonrpc`]  JSON-RPC framing shared by both (streamed objects, `\n\n` terminated)
//! - [`cli`]      rendering like `lightning-cli` (JSON and `-H` human mode), for the demo
//! - [`daemon`]   the whole stand-in put together (used by the `lightningd-standin` binary)

pub mod cli;
pub mod daemon;
pub mod jsonrpc;
pub mod plugin;
pub mod prng;
pub mod rpc;
pub mod sha256;
pub mod simnet;

//! The public channel graph: decoded from `listchannels` JSON bytes into compact, indexed arrays.
//!
//! Built once and shared (read-only) by every search. Nothing here does I/O: the caller hands in
//! the raw bytes of a `listchannels` result. The decode is deliberately lean (node ids stay hex
//! strings until interned, unknown fields are skipped) because a mainnet graph has ~100k channel
//! directions and cln-rpc's typed model spends most of its time validating public keys.

mod build; // edges collected, then laid out
mod decode; // listchannels JSON -> a builder
mod fxhash; // the maps' hasher
mod ids; // scids, indices, policies, edges
mod layout; // the graph the search reads
#[cfg(test)]
mod tests;

pub use build::GraphBuilder;
pub use decode::GraphError;
pub use fxhash::{FxBuildHasher, FxHasher};
#[cfg(test)]
pub(crate) use ids::free_policy;
pub use ids::{Edge, EdgeIdx, NodeIdx, Policy, Scid};
pub use layout::Graph;

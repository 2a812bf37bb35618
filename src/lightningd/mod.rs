//! Where the plugin meets lightningd: the RPC surface as one trait ([`api::Lightningd`]), the
//! types it answers with, the cln-rpc adapter, and what the plugin keeps in the datastore.

pub mod api; // the trait: every call the plugin makes
pub mod clnrpc; // the trait over lightningd's RPC socket
pub mod failures; // sendpay_failure notifications: the failure message a late waitsendpay lacks
pub mod store; // datastore keys and encodings
pub mod types; // lean answers with CLN's field names; payment failure details
pub mod version; // the lightningd releases the plugin runs on

pub use api::{Lightningd, Part, part_params, sendpay_route_json};
pub use clnrpc::ClnNode;
pub use failures::SendpayFailures;
pub use types::*;

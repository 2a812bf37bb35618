//! The two-way network of the stale-beliefs tests: us -> a (ours), b -> us (the peer's), and
//! two ways from a to b, through `x` and through `y`, on channels of 1.5M sat (x and y hold
//! 1.2M toward b); and a rebalancer on a clock that stands still, taught that a -> x and
//! a -> y each failed at an amount just now.

use super::{SimNode, cheap_channel, cheap_policy, hand_made, hooked, named_nodes};
use cln_rebalance::clock::ManualClock;
use cln_rebalance::config::Config;
use cln_rebalance::core::graph::Scid;
use cln_rebalance::core::liquidity::ChanDir;
use cln_rebalance::state::State;
use cln_standin::simnet::Network;
use std::sync::Arc;

pub const OUT: &str = "800001x1x0";
pub const INC: &str = "800002x1x0";
pub const A_X: &str = "700001x1x0";
pub const A_Y: &str = "700002x1x0";
pub const SAT: u64 = 1000;
pub const CAPACITY: u64 = 1_500_000 * SAT;

/// The network, a holding `a_sat` toward x and toward y.
pub fn network(a_sat: u64) -> Network {
    let names = ["us", "a", "b", "x", "y"];
    let channels = vec![
        cheap_channel(OUT, "us", "a", 10_000_000, 9_000_000),
        cheap_channel(INC, "us", "b", 10_000_000, 1_000_000),
        cheap_channel(A_X, "a", "x", 1_500_000, a_sat),
        cheap_channel("700001x1x1", "x", "b", 1_500_000, 1_200_000),
        cheap_channel(A_Y, "a", "y", 1_500_000, a_sat),
        cheap_channel("700002x1x1", "y", "b", 1_500_000, 1_200_000),
    ];
    hand_made(named_nodes(&names), cheap_policy(), channels)
}

/// a -> x and a -> y (direction 0: a's id sorts before x's and y's).
pub fn a_out() -> [ChanDir; 2] {
    [A_X, A_Y].map(|scid| ChanDir::new(scid.parse::<Scid>().unwrap(), 0))
}

/// A rebalancer over [`network`]`(a_sat)` whose clock stands still, taught that a -> x and
/// a -> y each failed at `failed_sat` just now.
pub fn taught(a_sat: u64, failed_sat: u64, config: Config) -> (Arc<State<SimNode>>, SimNode) {
    let node = SimNode::new(network(a_sat));
    let clock = Arc::new(ManualClock::new(1_770_000_000_000));
    let r = hooked(node.clone(), config, clock);
    let now = r.now_secs();
    let half_life = r.config.model.half_life_secs;
    let mut m = r.model.lock();
    for cd in a_out() {
        m.failed(cd, failed_sat * SAT, CAPACITY, now, half_life);
    }
    drop(m);
    (r, node)
}

//! The plugin's configuration, from its options: a rebalance's defaults, how routes are
//! chosen, the liquidity model's settings, and automatic rebalancing's.

use crate::core::budget::Budget;
use crate::core::liquidity::ModelConfig;
use crate::core::plan::{PlanConfig, Settings};
use std::time::Duration;

/// How routes are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// The cheapest route by fee; failures rule out channels for the rest of the call.
    FeeOnly,
    /// Fee + a risk cost from the liquidity model's success probability.
    Probabilistic,
}

impl Routing {
    /// The option's value for it (`rebalance-routing`).
    pub fn name(self) -> &'static str {
        match self {
            Routing::FeeOnly => "fee",
            Routing::Probabilistic => "probabilistic",
        }
    }
}

impl std::str::FromStr for Routing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fee" => Ok(Routing::FeeOnly),
            "probabilistic" => Ok(Routing::Probabilistic),
            other => Err(format!("unknown routing {other:?} (probabilistic or fee)")),
        }
    }
}

/// The risk, in bits, each hop adds to the sets a probe call plans (not to their estimate):
/// a probe's answer waits for every hop there and back, one probe at a time through our
/// channel, so a long route spends the call's seconds that more probes would use. On
/// bench-sim's seed 25 the calls that fell short ran out of their 60 s after 3-12 probes of
/// 7-10 hops each. Tuned on seeds 1-6
/// (found/true p10): 0 87.5%, 0.5 96.9%, 1 96.7%, 2 92.2%, 3 88.1%; the report seeds 11-16
/// 81.5% -> 98.4% at 1. Not for payments: on seeds 1 and 3-6 at 1M sat it cost fee p90
/// 1.73x -> 2.80x for no more successes (`benches/README.md`). Background probing, which
/// proves the routes the next move would take, plans as payments do.
pub const DEFAULT_PROBE_HOP_BITS: f64 = 1.0;

/// Defaults from the plugin's options.
#[derive(Debug, Clone)]
pub struct Config {
    pub maxfeeppm: u64,
    pub exemptfee_msat: u64,
    pub retry_for_secs: u64,
    /// Rebuild the graph from `listchannels` when it is older than this.
    pub graph_max_age: Duration,
    /// `min_final_cltv_expiry` we put on our invoice.
    pub final_cltv: u32,
    pub routing: Routing,
    /// Most parts of one rebalance out at once, replacements included (1: one route per attempt).
    pub max_parts: usize,
    /// What one `rebalance-probe` (or `amount_msat=max`) may spend: probes, and seconds.
    pub probe_max_probes: u32,
    pub probe_max_secs: u64,
    /// Background probing: probes per hour at most (0: off, the default), and the most msat
    /// one background probe may lock (they go one at a time).
    pub probe_per_hour: u32,
    pub probe_max_locked_msat: u64,
    /// `rebalance` probes the set it is about to pay when the model is not sure it moves.
    pub probe_first: bool,
    /// Bits of risk each hop adds to the sets a `rebalance-probe` call plans (not an option:
    /// [`DEFAULT_PROBE_HOP_BITS`], tuned on the simulation; tests of the search's other
    /// mechanics set 0).
    pub probe_hop_bits: f64,
    /// Least a part delivers when there are several: below it an HTLC is not worth its risk
    /// and its slot in the channels.
    pub min_part_msat: u64,
    /// Keep what was learned across rebalances (and in the datastore). Off: each rebalance
    /// starts from the prior (the simulation's "model without memory").
    pub liquidity_memory: bool,
    pub model: ModelConfig,
    /// Fold what lightningd's payments learned (askrene's `xpay` layer) into the model.
    pub askrene_read: bool,
    /// Publish what the model learns into askrene's `cln-rebalance` layer.
    pub askrene_publish: bool,
    /// Automatic rebalancing: planner, budgets, parallelism, schedule, settings.
    pub auto: AutoConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            maxfeeppm: 1000,
            exemptfee_msat: 5000,
            retry_for_secs: DEFAULT_RETRY_FOR_SECS,
            graph_max_age: Duration::from_secs(300),
            final_cltv: 18,
            routing: Routing::Probabilistic,
            max_parts: DEFAULT_MAX_PARTS,
            min_part_msat: DEFAULT_MIN_PART_MSAT,
            probe_max_probes: 20,
            probe_max_secs: 60,
            probe_per_hour: 0,
            probe_max_locked_msat: DEFAULT_PROBE_MAX_LOCKED_MSAT,
            probe_first: true,
            probe_hop_bits: DEFAULT_PROBE_HOP_BITS,
            liquidity_memory: true,
            model: ModelConfig::default(),
            askrene_read: true,
            askrene_publish: true,
            auto: AutoConfig::default(),
        }
    }
}

/// Seconds a rebalance keeps starting tries by default (`rebalance-retry-for`). 120, not the 60
/// of CLN's `pay` and of rebalance.py: a try of a million sat or more in parts over long
/// routes takes 10-30 s (probed first, then paid), so 60 s held two or three, and most tasks a
/// set could carry that were not paid gave up with time, not ways, run out. In bench-sim
/// (`benches/README.md`, tuning seeds 7-10, 17 and 18) 120 s paid 5M sat in 97.6% of the
/// tasks a set could carry against 95.7%, at a fee p90 over the flow oracle's set of 4.94x
/// against 6.96x, and at 1M sat 1.66x against 2.23x (more time for the cheaper look before
/// paying); a rebalance that cannot be paid says so after two minutes instead of one.
pub const DEFAULT_RETRY_FOR_SECS: u64 = 120;

/// Parts of one rebalance out at once by default, replacements included (see
/// `benches/README.md`, bench-sim: with replacements bound by it, 4 paid fewer tasks at 5M
/// sat than 8).
pub const DEFAULT_MAX_PARTS: usize = 8;
/// The smallest part, 20,000 sat.
pub const DEFAULT_MIN_PART_MSAT: u64 = 20_000_000;

/// The most one background probe locks by default, 5,000,000 sat: a probe holds its amount
/// for the seconds its HTLC takes to go round and fail back at us, one at a time, so this is
/// what forwards through our channels may find missing for those seconds. It is large enough
/// to probe the moves a job plans on most nodes whole (a probe smaller than the move proves
/// less of it) and small against the channels that have moves worth planning.
pub const DEFAULT_PROBE_MAX_LOCKED_MSAT: u64 = 5_000_000_000;

/// Moves in flight at once by default: two keep a job moving while one waits on a slow hop,
/// without piling HTLCs onto the same few routes.
pub const DEFAULT_PARALLEL: usize = 2;

/// How automatic rebalancing runs, from the options (a `rebalanceall` call may override the
/// plan's target, feeratio, minimum and the per-run budget).
#[derive(Debug, Clone)]
pub struct AutoConfig {
    pub plan: PlanConfig,
    pub budget: Budget,
    /// Moves in flight at once.
    pub parallel: usize,
    /// Seconds between scheduled runs; 0 = no schedule.
    pub interval_secs: u64,
    /// Settings from the config file (`rebalance-exclude`, `rebalance-channel-target`); the
    /// ones set with `rebalance-settings` (in the datastore) override them.
    pub settings: Settings,
    /// Size each move by what can move now (the model, probes where it is unsure) instead of
    /// trying the planned amount and halving on failure.
    pub sized_moves: bool,
}

impl Default for AutoConfig {
    fn default() -> Self {
        AutoConfig {
            plan: PlanConfig::default(),
            budget: Budget::default(),
            parallel: DEFAULT_PARALLEL,
            interval_secs: 0,
            settings: Settings::default(),
            // On: on the simulation sized moves close as much of the sinks' deficit as halving
            // (seeds 11-12: 100.3% / 82.8% of the informed job against 97.9% / 83.9%; 21-22
            // the same; tuning seeds 1-6: 97.7% / 96.7% against 97.8% / 96.1%) and fail
            // almost no move: 4 failed moves against halving's 63 over 24 nodes and two
            // budgets (benches/README.md).
            sized_moves: true,
        }
    }
}

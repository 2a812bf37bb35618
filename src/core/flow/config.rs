//! The solver's knobs: the plugin's defaults (tuned on the simulation's seeds 1-6), the
//! oracle's, and the suggested number and size of parts.

/// The solver's knobs. [`default_config`] was tuned on the simulation's seeds 1-6 (see
/// `benches/flow.rs` and `benches/README.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowConfig {
    /// Candidate rounds: for each `n`, the amount cut into `n` equal chunks routed one after
    /// the other on what the chunks before put on the edges (`n = 1`: the single route, always
    /// searched first whatever this says). More rounds: a richer subgraph, more searches.
    pub chunks: Vec<usize>,
    /// Breakpoints of each channel direction's piecewise-linear cost in the flow.
    pub segments: usize,
    /// The reference part amount the base fee is spread over in the flow, as a share of the
    /// whole amount: `amount / ref_parts`.
    pub ref_parts: u64,
    /// The exact re-balancing of amounts between parts stops at steps below
    /// `amount / 2^alloc_depth` (and never goes below 1 sat).
    pub alloc_depth: u32,
    /// Run the largest-first round (parts of the largest share a path still carries) even when
    /// a single route was found (it always runs when capacity stopped the single route): for
    /// the oracle, where capacities bind.
    pub always_largest_first: bool,
    /// Distinct paths the parts are chosen among: the flow's, by amount, then the searches';
    /// every assignment of up to `max_parts` parts to them is priced.
    pub combine_paths: usize,
    /// The grid (steps of the amount) first amounts are chosen on for each assignment.
    pub grid: usize,
    /// Of those assignments, how many (the best priced) get their amounts re-balanced.
    pub allocations: usize,
    /// What each part beyond the first costs on top of its fees and risk: `base + ppm x
    /// amount` (of the whole amount). A set of parts fails in ways the cost does not see (more
    /// nodes that may be offline, more HTLCs, the receiver's 70 s wait for all of them), so a
    /// split must be cheaper by this much to be chosen.
    pub part_penalty_base_msat: u64,
    pub part_penalty_ppm: u64,
    /// Weights on the risk tried in turn until a set within the fee cap is found: 1 is the
    /// model's price; 0 is fees only (within what the model says can be carried); above 1 the
    /// risk weighs more (at most [`MAX_RISK_WEIGHT`]).
    pub risk_weights: Vec<f64>,
    /// The fee leash: the risk may buy a likelier set only up to `max(cheapest x pct / 100,
    /// cheapest + ppm x amount)` of fee, `cheapest` the fee of the cheapest single route the
    /// cost says can carry the amount (risk not weighed); when no set is found within that,
    /// the whole fee cap as before. 0: no leash (the default: on the tuning seeds every leash
    /// tried cut the fee p90 and the first try with it, see `benches/README.md`).
    pub fee_leash_pct: u64,
    pub fee_leash_ppm: u64,
}

/// The defaults, chosen on `make bench-flow` with the tuning seeds 1-6 (60 tasks per seed at
/// 1M, 2M and 5M sat; the report seeds 11-16 are in `benches/README.md`) and on the brute-force
/// comparison of `tests.rs`:
/// - `chunks` [2, 4]: [2] alone halves the time (p50 1.4 against 3.0 ms, p99 8 against 20 ms at
///   1M sat) for the same plans on mainnet, where the penalty leaves few splits, but on the
///   small graphs it missed good splits (up to 20% over the brute-force optimum, against 0.4%
///   with [2, 4]); [2, 3] was no better than [2, 4].
/// - `part_penalty` 1000 msat + 50 ppm (half a bit at the default model's 2000 msat + 100 ppm
///   per bit): of the tasks where the solver's plan was not the single route, the plans that
///   got through in one round where the single route did not, and the reverse, summed over the
///   three amounts and both views: no penalty 10 / 23, a quarter bit 2 / 4, half a bit 2 / 1, a
///   bit 1 / 0, four bits 0 / 0 (splits only where one route cannot do it). With the bimodal
///   prior and no penalty 17 / 9: splitting pays where the prior's shape matches the world's.
/// - `fee_leash_pct` 0 (off): 150%, 200% and 300% of the cheapest route's fee (2026-12-04,
///   seeds 1 and 3-6, 100 tasks each at 1M, 2M and 5M sat) cut the fee p90 over the oracle's
///   set at 1M sat from 2.57x to 1.51x / 1.83x / 1.74x but the first try from 59.7% to 51.2%
///   / 56.0% / 53.9%, and lost 1-5 tasks of 153 at 5M sat (seeds 1 and 5): the dear routes
///   the risk buys are the ones that get through.
/// - `segments`, `combine_paths`, `grid`, `allocations`: the flow and the choice of parts take
///   well under a millisecond against the searches' milliseconds, and on the small graphs even
///   one segment, two paths and one allocation stayed within 1% of the optimum on all but one
///   case; the defaults leave room for larger subgraphs.
pub fn default_config() -> FlowConfig {
    FlowConfig {
        chunks: vec![2, 4],
        segments: 8,
        ref_parts: 2,
        alloc_depth: 10,
        always_largest_first: false,
        combine_paths: 4,
        grid: 16,
        allocations: 3,
        part_penalty_base_msat: 1000,
        part_penalty_ppm: 50,
        risk_weights: vec![1.0, 0.0],
        fee_leash_pct: 0,
        fee_leash_ppm: 0,
    }
}

/// The knobs for replacement parts (what a failed part left missing while the others are
/// held): no part penalty, since the set is already split and waiting, so what the penalty
/// stands for (more HTLCs, the receiver's wait for every part) is already paid. With the
/// penalty a replacement was one route for the whole missing amount, tried again and again
/// out of the same peer (one pair at 5M sat on the tuning seeds: 48 tasks in a row failed
/// with five or more replacements each, where the oracle's set had three parts); without it
/// the missing amount splits as the model prefers (see `benches/README.md`). Also every plan of a
/// rebalance once three of its sets have failed (`rebalance::route::plan_config`).
pub fn replacement_config() -> FlowConfig {
    FlowConfig {
        part_penalty_base_msat: 0,
        part_penalty_ppm: 0,
        ..default_config()
    }
}

/// The knobs for a rebalance's first plans while probes check each set before it is paid
/// (`rebalance-probe-first`, see [`crate::rebalance`]): the risk weighed at 0.3 of the model's
/// price (then in full, then fees only, as [`default_config`]) and no part penalty. The risk
/// buys certainty with fee; before paying, a probe buys it for nothing but time, so a cheaper,
/// less certain set is worth trying first. On the tuning seeds (1, 3-6 at 1M sat, 100 tasks
/// each; `benches/README.md`) weights 0.1-0.5 and penalties 0-1x were tried: 0.3 with no
/// penalty cut the fee p90 over the oracle's set from 2.46x to 1.54x for a first try as
/// often (94.5% against 93.5%) at 0.5 more HTLCs per success, probes counted. Made only
/// while the time left holds the cheap set's probes and its payment: without that gate it
/// cost 3.5 points of success at 5M sat on the report seeds; with it, none there, success
/// within a run's noise on seeds never run before (61-66 and 71-76; 5M sat on 61-66 the
/// worst, -3 points), and the fee p90 fell at every amount on every set of seeds.
pub fn cheap_first_config() -> FlowConfig {
    FlowConfig {
        part_penalty_base_msat: 0,
        part_penalty_ppm: 0,
        risk_weights: vec![0.3, 1.0, 0.0],
        ..default_config()
    }
}

/// The most a risk weight counts ([`FlowConfig::risk_weights`]); a weight above is taken as
/// this, one that is not a number as 1.
pub const MAX_RISK_WEIGHT: f64 = 4.0;

/// The risk weight of [`urgent_config`].
pub const URGENT_RISK_WEIGHT: f64 = 2.0;

/// `config` for a plan made when the time left holds no more than three tries (the rebalance's
/// `Session::urgent`): the risk weighed at [`URGENT_RISK_WEIGHT`] times the model's price, then
/// as `config` weighs it. Early on a failed try costs a try, and the model's price trades one
/// bit of risk against its fee; near the deadline a failed try costs the rebalance. On the
/// tuning seeds 7-10, 17 and 18 (`benches/README.md`) this paid 380 of 396 tasks at 1M sat
/// (372 before) and 200 of 206 at 5M sat (198 of 209), for about 3% more fee on the tasks paid
/// either way. Weighing double from the start paid no more for more fee; within two tries,
/// or for plans or replacements alone, paid fewer; a weight of 4 no more than 2.
pub fn urgent_config(config: &FlowConfig) -> FlowConfig {
    let mut risk_weights = vec![URGENT_RISK_WEIGHT];
    risk_weights.extend(
        config
            .risk_weights
            .iter()
            .copied()
            .filter(|&w| w < URGENT_RISK_WEIGHT),
    );
    FlowConfig {
        risk_weights,
        ..config.clone()
    }
}

/// `config` searched harder, as the oracle searches: smaller chunks (thirds, sixths and
/// eighths besides halves and quarters), the largest-first round, more paths combined and more
/// sets re-balanced. What a rebalance plans again with when `config` found no set (no path,
/// or paths that could not carry the amount in the parts allowed): where the only ways are
/// channels that each carry a fifth of it, halves and quarters find none (on tuning seed 17 at
/// 1M sat, 5 of 100 rebalances were refused so at once, with a set there; see
/// `benches/README.md`). Several times the effort, spent only then.
pub fn thorough(config: &FlowConfig) -> FlowConfig {
    FlowConfig {
        chunks: vec![2, 3, 4, 6, 8],
        always_largest_first: true,
        combine_paths: config.combine_paths.max(6),
        allocations: config.allocations.max(6),
        ..config.clone()
    }
}

/// The oracle's knobs ([`cheapest_set`](super::oracle::cheapest_set)): fees only, and more effort than the plugin can
/// spend on every rebalance (it runs offline), since with hard capacities cheap paths that
/// carry only a little are worth finding ([`thorough`]).
pub fn oracle_config() -> FlowConfig {
    thorough(&FlowConfig {
        part_penalty_base_msat: 0,
        part_penalty_ppm: 0,
        risk_weights: vec![0.0],
        fee_leash_pct: 0,
        fee_leash_ppm: 0,
        ..default_config()
    })
}

//! The plugin's options (lightningd's config file, `--rebalance-*`): declared, registered with
//! cln-plugin, and read into the [`Config`] every part of the plugin uses. An option out of range
//! is refused with a reason the plugin disables itself with.

use crate::config::{AutoConfig, Config, DEFAULT_RETRY_FOR_SECS, Routing};
use crate::core::budget::Budget;
use crate::core::liquidity::{ModelConfig, Prior};
use crate::core::plan::{ChannelSettings, PlanConfig, Settings};
use crate::params;
use cln_plugin::options::{
    ConfigOption, DefaultBooleanConfigOption, DefaultIntegerConfigOption,
    DefaultStringConfigOption, StringArrayConfigOption,
};
use cln_plugin::{Builder, ConfiguredPlugin};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

pub const OPT_MAXFEEPPM: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-maxfeeppm",
    1000,
    "Default fee cap of rebalance, in parts per million of the amount",
);
pub const OPT_EXEMPTFEE: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-exemptfee",
    5000,
    "Default fee in msat a rebalance may always pay, whatever maxfeeppm says",
);
pub const OPT_RETRY_FOR: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-retry-for",
    DEFAULT_RETRY_FOR_SECS as i64,
    "Default seconds a rebalance keeps starting tries",
);
pub const OPT_GRAPH_MAX_AGE: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-graph-refresh",
    300,
    "Seconds the plugin reuses its copy of the channel graph before reading listchannels again",
);

pub const OPT_ROUTING: DefaultStringConfigOption = ConfigOption::new_str_with_default(
    "rebalance-routing",
    "probabilistic",
    "How routes are chosen: probabilistic (fee + risk from what was learned of liquidity) or fee (cheapest fee only)",
);
pub const OPT_HALF_LIFE: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-liquidity-half-life",
    crate::core::liquidity::DEFAULT_HALF_LIFE_SECS as i64,
    "Seconds after which what was learned about a channel's liquidity counts half",
);
pub const OPT_PRIOR: DefaultStringConfigOption = ConfigOption::new_str_with_default(
    "rebalance-liquidity-prior",
    crate::core::liquidity::DEFAULT_MODEL.prior.name(),
    "Where liquidity is assumed to sit before anything is learned: bimodal (near the channel edges, as on mainnet) or uniform",
);

pub const OPT_TARGET: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-target",
    50,
    "Our share of each channel automatic rebalancing aims for, in percent",
);
pub const OPT_FEERATIO: DefaultStringConfigOption = ConfigOption::new_str_with_default(
    "rebalance-feeratio",
    "0.5",
    "An automatic rebalance pays at most this share of what we charge to forward the amount out through the incoming channel",
);
pub const OPT_MIN_AMOUNT: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-min-amount",
    100_000_000,
    "Smallest automatic move, in msat (channels closer to target than this count as balanced)",
);
pub const OPT_PARALLEL: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-parallel",
    2,
    "Automatic moves in flight at once (never two on one channel)",
);
pub const OPT_BUDGET: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-budget",
    0,
    "Fees one rebalanceall run may spend, in msat (0: no per-run limit)",
);
pub const OPT_DAILY_BUDGET: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-daily-budget",
    0,
    "Fees all rebalances may spend in any 24 hours, in msat (0: no limit)",
);
pub const OPT_AUTO_INTERVAL: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-auto-interval",
    0,
    "Seconds between automatic rebalanceall runs (0: off)",
);
pub const OPT_EXCLUDE: StringArrayConfigOption = ConfigOption::new_str_arr_no_default(
    "rebalance-exclude",
    "A short_channel_id or peer id automatic rebalancing leaves alone (may be given several times)",
);
pub const OPT_CHANNEL_TARGET: StringArrayConfigOption = ConfigOption::new_str_arr_no_default(
    "rebalance-channel-target",
    "ID:PERCENT: a short_channel_id's or peer's own target for automatic rebalancing (may be given several times)",
);

pub const OPT_MAX_PARTS: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-maxparts",
    crate::config::DEFAULT_MAX_PARTS as i64,
    "Most parts of one rebalance out at once, replacements included, so also in the set paid (1: one route at a time); parts are used when they are cheaper or likelier than one route",
);
pub const OPT_MIN_PART: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-min-part",
    crate::config::DEFAULT_MIN_PART_MSAT as i64,
    "Smallest part of a rebalance paid in several, in msat",
);
pub const OPT_PROBE_MAX: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-probe-max",
    20,
    "Most probes one rebalance-probe (or rebalance amount_msat=max) sends",
);
pub const OPT_PROBE_SECONDS: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-probe-seconds",
    60,
    "Most seconds one rebalance-probe (or rebalance amount_msat=max) probes for",
);
pub const OPT_PROBE_PER_HOUR: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-probe-per-hour",
    0,
    "Background probing: while no rebalance runs, probe the routes the next planned moves would take, and cheaper ways for them, at most this many probes an hour (0: off)",
);
pub const OPT_PROBE_MAX_LOCKED: DefaultIntegerConfigOption = ConfigOption::new_i64_with_default(
    "rebalance-probe-max-locked",
    crate::config::DEFAULT_PROBE_MAX_LOCKED_MSAT as i64,
    "Background probing: the most msat one probe locks (one probe at a time); a larger move is probed at less",
);
pub const OPT_PROBE_FIRST: DefaultBooleanConfigOption = ConfigOption::new_bool_with_default(
    "rebalance-probe-first",
    true,
    "rebalance probes the set of routes it is about to pay when the liquidity model is not sure it moves (a failed probe costs nothing and holds no part), and so may try cheaper, less certain routes first; false: pay at once",
);
pub const OPT_SIZED_MOVES: DefaultBooleanConfigOption = ConfigOption::new_bool_with_default(
    "rebalance-sized-moves",
    true,
    "rebalanceall sizes each move by what can move now (the liquidity model, and probes where it is unsure) instead of trying the planned amount and halving",
);
pub const OPT_LOST_PROFIT: DefaultBooleanConfigOption = ConfigOption::new_bool_with_default(
    "rebalance-lost-profit",
    false,
    "Automatic rebalancing counts what the source channel would have earned forwarding the liquidity that leaves it: a move pays at most feeratio x (what the incoming channel earns forwarding it out - what the outgoing one would have)",
);

pub const OPT_ASKRENE_READ: DefaultBooleanConfigOption = ConfigOption::new_bool_with_default(
    "rebalance-askrene-read",
    true,
    "Learn from lightningd's own payments: fold what xpay learned (askrene's xpay layer) into the liquidity model",
);
pub const OPT_ASKRENE_PUBLISH: DefaultBooleanConfigOption = ConfigOption::new_bool_with_default(
    "rebalance-askrene-publish",
    true,
    "Publish what rebalancing learns into askrene's persistent layer cln-rebalance (set xpay-user-layer=cln-rebalance for payments to use it)",
);

/// Registers every option with cln-plugin.
pub fn register<S, I, O>(b: Builder<S, I, O>) -> Builder<S, I, O>
where
    O: Send + AsyncWrite + Unpin + 'static,
    S: Clone + Sync + Send + 'static,
    I: AsyncRead + Send + Unpin + 'static,
{
    b.option(OPT_MAXFEEPPM)
        .option(OPT_EXEMPTFEE)
        .option(OPT_RETRY_FOR)
        .option(OPT_GRAPH_MAX_AGE)
        .option(OPT_ROUTING)
        .option(OPT_HALF_LIFE)
        .option(OPT_PRIOR)
        .option(OPT_TARGET)
        .option(OPT_FEERATIO)
        .option(OPT_MIN_AMOUNT)
        .option(OPT_PARALLEL)
        .option(OPT_BUDGET)
        .option(OPT_DAILY_BUDGET)
        .option(OPT_AUTO_INTERVAL)
        .option(OPT_EXCLUDE)
        .option(OPT_CHANNEL_TARGET)
        .option(OPT_LOST_PROFIT)
        .option(OPT_MAX_PARTS)
        .option(OPT_MIN_PART)
        .option(OPT_PROBE_MAX)
        .option(OPT_PROBE_SECONDS)
        .option(OPT_PROBE_PER_HOUR)
        .option(OPT_PROBE_MAX_LOCKED)
        .option(OPT_PROBE_FIRST)
        .option(OPT_SIZED_MOVES)
        .option(OPT_ASKRENE_READ)
        .option(OPT_ASKRENE_PUBLISH)
}

fn non_negative(name: &str, v: i64) -> Result<u64, String> {
    u64::try_from(v).map_err(|_| format!("{name} must be >= 0, got {v}"))
}

/// The configuration from the options lightningd gave, or why they cannot be used.
pub fn config<S, I, O>(c: &ConfiguredPlugin<S, I, O>) -> Result<Config, String>
where
    S: Send + Clone + Sync + 'static,
    I: AsyncRead + Send + Unpin + 'static,
    O: Send + AsyncWrite + Unpin + 'static,
{
    let read = |opt: &DefaultIntegerConfigOption| -> Result<u64, String> {
        let v = c.option(opt).map_err(|e| e.to_string())?;
        non_negative(opt.name(), v)
    };
    let retry_for_secs = read(&OPT_RETRY_FOR)?;
    if retry_for_secs == 0 || retry_for_secs > params::MAX_RETRY_FOR {
        return Err(format!(
            "rebalance-retry-for must be 1..={}",
            params::MAX_RETRY_FOR
        ));
    }
    let text = |opt: &DefaultStringConfigOption| -> Result<String, String> {
        c.option(opt).map_err(|e| e.to_string())
    };
    let routing: Routing = text(&OPT_ROUTING)?
        .parse()
        .map_err(|e| format!("rebalance-routing: {e}"))?;
    let prior: Prior = text(&OPT_PRIOR)?
        .parse()
        .map_err(|e| format!("rebalance-liquidity-prior: {e}"))?;
    let half_life_secs = read(&OPT_HALF_LIFE)?;
    if half_life_secs == 0 {
        return Err("rebalance-liquidity-half-life must be at least 1 second".into());
    }
    let feeratio = text(&OPT_FEERATIO)?;
    let feeratio_millionths = crate::params::ratio_millionths(
        &serde_json::Map::from_iter([("feeratio".to_string(), Value::String(feeratio))]),
        "feeratio",
    )
    .map_err(|e| format!("rebalance-{}", e.message))?
    .unwrap_or(500_000);
    let target_percent = read(&OPT_TARGET)?;
    if target_percent > 100 {
        return Err("rebalance-target must be 0..=100".into());
    }
    let some = |v: u64| (v > 0).then_some(v);
    let plan = PlanConfig {
        target_percent: target_percent as u8,
        min_amount_msat: read(&OPT_MIN_AMOUNT)?,
        feeratio_millionths,
        maxfeeppm: u32::try_from(read(&OPT_MAXFEEPPM)?).unwrap_or(u32::MAX),
        lost_profit: c.option(&OPT_LOST_PROFIT).map_err(|e| e.to_string())?,
        ..PlanConfig::default()
    };
    plan.validate()?;
    let auto = AutoConfig {
        plan,
        budget: Budget {
            per_run_msat: some(read(&OPT_BUDGET)?),
            daily_msat: some(read(&OPT_DAILY_BUDGET)?),
        },
        parallel: read(&OPT_PARALLEL)?.clamp(1, 16) as usize,
        interval_secs: read(&OPT_AUTO_INTERVAL)?,
        settings: config_settings(
            c.option(&OPT_EXCLUDE).map_err(|e| e.to_string())?,
            c.option(&OPT_CHANNEL_TARGET).map_err(|e| e.to_string())?,
        )?,
        sized_moves: c.option(&OPT_SIZED_MOVES).map_err(|e| e.to_string())?,
    };
    Ok(Config {
        auto,
        maxfeeppm: read(&OPT_MAXFEEPPM)?,
        exemptfee_msat: read(&OPT_EXEMPTFEE)?,
        retry_for_secs,
        graph_max_age: Duration::from_secs(read(&OPT_GRAPH_MAX_AGE)?),
        routing,
        askrene_read: c.option(&OPT_ASKRENE_READ).map_err(|e| e.to_string())?,
        askrene_publish: c.option(&OPT_ASKRENE_PUBLISH).map_err(|e| e.to_string())?,
        probe_max_probes: u32::try_from(read(&OPT_PROBE_MAX)?).unwrap_or(u32::MAX),
        probe_max_secs: read(&OPT_PROBE_SECONDS)?,
        probe_per_hour: u32::try_from(read(&OPT_PROBE_PER_HOUR)?).unwrap_or(u32::MAX),
        probe_max_locked_msat: read(&OPT_PROBE_MAX_LOCKED)?,
        probe_first: c.option(&OPT_PROBE_FIRST).map_err(|e| e.to_string())?,
        model: ModelConfig {
            half_life_secs,
            prior,
            ..ModelConfig::default()
        },
        ..Config::default()
    })
}

/// `rebalance-exclude` and `rebalance-channel-target` from the config file.
fn config_settings(
    exclude: Option<Vec<String>>,
    targets: Option<Vec<String>>,
) -> Result<Settings, String> {
    let mut s = Settings::default();
    fn entry<'a>(s: &'a mut Settings, id: &str) -> Result<&'a mut ChannelSettings, String> {
        if crate::channels::is_node_id(id) {
            Ok(s.peers.entry(id.to_ascii_lowercase()).or_default())
        } else {
            let scid = id
                .parse()
                .map_err(|e| format!("rebalance-exclude / rebalance-channel-target: {e}"))?;
            Ok(s.channels.entry(scid).or_default())
        }
    }
    for id in exclude.unwrap_or_default() {
        entry(&mut s, id.trim())?.exclude = Some(true);
    }
    for t in targets.unwrap_or_default() {
        let (id, pct) = t
            .rsplit_once(':')
            .ok_or_else(|| format!("rebalance-channel-target {t:?}: expected ID:PERCENT"))?;
        let pct: u8 = pct
            .trim()
            .parse()
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| format!("rebalance-channel-target {t:?}: PERCENT must be 0..=100"))?;
        entry(&mut s, id.trim())?.target_percent = Some(pct);
    }
    Ok(s)
}

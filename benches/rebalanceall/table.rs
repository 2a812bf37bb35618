//! `make bench-rebalanceall`'s rows: one job's figures, each job against the informed job's
//! deficit closed, and sized moves against halving.

use super::{JobRun, Kind};

pub fn sat(msat: u64) -> f64 {
    msat as f64 / 1000.0
}

pub fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        f64::NAN
    } else {
        n as f64 / d as f64
    }
}

pub fn budget_name(b: Option<u64>) -> String {
    b.map_or("no budget".into(), |m| format!("budget {:.0} sat", sat(m)))
}

pub fn header() {
    println!(
        "  {:<22} {:>7} {:>6} {:>5} {:>6} {:>10} {:>9} {:>5} {:>6} | {:>5} {:>5} {:>5} {:>6} | {:>9} {:>13} {:>6} | {:>7} {:>6} {:>6} | ended",
        "strategy",
        "ok/fail",
        "f/sent",
        "s/out",
        "q/skip",
        "moved sat",
        "fee sat",
        "ppm",
        "f/earn",
        "att",
        "/move",
        "HTLCs",
        "probes",
        "off tgt",
        "deficit sat",
        "closed",
        "budget",
        "sim s",
        "wall s",
    );
}

pub fn print_row(name: &str, j: &JobRun) {
    let budget = j.budget_msat.map_or("-".to_string(), |b| {
        format!("{:.0}%", 100.0 * ratio(j.fee_msat, b))
    });
    println!(
        "  {:<22} {:>3}/{:<3} {:>6} {:>5} {:>6} {:>10.0} {:>9.1} {:>5.0} {:>6.3} | {:>5} {:>5.2} {:>5} {:>6} | {:>4}->{:<3} {:>6.0}->{:<6.0} {:>5.1}% | {:>7} {:>6.0} {:>6.1} | {}",
        name,
        j.completed,
        j.failed,
        j.failed_sent,
        j.sized_out,
        j.skipped,
        sat(j.moved_msat),
        sat(j.fee_msat),
        1e6 * ratio(j.fee_msat, j.moved_msat),
        ratio(j.fee_msat, j.earns_msat),
        j.attempts,
        ratio(j.attempts, u64::from(j.completed)),
        j.htlcs,
        j.probes,
        j.before.off_target,
        j.after.off_target,
        sat(j.before.deficit_msat) / 1000.0,
        sat(j.after.deficit_msat) / 1000.0,
        100.0 * ratio(j.closed_msat(), j.before.movable_msat),
        budget,
        j.sim_ms as f64 / 1000.0,
        j.wall.as_secs_f64(),
        j.ended
    );
}

/// The informed job's row name.
pub const ORACLE_NAME: &str = "oracle job";

/// Each strategy's deficit closed against the informed job's (the last of `runs`, if any);
/// with `target`, against issue 22's target (ours closes at least 80% of the oracle's).
pub fn print_against_oracle(runs: &[(Kind, JobRun)], target: bool) {
    let Some((_, o)) = runs.iter().find(|(k, _)| *k == Kind::Oracle) else {
        return;
    };
    let oracle_closed = o.closed_msat();
    for (k, j) in runs {
        if *k == Kind::Oracle {
            continue;
        }
        let share = 100.0 * ratio(j.closed_msat(), oracle_closed);
        let verdict = match (target, share >= 80.0) {
            (false, _) => "",
            (true, true) => "MET    ",
            (true, false) => "MISSED ",
        };
        println!(
            "    {verdict}{}: closed {:.0} of the oracle job's {:.0} thousand sat of deficit: {share:.1}%{}",
            k.name(),
            sat(j.closed_msat()) / 1000.0,
            sat(oracle_closed) / 1000.0,
            if target { " (target >= 80%)" } else { "" }
        );
    }
}

/// Each strategy run both ways, sized moves against halving; with `target`, against issue
/// 23's targets (failed moves halved, no less deficit closed).
pub fn print_sized_vs_halving(runs: &[(Kind, JobRun)], target: bool) {
    for (k, halving) in runs {
        let Kind::Ours {
            strategy,
            sized: false,
        } = *k
        else {
            continue;
        };
        let sized_kind = Kind::Ours {
            strategy,
            sized: true,
        };
        let Some((_, sized)) = runs.iter().find(|(k, _)| *k == sized_kind) else {
            continue;
        };
        let verdict = |ok: bool| match (target, ok) {
            (false, _) => "",
            (true, true) => "MET    ",
            (true, false) => "MISSED ",
        };
        println!(
            "    {}{}: sized moves failed {} against halving's {} (target: at most half; after sending an HTLC {} against {}); \
             moves completed {} against {}; sized out before any payment {}; pairs skipped by their quote {} against {}",
            verdict(sized.failed * 2 <= halving.failed),
            strategy.name(),
            sized.failed,
            halving.failed,
            sized.failed_sent,
            halving.failed_sent,
            sized.completed,
            halving.completed,
            sized.sized_out,
            sized.skipped,
            halving.skipped
        );
        println!(
            "    {}{}: sized moves closed {:.0} thousand sat of deficit against halving's {:.0} (target: no less); \
             HTLCs {} (probes {}) against {}",
            verdict(sized.closed_msat() >= halving.closed_msat()),
            strategy.name(),
            sat(sized.closed_msat()) / 1000.0,
            sat(halving.closed_msat()) / 1000.0,
            sized.htlcs,
            sized.probes,
            halving.htlcs
        );
    }
}

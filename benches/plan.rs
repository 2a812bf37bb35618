//! `make bench-plan`: the planner over 1,000 channels (target <= 10 ms) and `rebalancereport`'s
//! numbers over 10,000 history entries and 50,000 forwards (target <= 50 ms), pure core only,
//! seeded inputs, median and max of 21 runs.

use cln_rebalance::core::budget::Budget;
use cln_rebalance::core::graph::Scid;
use cln_rebalance::core::history::{Entry, Outcome};
use cln_rebalance::core::plan::{OurChannel, PlanConfig, Settings, plan};
use cln_rebalance::core::report::{Forward, ForwardStatus, report};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const RUNS: usize = 21;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn timed(mut f: impl FnMut()) -> (Duration, Duration) {
    let mut t: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    (t[RUNS / 2], t[RUNS - 1])
}

fn main() {
    let mut rng = Rng(0x5EED);
    let channels: Vec<OurChannel> = (0..1000u64)
        .map(|i| {
            let total = 1_000_000_000 + (rng.next() % 9_000_000_000);
            let us = rng.next() % total;
            OurChannel {
                short_channel_id: Scid(((800_000 + i) << 40) | (1 << 16)),
                peer_id: format!("02{:064x}", i % 700 + 1),
                state_normal: !rng.next().is_multiple_of(20),
                peer_connected: !rng.next().is_multiple_of(20),
                to_us_msat: us,
                total_msat: total,
                spendable_msat: us.saturating_sub(total / 100),
                receivable_msat: (total - us).saturating_sub(total / 100),
                htlcs_out_msat: 0,
                htlcs_in_msat: 0,
                fee_base_msat: 1000,
                fee_proportional_millionths: (rng.next() % 2000) as u32,
                remote_fee: None,
            }
        })
        .collect();
    let config = PlanConfig::default();
    let settings = Settings::default();
    let mut moves = 0;
    let (p50, max) = timed(|| moves = plan(&channels, &settings, &config).moves.len());
    println!(
        "plan, 1000 channels: {moves} moves; p50 {:.3} ms, max {:.3} ms (target <= 10 ms)",
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    let now = 1_800_000_000u64;
    let entries: Vec<Entry> = (0..10_000u64)
        .map(|i| Entry {
            started_at: now - 90 * 86_400 + i * 777,
            outgoing: channels[(rng.next() % 1000) as usize].short_channel_id,
            incoming: channels[(rng.next() % 1000) as usize].short_channel_id,
            amount_msat: 100_000_000 + rng.next() % 900_000_000,
            fee_msat: rng.next() % 500_000,
            attempts: 1 + (rng.next() % 5) as u32,
            outcome: if rng.next().is_multiple_of(5) {
                Outcome::Failed { code: 205 }
            } else {
                Outcome::Complete
            },
            duration_ms: rng.next() % 60_000,
            job_id: rng.next() % 50,
            payment_hash: [(i % 251) as u8; 32],
            error: String::new(),
            parts: 1,
        })
        .collect();
    let forwards: Vec<Forward> = (0..50_000u64)
        .map(|i| Forward {
            in_channel: channels[(rng.next() % 1000) as usize].short_channel_id,
            out_channel: Some(channels[(rng.next() % 1000) as usize].short_channel_id),
            status: ForwardStatus::Settled,
            in_msat: 10_000_000,
            out_msat: Some(9_999_000),
            fee_msat: Some(1000),
            received_time: now - 90 * 86_400 + i * 155,
            resolved_time: Some(now - 90 * 86_400 + i * 155 + 1),
        })
        .collect();
    let budget = Budget::default();
    let mut n = 0;
    let (p50, max) = timed(|| {
        n = report(&entries, &forwards, &HashMap::new(), None, &budget, 90, now).to_json()["channels"]
            .as_array()
            .map_or(0, |c| c.len())
    });
    println!(
        "rebalancereport, 10000 entries + 50000 forwards over 90 days: {n} channels; p50 {:.3} ms, max {:.3} ms (target <= 50 ms)",
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
}

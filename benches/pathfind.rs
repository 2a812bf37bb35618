//! `make bench`: graph decode, layout, memory and circular route search on the mainnet snapshots.
//!
//! A plain bench binary (`harness = false`) that reports distributions. Each snapshot runs in
//! a child process of this binary, so its peak memory (`VmHWM`) is its own. Usage:
//! `cargo bench --bench pathfind [-- SUBSTRING]` (only snapshots whose name contains it).

#[path = "../tests/support/mainnet.rs"]
mod mainnet;

use cln_rebalance::core::graph::{Graph, GraphBuilder};
use cln_rebalance::core::pathfind::{Scratch, find_path};
use mainnet::{Circle, SNAPSHOTS};
use std::time::{Duration, Instant};

/// Parse + build runs per snapshot (the median is reported).
const BUILD_RUNS: usize = 7;
/// Queries per amount.
const QUERIES: usize = 2000;
/// Timed runs of each query (its median is its time).
const PASSES: usize = 3;
const AMOUNTS_SAT: [u64; 3] = [10_000, 100_000, 1_000_000];
const SEED: u64 = 0x5EED_2026;
const CHILD_ENV: &str = "CLN_REBALANCE_BENCH_SNAPSHOT";

fn main() {
    if let Ok(name) = std::env::var(CHILD_ENV) {
        if let Err(e) = run_snapshot(&name) {
            println!("SKIP {name}: {e}");
        }
        return;
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    println!(
        "cln-rebalance pathfinding bench ({} build, {} cores{})",
        if cfg!(debug_assertions) {
            "DEBUG"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model().map(|m| format!(", {m}")).unwrap_or_default(),
    );
    println!("data: {}", mainnet::data_dir().display());
    let exe = std::env::current_exe().expect("own path");
    for name in SNAPSHOTS {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        if let Err(e) = mainnet::snapshot_path(name) {
            println!("\nSKIP {name}: {e}");
            continue;
        }
        let status = std::process::Command::new(&exe)
            .env(CHILD_ENV, name)
            .status()
            .expect("run the bench child");
        assert!(status.success(), "bench child for {name} failed: {status}");
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib_kib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn run_snapshot(name: &str) -> Result<(), String> {
    let rss_start = mainnet::proc_status_kib("VmRSS");

    // Memory first, in a fresh process: bytes in, one graph built, bytes dropped.
    let t = Instant::now();
    let bytes = mainnet::read_snapshot(name)?;
    let gunzip = t.elapsed();
    let json_len = bytes.len();
    let rss_bytes = mainnet::proc_status_kib("VmRSS");
    let graph = Graph::from_listchannels_json(&bytes).map_err(|e| e.to_string())?;
    let rss_bytes_graph = mainnet::proc_status_kib("VmRSS");
    drop(bytes);
    let rss_graph = mainnet::proc_status_kib("VmRSS");
    let hwm_load = mainnet::proc_status_kib("VmHWM");
    let active = graph.edges().iter().filter(|e| e.active).count();

    println!(
        "\n== {name}: {} nodes, {} channel directions ({} active)",
        graph.node_count(),
        graph.edge_count(),
        active
    );
    println!(
        "gunzip (not counted)        {:>8.1} ms   {:.1} MiB of JSON",
        ms(gunzip),
        json_len as f64 / (1 << 20) as f64
    );

    // Timing: decode (JSON bytes -> builder) and layout (builder -> graph), BUILD_RUNS times.
    let bytes = mainnet::read_snapshot(name)?;
    let (mut decode, mut layout, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..BUILD_RUNS {
        let t0 = Instant::now();
        let builder = GraphBuilder::from_listchannels_json(&bytes).map_err(|e| e.to_string())?;
        let t1 = Instant::now();
        let g = builder.build();
        let t2 = Instant::now();
        std::hint::black_box(&g);
        decode.push(t1 - t0);
        layout.push(t2 - t1);
        total.push(t2 - t0);
    }
    drop(bytes);
    let (tmin, tmax) = (
        *total.iter().min().expect("runs"),
        *total.iter().max().expect("runs"),
    );
    println!(
        "parse (JSON -> builder)     {:>8.1} ms   median of {BUILD_RUNS}",
        ms(median(decode))
    );
    println!(
        "build (builder -> graph)    {:>8.1} ms   median of {BUILD_RUNS}",
        ms(median(layout))
    );
    let total = median(total);
    println!(
        "parse + build               {:>8.1} ms   median (min {:.1}, max {:.1}); target <= 300 ms",
        ms(total),
        ms(tmin),
        ms(tmax)
    );
    println!(
        "memory: RSS at start {:.1} MiB, +JSON {:.1} MiB, +graph {:.1} MiB, graph only {:.1} MiB \
         (+{:.1} MiB over start; Graph::heap_bytes {:.1} MiB); peak VmHWM {:.1} MiB",
        mib_kib(rss_start),
        mib_kib(rss_bytes),
        mib_kib(rss_bytes_graph),
        mib_kib(rss_graph),
        mib_kib(rss_graph.saturating_sub(rss_start)),
        graph.heap_bytes() as f64 / (1 << 20) as f64,
        mib_kib(hwm_load),
    );

    // Route search: the circular query the plugin runs, over a seeded sample.
    let scc = mainnet::largest_scc(&graph);
    let out = mainnet::edges_out(&graph);
    let candidates = mainnet::candidate_us(&graph, &scc, &out, 3);
    println!(
        "route search: largest SCC {} nodes; \"us\" drawn from its {} nodes with >= 3 channels \
         each way; {QUERIES} queries per amount",
        scc.iter().filter(|&&b| b).count(),
        candidates.len()
    );
    println!(
        "  {:>10} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6} {:>8}",
        "amount",
        "queries",
        "found",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "mean ms",
        "hops",
        "settled"
    );
    let mut scratch = Scratch::default();
    for sat in AMOUNTS_SAT {
        let circles =
            mainnet::sample_circles(&graph, &scc, &out, &candidates, SEED, sat * 1000, QUERIES);
        let exclusions: Vec<_> = circles.iter().map(Circle::exclusions).collect();
        // Warm the scratch and caches; the timed pass is the second one.
        for (c, ex) in circles.iter().zip(&exclusions).take(50) {
            std::hint::black_box(find_path(&graph, &c.query, ex, &mut scratch));
        }
        // Each query runs PASSES times (whole sample per pass) and keeps its median: a single
        // preemption by another process on this shared 2-core machine then does not count.
        let mut runs = vec![Vec::with_capacity(PASSES); circles.len()];
        let (mut found, mut hops, mut settled) = (0usize, 0usize, 0usize);
        for pass in 0..PASSES {
            for (i, (c, ex)) in circles.iter().zip(&exclusions).enumerate() {
                let t = Instant::now();
                let path = find_path(&graph, &c.query, ex, &mut scratch);
                runs[i].push(t.elapsed());
                if pass == 0 {
                    settled += scratch.last_settled();
                    if let Some(p) = path {
                        found += 1;
                        hops += p.edges.len() + 2;
                    }
                }
            }
        }
        let mut times: Vec<Duration> = runs.into_iter().map(median).collect();
        let mean = times.iter().sum::<Duration>() / times.len() as u32;
        times.sort();
        println!(
            "  {:>6}k sat {:>7} {:>6.1}% {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>6.2} {:>8.0}",
            sat / 1000,
            circles.len(),
            100.0 * found as f64 / circles.len() as f64,
            ms(mainnet::quantile(&times, 0.50)),
            ms(mainnet::quantile(&times, 0.90)),
            ms(mainnet::quantile(&times, 0.99)),
            ms(*times.last().expect("queries")),
            ms(mean),
            hops as f64 / found.max(1) as f64,
            settled as f64 / circles.len() as f64,
        );
    }
    println!(
        "  targets: p50 <= 0.25 ms, p99 <= 1 ms; peak VmHWM over the whole run {:.1} MiB",
        mib_kib(mainnet::proc_status_kib("VmHWM"))
    );
    Ok(())
}

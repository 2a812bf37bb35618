//! The proptest runner the fuzz targets share (`tests/fuzz_core`, `tests/fuzz_flow.rs`): fixed
//! cases and seed for CI, `PROPTEST_CASES` / `PROPTEST_RNG_SEED` / `FUZZ_SCALE` for longer runs,
//! one line per target on stderr with what its cases exercised.

use proptest::strategy::Strategy;
use proptest::test_runner::{
    Config, FileFailurePersistence, RngSeed, TestCaseError, TestError, TestRunner,
};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

/// Counts of what a target's cases exercised, printed with the case count.
#[derive(Default)]
pub struct Tally(RefCell<BTreeMap<&'static str, u64>>);

#[allow(dead_code)] // each fuzz binary uses some of it
impl Tally {
    pub fn add(&self, what: &'static str) {
        self.add_n(what, 1);
    }
    pub fn add_n(&self, what: &'static str, n: u64) {
        *self.0.borrow_mut().entry(what).or_default() += n;
    }
    pub fn get(&self, what: &'static str) -> u64 {
        self.0.borrow().get(what).copied().unwrap_or(0)
    }
    fn summary(&self) -> String {
        let m = self.0.borrow();
        if m.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
        format!(" ({})", parts.join(", "))
    }
}

/// What differs between the fuzz binaries: the base seed, the file regressions are kept
/// beside, and how long a failure is shrunk.
pub struct Runner {
    pub seed: u64,
    pub source_file: &'static str,
    pub max_shrink_iters: u32,
}

impl Runner {
    /// Runs `test` on `ci_cases` values of `strategy` (or `$PROPTEST_CASES`), seeded per
    /// target; the runs made.
    pub fn fuzz<S: Strategy + 'static>(
        &self,
        name: &'static str,
        ci_cases: u32,
        strategy: S,
        tally: &Tally,
        test: impl Fn(S::Value) -> Result<(), TestCaseError>,
    ) -> u64 {
        let mut config = Config::default();
        if std::env::var_os("PROPTEST_CASES").is_none() {
            // FUZZ_SCALE=N runs N times each target's CI budget (`make fuzz`).
            let scale = std::env::var("FUZZ_SCALE")
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .unwrap_or(1);
            config.cases = ci_cases.saturating_mul(scale.max(1));
        }
        if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
            let salt = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            config.rng_seed = RngSeed::Fixed(self.seed ^ salt);
        }
        config.source_file = Some(self.source_file);
        config.test_name = Some(name);
        config.failure_persistence = Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        )));
        config.max_shrink_iters = self.max_shrink_iters;
        let (cases, seed) = (config.cases, config.rng_seed);
        let runs = Cell::new(0u64);
        let started = Instant::now();
        // Boxed, so the runner and its shrinking are compiled once per value type, not once per
        // strategy type (it halved fuzz_core's build time).
        let strategy = strategy.boxed();
        let result = TestRunner::new(config).run(&strategy, |v| {
            runs.set(runs.get() + 1);
            test(v)
        });
        let line = format!(
            "fuzz {name}: {cases} cases, {} runs, seed {seed}, {:.2}s{}\n",
            runs.get(),
            started.elapsed().as_secs_f64(),
            tally.summary()
        );
        // Straight to stderr: libtest captures print!/eprint! of passing tests.
        let _ = std::io::stderr().write_all(line.as_bytes());
        match result {
            Ok(()) => {}
            Err(TestError::Fail(why, value)) => {
                panic!("fuzz {name}: {why}\nminimal failing input: {value:#?}")
            }
            Err(e) => panic!("fuzz {name}: {e}"),
        }
        runs.get()
    }
}

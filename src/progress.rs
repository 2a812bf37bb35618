//! What a long command tells the person waiting for it while it works: a line per step and how
//! far it has got. The rebalance algorithm and the job speak through [`Progress`]; the edge
//! turns it into lightning-cli's `# ...` lines and progress bar (`front::notify`), tests
//! collect it, and nobody listening costs nothing.

use std::sync::Mutex;

/// Where a command's progress goes.
pub trait Progress: Send + Sync {
    /// One line for a person: an attempt, a failure and why, the outcome.
    fn message(&self, text: &str);
    /// `num` of `total` done (0-based, as lightning-cli counts: `num + 1 == total` is the end).
    fn progress(&self, num: u32, total: u32);
}

impl std::fmt::Debug for dyn Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// Lines kept in memory (for tests, and for a caller that words its own answer).
#[derive(Debug, Default)]
pub struct Collected {
    pub lines: Mutex<Vec<String>>,
    pub bars: Mutex<Vec<(u32, u32)>>,
}

impl Progress for Collected {
    fn message(&self, text: &str) {
        self.lines.lock().expect("lines").push(text.to_string());
    }
    fn progress(&self, num: u32, total: u32) {
        self.bars.lock().expect("bars").push((num, total));
    }
}

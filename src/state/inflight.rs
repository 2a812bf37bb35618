//! The rebalances running now: which channels they use (an automatic job starts no move on
//! them), which invoice each waits to be paid (what the `invoice_payment` hook checks a
//! payment against), and how far each has got. Invoice labels are made and read here.

use crate::core::graph::Scid;
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Invoice labels we create start with this.
pub const LABEL_PREFIX: &str = "rebalance-";

/// One rebalance in progress.
#[derive(Debug, Clone, Default)]
pub struct Running {
    pub outgoing_scid: String,
    pub incoming_scid: String,
    pub amount_msat: u64,
    /// The job it belongs to (0 = a manual `rebalance`).
    pub job_id: u64,
    pub started_ms: u64,
    /// Its invoice, once made: label and payment hash.
    pub label: Option<String>,
    pub payment_hash: Option<String>,
    /// Set by the hook when it refused the payment because it arrived on another channel.
    pub rejected_arrival: Option<String>,
    /// Attempts made so far, and parts of the current one in flight now.
    pub attempts: u32,
    pub parts_in_flight: u32,
    /// A dry run: it pays nothing, but its channels count as busy while it quotes.
    pub dryrun: bool,
    /// Background probing: it yields to any other rebalance or probe at once, so its channels
    /// do not count as busy.
    pub background: bool,
}

/// The registry of rebalances in progress.
#[derive(Default)]
pub struct InFlight {
    next_id: AtomicU64,
    running: Mutex<BTreeMap<u64, Running>>,
    /// Our channels a probe goes out through now: one probe at a time on each.
    /// Our channels a probe goes out through now: one probe at a time on each (and whether
    /// it is background probing's, which gives way).
    probing: Mutex<BTreeMap<String, bool>>,
}

impl InFlight {
    /// Registers a rebalance; its id ends it ([`InFlight::end`]).
    pub fn start(&self, r: Running) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, r);
        id
    }

    /// Changes what is known of rebalance `id`.
    pub fn update(&self, id: u64, f: impl FnOnce(&mut Running)) {
        if let Some(r) = self.lock().get_mut(&id) {
            f(r);
        }
    }

    pub fn end(&self, id: u64) {
        self.lock().remove(&id);
    }

    pub fn get(&self, id: u64) -> Option<Running> {
        self.lock().get(&id).cloned()
    }

    /// Every rebalance in progress (dry runs left out), oldest first.
    pub fn list(&self) -> Vec<Running> {
        let mut v: Vec<Running> = self
            .lock()
            .values()
            .filter(|r| !r.dryrun)
            .cloned()
            .collect();
        v.sort_by_key(|r| r.started_ms);
        v
    }

    /// Claims `scid` for a probe (`background`: background probing's); false if one already
    /// goes out through it.
    pub fn start_probe(&self, scid: &str, background: bool) -> bool {
        let mut p = self.probing.lock().expect("probing lock");
        if p.contains_key(scid) {
            return false;
        }
        p.insert(scid.to_string(), background);
        true
    }

    /// Whether background probing holds `scid` now (it ends within one probe once anything
    /// else runs).
    pub fn background_probe_on(&self, scid: &str) -> bool {
        self.probing
            .lock()
            .expect("probing lock")
            .get(scid)
            .copied()
            .unwrap_or(false)
    }

    /// Whether a probe goes out through `scid` now.
    pub fn probing(&self, scid: &str) -> bool {
        self.probing
            .lock()
            .expect("probing lock")
            .contains_key(scid)
    }

    pub fn end_probe(&self, scid: &str) {
        self.probing.lock().expect("probing lock").remove(scid);
    }

    /// Whether a rebalance or a probe other than background probing runs now.
    pub fn foreground_running(&self) -> bool {
        self.lock().values().any(|r| !r.background)
    }

    /// The channels rebalances in progress use now (background probing's left out: it yields).
    pub fn busy_channels(&self) -> HashSet<String> {
        self.lock()
            .values()
            .filter(|r| !r.background)
            .flat_map(|r| [r.outgoing_scid.clone(), r.incoming_scid.clone()])
            .collect()
    }

    /// The rebalance waiting for the invoice labelled `label`.
    pub fn by_label(&self, label: &str) -> Option<(u64, Running)> {
        self.lock()
            .iter()
            .find(|(_, r)| r.label.as_deref() == Some(label))
            .map(|(id, r)| (*id, r.clone()))
    }

    /// A new invoice label naming the two channels (read back by [`label_channels`]).
    pub fn new_label(&self, out: &str, inc: &str) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{LABEL_PREFIX}{out}-{inc}-{t:x}-{}-{n}", std::process::id())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Running>> {
        self.running.lock().expect("in-flight lock")
    }
}

/// `rebalance-<out>-<in>-...`: the two channels a rebalance invoice's label names.
pub fn label_channels(label: &str) -> Option<(Scid, Scid)> {
    let mut parts = label.strip_prefix(LABEL_PREFIX)?.split('-');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_their_channels() {
        let (o, i) = label_channels("rebalance-103x1x0-105x2x1-18a-77-3").unwrap();
        assert_eq!(
            (o.to_string(), i.to_string()),
            ("103x1x0".into(), "105x2x1".into())
        );
        assert!(label_channels("rebalance-x").is_none());
        assert!(label_channels("other-1x1x1-2x2x2").is_none());
        let reg = InFlight::default();
        let label = reg.new_label("103x1x0", "105x2x1");
        assert_eq!(
            label_channels(&label).map(|(o, i)| (o.to_string(), i.to_string())),
            Some(("103x1x0".into(), "105x2x1".into()))
        );
    }

    #[test]
    fn busy_channels_are_those_of_running_rebalances() {
        let reg = InFlight::default();
        let run = |o: &str, i: &str| Running {
            outgoing_scid: o.into(),
            incoming_scid: i.into(),
            ..Running::default()
        };
        let a = reg.start(run("1x1x1", "2x2x2"));
        let b = reg.start(run("1x1x1", "3x3x3"));
        reg.update(b, |r| r.label = Some("rebalance-x".into()));
        assert_eq!(reg.busy_channels().len(), 3);
        assert_eq!(reg.by_label("rebalance-x").map(|x| x.0), Some(b));
        reg.end(a);
        assert!(!reg.busy_channels().contains("2x2x2"));
        assert!(reg.busy_channels().contains("1x1x1"));
        reg.end(b);
        assert!(reg.busy_channels().is_empty());
    }
}

//! The rebalance history: one entry per rebalance, manual or automatic, complete or failed; its
//! binary record for lightningd's datastore; retention; and the lookups the fee budget and the
//! report need.
//!
//! Pure: no I/O, time is a parameter. The caller stores the records, grouped by the UTC day of
//! each entry's start, under `["cln-rebalance", "history", "YYYY-MM-DD"]`
//! ([`Entry::datastore_key`]); each rebalance appends one record with
//! `datastore key hex=<record> mode=create-or-append`, so a write is O(1) whatever the history's
//! size.
//!
//! ## Record format, version 1 (all integers big-endian)
//! ```text
//! magic "RH" (2) | version 1 (1) | body_len (u16) | body (body_len) | checksum (u32)
//! body: started_at u64 | outgoing u64 | incoming u64 | amount_msat u64 | fee_msat u64
//!       | attempts u32 | outcome u8 (0 complete, 1 failed) | code i32 (0 when complete)
//!       | duration_ms u64 | job_id u64 | payment_hash [32] | error_len u8 | error (UTF-8)
//!       [| parts u8, appended later: the parts it was paid in; absent means 1]
//! ```
//! The checksum is 32-bit FNV-1a over version, body_len and body. The length prefix makes each
//! record self-delimiting: a reader skips records of a version it does not know (and counts
//! them), and a version-1 reader ignores bytes past the fields it knows, so fields can be
//! appended to the body without a new version. Anything else (another magic, a bad checksum, a
//! truncated record, an invalid field) stops the decode with the offset and the reason; the
//! entries before it are kept.

use crate::core::amount::MAX_MONEY_MSAT;
use crate::core::graph::Scid;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::fmt;

/// Seconds in a day (and in the budget's rolling window).
pub const DAY_SECS: u64 = 86_400;
/// Where the history lives in the datastore; the third key element is the UTC day.
pub const KEY_PREFIX: [&str; 2] = ["cln-rebalance", "history"];
/// The longest error message kept, in bytes; longer ones are cut at a character boundary.
pub const MAX_ERROR_BYTES: usize = 200;
/// First bytes of every record.
pub const RECORD_MAGIC: [u8; 2] = *b"RH";
/// The record version this code writes.
pub const RECORD_VERSION: u8 = 1;
/// Bytes of a version-1 body without its error message.
const BODY_FIXED_BYTES: usize = 5 * 8 + 4 + 1 + 4 + 8 + 8 + 32 + 1;
/// magic + version + body_len before the body, checksum after it.
const FRAME_BYTES: usize = 2 + 1 + 2 + 4;
/// An all-zero payment hash: the rebalance failed before it had an invoice.
pub const NO_PAYMENT_HASH: [u8; 32] = [0; 32];

/// How a rebalance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    /// With the JSON-RPC error code the rebalance answered (e.g. 205 no route, 200 timeout).
    Failed {
        code: i32,
    },
}

/// One rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Unix seconds when it started. The budget's 24 h window and the day key go by this.
    pub started_at: u64,
    pub outgoing: Scid,
    pub incoming: Scid,
    pub amount_msat: u64,
    /// Fees paid (0 when it failed).
    pub fee_msat: u64,
    /// Payment attempts made (routes tried).
    pub attempts: u32,
    pub outcome: Outcome,
    pub duration_ms: u64,
    /// The `rebalanceall` job that made it; 0 = manual.
    pub job_id: u64,
    /// Of its `rebalance-` invoice; [`NO_PAYMENT_HASH`] if it had none.
    pub payment_hash: [u8; 32],
    /// Why it failed, short; at most [`MAX_ERROR_BYTES`] are stored.
    pub error: String,
    /// The parts it was paid in (1: one route; for a failed one, of its last try).
    pub parts: u8,
}

/// Cuts `s` to at most [`MAX_ERROR_BYTES`] bytes at a character boundary.
pub fn bounded_error(s: &str) -> &str {
    if s.len() <= MAX_ERROR_BYTES {
        return s;
    }
    let mut end = MAX_ERROR_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

impl Entry {
    pub fn is_complete(&self) -> bool {
        self.outcome == Outcome::Complete
    }

    /// The datastore key of the day this entry belongs to.
    pub fn datastore_key(&self) -> [String; 3] {
        datastore_key(self.started_at)
    }

    /// Appends this entry's record to `out` (the error message cut to [`MAX_ERROR_BYTES`]).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let error = bounded_error(&self.error).as_bytes();
        let body_len = BODY_FIXED_BYTES + error.len() + 1;
        let start = out.len();
        out.reserve(FRAME_BYTES + body_len);
        out.extend_from_slice(&RECORD_MAGIC);
        out.push(RECORD_VERSION);
        out.extend_from_slice(&(body_len as u16).to_be_bytes());
        for v in [
            self.started_at,
            self.outgoing.0,
            self.incoming.0,
            self.amount_msat,
            self.fee_msat,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&self.attempts.to_be_bytes());
        let (kind, code) = match self.outcome {
            Outcome::Complete => (0u8, 0i32),
            Outcome::Failed { code } => (1, code),
        };
        out.push(kind);
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(&self.duration_ms.to_be_bytes());
        out.extend_from_slice(&self.job_id.to_be_bytes());
        out.extend_from_slice(&self.payment_hash);
        out.push(error.len() as u8);
        out.extend_from_slice(error);
        out.push(self.parts);
        let sum = checksum(&out[start + 2..]);
        out.extend_from_slice(&sum.to_be_bytes());
    }

    /// This entry's record: what one `datastore ... mode=create-or-append` adds.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// JSON with CLN-style names (`status` is "complete" or "failed", as `waitsendpay` says).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "started_at": self.started_at,
            "outgoing": self.outgoing.to_string(),
            "incoming": self.incoming.to_string(),
            "amount_msat": self.amount_msat,
            "fee_msat": self.fee_msat,
            "attempts": self.attempts,
            "status": if self.is_complete() { "complete" } else { "failed" },
            "duration_ms": self.duration_ms,
            "job_id": self.job_id,
            "payment_hash": hex(&self.payment_hash),
        });
        if let Outcome::Failed { code } = self.outcome {
            v["code"] = json!(code);
            v["error"] = json!(self.error);
        }
        v
    }
}

/// Where and why a day's records stopped decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset of the record that failed.
    pub offset: usize,
    pub reason: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "history record at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for DecodeError {}

/// What a day's concatenated records held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Every entry before the first bad record, in stored order.
    pub entries: Vec<Entry>,
    /// Records of a newer version, skipped whole.
    pub newer_versions: usize,
    /// Why decoding stopped before the end, if it did.
    pub error: Option<DecodeError>,
}

/// Reads one day's records (the bytes of its datastore entry's `hex`).
pub fn decode_day(bytes: &[u8]) -> Decoded {
    let mut out = Decoded::default();
    let mut at = 0;
    while at < bytes.len() {
        match decode_record(&bytes[at..]) {
            Ok((entry, len)) => {
                match entry {
                    Some(e) => out.entries.push(e),
                    None => out.newer_versions += 1,
                }
                at += len;
            }
            Err(reason) => {
                out.error = Some(DecodeError { offset: at, reason });
                break;
            }
        }
    }
    out
}

/// One record at the start of `b`: the entry (`None` for a newer version) and its length.
fn decode_record(b: &[u8]) -> Result<(Option<Entry>, usize), String> {
    if b.len() < 5 {
        return Err(format!("{} bytes, too short for a record", b.len()));
    }
    if b[..2] != RECORD_MAGIC {
        return Err(format!(
            "starts with {}, not a cln-rebalance history record",
            hex(&b[..2])
        ));
    }
    let version = b[2];
    let body_len = u16::from_be_bytes([b[3], b[4]]) as usize;
    let len = FRAME_BYTES + body_len;
    if b.len() < len {
        return Err(format!("truncated: needs {len} bytes, {} left", b.len()));
    }
    let body = &b[5..5 + body_len];
    let stored = u32::from_be_bytes(b[5 + body_len..len].try_into().expect("4 bytes"));
    if checksum(&b[2..5 + body_len]) != stored {
        return Err("checksum mismatch".into());
    }
    if version == 0 {
        return Err("version 0".into());
    }
    if version > RECORD_VERSION {
        return Ok((None, len));
    }
    if body_len < BODY_FIXED_BYTES {
        return Err(format!(
            "body of {body_len} bytes, version 1 needs {BODY_FIXED_BYTES}"
        ));
    }
    let u64_at = |i: usize| u64::from_be_bytes(body[i..i + 8].try_into().expect("8 bytes"));
    let u32_at = |i: usize| u32::from_be_bytes(body[i..i + 4].try_into().expect("4 bytes"));
    let amount_msat = u64_at(24);
    let fee_msat = u64_at(32);
    if amount_msat > MAX_MONEY_MSAT || fee_msat > MAX_MONEY_MSAT {
        return Err("amount or fee above 21 million bitcoin".into());
    }
    let outcome = match body[44] {
        0 => Outcome::Complete,
        1 => Outcome::Failed {
            code: u32_at(45) as i32,
        },
        k => return Err(format!("outcome {k}")),
    };
    let mut payment_hash = [0u8; 32];
    payment_hash.copy_from_slice(&body[65..97]);
    let error_len = body[97] as usize;
    let error = body
        .get(BODY_FIXED_BYTES..BODY_FIXED_BYTES + error_len)
        .ok_or_else(|| format!("error message of {error_len} bytes overruns the body"))?;
    let error = std::str::from_utf8(error)
        .map_err(|_| "error message is not UTF-8".to_string())?
        .to_string();
    // Appended after the error: records written before it was are of one part.
    let parts = body.get(BODY_FIXED_BYTES + error_len).copied().unwrap_or(1);
    let entry = Entry {
        started_at: u64_at(0),
        outgoing: Scid(u64_at(8)),
        incoming: Scid(u64_at(16)),
        amount_msat,
        fee_msat,
        attempts: u32_at(40),
        outcome,
        duration_ms: u64_at(49),
        job_id: u64_at(57),
        payment_hash,
        error,
        parts,
    };
    Ok((Some(entry), len))
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = y - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC day of `unix_secs` as the datastore key names it: "2026-12-02".
pub fn day_name(unix_secs: u64) -> String {
    let (y, m, d) = civil_from_days((unix_secs / DAY_SECS) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 of a day name written by [`day_name`]; `None` for anything else.
pub fn parse_day_name(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if !s.is_ascii() || b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, m, d) = (num(0..4)? as i64, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Round trip: refuses 2026-02-30 and the like.
    (days >= 0 && civil_from_days(days) == (y, m, d)).then_some(days as u64)
}

/// `["cln-rebalance", "history", "YYYY-MM-DD"]` for the day of `unix_secs`.
pub fn datastore_key(unix_secs: u64) -> [String; 3] {
    [
        KEY_PREFIX[0].to_string(),
        KEY_PREFIX[1].to_string(),
        day_name(unix_secs),
    ]
}

/// How much history to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// A day is deleted once every entry in it is older than this many days.
    pub max_age_days: u64,
    /// At most this many entries in all; the oldest go first.
    pub max_entries: usize,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            max_age_days: 90,
            max_entries: 10_000,
        }
    }
}

/// What to remove from the datastore.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Day names whose keys to delete whole (`deldatastore`), oldest first.
    pub delete_days: Vec<String>,
    /// A day to keep only partly: drop its `.1` oldest entries and rewrite it with
    /// `create-or-replace` from [`History::encode_day`] after [`History::apply_retention`].
    pub trim: Option<(String, usize)>,
}

impl Retention {
    pub fn is_empty(&self) -> bool {
        self.delete_days.is_empty() && self.trim.is_none()
    }
}

/// Decides what to drop, given each stored day's name and entry count. Names that are not day
/// names are left alone (not ours to judge). Days in the future (a clock set back) count as
/// the newest.
pub fn retention(days: &[(String, usize)], now: u64, policy: &RetentionPolicy) -> Retention {
    let today = now / DAY_SECS;
    let mut parsed: Vec<(u64, &str, usize)> = days
        .iter()
        .filter_map(|(name, n)| parse_day_name(name).map(|d| (d, name.as_str(), *n)))
        .collect();
    parsed.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let mut out = Retention::default();
    let mut kept = 0usize;
    for (day, name, n) in parsed {
        // Day `day` ends at (day + 1) * DAY_SECS; all of it is older than max_age when that end
        // is at least max_age days before now.
        let too_old = day.saturating_add(1).saturating_add(policy.max_age_days) <= today;
        if too_old || kept >= policy.max_entries {
            out.delete_days.push(name.to_string());
        } else if kept + n > policy.max_entries {
            out.trim = Some((name.to_string(), kept + n - policy.max_entries));
            kept = policy.max_entries;
        } else {
            kept += n;
        }
    }
    out.delete_days.reverse();
    out
}

/// The history in memory: entries by start time (ties in the order recorded), and the payment
/// hashes already recorded, so reconciling a paid `rebalance-` invoice records it only once.
#[derive(Debug, Clone, Default)]
pub struct History {
    entries: Vec<Entry>,
    complete: HashSet<[u8; 32]>,
    failed: HashSet<[u8; 32]>,
}

impl History {
    pub fn new() -> Self {
        History::default()
    }

    /// A history from decoded days (any order); duplicates are dropped as [`History::record`]
    /// would.
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Self {
        let mut all: Vec<Entry> = entries.into_iter().collect();
        all.sort_by_key(|e| e.started_at);
        let mut h = History::default();
        h.entries.reserve(all.len());
        for e in all {
            if h.note_hash(&e) {
                h.entries.push(e);
            }
        }
        h
    }

    /// Remembers `e`'s hash; false if an entry with the same hash and the same outcome kind
    /// is already there. At most one complete and one failed entry per payment hash: a rebalance
    /// that timed out (failed, 200) and whose HTLC settled later gets its complete entry too.
    fn note_hash(&mut self, e: &Entry) -> bool {
        if e.payment_hash == NO_PAYMENT_HASH {
            return true;
        }
        let set = if e.is_complete() {
            &mut self.complete
        } else {
            &mut self.failed
        };
        set.insert(e.payment_hash)
    }

    /// Adds `e` unless an entry with its payment hash and outcome kind is already recorded.
    /// Returns whether it was added: write its record to the datastore only then.
    pub fn record(&mut self, e: Entry) -> bool {
        if !self.note_hash(&e) {
            return false;
        }
        let i = self
            .entries
            .partition_point(|x| x.started_at <= e.started_at);
        self.entries.insert(i, e);
        true
    }

    /// Whether any entry has this payment hash.
    pub fn contains(&self, payment_hash: &[u8; 32]) -> bool {
        self.complete.contains(payment_hash) || self.failed.contains(payment_hash)
    }

    /// Whether a complete entry has this payment hash: a paid `rebalance-` invoice without one
    /// still needs recording.
    pub fn contains_complete(&self, payment_hash: &[u8; 32]) -> bool {
        self.complete.contains(payment_hash)
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries started at or after `since`, oldest first.
    pub fn since(&self, since: u64) -> &[Entry] {
        let i = self.entries.partition_point(|e| e.started_at < since);
        &self.entries[i..]
    }

    /// Fees of every rebalance started at or after `since`, manual ones included; for the daily
    /// budget, `fees_since(now - DAY_SECS)`. Saturates: a bound that only errs high.
    pub fn fees_since(&self, since: u64) -> u64 {
        self.since(since)
            .iter()
            .fold(0u64, |s, e| s.saturating_add(e.fee_msat))
    }

    /// Each day's name and entry count, for [`retention`].
    pub fn day_counts(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        let mut last_day = None;
        for e in &self.entries {
            let day = e.started_at / DAY_SECS;
            if last_day == Some(day) {
                out.last_mut().expect("a day").1 += 1;
            } else {
                out.push((day_name(e.started_at), 1));
                last_day = Some(day);
            }
        }
        out
    }

    /// Removes what `r` says from memory, as the datastore will after the caller's deletes.
    pub fn apply_retention(&mut self, r: &Retention) {
        let delete: HashSet<u64> = r
            .delete_days
            .iter()
            .filter_map(|d| parse_day_name(d))
            .collect();
        let (mut trim_day, mut trim_left) = match &r.trim {
            Some((d, n)) => (parse_day_name(d), *n),
            None => (None, 0),
        };
        self.entries.retain(|e| {
            let day = e.started_at / DAY_SECS;
            if delete.contains(&day) {
                return false;
            }
            if trim_day == Some(day) && trim_left > 0 {
                trim_left -= 1;
                if trim_left == 0 {
                    trim_day = None;
                }
                return false;
            }
            true
        });
        self.complete.clear();
        self.failed.clear();
        let entries = std::mem::take(&mut self.entries);
        for e in &entries {
            self.note_hash(e);
        }
        self.entries = entries;
    }

    /// The records of one day, concatenated: the `hex` to rewrite a trimmed day with.
    pub fn encode_day(&self, day: &str) -> Vec<u8> {
        let Some(d) = parse_day_name(day) else {
            return Vec::new();
        };
        let (from, to) = (d * DAY_SECS, (d + 1) * DAY_SECS);
        let mut out = Vec::new();
        for e in self.since(from).iter().take_while(|e| e.started_at < to) {
            e.encode_into(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02T00:00:00Z.
    const DEC_2: u64 = 1_796_169_600;

    fn hash(n: u8) -> [u8; 32] {
        [n; 32]
    }

    fn entry(started_at: u64, fee_msat: u64, n: u8) -> Entry {
        Entry {
            started_at,
            outgoing: "800000x1x0".parse().unwrap(),
            incoming: "800001x2x1".parse().unwrap(),
            amount_msat: 300_000_000,
            fee_msat,
            attempts: 3,
            outcome: Outcome::Complete,
            duration_ms: 12_345,
            job_id: 7,
            payment_hash: hash(n),
            error: String::new(),
            parts: 1,
        }
    }

    fn failed(started_at: u64, n: u8, error: &str) -> Entry {
        Entry {
            fee_msat: 0,
            outcome: Outcome::Failed { code: 205 },
            job_id: 0,
            error: error.into(),
            parts: 1,
            ..entry(started_at, 0, n)
        }
    }

    #[test]
    fn day_names() {
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(day_name(DEC_2), "2026-12-02");
        assert_eq!(day_name(DEC_2 + DAY_SECS - 1), "2026-12-02");
        assert_eq!(day_name(DEC_2 + DAY_SECS), "2026-12-03");
        assert_eq!(day_name(951_782_400), "2000-02-29");
        assert_eq!(parse_day_name("2026-12-02"), Some(DEC_2 / DAY_SECS));
        assert_eq!(parse_day_name("2000-02-29"), Some(951_782_400 / DAY_SECS));
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-12-00",
            "2026-12-2",
            "2026/12/02",
            "+026-12-02",
            "1969-12-31",
            "liquidity",
        ] {
            assert_eq!(parse_day_name(bad), None, "{bad}");
        }
        // Every day of 400 years round-trips.
        for d in 0..146_097u64 {
            assert_eq!(parse_day_name(&day_name(d * DAY_SECS)), Some(d));
        }
        assert_eq!(
            entry(DEC_2 + 5, 0, 1).datastore_key(),
            [
                "cln-rebalance".to_string(),
                "history".into(),
                "2026-12-02".into()
            ]
        );
    }

    #[test]
    fn records_round_trip() {
        let long = "é".repeat(150); // 300 bytes: cut to 200, at a character boundary
        let entries = vec![
            entry(DEC_2, 1_234, 1),
            failed(
                DEC_2 + 60,
                2,
                "no route: every path costs more than the fee cap",
            ),
            Entry {
                outcome: Outcome::Failed { code: -1 },
                error: long.clone(),
                parts: 1,
                started_at: u64::MAX,
                duration_ms: u64::MAX,
                job_id: u64::MAX,
                attempts: u32::MAX,
                ..entry(0, 0, 3)
            },
        ];
        let mut day = Vec::new();
        for e in &entries {
            let r = e.encode();
            assert_eq!(&r[..3], b"RH\x01");
            day.extend_from_slice(&r);
        }
        // The fixed body, no error, and the parts byte appended after it.
        assert_eq!(
            entries[0].encode().len(),
            FRAME_BYTES + BODY_FIXED_BYTES + 1
        );
        let d = decode_day(&day);
        assert_eq!(d.error, None);
        assert_eq!(d.newer_versions, 0);
        assert_eq!(d.entries[..2], entries[..2]);
        assert_eq!(d.entries[2].error, "é".repeat(100));
        assert_eq!(
            d.entries[2],
            Entry {
                error: "é".repeat(100),
                parts: 1,
                ..entries[2].clone()
            }
        );
        assert_eq!(bounded_error(&long).len(), 200);
        assert_eq!(bounded_error(&"a".repeat(201)).len(), 200);
        assert_eq!(bounded_error(&format!("a{long}")).len(), 199);
        assert_eq!(decode_day(&[]), Decoded::default());

        let j = entries[1].to_json();
        assert_eq!(j["status"], "failed");
        assert_eq!(j["code"], 205);
        assert_eq!(j["outgoing"], "800000x1x0");
        assert_eq!(j["payment_hash"], "02".repeat(32));
        assert!(entries[0].to_json().get("code").is_none());
    }

    #[test]
    fn corrupt_and_foreign_data_stop_cleanly() {
        let a = entry(DEC_2, 1, 1).encode();
        let b = failed(DEC_2 + 1, 2, "x").encode();
        let two = [a.clone(), b.clone()].concat();
        let stops = |bytes: &[u8], kept: usize, offset: usize, why: &str| {
            let d = decode_day(bytes);
            assert_eq!(d.entries.len(), kept, "{why}");
            let e = d.error.expect(why);
            assert_eq!(e.offset, offset, "{why}");
            assert!(e.reason.contains(why), "{}", e.reason);
        };
        stops(&two[..two.len() - 1], 1, a.len(), "truncated");
        stops(&[a.clone(), vec![b'R']].concat(), 1, a.len(), "too short");
        let mut flipped = two.clone();
        flipped[a.len() + 20] ^= 1;
        stops(&flipped, 1, a.len(), "checksum");
        stops(
            b"{\"liquidity\":1}",
            0,
            0,
            "not a cln-rebalance history record",
        );
        stops(
            &[a.clone(), b"CRLQ\x01\x00\x00".to_vec()].concat(),
            1,
            a.len(),
            "not a cln",
        );

        // A record that frames and checksums well but says nonsense.
        let reframe = |mut rec: Vec<u8>, body_at: usize, v: u8| {
            rec[5 + body_at] = v;
            let n = rec.len();
            let sum = checksum(&rec[2..n - 4]);
            rec[n - 4..].copy_from_slice(&sum.to_be_bytes());
            rec
        };
        stops(&reframe(a.clone(), 44, 9), 0, 0, "outcome 9");
        stops(&reframe(b.clone(), 97, 50), 0, 0, "overruns");
        stops(&reframe(b.clone(), 98, 0xff), 0, 0, "not UTF-8");
        stops(&reframe(a.clone(), 24, 0xff), 0, 0, "21 million");
        let mut v0 = a.clone();
        v0[2] = 0;
        let n = v0.len();
        let sum = checksum(&v0[2..n - 4]);
        v0[n - 4..].copy_from_slice(&sum.to_be_bytes());
        stops(&v0, 0, 0, "version 0");
    }

    #[test]
    fn newer_versions_and_longer_bodies_are_read_around() {
        // A version-2 record with a longer body: skipped whole, what follows still read.
        let frame = |version: u8, body: &[u8]| {
            let mut r = RECORD_MAGIC.to_vec();
            r.push(version);
            r.extend_from_slice(&(body.len() as u16).to_be_bytes());
            r.extend_from_slice(body);
            let sum = checksum(&r[2..]);
            r.extend_from_slice(&sum.to_be_bytes());
            r
        };
        let a = entry(DEC_2, 1, 1);
        let v2 = frame(2, &[7u8; 300]);
        // A version-1 body with a field appended after the error message.
        let mut body = a.encode()[5..5 + BODY_FIXED_BYTES].to_vec();
        body.extend_from_slice(&[1, 2, 3, 4]);
        let longer = frame(1, &body);
        let d = decode_day(&[v2, longer, a.encode()].concat());
        assert_eq!(d.error, None);
        assert_eq!(d.newer_versions, 1);
        assert_eq!(d.entries, vec![a.clone(), a]);
        let short = frame(1, &[0u8; 10]);
        assert!(
            decode_day(&short)
                .error
                .unwrap()
                .reason
                .contains("needs 98")
        );
    }

    #[test]
    fn records_once_per_payment_hash() {
        let mut h = History::new();
        assert!(h.record(entry(DEC_2 + 100, 10, 1)));
        assert!(!h.record(entry(DEC_2 + 200, 10, 1)), "reconciled twice");
        assert!(h.record(failed(DEC_2 + 50, 2, "timeout")));
        assert!(!h.contains_complete(&hash(2)));
        // The timed-out payment settled after all: its complete entry is still recorded.
        assert!(h.record(entry(DEC_2 + 50, 20, 2)));
        assert!(!h.record(failed(DEC_2 + 50, 2, "again")));
        assert!(h.contains(&hash(1)) && h.contains(&hash(2)) && !h.contains(&hash(3)));
        assert!(h.contains_complete(&hash(2)));
        // No invoice, no hash: never deduplicated.
        assert!(h.record(failed(DEC_2 + 10, 0, "no route")));
        assert!(h.record(failed(DEC_2 + 10, 0, "no route")));
        assert!(!h.contains(&NO_PAYMENT_HASH));
        assert_eq!(h.len(), 5);
        let times: Vec<u64> = h.entries().iter().map(|e| e.started_at - DEC_2).collect();
        assert_eq!(times, vec![10, 10, 50, 50, 100]);
        assert_eq!(h.entries()[2].error, "timeout", "ties keep recording order");

        let loaded = History::from_entries(
            [entry(DEC_2 + 100, 10, 1), entry(DEC_2 + 100, 10, 1)]
                .into_iter()
                .chain(h.entries().iter().cloned()),
        );
        assert_eq!(loaded.len(), 5);
    }

    #[test]
    fn fees_since_is_a_window() {
        let h = History::from_entries([
            entry(DEC_2, 100, 1),
            entry(DEC_2 + 3600, 20, 2),
            failed(DEC_2 + 7200, 3, "x"),
            entry(DEC_2 + DAY_SECS, 3, 4),
        ]);
        assert_eq!(h.fees_since(0), 123);
        assert_eq!(h.fees_since(DEC_2), 123);
        assert_eq!(h.fees_since(DEC_2 + 1), 23);
        assert_eq!(h.fees_since(DEC_2 + DAY_SECS), 3);
        assert_eq!(h.fees_since(u64::MAX), 0);
        assert_eq!(h.since(DEC_2 + 3600).len(), 3);
        let huge = History::from_entries([entry(1, u64::MAX, 1), entry(2, 5, 2)]);
        assert_eq!(huge.fees_since(0), u64::MAX);
    }

    #[test]
    fn retention_by_age_and_count() {
        let p = RetentionPolicy::default();
        let now = DEC_2 + 3600;
        let today = DEC_2 / DAY_SECS;
        let name = |d: u64| day_name(d * DAY_SECS);
        // 2026-09-02 (today - 91): wholly older than 90 days; 2026-09-03 (today - 90) is not.
        let days = vec![
            (name(today - 91), 5),
            (name(today - 90), 5),
            (name(today), 5),
            ("not-a-day".to_string(), 1),
        ];
        let r = retention(&days, now, &p);
        assert_eq!(r.delete_days, vec!["2026-09-02".to_string()]);
        assert_eq!(r.trim, None);
        assert!(retention(&days[1..], now, &p).is_empty());

        // Over 10000 entries: the oldest days go, the boundary day is trimmed.
        let days = vec![
            (name(today), 4_000),
            (name(today - 1), 5_000),
            (name(today - 2), 3_000),
            (name(today - 3), 10),
        ];
        let r = retention(&days, now, &p);
        assert_eq!(r.delete_days, vec![name(today - 3)]);
        assert_eq!(r.trim, Some((name(today - 2), 2_000)));

        // Applied to a history in memory, and the trimmed day re-encoded.
        let small = RetentionPolicy {
            max_age_days: 90,
            max_entries: 4,
        };
        let mut h = History::from_entries([
            entry(DEC_2 - 2 * DAY_SECS, 1, 1),
            entry(DEC_2 - DAY_SECS, 2, 2),
            entry(DEC_2 - DAY_SECS + 10, 3, 3),
            entry(DEC_2 - DAY_SECS + 20, 4, 4),
            entry(DEC_2, 5, 5),
            entry(DEC_2 + 1, 6, 6),
        ]);
        assert_eq!(
            h.day_counts(),
            vec![(name(today - 2), 1), (name(today - 1), 3), (name(today), 2)]
        );
        let r = retention(&h.day_counts(), now, &small);
        assert_eq!(r.delete_days, vec![name(today - 2)]);
        assert_eq!(r.trim, Some((name(today - 1), 1)));
        h.apply_retention(&r);
        let fees: Vec<u64> = h.entries().iter().map(|e| e.fee_msat).collect();
        assert_eq!(fees, vec![3, 4, 5, 6]);
        assert!(!h.contains(&hash(2)), "dropped entries are forgotten");
        let rewritten = decode_day(&h.encode_day(&name(today - 1)));
        assert_eq!(rewritten.entries, h.entries()[..2].to_vec());
        assert!(h.encode_day("nonsense").is_empty());
        assert!(retention(&h.day_counts(), now, &small).is_empty());
    }
}

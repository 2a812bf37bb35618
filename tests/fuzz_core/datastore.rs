//! Datastore values: the liquidity model's record and the history's records, from arbitrary and structured bytes, round trips and mutations; hex.

use super::*;

/// A model built through its API, as the plugin builds one.
pub(crate) fn model_ops() -> BoxedStrategy<Vec<ModelOp>> {
    prop::collection::vec(model_op(), 0..30).boxed()
}

#[derive(Debug, Clone)]
pub(crate) enum ModelOp {
    Failed(usize, u64),
    Forwarded(usize, u64),
    Settled(usize, u64),
    Exact(usize, u64),
    ChannelFailed(usize),
    NodeFailed(String),
    InFlight(usize, u64, bool),
    Advance(u64),
    Back(u64),
    Prune(usize),
    Reset(Option<usize>),
    /// A failure over a channel direction other than 0/1 (the graph decoder takes any u8).
    OddDirection(u8, u64),
}

/// Channel directions the model ops pick from: 3 channels, both directions.
pub(crate) const MODEL_DIRS: usize = 6;

pub(crate) fn model_cd(i: usize) -> ChanDir {
    ChanDir::new(
        Scid((((i / 2) as u64 + 1) << 40) | (7 << 16)),
        (i % 2) as u8,
    )
}

pub(crate) fn model_amount() -> BoxedStrategy<u64> {
    prop_oneof![
        3 => 0u64..2_000_000_000,
        1 => any::<u64>(),
        1 => prop::sample::select(vec![0, 1, u64::MAX, u64::MAX - 1, 1 << 53, (1 << 53) + 1]),
    ]
    .boxed()
}

pub(crate) fn model_op() -> BoxedStrategy<ModelOp> {
    let cd = 0..MODEL_DIRS;
    prop_oneof![
        3 => (cd.clone(), model_amount()).prop_map(|(c, a)| ModelOp::Failed(c, a)),
        3 => (cd.clone(), model_amount()).prop_map(|(c, a)| ModelOp::Forwarded(c, a)),
        2 => (cd.clone(), model_amount()).prop_map(|(c, a)| ModelOp::Settled(c, a)),
        2 => (cd.clone(), model_amount()).prop_map(|(c, a)| ModelOp::Exact(c, a)),
        1 => cd.clone().prop_map(ModelOp::ChannelFailed),
        1 => prop_oneof![
            3 => prop::sample::select(node_id_pool()),
            1 => any::<String>(),
            1 => "[a-zé]{250,260}",
        ]
        .prop_map(ModelOp::NodeFailed),
        1 => (cd, model_amount(), any::<bool>()).prop_map(|(c, a, add)| ModelOp::InFlight(c, a, add)),
        2 => prop_oneof![0u64..100, 0u64..100_000, any::<u64>()].prop_map(ModelOp::Advance),
        1 => (0u64..10_000).prop_map(ModelOp::Back),
        1 => (0usize..5).prop_map(ModelOp::Prune),
        1 => prop::option::of(0usize..3).prop_map(ModelOp::Reset),
        1 => (2u8..=255, model_amount()).prop_map(|(d, a)| ModelOp::OddDirection(d, a)),
    ]
    .boxed()
}

/// Channel capacities for the model ops (one per channel), on every scale.
pub(crate) fn model_capacities() -> BoxedStrategy<[u64; 3]> {
    let cap = prop_oneof![
        3 => 1u64..10_000_000_000,
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => any::<u64>(),
        1 => prop::sample::select(vec![1 << 53, (1 << 53) + 1, (1 << 60) - 1, MAX_MONEY_MSAT]),
    ];
    [cap.clone(), cap.clone(), cap].boxed()
}

/// Applies `ops`, checking the model's invariants after each one (`check` may be a no-op).
pub(crate) fn apply_ops(
    ops: &[ModelOp],
    caps: &[u64; 3],
    start: u64,
    half_life: u64,
    mut check: impl FnMut(&Liquidity, u64) -> Result<(), TestCaseError>,
) -> Result<(Liquidity, u64), TestCaseError> {
    let mut l = Liquidity::new();
    let mut now = start;
    let cap = |c: usize| caps[c / 2];
    for op in ops {
        match op {
            ModelOp::Failed(c, a) => l.failed(model_cd(*c), *a, cap(*c), now, half_life),
            ModelOp::Forwarded(c, a) => l.forwarded(model_cd(*c), *a, cap(*c), now, half_life),
            ModelOp::Settled(c, a) => l.settled(model_cd(*c), *a, cap(*c), now, half_life),
            ModelOp::Exact(c, a) => l.exact(model_cd(*c), *a, cap(*c), now),
            ModelOp::ChannelFailed(c) => l.channel_failed(model_cd(*c), now),
            ModelOp::NodeFailed(id) => l.node_failed(id, now),
            ModelOp::InFlight(c, a, add) => l.in_flight(model_cd(*c), *a, *add),
            ModelOp::Advance(dt) => now = now.saturating_add(*dt),
            ModelOp::Back(dt) => now = now.saturating_sub(*dt),
            ModelOp::Prune(max) => {
                l.prune(now, half_life, *max);
                let (chans, _) = l.len();
                prop_assert!(chans <= *max, "prune kept {} > {}", chans, max);
            }
            ModelOp::Reset(scid) => {
                l.reset(scid.map(|c| model_cd(c * 2).short_channel_id));
            }
            ModelOp::OddDirection(d, a) => {
                let cd = ChanDir::new(model_cd(0).short_channel_id, *d);
                l.failed(cd, *a, caps[0], now, half_life);
            }
        }
        check(&l, now)?;
    }
    Ok((l, now))
}

#[test]
pub(crate) fn fuzz_liquidity_decode_arbitrary_bytes() {
    let tally = Tally::default();
    // Raw bytes, and bytes behind a valid header so the decoder gets past the magic.
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        (prop::collection::vec(any::<u8>(), 0..200), 0u32..5).prop_map(|(tail, n)| {
            let mut b = b"CRLQ\x01".to_vec();
            b.extend_from_slice(&n.to_be_bytes());
            b.extend(tail);
            b
        }),
    ];
    fuzz(
        "Liquidity::decode arbitrary bytes",
        3000,
        bytes,
        &tally,
        |b| {
            match Liquidity::decode(&b) {
                Ok(l) => {
                    tally.add("decoded");
                    check_idempotent(&l)?;
                }
                Err(_) => tally.add("refused"),
            }
            Ok(())
        },
    );
}

/// One channel direction as the record stores it: scid, direction, min, max, updated,
/// failed_at.
pub(crate) type RawEntry = (u64, u8, u64, u64, u64, u64);

/// A liquidity record laid out field by field with random values (directions 0-2, min above
/// max sometimes, node ids of any bytes, a claimed count off by one, trailing bytes), and
/// whether the format's rules (liquidity.rs's doc and decode) accept it, and whether it is in
/// the one form encode writes (entries sorted by channel direction, node ids sorted, no
/// repeats).
pub(crate) fn liquidity_record() -> BoxedStrategy<(Vec<u8>, bool, bool)> {
    let entry = (
        prop_oneof![0u64..4, any::<u64>()],
        prop_oneof![6 => 0u8..2, 1 => 2u8..=255],
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        prop::bool::weighted(0.8),
    )
        .prop_map(|(scid, dir, a, b, updated, failed, ordered)| {
            let (min, max) = if ordered {
                (a.min(b), a.max(b))
            } else {
                (a, b)
            };
            (scid, dir, min, max, updated, failed)
        });
    let node = (
        prop_oneof![
            3 => "[0-9a-f]{66}".prop_map(String::into_bytes),
            1 => any::<String>().prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..20),
        ],
        any::<u64>(),
    );
    (
        prop::collection::vec(entry, 0..5),
        prop::collection::vec(node, 0..4),
        prop_oneof![8 => Just(0i64), 1 => Just(-1i64), 1 => Just(1i64)],
        prop_oneof![8 => Just(vec![]), 1 => prop::collection::vec(any::<u8>(), 1..3)],
    )
        .prop_map(
            |(entries, nodes, miscount, trailing): (Vec<RawEntry>, _, i64, Vec<u8>)| {
                let mut b = b"CRLQ\x01".to_vec();
                let claimed = (entries.len() as i64 + miscount).max(0) as u32;
                b.extend_from_slice(&claimed.to_be_bytes());
                for &(scid, dir, min, max, updated, failed) in &entries {
                    b.extend_from_slice(&scid.to_be_bytes());
                    b.push(dir);
                    for v in [min, max, updated, failed] {
                        b.extend_from_slice(&v.to_be_bytes());
                    }
                }
                b.extend_from_slice(&(nodes.len() as u32).to_be_bytes());
                for (id, t) in &nodes {
                    let id = &id[..id.len().min(255)];
                    b.push(id.len() as u8);
                    b.extend_from_slice(id);
                    b.extend_from_slice(&t.to_be_bytes());
                }
                b.extend_from_slice(&trailing);
                let valid = miscount == 0
                    && trailing.is_empty()
                    && entries.iter().all(|e| e.1 <= 1 && e.2 <= e.3)
                    && nodes
                        .iter()
                        .all(|(id, _)| std::str::from_utf8(&id[..id.len().min(255)]).is_ok());
                let canonical = valid
                    && entries
                        .windows(2)
                        .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1))
                    && nodes
                        .windows(2)
                        .all(|w| w[0].0[..w[0].0.len().min(255)] < w[1].0[..w[1].0.len().min(255)]);
                (b, valid, canonical)
            },
        )
        .boxed()
}

#[test]
pub(crate) fn fuzz_liquidity_decode_structured_records() {
    let tally = Tally::default();
    fuzz(
        "Liquidity::decode field-by-field records",
        3000,
        liquidity_record(),
        &tally,
        |(b, valid, canonical)| {
            let got = Liquidity::decode(&b);
            tally.add(if got.is_ok() { "decoded" } else { "refused" });
            // A miscount can still parse when the bytes line up (one entry fewer, its bytes read
            // as the node count...): only a valid record must decode, and whatever decodes must
            // round-trip.
            if valid {
                prop_assert!(got.is_ok(), "valid record refused: {:?}", got.err());
            }
            if let Ok(l) = got {
                check_idempotent(&l)?;
                if canonical {
                    tally.add("canonical");
                    prop_assert_eq!(l.encode(), b, "encode(decode(x)) == x");
                }
            }
            Ok(())
        },
    );
}

/// A model's encoding decodes to the same model (less what cannot be stored: directions
/// other than 0/1, node ids over 255 bytes), and re-encodes to the same bytes.
pub(crate) fn check_idempotent(l: &Liquidity) -> Result<(), TestCaseError> {
    let again = l.encode();
    let back = Liquidity::decode(&again)
        .map_err(|e| TestCaseError::fail(format!("what encode wrote, decode refused: {e}")))?;
    let mut storable = l.entries();
    storable.retain(|e| e.0.direction <= 1);
    let mut nodes = l.failed_nodes();
    nodes.retain(|(id, _)| id.len() <= 255);
    prop_assert_eq!(back.entries(), storable);
    prop_assert_eq!(back.failed_nodes(), nodes);
    prop_assert_eq!(back.encode(), again);
    Ok(())
}

/// A change to a valid encoding.
#[derive(Debug, Clone)]
pub(crate) enum ByteMutation {
    Flip(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Extend(Vec<u8>),
    Set(prop::sample::Index, u8),
}

pub(crate) fn byte_mutation() -> BoxedStrategy<ByteMutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, b)| ByteMutation::Flip(i, b)),
        any::<prop::sample::Index>().prop_map(ByteMutation::Truncate),
        prop::collection::vec(any::<u8>(), 1..40).prop_map(ByteMutation::Extend),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| ByteMutation::Set(i, b)),
    ]
    .boxed()
}

pub(crate) fn mutate(bytes: &mut Vec<u8>, m: &ByteMutation) {
    if bytes.is_empty() {
        return;
    }
    match m {
        ByteMutation::Flip(i, bit) => {
            let i = i.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        ByteMutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        ByteMutation::Extend(tail) => bytes.extend(tail),
        ByteMutation::Set(i, b) => {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
    }
}

#[test]
pub(crate) fn fuzz_liquidity_encodings_round_trip_and_mutations() {
    let tally = Tally::default();
    let cases = (
        model_ops(),
        model_capacities(),
        0u64..2_000_000_000,
        prop::collection::vec(byte_mutation(), 1..4),
    );
    fuzz(
        "Liquidity encode/decode + mutations",
        3000,
        cases,
        &tally,
        |(ops, caps, start, muts)| {
            let (l, _) = apply_ops(&ops, &caps, start, 3600, |_, _| Ok(()))?;
            // decode(encode(l)) == l and encode(decode(x)) == x.
            check_idempotent(&l)?;
            let x = l.encode();
            let mut y = x.clone();
            for m in &muts {
                mutate(&mut y, m);
            }
            match Liquidity::decode(&y) {
                Ok(m) => {
                    tally.add("mutation decoded");
                    check_idempotent(&m)?;
                }
                Err(_) => tally.add("mutation refused"),
            }
            // The datastore holds it as hex.
            prop_assert_eq!(store::from_hex(&store::to_hex(&y)), Ok(y));
            Ok(())
        },
    );
}

#[test]
pub(crate) fn fuzz_store_from_hex() {
    let tally = Tally::default();
    let strings = prop_oneof![
        any::<String>(),
        "[0-9a-fA-F]{0,40}",
        "[0-9a-gA-G ]{0,9}",
        "[0-9a-f]{0,8}[é€🦀][0-9a-f]{0,8}",
    ];
    fuzz("store::from_hex", 3000, strings, &tally, |s| {
        let want_ok = s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit());
        match store::from_hex(&s) {
            Ok(b) => {
                tally.add("ok");
                prop_assert!(want_ok, "accepted {:?}", s);
                prop_assert_eq!(b.len(), s.len() / 2);
                prop_assert_eq!(store::to_hex(&b), s.to_ascii_lowercase());
            }
            Err(_) => {
                tally.add("refused");
                prop_assert!(!want_ok, "refused {:?}", s);
            }
        }
        Ok(())
    });
}

pub(crate) fn history_entry() -> BoxedStrategy<history::Entry> {
    (
        (any::<u64>(), any::<u64>(), any::<u64>()),
        (0..=MAX_MONEY_MSAT, 0..=MAX_MONEY_MSAT, any::<u32>()),
        prop_oneof![
            Just(Outcome::Complete),
            any::<i32>().prop_map(|code| Outcome::Failed { code })
        ],
        (any::<u64>(), any::<u64>(), any::<[u8; 32]>()),
        prop_oneof![any::<String>(), "[a-zé€🦀 ]{190,260}", Just(String::new())],
    )
        .prop_map(
            |(
                (started_at, out, inc),
                (amount_msat, fee_msat, attempts),
                outcome,
                (duration_ms, job_id, payment_hash),
                error,
            )| {
                history::Entry {
                    started_at,
                    outgoing: Scid(out),
                    incoming: Scid(inc),
                    amount_msat,
                    fee_msat,
                    attempts,
                    outcome,
                    duration_ms,
                    job_id,
                    payment_hash,
                    error,
                    parts: 1,
                }
            },
        )
        .boxed()
}

#[test]
pub(crate) fn fuzz_history_decode_arbitrary_bytes() {
    let tally = Tally::default();
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (
            any::<u8>(),
            any::<u16>(),
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(version, len, tail)| {
                let mut b = b"RH".to_vec();
                b.push(version);
                b.extend_from_slice(&len.to_be_bytes());
                b.extend(tail);
                b
            }),
    ];
    fuzz(
        "history::decode_day arbitrary bytes",
        3000,
        bytes,
        &tally,
        |b| {
            let d = history::decode_day(&b);
            tally.add(if d.error.is_some() {
                "stopped"
            } else {
                "clean"
            });
            for e in &d.entries {
                let again = e.encode();
                let back = history::decode_day(&again);
                prop_assert_eq!(&back.entries, &vec![e.clone()]);
                prop_assert!(back.error.is_none());
            }
            Ok(())
        },
    );
}

/// A version-1 body's fixed fields in order: started_at, outgoing, incoming, amount_msat,
/// fee_msat, attempts, outcome, code, duration_ms, job_id, payment_hash.
pub(crate) type RecordFields = (u64, u64, u64, u64, u64, u32, u8, i32, u64, u64, [u8; 32]);

/// A history record laid out field by field (see history.rs's format doc), with random
/// values where the format has rules: the version, amounts past 21M BTC, the outcome byte,
/// an error length past the body, non-UTF-8 errors, extra body bytes, a wrong checksum.
#[derive(Debug, Clone)]
pub(crate) struct RawRecord {
    pub(crate) version: u8,
    pub(crate) fields: RecordFields,
    pub(crate) error: Vec<u8>,
    pub(crate) error_len_excess: u8,
    pub(crate) extra: Vec<u8>,
    pub(crate) bad_checksum: bool,
}

/// FNV-1a (32 bit), as the format doc specifies the checksum.
pub(crate) fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h = 0x811c_9dc5u32;
    for &b in bytes {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

impl RawRecord {
    fn bytes(&self) -> Vec<u8> {
        let f = &self.fields;
        let mut body = Vec::new();
        for v in [f.0, f.1, f.2, f.3, f.4] {
            body.extend_from_slice(&v.to_be_bytes());
        }
        body.extend_from_slice(&f.5.to_be_bytes());
        body.push(f.6);
        body.extend_from_slice(&f.7.to_be_bytes());
        body.extend_from_slice(&f.8.to_be_bytes());
        body.extend_from_slice(&f.9.to_be_bytes());
        body.extend_from_slice(&f.10);
        body.push((self.error.len() as u8).saturating_add(self.error_len_excess));
        body.extend_from_slice(&self.error);
        body.extend_from_slice(&self.extra);
        let mut framed = vec![self.version];
        framed.extend_from_slice(&(body.len() as u16).to_be_bytes());
        framed.extend_from_slice(&body);
        let sum = fnv1a(&framed) ^ u32::from(self.bad_checksum);
        let mut out = b"RH".to_vec();
        out.extend_from_slice(&framed);
        out.extend_from_slice(&sum.to_be_bytes());
        out
    }

    /// What the format says this record is: `Ok(Some(entry))`, `Ok(None)` for a newer
    /// version (skipped), `Err` where decoding must stop.
    fn expected(&self) -> Result<Option<history::Entry>, ()> {
        let f = &self.fields;
        let error_len = usize::from(self.error.len() as u8) + usize::from(self.error_len_excess);
        let body_error: Vec<u8> = self.error.iter().chain(&self.extra).copied().collect();
        if self.bad_checksum || self.version == 0 {
            return Err(());
        }
        if self.version > 1 {
            return Ok(None);
        }
        if f.3 > MAX_MONEY_MSAT || f.4 > MAX_MONEY_MSAT || f.6 > 1 || error_len > body_error.len() {
            return Err(());
        }
        let error = String::from_utf8(body_error[..error_len].to_vec()).map_err(|_| ())?;
        Ok(Some(history::Entry {
            started_at: f.0,
            outgoing: Scid(f.1),
            incoming: Scid(f.2),
            amount_msat: f.3,
            fee_msat: f.4,
            attempts: f.5,
            outcome: if f.6 == 0 {
                Outcome::Complete
            } else {
                Outcome::Failed { code: f.7 }
            },
            duration_ms: f.8,
            job_id: f.9,
            payment_hash: f.10,
            error,
            // The byte after the error, appended to version 1 later: one part when absent.
            parts: body_error.get(error_len).copied().unwrap_or(1),
        }))
    }
}

pub(crate) fn raw_record() -> BoxedStrategy<RawRecord> {
    let amount = prop_oneof![8 => 0..=MAX_MONEY_MSAT, 1 => any::<u64>()];
    (
        prop_oneof![8 => Just(1u8), 1 => Just(0u8), 1 => 2u8..=255],
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            amount.clone(),
            amount,
            any::<u32>(),
            prop_oneof![8 => 0u8..2, 1 => any::<u8>()],
            any::<i32>(),
            any::<u64>(),
            any::<u64>(),
            any::<[u8; 32]>(),
        ),
        prop_oneof![
            4 => "[a-z é🦀]{0,40}".prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..10),
        ],
        prop_oneof![8 => Just(0u8), 1 => 1u8..5],
        prop_oneof![6 => Just(vec![]), 1 => prop::collection::vec(any::<u8>(), 1..8)],
        prop::bool::weighted(0.05),
    )
        .prop_map(
            |(version, fields, error, error_len_excess, extra, bad_checksum)| RawRecord {
                version,
                fields,
                error,
                error_len_excess,
                extra,
                bad_checksum,
            },
        )
        .boxed()
}

#[test]
pub(crate) fn fuzz_history_decode_structured_records() {
    let tally = Tally::default();
    let days = prop::collection::vec(raw_record(), 0..5);
    fuzz(
        "history::decode_day field-by-field records",
        3000,
        days,
        &tally,
        |records| {
            let mut bytes = Vec::new();
            let mut offsets = Vec::new();
            for r in &records {
                offsets.push(bytes.len());
                bytes.extend(r.bytes());
            }
            // What the format says: entries up to the first bad record, newer versions skipped.
            let (mut entries, mut newer, mut stop) = (Vec::new(), 0, None);
            for (r, at) in records.iter().zip(&offsets) {
                match r.expected() {
                    Ok(Some(e)) => entries.push(e),
                    Ok(None) => newer += 1,
                    Err(()) => {
                        stop = Some(*at);
                        break;
                    }
                }
            }
            let d = history::decode_day(&bytes);
            tally.add(if stop.is_some() { "stopped" } else { "clean" });
            tally.add_n("entries", entries.len() as u64);
            prop_assert_eq!(&d.entries, &entries);
            prop_assert_eq!(d.newer_versions, newer);
            prop_assert_eq!(d.error.map(|e| e.offset), stop);
            Ok(())
        },
    );
}

#[test]
pub(crate) fn fuzz_history_round_trip_and_mutations() {
    let tally = Tally::default();
    let cases = (
        prop::collection::vec(history_entry(), 0..5),
        prop::collection::vec(byte_mutation(), 1..3),
    );
    fuzz(
        "history records round trip + mutations",
        3000,
        cases,
        &tally,
        |(entries, muts)| {
            let mut x = Vec::new();
            for e in &entries {
                e.encode_into(&mut x);
            }
            let stored: Vec<history::Entry> = entries
                .iter()
                .map(|e| history::Entry {
                    error: history::bounded_error(&e.error).to_string(),
                    parts: 1,
                    ..e.clone()
                })
                .collect();
            let d = history::decode_day(&x);
            prop_assert_eq!(&d.entries, &stored);
            prop_assert!(d.error.is_none() && d.newer_versions == 0);
            let mut again = Vec::new();
            for e in &d.entries {
                e.encode_into(&mut again);
            }
            prop_assert_eq!(&again, &x, "encode(decode(x)) == x");
            // Mutated: never a panic, and what decodes is the stored entries' prefix (the checksum
            // catches any one changed byte), plus, after an extension, nothing made up.
            let mut y = x.clone();
            for m in &muts {
                mutate(&mut y, m);
            }
            let d = history::decode_day(&y);
            let n = d.entries.len().min(stored.len());
            prop_assert_eq!(&d.entries[..n], &stored[..n]);
            if muts.len() == 1
                && !y.is_empty()
                && !matches!(muts[0], ByteMutation::Extend(_))
                && y != x
            {
                tally.add("one change caught");
                prop_assert!(
                    d.entries.len() < stored.len() || d.error.is_some() || y.len() < x.len()
                );
            }
            Ok(())
        },
    );
}

//! The `listchannels` decode: valid documents and every prefix, mutated documents against a reference of which entries are valid, searches on odd graphs.

use super::*;

/// One `listchannels` entry as the test writes it.
#[derive(Debug, Clone)]
pub(crate) struct Chan {
    pub(crate) source: String,
    pub(crate) destination: String,
    pub(crate) scid: String,
    pub(crate) direction: Option<u8>,
    pub(crate) amount_msat: u64,
    pub(crate) active: bool,
    pub(crate) base: u32,
    pub(crate) ppm: u32,
    pub(crate) delay: u32,
    pub(crate) htlc_min: u64,
    pub(crate) htlc_max: Option<u64>,
}

impl Chan {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("source".into(), json!(self.source));
        m.insert("destination".into(), json!(self.destination));
        m.insert("short_channel_id".into(), json!(self.scid));
        if let Some(d) = self.direction {
            m.insert("direction".into(), json!(d));
        }
        m.insert("public".into(), json!(true));
        m.insert("amount_msat".into(), json!(self.amount_msat));
        m.insert("message_flags".into(), json!(1));
        m.insert("channel_flags".into(), json!(self.direction.unwrap_or(0)));
        m.insert("active".into(), json!(self.active));
        m.insert("last_update".into(), json!(1_700_000_000u64));
        m.insert("base_fee_millisatoshi".into(), json!(self.base));
        m.insert("fee_per_millionth".into(), json!(self.ppm));
        m.insert("delay".into(), json!(self.delay));
        m.insert("htlc_minimum_msat".into(), json!(self.htlc_min));
        if let Some(x) = self.htlc_max {
            m.insert("htlc_maximum_msat".into(), json!(x));
        }
        m.insert("features".into(), json!(""));
        Value::Object(m)
    }

    /// What the graph must hold for this entry: (scid, direction, source, destination,
    /// active, capacity, policy).
    fn expected(&self) -> (Scid, u8, String, String, bool, u64, [u64; 5]) {
        (
            self.scid.parse().expect("valid scid"),
            self.direction
                .unwrap_or(u8::from(self.source > self.destination)),
            self.source.clone(),
            self.destination.clone(),
            self.active,
            self.amount_msat,
            [
                u64::from(self.base),
                u64::from(self.ppm),
                u64::from(self.delay),
                self.htlc_min,
                self.htlc_max.unwrap_or(self.amount_msat),
            ],
        )
    }
}

pub(crate) fn node_id_pool() -> Vec<String> {
    let mut ids: Vec<String> = (1..=6).map(|i| format!("02{:064x}", i * 0x1111)).collect();
    ids.extend(
        [
            "ñødé",
            "节点",
            "🦀🦀",
            "a\"quote",
            "back\\slash",
            "ctl\u{1}",
            "",
            "03AbCdEf",
        ]
        .map(str::to_string),
    );
    ids
}

pub(crate) fn chan_entry() -> BoxedStrategy<Chan> {
    let ids = node_id_pool();
    let scid = prop_oneof![
        3 => (1u64..20, 0u64..3, 0u64..2).prop_map(|(b, t, o)| format!("{b}x{t}x{o}")),
        1 => (0u64..=0xFF_FFFF, 0u64..=0xFF_FFFF, 0u64..=0xFFFF)
            .prop_map(|(b, t, o)| format!("{b}x{t}x{o}")),
    ];
    (
        prop::sample::select(ids.clone()),
        prop::sample::select(ids),
        scid,
        prop_oneof![
            Just(None),
            Just(Some(0u8)),
            Just(Some(1u8)),
            any::<u8>().prop_map(Some)
        ],
        prop_oneof![
            Just(0u64),
            1u64..10_000_000_000,
            Just(u64::MAX),
            any::<u64>()
        ],
        prop::bool::weighted(0.85),
        (
            prop_oneof![0u32..2000, Just(u32::MAX), any::<u32>()],
            prop_oneof![0u32..5000, Just(u32::MAX), any::<u32>()],
            prop_oneof![0u32..200, Just(u32::MAX)],
        ),
        prop_oneof![Just(0u64), 0u64..10_000, any::<u64>()],
        prop_oneof![
            Just(None),
            any::<u64>().prop_map(Some),
            (0u64..10_000_000_000).prop_map(Some)
        ],
    )
        .prop_map(
            |(
                source,
                destination,
                scid,
                direction,
                amount_msat,
                active,
                (base, ppm, delay),
                htlc_min,
                htlc_max,
            )| Chan {
                source,
                destination,
                scid,
                direction,
                amount_msat,
                active,
                base,
                ppm,
                delay,
                htlc_min,
                htlc_max,
            },
        )
        .boxed()
}

/// `{"channels": [...]}`, with other top-level members around it sometimes.
pub(crate) fn document(chans: &[Chan], extra_top: bool) -> Value {
    let channels: Vec<Value> = chans.iter().map(Chan::to_json).collect();
    let mut top = Map::new();
    if extra_top {
        top.insert("before".into(), json!([1, {"channels": 5}]));
    }
    top.insert("channels".into(), Value::Array(channels));
    if extra_top {
        top.insert("after".into(), json!(null));
    }
    Value::Object(top)
}

/// The same JSON text with every non-ASCII character written as a `\u` escape (so the decoder's
/// owned-string path runs instead of the borrowed one).
pub(crate) fn ascii_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{:04x}", u));
            }
        }
    }
    out
}

pub(crate) type EdgeFacts = (Scid, u8, String, String, bool, u64, [u64; 5]);

/// Every edge of `g`, as [`Chan::expected`] writes one, sorted.
pub(crate) fn graph_facts(g: &Graph) -> Vec<EdgeFacts> {
    let mut v: Vec<_> = g
        .edges()
        .iter()
        .map(|e| {
            (
                e.short_channel_id,
                e.direction,
                g.node_id(e.source).to_string(),
                g.node_id(e.destination).to_string(),
                e.active,
                e.amount_msat,
                [
                    u64::from(e.policy.base_fee_millisatoshi),
                    u64::from(e.policy.fee_per_millionth),
                    u64::from(e.policy.delay),
                    e.policy.htlc_minimum_msat,
                    e.policy.htlc_maximum_msat,
                ],
            )
        })
        .collect();
    v.sort();
    v
}

/// The graph's indices agree with its edges: every edge is listed once among the edges into its
/// destination, and found by its scid and direction.
pub(crate) fn check_graph_indices(g: &Graph) -> Result<(), TestCaseError> {
    let mut seen = vec![0u32; g.edge_count()];
    for v in 0..g.node_count() as NodeIdx {
        for (i, e) in g.edges_into(v) {
            prop_assert_eq!(e.destination, v);
            seen[i as usize] += 1;
        }
    }
    prop_assert!(
        seen.iter().all(|&n| n == 1),
        "edges_into lists each edge once"
    );
    for e in g.edges() {
        let i = g.edge_by_scid(e.short_channel_id, e.direction);
        let found = i.map(|i| g.edge(i));
        prop_assert!(
            found.is_some_and(
                |f| f.short_channel_id == e.short_channel_id && f.direction == e.direction
            ),
            "edge_by_scid finds {}",
            e.short_channel_id
        );
    }
    for v in 0..g.node_count() as NodeIdx {
        prop_assert_eq!(g.node_idx(g.node_id(v)), Some(v));
    }
    Ok(())
}

#[test]
pub(crate) fn fuzz_listchannels_valid_documents_and_every_prefix() {
    let tally = Tally::default();
    let docs = (prop::collection::vec(chan_entry(), 0..8), any::<bool>());
    fuzz(
        "listchannels valid documents + every prefix",
        150,
        docs,
        &tally,
        |(chans, extra)| {
            let text = serde_json::to_string(&document(&chans, extra)).unwrap();
            let g = Graph::from_listchannels_json(text.as_bytes())
                .map_err(|e| TestCaseError::fail(format!("valid document refused: {e}\n{text}")))?;
            let ids: BTreeSet<&str> = chans
                .iter()
                .flat_map(|c| [c.source.as_str(), c.destination.as_str()])
                .collect();
            prop_assert_eq!(g.node_count(), ids.len());
            prop_assert_eq!(g.edge_count(), chans.len());
            let mut want: Vec<_> = chans.iter().map(Chan::expected).collect();
            want.sort();
            prop_assert_eq!(&graph_facts(&g), &want);
            check_graph_indices(&g)?;
            if chans.iter().any(|c| c.source == c.destination) {
                tally.add("with a self-loop");
            }
            // Escaped strings decode to the same graph.
            let escaped = ascii_escaped(&text);
            if escaped != text {
                tally.add("escaped");
                let g2 = Graph::from_listchannels_json(escaped.as_bytes())
                    .map_err(|e| TestCaseError::fail(format!("escaped document refused: {e}")))?;
                prop_assert_eq!(&graph_facts(&g2), &want);
            }
            // Every strict prefix is an error (never a panic), saying what failed.
            for end in 0..text.len() {
                match Graph::from_listchannels_json(&text.as_bytes()[..end]) {
                    Ok(_) => {
                        return Err(TestCaseError::fail(format!(
                            "prefix of {end} bytes accepted: {:?}",
                            &text[..end]
                        )));
                    }
                    Err(e) => prop_assert!(e.to_string().starts_with("cannot read listchannels: ")),
                }
                tally.add("prefixes");
            }
            Ok(())
        },
    );
}

/// Whether the decoder must accept an entry, by the documented rules: an object with the eleven
/// fields routing reads (`direction` and `htlc_maximum_msat` optional or null), each of its
/// type (integers in range, no fractions), a short_channel_id that parses; anything else
/// in it ignored.
pub(crate) fn entry_valid(v: &Value) -> bool {
    let Some(m) = v.as_object() else {
        return false;
    };
    let uint = |k: &str, max: u64| m.get(k).and_then(Value::as_u64).is_some_and(|n| n <= max);
    let text = |k: &str| m.get(k).is_some_and(Value::is_string);
    let optional = |k: &str, max: u64| {
        m.get(k)
            .is_none_or(|v| v.is_null() || v.as_u64().is_some_and(|n| n <= max))
    };
    text("source")
        && text("destination")
        && m.get("short_channel_id")
            .and_then(Value::as_str)
            .is_some_and(|s| s.parse::<Scid>().is_ok())
        && optional("direction", 255)
        && uint("amount_msat", u64::MAX)
        && m.get("active").is_some_and(Value::is_boolean)
        && uint("base_fee_millisatoshi", u64::from(u32::MAX))
        && uint("fee_per_millionth", u64::from(u32::MAX))
        && uint("delay", u64::from(u32::MAX))
        && uint("htlc_minimum_msat", u64::MAX)
        && optional("htlc_maximum_msat", u64::MAX)
}

pub(crate) const FIELDS: [&str; 11] = [
    "source",
    "destination",
    "short_channel_id",
    "direction",
    "amount_msat",
    "active",
    "base_fee_millisatoshi",
    "fee_per_millionth",
    "delay",
    "htlc_minimum_msat",
    "htlc_maximum_msat",
];

/// A change to one entry of a valid document.
#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    /// Drop a field.
    Remove(usize),
    /// A field gets another value (wrong types, huge, negative, fractional numbers).
    Replace(usize, Value),
    /// An unknown field is added.
    Extra(String, Value),
    /// The whole entry becomes another value.
    Entry(Value),
    /// The field's value written as other number text, straight into the JSON text.
    NumberText(usize, &'static str),
    /// The field appears twice in the entry's text.
    Duplicate(usize),
}

pub(crate) fn mutation() -> BoxedStrategy<Mutation> {
    let field = 0..FIELDS.len();
    let edge_values = prop::sample::select(vec![
        json!(-1),
        json!(1.5),
        json!(5.0),
        json!(256),
        json!(u64::from(u32::MAX) + 1),
        json!(u64::MAX),
        json!(1e20),
        json!("5"),
        json!(true),
        json!(null),
        json!("1x1x0"),
        json!([]),
        json!({}),
    ]);
    prop_oneof![
        field.clone().prop_map(Mutation::Remove),
        (field.clone(), prop_oneof![edge_values, arb_json()])
            .prop_map(|(f, v)| Mutation::Replace(f, v)),
        (key_name(), arb_json()).prop_map(|(k, v)| Mutation::Extra(k, v)),
        arb_json().prop_map(Mutation::Entry),
        (
            field.clone(),
            prop::sample::select(vec![
                "18446744073709551616",
                "-9223372036854775809",
                "1e400",
                "-0",
                "00",
                "1.0",
                "4294967296",
                "1E2",
                "0.0000001",
            ])
        )
            .prop_map(|(f, t)| Mutation::NumberText(f, t)),
        field.prop_map(Mutation::Duplicate),
    ]
    .boxed()
}

#[test]
pub(crate) fn fuzz_listchannels_mutated_documents() {
    let tally = Tally::default();
    let cases = (
        prop::collection::vec(chan_entry(), 1..6),
        prop::collection::vec((any::<prop::sample::Index>(), mutation()), 1..4),
    );
    fuzz(
        "listchannels mutated documents",
        3000,
        cases,
        &tally,
        |(chans, muts)| {
            let mut entries: Vec<Value> = chans.iter().map(Chan::to_json).collect();
            let mut text_edits: Vec<(usize, usize, &'static str)> = Vec::new();
            let mut exact = true; // whether `entry_valid` says what must happen
            for (which, m) in &muts {
                let i = which.index(entries.len());
                if let Mutation::Entry(v) = m {
                    entries[i] = v.clone();
                    // An array of the right values in field order is a valid struct to serde.
                    exact &= !v.is_array();
                    continue;
                }
                match (m, entries[i].as_object_mut()) {
                    (Mutation::Remove(f), Some(o)) => {
                        o.remove(FIELDS[*f]);
                    }
                    (Mutation::Replace(f, v), Some(o)) => {
                        o.insert(FIELDS[*f].to_string(), v.clone());
                    }
                    (Mutation::Extra(k, v), Some(o)) => {
                        o.insert(k.clone(), v.clone());
                    }
                    (Mutation::NumberText(f, t), Some(_)) => {
                        text_edits.push((i, *f, t));
                        exact = false;
                    }
                    (Mutation::Duplicate(f), Some(_)) => {
                        text_edits.push((i, *f, ""));
                        exact = false;
                    }
                    _ => {}
                }
            }
            let expect_ok = entries.iter().all(entry_valid);
            let mut text = serde_json::to_string(&json!({ "channels": entries })).unwrap();
            for (i, f, t) in text_edits {
                // Edit the i-th entry's field in the text, if it is still there as a member.
                let key = format!("\"{}\":", FIELDS[f]);
                let Some(start) = nth_entry_start(&text, i) else {
                    continue;
                };
                let Some(at) = text[start..].find(&key).map(|p| start + p) else {
                    continue;
                };
                let value_start = at + key.len();
                let value_end = value_end(&text, value_start);
                if t.is_empty() {
                    let member = text[at..value_end].to_string();
                    text.insert_str(value_end, &format!(",{member}"));
                } else {
                    text.replace_range(value_start..value_end, t);
                }
            }
            let got = Graph::from_listchannels_json(text.as_bytes());
            match &got {
                Ok(g) => {
                    tally.add("accepted");
                    prop_assert_eq!(g.edge_count(), entries.len());
                    check_graph_indices(g)?;
                }
                Err(e) => {
                    tally.add("refused");
                    prop_assert!(e.to_string().starts_with("cannot read listchannels: "));
                }
            }
            if exact {
                tally.add("checked against the spec");
                check(got.is_ok() == expect_ok, || {
                    format!(
                        "decode says {:?}, the spec says {}: {text}",
                        got.as_ref().map(|g| g.edge_count()),
                        if expect_ok { "valid" } else { "invalid" }
                    )
                })?;
            }
            Ok(())
        },
    );
}

/// Byte offset of the `i`-th entry's `{` in `{"channels":[{...},{...}]}` as serde_json writes
/// it (entries are objects here; nested objects are skipped by depth).
pub(crate) fn nth_entry_start(text: &str, i: usize) -> Option<usize> {
    let arr = text.find('[')?;
    let mut depth = 0i32;
    let mut in_str = false;
    let mut escaped = false;
    let mut count = 0;
    for (p, c) in text[arr + 1..].char_indices() {
        let p = p + arr + 1;
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => {
                if depth == 0 && c == '{' {
                    if count == i {
                        return Some(p);
                    }
                    count += 1;
                }
                depth += 1;
            }
            '}' | ']' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Where the JSON value starting at `start` ends (scalars and strings only matter here).
pub(crate) fn value_end(text: &str, start: usize) -> usize {
    let b = text.as_bytes();
    if b.get(start) == Some(&b'"') {
        let mut p = start + 1;
        while p < b.len() && b[p] != b'"' {
            p += if b[p] == b'\\' { 2 } else { 1 };
        }
        return (p + 1).min(b.len());
    }
    let mut p = start;
    let mut depth = 0i32;
    while p < b.len() {
        match b[p] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => break,
            b'}' | b']' => depth -= 1,
            b',' if depth == 0 => break,
            _ => {}
        }
        p += 1;
    }
    p
}

#[test]
pub(crate) fn fuzz_listchannels_searches_on_odd_graphs() {
    let tally = Tally::default();
    // Few nodes and scids: self-loops, duplicate channels, 0-capacity and tiny edges abound.
    let small_ids: Vec<String> = (1..=5).map(|i| format!("02{:064x}", i)).collect();
    let entry = (
        prop::sample::select(small_ids.clone()),
        prop::sample::select(small_ids),
        (1u64..6).prop_map(|b| format!("{b}x1x0")),
        prop_oneof![Just(0u64), 1u64..5_000, Just(u64::MAX)],
        prop::bool::weighted(0.9),
        (0u32..50, 0u32..5000, 0u32..100),
        prop_oneof![Just(0u64), 0u64..3000],
        prop_oneof![Just(None), (0u64..5000).prop_map(Some)],
    )
        .prop_map(
            |(
                source,
                destination,
                scid,
                amount_msat,
                active,
                (base, ppm, delay),
                htlc_min,
                htlc_max,
            )| Chan {
                source,
                destination,
                scid,
                direction: None,
                amount_msat,
                active,
                base,
                ppm,
                delay,
                htlc_min,
                htlc_max,
            },
        );
    let cases = (
        prop::collection::vec(entry, 1..16),
        prop::collection::vec(
            (
                0u32..5,
                0u32..5,
                0u64..4000,
                prop_oneof![2 => Just(None), 1 => (0u64..300).prop_map(Some)],
            ),
            1..6,
        ),
    );
    fuzz(
        "listchannels odd graphs: searches",
        1500,
        cases,
        &tally,
        |(chans, queries)| {
            let text = serde_json::to_string(&document(&chans, false)).unwrap();
            let g = Graph::from_listchannels_json(text.as_bytes()).expect("valid document");
            let n = g.node_count() as u32;
            let mut scratch = Scratch::default();
            let mut beliefs = Beliefs::default();
            beliefs.rebuild(&g, &Liquidity::new(), 1000, ModelConfig::default());
            for (from, to, amount, max_fee) in queries {
                let q = Query {
                    from: from % n,
                    to: to % n,
                    deliver_msat: amount,
                    deliver_delay: 21,
                    max_edges: 18,
                    max_delay: MAX_TOTAL_CLTV,
                    max_amount_msat: u64::MAX,
                };
                let ex = Exclusions::default();
                // check_path: no node twice (so no self-loop), every edge active, within its
                // htlc limits and its capacity, the amounts and delays BOLT 7's.
                if let Some(p) = find_path(&g, &q, &ex, &mut scratch) {
                    tally.add("fee-only paths");
                    check_path(&g, &q, &ex, &p);
                    let best = exhaustive(&g, &q, &ex).expect("small graph");
                    prop_assert!(best.is_some_and(|b| p.source_amount_msat >= b.0));
                }
                if let Some(p) = find_path_with(&g, &q, &ex, &beliefs, &mut scratch) {
                    tally.add("model paths");
                    check_path(&g, &q, &ex, &p);
                }
                // Under a fee cap: every path found within it (check_path), and the cheapest
                // path, when it fits, found as it is without the cap.
                let Some(max_fee) = max_fee else { continue };
                let capped = Query {
                    max_amount_msat: amount.saturating_add(max_fee),
                    ..q.clone()
                };
                let uncapped = find_path(&g, &q, &ex, &mut scratch);
                let found = find_path(&g, &capped, &ex, &mut scratch);
                if let Some(p) = &found {
                    tally.add("fee-only paths under a cap");
                    check_path(&g, &capped, &ex, p);
                }
                if let Some(u) = uncapped.filter(|u| u.source_amount_msat <= capped.max_amount_msat)
                {
                    prop_assert_eq!(
                        found.map(|p| p.source_amount_msat),
                        Some(u.source_amount_msat)
                    );
                }
                if let Some(p) = find_path_with(&g, &capped, &ex, &beliefs, &mut scratch) {
                    tally.add("model paths under a cap");
                    check_path(&g, &capped, &ex, &p);
                }
            }
            Ok(())
        },
    );
}

//! The graph's tests: ids, decode, layout, parallel channels, the search's view.

use super::*;

#[test]
fn scid_roundtrip_and_errors() {
    let s: Scid = "103x1x0".parse().unwrap();
    assert_eq!(s.to_string(), "103x1x0");
    assert_eq!(s.block(), 103);
    let s: Scid = "16777215x16777215x65535".parse().unwrap();
    assert_eq!(s.to_string(), "16777215x16777215x65535");
    for bad in [
        "",
        "1x2",
        "1x2x3x4",
        "ax1x0",
        "16777216x0x0",
        "1x-1x0",
        "1:2:3",
    ] {
        assert!(bad.parse::<Scid>().is_err(), "{bad}");
    }
}

#[test]
fn parallel_edges_at_the_same_fees_form_rings() {
    let mut b = GraphBuilder::default();
    let free = free_policy();
    let dear = Policy {
        fee_per_millionth: 10,
        ..free
    };
    // a -> b: three at the same fees, one dearer, one inactive; b -> a: one; a -> c: one.
    for (n, active, policy) in [(1, true, free), (2, true, free), (3, true, free)] {
        b.add("a", "b", Scid(n << 40), 0, active, 1000, policy);
    }
    b.add("a", "b", Scid(4 << 40), 0, true, 1000, dear);
    b.add("a", "b", Scid(5 << 40), 0, false, 1000, free);
    b.add("b", "a", Scid(1 << 40), 1, true, 1000, free);
    b.add("a", "c", Scid(6 << 40), 0, true, 1000, free);
    let g = b.build();
    let e = |n: u64, d: u8| g.edge_by_scid(Scid(n << 40), d).unwrap();
    let group = |n: u64| {
        let mut v: Vec<u64> = g
            .parallel_to(e(n, 0))
            .map(|i| g.edge(i).short_channel_id.0 >> 40)
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(group(1), [2, 3]);
    assert_eq!(group(2), [1, 3]);
    assert_eq!(group(3), [1, 2]);
    for lone in [4, 5, 6] {
        assert!(group(lone).is_empty(), "{lone}");
    }
    assert_eq!(g.parallel_next(e(1, 1)), None);
    assert_eq!(g.parallel_edges().len(), 3);
}

#[test]
fn builds_from_listchannels() {
    let json = br#"{"channels":[
      {"source":"02aa","destination":"03bb","short_channel_id":"1x1x0","direction":0,"public":true,
       "amount_msat":1000000,"message_flags":1,"channel_flags":0,"active":true,"last_update":1,
       "base_fee_millisatoshi":1,"fee_per_millionth":10,"delay":6,"htlc_minimum_msat":0,
       "htlc_maximum_msat":990000,"features":""},
      {"source":"03bb","destination":"02aa","short_channel_id":"1x1x0","direction":1,"public":true,
       "amount_msat":1000000,"active":false,"last_update":1,
       "base_fee_millisatoshi":2,"fee_per_millionth":20,"delay":7,"htlc_minimum_msat":5}
    ]}"#;
    let g = Graph::from_listchannels_json(json).unwrap();
    assert_eq!(g.node_count(), 2);
    assert_eq!(g.edge_count(), 2);
    let a = g.node_idx("02aa").unwrap();
    let into_a: Vec<_> = g.edges_into(a).collect();
    assert_eq!(into_a.len(), 1);
    let e = into_a[0].1;
    assert_eq!(g.node_id(e.source), "03bb");
    assert!(!e.active);
    assert_eq!(
        e.policy.htlc_maximum_msat, 1_000_000,
        "missing max = capacity"
    );
    let idx = g.edge_by_scid("1x1x0".parse().unwrap(), 0).unwrap();
    assert_eq!(g.edge(idx).policy.fee_per_millionth, 10);
    assert!(Graph::from_listchannels_json(b"{\"channels\": 5}").is_err());
}

#[test]
fn decode_errors_and_other_fields() {
    let g = Graph::from_listchannels_json(br#"{"x":[1,{"y":2}],"channels":[],"z":null}"#);
    assert_eq!(g.unwrap().node_count(), 0);
    for bad in [
        &br#"{"other": 1}"#[..],
        br#"{"channels": [], "channels": []}"#,
        br#"{"channels": []} trailing"#,
        br#"[]"#,
        br#"{"channels": [{"source": "02aa"}]}"#,
    ] {
        let e = Graph::from_listchannels_json(bad).unwrap_err();
        assert!(e.to_string().starts_with("cannot read listchannels"), "{e}");
    }
    let bad_scid = br#"{"channels":[{"source":"a","destination":"b","short_channel_id":"1:2",
        "amount_msat":1,"active":true,"base_fee_millisatoshi":0,"fee_per_millionth":0,
        "delay":1,"htlc_minimum_msat":0}]}"#;
    let e = Graph::from_listchannels_json(bad_scid).unwrap_err();
    assert!(e.to_string().contains("not a short_channel_id"), "{e}");
}

#[test]
fn fee_fast_path_matches_the_u128_reference() {
    let amounts = [
        0,
        1,
        999_999,
        1_000_000,
        1_000_001,
        u64::MAX / 4_294_967_295,
        u64::MAX,
    ];
    for amount in amounts {
        for ppm in [0, 1, 10, 999_999, 1_000_000, u32::MAX] {
            for base in [0, 1, 1000, u32::MAX] {
                let p = Policy {
                    base_fee_millisatoshi: base,
                    fee_per_millionth: ppm,
                    delay: 0,
                    htlc_minimum_msat: 0,
                    htlc_maximum_msat: 0,
                };
                let want = crate::core::amount::fee_msat(amount, base, ppm);
                assert_eq!(p.fee_msat(amount), want, "{amount} {ppm} {base}");
            }
        }
    }
}

#[test]
fn sorted_lookups_match_single_ones() {
    let p = free_policy();
    let mut b = GraphBuilder::default();
    // 300 channels, both directions of the even ones, one of the odd ones.
    for n in 1..=300u64 {
        let (x, y) = (format!("n{}", n % 17), format!("m{}", n % 23));
        b.add(&x, &y, Scid(n << 40), 0, true, 1000, p);
        if n % 2 == 0 {
            b.add(&y, &x, Scid(n << 40), 1, true, 1000, p);
        }
    }
    let g = b.build();
    // Every key from 0 to 301 in both directions: present and absent ones mixed, runs of
    // misses, the first and last entries, and keys past the end.
    let keys: Vec<(Scid, u8)> = (0..=301u64)
        .flat_map(|n| [(Scid(n << 40), 0), (Scid(n << 40), 1)])
        .collect();
    let mut got = Vec::new();
    g.edges_by_scid_sorted(keys.iter().copied(), |k, e| got.push((k, e)));
    let want: Vec<_> = keys
        .iter()
        .filter_map(|&(s, d)| Some(((s, d), g.edge_by_scid(s, d)?)))
        .collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), 450);
    // A sparse subset, and nothing at all.
    let sparse: Vec<_> = keys.iter().copied().step_by(37).collect();
    let mut got = Vec::new();
    g.edges_by_scid_sorted(sparse.iter().copied(), |k, e| got.push((k, e)));
    let want: Vec<_> = sparse
        .iter()
        .filter_map(|&(s, d)| Some(((s, d), g.edge_by_scid(s, d)?)))
        .collect();
    assert_eq!(got, want);
    g.edges_by_scid_sorted(std::iter::empty(), |_, _| panic!("no keys"));
}

#[test]
fn layout_orders_live_then_dead_end_then_inactive() {
    let p = free_policy();
    let mut b = GraphBuilder::default();
    let scid = |n: u64| Scid(n << 40);
    // "leaf" has one channel, to "hub"; "x" and "y" are connected to each other and the hub.
    b.add("leaf", "hub", scid(1), 0, true, 1000, p);
    b.add("hub", "leaf", scid(1), 1, true, 1000, p);
    b.add("x", "hub", scid(2), 0, true, 1000, p);
    b.add("hub", "x", scid(2), 1, true, 1000, p);
    b.add("y", "hub", scid(3), 0, false, 1000, p);
    b.add("hub", "y", scid(3), 1, true, 1000, p);
    b.add("x", "y", scid(4), 0, true, 1000, p);
    b.add("y", "x", scid(4), 1, true, 1000, p);
    let g = b.build();
    let (hub, leaf, x) = (
        g.node_idx("hub").unwrap(),
        g.node_idx("leaf").unwrap(),
        g.node_idx("x").unwrap(),
    );
    let sources = |dead: bool| -> Vec<&str> {
        let (first, edges) = g.search_edges_into(hub, dead);
        (0..edges.len() as u32)
            .map(|i| g.node_id(g.edge(first + i).source))
            .collect()
    };
    assert_eq!(sources(false), ["x"]);
    assert_eq!(sources(true), ["x", "leaf"]);
    let all: Vec<_> = g
        .edges_into(hub)
        .map(|(_, e)| g.node_id(e.source))
        .collect();
    assert_eq!(all, ["x", "leaf", "y"], "inactive last, still listed");
    assert!(g.dead_end(leaf, hub));
    assert!(!g.dead_end(x, hub));
    for (i, e) in g.edges().iter().enumerate() {
        assert_eq!(
            g.edge_by_scid(e.short_channel_id, e.direction),
            Some(i as u32)
        );
    }
}

//! askrene's layers as v26.06.6 answers them (plugins/askrene/askrene.c, layer.c): shapes,
//! errors, constraints and aging, a persistent layer's datastore record growing one record
//! per inform, reloaded at start, and xpay's layer aged every minute.

use super::askrene::{XPAY_AGE_EVERY_SECS, XPAY_LAYER_MAX_AGE_SECS};
use super::tests::{call, demo};
use super::*;
use serde_json::{Value, json};

fn err(n: &mut Network, method: &str, params: Value) -> RpcError {
    call(n, method, params).expect_err("should fail")
}

fn record_hex(n: &mut Network, name: &str) -> Option<String> {
    let v = call(
        n,
        "listdatastore",
        json!({"key": ["askrene", "layers", name]}),
    )
    .unwrap();
    v["datastore"][0]["hex"].as_str().map(str::to_string)
}

#[test]
fn create_list_and_their_errors() {
    let mut n = demo();
    assert_eq!(
        call(&mut n, "askrene-listlayers", json!({})).unwrap(),
        json!({"layers": []})
    );
    let v = call(&mut n, "askrene-create-layer", json!(["mine"])).unwrap();
    let layer = json!({"layer": "mine", "persistent": false, "disabled_nodes": [],
        "created_channels": [], "channel_updates": [], "constraints": [], "biases": [],
        "node_biases": []});
    assert_eq!(v, json!({"layers": [layer]}));
    assert_eq!(
        call(&mut n, "askrene-listlayers", json!({"layer": "mine"})).unwrap(),
        json!({"layers": [layer]})
    );
    let e = err(&mut n, "askrene-create-layer", json!({"layer": "mine"}));
    assert_eq!(
        (e.code, e.message.as_str()),
        (-32602, "Layer already exists")
    );
    // persistent=true on an existing layer is a no-op (it stays what it was).
    let v = call(&mut n, "askrene-create-layer", json!(["mine", true])).unwrap();
    assert_eq!(v["layers"][0]["persistent"], false);
    let e = err(&mut n, "askrene-create-layer", json!(["auto.mine"]));
    assert_eq!(
        (e.code, e.message.as_str()),
        (-32602, "Cannot create auto layer")
    );
    let e = err(&mut n, "askrene-listlayers", json!(["nope"]));
    assert_eq!(
        (e.code, e.message.as_str()),
        (-32602, "layer: Unknown layer: invalid token '\"nope\"'")
    );
    let e = err(&mut n, "askrene-age", json!(["nope", 1]));
    assert_eq!(e.message, "layer: Unknown layer: invalid token '\"nope\"'");
    assert_eq!(
        call(&mut n, "askrene-remove-layer", json!(["mine"])).unwrap(),
        json!({})
    );
    assert_eq!(
        call(&mut n, "askrene-listlayers", json!([])).unwrap(),
        json!({"layers": []})
    );
}

#[test]
fn inform_channel_records_constraints_and_age_removes_old_ones() {
    let mut n = demo();
    let t0 = n.now();
    call(&mut n, "askrene-create-layer", json!(["l"])).unwrap();
    let v = call(
        &mut n,
        "askrene-inform-channel",
        json!(["l", "700101x7x1/0", 300_000_000u64, "constrained"]),
    )
    .unwrap();
    assert_eq!(
        v,
        json!({"constraints": [{"layer": "l", "short_channel_id_dir": "700101x7x1/0",
                                "timestamp": t0, "maximum_msat": 299_999_999u64}]})
    );
    call(&mut n, "dev-timetravel", json!({"seconds": 100})).unwrap();
    let v = call(
        &mut n,
        "askrene-inform-channel",
        json!({"layer": "l", "short_channel_id_dir": "800001x1x0/1",
               "amount_msat": "1000sat", "inform": "unconstrained"}),
    )
    .unwrap();
    assert_eq!(
        v["constraints"][0],
        json!({"layer": "l", "short_channel_id_dir": "800001x1x0/1", "timestamp": t0 + 100,
               "minimum_msat": 1_000_000u64})
    );
    let v = call(
        &mut n,
        "askrene-inform-channel",
        json!(["l", "800001x1x0/1", 5, "succeeded"]),
    )
    .unwrap();
    assert_eq!(v, json!({"constraints": []}));
    let e = err(
        &mut n,
        "askrene-inform-channel",
        json!(["l", "800001x1x0/1", 5, "maybe"]),
    );
    assert_eq!(
        e.message,
        "inform: must be constrained/unconstrained/succeeded: invalid token '\"maybe\"'"
    );
    let e = err(
        &mut n,
        "askrene-inform-channel",
        json!(["l", "800001x1x0", 5, "succeeded"]),
    );
    assert_eq!(
        e.message,
        "short_channel_id_dir: should be a short_channel_id_dir of form NxNxN/N: invalid token \
         '\"800001x1x0\"'"
    );
    let l = call(&mut n, "askrene-listlayers", json!(["l"])).unwrap();
    let cs = l["layers"][0]["constraints"].as_array().unwrap();
    assert_eq!(cs.len(), 2);
    assert!(cs.iter().all(|c| c.get("layer").is_none()));

    // Older than the cutoff goes; the cutoff itself stays.
    let v = call(&mut n, "askrene-age", json!(["l", t0 + 100])).unwrap();
    assert_eq!(v, json!({"layer": "l", "num_removed": 1}));
    let l = call(&mut n, "askrene-listlayers", json!(["l"])).unwrap();
    assert_eq!(
        l["layers"][0]["constraints"],
        json!([{"short_channel_id_dir": "800001x1x0/1", "timestamp": t0 + 100,
                "minimum_msat": 1_000_000u64}])
    );
}

#[test]
fn a_persistent_layer_grows_in_the_datastore_until_aged_and_reloads() {
    let mut n = demo();
    let (_, ev) = n
        .call(
            "askrene-create-layer",
            &json!({"layer": "p", "persistent": true}),
        )
        .unwrap()
        .unwrap();
    assert!(ev.contains(&Event::DatastoreChanged));
    assert_eq!(record_hex(&mut n, "p").as_deref(), Some(""));
    for i in 0..3u64 {
        call(
            &mut n,
            "askrene-inform-channel",
            json!(["p", "700101x7x1/1", 1_000_000 + i, "constrained"]),
        )
        .unwrap();
        // u16 type, 8-byte scid, dir, u64 timestamp, (bool) min, (bool + u64) max.
        assert_eq!(
            record_hex(&mut n, "p").unwrap().len(),
            2 * 29 * (i as usize + 1)
        );
    }
    let rec = record_hex(&mut n, "p").unwrap();
    let scid = (700_101u64 << 40) | (7 << 16) | 1;
    assert_eq!(&rec[..4], "0003");
    assert_eq!(&rec[4..20], format!("{scid:016x}"));
    assert_eq!(&rec[20..22], "01");

    // A restarted askrene finds the layer as it was.
    let mut m = demo();
    m.datastore = n.datastore.clone();
    m.askrene_load_layers();
    assert_eq!(
        call(&mut m, "askrene-listlayers", json!(["p"])).unwrap(),
        call(&mut n, "askrene-listlayers", json!(["p"])).unwrap()
    );
    assert!(m.broken.is_empty());

    // Aging rewrites it whole.
    let cutoff = n.now() + 1;
    let v = call(&mut n, "askrene-age", json!(["p", cutoff])).unwrap();
    assert_eq!(v["num_removed"], 3);
    assert_eq!(record_hex(&mut n, "p").as_deref(), Some(""));
    call(&mut n, "askrene-remove-layer", json!(["p"])).unwrap();
    assert_eq!(record_hex(&mut n, "p"), None);
}

#[test]
fn xpay_keeps_its_layer_and_ages_it_every_minute() {
    let mut n = demo();
    n.start_xpay();
    let l = call(&mut n, "askrene-listlayers", json!(["xpay"])).unwrap();
    assert_eq!(l["layers"][0]["persistent"], true);
    assert_eq!(record_hex(&mut n, "xpay").as_deref(), Some(""));
    // What xpay would learn from a failure at hop 2: tests inform it themselves.
    call(
        &mut n,
        "askrene-inform-channel",
        json!(["xpay", "700101x7x1/0", 5_000_000, "constrained"]),
    )
    .unwrap();
    let count = |n: &mut Network| {
        call(n, "askrene-listlayers", json!(["xpay"])).unwrap()["layers"][0]["constraints"]
            .as_array()
            .unwrap()
            .len()
    };
    // An hour later it is still there (aged at most to one hour)...
    call(
        &mut n,
        "dev-timetravel",
        json!({"seconds": XPAY_LAYER_MAX_AGE_SECS}),
    )
    .unwrap();
    assert_eq!(count(&mut n), 1);
    // ... and gone at the next minute's aging.
    call(
        &mut n,
        "dev-timetravel",
        json!({"seconds": XPAY_AGE_EVERY_SECS}),
    )
    .unwrap();
    assert_eq!(count(&mut n), 0);
    assert!(n.broken.is_empty());
    // Starting xpay again (a restart) keeps the layer.
    n.start_xpay();
    assert_eq!(
        call(&mut n, "askrene-listlayers", json!([])).unwrap()["layers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn without_askrene_its_methods_are_unknown() {
    let mut n = demo();
    n.askrene = None;
    assert!(n.call("askrene-listlayers", &json!({})).is_none());
    assert!(n.start_xpay().is_empty());
    // Methods askrene has that the stand-in does not model are unknown too.
    let mut n = demo();
    assert!(n.call("askrene-reserve", &json!({})).is_none());
}

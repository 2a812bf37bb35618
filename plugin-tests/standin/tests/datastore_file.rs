//! `lightningd-standin --datastore-file`: the datastore outlives a restart of the stand-in, as
//! lightningd's outlives a restart of lightningd (its test_datastore's `l1.restart()`).
//! Runs the real binary and speaks JSON-RPC on its socket.

mod common;

use common::{Standin, test_dir};
use serde_json::json;

#[test]
fn datastore_survives_a_restart() {
    let dir = test_dir("ds");
    // Relative to the caller's cwd (the stand-in then moves into its network dir).
    let file = dir.join("datastore.json");
    let args = ["--datastore-file", "datastore.json"];

    // As on a real v26.06 node, xpay's persistent askrene layer is there from the start.
    let a = Standin::start(&dir, &args, &[]);
    assert_eq!(
        a.call("listdatastore", json!({}))["result"],
        json!({"datastore": [{"key": ["askrene"]}]})
    );
    a.ok("askrene-create-layer", json!(["mine", true]));
    a.ok(
        "askrene-inform-channel",
        json!(["mine", "800001x1x0/0", 1000, "constrained"]),
    );
    let layers = a.ok("askrene-listlayers", json!([]));
    let r = a.call(
        "datastore",
        json!({"key": ["cln-rebalance", "job"], "string": "{\"every\": 60}"}),
    );
    assert_eq!(r["result"]["generation"], 0);
    a.call(
        "datastore",
        json!({"key": ["cln-rebalance", "job"], "string": ",", "mode": "must-append"}),
    );
    a.call("datastore", json!({"key": "bin", "hex": "00ff"}));
    let e = a.call("datastore", json!({"key": "bin", "hex": "00"}));
    assert_eq!(e["error"]["code"], 1202);
    let before = a.call("listdatastore", json!({"key": "cln-rebalance"}))["result"].clone();
    assert!(file.exists(), "written on change");
    a.stop();

    let b = Standin::start(&dir, &args, &[]);
    // askrene finds its persistent layers again.
    assert_eq!(b.ok("askrene-listlayers", json!([])), layers);
    assert_eq!(
        b.call("listdatastore", json!({"key": "cln-rebalance"}))["result"],
        before
    );
    assert_eq!(before["datastore"][0]["generation"], 1);
    assert_eq!(before["datastore"][0]["string"], "{\"every\": 60},");
    assert_eq!(
        b.call("listdatastore", json!(["bin"]))["result"]["datastore"][0]["hex"],
        "00ff"
    );
    b.call("deldatastore", json!(["bin"]));
    b.ok("askrene-remove-layer", json!(["mine"]));
    b.stop();

    let c = Standin::start(&dir, &args, &[]);
    let all = c.call("listdatastore", json!({}))["result"].clone();
    assert_eq!(
        all,
        json!({"datastore": [{"key": ["askrene"]}, {"key": ["cln-rebalance"]}]})
    );
    assert_eq!(
        c.ok("listdatastore", json!([["askrene", "layers"]]))["datastore"],
        json!([{"key": ["askrene", "layers", "xpay"], "generation": 0, "hex": "",
                "string": ""}])
    );
    c.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

//! datastore, listdatastore, deldatastore, datastoreusage: lightningd's own tests
//! (tests/test_misc.py test_datastore, test_datastore_keylist, test_datastoreusage of v26.06)
//! replayed on the model, then the corners datastore.c has that those tests do not cover.

use super::tests::{call, call_ev, demo};
use super::*;
use serde_json::{Value, json};

fn err(n: &mut Network, method: &str, params: Value) -> RpcError {
    call(n, method, params).expect_err("should fail")
}

fn list(n: &mut Network, params: Value) -> Value {
    call(n, "listdatastore", params).unwrap()
}

#[test]
fn lightningd_test_datastore() {
    let mut n = demo();
    assert_eq!(list(&mut n, json!({})), json!({"datastore": []}));
    assert_eq!(list(&mut n, json!(["somekey"])), json!({"datastore": []}));
    let e = err(&mut n, "listdatastore", json!([[]]));
    assert_eq!(e.code, -32602);
    assert_eq!(e.message, "key: should not be empty: invalid token '[]'");

    let somedata = crate::sha256::hex(b"somedata");
    let mut some = json!({"key": ["somekey"], "generation": 0, "hex": somedata,
                          "string": "somedata"});
    let e = err(&mut n, "datastore", json!({"key": [], "hex": somedata}));
    assert!(e.message.contains("should not be empty"));
    assert_eq!(
        call(
            &mut n,
            "datastore",
            json!({"key": "somekey", "hex": somedata})
        )
        .unwrap(),
        some
    );
    assert_eq!(list(&mut n, json!({})), json!({"datastore": [some]}));
    assert_eq!(
        list(&mut n, json!(["somekey"])),
        json!({"datastore": [some]})
    );
    assert_eq!(list(&mut n, json!(["otherkey"])), json!({"datastore": []}));

    for mode in [None, Some("must-create")] {
        let mut p = json!({"key": "somekey", "hex": somedata});
        if let Some(m) = mode {
            p["mode"] = json!(m);
        }
        let e = err(&mut n, "datastore", p);
        assert_eq!((e.code, e.message.as_str()), (1202, "Key already exists"));
    }
    let len = somedata.len();
    call(
        &mut n,
        "datastore",
        json!({"key": "somekey", "hex": &somedata[..len - 4], "mode": "must-replace"}),
    )
    .unwrap();
    assert_eq!(
        list(&mut n, json!(["somekey"]))["datastore"][0]["hex"],
        somedata[..len - 4]
    );
    call(
        &mut n,
        "datastore",
        json!({"key": "somekey", "hex": &somedata[len - 4..len - 2], "mode": "must-append"}),
    )
    .unwrap();
    let r = call(
        &mut n,
        "datastore",
        json!({"key": "somekey", "hex": &somedata[len - 2..], "mode": "create-or-append"}),
    )
    .unwrap();
    some["generation"] = json!(3);
    assert_eq!(r, some);
    assert_eq!(list(&mut n, json!({})), json!({"datastore": [some]}));

    for mode in ["must-replace", "must-append"] {
        let e = err(
            &mut n,
            "datastore",
            json!({"key": "otherkey", "hex": somedata, "mode": mode}),
        );
        assert_eq!((e.code, e.message.as_str()), (1203, "Key does not exist"));
    }
    let mut other = json!({"key": ["otherkey"], "generation": 0,
                           "hex": crate::sha256::hex(b"otherdata"), "string": "otherdata"});
    assert_eq!(
        call(
            &mut n,
            "datastore",
            json!({"key": "otherkey", "string": "otherdata", "mode": "create-or-append"})
        )
        .unwrap(),
        other
    );
    // Sorted by key.
    assert_eq!(list(&mut n, json!({})), json!({"datastore": [other, some]}));
    assert_eq!(
        call(&mut n, "deldatastore", json!(["somekey"])).unwrap(),
        some
    );
    assert_eq!(list(&mut n, json!({})), json!({"datastore": [other]}));
    assert_eq!(list(&mut n, json!(["somekey"])), json!({"datastore": []}));

    // Not UTF-8 (here: a NUL, which ccan's decoder refuses): no "string".
    let bad = json!({"key": ["badstring"], "generation": 0, "hex": "00"});
    assert_eq!(
        call(
            &mut n,
            "datastore",
            json!({"key": "badstring", "hex": "00"})
        )
        .unwrap(),
        bad
    );
    assert_eq!(
        list(&mut n, json!(["badstring"])),
        json!({"datastore": [bad]})
    );
    assert_eq!(
        call(&mut n, "deldatastore", json!(["badstring"])).unwrap(),
        bad
    );

    let e = err(
        &mut n,
        "datastore",
        json!({"key": "otherkey", "hex": "00", "mode": "must-replace", "generation": 1}),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (1204, "generation is different")
    );
    other["generation"] = json!(1);
    other["string"] = json!("otherdataa");
    other["hex"] = json!(crate::sha256::hex(b"otherdataa"));
    assert_eq!(
        call(
            &mut n,
            "datastore",
            json!({"key": "otherkey", "string": "otherdataa", "mode": "must-replace",
                   "generation": 0})
        )
        .unwrap(),
        other
    );
    let e = err(
        &mut n,
        "deldatastore",
        json!({"key": "otherkey", "generation": 2}),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (1201, "generation is different")
    );
    assert_eq!(
        call(
            &mut n,
            "deldatastore",
            json!({"key": "otherkey", "generation": 1})
        )
        .unwrap(),
        other
    );
    assert_eq!(list(&mut n, json!({})), json!({"datastore": []}));
    let e = err(&mut n, "deldatastore", json!({"key": "otherkey"}));
    assert_eq!((e.code, e.message.as_str()), (1200, "Key does not exist"));
}

#[test]
fn lightningd_test_datastore_keylist() {
    let mut n = demo();
    assert_eq!(list(&mut n, json!([["a", "b"]])), json!({"datastore": []}));
    call(&mut n, "datastore", json!({"key": "a", "string": "aval"})).unwrap();
    let e = err(
        &mut n,
        "datastore",
        json!({"key": ["a", "b"], "string": "abval", "mode": "create-or-replace"}),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (1206, "Parent key [a] exists")
    );
    assert_eq!(
        list(&mut n, json!({"key": ["a", "b"]})),
        json!({"datastore": []})
    );
    call(&mut n, "deldatastore", json!({"key": ["a"]})).unwrap();

    call(
        &mut n,
        "datastore",
        json!({"key": ["a", "b"], "string": "abval"}),
    )
    .unwrap();
    let ab = json!({"key": ["a", "b"], "generation": 0, "hex": crate::sha256::hex(b"abval"),
                    "string": "abval"});
    assert_eq!(
        list(&mut n, json!({})),
        json!({"datastore": [{"key": ["a"]}]})
    );
    assert_eq!(
        list(&mut n, json!({"key": ["a"]})),
        json!({"datastore": [ab]})
    );
    let e = err(
        &mut n,
        "datastore",
        json!({"key": "a", "string": "aval", "mode": "create-or-replace"}),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (1205, "Key has children already")
    );
    // Children are checked before the mode: must-create on a parent is 1205, not 1202.
    let e = err(&mut n, "datastore", json!({"key": "a", "string": "x"}));
    assert_eq!(e.code, 1205);
    // A parent has no data of its own: nothing to delete.
    let e = err(&mut n, "deldatastore", json!({"key": "a"}));
    assert_eq!(e.code, 1200);

    call(
        &mut n,
        "datastore",
        json!({"key": ["a", "b2"], "string": "ab2val"}),
    )
    .unwrap();
    call(
        &mut n,
        "datastore",
        json!({"key": ["a", "b3", "c"], "string": "ab2val"}),
    )
    .unwrap();
    let ab2 = json!({"key": ["a", "b2"], "generation": 0, "hex": crate::sha256::hex(b"ab2val"),
                     "string": "ab2val"});
    assert_eq!(
        list(&mut n, json!({})),
        json!({"datastore": [{"key": ["a"]}]})
    );
    assert_eq!(
        list(&mut n, json!({"key": ["a"]})),
        json!({"datastore": [ab, ab2, {"key": ["a", "b3"]}]})
    );
    let r = call(
        &mut n,
        "datastore",
        json!({"key": ["a", "b3", "c"], "string": "2", "mode": "must-append"}),
    )
    .unwrap();
    assert_eq!(r["string"], "ab2val2");
    assert_eq!(
        list(&mut n, json!({"key": ["a", "b3", "c"]})),
        json!({"datastore": [{"key": ["a", "b3", "c"], "generation": 1,
                              "hex": crate::sha256::hex(b"ab2val2"), "string": "ab2val2"}]})
    );
    // Several deep descendants under one child: one summary entry for it.
    call(
        &mut n,
        "datastore",
        json!({"key": ["a", "b3", "d", "e"], "string": "x"}),
    )
    .unwrap();
    assert_eq!(
        list(&mut n, json!(["a"]))["datastore"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Listing a key also lists the key itself; a key that is only a string prefix of
    // another is not its parent.
    call(&mut n, "datastore", json!({"key": ["ab"], "string": "y"})).unwrap();
    assert_eq!(
        list(&mut n, json!({"key": ["a", "b"]})),
        json!({"datastore": [ab]})
    );
    assert_eq!(
        list(&mut n, json!({}))["datastore"],
        json!([{"key": ["a"]}, {"key": ["ab"], "generation": 0, "hex": "79", "string": "y"}])
    );
}

#[test]
fn lightningd_test_datastoreusage() {
    let mut n = demo();
    let usage = |n: &mut Network, p: Value| call(n, "datastoreusage", p).unwrap();
    assert_eq!(
        usage(&mut n, json!({})),
        json!({"datastoreusage": {"key": "[]", "total_bytes": 0}})
    );
    let data = "somedatatostoreinthedatastore";
    call(
        &mut n,
        "datastore",
        json!({"key": ["a", "b"], "string": data}),
    )
    .unwrap();
    assert_eq!(
        usage(&mut n, json!({}))["datastoreusage"]["total_bytes"],
        32
    );
    assert_eq!(
        usage(&mut n, json!({"key": "a"})),
        json!({"datastoreusage": {"key": "[a]", "total_bytes": 32}})
    );
    assert_eq!(
        usage(&mut n, json!({"key": ["a", "b"]})),
        json!({"datastoreusage": {"key": "[a,b]", "total_bytes": 32}})
    );
    call(
        &mut n,
        "datastore",
        json!({"key": ["a", "c"], "string": data}),
    )
    .unwrap();
    assert_eq!(
        usage(&mut n, json!({}))["datastoreusage"]["total_bytes"],
        64
    );
    let long = "thisissomelongkeythattriestostore46bytesofdata";
    call(
        &mut n,
        "datastore",
        json!({"key": ["a", long], "string": data}),
    )
    .unwrap();
    assert_eq!(
        usage(&mut n, json!({}))["datastoreusage"]["total_bytes"],
        29 + 1 + 1 + 46 + 64
    );
    call(
        &mut n,
        "datastore",
        json!({"key": ["a", "d", "e", "f", "g"], "string": data}),
    )
    .unwrap();
    assert_eq!(
        usage(&mut n, json!({"key": ["a", "d", "e", "f", "g"]})),
        json!({"datastoreusage": {"key": "[a,d,e,f,g]", "total_bytes": 29 + 5 + 4}})
    );
    // An empty first key element means the root.
    assert_eq!(
        usage(&mut n, json!({"key": ""}))["datastoreusage"]["key"],
        "[]"
    );
}

#[test]
fn datastore_param_corners() {
    let mut n = demo();
    // Both, neither, generation without must-replace/must-append, unknown mode.
    let e = err(
        &mut n,
        "datastore",
        json!({"key": "k", "string": "s", "hex": "00"}),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (-32602, "Cannot have both hex and string")
    );
    let e = err(&mut n, "datastore", json!({"key": "k"}));
    assert_eq!(e.message, "Must have either hex or string");
    for mode in ["must-create", "create-or-replace", "create-or-append"] {
        let e = err(
            &mut n,
            "datastore",
            json!({"key": "k", "string": "s", "mode": mode, "generation": 0}),
        );
        assert_eq!(
            e.message,
            "generation only valid with must-replace or must-append"
        );
    }
    let e = err(
        &mut n,
        "datastore",
        json!({"key": "k", "string": "s", "mode": "replace"}),
    );
    assert_eq!(
        e.message,
        "mode: should be 'must-create', 'must-replace', 'create-or-replace', 'must-append', \
         or 'create-or-append': invalid token '\"replace\"'"
    );
    let e = err(&mut n, "datastore", json!({"key": {"a": 1}, "string": "s"}));
    assert!(e.message.starts_with("key: should be string or array"));
    let e = err(
        &mut n,
        "datastore",
        json!({"key": ["a", ["b"]], "string": "s"}),
    );
    assert_eq!(e.message, "key: should be string: invalid token '[\"b\"]'");
    let e = err(&mut n, "datastore", json!({"key": "k", "string": 5}));
    assert_eq!(
        e.message,
        "string: should be a string (without \\u): invalid token '5'"
    );
    // A control character could only have come as \u00XX, which lightningd refuses.
    let e = err(
        &mut n,
        "datastore",
        json!({"key": "k", "string": "a\u{1}b"}),
    );
    assert!(
        e.message
            .starts_with("string: should be a string (without \\u)")
    );
    // param_bin_from_hex's quirk: bad hex counts as no hex at all.
    let e = err(&mut n, "datastore", json!({"key": "k", "hex": "abc"}));
    assert_eq!(e.message, "Must have either hex or string");
    let r = call(
        &mut n,
        "datastore",
        json!({"key": "k", "string": "s", "hex": "zz"}),
    )
    .unwrap();
    assert_eq!(r["string"], "s");
    // Uppercase hex is fine and comes back lowercase; an empty value is valid.
    let r = call(&mut n, "datastore", json!({"key": "u", "hex": "ABCD"})).unwrap();
    assert_eq!(r["hex"], "abcd");
    assert!(r.get("string").is_none()); // 0xab 0xcd is not UTF-8
    let r = call(&mut n, "datastore", json!({"key": "e", "string": ""})).unwrap();
    assert_eq!(
        r,
        json!({"key": ["e"], "generation": 0, "hex": "", "string": ""})
    );
    // Multi-byte UTF-8 and escapes in the data round-trip.
    let r = call(
        &mut n,
        "datastore",
        json!({"key": "j", "string": "{\"é\": \"\\n\"}\n"}),
    )
    .unwrap();
    assert_eq!(r["string"], "{\"é\": \"\\n\"}\n");
    // Positional params, numbers as keys and generations given as strings.
    let r = call(&mut n, "datastore", json!([[7, true], "v"])).unwrap();
    assert_eq!(r["key"], json!(["7", "true"]));
    let r = call(
        &mut n,
        "datastore",
        json!([["7", "true"], "w", null, "must-replace", "0"]),
    )
    .unwrap();
    assert_eq!(r["generation"], 1);
    let e = err(
        &mut n,
        "datastore",
        json!([["7", "true"], "w", null, "must-replace", "x"]),
    );
    assert_eq!(
        e.message,
        "generation: should be an unsigned 64 bit integer: invalid token '\"x\"'"
    );
}

#[test]
fn key_elements_are_raw_json_text() {
    // json_strdup: lightningd keeps the escaped text of each key element.
    let mut n = demo();
    let r = call(
        &mut n,
        "datastore",
        json!({"key": ["q\"uote", "back\\slash"], "string": "v"}),
    )
    .unwrap();
    assert_eq!(r["key"], json!(["q\\\"uote", "back\\\\slash"]));
    // ... so the same element given again finds it.
    let r = call(&mut n, "listdatastore", json!({"key": ["q\"uote"]})).unwrap();
    assert_eq!(
        r["datastore"][0]["key"],
        json!(["q\\\"uote", "back\\\\slash"])
    );
}

#[test]
fn datastore_events_persistence_and_cln_rpc_types() {
    use cln_rpc::model::responses::*;
    let mut n = demo();
    let (v, ev) = call_ev(
        &mut n,
        "datastore",
        json!({"key": ["p", "x"], "string": "1"}),
    );
    assert_eq!(ev, vec![Event::DatastoreChanged]);
    let _: DatastoreResponse = serde_json::from_value(v).unwrap();
    call(
        &mut n,
        "datastore",
        json!({"key": ["p", "y", "z"], "hex": "ff00"}),
    )
    .unwrap();
    let v = list(&mut n, json!(["p"]));
    let r: ListdatastoreResponse = serde_json::from_value(v).unwrap();
    assert_eq!(r.datastore.len(), 2);
    assert!(r.datastore[1].hex.is_none()); // the summary entry for ["p", "y"]
    let v = list(&mut n, json!({}));
    let _: ListdatastoreResponse = serde_json::from_value(v).unwrap();
    let v = call(&mut n, "datastoreusage", json!({})).unwrap();
    let _: DatastoreusageResponse = serde_json::from_value(v).unwrap();
    // Failures change nothing and announce nothing.
    assert!(
        n.call("datastore", &json!({"key": ["p", "x"], "string": "1"}))
            .unwrap()
            .is_err()
    );

    // What the daemon writes to --datastore-file loads back the same.
    let saved = n.datastore_to_json();
    let mut m = demo();
    m.datastore_from_json(&saved).unwrap();
    assert_eq!(m.datastore, n.datastore);
    assert_eq!(list(&mut m, json!({})), list(&mut n, json!({})));

    let (v, ev) = call_ev(&mut n, "deldatastore", json!({"key": ["p", "x"]}));
    assert_eq!(ev, vec![Event::DatastoreChanged]);
    let _: DeldatastoreResponse = serde_json::from_value(v).unwrap();
}

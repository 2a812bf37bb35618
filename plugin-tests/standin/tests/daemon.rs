//! The stand-in daemon as lightningd v26.06.6 behaves toward a plugin and its clients:
//! `message`/`progress` notifications reaching only the caller that enabled them (with its
//! id), lightning-cli's rendering of them, a plugin killed for a notification without id, the
//! version it reports, a plugin disabling itself, running without askrene, a route too long,
//! and an MPP part failing after 70 s. Runs the real binaries (`lightningd-standin` and the
//! minimal `standin-notify-plugin`).

mod common;

use cln_standin::cli::{NotificationPrinter, RpcClient};
use common::{Standin, TRIANGLE, US, read_frame, route, test_dir};
use serde_json::{Value, json};
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;

const PLUGIN: &str = env!("CARGO_BIN_EXE_standin-notify-plugin");

fn with_plugin(name: &str, extra: &[&str], env: &[(&str, &str)]) -> Standin {
    let mut args = vec!["--plugin", PLUGIN];
    args.extend_from_slice(extra);
    Standin::start(&test_dir(name), &args, env)
}

#[test]
fn notifications_reach_only_the_caller_that_enabled_them() {
    let s = with_plugin("notify", &[], &[]);
    let mut rpc = RpcClient::new(&s.sock);
    let mut seen: Vec<Value> = Vec::new();
    let mut collect = |n: &Value| seen.push(n.clone());
    let result = rpc
        .call_notified("tp-notify", json!([2]), Some(&mut collect))
        .unwrap()
        .unwrap();
    // The plugin saw lightningd's id for the request; the caller sees its own.
    let plugin_id = result["id"].as_str().unwrap();
    assert!(
        plugin_id.starts_with("cli:tp-notify#1/cln:tp-notify#"),
        "{plugin_id}"
    );
    let methods: Vec<&str> = seen.iter().map(|n| n["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["message", "message", "progress", "progress"]);
    for n in &seen {
        assert_eq!(n["jsonrpc"], "2.0");
        assert!(n.get("id").is_none());
        assert_eq!(n["params"]["id"], "cli:tp-notify#1");
        // The id keeps its place in the params.
        assert_eq!(
            n["params"].as_object().unwrap().keys().next().unwrap(),
            "id"
        );
    }
    assert_eq!(
        seen[0]["params"],
        json!({"id": "cli:tp-notify#1", "level": "info", "message": "starting"})
    );
    assert_eq!(
        seen[3]["params"],
        json!({"id": "cli:tp-notify#1", "num": 1, "total": 2, "stage": {"num": 0, "total": 1}})
    );
    // What lightning-cli prints (-N info): the debug message is left out.
    let mut p = NotificationPrinter::new("info").unwrap();
    let text: String = seen.iter().map(|n| p.render(n)).collect::<String>() + &p.finish();
    assert_eq!(
        text,
        format!(
            "# starting\n\r# Stage 1/1 1/2 |{}|\r# Stage 1/1 2/2 |{}|\n",
            " ".repeat(60),
            "=".repeat(60)
        )
    );
    // A declared custom topic is fine; an undeclared one is logged as lightningd does.
    s.wait_for_log(
        "UNUSUAL plugin-standin-notify-plugin: Plugin attempted to send a notification to topic \
         \"tp-undeclared\" it hasn't declared in its manifest, not forwarding to subscribers.",
    );
    assert!(!s.log().contains("\"tp-topic\""));

    // A connection that did not enable notifications gets the answer alone.
    let mut c = UnixStream::connect(&s.sock).unwrap();
    let req = json!({"jsonrpc": "2.0", "id": "quiet", "method": "tp-notify", "params": {}});
    c.write_all(req.to_string().as_bytes()).unwrap();
    let first = read_frame(&mut BufReader::new(c.try_clone().unwrap()));
    assert_eq!(first["id"], "quiet");
    assert!(
        first["result"]["id"]
            .as_str()
            .unwrap()
            .starts_with("quiet/cln:tp-notify#")
    );

    // Enabling counts for the requests sent after it on that connection, in order, even when
    // both are written at once; disabling stops them.
    let mut c = UnixStream::connect(&s.sock).unwrap();
    let two = [
        json!({"jsonrpc": "2.0", "id": 7, "method": "notifications", "params": {"enable": true}}),
        json!({"jsonrpc": "2.0", "id": 8, "method": "tp-notify", "params": [1]}),
        json!({"jsonrpc": "2.0", "id": 9, "method": "notifications", "params": [false]}),
        json!({"jsonrpc": "2.0", "id": 10, "method": "tp-notify", "params": [1]}),
    ];
    let text: String = two.iter().map(|r| r.to_string()).collect();
    c.write_all(text.as_bytes()).unwrap();
    let mut rd = BufReader::new(c.try_clone().unwrap());
    assert_eq!(
        read_frame(&mut rd),
        json!({"jsonrpc": "2.0", "id": 7, "result": {}})
    );
    let frames: Vec<Value> = (0..6).map(|_| read_frame(&mut rd)).collect();
    let numeric: Vec<&Value> = frames
        .iter()
        .filter(|f| f.get("method").is_some())
        .collect();
    assert_eq!(numeric.len(), 3, "{frames:?}");
    // A numeric caller id comes back as a number.
    assert!(numeric.iter().all(|n| n["params"]["id"] == 8));
    let answers: Vec<&Value> = frames.iter().filter(|f| f.get("id").is_some()).collect();
    let ids: Vec<&Value> = answers.iter().map(|a| &a["id"]).collect();
    assert!(ids.contains(&&json!(8)) && ids.contains(&&json!(9)) && ids.contains(&&json!(10)));
    s.stop();
}

#[test]
fn a_notification_without_id_gets_the_plugin_killed() {
    let s = with_plugin("badnotify", &[], &[]);
    let r = s.call("tp-badnotify", json!({}));
    assert_eq!(
        r["error"],
        json!({"code": -4, "message": "Plugin terminated before replying to RPC call."})
    );
    s.wait_for_log(
        "UNUSUAL plugin-standin-notify-plugin: Killing plugin: JSON-RPC notify \"id\"-field is \
         not present",
    );
    assert_eq!(s.call("tp-notify", json!({}))["error"]["code"], -32601);
    assert!(!s.log().contains("exited during normal operation"));
    s.stop();
}

#[test]
fn the_version_reaches_getinfo_and_the_plugin() {
    let s = with_plugin("version", &[], &[]);
    assert_eq!(s.ok("getinfo", json!({}))["version"], "v26.06.6");
    assert_eq!(
        s.ok("tp-version", json!({}))["LIGHTNINGD_VERSION"],
        "v26.06.6"
    );
    s.stop();
    let s = with_plugin("version-old", &["--version-string", "v25.09.1"], &[]);
    assert_eq!(s.ok("getinfo", json!({}))["version"], "v25.09.1");
    assert_eq!(
        s.ok("tp-version", json!({}))["LIGHTNINGD_VERSION"],
        "v25.09.1"
    );
    s.wait_for_log("INFO    lightningd: Server started with public key");
    assert!(s.log().contains("and lightningd v25.09.1"));
    s.stop();
}

#[test]
fn a_plugin_disabling_itself_is_killed_and_logged() {
    let s = with_plugin(
        "disable-init",
        &["--plugin-opt", "tp-disable=not today"],
        &[],
    );
    s.wait_for_log(
        "DEBUG   plugin-standin-notify-plugin: Killing plugin: disabled itself at init: not today",
    );
    assert_eq!(
        s.call("tp-notify", json!({}))["error"],
        json!({"code": -32601, "message": "Unknown command 'tp-notify'"})
    );
    s.stop();
    let s = with_plugin(
        "disable-manifest",
        &[],
        &[("STANDIN_TP_DISABLE_MANIFEST", "no thanks")],
    );
    s.wait_for_log(
        "INFO    plugin-standin-notify-plugin: Killing plugin: disabled itself: no thanks",
    );
    assert_eq!(s.call("tp-notify", json!({}))["error"]["code"], -32601);
    s.stop();
}

#[test]
fn without_askrene_its_methods_are_unknown_commands() {
    let s = Standin::start(&test_dir("askrene-on"), &[], &[]);
    let layers = s.ok("askrene-listlayers", json!({}));
    assert_eq!(layers["layers"][0]["layer"], "xpay");
    assert!(
        s.ok("help", json!({}))["help"]
            .to_string()
            .contains("askrene-inform-channel")
    );
    s.stop();
    let s = Standin::start(&test_dir("askrene-off"), &["--no-askrene"], &[]);
    assert_eq!(
        s.call("askrene-listlayers", json!({}))["error"],
        json!({"code": -32601, "message": "Unknown command 'askrene-listlayers'"})
    );
    assert!(
        !s.ok("help", json!({}))["help"]
            .to_string()
            .contains("askrene")
    );
    assert_eq!(s.ok("listdatastore", json!({})), json!({"datastore": []}));
    s.stop();
}

#[test]
fn a_route_over_20_hops_is_refused_and_logged_broken() {
    let s = Standin::start(&test_dir("long"), &[], &[]);
    let inv = s.ok("invoice", json!([1_000_000, "long", "d"]));
    let hops: Vec<(&str, &str)> = TRIANGLE.iter().copied().cycle().take(21).collect();
    let r = route(&s, &hops, 1_000_000, 18);
    let e = s.call(
        "sendpay",
        json!({"route": r, "payment_hash": inv["payment_hash"],
               "payment_secret": inv["payment_secret"]}),
    );
    assert_eq!(
        e["error"],
        json!({"code": -1, "message": "Could not create onion packet"})
    );
    let line = s.wait_for_log("**BROKEN** lightningd: sendpay: a route of 21 hops");
    assert!(line.contains("over 20 hops"), "{line}");
    s.stop();
}

#[test]
fn an_mpp_part_alone_fails_after_70_seconds() {
    let s = Standin::start(&test_dir("mpp"), &[], &[]);
    let inv = s.ok("invoice", json!([300_000_000u64, "mpp", "d"]));
    let r = route(&s, &TRIANGLE, 100_000_000, 18);
    let sent = s.ok(
        "sendpay",
        json!({"route": r, "payment_hash": inv["payment_hash"], "amount_msat": 300_000_000u64,
               "partid": 1, "groupid": 1, "payment_secret": inv["payment_secret"]}),
    );
    assert_eq!(
        (sent["partid"].clone(), sent["status"].clone()),
        (json!(1), json!("pending"))
    );
    // A waiter blocks; 69 s of model time pass, then the daemon's clock does the last second.
    let sock = s.sock.clone();
    let hash = inv["payment_hash"].clone();
    let waiter = std::thread::spawn(move || {
        let mut rpc = RpcClient::new(&sock);
        rpc.call(
            "waitsendpay",
            json!({"payment_hash": hash, "partid": 1, "groupid": 1}),
        )
        .unwrap()
    });
    s.ok("dev-timetravel", json!({"seconds": 69}));
    let e = waiter.join().unwrap().unwrap_err();
    assert_eq!(e.code, 204);
    assert_eq!(e.message, "failed: WIRE_MPP_TIMEOUT (reply from remote)");
    let d = e.data.unwrap();
    assert_eq!(
        (d["erring_index"].clone(), d["erring_node"].clone()),
        (json!(3), json!(US))
    );
    assert_eq!(d["partid"], 1);
    let ch = s.ok(
        "listpeerchannels",
        json!({"short_channel_id": "800004x1x0"}),
    );
    assert_eq!(ch["channels"][0]["htlcs"], json!([]));
    s.stop();
}

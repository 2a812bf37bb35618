//! `lightningd-standin --datastore-file`: the datastore outlives a restart of the stand-in, as
//! lightningd's outlives a restart of lightningd (its test_datastore's `l1.restart()`).
//! Runs the real binary and speaks JSON-RPC on its socket.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Standin {
    child: Child,
    sock: PathBuf,
}

impl Standin {
    /// Started in `dir`, with `--datastore-file` relative to it.
    fn start(dir: &Path, datastore: &str) -> Standin {
        let network = Path::new(env!("CARGO_MANIFEST_DIR")).join("networks/demo.json");
        let child = Command::new(env!("CARGO_BIN_EXE_lightningd-standin"))
            .arg("--network")
            .arg(&network)
            .arg("--lightning-dir")
            .arg(dir)
            .arg("--datastore-file")
            .arg(datastore)
            .args(["--log-stderr", "none"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("start lightningd-standin");
        let sock = dir.join("regtest/lightning-rpc");
        let deadline = Instant::now() + Duration::from_secs(30);
        while UnixStream::connect(&sock).is_err() {
            assert!(Instant::now() < deadline, "stand-in did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Standin { child, sock }
    }

    fn call(&self, method: &str, params: Value) -> Value {
        let mut s = UnixStream::connect(&self.sock).expect("connect");
        let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        s.write_all(req.to_string().as_bytes()).unwrap();
        // One response object, then a blank line.
        let mut text = String::new();
        let mut rd = BufReader::new(s);
        loop {
            let mut line = String::new();
            if rd.read_line(&mut line).unwrap() == 0 || line == "\n" {
                break;
            }
            text.push_str(&line);
        }
        serde_json::from_str(&text).expect("a JSON response")
    }

    fn stop(mut self) {
        self.call("stop", json!({}));
        self.child.wait().unwrap();
    }
}

#[test]
fn datastore_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("standin-ds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Relative to the caller's cwd (the stand-in then moves into its network dir).
    let file = dir.join("datastore.json");

    let a = Standin::start(&dir, "datastore.json");
    assert_eq!(
        a.call("listdatastore", json!({}))["result"],
        json!({"datastore": []})
    );
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

    let b = Standin::start(&dir, "datastore.json");
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
    b.stop();

    let c = Standin::start(&dir, "datastore.json");
    let all = c.call("listdatastore", json!({}))["result"].clone();
    assert_eq!(all, json!({"datastore": [{"key": ["cln-rebalance"]}]}));
    c.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

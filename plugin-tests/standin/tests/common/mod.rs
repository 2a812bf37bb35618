//! The real `lightningd-standin` binary in a temporary directory, spoken to over its socket,
//! for the stand-in's own integration tests.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Standin {
    child: Child,
    pub dir: PathBuf,
    pub sock: PathBuf,
}

/// A fresh directory for one test.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("standin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn demo_network() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("networks/demo.json")
}

impl Standin {
    /// Started in `dir` on the demo network with `args` and `env`.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Standin {
        let child = Command::new(env!("CARGO_BIN_EXE_lightningd-standin"))
            .arg("--network")
            .arg(demo_network())
            .arg("--lightning-dir")
            .arg(dir)
            .args(["--log-stderr", "none"])
            .args(args)
            .envs(env.iter().copied())
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
        let s = Standin {
            child,
            dir: dir.to_path_buf(),
            sock,
        };
        // The socket answers before the plugin is initialized (as lightningd's does): its
        // methods exist once the daemon says it has started.
        s.wait_for_log("Server started with public key");
        s
    }

    /// One request on a new connection; the whole response object.
    pub fn call(&self, method: &str, params: Value) -> Value {
        let mut s = UnixStream::connect(&self.sock).expect("connect");
        let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        s.write_all(req.to_string().as_bytes()).unwrap();
        read_frame(&mut BufReader::new(s))
    }

    /// The result, or a panic with the error.
    pub fn ok(&self, method: &str, params: Value) -> Value {
        let r = self.call(method, params);
        match r.get("result") {
            Some(v) => v.clone(),
            None => panic!("{method}: {r}"),
        }
    }

    /// lightningd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Waits until the log has a line containing `text`.
    pub fn wait_for_log(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains(text)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {text:?} in:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(mut self) {
        self.call("stop", json!({}));
        self.child.wait().unwrap();
    }
}

impl Drop for Standin {
    /// A test that panicked leaves no stand-in behind (it would hold the test's stderr open).
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One `\n\n`-terminated response object.
pub fn read_frame(rd: &mut impl BufRead) -> Value {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if rd.read_line(&mut line).unwrap() == 0 || line == "\n" {
            break;
        }
        text.push_str(&line);
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// Sendpay hops for `hops` (node id, scid) delivering `amount` with `final_delay`, fees and
/// delays from the stand-in's listchannels, as a correct payer computes them.
pub fn route(s: &Standin, hops: &[(&str, &str)], amount: u64, final_delay: u64) -> Value {
    let mut out = Vec::new();
    let (mut amt, mut delay) = (amount, final_delay);
    for i in (0..hops.len()).rev() {
        out.push(
            json!({"id": hops[i].0, "channel": hops[i].1, "amount_msat": amt,
                        "delay": delay}),
        );
        if i > 0 {
            let chans = s.ok("listchannels", json!({"short_channel_id": hops[i].1}));
            let e = chans["channels"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["source"] == hops[i - 1].0)
                .unwrap()
                .clone();
            let ppm = e["fee_per_millionth"].as_u64().unwrap();
            amt += e["base_fee_millisatoshi"].as_u64().unwrap() + (amt * ppm).div_ceil(1_000_000);
            delay += e["delay"].as_u64().unwrap();
        }
    }
    out.reverse();
    Value::Array(out)
}

pub const US: &str = "02052542beeec28bf08fb2405f391dec5db7675b1d95a5b70c86d77ceba71e2179";
pub const ALICE: &str = "03047956f08ae0e563aec714876e11230c5a42382061032717ce7b2d1335541efd";
pub const CAROL: &str = "035fbca922e71a2a473c1668e510b4747d4fd5ac541e16eb571c6c993540ce43ce";
/// us -> alice -> carol -> us.
pub const TRIANGLE: [(&str, &str); 3] = [
    (ALICE, "800001x1x0"),
    (CAROL, "700101x7x1"),
    (US, "800004x1x0"),
];

//! The in-memory network for in-process tests: [`SimNode`] implements the plugin's
//! [`Lightningd`] trait over the stand-in's network model (`cln_standin::simnet`), answering
//! with the same JSON lightningd (and the stand-in daemon) would, calling the plugin's
//! `invoice_payment` hook as lightningd does, and keeping the `sendpay_failure` notifications'
//! messages for a bare `waitsendpay` failure as the plugin does (`SendpayFailures`).
//! Optionally ([`SimNode::with_hop_clock`]) payments cost simulated time on a [`ManualClock`],
//! for the simulation benchmark.

#![allow(dead_code)]

use cln_rebalance::clock::{Clock, ManualClock};
use cln_rebalance::config::Config;
use cln_rebalance::core::route::Hop;
use cln_rebalance::lightningd::{
    AskreneConstraint, AskreneInform, DatastoreEntry, Forward, Getinfo, Invoice, InvoiceStatus,
    Lightningd, NodeInfo, Part, PaymentComplete, PeerChannel, SendpayFailures, SendpayStatus,
    part_params, sendpay_route_json,
};
use cln_rebalance::state::State;
use cln_rpc::RpcError;
use cln_standin::simnet::pay::{PayStatus, WaitState};
use cln_standin::simnet::{Event, Network};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

type Hook = Arc<dyn Fn(Value) -> Pin<Box<dyn Future<Output = Value> + Send>> + Send + Sync>;

#[derive(Clone)]
pub struct SimNode {
    pub net: Arc<Mutex<Network>>,
    changed: tokio::sync::watch::Sender<u64>,
    hook: Arc<Mutex<Option<Hook>>>,
    /// For the "paid just as we stopped waiting" race: when set to a node, `delinvoice` first
    /// releases the HTLCs held at that node and lets the payment complete.
    pub release_before_delinvoice: Arc<Mutex<Option<String>>>,
    /// How many times the plugin asked for the whole graph.
    pub listchannels_calls: Arc<std::sync::atomic::AtomicUsize>,
    /// Every method called through [`SimNode::call`], in order (the plugin's calls and the
    /// test's own).
    pub calls: Arc<Mutex<Vec<String>>>,
    /// When set, the network's time is this clock's, and each payment advances it.
    hop_clock: Option<HopClock>,
    /// The plugin's record of `sendpay_failure` notifications, as on lightningd (see
    /// `ClnNode`): a bare `waitsendpay` failure gets its message from there.
    pub failures: Arc<SendpayFailures>,
    /// Unset: the plugin never gets a `sendpay_failure` notification, so a failure answered
    /// after the fact stays bare (as one from a node that sent no update, which BOLT 4 allows).
    pub failure_notifications: Arc<std::sync::atomic::AtomicBool>,
    /// Before the first `sendpay`, this control call, once: a policy changed after the plugin
    /// read it, before gossip could bring the change.
    pub before_sendpay: Arc<Mutex<Option<(String, Value)>>>,
    /// The most parts of one try (a payment hash and groupid) out at once: as each part is
    /// sent, it and those `listsendpays` has pending.
    pub most_parts_out: Arc<std::sync::atomic::AtomicUsize>,
}

/// Simulated time a payment costs: `ms_per_hop` for every hop its HTLC travelled, there and
/// back (a failure at `erring_index` i travelled i hops; a success the whole route).
#[derive(Clone)]
struct HopClock {
    clock: Arc<ManualClock>,
    ms_per_hop: u64,
    /// When each payment part in flight was sent, ms.
    sent_at: Arc<Mutex<HashMap<PartKey, u64>>>,
    /// Called with the network after each advance, with the clock's time in ms: the world
    /// moving on while a rebalance runs (see [`SimNode::with_world_events`]).
    tick: Option<Tick>,
}

/// A payment part: `(payment_hash, partid, groupid)`.
type PartKey = (String, u64, u64);

/// The latest payment (or `part`) sent for `payment_hash`.
fn last_payment(net: &Network, payment_hash: &str, part: Option<Part>) -> Option<usize> {
    net.payments.iter().rposition(|p| {
        p.payment_hash == payment_hash
            && part.is_none_or(|x| x.partid == p.partid && x.groupid == p.groupid)
    })
}

/// What happens in the world as simulated time passes: `(network, now_ms)`.
pub type Tick = Arc<dyn Fn(&mut Network, u64) + Send + Sync>;

fn to_rpc(e: cln_standin::simnet::RpcError) -> RpcError {
    let v = e.to_json();
    RpcError {
        code: v["code"].as_i64().map(|c| c as i32),
        message: v["message"].as_str().unwrap_or_default().to_string(),
        data: v.get("data").cloned(),
    }
}

impl SimNode {
    pub fn new(net: Network) -> Self {
        SimNode {
            net: Arc::new(Mutex::new(net)),
            changed: tokio::sync::watch::channel(0).0,
            hook: Arc::new(Mutex::new(None)),
            release_before_delinvoice: Arc::new(Mutex::new(None)),
            listchannels_calls: Arc::default(),
            calls: Arc::default(),
            hop_clock: None,
            failures: Arc::default(),
            failure_notifications: Arc::new(true.into()),
            before_sendpay: Arc::default(),
            most_parts_out: Arc::default(),
        }
    }

    /// The network's time is `clock`'s, and each finished payment advances it by `ms_per_hop`
    /// per hop travelled each way (see [`HopClock`]).
    pub fn with_hop_clock(mut self, clock: Arc<ManualClock>, ms_per_hop: u64) -> Self {
        self.hop_clock = Some(HopClock {
            clock,
            ms_per_hop,
            sent_at: Arc::default(),
            tick: None,
        });
        self
    }

    /// After every advance of the hop clock (set first, by [`SimNode::with_hop_clock`]),
    /// `tick` may change the network: traffic and flaky nodes during a long job.
    pub fn with_world_events(mut self, tick: Tick) -> Self {
        let hc = self
            .hop_clock
            .as_mut()
            .expect("with_world_events needs with_hop_clock first");
        hc.tick = Some(tick);
        self
    }

    /// The time the HTLC of the payment (or `part`) for `payment_hash` spent travelling: it
    /// travelled from when it was sent, so parts sent together travel at once (the clock moves
    /// to the end of the slowest, not by their sum).
    fn travel(&self, payment_hash: &str, part: Option<Part>) {
        let Some(hc) = &self.hop_clock else { return };
        let (hops, key) = {
            let net = self.net.lock().unwrap();
            let found = last_payment(&net, payment_hash, part).map(|pid| &net.payments[pid]);
            let hops = found.map_or(0, |p| match p.status {
                PayStatus::Complete => p.route.len(),
                PayStatus::Failed => p.failure.as_ref().map_or(0, |f| f.erring_index),
                PayStatus::Pending => 0,
            });
            (
                hops,
                found.map(|p| (p.payment_hash.clone(), p.partid, p.groupid)),
            )
        };
        let sent_at = key
            .and_then(|k| hc.sent_at.lock().unwrap().remove(&k))
            .unwrap_or_else(|| hc.clock.now_ms());
        let arrives = sent_at + 2 * hops as u64 * hc.ms_per_hop;
        let now = hc.clock.now_ms();
        if arrives > now {
            hc.clock.advance_ms(arrives - now);
        }
        if let Some(tick) = &hc.tick {
            tick(&mut self.net.lock().unwrap(), hc.clock.now_ms());
        }
    }

    /// With the hop clock, the failed payment (or `part`) for `payment_hash` whose failure
    /// reaches us after now (its HTLC's travel back not yet charged to the clock).
    fn still_travelling(&self, payment_hash: &str, part: Option<Part>) -> Option<usize> {
        let hc = self.hop_clock.as_ref()?;
        let net = self.net.lock().unwrap();
        let pid = last_payment(&net, payment_hash, part)?;
        let p = &net.payments[pid];
        let hops = match p.status {
            PayStatus::Failed => p.failure.as_ref().map_or(0, |f| f.erring_index),
            _ => return None,
        };
        let key = (p.payment_hash.clone(), p.partid, p.groupid);
        let sent_at = *hc.sent_at.lock().unwrap().get(&key)?;
        (sent_at + 2 * hops as u64 * hc.ms_per_hop > hc.clock.now_ms()).then_some(pid)
    }

    /// With the hop clock, payment `pid`'s answer if it has one now; or, when it is a part held
    /// at our node in a set still short of its total, its answer once the clock has moved to
    /// the end of the set's hold (lightningd then fails the set with mpp_timeout): nothing else
    /// would move the clock while the caller waits. `None`: pending for another reason.
    fn wait_out_hold(&self, pid: usize) -> Option<cln_standin::simnet::RpcResult> {
        let hc = self.hop_clock.as_ref()?;
        let hold_ends = {
            let net = self.net.lock().unwrap();
            if let WaitState::Done(r) = net.wait_state(pid, true) {
                return Some(r);
            }
            net.htlc_sets
                .iter()
                .find(|s| s.parts.contains(&pid))
                .and_then(|s| s.deadline)?
        };
        let now = hc.clock.now_ms();
        if hold_ends * 1000 > now {
            hc.clock.advance_ms(hold_ends * 1000 - now);
        }
        let events = {
            let mut net = self.net.lock().unwrap();
            net.fixed_time = Some(hc.clock.now_secs());
            net.fire_timers()
        };
        self.handle(events);
        if let Some(tick) = &hc.tick {
            tick(&mut self.net.lock().unwrap(), hc.clock.now_ms());
        }
        match self.net.lock().unwrap().wait_state(pid, true) {
            WaitState::Done(r) => Some(r),
            WaitState::Pending(_) => None,
        }
    }

    /// A method served by the model (lightningd's or a dev- control method).
    pub fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        self.calls.lock().unwrap().push(method.to_string());
        let r = {
            let mut net = self.net.lock().unwrap();
            if let Some(hc) = &self.hop_clock {
                net.fixed_time = Some(hc.clock.now_secs());
            }
            net.call(method, &params)
        };
        // lightningd's answer to a method nobody serves.
        let Some(r) = r else {
            return Err(RpcError {
                code: Some(-32601),
                message: format!("Unknown command '{method}'"),
                data: None,
            });
        };
        match r {
            Ok((v, events)) => {
                self.handle(events);
                // Any call may have moved a payment on (a release, a timer that fired): the
                // waiters look again.
                self.changed.send_modify(|v| *v += 1);
                Ok(v)
            }
            Err(e) => Err(to_rpc(e)),
        }
    }

    fn handle(&self, events: Vec<Event>) {
        for e in events {
            match e {
                Event::InvoicePaymentHook { payment, payload } => {
                    let me = self.clone();
                    let hook = self.hook.lock().unwrap().clone();
                    tokio::spawn(async move {
                        let answer = match hook {
                            Some(h) => h(payload).await,
                            None => json!({"result": "continue"}),
                        };
                        let ev = me
                            .net
                            .lock()
                            .unwrap()
                            .invoice_payment_result(payment, Some(&answer));
                        me.handle(ev);
                    });
                }
                Event::HtlcAcceptedHook { .. } => {
                    panic!("the plugin registers no htlc_accepted hook")
                }
                Event::PaymentDone {
                    notification: (name, v),
                    ..
                } if name == "sendpay_failure"
                    && self
                        .failure_notifications
                        .load(std::sync::atomic::Ordering::SeqCst) =>
                {
                    self.failures.record(&v)
                }
                _ => {}
            }
            self.changed.send_modify(|v| *v += 1);
        }
    }

    /// Our channel's `to_us_msat`, read from the model.
    /// After the complete rebalance `v` of `amount_msat` out of `out` and in through `inc`,
    /// whose balances (ours) were `before`: `out` gave the amount and `v`'s fee, `inc` got the
    /// amount.
    pub fn assert_moved(
        &self,
        v: &Value,
        (out, inc): (&str, &str),
        before: (u64, u64),
        amount_msat: u64,
    ) {
        let fee = v["fee_msat"].as_u64().unwrap();
        assert_eq!(self.to_us(out), before.0 - amount_msat - fee, "{v}");
        assert_eq!(self.to_us(inc), before.1 + amount_msat, "{v}");
    }

    pub fn to_us(&self, scid: &str) -> u64 {
        let v = self.call("listpeerchannels", json!({})).unwrap();
        v["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["short_channel_id"] == scid)
            .unwrap_or_else(|| panic!("no channel {scid}"))["to_us_msat"]
            .as_u64()
            .unwrap()
    }

    /// `dev-state`'s channels: what a test compares before and after to see nothing moved.
    pub fn channel_state(&self) -> Value {
        self.call("dev-state", serde_json::json!({})).unwrap()["channels"].clone()
    }

    pub fn invoices(&self) -> Vec<Value> {
        self.call("listinvoices", json!({})).unwrap()["invoices"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// How many times the plugin called `method`.
    pub fn calls_to(&self, method: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|m| *m == method)
            .count()
    }

    pub fn sendpays(&self) -> Vec<Value> {
        self.call("listsendpays", json!({})).unwrap()["payments"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Notes how many parts of `groupid` are out with the one about to be sent: those pending
    /// now, and it (read without counting as a call).
    fn count_parts_out(&self, payment_hash: &str, groupid: u64) {
        let listed = self
            .net
            .lock()
            .unwrap()
            .call("listsendpays", &json!({"payment_hash": payment_hash}));
        let Some(Ok((v, _))) = listed else {
            return;
        };
        let pending = v["payments"].as_array().map_or(0, |ps| {
            ps.iter()
                .filter(|p| p["status"] == "pending" && p["groupid"] == groupid)
                .count()
        });
        self.most_parts_out
            .fetch_max(pending + 1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn pending_htlcs(&self) -> usize {
        let v = self.call("listpeerchannels", json!({})).unwrap();
        v["channels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["htlcs"].as_array().map_or(0, |h| h.len()))
            .sum()
    }

    /// `waitsendpay` as lightningd answers it (a waiter that came after the failure gets no
    /// `raw_message`).
    async fn wait_answer(
        &self,
        payment_hash: &str,
        timeout_secs: u64,
        part: Option<Part>,
    ) -> Result<PaymentComplete, RpcError> {
        let mut changed = self.changed.subscribe();
        let mut params = json!({"payment_hash": payment_hash, "timeout": timeout_secs});
        part_params(&mut params, part, false);
        let (state, _) = self
            .net
            .lock()
            .unwrap()
            .waitsendpay_check(&params)
            .map_err(to_rpc)?;
        let pid = match state {
            WaitState::Done(r) => {
                // On the hop clock a payment that failed at once is still on its way back:
                // this waiter is woken by the failure, as on lightningd (`raw_message`).
                let r = match self.still_travelling(payment_hash, part) {
                    Some(pid) => match self.net.lock().unwrap().wait_state(pid, true) {
                        WaitState::Done(live) => live,
                        WaitState::Pending(_) => r,
                    },
                    None => r,
                };
                self.travel(payment_hash, part);
                return r.map_err(to_rpc).and_then(decode);
            }
            WaitState::Pending(pid) => pid,
        };
        if self.hop_clock.is_some() {
            // Every other wait of the caller looks first (a part already answered is taken
            // before the clock moves); then a part held at our node waits out its set's hold.
            tokio::task::yield_now().await;
            if let Some(r) = self.wait_out_hold(pid) {
                self.travel(payment_hash, part);
                return r.map_err(to_rpc).and_then(decode);
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_secs);
        loop {
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return Err(RpcError {
                    code: Some(200),
                    message: "Timed out while waiting".into(),
                    data: None,
                });
            }
            let state = self.net.lock().unwrap().wait_state(pid, true);
            if let WaitState::Done(r) = state {
                self.travel(payment_hash, part);
                return r.map_err(to_rpc).and_then(decode);
            }
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, RpcError> {
    serde_json::from_value(v).map_err(|e| RpcError {
        code: None,
        message: e.to_string(),
        data: None,
    })
}

impl Lightningd for SimNode {
    async fn getinfo(&self) -> Result<Getinfo, RpcError> {
        decode(self.call("getinfo", json!({}))?)
    }
    async fn listpeerchannels(&self) -> Result<Vec<PeerChannel>, RpcError> {
        decode(self.call("listpeerchannels", json!({}))?["channels"].take())
    }
    async fn listchannels_json(&self) -> Result<Vec<u8>, RpcError> {
        self.listchannels_calls
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self
            .call("listchannels", json!({}))?
            .to_string()
            .into_bytes())
    }
    async fn listnodes(&self, id: &str) -> Result<Vec<NodeInfo>, RpcError> {
        decode(self.call("listnodes", json!({"id": id}))?["nodes"].take())
    }
    async fn invoice(
        &self,
        amount_msat: u64,
        label: &str,
        description: &str,
        expiry: u64,
        cltv: u32,
    ) -> Result<Invoice, RpcError> {
        decode(self.call(
            "invoice",
            json!({"amount_msat": amount_msat, "label": label, "description": description, "expiry": expiry, "cltv": cltv}),
        )?)
    }
    async fn listinvoices(&self, label: Option<&str>) -> Result<Vec<InvoiceStatus>, RpcError> {
        let params = label.map_or(json!({}), |l| json!({"label": l}));
        decode(self.call("listinvoices", params)?["invoices"].take())
    }
    async fn delinvoice(&self, label: &str, status: &str) -> Result<(), RpcError> {
        let release = self.release_before_delinvoice.lock().unwrap().take();
        if let Some(node) = release {
            self.call("dev-release", json!({"node": node}))?;
            for _ in 0..200 {
                let inv = self.call("listinvoices", json!({"label": label}))?;
                if inv["invoices"][0]["status"] == "paid" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        self.call("delinvoice", json!({"label": label, "status": status}))
            .map(|_| ())
    }
    async fn sendpay(
        &self,
        route: &[Hop],
        payment_hash: &str,
        payment_secret: &str,
        label: &str,
        part: Option<Part>,
    ) -> Result<(), RpcError> {
        let mut params = json!({"route": sendpay_route_json(route), "payment_hash": payment_hash,
                                "payment_secret": payment_secret, "label": label});
        part_params(&mut params, part, true);
        let before = self.before_sendpay.lock().unwrap().take();
        if let Some((method, p)) = before {
            self.call(&method, p)?;
        }
        if let Some(p) = part {
            self.count_parts_out(payment_hash, p.groupid);
        }
        let sent = self.call("sendpay", params)?;
        if let Some(hc) = &self.hop_clock {
            let key = (
                payment_hash.to_string(),
                sent["partid"].as_u64().unwrap_or(0),
                sent["groupid"].as_u64().unwrap_or(0),
            );
            hc.sent_at.lock().unwrap().insert(key, hc.clock.now_ms());
        }
        Ok(())
    }
    async fn waitsendpay(
        &self,
        payment_hash: &str,
        timeout_secs: u64,
        part: Option<Part>,
    ) -> Result<PaymentComplete, RpcError> {
        match self.wait_answer(payment_hash, timeout_secs, part).await {
            // The notification was recorded as the failure came (no wait: one thread of events).
            Err(e) => Err(self
                .failures
                .fill(e, payment_hash, part, Duration::ZERO)
                .await),
            ok => ok,
        }
    }
    async fn listsendpays(&self, payment_hash: &str) -> Result<Vec<SendpayStatus>, RpcError> {
        decode(self.call("listsendpays", json!({"payment_hash": payment_hash}))?["payments"].take())
    }
    async fn datastore(&self, key: &[&str], hex: &str, mode: &str) -> Result<(), RpcError> {
        self.call("datastore", json!({"key": key, "hex": hex, "mode": mode}))
            .map(|_| ())
    }
    async fn datastore_string(
        &self,
        key: &[&str],
        string: &str,
        mode: &str,
    ) -> Result<(), RpcError> {
        self.call(
            "datastore",
            json!({"key": key, "string": string, "mode": mode}),
        )
        .map(|_| ())
    }
    async fn listdatastore(&self, key: &[&str]) -> Result<Vec<DatastoreEntry>, RpcError> {
        decode(self.call("listdatastore", json!({"key": key}))?["datastore"].take())
    }
    async fn listforwards_settled(&self) -> Result<Vec<Forward>, RpcError> {
        decode(self.call("listforwards", json!({"status": "settled"}))?["forwards"].take())
    }
    async fn deldatastore(&self, key: &[&str]) -> Result<(), RpcError> {
        self.call("deldatastore", json!({"key": key})).map(|_| ())
    }
    async fn askrene_listlayers(&self, layer: &str) -> Result<Vec<AskreneConstraint>, RpcError> {
        let mut v = self.call("askrene-listlayers", json!({"layer": layer}))?;
        match v["layers"].get_mut(0) {
            Some(l) => decode(l["constraints"].take()),
            None => Ok(Vec::new()),
        }
    }
    async fn askrene_create_layer(&self, layer: &str, persistent: bool) -> Result<(), RpcError> {
        self.call(
            "askrene-create-layer",
            json!({"layer": layer, "persistent": persistent}),
        )
        .map(|_| ())
    }
    async fn askrene_inform_channel(
        &self,
        layer: &str,
        short_channel_id_dir: &str,
        amount_msat: u64,
        inform: AskreneInform,
    ) -> Result<(), RpcError> {
        self.call(
            "askrene-inform-channel",
            json!({"layer": layer, "short_channel_id_dir": short_channel_id_dir,
                   "amount_msat": amount_msat, "inform": inform.name()}),
        )
        .map(|_| ())
    }
    async fn askrene_age(&self, layer: &str, cutoff: u64) -> Result<u64, RpcError> {
        let v = self.call("askrene-age", json!({"layer": layer, "cutoff": cutoff}))?;
        Ok(v["num_removed"].as_u64().unwrap_or(0))
    }
    async fn addgossip(&self, message_hex: &str) -> Result<(), RpcError> {
        self.call("addgossip", json!({"message": message_hex}))
            .map(|_| ())
    }
}

/// A channel for `hand_made` of 10M sat, 9M on `node1`'s side, both directions at `ppm` (no
/// base fee, cltv delta 18).
pub fn nine_of_ten(scid: &str, node1: &str, node2: &str, ppm: u64) -> Value {
    let p =
        json!({"fee_base_msat": 0, "fee_proportional_millionths": ppm, "cltv_expiry_delta": 18});
    json!({"short_channel_id": scid, "node1": node1, "node2": node2,
        "capacity_sat": 10_000_000u64, "node1_msat": 9_000_000_000u64,
        "policy1": p, "policy2": p})
}

/// Nothing left behind: no unpaid invoice, no HTLC in flight.
pub fn assert_clean(node: &SimNode) {
    let unpaid: Vec<Value> = node
        .invoices()
        .into_iter()
        .filter(|i| i["status"] != "paid")
        .collect();
    assert!(unpaid.is_empty(), "invoices left behind: {unpaid:?}");
    assert_eq!(node.pending_htlcs(), 0, "HTLCs left in flight");
}

/// The stand-in's demo network file, to change before loading it.
pub fn demo_network_file() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("plugin-tests/standin/networks/demo.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("demo network file"))
        .expect("demo network JSON")
}

/// `file` (a network file's JSON) as a network model, its `invoice_payment` hook on.
pub fn network_from(file: &Value) -> Network {
    let mut net = Network::from_json_str(&file.to_string()).expect("network loads");
    net.hooks.invoice_payment = true; // the plugin registers it
    net
}

/// The demo network shipped with the stand-in.
pub fn demo_network() -> Network {
    network_from(&demo_network_file())
}

/// A rebalancer over `net`, with its `invoice_payment` hook wired as lightningd would call it.
/// The defaults, but `rebalance` pays at once, unprobed (`rebalance-probe-first=false`): for
/// tests of what failed or held payment attempts do.
pub fn pay_at_once() -> Config {
    Config {
        probe_first: false,
        ..Config::default()
    }
}

pub fn rebalancer(net: Network, config: Config) -> (Arc<State<SimNode>>, SimNode) {
    let node = SimNode::new(net);
    let r = hooked(
        node.clone(),
        config,
        Arc::new(cln_rebalance::clock::SystemClock),
    );
    (r, node)
}

/// A rebalancer over `node` on `clock`, its `invoice_payment` hook wired as lightningd would.
pub fn hooked(node: SimNode, config: Config, clock: Arc<dyn Clock>) -> Arc<State<SimNode>> {
    let r = Arc::new(State::with_clock(node.clone(), config, clock));
    let weak: Weak<State<SimNode>> = Arc::downgrade(&r);
    let hook: Hook = Arc::new(move |payload: Value| {
        let weak = weak.clone();
        Box::pin(async move {
            match weak.upgrade() {
                Some(r) => {
                    cln_rebalance::rebalance::arrival::on_invoice_payment(&r, &payload).await
                }
                None => json!({"result": "continue"}),
            }
        })
    });
    *node.hook.lock().unwrap() = Some(hook);
    r
}

/// Node `i`'s id in the small hand-made networks of the in-process tests.
pub fn node_id(i: usize) -> String {
    format!("02{:064x}", i + 1)
}

/// After probes: everything as it was (`before`: `dev-state`'s channels), no invoice, every
/// sendpay failed (as a probe must), no HTLC left.
pub fn untouched(node: &SimNode, before: &serde_json::Value) {
    assert_eq!(&node.channel_state(), before, "no channel moved");
    assert!(node.invoices().is_empty(), "{:?}", node.invoices());
    assert!(
        node.sendpays().iter().all(|s| s["status"] == "failed"),
        "every probe failed, as it must: {:?}",
        node.sendpays()
    );
    assert_clean(node);
}

/// A hand-made network: "us" at block 800,000 (`cltv_final` 18), `nodes` (as
/// [`named_nodes`] makes them), `channels` (as [`cheap_channel`] makes them), `default_policy`
/// where a channel gives none.
pub fn hand_made(
    nodes: Vec<serde_json::Value>,
    default_policy: serde_json::Value,
    channels: Vec<serde_json::Value>,
) -> cln_standin::simnet::Network {
    network_from(&serde_json::json!({
        "blockheight": 800_000, "us": "us", "config": {"cltv_final": 18},
        "nodes": nodes, "default_policy": default_policy, "channels": channels,
    }))
}

/// The `nodes` of a hand-made network: node `i` named `names[i]`, with [`node_id`]`(i)`.
pub fn named_nodes(names: &[&str]) -> Vec<serde_json::Value> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| serde_json::json!({"id": node_id(i), "alias": n}))
        .collect()
}

/// `rebalance` of `amount_msat` from `out` to `inc`, one route at a time (for tests that read
/// what a single route teaches), 10,000 ppm cap, 10 s of retries.
pub fn one_route_params(
    out: &str,
    inc: &str,
    amount_msat: u64,
) -> cln_rebalance::params::RebalanceParams {
    cln_rebalance::params::RebalanceParams {
        maxfeeppm: Some(10_000),
        retry_for: Some(10),
        maxparts: Some(1),
        ..parts_params(out, inc, amount_msat)
    }
}

/// `rebalance` of `amount_msat` from `out` to `inc` as an operator would ask it: parts as the
/// options allow, 1000 ppm cap, 30 s of retries.
pub fn parts_params(
    out: &str,
    inc: &str,
    amount_msat: u64,
) -> cln_rebalance::params::RebalanceParams {
    cln_rebalance::params::RebalanceParams {
        outgoing: out.into(),
        incoming: inc.into(),
        amount_msat: Some(amount_msat),
        maxfeeppm: Some(1000),
        exemptfee: None,
        retry_for: Some(30),
        dryrun: false,
        maxparts: None,
        amount_max: false,
    }
}

/// `rebalance-probe` from `outgoing` to `incoming`, 1000 ppm cap, optionally for `amount_msat`.
pub fn probe_params(
    outgoing: &str,
    incoming: &str,
    amount_msat: Option<u64>,
) -> cln_rebalance::params::ProbeParams {
    cln_rebalance::params::ProbeParams {
        outgoing: outgoing.into(),
        incoming: incoming.into(),
        amount_msat,
        maxfeeppm: Some(1000),
        exemptfee: None,
        maxparts: None,
    }
}

/// The fee policy of the hand-made networks' channels: no base fee, 10 ppm, 18 blocks.
pub fn cheap_policy() -> serde_json::Value {
    serde_json::json!({"fee_base_msat": 0, "fee_proportional_millionths": 10, "cltv_expiry_delta": 18})
}

/// A channel of a hand-made network between nodes named `node1` and `node2`, `node1_sat` of
/// its `capacity_sat` on node1's side, both directions at [`cheap_policy`].
pub fn cheap_channel(
    scid: &str,
    node1: &str,
    node2: &str,
    capacity_sat: u64,
    node1_sat: u64,
) -> serde_json::Value {
    serde_json::json!({"short_channel_id": scid, "node1": node1, "node2": node2,
        "capacity_sat": capacity_sat, "node1_msat": node1_sat * 1000,
        "policy1": cheap_policy(), "policy2": cheap_policy()})
}

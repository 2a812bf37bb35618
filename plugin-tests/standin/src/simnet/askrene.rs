//! askrene's layers as v26.06.6 keeps them (plugins/askrene/askrene.c, layer.c,
//! datastore_wire.c): `askrene-create-layer`, `askrene-remove-layer`, `askrene-listlayers`,
//! `askrene-inform-channel`, `askrene-age`, with askrene's JSON shapes and errors. Only
//! constraints are modelled inside a layer (the other parts list as empty arrays); there are
//! no reservations, so `constrained` records amount - 1 msat. A persistent layer lives in the
//! datastore under `["askrene","layers",<name>]` in askrene's own binary records: written whole
//! on creation and after `askrene-age` (`create-or-replace`), one record appended per inform
//! (`create-or-append`), so it grows until aged, as on a real node.
//!
//! xpay's part ([`Network::start_xpay`]): the persistent layer `xpay`, created at start and aged
//! every 60 s to one hour (plugins/xpay/xpay.c); the stand-in's own payments do not inform it.
//! Tests that want what xpay would learn call `askrene-inform-channel layer=xpay` themselves.

use super::params::{self, JSONRPC2_INVALID_PARAMS, RpcError, RpcResult, raw_text};
use super::{Event, Network};
use crate::sha256::{hex, unhex};
use serde_json::{Map, Value, json};

/// askrene's methods the stand-in serves, with their usage (for `help`).
pub const ASKRENE_METHODS: &[(&str, &str)] = &[
    ("askrene-age", "layer cutoff"),
    ("askrene-create-layer", "layer [persistent]"),
    (
        "askrene-inform-channel",
        "layer short_channel_id_dir amount_msat inform",
    ),
    ("askrene-listlayers", "[layer]"),
    ("askrene-remove-layer", "layer"),
];

/// xpay's aging: every 60 s, `askrene-age xpay <now - 3600>`.
pub const XPAY_AGE_EVERY_SECS: u64 = 60;
pub const XPAY_LAYER_MAX_AGE_SECS: u64 = 3600;

/// `DSTORE_CHANNEL_CONSTRAINT` (plugins/askrene/datastore_wire.h).
const DSTORE_CHANNEL_CONSTRAINT: u16 = 3;

/// What the askrene plugin holds.
#[derive(Debug, Clone, Default)]
pub struct Askrene {
    /// In creation order (listed by name).
    pub layers: Vec<Layer>,
    /// When xpay next ages its layer (network time), once [`Network::start_xpay`] ran.
    pub xpay_next_age: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub name: String,
    pub persistent: bool,
    pub constraints: Vec<Constraint>,
}

/// Something learned about one direction of a channel (`struct constraint`).
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    pub scid: String,
    pub dir: u8,
    pub timestamp: u64,
    /// 0 means unset.
    pub minimum_msat: u64,
    /// `u64::MAX` means unset.
    pub maximum_msat: u64,
}

impl Constraint {
    /// `json_add_constraint`.
    fn to_json(&self, layer: Option<&str>) -> Value {
        let mut o = Map::new();
        if let Some(l) = layer {
            o.insert("layer".into(), json!(l));
        }
        o.insert(
            "short_channel_id_dir".into(),
            json!(format!("{}/{}", self.scid, self.dir)),
        );
        o.insert("timestamp".into(), json!(self.timestamp));
        if self.minimum_msat != 0 {
            o.insert("minimum_msat".into(), json!(self.minimum_msat));
        }
        if self.maximum_msat != u64::MAX {
            o.insert("maximum_msat".into(), json!(self.maximum_msat));
        }
        Value::Object(o)
    }

    /// `towire_dstore_channel_constraint`: type, scid, dir, timestamp, optional min and max.
    fn to_wire(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&DSTORE_CHANNEL_CONSTRAINT.to_be_bytes());
        out.extend_from_slice(&scid_u64(&self.scid).to_be_bytes());
        out.push(self.dir);
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        for (set, v) in [
            (self.minimum_msat != 0, self.minimum_msat),
            (self.maximum_msat != u64::MAX, self.maximum_msat),
        ] {
            out.push(u8::from(set));
            if set {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
    }
}

impl Layer {
    /// `json_add_layer`.
    fn to_json(&self) -> Value {
        let constraints: Vec<Value> = self.constraints.iter().map(|c| c.to_json(None)).collect();
        json!({
            "layer": self.name,
            "persistent": self.persistent,
            "disabled_nodes": [],
            "created_channels": [],
            "channel_updates": [],
            "constraints": constraints,
            "biases": [],
            "node_biases": [],
        })
    }

    /// The whole layer as askrene's `save_complete_layer` writes it.
    fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for c in &self.constraints {
            c.to_wire(&mut out);
        }
        out
    }

    /// `populate_layer`: the records of a datastore entry (only constraints are written here).
    fn from_wire(name: &str, data: &[u8]) -> Result<Layer, String> {
        let mut r = WireReader { data, pos: 0 };
        let invalid = || format!("{name}: invalid data in datastore");
        let mut layer = Layer {
            name: name.to_string(),
            persistent: true,
            constraints: Vec::new(),
        };
        while !r.is_empty() {
            // fromwire_u16 gives 0 on truncation.
            let t = r.u16().unwrap_or(0);
            if t != DSTORE_CHANNEL_CONSTRAINT {
                return Err(format!(
                    "Invalid type {t} in datastore: layer {name} (the stand-in writes only \
                     constraints)"
                ));
            }
            let scid = scid_string(r.u64().ok_or_else(invalid)?);
            let dir = r.u8().ok_or_else(invalid)?;
            let timestamp = r.u64().ok_or_else(invalid)?;
            let minimum_msat = r.opt_u64().ok_or_else(invalid)?.unwrap_or(0);
            let maximum_msat = r.opt_u64().ok_or_else(invalid)?.unwrap_or(u64::MAX);
            layer.constraints.push(Constraint {
                scid,
                dir,
                timestamp,
                minimum_msat,
                maximum_msat,
            });
        }
        Ok(layer)
    }
}

/// Reads askrene's big-endian wire records.
struct WireReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl WireReader<'_> {
    fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b = self.data.get(self.pos..self.pos + N)?;
        self.pos += N;
        b.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take::<2>().map(u16::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_be_bytes)
    }

    /// `fromwire_opt_amount_msat`: a bool, then the value if set.
    fn opt_u64(&mut self) -> Option<Option<u64>> {
        match self.u8()? {
            0 => Some(None),
            _ => self.u64().map(Some),
        }
    }
}

/// BOLT 7's 8-byte short_channel_id.
fn scid_u64(scid: &str) -> u64 {
    let (b, t, o) = super::scid_key(scid);
    (b << 40) | (t << 16) | o
}

fn scid_string(v: u64) -> String {
    format!("{}x{}x{}", v >> 40, (v >> 16) & 0xff_ffff, v & 0xffff)
}

/// `param_short_channel_id_dir`: `BxTxO/D`.
fn parse_scidd(v: &Value) -> Result<(String, u8), RpcError> {
    let bad = || {
        RpcError::badparam(
            "short_channel_id_dir",
            "should be a short_channel_id_dir of form NxNxN/N",
            v,
        )
    };
    let s = v.as_str().ok_or_else(bad)?;
    let (scid, dir) = s.split_once('/').ok_or_else(bad)?;
    let scid = params::normalize_scid(scid).ok_or_else(bad)?;
    let dir = match dir {
        "0" => 0,
        "1" => 1,
        _ => return Err(bad()),
    };
    Ok((scid, dir))
}

fn layer_key(name: &str) -> Value {
    json!(["askrene", "layers", name])
}

impl Network {
    /// askrene's methods; `None` when askrene is not running (lightningd then answers
    /// "Unknown command") or for a method the stand-in does not model.
    pub fn askrene_call(
        &mut self,
        method: &str,
        p: &Value,
    ) -> Option<Result<(Value, Vec<Event>), RpcError>> {
        self.askrene.as_ref()?;
        Some(match method {
            "askrene-create-layer" => self.askrene_create_layer(p),
            "askrene-remove-layer" => self.askrene_remove_layer(p),
            "askrene-listlayers" => self.askrene_listlayers(p).map(|v| (v, vec![])),
            "askrene-inform-channel" => self.askrene_inform_channel(p),
            "askrene-age" => self.askrene_age(p),
            _ => return None,
        })
    }

    fn askrene_mut(&mut self) -> &mut Askrene {
        self.askrene.as_mut().expect("askrene is running")
    }

    fn layer_index(&self, name: &str) -> Option<usize> {
        self.askrene
            .as_ref()?
            .layers
            .iter()
            .position(|l| l.name == name)
    }

    /// `param_known_layer`.
    fn known_layer(&self, p: &params::Params, name: &str) -> Result<Option<usize>, RpcError> {
        match p.get(name) {
            None => Ok(None),
            Some(v) => self
                .layer_index(&raw_text(v))
                .map(Some)
                .ok_or_else(|| RpcError::badparam(name, "Unknown layer", v)),
        }
    }

    fn askrene_create_layer(&mut self, p: &Value) -> Result<(Value, Vec<Event>), RpcError> {
        let p = params::parse(p, &[("layer", true), ("persistent", false)])?;
        let name = raw_text(p.get("layer").expect("required"));
        let persistent = p.bool("persistent")?.unwrap_or(false);
        if name.starts_with("auto.") {
            return Err(RpcError::new(
                JSONRPC2_INVALID_PARAMS,
                "Cannot create auto layer",
            ));
        }
        // Creating a persistent layer that exists is a no-op.
        let (li, events) = match self.layer_index(&name) {
            Some(_) if !persistent => {
                return Err(RpcError::new(
                    JSONRPC2_INVALID_PARAMS,
                    "Layer already exists",
                ));
            }
            Some(li) => (li, vec![]),
            None => {
                self.askrene_mut().layers.push(Layer {
                    name,
                    persistent,
                    constraints: Vec::new(),
                });
                let li = self.askrene_mut().layers.len() - 1;
                (li, self.save_complete_layer(li))
            }
        };
        let layer = self.askrene_mut().layers[li].to_json();
        Ok((json!({"layers": [layer]}), events))
    }

    fn askrene_remove_layer(&mut self, p: &Value) -> Result<(Value, Vec<Event>), RpcError> {
        let p = params::parse(p, &[("layer", true)])?;
        let li = self.known_layer(&p, "layer")?.expect("required");
        let layer = self.askrene_mut().layers.remove(li);
        let mut events = vec![];
        if layer.persistent {
            match self.deldatastore(&json!({"key": layer_key(&layer.name)})) {
                Ok((_, ev)) => events = ev,
                Err(e) => self.askrene_broken(&format!("deldatastore: {e}")),
            }
        }
        Ok((json!({}), events))
    }

    fn askrene_listlayers(&mut self, p: &Value) -> RpcResult {
        let p = params::parse(p, &[("layer", false)])?;
        let only = self.known_layer(&p, "layer")?;
        let a = self.askrene.as_ref().expect("askrene is running");
        // askrene lists them in its hash table's order; by name here, so it is stable.
        let mut order: Vec<usize> = (0..a.layers.len())
            .filter(|&i| only.is_none_or(|o| o == i))
            .collect();
        order.sort_by(|&x, &y| a.layers[x].name.cmp(&a.layers[y].name));
        let layers: Vec<Value> = order.iter().map(|&i| a.layers[i].to_json()).collect();
        Ok(json!({"layers": layers}))
    }

    fn askrene_inform_channel(&mut self, p: &Value) -> Result<(Value, Vec<Event>), RpcError> {
        let p = params::parse(
            p,
            &[
                ("layer", true),
                ("short_channel_id_dir", true),
                ("amount_msat", true),
                ("inform", true),
            ],
        )?;
        let li = self.known_layer(&p, "layer")?.expect("required");
        let (scid, dir) = parse_scidd(p.get("short_channel_id_dir").expect("required"))?;
        let amount = p.msat("amount_msat")?.expect("required");
        let inform = p.get("inform").expect("required");
        // v26.06's param_inform answers this error but goes on with an undefined value; the
        // stand-in stops at the error.
        let (min, max) = match inform.as_str() {
            // It did not pass: at most one msat short of it (no reservations here).
            Some("constrained") => (0, amount.saturating_sub(1)),
            // It passed: at least this much.
            Some("unconstrained") => (amount, u64::MAX),
            Some("succeeded") => return Ok((json!({"constraints": []}), vec![])),
            _ => {
                return Err(RpcError::badparam(
                    "inform",
                    "must be constrained/unconstrained/succeeded",
                    inform,
                ));
            }
        };
        let c = Constraint {
            scid,
            dir,
            timestamp: self.now(),
            minimum_msat: min,
            maximum_msat: max,
        };
        let out = json!({"constraints": [c.to_json(Some(&self.askrene_mut().layers[li].name))]});
        let layer = &mut self.askrene_mut().layers[li];
        layer.constraints.push(c.clone());
        let events = if layer.persistent {
            let name = layer.name.clone();
            let mut rec = Vec::new();
            c.to_wire(&mut rec);
            self.write_layer_record(&name, rec, "create-or-append")
        } else {
            vec![]
        };
        Ok((out, events))
    }

    fn askrene_age(&mut self, p: &Value) -> Result<(Value, Vec<Event>), RpcError> {
        let p = params::parse(p, &[("layer", true), ("cutoff", true)])?;
        let li = self.known_layer(&p, "layer")?.expect("required");
        let cutoff = p.u64("cutoff")?.expect("required");
        Ok(self.age_layer(li, cutoff))
    }

    /// `layer_trim_constraints`: drops what is older than `cutoff`, rewrites a persistent
    /// layer whole.
    fn age_layer(&mut self, li: usize, cutoff: u64) -> (Value, Vec<Event>) {
        let layer = &mut self.askrene_mut().layers[li];
        let before = layer.constraints.len();
        layer.constraints.retain(|c| c.timestamp >= cutoff);
        let num_removed = before - layer.constraints.len();
        let name = layer.name.clone();
        let events = self.save_complete_layer(li);
        (json!({"layer": name, "num_removed": num_removed}), events)
    }

    /// `save_complete_layer`: a persistent layer written whole (`create-or-replace`).
    fn save_complete_layer(&mut self, li: usize) -> Vec<Event> {
        let layer = &self.askrene_mut().layers[li];
        if !layer.persistent {
            return vec![];
        }
        let (name, data) = (layer.name.clone(), layer.to_wire());
        self.write_layer_record(&name, data, "create-or-replace")
    }

    fn write_layer_record(&mut self, name: &str, data: Vec<u8>, mode: &str) -> Vec<Event> {
        let req = json!({"key": layer_key(name), "hex": hex(&data), "mode": mode});
        match self.datastore(&req) {
            Ok((_, events)) => events,
            Err(e) => {
                // askrene's plugin_broken_cb.
                self.askrene_broken(&format!("datastore: {e}"));
                vec![]
            }
        }
    }

    fn askrene_broken(&mut self, message: &str) {
        self.log_broken_as("plugin-askrene", message.to_string());
    }

    /// askrene's `load_layers` at its start: every persistent layer in the datastore.
    pub fn askrene_load_layers(&mut self) {
        if self.askrene.is_none() {
            return;
        }
        let listed = self.listdatastore(&json!({"key": ["askrene", "layers"]}));
        let entries = listed.map(|v| v["datastore"].clone()).unwrap_or_default();
        for e in entries.as_array().into_iter().flatten() {
            let (Some(name), Some(data)) = (
                e["key"].get(2).and_then(Value::as_str),
                e["hex"].as_str().and_then(unhex),
            ) else {
                continue;
            };
            match Layer::from_wire(name, &data) {
                Ok(layer) => {
                    let a = self.askrene_mut();
                    a.layers.retain(|l| l.name != layer.name);
                    a.layers.push(layer);
                }
                Err(why) => self.askrene_broken(&why),
            }
        }
    }

    /// xpay's start: its persistent layer `xpay` (a no-op if loaded from the datastore) and
    /// its aging timer.
    pub fn start_xpay(&mut self) -> Vec<Event> {
        if self.askrene.is_none() {
            return vec![];
        }
        let events = match self.askrene_create_layer(&json!({"layer": "xpay", "persistent": true}))
        {
            Ok((_, ev)) => ev,
            Err(e) => {
                self.log_broken_as("plugin-xpay", format!("askrene-create-layer: {e}"));
                vec![]
            }
        };
        let next = self.now() + XPAY_AGE_EVERY_SECS;
        self.askrene_mut().xpay_next_age = Some(next);
        events
    }

    /// xpay's aging timer, if due: `askrene-age xpay <now - 3600>`.
    pub(crate) fn fire_xpay_age(&mut self) -> Vec<Event> {
        let now = self.now();
        let Some(next) = self.askrene.as_ref().and_then(|a| a.xpay_next_age) else {
            return vec![];
        };
        if now < next {
            return vec![];
        }
        self.askrene_mut().xpay_next_age = Some(now + XPAY_AGE_EVERY_SECS);
        match self.layer_index("xpay") {
            Some(li) => {
                self.age_layer(li, now.saturating_sub(XPAY_LAYER_MAX_AGE_SECS))
                    .1
            }
            None => {
                self.log_broken_as(
                    "plugin-xpay",
                    "askrene-age: layer: Unknown layer: invalid token '\"xpay\"' (code -32602)"
                        .into(),
                );
                vec![]
            }
        }
    }
}

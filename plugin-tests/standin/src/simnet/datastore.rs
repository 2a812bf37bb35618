//! lightningd's datastore (lightningd/datastore.c, wallet/datastore.c of v26.06): datastore,
//! listdatastore, deldatastore, datastoreusage. Kept in the [`Network`], so it outlives a
//! plugin; the daemon can also persist it to a file (`--datastore-file`), as lightningd keeps it
//! in its database.
//!
//! What lightningd does, and so this does:
//! - keys are paths (arrays of strings; a string is a one-element path), sorted as the DB sorts
//!   the parts joined with NULs: element by element, bytewise, a prefix first;
//! - a key holds data or has children, never both; parents are not entries of their own;
//! - key elements are taken as the raw JSON text between the quotes (`json_strdup`, no
//!   unescaping): `"a\"b"` is stored as the four characters `a\"b`. Numbers and booleans are
//!   accepted as their text;
//! - `string` is unescaped (`param_escaped_string`), `hex` is parsed from the token's text and,
//!   by a quirk of `param_bin_from_hex`, invalid hex is ignored as if not given;
//! - results carry `generation` and `hex`, plus `string` when the data is valid UTF-8 without
//!   NUL bytes (`utf8_str`); listdatastore shows deeper descendants as one `{key}` entry (no
//!   data) per child of the listed key.

use super::params::{self, RpcError, RpcResult};
use super::{Event, Network};
use crate::sha256::{hex, unhex};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

pub const DATASTORE_DEL_DOES_NOT_EXIST: i64 = 1200;
pub const DATASTORE_DEL_WRONG_GENERATION: i64 = 1201;
pub const DATASTORE_UPDATE_ALREADY_EXISTS: i64 = 1202;
pub const DATASTORE_UPDATE_DOES_NOT_EXIST: i64 = 1203;
pub const DATASTORE_UPDATE_WRONG_GENERATION: i64 = 1204;
pub const DATASTORE_UPDATE_HAS_CHILDREN: i64 = 1205;
pub const DATASTORE_UPDATE_NO_CHILDREN: i64 = 1206;

/// One datastore record.
#[derive(Debug, Clone, PartialEq)]
pub struct DatastoreEntry {
    pub data: Vec<u8>,
    /// 0 on creation, +1 on every replace or append.
    pub generation: u64,
}

/// The datastore: key path -> record. `Vec<String>` orders as lightningd's DB orders keys.
pub type Datastore = BTreeMap<Vec<String>, DatastoreEntry>;

// ds_mode bits.
const MUST_EXIST: u8 = 1;
const MUST_NOT_EXIST: u8 = 2;
const APPEND: u8 = 4;

/// The raw JSON text of a string token, between its quotes, as a JSON encoder writes it
/// (`"` and `\` escaped, control characters as `\n` ... or `\u00XX`).
fn raw_token_text(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_string()
}

/// ccan's `hex_decode`: an even number of hex digits, either case.
fn strict_unhex(s: &str) -> Option<Vec<u8>> {
    if s.bytes().all(|b| b.is_ascii_hexdigit()) {
        unhex(s)
    } else {
        None
    }
}

/// `param_list_or_string`.
fn param_key(name: &str, tok: &Value) -> Result<Vec<String>, RpcError> {
    let element = |t: &Value| -> Option<String> {
        match t {
            Value::String(s) => Some(raw_token_text(s)),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null => Some("null".into()),
            _ => None,
        }
    };
    match tok {
        Value::Array(a) if a.is_empty() => {
            Err(RpcError::badparam(name, "should not be empty", tok))
        }
        Value::Array(a) => a
            .iter()
            .map(|t| element(t).ok_or_else(|| RpcError::badparam(name, "should be string", t)))
            .collect(),
        Value::Object(_) => Err(RpcError::badparam(name, "should be string or array", tok)),
        t => Ok(vec![element(t).expect("primitive")]),
    }
}

fn opt_key(p: &params::Params, name: &str) -> Result<Option<Vec<String>>, RpcError> {
    p.get(name).map(|t| param_key(name, t)).transpose()
}

/// `datastore_key_fmt`: `[a,b]`.
fn key_fmt(key: &[String]) -> String {
    format!("[{}]", key.join(","))
}

/// `json_add_datastore`: the key, and the data if there is any.
pub fn entry_json(key: &[String], entry: Option<&DatastoreEntry>) -> Value {
    let mut o = Map::new();
    o.insert("key".into(), json!(key));
    if let Some(e) = entry {
        o.insert("generation".into(), json!(e.generation));
        o.insert("hex".into(), json!(hex(&e.data)));
        // utf8_str: valid UTF-8, and ccan's decoder refuses NUL.
        if let Ok(s) = std::str::from_utf8(&e.data)
            && !e.data.contains(&0)
        {
            o.insert("string".into(), json!(s));
        }
    }
    Value::Object(o)
}

/// Every record whose key starts with `prefix` (all of them for `None`), in key order.
fn under<'a>(
    ds: &'a Datastore,
    prefix: Option<&'a [String]>,
) -> impl Iterator<Item = (&'a Vec<String>, &'a DatastoreEntry)> + 'a {
    let start = prefix.map(|p| p.to_vec()).unwrap_or_default();
    ds.range(start..)
        .take_while(move |(k, _)| prefix.is_none_or(|p| k.starts_with(p)))
}

impl Network {
    pub fn datastore(&mut self, p: &Value) -> Result<(Value, Vec<Event>), RpcError> {
        let p = params::parse(
            p,
            &[
                ("key", true),
                ("string", false),
                ("hex", false),
                ("mode", false),
                ("generation", false),
            ],
        )?;
        let key = opt_key(&p, "key")?.expect("required");
        let string = match p.get("string") {
            None => None,
            // jsmn hands lightningd the escaped text; json_escape_unescape refuses \u, so only
            // the control characters JSON has short escapes for can be in a valid string.
            Some(Value::String(s))
                if !s
                    .chars()
                    .any(|c| c < ' ' && !matches!(c, '\n' | '\t' | '\r' | '\x08' | '\x0c')) =>
            {
                Some(s.clone())
            }
            Some(v) => {
                return Err(RpcError::badparam(
                    "string",
                    "should be a string (without \\u)",
                    v,
                ));
            }
        };
        // param_bin_from_hex tests the wrong pointer: bad hex is silently taken as no hex.
        // The token's text is decoded whatever its type (a number of hex digits works too).
        let hexdata = p.get("hex").and_then(|v| match v {
            Value::String(s) => strict_unhex(s),
            Value::Number(n) => strict_unhex(&n.to_string()),
            _ => None,
        });
        let mode = match p.get("mode") {
            None => MUST_NOT_EXIST,
            Some(v) => match v.as_str() {
                Some("must-create") => MUST_NOT_EXIST,
                Some("must-replace") => MUST_EXIST,
                Some("create-or-replace") => 0,
                Some("must-append") => MUST_EXIST | APPEND,
                Some("create-or-append") => APPEND,
                _ => {
                    return Err(RpcError::badparam(
                        "mode",
                        "should be 'must-create', 'must-replace', 'create-or-replace', \
                         'must-append', or 'create-or-append'",
                        v,
                    ));
                }
            },
        };
        let generation = p.u64("generation")?;
        let data = match (string, hexdata) {
            (Some(_), Some(_)) => return Err(RpcError::invalid("Cannot have both hex and string")),
            (Some(s), None) => s.into_bytes(),
            (None, Some(h)) => h,
            (None, None) => return Err(RpcError::invalid("Must have either hex or string")),
        };
        if generation.is_some() && mode & MUST_EXIST == 0 {
            return Err(RpcError::invalid(
                "generation only valid with must-replace or must-append",
            ));
        }
        // The first record at or after the key, if it is the key or below it.
        let prev = match under(&self.datastore, Some(&key)).next() {
            None => None,
            Some((k, e)) if *k == key => Some(e.clone()),
            Some(_) => {
                return Err(RpcError::new(
                    DATASTORE_UPDATE_HAS_CHILDREN,
                    "Key has children already",
                ));
            }
        };
        if prev.is_none() {
            for i in 1..key.len() {
                if self.datastore.contains_key(&key[..i]) {
                    return Err(RpcError::new(
                        DATASTORE_UPDATE_NO_CHILDREN,
                        format!("Parent key {} exists", key_fmt(&key[..i])),
                    ));
                }
            }
        }
        if mode & MUST_NOT_EXIST != 0 && prev.is_some() {
            return Err(RpcError::new(
                DATASTORE_UPDATE_ALREADY_EXISTS,
                "Key already exists",
            ));
        }
        if mode & MUST_EXIST != 0 && prev.is_none() {
            return Err(RpcError::new(
                DATASTORE_UPDATE_DOES_NOT_EXIST,
                "Key does not exist",
            ));
        }
        if let (Some(g), Some(prev)) = (generation, &prev)
            && prev.generation != g
        {
            return Err(RpcError::new(
                DATASTORE_UPDATE_WRONG_GENERATION,
                "generation is different",
            ));
        }
        let entry = match prev {
            Some(mut e) => {
                if mode & APPEND != 0 {
                    e.data.extend_from_slice(&data);
                } else {
                    e.data = data;
                }
                e.generation += 1;
                e
            }
            None => DatastoreEntry {
                data,
                generation: 0,
            },
        };
        let out = entry_json(&key, Some(&entry));
        self.datastore.insert(key, entry);
        Ok((out, vec![Event::DatastoreChanged]))
    }

    pub fn listdatastore(&mut self, p: &Value) -> RpcResult {
        let p = params::parse(p, &[("key", false)])?;
        let key = opt_key(&p, "key")?;
        let depth = key.as_ref().map_or(0, Vec::len);
        let mut out = Vec::new();
        let mut summarized: Option<&[String]> = None;
        for (k, e) in under(&self.datastore, key.as_deref()) {
            if k.len() > depth + 1 {
                // Don't list sub-children, except as a summary to show they exist.
                if summarized.is_none_or(|s| !k.starts_with(s)) {
                    summarized = Some(&k[..depth + 1]);
                    out.push(entry_json(&k[..depth + 1], None));
                }
            } else {
                out.push(entry_json(k, Some(e)));
            }
        }
        Ok(json!({"datastore": out}))
    }

    pub fn deldatastore(&mut self, p: &Value) -> Result<(Value, Vec<Event>), RpcError> {
        let p = params::parse(p, &[("key", true), ("generation", false)])?;
        let key = opt_key(&p, "key")?.expect("required");
        let generation = p.u64("generation")?;
        let Some(e) = self.datastore.get(&key) else {
            return Err(RpcError::new(
                DATASTORE_DEL_DOES_NOT_EXIST,
                "Key does not exist",
            ));
        };
        if generation.is_some_and(|g| g != e.generation) {
            return Err(RpcError::new(
                DATASTORE_DEL_WRONG_GENERATION,
                "generation is different",
            ));
        }
        let out = entry_json(&key, Some(e));
        self.datastore.remove(&key);
        Ok((out, vec![Event::DatastoreChanged]))
    }

    pub fn datastoreusage(&mut self, p: &Value) -> RpcResult {
        let p = params::parse(p, &[("key", false)])?;
        // An empty key string (or an array starting with one) means the root.
        let key = opt_key(&p, "key")?.filter(|k| !k[0].is_empty());
        let total: usize = under(&self.datastore, key.as_deref())
            .map(|(k, e)| {
                // The key is stored as its parts joined by NULs.
                e.data.len() + k.len() - 1 + k.iter().map(String::len).sum::<usize>()
            })
            .sum();
        Ok(json!({"datastoreusage": {
            "key": key_fmt(key.as_deref().unwrap_or_default()),
            "total_bytes": total,
        }}))
    }

    /// Every record, as listdatastore shows records (for the daemon's `--datastore-file`).
    pub fn datastore_to_json(&self) -> Value {
        let all: Vec<Value> = self
            .datastore
            .iter()
            .map(|(k, e)| entry_json(k, Some(e)))
            .collect();
        json!({"datastore": all})
    }

    /// Replaces the datastore with what [`Network::datastore_to_json`] wrote.
    pub fn datastore_from_json(&mut self, v: &Value) -> Result<(), String> {
        let list = v["datastore"]
            .as_array()
            .ok_or("expected {\"datastore\": [...]}")?;
        let mut ds = Datastore::new();
        for item in list {
            let key: Vec<String> = serde_json::from_value(item["key"].clone())
                .map_err(|e| format!("bad key in {item}: {e}"))?;
            if key.is_empty() {
                return Err(format!("empty key in {item}"));
            }
            let data = item["hex"]
                .as_str()
                .and_then(strict_unhex)
                .ok_or_else(|| format!("bad hex in {item}"))?;
            let generation = item["generation"]
                .as_u64()
                .ok_or_else(|| format!("bad generation in {item}"))?;
            ds.insert(key, DatastoreEntry { data, generation });
        }
        self.datastore = ds;
        Ok(())
    }
}

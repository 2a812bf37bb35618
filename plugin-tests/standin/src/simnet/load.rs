//! Building a [`Network`]: from a network file (the documented JSON format, see the crate
//! README), or from a mainnet graph in `listchannels` shape with hidden balances drawn from a
//! seeded PRNG.

use super::{Channel, Config, Network, Node, Policy, derived_hex32, params};
use crate::prng::SplitMix64;
use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNetwork {
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<serde_json::Value>,
    #[serde(default = "default_blockheight")]
    blockheight: u32,
    us: String,
    #[serde(default)]
    config: FileConfig,
    nodes: Vec<FileNode>,
    #[serde(default)]
    default_policy: FilePolicy,
    channels: Vec<FileChannel>,
}

fn default_blockheight() -> u32 {
    800_000
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    cltv_final: Option<u32>,
    max_htlc_cltv: Option<u32>,
    fee_rounding: Option<String>,
    lazy_disable: Option<bool>,
    seed: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNode {
    id: String,
    alias: String,
    color: Option<String>,
    #[serde(default = "yes")]
    online: bool,
    #[serde(default)]
    strict_forwarding: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct FilePolicy {
    fee_base_msat: Option<u64>,
    fee_proportional_millionths: Option<u64>,
    cltv_expiry_delta: Option<u32>,
    htlc_minimum_msat: Option<u64>,
    htlc_maximum_msat: Option<u64>,
    active: Option<bool>,
}

impl FilePolicy {
    /// `self` over `base`.
    fn over(&self, base: &FilePolicy) -> FilePolicy {
        FilePolicy {
            fee_base_msat: self.fee_base_msat.or(base.fee_base_msat),
            fee_proportional_millionths: self
                .fee_proportional_millionths
                .or(base.fee_proportional_millionths),
            cltv_expiry_delta: self.cltv_expiry_delta.or(base.cltv_expiry_delta),
            htlc_minimum_msat: self.htlc_minimum_msat.or(base.htlc_minimum_msat),
            htlc_maximum_msat: self.htlc_maximum_msat.or(base.htlc_maximum_msat),
            active: self.active.or(base.active),
        }
    }

    fn resolve(&self, capacity_msat: u64, last_update: u64) -> Policy {
        Policy {
            // lightningd's defaults: fee-base 1000, fee-per-satoshi 10, cltv-delta 34.
            fee_base_msat: self.fee_base_msat.unwrap_or(1000),
            fee_proportional_millionths: self.fee_proportional_millionths.unwrap_or(10),
            cltv_expiry_delta: self.cltv_expiry_delta.unwrap_or(34),
            htlc_minimum_msat: self.htlc_minimum_msat.unwrap_or(0),
            htlc_maximum_msat: self.htlc_maximum_msat.unwrap_or(capacity_msat),
            active: self.active.unwrap_or(true),
            last_update,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileChannel {
    short_channel_id: String,
    node1: String,
    node2: String,
    capacity_msat: Option<u64>,
    capacity_sat: Option<u64>,
    node1_msat: Option<u64>,
    #[serde(default)]
    policy1: FilePolicy,
    #[serde(default)]
    policy2: FilePolicy,
    #[serde(default = "yes")]
    public: bool,
    state: Option<String>,
    opener: Option<String>,
}

/// Deterministic per-item color.
fn color_for(id: &str) -> String {
    id[2..8].to_string()
}

impl Network {
    /// Loads a network file (see README "Network file format").
    pub fn from_file(path: &Path) -> Result<Network> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading network file {}", path.display()))?;
        Network::from_json_str(&text).with_context(|| format!("in network file {}", path.display()))
    }

    pub fn from_json_str(text: &str) -> Result<Network> {
        let f: FileNetwork = serde_json::from_str(text)?;
        let mut config = Config::default();
        if let Some(v) = f.config.cltv_final {
            config.cltv_final = v;
        }
        if let Some(v) = f.config.max_htlc_cltv {
            config.max_htlc_cltv = v;
        }
        if let Some(v) = f.config.seed {
            config.seed = v;
        }
        if let Some(v) = f.config.lazy_disable {
            config.lazy_disable = v;
        }
        match f.config.fee_rounding.as_deref() {
            None | Some("ceil") => config.fee_rounding_ceil = true,
            Some("floor") => config.fee_rounding_ceil = false,
            Some(o) => bail!("config.fee_rounding must be \"ceil\" or \"floor\", not {o:?}"),
        }
        let now = 1_700_000_000;
        let nodes: Vec<Node> = f
            .nodes
            .iter()
            .map(|n| Node {
                id: n.id.to_ascii_lowercase(),
                alias: n.alias.clone(),
                color: n.color.clone().unwrap_or_else(|| color_for(&n.id)),
                online: n.online,
                strict_forwarding: n.strict_forwarding,
                last_timestamp: now,
            })
            .collect();
        let us_pos = nodes
            .iter()
            .position(|n| n.id == f.us.to_ascii_lowercase() || n.alias == f.us)
            .ok_or_else(|| anyhow!("\"us\": {} is not one of the nodes", f.us))?;
        let mut net = Network::new(nodes[us_pos].clone(), f.blockheight, config);
        for (i, n) in nodes.into_iter().enumerate() {
            if i != us_pos {
                net.add_node(n).map_err(|e| anyhow!(e))?;
            }
        }
        for c in &f.channels {
            let scid = params::normalize_scid(&c.short_channel_id)
                .ok_or_else(|| anyhow!("bad short_channel_id {:?}", c.short_channel_id))?;
            let n1 = net
                .node_by_ref(&c.node1)
                .ok_or_else(|| anyhow!("channel {scid}: unknown node1 {:?}", c.node1))?;
            let n2 = net
                .node_by_ref(&c.node2)
                .ok_or_else(|| anyhow!("channel {scid}: unknown node2 {:?}", c.node2))?;
            let capacity_msat = match (c.capacity_msat, c.capacity_sat) {
                (Some(m), None) => m,
                (None, Some(s)) => s * 1000,
                _ => bail!("channel {scid}: give exactly one of capacity_msat, capacity_sat"),
            };
            let b1 = c.node1_msat.unwrap_or(capacity_msat / 2);
            if b1 > capacity_msat {
                bail!("channel {scid}: node1_msat exceeds the capacity");
            }
            let opener = match c.opener.as_deref() {
                None | Some("node1") => 0,
                Some("node2") => 1,
                Some(o) => bail!("channel {scid}: opener must be node1 or node2, not {o:?}"),
            };
            let p1 = c
                .policy1
                .over(&f.default_policy)
                .resolve(capacity_msat, now);
            let p2 = c
                .policy2
                .over(&f.default_policy)
                .resolve(capacity_msat, now);
            let ch = new_channel(
                &scid,
                [n1, n2],
                capacity_msat,
                b1,
                [p1, p2],
                c.public,
                opener,
            );
            let ch = Channel {
                state: c.state.clone().unwrap_or(ch.state),
                ..ch
            };
            net.add_channel(ch).map_err(|e| anyhow!(e))?;
        }
        Ok(net)
    }

    /// Loads a mainnet graph in `listchannels` shape (optionally gzipped), giving every channel a
    /// hidden split of funds drawn from `seed`. `us` is a node id, or the node with most channels.
    pub fn from_listchannels(path: &Path, us: Option<&str>, seed: u64) -> Result<Network> {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut text = String::new();
        if path.extension().is_some_and(|e| e == "gz") {
            flate2::read::GzDecoder::new(file).read_to_string(&mut text)?;
        } else {
            std::io::BufReader::new(file).read_to_string(&mut text)?;
        }
        Network::from_listchannels_str(&text, us, seed)
    }

    pub fn from_listchannels_str(text: &str, us: Option<&str>, seed: u64) -> Result<Network> {
        #[derive(Deserialize)]
        struct Half {
            source: String,
            destination: String,
            short_channel_id: String,
            amount_msat: u64,
            #[serde(default = "yes")]
            public: bool,
            active: bool,
            #[serde(default)]
            last_update: u64,
            base_fee_millisatoshi: u64,
            fee_per_millionth: u64,
            delay: u32,
            htlc_minimum_msat: u64,
            htlc_maximum_msat: Option<u64>,
        }
        #[derive(Deserialize)]
        struct Top {
            channels: Vec<Half>,
        }
        let top: Top = serde_json::from_str(text).context("not a listchannels response")?;
        // Degree per node, to pick "us".
        let mut degree: HashMap<&str, usize> = HashMap::new();
        let mut by_scid: HashMap<&str, Vec<&Half>> = HashMap::new();
        for h in &top.channels {
            by_scid.entry(&h.short_channel_id).or_default().push(h);
        }
        for halves in by_scid.values() {
            let h = halves[0];
            *degree.entry(&h.source).or_default() += 1;
            *degree.entry(&h.destination).or_default() += 1;
        }
        let us_id = match us {
            Some(id) => {
                let id = id.to_ascii_lowercase();
                if !degree.contains_key(id.as_str()) {
                    bail!("{id} has no channel in this graph");
                }
                id
            }
            None => degree
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(k, _)| k.to_string())
                .ok_or_else(|| anyhow!("empty graph"))?,
        };
        let mk_node = |id: &str| Node {
            id: id.to_string(),
            alias: format!("node-{}", &id[2..10]),
            color: color_for(id),
            online: true,
            strict_forwarding: false,
            last_timestamp: 0,
        };
        let mut net = Network::new(
            mk_node(&us_id),
            800_000,
            Config {
                seed,
                ..Config::default()
            },
        );
        let mut rng = SplitMix64::new(seed);
        let mut ids: Vec<&str> = degree.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if id != us_id && params::is_node_id(id) {
                net.add_node(mk_node(id)).map_err(|e| anyhow!(e))?;
            }
        }
        let mut scids: Vec<&str> = by_scid.keys().copied().collect();
        scids.sort_unstable_by_key(|s| super::scid_key(s));
        for scid in scids {
            let halves = &by_scid[scid];
            let h0 = halves[0];
            let (Some(a), Some(b)) = (net.node_by_id(&h0.source), net.node_by_id(&h0.destination))
            else {
                continue;
            };
            // Side 0 is the lesser node id (BOLT 7 direction 0).
            let nodes = if net.nodes[a].id < net.nodes[b].id {
                [a, b]
            } else {
                [b, a]
            };
            let capacity = h0.amount_msat;
            let mut policy = [Policy::disabled(), Policy::disabled()];
            let mut set = [false, false];
            for h in halves {
                let s = usize::from(net.nodes[nodes[0]].id != h.source);
                policy[s] = Policy {
                    fee_base_msat: h.base_fee_millisatoshi,
                    fee_proportional_millionths: h.fee_per_millionth,
                    cltv_expiry_delta: h.delay,
                    htlc_minimum_msat: h.htlc_minimum_msat,
                    htlc_maximum_msat: h.htlc_maximum_msat.unwrap_or(capacity),
                    active: h.active,
                    last_update: h.last_update,
                };
                set[s] = true;
            }
            let b0 = hidden_balance(&mut rng, capacity);
            let mut ch = new_channel(scid, nodes, capacity, b0, policy, h0.public, 0);
            ch.update_set = set;
            net.add_channel(ch).map_err(|e| anyhow!(e))?;
        }
        Ok(net)
    }
}

/// Side 0's share of `capacity`: a mix like observed channel balances, a quarter nearly
/// empty, a quarter nearly full, half anywhere (uniform).
fn hidden_balance(rng: &mut SplitMix64, capacity: u64) -> u64 {
    let pick = rng.unit();
    let u = rng.unit();
    let frac = if pick < 0.25 {
        u * 0.1
    } else if pick < 0.5 {
        0.9 + u * 0.1
    } else {
        u
    };
    ((capacity as f64 * frac) as u64).min(capacity)
}

impl Policy {
    /// A direction with no usable update.
    pub fn disabled() -> Policy {
        Policy {
            fee_base_msat: 0,
            fee_proportional_millionths: 0,
            cltv_expiry_delta: 0,
            htlc_minimum_msat: 0,
            htlc_maximum_msat: 0,
            active: false,
            last_update: 0,
        }
    }
}

/// A channel in CHANNELD_NORMAL with lightningd-like derived identifiers.
pub fn new_channel(
    scid: &str,
    nodes: [usize; 2],
    capacity_msat: u64,
    node1_msat: u64,
    policy: [Policy; 2],
    public: bool,
    opener: usize,
) -> Channel {
    // lightningd's default reserve: 1% of the funding (dust limit ignored).
    let reserve = capacity_msat / 100 / 1000 * 1000;
    let mut parts = scid.split('x').map(|p| p.parse::<u64>().unwrap_or(0));
    let (b, t, o) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    Channel {
        scid: scid.to_string(),
        nodes,
        capacity_msat,
        balance_msat: [node1_msat, capacity_msat - node1_msat],
        reserve_msat: [reserve, reserve],
        policy,
        update_set: [true, true],
        public,
        state: "CHANNELD_NORMAL".to_string(),
        opener,
        channel_id: derived_hex32(&format!("channel_id {scid}")),
        funding_txid: derived_hex32(&format!("funding {scid}")),
        funding_outnum: o as u32,
        // Alias scids live in a block range no real channel uses (as lightningd's do).
        alias: [
            format!("{}x{}x{}", 15_000_000 + (b % 700_000), t, o),
            format!("{}x{}x{}", 15_700_000 + (b % 700_000), t, o),
        ],
        htlcs: Vec::new(),
        next_htlc_id: [0, 0],
        forced_failure: [None, None],
        disabled_by_peer: [false, false],
        held: false,
        stats: Default::default(),
        old_fees: None,
        ignore_fee_limits: false,
    }
}

//! The simulated network: nodes, channels with both directions' policies and a hidden split of
//! funds, our node's invoices and payments, and the HTLCs in flight. Pure: no I/O, no clock but
//! the one it is given; every lightningd method it serves takes JSON params and returns JSON
//! shaped as lightningd v26.06 returns it, plus [`Event`]s for whoever hosts the plugin (hooks to
//! call, waiters to wake).
//!
//! - `load`      network files (documented JSON) and mainnet `listchannels` graphs
//! - `views`     getinfo, listpeerchannels, listchannels, listnodes
//! - `invoices`  invoice, listinvoices, delinvoice, decode
//! - `pay`       sendpay, waitsendpay, listsendpays, the hop-by-hop forwarding model, and our
//!   node as final node (hooks, HTLC sets of multi-part payments)
//! - `askrene`   askrene's layers (listlayers, create, remove, inform-channel, age) and xpay's
//! - `forwards`  listforwards, and dev-forward (a payment forwarded through our node)
//! - `setchannel` setchannel: our side's fees and HTLC limits
//! - `datastore` datastore, listdatastore, deldatastore, datastoreusage
//! - `control`   the `dev-` methods tests and the demo use to steer and inspect the network
//! - `params`    lightningd's parameter parsing and error wording
//! - `wire`      BOLT 4 failcodes

pub mod askrene;
pub mod control;
pub mod datastore;
pub mod forwards;
pub mod invoices;
pub mod load;
pub mod params;
pub mod pay;
pub mod setchannel;
pub mod views;
pub mod wire;

use crate::prng::SplitMix64;
pub use params::{RpcError, RpcResult};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// A node of the network.
#[derive(Debug, Clone)]
pub struct Node {
    /// 66-hex compressed public key.
    pub id: String,
    pub alias: String,
    /// 6-hex RGB.
    pub color: String,
    /// An offline node is disconnected from all its peers: nothing can be forwarded to it.
    pub online: bool,
    /// lightningd's `dev-strict-forwarding`: when false (the default, as in lightningd) the node
    /// forwards over whichever of its channels to the next peer has the most spendable among
    /// those with the same fees (`best_channel`).
    pub strict_forwarding: bool,
    pub last_timestamp: u64,
}

/// One direction's `channel_update`: what the node at the start of it charges and allows.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub fee_base_msat: u64,
    pub fee_proportional_millionths: u64,
    pub cltv_expiry_delta: u32,
    pub htlc_minimum_msat: u64,
    pub htlc_maximum_msat: u64,
    /// `active` in listchannels; a disabled direction refuses to forward (channel_disabled).
    pub active: bool,
    pub last_update: u64,
}

/// An HTLC in flight on a channel, offered by the node on side `from`.
#[derive(Debug, Clone)]
pub struct Htlc {
    pub id: u64,
    pub from: usize,
    pub amount_msat: u64,
    /// Absolute block height.
    pub expiry: u32,
    pub payment_hash: String,
    /// The payment (index into `Network::payments`) it belongs to.
    pub payment: usize,
    /// lightningd's `hin->status`, e.g. while a hook is pending.
    pub status: Option<String>,
}

/// A channel between `nodes[0]` and `nodes[1]`. Index 0/1 is the "side"; `policy[s]` is the
/// direction from `nodes[s]` to `nodes[1 - s]`.
#[derive(Debug, Clone)]
pub struct Channel {
    pub scid: String,
    pub nodes: [usize; 2],
    pub capacity_msat: u64,
    /// Settled funds of each side (in-flight HTLCs are still counted with their offerer).
    pub balance_msat: [u64; 2],
    /// The reserve each side must keep (1% of capacity, as lightningd's default).
    pub reserve_msat: [u64; 2],
    pub policy: [Policy; 2],
    /// Whether each direction has a channel_update at all (mainnet graphs miss some); a
    /// direction without one is not listed and cannot forward.
    pub update_set: [bool; 2],
    pub public: bool,
    /// lightningd channel state name (CHANNELD_NORMAL, CHANNELD_AWAITING_LOCKIN, ONCHAIN ...).
    pub state: String,
    pub opener: usize,
    pub channel_id: String,
    pub funding_txid: String,
    pub funding_outnum: u32,
    /// The scid aliases of each side (`alias.local` is ours when we are one end).
    pub alias: [String; 2],
    pub htlcs: Vec<Htlc>,
    pub next_htlc_id: [u64; 2],
    /// dev-fail: the failcode a direction answers with instead of forwarding.
    pub forced_failure: [Option<u16>; 2],
    /// With `Config::lazy_disable`: the direction's node has said it disabled (a forward
    /// over it found the far end offline), until the far end is back online.
    pub disabled_by_peer: [bool; 2],
    /// dev-hold on this channel: HTLCs arriving over it wait at its far end.
    pub held: bool,
    /// HTLC counters of our channels (listpeerchannels `in_payments_offered` ...).
    pub stats: forwards::ChannelStats,
    /// Our side's fees before a setchannel raised them, still accepted for a while.
    pub old_fees: Option<forwards::OldFees>,
    /// setchannel `ignorefeelimits` (shown in listpeerchannels when true).
    pub ignore_fee_limits: bool,
}

/// Settings of the simulation that lightningd takes from its config.
#[derive(Debug, Clone)]
pub struct Config {
    /// lightningd `cltv-final`: the final node needs `expiry >= blockheight + cltv_final`.
    pub cltv_final: u32,
    /// lightningd `max-htlc-cltv`.
    pub max_htlc_cltv: u32,
    /// Fee check at a forwarding node: `ceil` (stricter than lightningd, which floors the
    /// proportional part) or `floor`.
    pub fee_rounding_ceil: bool,
    pub max_accepted_htlcs: usize,
    /// How an offline node's channels look in `listchannels`: `false` (the default) disabled
    /// at once, both directions, as a busy network soon sees them; `true` as lightningd
    /// v26.06 disables them with nobody else paying: a direction towards an offline node only
    /// once a forward over it failed for that (the peer's `channel_gossip_update_for_error`),
    /// enabled again when the node is back (`channel_gossip_channel_reestablished`).
    pub lazy_disable: bool,
    /// Seed for preimages and anything else random.
    pub seed: u64,
    /// lightningd's `version()`: getinfo's `version`, the plugin's `LIGHTNINGD_VERSION`.
    pub version: String,
}

/// The lightningd release the stand-in plays.
pub const DEFAULT_VERSION: &str = "v26.06.6";

impl Default for Config {
    fn default() -> Self {
        Config {
            cltv_final: 18,
            max_htlc_cltv: 2016,
            fee_rounding_ceil: true,
            max_accepted_htlcs: 483,
            lazy_disable: false,
            seed: 1,
            version: DEFAULT_VERSION.to_string(),
        }
    }
}

/// Which hooks the plugin registered (lightningd calls them only if some plugin did).
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub htlc_accepted: bool,
    pub invoice_payment: bool,
    /// The plugin's short name, for HTLC status strings.
    pub plugin_name: String,
}

/// What the host of the plugin must do after a call into the network.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Call the plugin's `htlc_accepted` hook with `payload`, then
    /// [`Network::htlc_accepted_result`] with its answer.
    HtlcAcceptedHook { payment: usize, payload: Value },
    /// Call the plugin's `invoice_payment` hook with `payload`, then
    /// [`Network::invoice_payment_result`] with its answer.
    InvoicePaymentHook { payment: usize, payload: Value },
    /// A payment completed or failed: wake `waitsendpay` callers; notification payload included.
    PaymentDone {
        payment: usize,
        notification: (String, Value),
    },
    /// One of our invoices was paid (the `invoice_payment` notification).
    InvoicePaid { notification: (String, Value) },
    /// Something changed (balances, HTLCs): wake anyone polling.
    Changed,
    /// The datastore changed: persist it if the host keeps it in a file.
    DatastoreChanged,
    /// A log line for lightningd's log (`level` debug/info/unusual/broken; `prefix` e.g.
    /// `lightningd`, `plugin-askrene`).
    Log {
        level: &'static str,
        prefix: String,
        message: String,
    },
}

/// A subsystem's `created` and `updated` wait indexes (lightningd/wait.c): each counts up from
/// 1 on its own, per subsystem (invoices, sendpays, forwards).
#[derive(Debug, Clone, Default)]
pub struct WaitIndexes {
    pub created: u64,
    pub updated: u64,
}

impl WaitIndexes {
    pub fn next_created(&mut self) -> u64 {
        self.created += 1;
        self.created
    }

    pub fn next_updated(&mut self) -> u64 {
        self.updated += 1;
        self.updated
    }
}

/// The whole simulated network, seen from our node.
#[derive(Debug, Clone)]
pub struct Network {
    pub nodes: Vec<Node>,
    pub channels: Vec<Channel>,
    pub us: usize,
    pub blockheight: u32,
    pub config: Config,
    pub hooks: Hooks,
    pub invoices: Vec<invoices::Invoice>,
    pub payments: Vec<pay::Payment>,
    pub held_nodes: HashSet<usize>,
    node_index: HashMap<String, usize>,
    scid_index: HashMap<String, usize>,
    prng: SplitMix64,
    /// Seconds added to the wall clock (dev-timetravel), or a fixed time for tests.
    pub time_offset: i64,
    pub fixed_time: Option<u64>,
    pub invoice_index: WaitIndexes,
    pub sendpay_index: WaitIndexes,
    pub forward_index: WaitIndexes,
    /// Payments forwarded through our node (dev-forward), in creation order.
    pub forwards: Vec<forwards::Forward>,
    /// lightningd's datastore (survives the plugin; `--datastore-file` keeps it across runs).
    pub datastore: datastore::Datastore,
    /// Our node's HTLC sets (lightningd/htlc_set.c): the parts of a payment to us held until
    /// they add up.
    pub htlc_sets: Vec<pay::HtlcSet>,
    /// The askrene plugin's state; `None` when lightningd runs without askrene.
    pub askrene: Option<askrene::Askrene>,
    /// Events not yet handed to the host (timers that fired, failures behind an error answer):
    /// joined to the next successful [`Network::call`], or taken with [`Network::take_events`].
    queued_events: Vec<Event>,
    /// Every BROKEN line the model asked to log (also sent as [`Event::Log`]), so an
    /// in-process host can fail a test on them as pyln-testing does on lightningd's log.
    pub broken: Vec<String>,
}

impl Network {
    /// An empty network whose node `us` is the only node.
    pub fn new(us: Node, blockheight: u32, config: Config) -> Self {
        let seed = config.seed;
        let mut n = Network {
            nodes: Vec::new(),
            channels: Vec::new(),
            us: 0,
            blockheight,
            config,
            hooks: Hooks::default(),
            invoices: Vec::new(),
            payments: Vec::new(),
            held_nodes: HashSet::new(),
            node_index: HashMap::new(),
            scid_index: HashMap::new(),
            prng: SplitMix64::new(seed),
            time_offset: 0,
            fixed_time: None,
            invoice_index: WaitIndexes::default(),
            sendpay_index: WaitIndexes::default(),
            forward_index: WaitIndexes::default(),
            forwards: Vec::new(),
            datastore: datastore::Datastore::new(),
            htlc_sets: Vec::new(),
            askrene: Some(askrene::Askrene::default()),
            queued_events: Vec::new(),
            broken: Vec::new(),
        };
        n.us = n.add_node(us).expect("first node");
        n
    }

    pub fn add_node(&mut self, node: Node) -> Result<usize, String> {
        if !params::is_node_id(&node.id) {
            return Err(format!(
                "node id {} is not 33 bytes of hex (02/03...)",
                node.id
            ));
        }
        if self.node_index.contains_key(&node.id) {
            return Err(format!("duplicate node {}", node.id));
        }
        let i = self.nodes.len();
        self.node_index.insert(node.id.clone(), i);
        self.nodes.push(node);
        Ok(i)
    }

    pub fn add_channel(&mut self, ch: Channel) -> Result<usize, String> {
        if self.scid_index.contains_key(&ch.scid) {
            return Err(format!("duplicate short_channel_id {}", ch.scid));
        }
        if ch.nodes[0] == ch.nodes[1] {
            return Err(format!("channel {} connects a node to itself", ch.scid));
        }
        if ch.balance_msat[0] + ch.balance_msat[1] != ch.capacity_msat {
            return Err(format!(
                "channel {}: balances do not add up to capacity",
                ch.scid
            ));
        }
        let i = self.channels.len();
        self.scid_index.insert(ch.scid.clone(), i);
        self.channels.push(ch);
        Ok(i)
    }

    pub fn node_by_id(&self, id: &str) -> Option<usize> {
        self.node_index.get(&id.to_ascii_lowercase()).copied()
    }

    /// A node by id or alias (for network files and dev- methods).
    pub fn node_by_ref(&self, r: &str) -> Option<usize> {
        self.node_by_id(r)
            .or_else(|| self.nodes.iter().position(|n| n.alias == r))
    }

    pub fn channel_by_scid(&self, scid: &str) -> Option<usize> {
        self.scid_index.get(scid).copied()
    }

    pub fn us_id(&self) -> &str {
        &self.nodes[self.us].id
    }

    /// Unix time now, as this network sees it.
    pub fn now(&self) -> u64 {
        match self.fixed_time {
            Some(t) => t,
            None => {
                let wall = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                (wall as i64 + self.time_offset).max(0) as u64
            }
        }
    }

    /// The fee a node with (`base`, `ppm`) charges to forward `amount` (BOLT 7), rounded as
    /// `config.fee_rounding` says.
    pub fn fee_for(&self, amount: u64, base: u64, ppm: u64) -> u64 {
        let prop = if self.config.fee_rounding_ceil {
            (amount as u128 * ppm as u128).div_ceil(1_000_000)
        } else {
            amount as u128 * ppm as u128 / 1_000_000
        };
        u64::try_from(base as u128 + prop).unwrap_or(u64::MAX)
    }

    fn random32(&mut self) -> [u8; 32] {
        self.prng.bytes32()
    }

    /// The side of `node` on channel `c`, if it is an end of it.
    pub fn side_of(&self, c: usize, node: usize) -> Option<usize> {
        self.channels[c].nodes.iter().position(|&n| n == node)
    }

    /// Our channels, in scid order.
    pub fn our_channels(&self) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.channels.len())
            .filter(|&c| self.channels[c].nodes.contains(&self.us))
            .collect();
        v.sort_by_key(|&c| scid_key(&self.channels[c].scid));
        v
    }

    /// Node `n` goes offline or comes back. Back, its peers enable the directions towards it
    /// they had disabled (lightningd does on reestablish; only `lazy_disable` disables them,
    /// so only then are the channels looked through).
    pub fn set_online(&mut self, n: usize, online: bool) {
        let was = std::mem::replace(&mut self.nodes[n].online, online);
        if online && !was && self.config.lazy_disable {
            for ch in self.channels.iter_mut() {
                for s in 0..2 {
                    if ch.nodes[1 - s] == n {
                        ch.disabled_by_peer[s] = false;
                    }
                }
            }
        }
    }

    /// What side `s` can still offer on channel `c`: balance - reserve - offered HTLCs
    /// (lightningd's `channel_amount_spendable`, without commitment fees).
    pub fn spendable(&self, c: usize, s: usize) -> u64 {
        let ch = &self.channels[c];
        let offered: u64 = ch
            .htlcs
            .iter()
            .filter(|h| h.from == s)
            .map(|h| h.amount_msat)
            .sum();
        ch.balance_msat[s]
            .saturating_sub(ch.reserve_msat[s])
            .saturating_sub(offered)
    }

    /// What side `s` can still receive on channel `c` (`channel_amount_receivable`).
    pub fn receivable(&self, c: usize, s: usize) -> u64 {
        self.spendable(c, 1 - s)
    }

    /// Whether an HTLC can be added to channel `c` by state (lightningd's
    /// `channel_state_can_add_htlc`).
    pub fn can_add_htlc(&self, c: usize) -> bool {
        matches!(
            self.channels[c].state.as_str(),
            "CHANNELD_NORMAL" | "CHANNELD_AWAITING_SPLICE"
        )
    }

    /// BOLT 7 direction of the half-channel from `from` to `to`: 0 if `from`'s id sorts first.
    pub fn direction(&self, from: usize, to: usize) -> u8 {
        u8::from(self.nodes[from].id > self.nodes[to].id)
    }

    /// The methods this model serves, as lightningd names them. `None` if it is not one of ours.
    /// Timers that are due fire first; their events come with the answer (or, after an error,
    /// stay queued for [`Network::take_events`]).
    pub fn call(
        &mut self,
        method: &str,
        params: &Value,
    ) -> Option<Result<(Value, Vec<Event>), RpcError>> {
        let due = self.fire_timers();
        self.queue_events(due);
        let no_events = |r: RpcResult| r.map(|v| (v, Vec::new()));
        let r = match method {
            "getinfo" => no_events(self.getinfo(params)),
            "listpeerchannels" => no_events(self.listpeerchannels(params)),
            "listpeers" => no_events(self.listpeers(params)),
            "listchannels" => no_events(self.listchannels(params)),
            "listnodes" => no_events(self.listnodes(params)),
            "listfunds" => no_events(self.listfunds(params)),
            "invoice" => no_events(self.invoice(params)),
            "listinvoices" => no_events(self.listinvoices(params)),
            "delinvoice" => no_events(self.delinvoice(params)),
            "decode" | "decodepay" => no_events(self.decode(method, params)),
            "sendpay" => self.sendpay(params),
            "listsendpays" => no_events(self.listsendpays(params)),
            "listforwards" => no_events(self.listforwards(params)),
            "setchannel" => self.setchannel(params),
            "addgossip" => no_events(self.addgossip(params)),
            "datastore" => self.datastore(params),
            "listdatastore" => no_events(self.listdatastore(params)),
            "deldatastore" => self.deldatastore(params),
            "datastoreusage" => no_events(self.datastoreusage(params)),
            _ if method.starts_with("dev-") => self.control(method, params)?,
            _ if method.starts_with("askrene-") => self.askrene_call(method, params)?,
            _ => return None,
        };
        Some(r.map(|(v, events)| {
            let mut all = self.take_events();
            all.extend(events);
            (v, all)
        }))
    }

    /// Runs every timer that is due at [`Network::now`]: HTLC sets past their 70 s
    /// (mpp_timeout), xpay's aging of its layer. [`Network::call`] does this first; a host
    /// whose clock moves while nobody calls (the daemon) calls it on a tick.
    pub fn fire_timers(&mut self) -> Vec<Event> {
        let mut events = self.fire_mpp_timeouts();
        events.extend(self.fire_xpay_age());
        events
    }

    /// Keeps events for the host to take later.
    pub(crate) fn queue_events(&mut self, events: Vec<Event>) {
        self.queued_events.extend(events);
    }

    /// The events queued since the last answer (after an error answer, or between calls).
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.queued_events)
    }

    /// A BROKEN line from lightningd itself.
    pub(crate) fn log_broken(&mut self, message: String) {
        self.log_broken_as("lightningd", message);
    }

    /// A BROKEN line with a log prefix (e.g. `plugin-askrene`).
    pub(crate) fn log_broken_as(&mut self, prefix: &str, message: String) {
        self.broken.push(format!("{prefix}: {message}"));
        self.queued_events.push(Event::Log {
            level: "broken",
            prefix: prefix.to_string(),
            message,
        });
    }
}

/// Sort key of a short_channel_id (numeric block, tx, output).
pub fn scid_key(scid: &str) -> (u64, u64, u64) {
    let mut it = scid
        .split('x')
        .map(|p| p.parse::<u64>().unwrap_or(u64::MAX));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

/// A deterministic 32-byte hex string derived from `tag` (channel ids, funding txids).
pub fn derived_hex32(tag: &str) -> String {
    crate::sha256::hex(&crate::sha256::sha256(tag.as_bytes()))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_askrene;
#[cfg(test)]
mod tests_datastore;
#[cfg(test)]
mod tests_forwards;
#[cfg(test)]
mod tests_mpp;
#[cfg(test)]
mod tests_probe;

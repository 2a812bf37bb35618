//! `balances [id] [quote]`: how each channel's funds are split and what an operator decides
//! with (fees both ways, HTLCs in flight, reserves, distance from target, source or sink, the
//! last rebalance that touched it), per-peer totals, and the moves the planner would make,
//! each ready to run (and with `quote`, priced by a dry run through the liquidity model).
//! `balances-table [id]` is the same as a table to scan.
//!
//! Why two commands: lightning-cli prints a result with several members field by field even
//! under `-H`, and only a result with one member as that member alone. So scripts get the JSON
//! from `balances`, and a person gets `balances-table`, whose only member is the table (with
//! `format-hint: simple`, lightning-cli prints it as is, as it does `help`).

mod rows; // one row a channel, peer totals, suggestions, the JSON answer
mod table; // the rows as text

use crate::channels::our_channel;
use crate::error::{self, RpcFailure};
use crate::lightningd::{Lightningd, PeerChannel};
use crate::params::BalancesParams;
use crate::state::State;
use rows::{Row, rows, view};
use serde_json::{Value, json};
use std::collections::HashMap;
use table::table;

impl<N: Lightningd> State<N> {
    /// `balances`: every channel listpeerchannels knows, with what an operator decides with.
    pub async fn balances(&self, p: BalancesParams) -> Result<Value, RpcFailure> {
        Ok(self.balances_rows(&p).await?.1)
    }

    /// `balances-table`: the same, as one table (a single-member result lightning-cli prints
    /// as it is).
    pub async fn balances_table(&self, p: BalancesParams) -> Result<Value, RpcFailure> {
        let (rows, view) = self.balances_rows(&p).await?;
        // lightning-cli ends what it prints with a newline of its own.
        let text = table(&rows, &view, self.now_secs());
        Ok(json!({"format-hint": "simple", "table": text.trim_end_matches('\n')}))
    }

    async fn balances_rows(&self, p: &BalancesParams) -> Result<(Vec<Row>, Value), RpcFailure> {
        let chans = self
            .node
            .listpeerchannels()
            .await
            .map_err(|e| error::from_lightningd("listpeerchannels", &e))?;
        if let Some(id) = &p.id
            && !chans
                .iter()
                .any(|c| &c.peer_id == id || c.short_channel_id.as_deref() == Some(id.as_str()))
        {
            return Err(RpcFailure::param(
                "id",
                format!("no channel with peer or short_channel_id {id}"),
            ));
        }
        // One small listnodes per peer, not the whole network's. Aliases are a nicety: a
        // failing listnodes must not fail balances.
        let mut aliases: HashMap<String, String> = HashMap::new();
        for c in &chans {
            if aliases.contains_key(&c.peer_id) {
                continue;
            }
            let alias = match self.node.listnodes(&c.peer_id).await {
                Ok(nodes) => nodes.into_iter().find_map(|n| n.alias).unwrap_or_default(),
                Err(_) => String::new(),
            };
            aliases.insert(c.peer_id.clone(), alias);
        }
        let config = self.config.auto.plan;
        let settings = self.settings().await;
        let mut targets = HashMap::new();
        for oc in chans.iter().filter_map(our_channel) {
            let e = settings.effective(oc.short_channel_id, &oc.peer_id, &config);
            targets.insert(
                oc.short_channel_id.to_string(),
                (e.target_percent, e.exclude),
            );
        }
        let ours: Vec<_> = chans.iter().filter_map(our_channel).collect();
        let mut plan = crate::core::plan::plan(&ours, &settings, &config);
        let spent = crate::core::budget::Spent {
            run_msat: 0,
            last_24h_msat: self.fees_last_24h().await,
            reserved_msat: 0,
        };
        plan.apply_budget(&self.config.auto.budget, spent);
        let history = self.history_entries().await;
        let shown: Vec<PeerChannel> = chans
            .into_iter()
            .filter(|c| match &p.id {
                None => true,
                Some(f) => &c.peer_id == f || c.short_channel_id.as_deref() == Some(f.as_str()),
            })
            .collect();
        let rows = rows(&shown, &aliases, &plan, &targets, &history);
        let mut view = view(&rows, &plan);
        if p.quote {
            let mut quoted = Vec::new();
            for (m, mut v) in plan
                .moves
                .iter()
                .zip(view["suggestions"].as_array().cloned().unwrap_or_default())
            {
                let q = self
                    .rebalance_with(
                        super::auto::plan::move_params(m, true),
                        crate::rebalance::session::Extra {
                            fee_cap_msat: Some(m.fee_cap_msat),
                            ..Default::default()
                        },
                    )
                    .await;
                v["quote"] = match q {
                    Ok(q) => json!({"status": "dryrun", "fee_msat": q["fee_msat"],
                                    "fee_ppm": q["fee_ppm"], "probability": q["probability"],
                                    "hops": q["hops"], "route": q["route"]}),
                    Err(e) => json!({"status": "no route", "code": e.code, "message": e.message}),
                };
                quoted.push(v);
            }
            view["suggestions"] = json!(quoted);
        }
        Ok((rows, view))
    }
}

#[cfg(test)]
mod tests {
    use super::table::short_sats;
    use super::*;
    use crate::core::plan::{OurChannel, PlanConfig, Settings, plan};
    use crate::lightningd::{ChannelUpdate, ChannelUpdates, Htlc};

    fn chan(scid: &str, peer: u8, ours_sat: u64, total_sat: u64, state: &str) -> PeerChannel {
        PeerChannel {
            peer_id: format!("02{}", format!("{peer:02x}").repeat(32)),
            peer_connected: true,
            state: state.into(),
            short_channel_id: Some(scid.into()),
            private: false,
            to_us_msat: ours_sat * 1000,
            total_msat: total_sat * 1000,
            spendable_msat: (ours_sat * 1000).saturating_sub(total_sat * 10),
            receivable_msat: ((total_sat - ours_sat) * 1000).saturating_sub(total_sat * 10),
            our_reserve_msat: total_sat * 10,
            their_reserve_msat: total_sat * 10,
            minimum_htlc_in_msat: 0,
            direction: Some(0),
            htlcs: vec![],
            updates: ChannelUpdates {
                local: Some(ChannelUpdate {
                    fee_base_msat: 1000,
                    fee_proportional_millionths: 200,
                    ..Default::default()
                }),
                remote: Some(ChannelUpdate {
                    fee_base_msat: 0,
                    fee_proportional_millionths: 10,
                    ..Default::default()
                }),
            },
            alias: None,
        }
    }

    fn render(
        chans: &[PeerChannel],
        aliases: &HashMap<String, String>,
    ) -> (Vec<Row>, Value, String) {
        let ours: Vec<OurChannel> = chans.iter().filter_map(our_channel).collect();
        let p = plan(&ours, &Settings::default(), &PlanConfig::default());
        let targets = HashMap::new();
        let rows = rows(chans, aliases, &p, &targets, &[]);
        let v = view(&rows, &p);
        let t = table(&rows, &v, 0);
        (rows, v, t)
    }

    #[test]
    fn golden_table() {
        let chans = vec![
            chan("100x1x0", 1, 900_000, 1_000_000, "CHANNELD_NORMAL"),
            chan("100x2x0", 2, 100_000, 1_000_000, "CHANNELD_NORMAL"),
            chan("100x3x0", 2, 500_000, 1_000_000, "CHANNELD_NORMAL"),
        ];
        let aliases: HashMap<String, String> = [
            (chans[0].peer_id.clone(), "alice".to_string()),
            (chans[1].peer_id.clone(), "bob".to_string()),
        ]
        .into();
        let (rows, v, t) = render(&chans, &aliases);
        assert_eq!(rows[0].role, "sink");
        assert_eq!(rows[2].role, "source");
        assert_eq!(rows[0].distance_msat, -400_000_000);
        let expected = "\
alias         channel  ours(sat)  ours%  bar           to target  role      fees out|in
bob           100x2x0    100,000   10.0  [#---------]   +400,000  sink      1000/200|0/10
bob           100x3x0    500,000   50.0  [#####-----]          0  balanced  1000/200|0/10
alice         100x1x0    900,000   90.0  [#########-]   -400,000  source    1000/200|0/10
-----------------------------------------------------------------------------------------
bob (2 ch)               600,000   30.0  [###-------]
total (3 ch)           1,500,000   50.0  [#####-----]

suggested moves (what rebalanceall would do):
  lightning-cli rebalance 100x1x0 100x2x0 400000sat   # fee at most 40500msat
";
        assert_eq!(t, expected, "\n{t}");
        assert_eq!(v["peers"].as_array().unwrap().len(), 1);
        assert_eq!(
            v["suggestions"][0]["command"],
            "lightning-cli rebalance 100x1x0 100x2x0 400000sat"
        );
    }

    #[test]
    fn a_failed_last_rebalance_says_so_and_lines_fit_a_screen() {
        let chans = vec![
            chan("100x1x0", 1, 900_000, 1_000_000, "CHANNELD_NORMAL"),
            chan("100x2x0", 2, 100_000, 1_000_000, "CHANNELD_NORMAL"),
        ];
        let (mut rows, v, _) = render(&chans, &HashMap::new());
        rows[0].last_rebalance = Some(json!({"direction": "in", "amount_msat": 400_000_000u64,
            "started_at": 0, "outcome": "failed (206)"}));
        rows[1].last_rebalance = Some(json!({"direction": "out", "amount_msat": 300_000_000u64,
            "started_at": 3000, "outcome": "complete"}));
        let t = table(&rows, &v, 3600);
        assert!(t.contains("in 400k failed 206 60m ago"), "{t}");
        assert!(t.contains("out 300k 10m ago"), "{t}");
        assert_eq!(
            [250_000, 1_000_000, 1_500_000, 999_999_000, 2_500_000_000].map(short_sats),
            ["250", "1k", "1.5k", "999k", "2.5M"]
        );
        assert!(t.lines().next().unwrap().ends_with("last rebalance"), "{t}");
        let widest = t.lines().map(|l| l.chars().count()).max().unwrap();
        assert!(widest <= 120, "{widest} columns:\n{t}");
    }

    #[test]
    fn long_and_unicode_aliases_zero_capacity_and_closing_channels() {
        let mut chans = vec![
            chan("1x1x0", 1, 0, 0, "CHANNELD_NORMAL"),
            chan("1x2x0", 2, 300_000, 1_000_000, "ONCHAIN"),
            chan("1x3x0", 3, 300_000, 1_000_000, "CHANNELD_NORMAL"),
        ];
        chans[2].peer_connected = false;
        chans[2].htlcs = vec![Htlc {
            direction: "out".into(),
            payment_hash: "00".repeat(32),
            amount_msat: 5000,
        }];
        let aliases: HashMap<String, String> = [
            (
                chans[0].peer_id.clone(),
                "a-very-long-alias-that-goes-on-and-on".to_string(),
            ),
            (chans[1].peer_id.clone(), "⚡闪电节点🌩️".to_string()),
        ]
        .into();
        let (rows, _, t) = render(&chans, &aliases);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].starts_with("a-very-long-ali… "), "{t}");
        assert!(t.contains("⚡闪电节点🌩️"), "{t}");
        assert!(t.contains("ONCHAIN"), "{t}");
        assert!(t.contains("offline"), "{t}");
        assert!(t.contains("0in 1out"), "{t}");
        assert_eq!(
            rows.iter().find(|r| r.total_msat == 0).unwrap().role,
            "balanced"
        );
        assert_eq!(
            rows.iter().find(|r| r.state == "ONCHAIN").unwrap().role,
            "unusable"
        );
        // Every line of the channel part has its columns at the same character offsets.
        let col = |l: &str| l.chars().position(|c| c == '[');
        let first = col(lines[1]);
        assert!(lines[1..4].iter().all(|l| col(l) == first), "{t}");
    }

    #[test]
    fn five_hundred_channels() {
        let chans: Vec<PeerChannel> = (0..500)
            .map(|i| {
                let scid = format!("{}x1x0", 1000 + i);
                chan(
                    &scid,
                    (i % 250) as u8,
                    (i as u64 * 1999) % 1_000_000,
                    1_000_000,
                    "CHANNELD_NORMAL",
                )
            })
            .collect();
        let (rows, v, t) = render(&chans, &HashMap::new());
        assert_eq!(rows.len(), 500);
        assert_eq!(v["totals"]["channels"], 500);
        assert_eq!(v["peers"].as_array().unwrap().len(), 250);
        // 500 channels, the rule, 250 peers and the total, and the suggestions.
        assert!(
            t.lines().count() > 500 + 1 + 250 + 1,
            "{}",
            t.lines().count()
        );
        assert!(!v["suggestions"].as_array().unwrap().is_empty());
    }
}

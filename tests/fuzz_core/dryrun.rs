//! The real `rebalance` dry run on random stand-in networks, through the in-memory node.

use super::*;

#[derive(Debug, Clone)]
pub(crate) struct StandinChan {
    pub(crate) a: usize,
    pub(crate) b: usize,
    pub(crate) capacity_msat: u64,
    /// Node a's share.
    pub(crate) share: u8,
    pub(crate) policy: [(u32, u32, u32, u64, Option<u64>, bool); 2],
}

pub(crate) fn standin_policy() -> BoxedStrategy<(u32, u32, u32, u64, Option<u64>, bool)> {
    (
        prop_oneof![4 => 0u32..2000, 1 => Just(0u32), 1 => any::<u32>()],
        prop_oneof![4 => 0u32..3000, 1 => Just(0u32), 1 => any::<u32>()],
        prop_oneof![6 => 0u32..150, 1 => 0u32..3000],
        prop_oneof![6 => Just(0u64), 1 => 0u64..50_000_000],
        prop_oneof![6 => Just(None), 1 => (0u64..20_000_000_000).prop_map(Some)],
        prop::bool::weighted(0.95),
    )
        .boxed()
}

pub(crate) fn standin_chan(n: usize) -> BoxedStrategy<StandinChan> {
    (
        0..n,
        0..n,
        prop_oneof![3 => 100_000_000u64..20_000_000_000, 1 => 1_000u64..100_000_000],
        prop_oneof![3 => 60u8..200, 1 => any::<u8>()],
        [standin_policy(), standin_policy()],
    )
        .prop_map(|(a, b, capacity_msat, share, policy)| StandinChan {
            a,
            b,
            capacity_msat,
            share,
            policy,
        })
        .boxed()
}

/// What a dry run asks to move.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DryRunAmount {
    /// Per mille of the outgoing channel's capacity (most requests fit the channels).
    PerMille(u64),
    Msat(u64),
    /// Not given: the plugin picks the balancing amount.
    Balancing,
}

#[derive(Debug, Clone)]
pub(crate) struct DryRun {
    pub(crate) n: usize,
    pub(crate) ours: Vec<StandinChan>,
    pub(crate) others: Vec<StandinChan>,
    pub(crate) out_pick: prop::sample::Index,
    pub(crate) in_pick: prop::sample::Index,
    pub(crate) amount: DryRunAmount,
    pub(crate) maxfeeppm: Option<u64>,
    pub(crate) exemptfee: Option<u64>,
    pub(crate) fee_only: bool,
}

pub(crate) fn dry_run() -> BoxedStrategy<DryRun> {
    (3usize..=9).prop_flat_map(|n| {
        (
            prop::collection::vec(standin_chan(n), 2..=4),
            prop::collection::vec(standin_chan(n), n..=3 * n),
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            prop_oneof![
                6 => (1u64..950).prop_map(DryRunAmount::PerMille),
                1 => Just(DryRunAmount::Balancing),
                1 => prop_oneof![1u64..1_000_000, 1u64..=MAX_MONEY_MSAT].prop_map(DryRunAmount::Msat),
            ],
            prop::option::weighted(0.8, prop_oneof![0u64..5000, 0u64..=1_000_000]),
            prop::option::weighted(0.8, prop_oneof![0u64..10_000_000, 0..=MAX_MONEY_MSAT]),
            any::<bool>(),
        )
            .prop_map(move |(ours, others, out_pick, in_pick, amount, maxfeeppm, exemptfee, fee_only)| {
                DryRun {
                    n,
                    ours,
                    others,
                    out_pick,
                    in_pick,
                    amount,
                    maxfeeppm,
                    exemptfee,
                    fee_only,
                }
            })
    })
    .boxed()
}

/// The stand-in network file for a [`DryRun`]: node 0 is us; our channels connect us to
/// other nodes; the rest connect distinct non-us... nodes (self-loops and repeats dropped,
/// the stand-in refuses them). Returns the file and our scids.
pub(crate) fn standin_network(d: &DryRun) -> (Value, Vec<String>) {
    let nodes: Vec<Value> = (0..d.n)
        .map(|i| json!({"id": node_name(i), "alias": format!("n{i}")}))
        .collect();
    let mut channels = Vec::new();
    let mut ours = Vec::new();
    let pol = |p: &(u32, u32, u32, u64, Option<u64>, bool)| {
        let mut v = json!({"fee_base_msat": p.0, "fee_proportional_millionths": p.1,
                           "cltv_expiry_delta": p.2, "htlc_minimum_msat": p.3, "active": p.5});
        if let Some(max) = p.4 {
            v["htlc_maximum_msat"] = json!(max);
        }
        v
    };
    let mut add = |k: usize, a: usize, b: usize, c: &StandinChan| {
        let scid = format!("{}x{}x0", 700_000 + k, k % 7);
        channels.push(json!({
            "short_channel_id": scid,
            "node1": node_name(a),
            "node2": node_name(b),
            "capacity_msat": c.capacity_msat,
            "node1_msat": (u128::from(c.capacity_msat) * u128::from(c.share) / 255) as u64,
            "policy1": pol(&c.policy[0]),
            "policy2": pol(&c.policy[1]),
        }));
        scid
    };
    for (k, c) in d.ours.iter().enumerate() {
        let peer = 1 + c.b % (d.n - 1);
        ours.push(add(k, 0, peer, c));
    }
    for (k, c) in d.others.iter().enumerate() {
        let (a, b) = (1 + c.a % (d.n - 1), 1 + c.b % (d.n - 1));
        if a != b {
            add(100 + k, a, b, c);
        }
    }
    let file = json!({"us": node_name(0), "nodes": nodes, "channels": channels,
                      "config": {"cltv_final": 18, "fee_rounding": "ceil", "seed": 7}});
    (file, ours)
}

pub(crate) fn hops_from_json(route: &Value) -> Vec<Hop> {
    route
        .as_array()
        .expect("route is an array")
        .iter()
        .map(|h| Hop {
            short_channel_id: h["short_channel_id"].as_str().unwrap().parse().unwrap(),
            direction: h["direction"].as_u64().unwrap() as u8,
            node_id: h["node_id"].as_str().unwrap().to_string(),
            amount_msat: h["amount_msat"].as_u64().unwrap(),
            delay: h["delay"].as_u64().unwrap() as u32,
        })
        .collect()
}

#[test]
pub(crate) fn fuzz_rebalance_dryrun_random_networks() {
    let tally = Tally::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    fuzz(
        "rebalance dry run on random stand-in networks (3-9 nodes)",
        800,
        dry_run(),
        &tally,
        |d| {
            let (file, ours) = standin_network(&d);
            let net = cln_standin::simnet::Network::from_json_str(&file.to_string())
                .map_err(|e| TestCaseError::fail(format!("stand-in network refused: {e:#}")))?;
            // Two different channels of ours (the same one twice is a documented -32602).
            let out_at = d.out_pick.index(ours.len());
            let in_at = (out_at + 1 + d.in_pick.index(ours.len() - 1)) % ours.len();
            let (out_scid, in_scid) = (ours[out_at].clone(), ours[in_at].clone());
            // Ours on the outgoing channel, theirs on the incoming one (we are node1 of both).
            let share = |c: &StandinChan, ours: bool| {
                let mine = u128::from(c.capacity_msat) * u128::from(c.share) / 255;
                (if ours {
                    mine
                } else {
                    u128::from(c.capacity_msat) - mine
                }) as u64
            };
            let room = share(&d.ours[out_at], true).min(share(&d.ours[in_at], false));
            let amount_msat = match d.amount {
                DryRunAmount::PerMille(m) => Some((room / 1000 * m).max(1)),
                DryRunAmount::Msat(a) => Some(a),
                DryRunAmount::Balancing => None,
            };
            let config = RebalanceConfig {
                routing: if d.fee_only {
                    Routing::FeeOnly
                } else {
                    Routing::Probabilistic
                },
                ..RebalanceConfig::default()
            };
            let (maxfeeppm, exemptfee) = (
                d.maxfeeppm.unwrap_or(config.maxfeeppm),
                d.exemptfee.unwrap_or(config.exemptfee_msat),
            );
            let final_cltv = config.final_cltv + 3;
            let (r, node) = common::rebalancer(net, config);
            let peers = node.call("listpeerchannels", json!({})).unwrap();
            let listchannels = node.call("listchannels", json!({})).unwrap().to_string();
            let g = Graph::from_listchannels_json(listchannels.as_bytes()).expect("stand-in graph");
            let req = RebalanceParams {
                outgoing: out_scid.clone(),
                incoming: in_scid.clone(),
                amount_msat,
                maxfeeppm: d.maxfeeppm,
                exemptfee: d.exemptfee,
                retry_for: Some(1),
                dryrun: true,
                // The mirror here is the single route search.
                maxparts: Some(1),
                amount_max: false,
            };
            let result = rt.block_on(r.rebalance(req));
            let ours_json = |scid: &str| {
                peers["channels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["short_channel_id"] == scid)
                    .cloned()
                    .expect("our channel")
            };
            let us = g.node_idx(&node_name(0));
            match result {
                Ok(v) => {
                    tally.add("quoted");
                    prop_assert_eq!(&v["status"], "dryrun");
                    let amount = v["amount_msat"].as_u64().unwrap();
                    let hops = hops_from_json(&v["route"]);
                    let fee = v["fee_msat"].as_u64().unwrap();
                    prop_assert_eq!(
                        v["fee_cap_msat"].as_u64(),
                        Some(fee_cap_msat(amount, maxfeeppm, exemptfee))
                    );
                    prop_assert!(
                        fee <= fee_cap_msat(amount, maxfeeppm, exemptfee),
                        "over the fee cap"
                    );
                    let us = us.expect("we are in the graph");
                    let edge = |h: &Hop| {
                        g.edge_by_scid(h.short_channel_id, h.direction)
                            .ok_or_else(|| {
                                TestCaseError::fail(format!(
                                    "hop over unknown {}",
                                    h.short_channel_id
                                ))
                            })
                    };
                    let out_edge = edge(&hops[0])?;
                    let in_edge = edge(&hops[hops.len() - 1])?;
                    prop_assert_eq!(
                        g.edge(out_edge).short_channel_id.to_string(),
                        out_scid.clone()
                    );
                    prop_assert_eq!(
                        g.edge(in_edge).short_channel_id.to_string(),
                        in_scid.clone()
                    );
                    let middle: Vec<EdgeIdx> = hops[1..hops.len() - 1]
                        .iter()
                        .map(edge)
                        .collect::<Result<_, _>>()?;
                    for w in hops.windows(2) {
                        let e = g.edge(edge(&w[1])?);
                        prop_assert_eq!(g.node_id(e.source), w[0].node_id.as_str(), "hops connect");
                    }
                    let mut nodes: Vec<&str> = hops.iter().map(|h| h.node_id.as_str()).collect();
                    nodes.sort_unstable();
                    nodes.dedup();
                    prop_assert_eq!(nodes.len(), hops.len(), "no node twice");
                    let checked = check_circle_hops(
                        &g, us, out_edge, in_edge, &middle, &hops, amount, final_cltv,
                    )?;
                    prop_assert_eq!(checked, fee);
                    let spendable = ours_json(&out_scid)["spendable_msat"].as_u64().unwrap();
                    prop_assert!(
                        hops[0].amount_msat <= spendable,
                        "more than the channel can spend"
                    );
                    if d.fee_only {
                        let plan = mirror_plan(&g, us, out_edge, in_edge, amount, final_cltv)
                            .map_err(|w| TestCaseError::fail(w.to_string()))?;
                        let best = exhaustive(&g, &plan.query, &plan.exclude).expect("small");
                        let best_fee = best.map(|b| b.0 - amount);
                        prop_assert!(best_fee.is_some_and(|b| fee >= b));
                        if search_is_exact(&g, &plan.query, best) {
                            tally.add("fee-only quote = exhaustive optimum");
                            prop_assert_eq!(Some(fee), best_fee);
                        }
                    }
                }
                Err(e) => {
                    let code = e.code;
                    prop_assert!(
                        [-32602, 205, 206].contains(&code),
                        "unexpected error {:?}",
                        e
                    );
                    tally.add(match code {
                        -32602 => "refused a param",
                        205 => "no route",
                        _ => "too expensive",
                    });
                    if code == 206 {
                        let data = e.data.clone().unwrap_or_default();
                        let (cheapest, cap) = (
                            data["cheapest_fee_msat"].as_u64(),
                            data["fee_cap_msat"].as_u64(),
                        );
                        prop_assert!(cheapest > cap, "206 with a fee under the cap: {:?}", data);
                    }
                }
            }
            Ok(())
        },
    );
    assert!(tally.get("quoted") > 30, "the sample should mostly quote");
}

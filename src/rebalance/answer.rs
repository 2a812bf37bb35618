//! What a rebalance answers: a dry run's quote, or a completed rebalance's result.

use super::probe::{Found, ProbeSummary};
use super::route::route_probability;
use super::session::{Session, hops_json, parts_json};
use crate::core::amount::{display_sat, msat_string, ppm};
use crate::core::route::Hop;
use crate::lightningd::Lightningd;
use crate::params::ProbeParams;
use crate::state::State;
use serde_json::{Value, json};

/// The answer to a dry run: the route (or the parts) and the fee, nothing paid.
pub fn quote<N: Lightningd>(st: &State<N>, s: &Session, set: &[Vec<Hop>], fee_msat: u64) -> Value {
    let r = &s.req;
    let hops = &set[0];
    let probability: f64 = set.iter().map(|h| route_probability(st, s, h)).product();
    let mut v = json!({
        "status": "dryrun",
        "outgoing_scid": r.out_scid,
        "incoming_scid": r.inc_scid,
        "amount_msat": r.amount_msat,
        "fee_msat": fee_msat,
        "fee_ppm": ppm(fee_msat, r.amount_msat),
        "fee_cap_msat": s.cap_msat,
        "hops": hops.len(),
        "probability": round3(probability),
        "route": hops_json(hops),
        "message": format!("would move {} {} -> {} for {fee_msat}msat ({} ppm), {}; nothing paid",
            display_sat(r.amount_msat), r.out_scid, r.inc_scid, ppm(fee_msat, r.amount_msat),
            shape(set)),
    });
    if set.len() > 1 {
        v["parts"] = parts_json(set);
    }
    v
}

/// `3 hops`, or `2 parts of 4 and 5 hops`.
fn shape(set: &[Vec<Hop>]) -> String {
    match set {
        [hops] => format!("{} hops", hops.len()),
        parts => format!(
            "{} parts of {} hops",
            parts.len(),
            parts
                .iter()
                .map(|h| h.len().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The answer to a completed rebalance (its routes: `s.paid_set`).
pub fn paid<N: Lightningd>(st: &State<N>, s: &Session, fee_msat: u64) -> Value {
    let r = &s.req;
    let set = &s.paid_set;
    let hops = set.first().map_or(&[][..], Vec::as_slice);
    let hash = s
        .invoice
        .as_ref()
        .map(|i| i.payment_hash.as_str())
        .unwrap_or_default();
    let mut v = json!({
        "status": "complete",
        "outgoing_scid": r.out_scid,
        "incoming_scid": r.inc_scid,
        "amount_msat": r.amount_msat,
        "fee_msat": fee_msat,
        // rebalance.py's names in its form ("NNNmsat"), for scripts written for it.
        "sent": msat_string(r.amount_msat.saturating_add(fee_msat)),
        "received": msat_string(r.amount_msat),
        "fee": msat_string(fee_msat),
        "sent_msat": r.amount_msat.saturating_add(fee_msat),
        "received_msat": r.amount_msat,
        "fee_ppm": ppm(fee_msat, r.amount_msat),
        "attempts": s.attempts.len(),
        // Probes sent before paying (`rebalance-probe-first`): none paid, none in `attempts`.
        "probes": s.probes,
        "hops": hops.len(),
        "route": hops_json(hops),
        "payment_hash": hash,
        "duration_ms": st.now_ms().saturating_sub(s.started_ms),
        "message": format!("rebalanced {} from {} to {} for {fee_msat}msat ({} ppm) in {} attempt(s){}{}",
            display_sat(r.amount_msat), r.out_scid, r.inc_scid, ppm(fee_msat, r.amount_msat), s.attempts.len(),
            if set.len() > 1 { format!(", {} parts", set.len()) } else { String::new() },
            if s.probes > 0 { format!(", after {} probe(s)", s.probes) } else { String::new() }),
    });
    if set.len() > 1 {
        v["parts"] = parts_json(set);
    }
    v
}

fn round3(p: f64) -> f64 {
    (p * 1000.0).round() / 1000.0
}

/// The answer to `rebalance-probe`: the most that can move (or whether the amount asked can),
/// over which routes at what fee, and what finding it took. Nothing was paid.
pub fn probed(s: &ProbeSummary, p: &ProbeParams, f: &Found, took_ms: u64) -> Value {
    let mut v = json!({
        "outgoing_scid": s.out_scid,
        "incoming_scid": s.inc_scid,
        "fee_msat": f.fee_msat,
        "fee_ppm": ppm(f.fee_msat, f.amount_msat),
        "fee_cap_msat": s.cap_msat,
        "probes": f.probes,
        "probes_reached_us": f.carried,
        "duration_ms": took_ms,
    });
    match p.amount_msat {
        Some(a) => {
            v["amount_msat"] = json!(a);
            v["feasible"] = json!(f.amount_msat == a);
            v["message"] = json!(if f.amount_msat == a {
                format!(
                    "{} can move from {} to {} now for {}msat over {}; {} probe(s), nothing paid",
                    display_sat(a),
                    s.out_scid,
                    s.inc_scid,
                    f.fee_msat,
                    shape(&f.set),
                    f.probes
                )
            } else {
                format!(
                    "{} did not move from {} to {} in {} probe(s): no route or set carried it within the fee cap; nothing paid",
                    display_sat(a),
                    s.out_scid,
                    s.inc_scid,
                    f.probes
                )
            });
        }
        None => {
            v["max_msat"] = json!(f.amount_msat);
            v["message"] = json!(if f.amount_msat > 0 {
                format!(
                    "up to {} can move from {} to {} now, for {}msat over {}; {} probe(s), nothing paid",
                    display_sat(f.amount_msat),
                    s.out_scid,
                    s.inc_scid,
                    f.fee_msat,
                    shape(&f.set),
                    f.probes
                )
            } else {
                format!(
                    "nothing was found to move from {} to {} within the fee cap in {} probe(s); nothing paid",
                    s.out_scid, s.inc_scid, f.probes
                )
            });
        }
    }
    if !f.set.is_empty() {
        v["route"] = hops_json(&f.set[0]);
        v["parts"] = parts_json(&f.set);
    }
    v
}

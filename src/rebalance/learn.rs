//! Step 5 of an attempt: what its outcome teaches. The liquidity model learns from every
//! attempt (our own channels exactly, the hops of a settled route, a failure's hops before it
//! and the erring channel or node); the circle rules out what failed for the rest of the call;
//! a failure is classified as worth another route, or as a reason to stop.

use super::session::{Attempt, Outcome, Session, middle};
use crate::core::graph::Policy;
use crate::core::liquidity::ChanDir;
use crate::core::route::Hop;
use crate::error::{self, RpcFailure};
use crate::lightningd::Lightningd;
use crate::lightningd::store::to_hex;
use crate::lightningd::types::PayFailure;
use crate::lightningd::types::failcode::{
    AMOUNT_BELOW_MINIMUM, BADONION, CHANNEL_DISABLED, FEE_INSUFFICIENT, INCORRECT_CLTV_EXPIRY,
    MPP_TIMEOUT, NODE, PERM, TEMPORARY_CHANNEL_FAILURE, UPDATE, words,
};
use crate::state::State;
use log::debug;
use serde_json::json;

/// Our own channels are known exactly: what we can send, and what the peer can send us.
pub fn learn_our_channels<N: Lightningd>(st: &State<N>, s: &Session) {
    let now = st.now_secs();
    let mut m = s.model(st);
    for c in &s.req.ours {
        let Some(scid) = c.short_channel_id.as_deref().and_then(|x| x.parse().ok()) else {
            continue;
        };
        if c.state != "CHANNELD_NORMAL" {
            continue;
        }
        let ours = c
            .direction
            .unwrap_or(u8::from(s.req.our_id.as_str() > c.peer_id.as_str()));
        let cd = ChanDir::new(scid, ours);
        m.exact(cd, c.spendable_msat, c.total_msat, now);
        m.exact(cd.reverse(), c.receivable_msat, c.total_msat, now);
    }
}

/// A success: every middle hop carried its amount, which now sits on the other side.
pub fn learn_settled<N: Lightningd>(st: &State<N>, s: &Session, hops: &[Hop]) {
    let now = st.now_secs();
    let hl = st.config.model.half_life_secs;
    let mut m = s.model(st);
    for h in middle(hops) {
        if let Some(e) = s.graph.edge_by_scid(h.short_channel_id, h.direction) {
            let cap = s.graph.edge_capacity_msat(e);
            m.settled(
                ChanDir::new(h.short_channel_id, h.direction),
                h.amount_msat,
                cap,
                now,
                hl,
            );
        }
    }
}

/// A probe that reached us: every middle hop carried its amount (a success teaches less than
/// a payment's: nothing moved, so nothing changes sides).
pub fn learn_carried<N: Lightningd>(st: &State<N>, s: &Session, hops: &[Hop]) {
    learn_failed(st, s, &PayFailure::default(), hops, hops.len());
}

/// What a failure at hop `index` teaches the model: hops before it forwarded their amounts;
/// the erring channel could not carry its own, or is disabled; or the node failed.
///
/// The bounds are on what a channel holds with our other attempts' HTLCs still in it (the
/// model adds those when it prices a hop), so what they have in flight over a hop counts
/// with what this attempt asked of it.
fn learn_failed<N: Lightningd>(
    st: &State<N>,
    s: &Session,
    f: &PayFailure,
    hops: &[Hop],
    index: usize,
) {
    let now = st.now_secs();
    let hl = st.config.model.half_life_secs;
    let failcode = f.failcode.unwrap_or(0);
    let mut m = s.model(st);
    let cap = |h: &Hop| {
        s.graph
            .edge_by_scid(h.short_channel_id, h.direction)
            .map(|e| s.graph.edge_capacity_msat(e))
    };
    for h in hops.iter().take(index).skip(1) {
        if let Some(c) = cap(h) {
            let cd = ChanDir::new(h.short_channel_id, h.direction);
            let asked = h.amount_msat.saturating_add(m.in_flight_msat(cd));
            m.forwarded(cd, asked, c, now, hl);
        }
    }
    let Some(h) = hops.get(index) else { return };
    let cd = ChanDir::new(h.short_channel_id, h.direction);
    if failcode & (NODE | BADONION) != 0 {
        let node = f
            .erring_node
            .clone()
            .or_else(|| hops.get(index.wrapping_sub(1)).map(|h| h.node_id.clone()));
        if let Some(n) = node {
            m.node_failed(&n, now);
        }
    } else if f.peer_gone() {
        // The channel is disabled in the failure's update: its peer is gone, and nothing is
        // learned of its liquidity. The update reaches gossip, which the next graph read
        // has (the graph is marked stale). A remembered node failure instead kept the node
        // out of plans for up to an hour after it was back (`benches/README.md`).
    } else if failcode == TEMPORARY_CHANNEL_FAILURE {
        if let Some(e) = s.graph.edge_by_scid(h.short_channel_id, h.direction) {
            // Forwarding is non-strict: the node had none of its parallel channels to the
            // next peer at these fees able to carry it either.
            for e in s.graph.parallel_group(e) {
                let edge = s.graph.edge(e);
                let cd = ChanDir::new(edge.short_channel_id, edge.direction);
                let asked = h.amount_msat.saturating_add(m.in_flight_msat(cd));
                m.failed(cd, asked, s.graph.edge_capacity_msat(e), now, hl);
            }
        }
    } else if failcode == CHANNEL_DISABLED || failcode & PERM != 0 {
        m.channel_failed(cd, now);
    }
}

/// Classifies a sendpay/waitsendpay error: learn and retry, or stop with a plain reason.
pub async fn failed<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    e: cln_rpc::RpcError,
    hops: &[Hop],
    attempt: &mut Attempt,
) -> Outcome {
    let f: PayFailure = e
        .data
        .clone()
        .and_then(|d| serde_json::from_value(d).ok())
        .unwrap_or_default();
    let code = e.code.unwrap_or(-1);
    let failcode = f.failcode.unwrap_or(0);
    let name = f
        .failcodename
        .clone()
        .unwrap_or_else(|| format!("failcode {failcode:#x}"));
    let index = f.erring_index.map(|i| i as usize);
    s.last_erring_index = index;
    attempt.outcome = match (index, &f.erring_channel) {
        (Some(i), Some(c)) => format!("{name} at hop {i} (channel {c}): {}", words(failcode)),
        (Some(i), None) => format!("{name} at hop {i}: {}", words(failcode)),
        _ => format!("error {code}: {}", e.message),
    };
    if code != error::PAY_TRY_OTHER_ROUTE && code != 203 {
        return Outcome::Stop(RpcFailure::new(
            error::PAY_STOPPED_RETRYING,
            format!("payment failed ({code}): {}", e.message),
        ));
    }
    let n = hops.len();
    let out_scid = hops[0].short_channel_id.to_string();
    let last_hop_scid = hops[n - 1].short_channel_id.to_string();
    let inc_scid = s.circle.incoming_scid.to_string();
    match index {
        Some(0) => Outcome::Stop(RpcFailure::new(
            error::PAY_STOPPED_RETRYING,
            format!(
                "our node could not send over outgoing channel {out_scid}: {name} ({})",
                e.message
            ),
        )),
        Some(i) if i >= n && failcode == MPP_TIMEOUT => {
            // The other parts did not arrive in time: this one got through, every hop of it
            // carried its amount. Nothing rules a channel out; the set is tried anew.
            learn_failed(st, s, &f, hops, n);
            Outcome::Retry
        }
        Some(i) if i >= n => {
            let rejected = st.inflight.get(s.id).and_then(|r| r.rejected_arrival);
            Outcome::Stop(match rejected {
                Some(arrived) => RpcFailure::new(
                    error::PAY_STOPPED_RETRYING,
                    format!(
                        "the payment came back over channel {arrived} instead of incoming channel {inc_scid} \
                         (the peer chose another of its channels to us); it was refused, so nothing \
                         moved and no fee was paid. Pick the channel the peer prefers, or give the \
                         peer's other channels less spendable."
                    ),
                )
                .with_data(json!({"arrived_on": arrived})),
                None => RpcFailure::new(
                    error::PAY_STOPPED_RETRYING,
                    format!("our own node refused the returning payment: {name}"),
                ),
            })
        }
        Some(i)
            if i == n - 1
                && hops[n - 1].node_id == s.req.our_id
                && (f.erring_channel.as_deref() == Some(inc_scid.as_str())
                    || f.erring_channel.as_deref() == Some(last_hop_scid.as_str())) =>
        {
            match last_hop_changed(st, s, &f, hops).await {
                Ok(true) => {
                    learn_failed(st, s, &f, hops, i);
                    return Outcome::Retry;
                }
                Ok(false) => {}
                Err(stop) => return Outcome::Stop(stop),
            }
            Outcome::Stop(RpcFailure::new(
                error::PAY_STOPPED_RETRYING,
                format!(
                    "the incoming peer {} could not forward back to us over incoming channel {inc_scid}: {name}",
                    hops[n - 2].node_id
                ),
            ))
        }
        Some(i) => {
            if failcode & UPDATE != 0 && (failcode != TEMPORARY_CHANNEL_FAILURE || f.peer_gone()) {
                // A newer channel_update than our gossip (a policy changed, or a channel
                // disabled because its peer is gone): gossipd gets it now, as CLN's pay and
                // renepay hand it over, rather than when gossip brings it. The graph is read
                // again: after a fee, delay or minimum failure before this rebalance's next
                // plan (`route::reread_changed_policy`), else by the next rebalance.
                if to_gossipd(st, &f).await {
                    s.policy_changed |= matches!(
                        failcode,
                        FEE_INSUFFICIENT | INCORRECT_CLTV_EXPIRY | AMOUNT_BELOW_MINIMUM
                    )
                }
                st.graph_cache.mark_stale().await;
            }
            if failcode == TEMPORARY_CHANNEL_FAILURE && !f.peer_gone() {
                s.liquidity_failures.count(i, n);
            }
            s.circle.learn(&s.graph, &f, hops, i);
            learn_failed(st, s, &f, hops, i);
            Outcome::Retry
        }
        None => Outcome::Stop(RpcFailure::new(
            error::PAY_STOPPED_RETRYING,
            format!("payment failed without saying where: {}", e.message),
        )),
    }
}

/// Most new policies of the incoming peer's hop a rebalance takes (a peer may sign new
/// updates as fast as it likes).
const LAST_HOP_UPDATES: u32 = 3;

/// Whether the incoming peer's failure of its hop to us is explained by the channel_update it
/// sent with it: a fee or delay it raised since `listpeerchannels` told us (lightningd honours
/// the old fee for `enforcedelay`, 600 s by default, but a peer may set 0, and lnd enforces a
/// new fee at once). Then gossipd gets the update (and tells lightningd, whose
/// `listpeerchannels` shows it), the circle plans on it, and the rebalance goes on: at most
/// [`LAST_HOP_UPDATES`] new policies a call, within the fee cap as always. A part sent before
/// the circle took the policy fails the same way and is replaced. An update that asks no more
/// than the hop was given explains nothing, and the rebalance stops as before; one whose htlc
/// limits the amount no longer fits stops it too, saying so (Err).
async fn last_hop_changed<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    f: &PayFailure,
    hops: &[Hop],
) -> Result<bool, RpcFailure> {
    let n = hops.len();
    let (before, last) = (&hops[n - 2], &hops[n - 1]);
    if !matches!(f.failcode, Some(FEE_INSUFFICIENT | INCORRECT_CLTV_EXPIRY)) {
        return Ok(false);
    }
    // What the hop was given: the fee and delay between what the peer got and sends us.
    let given_fee = before.amount_msat.saturating_sub(last.amount_msat);
    let given_delay = before.delay.saturating_sub(last.delay);
    let asks_more = |p: &Policy| {
        p.fee_msat(last.amount_msat)
            .is_none_or(|fee| fee > given_fee)
            || p.delay > given_delay
    };
    let planned = s.circle.last_policy();
    let ours = [last.short_channel_id.0, s.circle.incoming_scid.0];
    let update = f
        .updated_policy()
        .filter(|(scid, dir, _)| ours.contains(scid) && *dir == last.direction);
    let Some((_, _, u)) = update else {
        // No update (the failure had none, or its message reached neither a waiting
        // `waitsendpay` nor the `sendpay_failure` notification in time): explained only by a
        // policy the circle took from another part's failure since this part was sent.
        return Ok(asks_more(&planned));
    };
    let policy = super::circle::peer_policy(&u, &s.req.inc);
    if !asks_more(&policy) {
        return Ok(false);
    }
    if policy == planned {
        return Ok(true); // taken already, from another part's failure
    }
    // Newer than what we planned on: lightningd has it now, whatever this rebalance does (the
    // graph copy is not marked stale: the last hop is planned from listpeerchannels, which
    // has it too).
    to_gossipd(st, f).await;
    if s.last_hop_updates >= LAST_HOP_UPDATES {
        return Ok(false);
    }
    let inc = s.circle.incoming_scid;
    s.circle.set_last_policy(policy).map_err(|e| {
        RpcFailure::new(
            error::PAY_STOPPED_RETRYING,
            format!(
                "the incoming peer changed its policy on channel {inc}: {}",
                e.message
            ),
        )
    })?;
    s.last_hop_updates += 1;
    s.req.inc.updates.remote = Some(u);
    s.tell(&format!(
        "the incoming peer changed its policy on channel {inc}: {} msat + {} ppm, delay {}; \
         planning on it",
        policy.base_fee_millisatoshi, policy.fee_per_millionth, policy.delay
    ));
    Ok(true)
}

/// Hands the channel_update in failure `f` to gossipd (`addgossip`); whether it took it (a
/// refusal is only logged: the update then reaches gossip as gossip brings it).
async fn to_gossipd<N: Lightningd>(st: &State<N>, f: &PayFailure) -> bool {
    let Some(update) = f.channel_update() else {
        return false;
    };
    match st.node.addgossip(&to_hex(&update)).await {
        Ok(()) => true,
        Err(e) => {
            debug!(
                "addgossip of a {:?} failure's channel_update: {e}",
                f.failcodename
            );
            false
        }
    }
}

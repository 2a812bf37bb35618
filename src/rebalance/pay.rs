//! Steps 3 and 4 of an attempt: our invoice (made once, on the first attempt, and registered
//! for the arrival check), then sendpay along the route and waitsendpay until it settles,
//! fails, or time runs out.

use super::learn::{failed, learn_settled};
use super::session::{Attempt, OurInvoice, Outcome, Session, middle};
use crate::core::liquidity::ChanDir;
use crate::core::route::Hop;
use crate::error::{self, RpcFailure};
use crate::lightningd::Lightningd;
use crate::state::State;

/// Creates the invoice on the first attempt (and registers it for the hook).
pub async fn ensure_invoice<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
) -> Result<(), RpcFailure> {
    if s.invoice.is_some() {
        return Ok(());
    }
    let (out_scid, inc_scid) = (&s.req.out_scid, &s.req.inc_scid);
    let label = st.inflight.new_label(out_scid, inc_scid);
    let inv = st
        .node
        .invoice(
            s.req.amount_msat,
            &label,
            &format!("cln-rebalance {out_scid} -> {inc_scid}"),
            s.retry_for + 60,
            st.config.final_cltv,
        )
        .await
        .map_err(|e| error::from_lightningd("invoice", &e))?;
    st.inflight.update(s.id, |r| {
        r.label = Some(label.clone());
        r.payment_hash = Some(inv.payment_hash.clone());
    });
    s.invoice = Some(OurInvoice {
        label,
        payment_hash: inv.payment_hash,
        payment_secret: inv.payment_secret,
    });
    Ok(())
}

/// Marks (or unmarks) a route's middle hops as carrying our HTLC, so a concurrent search
/// does not count on that liquidity.
fn mark_in_flight<N: Lightningd>(st: &State<N>, s: &Session, hops: &[Hop], add: bool) {
    let mut m = s.model(st);
    for h in middle(hops) {
        m.in_flight(
            ChanDir::new(h.short_channel_id, h.direction),
            h.amount_msat,
            add,
        );
    }
}

/// One sendpay + waitsendpay. Learns from the outcome.
pub async fn attempt<N: Lightningd>(
    st: &State<N>,
    s: &mut Session,
    hops: &[Hop],
    attempt: &mut Attempt,
) -> Outcome {
    let inv = s.invoice.clone().expect("invoice made before an attempt");
    let hash = &inv.payment_hash;
    if let Err(e) = st
        .node
        .sendpay(hops, hash, &inv.payment_secret, &inv.label)
        .await
    {
        return failed(st, s, e, hops, attempt).await;
    }
    mark_in_flight(st, s, hops, true);
    st.inflight.update(s.id, |r| r.parts_in_flight = 1);
    let outcome = loop {
        let remaining = s
            .deadline_ms
            .saturating_sub(st.now_ms())
            .div_ceil(1000)
            .max(1);
        match st.node.waitsendpay(hash, remaining).await {
            Ok(done) if done.status == "complete" => {
                let fee = done.amount_sent_msat.saturating_sub(done.amount_msat);
                attempt.outcome = "complete".into();
                break Outcome::Paid { fee_msat: fee };
            }
            Ok(other) => {
                attempt.outcome = format!("unexpected status {}", other.status);
                break Outcome::Stop(RpcFailure::new(
                    error::PLUGIN_ERROR,
                    format!("waitsendpay answered status {}", other.status),
                ));
            }
            Err(e) if e.code == Some(error::PAY_IN_PROGRESS) => {
                // Still in flight: never start another attempt that could pay twice.
                if st.now_ms() >= s.deadline_ms {
                    attempt.outcome = "still in flight when time ran out".into();
                    break Outcome::StillInFlight;
                }
            }
            Err(e) => {
                mark_in_flight(st, s, hops, false);
                st.inflight.update(s.id, |r| r.parts_in_flight = 0);
                return failed(st, s, e, hops, attempt).await;
            }
        }
    };
    mark_in_flight(st, s, hops, false);
    st.inflight.update(s.id, |r| r.parts_in_flight = 0);
    if let Outcome::Paid { .. } = outcome {
        learn_settled(st, s, hops);
    }
    outcome
}

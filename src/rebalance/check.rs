//! Step 1 of a rebalance: the request's channels and amount, checked against our channels as
//! lightningd shows them now. Nothing is created or paid before this passes.

use crate::channels::{Role, balancing_amount, check_usable, resolve};
use crate::core::amount::display_sat;
use crate::error::{self, RpcFailure};
use crate::lightningd::{Lightningd, PeerChannel};
use crate::params::RebalanceParams;

/// A request whose channels and amount passed the checks.
#[derive(Clone)]
pub struct Checked {
    pub our_id: String,
    pub out: PeerChannel,
    pub inc: PeerChannel,
    pub out_scid: String,
    pub inc_scid: String,
    pub amount_msat: u64,
    /// Every channel of ours, as listpeerchannels showed them.
    pub ours: Vec<PeerChannel>,
}

/// Both channels exist, differ, are usable, and can carry the amount (given, or the one that
/// brings a channel to 50/50).
pub async fn check_request<N: Lightningd>(
    node: &N,
    p: &RebalanceParams,
) -> Result<Checked, RpcFailure> {
    let info = node
        .getinfo()
        .await
        .map_err(|e| error::from_lightningd("getinfo", &e))?;
    let chans = node
        .listpeerchannels()
        .await
        .map_err(|e| error::from_lightningd("listpeerchannels", &e))?;
    let out = resolve(&chans, &p.outgoing, Role::Outgoing)?.clone();
    let inc = resolve(&chans, &p.incoming, Role::Incoming)?.clone();
    let out_scid = out.short_channel_id.clone().unwrap_or_default();
    let inc_scid = inc.short_channel_id.clone().unwrap_or_default();
    if out_scid == inc_scid {
        return Err(RpcFailure::param(
            "incoming",
            format!(
                "channel {inc_scid} is also the outgoing channel: a rebalance needs two different channels"
            ),
        ));
    }
    check_usable(&out, Role::Outgoing)?;
    check_usable(&inc, Role::Incoming)?;
    let amount_msat = match p.amount_msat {
        Some(a) => a,
        None => balancing_amount(&out, &inc)?,
    };
    if inc.receivable_msat < amount_msat {
        return Err(RpcFailure::param(
            "incoming",
            format!(
                "channel {inc_scid} can receive only {} now, less than the {} asked",
                display_sat(inc.receivable_msat),
                display_sat(amount_msat)
            ),
        ));
    }
    if out.spendable_msat < amount_msat {
        return Err(RpcFailure::param(
            "outgoing",
            format!(
                "channel {out_scid} can spend only {} now, less than the {} asked (plus fees)",
                display_sat(out.spendable_msat),
                display_sat(amount_msat)
            ),
        ));
    }
    Ok(Checked {
        our_id: info.id,
        out,
        inc,
        out_scid,
        inc_scid,
        amount_msat,
        ours: chans,
    })
}

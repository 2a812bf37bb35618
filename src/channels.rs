//! Our own channels as `listpeerchannels` shows them: bars and shares for the `balances` view,
//! turning an `outgoing`/`incoming` parameter (a short_channel_id or a peer's node id) into one
//! of our channels, whether it can take part, and the planner's view of it. Pure: works on
//! entries the caller fetched.

use crate::core::graph::Scid;
use crate::core::plan::OurChannel;
use crate::error::RpcFailure;
use crate::lightningd::PeerChannel;

/// Width of the text bar in `balances`.
pub const BAR_WIDTH: usize = 20;

/// A fixed-width bar of our share: `#` ours, `-` theirs, e.g. `[#####---------------]`.
pub fn bar(to_us_msat: u64, total_msat: u64) -> String {
    bar_of(to_us_msat, total_msat, BAR_WIDTH)
}

/// [`bar`] `width` characters wide (between the brackets).
pub fn bar_of(to_us_msat: u64, total_msat: u64, width: usize) -> String {
    let ours = if total_msat == 0 {
        0
    } else {
        ((to_us_msat as u128 * width as u128 + total_msat as u128 / 2) / total_msat as u128)
            as usize
    };
    let ours = ours.min(width);
    format!("[{}{}]", "#".repeat(ours), "-".repeat(width - ours))
}

/// Our share in percent with one decimal (display only; money stays in msat).
pub fn our_percent(to_us_msat: u64, total_msat: u64) -> f64 {
    if total_msat == 0 {
        return 0.0;
    }
    let tenths = (to_us_msat as u128 * 1000 + total_msat as u128 / 2) / total_msat as u128;
    tenths as f64 / 10.0
}

/// Is `s` a node id (33-byte compressed public key in hex)?
pub fn is_node_id(s: &str) -> bool {
    s.len() == 66
        && (s.starts_with("02") || s.starts_with("03"))
        && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Which end of the rebalance a parameter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Outgoing,
    Incoming,
}

impl Role {
    pub fn param(self) -> &'static str {
        match self {
            Role::Outgoing => "outgoing",
            Role::Incoming => "incoming",
        }
    }
}

/// Finds our channel named by `spec` (a short_channel_id, or a peer id: then the usable channel
/// with the most spendable (outgoing) or receivable (incoming)).
pub fn resolve<'a>(
    channels: &'a [PeerChannel],
    spec: &str,
    role: Role,
) -> Result<&'a PeerChannel, RpcFailure> {
    let name = role.param();
    if let Ok(scid) = spec.parse::<Scid>() {
        let scid = scid.to_string();
        return channels
            .iter()
            .find(|c| c.short_channel_id.as_deref() == Some(scid.as_str()))
            .ok_or_else(|| {
                RpcFailure::param(
                    name,
                    format!("we have no channel {spec} (not in listpeerchannels)"),
                )
            });
    }
    if !is_node_id(spec) {
        return Err(RpcFailure::param(
            name,
            format!(
                "'{spec}' is neither a short_channel_id (BLOCKxTXxOUTPUT) nor a node id (66 hex characters)"
            ),
        ));
    }
    let spec = spec.to_ascii_lowercase();
    let peer: Vec<&PeerChannel> = channels
        .iter()
        .filter(|c| c.peer_id == spec && c.short_channel_id.is_some())
        .collect();
    if peer.is_empty() {
        return Err(RpcFailure::param(
            name,
            format!("we have no channel with peer {spec}"),
        ));
    }
    let key = |c: &PeerChannel| match role {
        Role::Outgoing => c.spendable_msat,
        Role::Incoming => c.receivable_msat,
    };
    let best_normal = peer
        .iter()
        .copied()
        .filter(|c| c.state == "CHANNELD_NORMAL")
        .max_by_key(|c| key(c));
    Ok(best_normal.unwrap_or_else(|| {
        peer.iter()
            .copied()
            .max_by_key(|c| key(c))
            .expect("non-empty")
    }))
}

/// Refuses a channel that cannot take part in a rebalance right now, saying why.
pub fn check_usable(c: &PeerChannel, role: Role) -> Result<(), RpcFailure> {
    let name = role.param();
    let scid = c.short_channel_id.as_deref().unwrap_or("?");
    if c.state != "CHANNELD_NORMAL" {
        return Err(RpcFailure::param(
            name,
            format!("channel {scid} is {}, not CHANNELD_NORMAL", c.state),
        ));
    }
    if !c.peer_connected {
        return Err(RpcFailure::param(
            name,
            format!("peer {} of channel {scid} is not connected", c.peer_id),
        ));
    }
    Ok(())
}

/// The amount that brings one of the two channels to 50/50 without pushing the other past it.
pub fn balancing_amount(outgoing: &PeerChannel, incoming: &PeerChannel) -> Result<u64, RpcFailure> {
    let surplus = outgoing.to_us_msat.saturating_sub(outgoing.total_msat / 2);
    let deficit = (incoming.total_msat / 2).saturating_sub(incoming.to_us_msat);
    if surplus == 0 {
        return Err(RpcFailure::param(
            "amount_msat",
            format!(
                "not given, and no amount helps: outgoing channel {} is already at or below 50% ours ({}%)",
                outgoing.short_channel_id.as_deref().unwrap_or("?"),
                our_percent(outgoing.to_us_msat, outgoing.total_msat)
            ),
        ));
    }
    if deficit == 0 {
        return Err(RpcFailure::param(
            "amount_msat",
            format!(
                "not given, and no amount helps: incoming channel {} is already at or above 50% ours ({}%)",
                incoming.short_channel_id.as_deref().unwrap_or("?"),
                our_percent(incoming.to_us_msat, incoming.total_msat)
            ),
        ));
    }
    Ok(surplus.min(deficit))
}

/// The planner's view of one of our channels.
pub fn our_channel(c: &PeerChannel) -> Option<OurChannel> {
    let scid: Scid = c.short_channel_id.as_deref()?.parse().ok()?;
    let sum = |dir: &str| {
        c.htlcs
            .iter()
            .filter(|h| h.direction == dir)
            .map(|h| h.amount_msat)
            .fold(0u64, u64::saturating_add)
    };
    let local = c.updates.local.unwrap_or_default();
    Some(OurChannel {
        short_channel_id: scid,
        peer_id: c.peer_id.clone(),
        state_normal: c.state == "CHANNELD_NORMAL",
        peer_connected: c.peer_connected,
        to_us_msat: c.to_us_msat,
        total_msat: c.total_msat,
        spendable_msat: c.spendable_msat,
        receivable_msat: c.receivable_msat,
        htlcs_out_msat: sum("out"),
        htlcs_in_msat: sum("in"),
        fee_base_msat: local.fee_base_msat,
        fee_proportional_millionths: local.fee_proportional_millionths,
        remote_fee: c
            .updates
            .remote
            .map(|r| (r.fee_base_msat, r.fee_proportional_millionths)),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn chan(peer: &str, scid: &str, to_us: u64, total: u64) -> PeerChannel {
        serde_json::from_value(json!({
            "peer_id": peer, "peer_connected": true, "state": "CHANNELD_NORMAL",
            "short_channel_id": scid, "to_us_msat": to_us, "total_msat": total,
            "spendable_msat": to_us.saturating_sub(total / 100), "receivable_msat": (total - to_us).saturating_sub(total / 100),
        }))
        .unwrap()
    }

    const P1: &str = "02aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const P2: &str = "03bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn bars_and_percent() {
        assert_eq!(bar(0, 100), format!("[{}]", "-".repeat(20)));
        assert_eq!(bar(100, 100), format!("[{}]", "#".repeat(20)));
        assert_eq!(bar(50, 100), "[##########----------]");
        assert_eq!(bar(0, 0).len(), 22);
        assert_eq!(our_percent(1, 3), 33.3);
        assert_eq!(our_percent(0, 0), 0.0);
    }

    #[test]
    fn resolves_scid_and_peer() {
        let chans = vec![
            chan(P1, "1x1x0", 700, 1000),
            chan(P1, "2x1x0", 900, 2000),
            chan(P2, "3x1x0", 100, 1000),
        ];
        assert_eq!(
            resolve(&chans, "3x1x0", Role::Outgoing).unwrap().peer_id,
            P2
        );
        // Outgoing picks most spendable (2x1x0: 880), incoming most receivable (2x1x0: 1080).
        assert_eq!(
            resolve(&chans, P1, Role::Outgoing)
                .unwrap()
                .short_channel_id
                .as_deref(),
            Some("2x1x0")
        );
        let mut chans2 = chans.clone();
        chans2[1].to_us_msat = 1990;
        chans2[1].receivable_msat = 0;
        assert_eq!(
            resolve(&chans2, P1, Role::Incoming)
                .unwrap()
                .short_channel_id
                .as_deref(),
            Some("1x1x0")
        );
        let e = resolve(&chans, "9x9x9", Role::Incoming).unwrap_err();
        assert!(
            e.message.starts_with("incoming: we have no channel 9x9x9"),
            "{}",
            e.message
        );
        let e = resolve(&chans, "bogus", Role::Outgoing).unwrap_err();
        assert!(e.message.starts_with("outgoing: 'bogus' is neither"));
        let other = "02cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
        assert!(
            resolve(&chans, other, Role::Outgoing)
                .unwrap_err()
                .message
                .contains("no channel with peer")
        );
    }

    #[test]
    fn usability_and_default_amount() {
        let mut c = chan(P1, "1x1x0", 700, 1000);
        assert!(check_usable(&c, Role::Outgoing).is_ok());
        c.peer_connected = false;
        assert!(
            check_usable(&c, Role::Outgoing)
                .unwrap_err()
                .message
                .contains("not connected")
        );
        c.state = "ONCHAIN".into();
        assert!(
            check_usable(&c, Role::Incoming)
                .unwrap_err()
                .message
                .starts_with("incoming: channel 1x1x0 is ONCHAIN")
        );

        let out = chan(P1, "1x1x0", 800_000, 1_000_000);
        let inc = chan(P2, "2x1x0", 100_000, 1_000_000);
        assert_eq!(balancing_amount(&out, &inc).unwrap(), 300_000); // brings out to 50%
        let inc2 = chan(P2, "2x1x0", 450_000, 1_000_000);
        assert_eq!(balancing_amount(&out, &inc2).unwrap(), 50_000); // brings in to 50%
        let balanced = chan(P1, "1x1x0", 500_000, 1_000_000);
        assert!(
            balancing_amount(&balanced, &inc)
                .unwrap_err()
                .message
                .contains("outgoing channel 1x1x0 is already")
        );
        assert!(
            balancing_amount(&out, &balanced)
                .unwrap_err()
                .message
                .contains("incoming channel 1x1x0 is already")
        );
    }
}

//! Quoting a job's candidate pairs before a move starts: `core::pairing` says which pair to
//! quote next and which starts; each quote is what `rebalance ... dryrun=true` answers (the
//! model's cheapest set within the move's fee cap; no invoice, no HTLC, nothing recorded).

use super::plan::move_params;
use crate::core::pairing::{Pairing, Quote};
use crate::core::plan::Move;
use crate::lightningd::Lightningd;
use crate::rebalance::session::Extra;
use crate::state::State;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Wall time one plan step may spend quoting (each quote a flow solve over the model, a few ms
/// on mainnet); past it the step chooses among what it has quoted.
const STEP_QUOTE_TIME: Duration = Duration::from_secs(3);

impl<N: Lightningd> State<N> {
    /// Quotes `pairing`'s candidates as it asks, within [`STEP_QUOTE_TIME`] (at least one);
    /// stops when `cancel` is set.
    pub(super) async fn quote_pairs(&self, pairing: &mut Pairing, cancel: &Arc<AtomicBool>) {
        let started = Instant::now();
        while let Some(i) = pairing.next_to_quote() {
            if cancel.load(Ordering::SeqCst)
                || (pairing.quoted() > 0 && started.elapsed() > STEP_QUOTE_TIME)
            {
                break;
            }
            let q = self.quote_move(&pairing.moves()[i]).await;
            pairing.record(i, q);
        }
    }

    /// What a dry run of `m` finds within its fee cap.
    async fn quote_move(&self, m: &Move) -> Quote {
        let extra = Extra {
            fee_cap_msat: Some(m.fee_cap_msat),
            ..Extra::default()
        };
        match self.rebalance_with(move_params(m, true), extra).await {
            Ok(v) => Quote::Within {
                fee_msat: v["fee_msat"].as_u64().unwrap_or(m.fee_cap_msat),
                probability: v["probability"].as_f64().unwrap_or(1.0),
            },
            Err(e) => Quote::Without { reason: e.message },
        }
    }
}

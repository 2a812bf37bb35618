//! Quoting a job's candidate pairs before a move starts: `core::pairing` says which pair to
//! quote next and which starts; each quote is what `rebalance ... dryrun=true` answers (the
//! model's cheapest set within the move's fee cap; no invoice, no HTLC, nothing recorded); and
//! what the job does with the pairs quoted without a set within their cap.

use super::job::{JobState, half_sat};
use super::plan::move_params;
use crate::core::amount::display_sat;
use crate::core::pairing::{Pairing, Quote};
use crate::core::plan::Move;
use crate::lightningd::Lightningd;
use crate::rebalance::session::Extra;
use crate::state::State;
use crate::state::jobs::Job;
use log::info;
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

    /// The pairs a step quoted without a set within their cap: not moves (nothing was sent,
    /// no channel is given up for them). Each is quoted at half next time, or below
    /// `min_amount_msat` skipped: avoided for the rest of the job, counted and logged. A sink
    /// no source left reaches is told once.
    pub(super) fn skip_refused(
        &self,
        job: &Job,
        pairing: &Pairing,
        st: &mut JobState,
        min_amount_msat: u64,
    ) {
        let mut skipped = Vec::new();
        for (m, why) in pairing.not_within() {
            let half = half_sat(m.amount_msat);
            if half >= min_amount_msat {
                st.pair_amount.insert((m.outgoing, m.incoming), half);
                continue;
            }
            st.avoid.insert((m.outgoing, m.incoming));
            info!(
                "rebalanceall job {}: {} -> {} skipped, no route within the fee cap down to {} (cap {}msat): {why}",
                job.id,
                m.outgoing,
                m.incoming,
                display_sat(m.amount_msat),
                m.fee_cap_msat
            );
            skipped.push((m, why));
        }
        let Some(&(m, why)) = skipped.last() else {
            return;
        };
        let total = {
            let mut p = job.progress.lock().expect("job lock");
            p.pairs_skipped += skipped.len() as u32;
            p.pairs_skipped
        };
        st.skipped_reason = format!(
            "{total} pair(s) skipped, no route within the fee cap; the last, {} -> {}: {why}",
            m.outgoing, m.incoming
        );
        for (sink, quoted) in pairing.sinks_without_a_set() {
            let all_avoided = pairing
                .moves()
                .iter()
                .filter(|m| m.incoming == sink)
                .all(|m| st.avoid.contains(&(m.outgoing, m.incoming)));
            if all_avoided && st.out_of_reach.insert(sink) {
                let line = format!(
                    "{sink}: left out: no source left reaches it within the fee cap ({quoted} quoted)"
                );
                info!("rebalanceall job {}: {line}", job.id);
                job.tell(&line);
            }
        }
    }
}

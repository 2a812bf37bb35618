//! The plan for our channels now: what `rebalanceall` would do and `balances` suggests, with
//! the settings in force, channels left out, and the fee budget applied; and the `rebalance`
//! request a planned move makes.

use crate::channels::our_channel;
use crate::core::budget::{Budget, Spent};
use crate::core::graph::Scid;
use crate::core::pairing::candidates;
use crate::core::plan::{Move, OurChannel, Plan, PlanConfig, Settings, plan_avoiding};
use crate::error::{self, RpcFailure};
use crate::lightningd::Lightningd;
use crate::params::RebalanceParams;
use crate::state::State;
use std::collections::HashSet;

impl<N: Lightningd> State<N> {
    /// The plan for our channels now (what `rebalanceall` would do, and `balances` suggests).
    pub async fn current_plan(
        &self,
        config: &PlanConfig,
        budget: &Budget,
        left_out: &HashSet<String>,
        avoid: &HashSet<(Scid, Scid)>,
        run_spent_msat: u64,
        reserved_msat: u64,
    ) -> Result<Plan, RpcFailure> {
        let (ours, settings) = self.ours_and_settings(left_out).await?;
        let mut p = plan_avoiding(&ours, &settings, config, avoid);
        let spent = Spent {
            run_msat: run_spent_msat,
            last_24h_msat: self.fees_last_24h().await,
            reserved_msat,
        };
        p.apply_budget(budget, spent);
        Ok(p)
    }

    /// A job's step: the plan for our channels now (no budget applied: the job admits each
    /// move itself) and every pair it could start, to quote (`core::pairing::candidates`).
    pub(super) async fn current_candidates(
        &self,
        config: &PlanConfig,
        left_out: &HashSet<String>,
        avoid: &HashSet<(Scid, Scid)>,
    ) -> Result<(Plan, Vec<Move>), RpcFailure> {
        let (ours, settings) = self.ours_and_settings(left_out).await?;
        let p = plan_avoiding(&ours, &settings, config, avoid);
        Ok((p, candidates(&ours, &settings, config, avoid)))
    }

    /// Our channels now, and the settings with `left_out` excluded.
    async fn ours_and_settings(
        &self,
        left_out: &HashSet<String>,
    ) -> Result<(Vec<OurChannel>, Settings), RpcFailure> {
        let chans = self
            .node
            .listpeerchannels()
            .await
            .map_err(|e| error::from_lightningd("listpeerchannels", &e))?;
        let ours: Vec<OurChannel> = chans.iter().filter_map(our_channel).collect();
        let mut settings = self.settings().await;
        for scid in left_out {
            if let Ok(s) = scid.parse() {
                settings.channels.entry(s).or_default().exclude = Some(true);
            }
        }
        Ok((ours, settings))
    }
}

/// The `rebalance` request a planned move makes (its fee cap goes in `rebalance::session::Extra`).
pub fn move_params(m: &Move, dryrun: bool) -> RebalanceParams {
    RebalanceParams {
        outgoing: m.outgoing.to_string(),
        incoming: m.incoming.to_string(),
        amount_msat: Some(m.amount_msat),
        maxfeeppm: None,
        exemptfee: None,
        retry_for: None,
        dryrun,
        maxparts: None,
        amount_max: false,
    }
}

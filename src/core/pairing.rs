//! Pairing a job's sinks with sources by quote: every (source, sink) pair the planner could
//! make, which of them a plan step quotes (bounded), and which quoted pair starts.
//!
//! The planner alone pairs the largest sink with the largest source, blind to what routes
//! cost; a move whose cheapest set costs more than its cap is then refused before any HTLC. A
//! job quotes first (the model's cheapest set within the move's cap, nothing sent: the caller
//! does that) and starts only a pair that has one. Pure: the caller quotes and records.
//!
//! ## What is quoted, in what order
//! Sinks as the planner orders them (most to move first); each sink's sources most to move
//! first, at most [`QuoteLimits::sources_per_sink`] of them in a step, and at most
//! [`QuoteLimits::quotes_per_step`] quotes in all. Of the pairs quoted within their cap the
//! cheapest of all starts: the cheapest liquidity first, which with a budget buys the most
//! for it, and without one ran into fewer dear or failing moves than filling the planner's
//! largest sink first ([`QuoteLimits::cheapest_of_all`] off: the first sink with a pair within
//! its cap ends the quoting and takes its cheapest source). A pair quoted without a set
//! within its cap is not started (not a move: nothing is sent); the caller quotes it again
//! smaller, or skips it.
//!
//! ## Cheapest
//! The quoted fee per sat moved (ppm); ties go to the planner's order (the larger move first).
//! Before that, a set the model thinks unlikely to go (under [`UNLIKELY`]) comes after the
//! likelier ones, and with a budget a pair whose fee fits in what is left comes first. (The
//! fee over the likelihood, tried first, favoured small moves, which the model always finds
//! likelier: the deficit closed in fragments, and a small rest no move could carry stayed
//! open.)

use crate::core::graph::Scid;
use crate::core::plan::{Move, OurChannel, Plan, PlanConfig, Settings, ends, priced};
use std::cmp::Reverse;
use std::collections::HashSet;

/// What one step may quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuoteLimits {
    /// Quotes in one step at most (each a flow solve over the model: a few ms on mainnet).
    pub quotes_per_step: usize,
    /// A sink's sources quoted in one step at most: a sink no source reaches does not take
    /// the whole step; its next sources are quoted in the next step.
    pub sources_per_sink: usize,
    /// Quote on over the next sinks and start the cheapest pair of all (else the first sink
    /// with a pair within its cap takes its cheapest).
    pub cheapest_of_all: bool,
}

impl Default for QuoteLimits {
    /// Measured on the rebalanceall bench's tuning seeds (benches/README.md): the cheapest pair
    /// of all, two sources a sink, 32 quotes a step, closed 89% of what the informed job closes
    /// with and without a budget; the largest sink first with its cheapest of four sources,
    /// 59.7% without one and 82.0% with 500 sat.
    fn default() -> Self {
        QuoteLimits {
            quotes_per_step: 32,
            sources_per_sink: 2,
            cheapest_of_all: true,
        }
    }
}

/// What a quote of one pair found.
#[derive(Debug, Clone, PartialEq)]
pub enum Quote {
    /// A set within the move's cap: its fee, and the model's likelihood that it goes (0..=1).
    Within { fee_msat: u64, probability: f64 },
    /// No set within the cap for the amount (the cheapest costs more, or the model finds none
    /// that carries it): why. The move would fail the same way before any HTLC, so it is not
    /// started; a smaller amount may go (a set's fee grows faster than its amount once the
    /// cheap paths are full), so the job quotes the pair again at half, down to the min amount.
    Without { reason: String },
}

/// A set the model gives less than this chance goes after the likelier ones, whatever its fee.
pub const UNLIKELY: f64 = 0.25;

/// Every pair the planner could make now, priced as it would price it: sinks most to move
/// first, each sink's sources most to move first, none in `avoid`, none the planner would
/// refuse (below the min amount, a zero cap). Channels in play as [`crate::core::plan::plan`]
/// says.
pub fn candidates(
    channels: &[OurChannel],
    settings: &Settings,
    config: &PlanConfig,
    avoid: &HashSet<(Scid, Scid)>,
) -> Vec<Move> {
    let mut scratch = Plan::default();
    let (mut sources, mut sinks) = ends(channels, settings, config, &mut scratch);
    sources.sort_unstable_by_key(|e| (Reverse(e.movable_msat), e.chan.short_channel_id));
    sinks.sort_unstable_by_key(|e| (Reverse(e.movable_msat), e.chan.short_channel_id));
    let mut out = Vec::new();
    for dst in &sinks {
        for src in &sources {
            if avoid.contains(&(src.chan.short_channel_id, dst.chan.short_channel_id)) {
                continue;
            }
            if let Ok(m) = priced(src, dst, config) {
                out.push(m);
            }
        }
    }
    out
}

/// One plan step's pairing: the candidate pairs, their quotes so far, the choice.
#[derive(Debug, Clone)]
pub struct Pairing {
    moves: Vec<Move>,
    quotes: Vec<Option<Quote>>,
    limits: QuoteLimits,
    /// What the fee budget leaves for this move (`None`: no budget).
    budget_left_msat: Option<u64>,
}

impl Pairing {
    /// `moves`: [`candidates`] (grouped by sink, in the order to quote them).
    pub fn new(moves: Vec<Move>, limits: QuoteLimits, budget_left_msat: Option<u64>) -> Pairing {
        let quotes = vec![None; moves.len()];
        Pairing {
            moves,
            quotes,
            limits,
            budget_left_msat,
        }
    }

    pub fn moves(&self) -> &[Move] {
        &self.moves
    }

    /// Quotes recorded so far.
    pub fn quoted(&self) -> usize {
        self.quotes.iter().filter(|q| q.is_some()).count()
    }

    /// The sinks' groups of candidate indices, in order.
    fn groups(&self) -> Vec<Vec<usize>> {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, m) in self.moves.iter().enumerate() {
            match groups.last_mut() {
                Some(g) if self.moves[g[0]].incoming == m.incoming => g.push(i),
                _ => groups.push(vec![i]),
            }
        }
        groups
    }

    fn within(&self, i: usize) -> bool {
        matches!(self.quotes[i], Some(Quote::Within { .. }))
    }

    /// The candidate to quote next, or `None`: the choice can be made (or the step has quoted
    /// all it may). See the module doc for the order.
    pub fn next_to_quote(&self) -> Option<usize> {
        if self.quoted() >= self.limits.quotes_per_step {
            return None;
        }
        for g in self.groups() {
            let top = &g[..g.len().min(self.limits.sources_per_sink.max(1))];
            if let Some(&i) = top.iter().find(|&&i| self.quotes[i].is_none()) {
                return Some(i);
            }
            if !self.limits.cheapest_of_all && top.iter().any(|&i| self.within(i)) {
                return None;
            }
        }
        None
    }

    /// Records what quoting candidate `i` found.
    pub fn record(&mut self, i: usize, q: Quote) {
        if let Some(slot) = self.quotes.get_mut(i) {
            *slot = Some(q);
        }
    }

    /// The pair to start, and its quoted fee: the cheapest (module doc) among those within
    /// their cap; without a budget, of the first sink that has one.
    pub fn choice(&self) -> Option<(&Move, u64)> {
        let within: Vec<(usize, u64, f64)> = (0..self.moves.len())
            .filter_map(|i| match self.quotes[i] {
                Some(Quote::Within {
                    fee_msat,
                    probability,
                }) => Some((i, fee_msat, probability)),
                _ => None,
            })
            .collect();
        let first_sink = within.first().map(|w| self.moves[w.0].incoming);
        let fits = |fee: u64| self.budget_left_msat.is_none_or(|left| fee <= left);
        within
            .iter()
            .filter(|w| self.limits.cheapest_of_all || Some(self.moves[w.0].incoming) == first_sink)
            .min_by_key(|&&(i, fee, probability)| {
                let ppm =
                    u128::from(fee) * 1_000_000 / u128::from(self.moves[i].amount_msat.max(1));
                (!fits(fee), probability < UNLIKELY, ppm, i)
            })
            .map(|w| (&self.moves[w.0], w.1))
    }

    /// The pairs quoted without a set within their cap, with why.
    pub fn not_within(&self) -> Vec<(&Move, &str)> {
        self.moves
            .iter()
            .zip(&self.quotes)
            .filter_map(|(m, q)| match q {
                Some(Quote::Without { reason }) => Some((m, reason.as_str())),
                _ => None,
            })
            .collect()
    }

    /// Sinks all of whose candidate sources were quoted in this step, none within the cap,
    /// with how many.
    pub fn sinks_without_a_set(&self) -> Vec<(Scid, usize)> {
        self.groups()
            .into_iter()
            .filter(|g| {
                g.iter()
                    .all(|&i| matches!(self.quotes[i], Some(Quote::Without { .. })))
            })
            .map(|g| (self.moves[g[0]].incoming, g.len()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::amount::MSAT_PER_SAT;

    const M: u64 = 1_000_000 * MSAT_PER_SAT;

    fn scid(n: u64) -> Scid {
        format!("{n}x1x0").parse().unwrap()
    }

    /// Channel `n` with `pct` percent ours of 1M sat, 1% reserve each side, our fee 1000 msat
    /// + 100 ppm.
    fn ch(n: u64, pct: u64) -> OurChannel {
        let to_us = M * pct / 100;
        OurChannel {
            short_channel_id: scid(n),
            peer_id: format!("02{n:064x}"),
            state_normal: true,
            peer_connected: true,
            to_us_msat: to_us,
            total_msat: M,
            spendable_msat: to_us - M / 100,
            receivable_msat: M - to_us - M / 100,
            htlcs_out_msat: 0,
            htlcs_in_msat: 0,
            fee_base_msat: 1000,
            fee_proportional_millionths: 100,
            remote_fee: None,
        }
    }

    /// Sources 1 (90%), 2 (80%), 3 (70%); sinks 4 (10%), 5 (20%).
    fn five() -> Vec<OurChannel> {
        vec![ch(1, 90), ch(2, 80), ch(3, 70), ch(4, 10), ch(5, 20)]
    }

    fn pairs(ms: &[Move]) -> Vec<(u64, u64)> {
        ms.iter()
            .map(|m| (m.outgoing.block(), m.incoming.block()))
            .collect()
    }

    fn within(fee_msat: u64) -> Quote {
        Quote::Within {
            fee_msat,
            probability: 1.0,
        }
    }

    fn refused() -> Quote {
        Quote::Without {
            reason: "the cheapest set of parts costs 9000msat, more than the fee cap".into(),
        }
    }

    fn config() -> PlanConfig {
        PlanConfig::default()
    }

    /// The largest sink first: its cheapest of four sources.
    fn first_sink() -> QuoteLimits {
        QuoteLimits {
            quotes_per_step: 16,
            sources_per_sink: 4,
            cheapest_of_all: false,
        }
    }

    /// Quotes what `next_to_quote` asks for with `quote` until it asks no more; the pairs in
    /// the order asked.
    fn run(p: &mut Pairing, quote: impl Fn(u64, u64) -> Quote) -> Vec<(u64, u64)> {
        let mut asked = Vec::new();
        while let Some(i) = p.next_to_quote() {
            let m = &p.moves()[i];
            let (o, s) = (m.outgoing.block(), m.incoming.block());
            asked.push((o, s));
            p.record(i, quote(o, s));
        }
        asked
    }

    #[test]
    fn candidates_are_every_pair_sinks_and_sources_most_to_move_first() {
        let c = candidates(&five(), &Settings::default(), &config(), &HashSet::new());
        assert_eq!(
            pairs(&c),
            vec![(1, 4), (2, 4), (3, 4), (1, 5), (2, 5), (3, 5)]
        );
        // Each priced as the planner prices it: min of the two movable amounts.
        assert_eq!(c[0].amount_msat, 400_000 * MSAT_PER_SAT);
        assert_eq!(c[2].amount_msat, 200_000 * MSAT_PER_SAT);
        let avoid: HashSet<_> = [(scid(1), scid(4)), (scid(3), scid(5))].into();
        let c = candidates(&five(), &Settings::default(), &config(), &avoid);
        assert_eq!(pairs(&c), vec![(2, 4), (3, 4), (1, 5), (2, 5)]);
    }

    #[test]
    fn filling_the_first_sink_first_takes_its_cheapest_source_within_the_cap() {
        let c = candidates(&five(), &Settings::default(), &config(), &HashSet::new());
        let mut p = Pairing::new(c, first_sink(), None);
        // Source 1 is too dear for sink 4; 2 and 3 are within, 3 cheaper per sat.
        let asked = run(&mut p, |o, _| match o {
            1 => refused(),
            2 => within(8_000), // 8000 msat on 300000 sat: 26.7 ppm
            _ => within(4_000), // 4000 msat on 200000 sat: 20 ppm
        });
        assert_eq!(asked, vec![(1, 4), (2, 4), (3, 4)], "sink 5 is not quoted");
        let (m, fee) = p.choice().unwrap();
        assert_eq!((m.outgoing.block(), m.incoming.block(), fee), (3, 4, 4_000));
        assert_eq!(
            pairs(
                &p.not_within()
                    .iter()
                    .map(|r| r.0.clone())
                    .collect::<Vec<_>>()
            ),
            vec![(1, 4)]
        );
        assert!(p.sinks_without_a_set().is_empty());
    }

    #[test]
    fn a_sink_no_source_reaches_is_left_and_the_next_sink_is_quoted() {
        let c = candidates(&five(), &Settings::default(), &config(), &HashSet::new());
        let mut p = Pairing::new(c, first_sink(), None);
        let asked = run(&mut p, |o, s| {
            if s == 4 || o == 1 {
                refused()
            } else {
                within(5_000)
            }
        });
        assert_eq!(asked, vec![(1, 4), (2, 4), (3, 4), (1, 5), (2, 5), (3, 5)]);
        assert_eq!(p.sinks_without_a_set(), vec![(scid(4), 3)]);
        let (m, _) = p.choice().unwrap();
        // 5000 msat on 300000 sat (from 2) is cheaper per sat than on 200000 sat (from 3).
        assert_eq!((m.outgoing.block(), m.incoming.block()), (2, 5));
    }

    #[test]
    fn the_step_quotes_at_most_its_limits() {
        let c = candidates(&five(), &Settings::default(), &config(), &HashSet::new());
        let limits = QuoteLimits {
            quotes_per_step: 3,
            sources_per_sink: 2,
            cheapest_of_all: false,
        };
        let mut p = Pairing::new(c, limits, None);
        // Two sources per sink, three quotes in all: 1->4, 2->4, then sink 5's first.
        let asked = run(&mut p, |_, _| refused());
        assert_eq!(asked, vec![(1, 4), (2, 4), (1, 5)]);
        assert_eq!(p.quoted(), 3);
        assert!(p.choice().is_none());
        // Sink 4's third source was not quoted: it is not out of reach yet.
        assert!(p.sinks_without_a_set().is_empty());
    }

    #[test]
    fn with_a_budget_the_cheapest_pair_of_all_starts_within_what_is_left() {
        let c = candidates(&five(), &Settings::default(), &config(), &HashSet::new());
        let quote = |o: u64, s: u64| match (o, s) {
            (1, 4) => within(20_000), // 50 ppm
            (2, 4) => within(15_000), // 50 ppm
            (1, 5) => within(3_000),  // 10 ppm on 300000 sat
            (2, 5) => within(2_000),  // 6.7 ppm
            _ => refused(),
        };
        let mut p = Pairing::new(c.clone(), QuoteLimits::default(), Some(100_000));
        let asked = run(&mut p, quote);
        assert_eq!(
            asked,
            vec![(1, 4), (2, 4), (1, 5), (2, 5)],
            "two sources of every sink"
        );
        let (m, fee) = p.choice().unwrap();
        assert_eq!((m.outgoing.block(), m.incoming.block(), fee), (2, 5, 2_000));
        // Filling the largest sink first instead: its cheapest source.
        let mut p = Pairing::new(c.clone(), first_sink(), None);
        run(&mut p, quote);
        let (m, _) = p.choice().unwrap();
        assert_eq!(
            (m.outgoing.block(), m.incoming.block()),
            (1, 4),
            "ties: planner's order"
        );
        // A pair whose fee the budget left cannot pay goes after those it can.
        let quote = |o: u64, s: u64| match (o, s) {
            (1, 4) => within(1_500), // 3.75 ppm, over what is left
            (2, 5) => within(1_200), // 4 ppm
            _ => refused(),
        };
        let mut p = Pairing::new(c.clone(), QuoteLimits::default(), Some(1_000));
        run(&mut p, quote);
        // Neither fits: the cheaper per sat first (the job quotes it again smaller).
        let (m, _) = p.choice().unwrap();
        assert_eq!((m.outgoing.block(), m.incoming.block()), (1, 4));
        let mut p = Pairing::new(c, QuoteLimits::default(), Some(1_300));
        run(&mut p, quote);
        let (m, _) = p.choice().unwrap();
        assert_eq!(
            (m.outgoing.block(), m.incoming.block()),
            (2, 5),
            "the one that fits"
        );
    }

    #[test]
    fn a_likely_set_beats_a_cheaper_unlikely_one() {
        let c = candidates(&five(), &Settings::default(), &config(), &HashSet::new());
        let mut p = Pairing::new(c, QuoteLimits::default(), None);
        run(&mut p, |o, _| match o {
            1 => Quote::Within {
                fee_msat: 4_000, // 10 ppm, but one chance in five
                probability: 0.2,
            },
            2 => Quote::Within {
                fee_msat: 9_000, // 30 ppm, nearly sure
                probability: 0.9,
            },
            _ => refused(),
        });
        let (m, _) = p.choice().unwrap();
        assert_eq!(m.outgoing.block(), 2);
    }
}

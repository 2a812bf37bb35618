//! What we know of each channel direction's liquidity, learned from every attempt, fading back
//! toward "unknown" with a half-life; and the success probability the route search prices.
//!
//! Pure: no I/O, and time is always a parameter (`now`, unix seconds). Money stays integer
//! msat; probabilities and decay factors are `f64` and become msat only through explicit,
//! rounded conversions.
//!
//! For a channel direction of capacity `c`, the liquidity `L` it can forward lies in
//! `[min_msat, max_msat]`. A `temporary_channel_failure` of `a` msat says `L < a`; a hop that
//! forwarded `a` says `L >= a`; a success moves each hop's bounds by what it carried (down on
//! the forward side, up on the reverse side). What we learned fades: `t` seconds later the
//! learned bounds still hold with weight `w = 2^(-t/h)`, and with weight `1 - w` the channel
//! is taken to have changed since and is priced by the prior alone:
//! `P = w * P(L >= a | min <= L <= max) + (1 - w) * P_prior(L >= a)`. (LDK instead narrows the
//! bounds' offsets by the same factor; on the simulation that forgets a failure too soon, see
//! [`DEFAULT_MODEL`].) Channels that answered `channel_disabled`/`unknown_next_peer`, and
//! nodes that failed as a whole, are remembered with the time; the factor `1 - 2^(-t/h)` they
//! put on a hop's probability fades them out the same way.
//!
//! The prior says where liquidity sits before anything is learned: uniform over the capacity,
//! or [`Prior::Bimodal`], density proportional to `(x - 1/2)^2` of the capacity share, which
//! puts the mass near the channel edges as measured on mainnet (LDK's default since 2023); and
//! a share of channel directions ([`ModelConfig::depleted_ppm`]) that cannot forward even a
//! small amount (drained, or left with only the channel reserve), whatever the amount. The
//! default is uniform with 4% depleted: it did better on the simulation, see [`DEFAULT_MODEL`].

mod beliefs; // the model as one search sees it
mod codec; // the record in lightningd's datastore
mod config; // a channel direction, the prior, the settings and defaults
mod model; // the learned bounds, failures, in-flight amounts, change log
mod probability; // P(success) within bounds and under the prior; risk in msat
#[cfg(test)]
mod tests;

pub use beliefs::Beliefs;
pub use config::{
    ChanDir, DEFAULT_HALF_LIFE_SECS, DEFAULT_MODEL, ModelConfig, Prior, prior_probability,
};
pub use model::Liquidity;
pub use probability::{Bounds, risk_msat, success_probability, uniform_prior_bits};

//! The pure core: no I/O, no clock of its own. Everything here is a function of its arguments.

pub mod amount; // msat arithmetic (checked) and CLN amount strings
pub mod budget; // fee budgets per run and per 24 hours; admitting a move
pub mod channel; // one of our channels as the planner sees it; which one a peer forwards over
pub mod economics; // what a move may pay: a share of what it earns, less what the source loses
pub mod flow; // several paths and part amounts for one amount (min-cost flow)
pub mod graph; // the public graph from listchannels, compact and indexed
pub mod history; // every rebalance as a datastore record; retention; fees in a window
pub mod liquidity; // what we know of each channel direction's liquidity; decay; P(success)
pub mod pairing; // a job's sinks paired with sources by quote: what to quote, which pair starts
pub mod pathfind; // search over the graph with a cost (fee only, or fee + risk)
pub mod plan; // which channels to move, how much, at what fee cap; the fee budget
pub mod probing; // background probing: the planned moves probed, the hourly budget
pub mod report; // rebalancereport: totals, per channel, budget used, did it pay back
pub mod route; // a path -> sendpay hops, amounts and delays computed backward

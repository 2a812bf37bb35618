//! A split the default chunks miss, found by [`thorough`]'s.

use super::*;

#[test]
fn a_split_in_fifths_is_found_searching_harder() {
    // 1M sat from a to d over five ways of 210k-sat channels, at most five parts: no half or
    // quarter of it fits a way, so the default chunks find nothing; `thorough`'s sixths and
    // eighths (re-balanced to fifths) carry it.
    let ways = ["p", "q", "r", "s", "t"];
    let list: Vec<(&str, &str, u64, u32)> = ways
        .iter()
        .enumerate()
        .flat_map(|(i, &w)| {
            let ppm = 100 + 10 * i as u32;
            [("a", w, 210_000, ppm), (w, "d", 210_000, ppm)]
        })
        .collect();
    let g = channels(&list);
    let none = Exclusions::default();
    let req = FlowRequest {
        max_parts: 5,
        min_part_msat: 20_000 * SAT,
        ..plain(&g, "a", "d", 1_000_000 * SAT, &none)
    };
    let beliefs = view(&g, &Liquidity::new());
    let mut scratch = FlowScratch::default();
    assert_eq!(solve(&g, &req, &beliefs, &mut scratch), Err(NoFlow::NoPath));
    let config = thorough(&default_config());
    let flow = solve_with(&g, &req, &beliefs, &config, &mut scratch).unwrap();
    assert_eq!(flow.parts.len(), 5, "{flow:?}");
    assert!(flow.parts.iter().all(|p| p.amount_msat <= 210_000 * SAT));
    check(&g, &req, &beliefs, &flow);
    // The same knobs otherwise: the penalty, the risk weights.
    assert_eq!(config.risk_weights, default_config().risk_weights);
    assert_eq!(config.part_penalty_ppm, default_config().part_penalty_ppm);
}

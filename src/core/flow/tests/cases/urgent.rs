//! [`urgent_config`]: the risk weighed double turns the plan to the likelier way.

use super::*;
use crate::core::flow::config::URGENT_RISK_WEIGHT;

#[test]
fn weighed_double_the_risk_buys_the_likelier_way() {
    // 1M sat from a to d: through x on channels of 3M sat at 10 ppm a hop (to the model each
    // hop carries it two times in three: about 1.3 bits for the way, some 131 sat at 2 sat +
    // 100 ppm a bit) or through y on channels of 100M sat at 100 ppm a hop (some 0.15 bits,
    // 180 sat more in fees). At the model's price x's way is the plan by some 60 sat; weighed
    // double, y's by some 50.
    let g = channels(&[
        ("a", "x", 3_000_000, 10),
        ("x", "d", 3_000_000, 10),
        ("a", "y", 100_000_000, 100),
        ("y", "d", 100_000_000, 100),
    ]);
    let none = Exclusions::default();
    let req = plain(&g, "a", "d", 1_000_000 * SAT, &none);
    let beliefs = view(&g, &Liquidity::new());
    let mut scratch = FlowScratch::default();
    let via = |config: &FlowConfig, scratch: &mut FlowScratch| {
        let flow = solve_with(&g, &req, &beliefs, config, scratch).unwrap();
        check(&g, &req, &beliefs, &flow);
        assert_eq!(flow.parts.len(), 1, "{flow:?}");
        let first = flow.parts[0].edges[0];
        g.node_id(g.edge(first).destination).to_string()
    };
    assert_eq!(via(&default_config(), &mut scratch), "x");
    let urgent = urgent_config(&default_config());
    assert_eq!(urgent.risk_weights, [URGENT_RISK_WEIGHT, 1.0, 0.0]);
    assert_eq!(via(&urgent, &mut scratch), "y");
    // Weights past the most a weight counts are taken as it; the knobs are otherwise the same.
    let heavier = FlowConfig {
        risk_weights: vec![1e9],
        ..default_config()
    };
    assert_eq!(via(&heavier, &mut scratch), "y");
    assert_eq!(urgent.part_penalty_ppm, default_config().part_penalty_ppm);
    let replacement = urgent_config(&replacement_config());
    assert_eq!(replacement.part_penalty_ppm, 0);
    assert_eq!(replacement.risk_weights, urgent.risk_weights);
}

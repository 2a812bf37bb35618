//! [`Beliefs::hop_bits`]: a hop priced as risk turns the search to shorter routes.

use super::*;

#[test]
fn hop_bits_trade_a_little_fee_for_fewer_hops() {
    // 100k sat from a to d: two hops at 300 ppm each, or four at 100 ppm each (20 sat
    // cheaper in fees). Without a hop price the four-hop route wins; at 1 bit a hop (12 sat a
    // hop at this amount: 2 sat + 100 ppm a bit) the two-hop one does.
    let g = channels(&[
        ("a", "x", 1_000_000, 300),
        ("x", "d", 1_000_000, 300),
        ("a", "p", 1_000_000, 100),
        ("p", "q", 1_000_000, 100),
        ("q", "r", 1_000_000, 100),
        ("r", "d", 1_000_000, 100),
    ]);
    let none = Exclusions::default();
    let req = plain(&g, "a", "d", 100_000 * SAT, &none);
    let mut beliefs = view(&g, &Liquidity::new());
    let mut scratch = FlowScratch::default();
    let edges = |beliefs: &Beliefs, scratch: &mut FlowScratch| {
        let flow = solve(&g, &req, beliefs, scratch).unwrap();
        check(&g, &req, beliefs, &flow);
        assert_eq!(flow.parts.len(), 1, "{flow:?}");
        flow.parts[0].edges.len()
    };
    assert_eq!(edges(&beliefs, &mut scratch), 4);
    assert_eq!(single_search(&g, &req, &beliefs).unwrap().edges.len(), 4);
    beliefs.hop_bits = 1.0;
    assert_eq!(edges(&beliefs, &mut scratch), 2);
    assert_eq!(single_search(&g, &req, &beliefs).unwrap().edges.len(), 2);
    // The estimate is the model's, whatever the search paid for hops.
    let x = g
        .edge_by_scid(Scid(1 << 40), 0)
        .or(g.edge_by_scid(Scid(1 << 40), 1))
        .unwrap();
    let a = g.node_idx("a").unwrap();
    let with = beliefs.probability(&g, x, a, 100_000 * SAT);
    beliefs.hop_bits = 0.0;
    assert_eq!(with, beliefs.probability(&g, x, a, 100_000 * SAT));
}

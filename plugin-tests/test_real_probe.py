"""`rebalance-probe` on real lightningd (issue 23): the most that can move around a ring whose
middle channel is drained to a known amount, found with probes that can never be paid, and
`rebalance ... amount_msat=max` moving what it finds.

Ring l1 -> l2 -> l3 -> l4 -> l1 (1M sat each, every channel on its opener's side); l2 pays l3
until its side of l2 -> l3 holds about 300k sat: that is the ring's bottleneck (gossip says
1M sat). The bottleneck is lightningd's own figure: l2's `spendable_msat` on that channel.
See realnet.py for how the suite skips without lightningd.
"""

import pytest

pytest.register_assert_rewrite("realnet")
import realnet  # noqa: E402
from realnet import (  # noqa: E402
    chan, check_complete, push, scid_between, sendpays, snapshot, wait_graph, wait_settled,
)

pytestmark = realnet.requires_lightningd
if realnet.SKIP_REASON is None:
    from pyln.testing.fixtures import *  # noqa: F401,F403  (node_factory, bitcoind, ...)

pytest_plugins = ["realnet"]

SAT = 1000  # msat
BOTTLENECK_SAT = 300_000
DUST_LIMIT_SAT = 546  # lightningd's dust limit: an HTLC below it adds no commitment output


def cap_of(amount, maxfeeppm=1000, exemptfee=5000):
    return max(exemptfee, amount * maxfeeppm // 10**6)


def probe(node, params):
    return node.rpc.call("rebalance-probe", params)


def nothing_left(node, nodes, before, pays_before, invoices_before):
    """A probe left nothing: every node's balances as before, no HTLC anywhere, no new
    invoice, no sendpay of ours that succeeded or is still pending."""
    wait_settled(*nodes)
    for n in nodes:
        assert snapshot(n) == before[n], "{} moved".format(n.info["id"][:8])
    assert node.rpc.listinvoices()["invoices"] == invoices_before
    old = {(p["payment_hash"], p.get("groupid"), p.get("partid")) for p in pays_before}
    new = [p for p in sendpays(node) if (p["payment_hash"], p.get("groupid"), p.get("partid")) not in old]
    assert new, "no probe was sent"
    assert all(p["status"] == "failed" for p in new), new
    return new


def test_probe_finds_the_bottleneck_and_max_moves_it(node_factory):
    plugin = str(realnet.plugin_binary())
    nodes = node_factory.get_nodes(4, opts=[{"plugin": plugin}, {}, {}, {}])
    l1, l2, l3, l4 = nodes
    node_factory.join_nodes([l1, l2, l3, l4, l1], wait_for_announce=True)
    out_scid, mid, in_scid = scid_between(l1, l2), scid_between(l2, l3), scid_between(l1, l4)
    wait_graph(l1, 4)
    push(l2, l3, int(chan(l2, mid)["spendable_msat"]) - BOTTLENECK_SAT * SAT)
    wait_settled(*nodes)
    bottleneck = int(chan(l2, mid)["spendable_msat"])
    assert abs(bottleneck - BOTTLENECK_SAT * SAT) < 10_000 * SAT, bottleneck
    # Nothing else on the ring is as tight.
    for n, s in ((l1, out_scid), (l3, scid_between(l3, l4)), (l4, in_scid)):
        assert int(chan(n, s)["spendable_msat"]) > 2 * bottleneck

    before = {n: snapshot(n) for n in nodes}
    pays_before = sendpays(l1)
    invoices_before = l1.rpc.listinvoices()["invoices"]

    # The most that can move: within 5% below the bottleneck, never above.
    r = probe(l1, {"outgoing": out_scid, "incoming": in_scid})
    found = int(r["max_msat"])
    assert found <= bottleneck, (found, bottleneck, r)
    assert found >= bottleneck * 95 // 100, (found, bottleneck, r)
    assert r["outgoing_scid"] == out_scid and r["incoming_scid"] == in_scid, r
    assert [h["node_id"] for h in r["route"]] == [n.info["id"] for n in (l2, l3, l4, l1)], r
    assert 0 < int(r["fee_msat"]) <= cap_of(found), r
    assert 1 <= r["probes"] <= 20 and r["probes_reached_us"] >= 1, r
    assert r["message"].endswith("nothing paid"), r
    print("probe: bottleneck {} msat, found {} msat ({:.2f}%) in {} probes, {} ms".format(
        bottleneck, found, 100 * found / bottleneck, r["probes"], r["duration_ms"]))
    probes = nothing_left(l1, nodes, before, pays_before, invoices_before)
    assert len(probes) == r["probes"], (len(probes), r)

    # With an amount: what it found can move; 20% over the bottleneck cannot.
    pays_before = sendpays(l1)
    ok = probe(l1, {"outgoing": out_scid, "incoming": in_scid, "amount_msat": found})
    assert ok["feasible"] is True and int(ok["amount_msat"]) == found, ok
    no = probe(l1, {"outgoing": out_scid, "incoming": in_scid, "amount_msat": bottleneck * 6 // 5})
    assert no["feasible"] is False, no
    assert "nothing paid" in no["message"], no
    nothing_left(l1, nodes, before, pays_before, invoices_before)

    # amount_msat=max moves what a probe finds: really, and within the same bounds.
    r = l1.rpc.call("rebalance", {"outgoing": out_scid, "incoming": in_scid, "amount_msat": "max"})
    moved = int(r["amount_msat"])
    assert bottleneck * 95 // 100 <= moved <= bottleneck, (moved, bottleneck, r)
    check_complete(l1, r, before[l1], out_scid, in_scid, moved, cap=cap_of(moved))
    print("amount_msat=max: moved {} msat ({:.2f}% of the bottleneck) for {} msat".format(
        moved, 100 * moved / bottleneck, r["fee_msat"]))
    wait_settled(*nodes)
    # The channel is drained now: what is left on l2's side bounds the next answer.
    left = int(chan(l2, mid)["spendable_msat"])
    assert left < bottleneck * 5 // 100, left
    before = {n: snapshot(n) for n in nodes}
    pays_before = sendpays(l1)
    invoices_before = l1.rpc.listinvoices()["invoices"]
    r = probe(l1, {"outgoing": out_scid, "incoming": in_scid})
    rest = int(r["max_msat"])
    # spendable_msat holds back the commitment fee of one more HTLC output; an HTLC under the
    # dust limit (546 sat) adds none, so there a probe may prove a little more than it says.
    assert rest <= max(left, DUST_LIMIT_SAT * SAT), (r, left)
    wait_settled(*nodes)
    for n in nodes:
        assert snapshot(n) == before[n]
    assert l1.rpc.listinvoices()["invoices"] == invoices_before
    assert all(p["status"] == "failed" for p in sendpays(l1) if p not in pays_before)
    if rest > left:
        # Proven past what spendable_msat says: it must really move.
        moved = l1.rpc.call("rebalance", {"outgoing": out_scid, "incoming": in_scid,
                                          "amount_msat": rest})
        assert moved["status"] == "complete" and int(moved["amount_msat"]) == rest, moved
        wait_settled(*nodes)


def test_probe_proves_several_htlcs_worth_over_one_path(node_factory):
    """Ring l1 -> l2 -> l3 -> l1 (1M sat each); l3 forwards at most 200k sat an HTLC to us, so
    a rebalance with maxparts=4 moves at most 4 x 200k sat in its 4 parts, all over the one path. One probe
    carrying the parts together asks l3 for more than it forwards: it fails at l3, having
    proven every hop before, so the answer reaches the 800k sat the parts can carry, where
    parts probed one after another would each prove only their own 200k sat."""
    most = 200_000 * SAT
    nodes, out_scid, in_scid = realnet.ring_with_htlcmax(node_factory, most)
    l1, l2, l3 = nodes
    # Every channel holds far more than the four parts: 4 x 200k sat is the most.
    for n, s in ((l1, out_scid), (l2, scid_between(l2, l3))):
        assert int(chan(n, s)["spendable_msat"]) > 900_000 * SAT
    before = {n: snapshot(n) for n in nodes}
    pays_before = sendpays(l1)
    invoices_before = l1.rpc.listinvoices()["invoices"]

    r = probe(l1, {"outgoing": out_scid, "incoming": in_scid, "maxparts": 4})
    found = int(r["max_msat"])
    assert 4 * most * 95 // 100 <= found <= 4 * most, r
    assert len(r["parts"]) == 4 and all(int(p["amount_msat"]) <= most for p in r["parts"]), r
    probes = nothing_left(l1, nodes, before, pays_before, invoices_before)
    # One probe asked l3 for more than one HTLC's worth, and failed at l3 (not at us).
    together = [p for p in probes if int(p["amount_msat"]) > most]
    assert together, probes
    print("probe past l3's htlc maximum: found {} msat in {} probes ({} carrying several parts)".format(
        found, r["probes"], len(together)))


def test_probe_proves_what_parts_put_on_a_shared_channel(node_factory):
    """l1 -> l2 -> l3, then two ways l3 -> l4 -> l6 and l3 -> l5 -> l6, and l6 -> l1 (1M sat
    each, on the opener's side); l4 and l5 push all but 300k sat of their channels to l6, so
    500k sat needs both ways: two parts that share l2 -> l3. Each part's probe proves its own
    amount there; one more probe carries both parts' worth to l3, where they fork, and l3
    (knowing no such payment) fails it at once: that proves l2 -> l3 carries the sum, and the
    amount is feasible."""
    plugin = str(realnet.plugin_binary())
    nodes = node_factory.get_nodes(6, opts=[{"plugin": plugin}, {}, {}, {}, {}, {}])
    l1, l2, l3, l4, l5, l6 = nodes
    node_factory.join_nodes([l1, l2, l3, l4, l6, l1])
    node_factory.join_nodes([l3, l5, l6])
    l1.bitcoin.generate_block(5)
    wait_graph(l1, 7)
    out_scid, in_scid = scid_between(l1, l2), scid_between(l1, l6)
    for n in (l4, l5):
        s = scid_between(n, l6)
        push(n, l6, int(chan(n, s)["spendable_msat"]) - 300_000 * SAT)
    wait_settled(*nodes)
    before = {n: snapshot(n) for n in nodes}
    pays_before = sendpays(l1)
    invoices_before = l1.rpc.listinvoices()["invoices"]

    amount = 500_000 * SAT
    r = probe(l1, {"outgoing": out_scid, "incoming": in_scid, "amount_msat": amount})
    assert r["feasible"] is True, r
    assert len(r["parts"]) == 2, r
    probes = nothing_left(l1, nodes, before, pays_before, invoices_before)
    fork = [p for p in probes if p["destination"] == l3.info["id"]]
    assert len(fork) == 1 and int(fork[0]["amount_msat"]) >= amount, probes
    print("probe to the fork at l3: {} msat; {} probes in all".format(
        fork[0]["amount_msat"], len(probes)))


def test_probe_counts_parallel_channels_as_one(node_factory):
    """l1 -> l2, two channels l2 -> l3 at the same fees (A: l2 keeps 700k sat; B: l2 pushed
    900k sat of it to l3 at the open), two ways l3 -> l4 -> l6 and l3 -> l5 -> l6 holding
    600k sat each, and l6 -> l1. lightningd forwards non-strictly: l2 sends a part asked of B
    over A, the fuller. Each of two 600k-sat parts, one asked of A and one of B, reaches l1
    alone, so they were once both counted as proven (1.2M sat); together they need more than
    A and B hold. The answer stays within what the two channels hold, and it really moves."""
    plugin = str(realnet.plugin_binary())
    nodes = node_factory.get_nodes(6, opts=[{"plugin": plugin}, {}, {}, {}, {}, {}])
    l1, l2, l3, l4, l5, l6 = nodes
    node_factory.join_nodes([l1, l2, l3, l4, l6, l1])
    node_factory.join_nodes([l3, l5, l6])
    a = scid_between(l2, l3)
    push(l2, l3, int(chan(l2, a)["spendable_msat"]) - 700_000 * SAT)
    for n in (l4, l5):
        s = scid_between(n, l6)
        push(n, l6, int(chan(n, s)["spendable_msat"]) - 600_000 * SAT)
    l2.fundwallet(2_000_000)
    l2.rpc.fundchannel(l3.info["id"], 1_000_000, push_msat=900_000 * SAT)
    l1.bitcoin.generate_block(6)
    wait_graph(l1, 8)
    both = l2.rpc.listpeerchannels(l3.info["id"])["channels"]
    assert len(both) == 2, both
    held = sum(int(c["spendable_msat"]) for c in both)
    assert 650_000 * SAT < held < 1_000_000 * SAT, both
    out_scid, in_scid = scid_between(l1, l2), scid_between(l1, l6)
    wait_settled(*nodes)
    before = {n: snapshot(n) for n in nodes}
    pays_before = sendpays(l1)
    invoices_before = l1.rpc.listinvoices()["invoices"]

    r = probe(l1, {"outgoing": out_scid, "incoming": in_scid})
    found = int(r["max_msat"])
    assert 300_000 * SAT <= found <= held, (found, held, r)
    nothing_left(l1, nodes, before, pays_before, invoices_before)
    print("parallel l2 -> l3 holding {} msat: found {} msat in {} probes".format(
        held, found, r["probes"]))

    moved = l1.rpc.call("rebalance", {"outgoing": out_scid, "incoming": in_scid,
                                      "amount_msat": found})
    assert moved["status"] == "complete" and int(moved["amount_msat"]) == found, moved
    wait_settled(*nodes)

"""The node's payments and rebalancing learning from each other through askrene, on real
lightningd v26.06 with xpay: after an xpay payment fails over a drained channel,
`rebalance-liquidity` shows that channel's learned bound and a rebalance goes around it at once;
after a rebalance that hit the drained channel, `askrene-listlayers cln-rebalance` lists it, and
a payment with `xpay-user-layer=cln-rebalance` goes around it without failing there. See
realnet.py for how the suite skips without lightningd."""

import pytest

pytest.register_assert_rewrite("realnet")
import realnet  # noqa: E402
from realnet import (  # noqa: E402
    chan, check_complete, push, scid_between, snapshot, wait_graph, wait_policy, wait_settled,
    wait_until,
)

pytestmark = realnet.requires_lightningd
if realnet.SKIP_REASON is None:
    from pyln.testing.fixtures import *  # noqa: F401,F403  (node_factory, bitcoind, ...)

pytest_plugins = ["realnet"]

SAT = 1000
REBALANCE = 300_000 * SAT
PAYMENT = 310_000 * SAT  # more than the rebalance found the drained channel could carry


def ring(node_factory, l1_opts):
    """l1 -> l2 -> {l3 | l4} -> l5 -> l1, the l3 way cheaper and l2 -> l3 drained: returns the
    nodes and the scids (out, in, s23, s24) and l2's direction on s23."""
    opts = dict(plugin=str(realnet.plugin_binary()), **l1_opts)
    nodes = node_factory.get_nodes(5, opts=[opts, {}, {}, {}, {}])
    l1, l2, l3, l4, l5 = nodes
    node_factory.join_nodes([l1, l2, l3, l5, l1])
    node_factory.join_nodes([l2, l4, l5])
    l1.bitcoin.generate_block(5)
    s23, s24, s45 = scid_between(l2, l3), scid_between(l2, l4), scid_between(l4, l5)
    wait_graph(l1, 6)
    l4.rpc.setchannel(l5.info["id"], feebase=100, feeppm=50)
    wait_policy(l1, s45, l4.info["id"], 100, 50)
    push(l2, l3, int(chan(l2, s23)["spendable_msat"]) - 10_000 * SAT)
    d23 = [c for c in l1.rpc.listchannels(s23)["channels"]
           if c["source"] == l2.info["id"]][0]["direction"]
    return nodes, (scid_between(l1, l2), scid_between(l1, l5), s23, s24), f"{s23}/{d23}"


def constraints(node, layer, scidd):
    got = node.rpc.call("askrene-listlayers", {"layer": layer})["layers"][0]["constraints"]
    return [c for c in got if c["short_channel_id_dir"] == scidd]


def learned_max(node, scidd):
    scid, d = scidd.split("/")
    chans = node.rpc.call("rebalance-liquidity", {"short_channel_id": scid})["channels"]
    c = [c for c in chans if c["direction"] == int(d)][0]
    return c.get("learned_max_msat")


def test_a_failed_payment_teaches_the_rebalancer(node_factory):
    nodes, (out_scid, in_scid, s23, s24), drained = ring(node_factory, {})
    l1, l5 = nodes[0], nodes[4]
    inv = l5.rpc.invoice(PAYMENT, "xpay-1", "over the drained channel first")["bolt11"]
    paid = l1.rpc.call("xpay", {"invstring": inv})
    assert paid["failed_parts"] >= 1, paid
    wait_settled(*nodes)
    told = constraints(l1, "xpay", drained)
    assert told and all("maximum_msat" in c for c in told), told
    # rebalance-liquidity reads xpay's layer first: the bound is the tightest xpay recorded.
    assert learned_max(l1, drained) == min(int(c["maximum_msat"]) for c in told)
    before = snapshot(l1)
    r = l1.rpc.call("rebalance", {"outgoing": out_scid, "incoming": in_scid,
                                  "amount_msat": REBALANCE})
    check_complete(l1, r, before, out_scid, in_scid, REBALANCE)
    assert r["attempts"] == 1, r
    assert s23 not in [h["short_channel_id"] for h in r["route"]], r


def test_a_rebalance_teaches_the_payments(node_factory):
    v = realnet.lightningd_version()
    if v is not None and v < (26, 6):
        pytest.skip("xpay-user-layer is new in lightningd v26.06; this one is v{}.{:02}".format(*v))
    nodes, (out_scid, in_scid, s23, s24), drained = ring(
        node_factory, {"xpay-user-layer": "cln-rebalance"})
    l1, l5 = nodes[0], nodes[4]
    wait_until(lambda: l1.daemon.is_in_log("publishing what rebalancing learns into askrene "
                                           "layer cln-rebalance"), what="our layer made")
    before = snapshot(l1)
    r = l1.rpc.call("rebalance", {"outgoing": out_scid, "incoming": in_scid,
                                  "amount_msat": REBALANCE})
    check_complete(l1, r, before, out_scid, in_scid, REBALANCE)
    # The drained channel found by a failed attempt, or by a probe before paying.
    assert r["attempts"] + r["probes"] >= 2, r
    wait_settled(*nodes)
    ours = constraints(l1, "cln-rebalance", drained)
    assert len(ours) == 1, ours
    assert int(ours[0]["maximum_msat"]) == learned_max(l1, drained)
    mine = {scid_between(l1, n) for n in (nodes[1], l5)}
    everything = l1.rpc.call("askrene-listlayers", {"layer": "cln-rebalance"})["layers"][0]
    assert not [c for c in everything["constraints"]
                if c["short_channel_id_dir"].split("/")[0] in mine], everything
    # xpay routes over our layer too: the payment goes around the drained channel at once.
    inv = l5.rpc.invoice(PAYMENT, "xpay-2", "around the drained channel")["bolt11"]
    paid = l1.rpc.call("xpay", {"invstring": inv})
    assert paid["failed_parts"] == 0, paid
    assert constraints(l1, "xpay", drained) == []

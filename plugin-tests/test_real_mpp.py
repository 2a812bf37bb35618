"""Multi-part rebalances on real lightningd (issue 22): an amount no single route can carry,
paid in parts over two disjoint paths; parts coming back over another channel than the
incoming one refused as a whole, fee-free; the plugin SIGKILLed while its parts are held.

The topology (every test builds it): our outgoing channel l1 -> l2 (1M sat), two disjoint
paths l2 -> l3 -> l5 and l2 -> l4 -> l5 of 300k-sat channels (each carries less than the
400k sat asked), and our incoming channel l5 -> l1 (1M sat). See realnet.py for how the suite
skips without lightningd.
"""

import math
import os

import pytest

pytest.register_assert_rewrite("realnet")
import realnet  # noqa: E402
from realnet import (  # noqa: E402
    chan, rebalance_invoices, scid_between, sendpays, snapshot, wait_graph, wait_settled,
    wait_until,
)

pytestmark = realnet.requires_lightningd
if realnet.SKIP_REASON is None:
    from pyln.testing.fixtures import *  # noqa: F401,F403  (node_factory, bitcoind, ...)
    # The faults suite's hold plugin, plugin SIGKILL/start and history decoder.
    from test_real_faults import (  # noqa: E402
        NO_RECONNECT, PLUGIN_TERMINATED, Call, Holder, history_records, kill_plugin, logged,
        start_plugin, stop_plugin,
    )

pytest_plugins = ["realnet"]

SAT = 1000  # msat
PATH_SAT = 300_000      # each middle channel: less than AMOUNT
AMOUNT = 400_000 * SAT  # more than either path carries, less than both together


def cap_of(amount, maxfeeppm=1000, exemptfee=5000):
    return max(exemptfee, amount * maxfeeppm // 10**6)


def two_paths(node_factory, opts):
    """l1 -> l2 -> {l3 | l4} -> l5 -> l1, middle channels of PATH_SAT; returns the nodes and
    (outgoing, incoming) of l1."""
    nodes = node_factory.get_nodes(5, opts=opts)
    l1, l2, l3, l4, l5 = nodes
    node_factory.join_nodes([l1, l2])
    node_factory.join_nodes([l2, l3, l5], fundamount=PATH_SAT)
    node_factory.join_nodes([l2, l4, l5], fundamount=PATH_SAT)
    node_factory.join_nodes([l5, l1])
    return nodes, scid_between(l1, l2), scid_between(l1, l5)


def announce(nodes, nchannels):
    nodes[0].bitcoin.generate_block(5)
    wait_graph(nodes[0], nchannels)


def check_part_math(node, part, me):
    """One part's route is consistent hop by hop with the gossip fee policies (fees rounded
    up, delays added) and ends at us; returns its fee."""
    route = part["route"]
    assert len(route) == part["hops"] and route[-1]["node_id"] == me
    assert int(route[-1]["amount_msat"]) == int(part["amount_msat"])
    for i in range(len(route) - 1, 0, -1):
        hop, prev = route[i], route[i - 1]
        pol = realnet.policy(node, hop["short_channel_id"], prev["node_id"])
        assert pol["destination"] == hop["node_id"]
        amt = int(hop["amount_msat"])
        fee = int(pol["base_fee_millisatoshi"]) + math.ceil(amt * int(pol["fee_per_millionth"]) / 10**6)
        assert int(prev["amount_msat"]) == amt + fee, (i, prev, hop)
        assert int(prev["delay"]) == int(hop["delay"]) + int(pol["delay"]), (i, prev, hop)
    fee = int(route[0]["amount_msat"]) - int(part["amount_msat"])
    assert int(part["fee_msat"]) == fee, part
    return fee


def check_paid_in_parts(node, res, before, out_scid, in_scid, amount, middles):
    """A rebalance paid in 2+ parts: the parts sum to the amount and their fees to the fee,
    within the cap; each goes out on the outgoing channel, back on the incoming one, over its
    own middle channel; lightningd has a complete sendpay per part; the balances moved by
    exactly amount (+fee); nothing is left."""
    me = node.info["id"]
    assert res["status"] == "complete", res
    parts = res.get("parts", [])
    assert len(parts) >= 2, "paid in one part: {}".format(res)
    assert sum(int(p["amount_msat"]) for p in parts) == amount == int(res["amount_msat"])
    fee = sum(check_part_math(node, p, me) for p in parts)
    assert fee == int(res["fee_msat"]) and fee <= cap_of(amount), (fee, res)
    for p in parts:
        scids = [h["short_channel_id"] for h in p["route"]]
        assert scids[0] == out_scid and scids[-1] == in_scid, p
        # Neither path alone carries the amount: no part does.
        assert int(p["amount_msat"]) < PATH_SAT * SAT, p
    used = {h["short_channel_id"] for p in parts for h in p["route"]}
    assert set(middles) <= used, (middles, parts)
    # lightningd's own records of the parts: one complete sendpay per part, same group.
    pays = [p for p in sendpays(node) if p["payment_hash"] == res["payment_hash"]]
    done = [p for p in pays if p["status"] == "complete"]
    assert len(done) == len(parts) and len({p["groupid"] for p in done}) == 1, pays
    assert sum(int(p["amount_msat"]) for p in done) == amount, done
    assert sum(int(p["amount_sent_msat"]) for p in done) == amount + fee, done
    assert not any(p["status"] == "pending" for p in pays), pays
    wait_settled(node)
    wait_until(lambda: snapshot(node)[out_scid] == before[out_scid] - amount - fee, 30, "outgoing balance")
    after = snapshot(node)
    assert after[in_scid] == before[in_scid] + amount, (before, after)
    assert {s: v for s, v in after.items() if s not in (out_scid, in_scid)} == \
        {s: v for s, v in before.items() if s not in (out_scid, in_scid)}
    realnet.assert_no_unpaid_rebalance_invoice(node)
    return fee


def test_two_routes_neither_alone_carries_it(node_factory):
    """400k sat over two 300k-sat paths: the dry run plans parts, the rebalance pays them,
    and the result lists them. Before that, a second (smaller) channel l5 -> l1 is asked as
    incoming: l5 forwards every part over the bigger one (lightningd's non-strict forwarding),
    and the plugin refuses the whole set: nothing moves, no fee is paid anywhere."""
    plugin = str(realnet.plugin_binary())
    nodes, out_scid, big = two_paths(node_factory, [{"plugin": plugin}, {}, {}, {}, {}])
    l1, l2, l3, l4, l5 = nodes
    small, _ = l5.fundchannel(l1, 500_000, minconf=0)
    announce(nodes, 7)
    middles = [scid_between(l2, l3), scid_between(l2, l4)]
    for m in middles:
        assert int(chan(l2, m)["spendable_msat"]) < AMOUNT

    # One part cannot carry it: maxparts=1 finds no route.
    e = realnet.rpc_error(l1.rpc.call, "rebalance", {"outgoing": out_scid, "incoming": big,
                                                     "amount_msat": AMOUNT, "maxparts": 1, "dryrun": True})
    assert e["code"] == 205, e
    q = l1.rpc.call("rebalance", {"outgoing": out_scid, "incoming": big, "amount_msat": AMOUNT,
                                  "dryrun": True})
    assert q["status"] == "dryrun" and len(q["parts"]) >= 2, q
    assert sum(int(p["amount_msat"]) for p in q["parts"]) == AMOUNT, q

    # Into the small channel: every part comes back over the big one; refused as a set.
    before = {n: snapshot(n) for n in nodes}
    pays_before = sendpays(l1)
    e = realnet.rpc_error(l1.rpc.call, "rebalance", {"outgoing": out_scid, "incoming": small,
                                                     "amount_msat": AMOUNT, "retry_for": 30})
    assert e["code"] == 210, e
    assert e["data"]["arrived_on"] == big, e
    assert big in e["message"] and small in e["message"], e
    wait_settled(*nodes)
    for n in nodes:
        assert snapshot(n) == before[n], "{} moved".format(n.info["id"][:8])
    realnet.check_nothing_paid(l1, before[l1], pays_before, others=nodes[1:])
    assert not [i for i in rebalance_invoices(l1) if i["status"] == "paid"]
    refused = [p for p in sendpays(l1) if p not in pays_before and p.get("label") != realnet.PROBE_LABEL]
    assert len({(p["payment_hash"], p["partid"]) for p in refused}) >= 2, refused
    assert l1.daemon.is_in_log(r"refusing payment for rebalance-.*: it arrived on {}, not on incoming "
                               r"channel {}".format(big, small))

    # Into the big one: paid in parts, over both paths.
    before = snapshot(l1)
    r = l1.rpc.call("rebalance", {"outgoing": out_scid, "incoming": big, "amount_msat": AMOUNT})
    fee = check_paid_in_parts(l1, r, before, out_scid, big, AMOUNT, middles)
    assert r["message"].endswith("{} parts".format(len(r["parts"]))), r
    # The report has it once, with its fee.
    rep = l1.rpc.call("rebalancereport")
    assert rep["total_successful_rebalances"] == 1 and rep["total_rebalance_fee_msat"] == fee, rep
    wait_settled(*nodes)
    for n in nodes[1:]:
        assert not any(p["status"] == "pending" for p in sendpays(n))


def held_hashes(node):
    """Payment hash -> how many HTLCs the hold plugin of `node` has held for it so far."""
    node.daemon.logs_catchup()
    out = {}
    for line in node.daemon.logs:
        if "holding HTLC " in line:
            h = line.split("holding HTLC ")[1].strip()[:64]
            out[h] = out.get(h, 0) + 1
    return out


def test_plugin_killed_while_parts_are_held(node_factory, directory):
    """l5 holds every part before our incoming channel while the plugin is SIGKILLed.
    (a) The plugin is started again before the parts are let go: it deletes its stale invoice,
        the parts reach l1, find no invoice and fail back: nothing paid.
    (b) The parts are let go while the plugin is down: lightningd settles the invoice by itself;
        started again, the plugin records that rebalance once (with every part's fee), and
        twice more restarted, never again. Nothing is paid twice, nothing is left."""
    plugin = str(realnet.plugin_binary())
    holder = Holder(os.path.join(directory, "hold-plugin"))
    opts = [dict(NO_RECONNECT, plugin=plugin, **realnet.PAY_AT_ONCE), dict(NO_RECONNECT),
            dict(NO_RECONNECT), dict(NO_RECONNECT), dict(NO_RECONNECT, plugin=str(holder.plugin))]
    nodes, out_scid, in_scid = two_paths(node_factory, opts)
    l1, l2, l3, l4, l5 = nodes
    holder.node = l5
    announce(nodes, 6)
    params = {"outgoing": out_scid, "incoming": in_scid, "amount_msat": AMOUNT, "retry_for": 60}

    def start_held():
        seen = set(held_hashes(l5))
        holder.hold()
        call = Call(l1, "rebalance", params)
        # Every part of the set is held at l5 (none can reach us alone).
        held = wait_until(lambda: next((h for h, n in held_hashes(l5).items() if h not in seen and n >= 2), None),
                          30, "two parts of a new rebalance held at l5")
        assert len([p for p in sendpays(l1) if p["payment_hash"] == held and p["status"] == "pending"]) >= 2
        return call, held

    # (a) restarted before the release.
    before = {n: snapshot(n) for n in nodes}
    pays_before = sendpays(l1)
    call, held = start_held()
    kill_plugin(l1)
    kind, err = call.outcome()
    assert kind == "error" and err["code"] == PLUGIN_TERMINATED, (kind, err)
    start_plugin(l1)
    assert not [i for i in rebalance_invoices(l1) if i["payment_hash"] == held], "stale invoice kept"
    holder.release()
    wait_settled(*nodes)
    for n in nodes:
        assert snapshot(n) == before[n], "{} moved".format(n.info["id"][:8])
    realnet.check_nothing_paid(l1, before[l1], pays_before, others=nodes[1:])
    assert {p["status"] for p in sendpays(l1) if p["payment_hash"] == held} == {"failed"}
    assert [r for r in history_records(l1) if r["complete"]] == []

    # (b) released while the plugin is down.
    call, held = start_held()
    kill_plugin(l1)
    assert call.outcome()[1]["code"] == PLUGIN_TERMINATED
    holder.release()
    wait_settled(*nodes)
    assert [i["status"] for i in rebalance_invoices(l1) if i["payment_hash"] == held] == ["paid"]
    done = [p for p in sendpays(l1) if p["payment_hash"] == held and p["status"] == "complete"]
    assert len(done) >= 2, done
    fee = sum(int(p["amount_sent_msat"]) - int(p["amount_msat"]) for p in done)
    assert sum(int(p["amount_msat"]) for p in done) == AMOUNT
    assert 0 < fee <= cap_of(AMOUNT)
    after = snapshot(l1)
    assert after[out_scid] == before[l1][out_scid] - AMOUNT - fee
    assert after[in_scid] == before[l1][in_scid] + AMOUNT
    start_plugin(l1)
    logged(l1, "history: recorded 1 rebalance")
    for _ in range(3):
        recs = [r for r in history_records(l1) if r["complete"]]
        assert [(r["payment_hash"], r["amount_msat"], r["fee_msat"]) for r in recs] == [(held, AMOUNT, fee)], recs
        rep = wait_until(lambda: (lambda r: r if r["total_successful_rebalances"] == 1 else None)(
            l1.rpc.call("rebalancereport")), 30, "the report to count it")
        assert rep["total_rebalance_fee_msat"] == fee, rep
        stop_plugin(l1)
        start_plugin(l1)
    # Nothing paid twice: one paid invoice, one group of complete parts, balances as after (b).
    assert snapshot(l1) == after
    assert len([p for p in sendpays(l1) if p["status"] == "complete"]) == len(done)
    realnet.assert_no_unpaid_rebalance_invoice(l1)
    wait_settled(*nodes)
    for n in nodes:
        assert not any(p["status"] == "pending" for p in sendpays(n))


def test_parts_carry_more_than_the_incoming_peers_htlc_maximum(node_factory):
    """Ring l1 -> l2 -> l3 -> l1 (1M sat each); l3 forwards at most 200k sat an HTLC to us
    (`setchannel ... htlcmax`). One route is one HTLC: 500k sat with maxparts=1 is refused up
    front naming amount_msat, nothing sent; in parts (the default) it moves, every part within
    200k sat, and l3 forwarded each."""
    most = 200_000 * SAT
    nodes, out_scid, in_scid = realnet.ring_with_htlcmax(node_factory, most)
    l1 = nodes[0]
    amount = 500_000 * SAT

    pays_before = sendpays(l1)
    e = realnet.rpc_error(l1.rpc.call, "rebalance", {"outgoing": out_scid, "incoming": in_scid,
                                                     "amount_msat": amount, "maxparts": 1})
    assert e["code"] == -32602 and "amount_msat" in e["message"], e
    assert str(most) in e["message"], e
    assert sendpays(l1) == pays_before

    before = snapshot(l1)
    r = l1.rpc.call("rebalance", {"outgoing": out_scid, "incoming": in_scid, "amount_msat": amount})
    assert r["status"] == "complete", r
    parts = r["parts"]
    assert len(parts) >= 3 and all(int(p["amount_msat"]) <= most for p in parts), r
    assert sum(int(p["amount_msat"]) for p in parts) == amount, r
    fee = sum(check_part_math(l1, p, l1.info["id"]) for p in parts)
    assert fee == int(r["fee_msat"]) <= cap_of(amount), r
    done = [p for p in sendpays(l1) if p["payment_hash"] == r["payment_hash"] and p["status"] == "complete"]
    assert len(done) == len(parts), done
    wait_settled(*nodes)
    wait_until(lambda: snapshot(l1)[in_scid] == before[in_scid] + amount, 30, "incoming balance")
    assert snapshot(l1)[out_scid] == before[out_scid] - amount - fee
    realnet.assert_no_unpaid_rebalance_invoice(l1)

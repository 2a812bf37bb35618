"""cln-rebalance inside real lightningd (pyln-testing, regtest): circular rebalances over real
channels, with real HTLCs, checked against lightningd's own view of the channels.

One test per topology (setting up nodes and channels is what costs time); each test runs every
check that topology can stage. See realnet.py for how the suite skips without lightningd.
"""

import json
import os
import shutil
import subprocess
import time

import pytest

pytest.register_assert_rewrite("realnet")
import realnet  # noqa: E402
from realnet import (  # noqa: E402
    UNKNOWN_NODE_ID, UNKNOWN_SCID, assert_no_unpaid_rebalance_invoice, chan, channels,
    check_complete, check_nothing_paid, push, rebalance_invoices, rpc_error, scid_between,
    sendpays, snapshot, to_us, wait_graph, wait_settled, wait_until,
)

pytestmark = realnet.requires_lightningd
if realnet.SKIP_REASON is None:
    from pyln.testing.fixtures import *  # noqa: F401,F403  (node_factory, bitcoind, ...)

pytest_plugins = ["realnet"]

SAT = 1000  # msat


def cap_of(amount, maxfeeppm=1000, exemptfee=5000):
    return max(exemptfee, amount * maxfeeppm // 10**6)


def cli(node, *args):
    """Run the real lightning-cli against `node`; returns parsed JSON (or raw text for -H)."""
    exe = shutil.which("lightning-cli")
    if exe is None:
        return None
    out = subprocess.run(
        [exe, "--lightning-dir={}".format(node.daemon.lightning_dir), "--network=regtest"] + list(args),
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, (args, out.returncode, out.stdout, out.stderr)
    if "-H" in args:
        return out.stdout
    # lightning-cli prints the plugin's progress notifications first (`# ...` lines, a bar).
    answer = [ln for ln in out.stdout.splitlines() if not ln.lstrip("\r").startswith("#")]
    return json.loads("\n".join(answer))


def check_balances(node):
    """`balances` agrees field by field with listpeerchannels, and its totals add up."""
    b = node.rpc.balances()
    lpc = {c["short_channel_id"]: c for c in channels(node) if "short_channel_id" in c}
    assert sorted(c["short_channel_id"] for c in b["channels"]) == sorted(lpc)
    for row in b["channels"]:
        c = lpc[row["short_channel_id"]]
        for k in ("peer_id", "state", "peer_connected", "private"):
            assert row[k] == c[k], (k, row, c)
        for k in ("to_us_msat", "total_msat", "spendable_msat", "receivable_msat"):
            assert int(row[k]) == int(c[k]), (k, row, c)
        pct = 100.0 * int(c["to_us_msat"]) / int(c["total_msat"])
        assert abs(float(row["our_percent"]) - pct) < 0.1, row
        assert isinstance(row["bar"], str) and row["bar"]
        aliases = [n.get("alias") for n in node.rpc.listnodes(c["peer_id"])["nodes"]]
        if aliases and aliases[0]:
            assert row["alias"] == aliases[0]
    t = b["totals"]
    assert t["channels"] == len(lpc)
    for k in ("to_us_msat", "total_msat", "spendable_msat", "receivable_msat"):
        assert int(t[k]) == sum(int(c[k]) for c in lpc.values()), k
    for row in b["channels"]:
        c = lpc[row["short_channel_id"]]
        for k in ("our_reserve_msat", "their_reserve_msat"):
            assert int(row[k]) == int(c[k]), (k, row, c)
        local, remote = c["updates"]["local"], c["updates"]["remote"]
        assert int(row["fee_base_msat"]) == int(local["fee_base_msat"]), (row, c)
        assert row["fee_proportional_millionths"] == local["fee_proportional_millionths"], (row, c)
        assert int(row["peer_fee_base_msat"]) == int(remote["fee_base_msat"]), (row, c)
        assert row["role"] in ("source", "sink", "balanced", "excluded", "unusable"), row
        target = int(c["total_msat"]) * row["target_percent"] // 100
        assert abs(int(row["distance_msat"]) - (int(c["to_us_msat"]) - target)) <= 1, row
    assert isinstance(b["suggestions"], list)
    return b


def test_triangle(node_factory):
    """l1 -> l2 -> l3 -> l1: help, balances, bad input of every kind, dryrun, fee cap, real
    rebalances (positional and keyword, by scid and by node id, via lightning-cli too), and an
    outgoing peer gone offline."""
    plugin = realnet.plugin_binary()
    l1, l2, l3 = node_factory.get_nodes(3, opts=[{"plugin": str(plugin)}, {}, {}])
    # Every channel starts on its opener's side: l1->l2, l2->l3 and l3->l1 all have the
    # liquidity in the direction of the circle.
    node_factory.join_nodes([l1, l2, l3, l1], wait_for_announce=True)
    out_scid, mid_scid, in_scid = scid_between(l1, l2), scid_between(l2, l3), scid_between(l1, l3)
    wait_graph(l1, 3)

    # help shows the usage.
    h = l1.rpc.help("rebalance")["help"]
    assert len(h) == 1, h
    assert h[0]["command"].startswith("rebalance outgoing incoming [amount_msat] [maxfeeppm] "
                                      "[exemptfee] [retry_for] [dryrun]"), h
    if shutil.which("lightning-cli"):
        out = subprocess.run(
            ["lightning-cli", "--lightning-dir={}".format(l1.daemon.lightning_dir),
             "--network=regtest", "help", "rebalance"], capture_output=True, text=True, timeout=60)
        assert "outgoing incoming [amount_msat]" in out.stdout, out

    # balances against listpeerchannels, also filtered by peer and by scid.
    b = check_balances(l1)
    assert [r["short_channel_id"] for r in l1.rpc.balances(l2.info["id"])["channels"]] == [out_scid]
    assert [r["short_channel_id"] for r in l1.rpc.balances(in_scid)["channels"]] == [in_scid]
    assert b["channels"][0]["alias"]  # aliases known from node announcements
    e = rpc_error(l1.rpc.call, "balances", [UNKNOWN_SCID])
    assert e["code"] == -32602 and e["message"].startswith("id: "), e
    if shutil.which("lightning-cli"):
        table = cli(l1, "-H", "balances-table")
        assert table.startswith("alias") and out_scid in table and in_scid in table, table

    before = snapshot(l1)
    pays_before = sendpays(l1)
    amt = 100_000 * SAT

    # Bad input of every kind: -32602 naming the parameter, nothing paid, no invoice made.
    bad = [
        ([], "outgoing"),
        ([out_scid], "incoming"),
        ([UNKNOWN_SCID, in_scid, amt], "outgoing"),           # no such channel
        ([out_scid, UNKNOWN_SCID, amt], "incoming"),
        (["1x2", in_scid, amt], "outgoing"),                  # malformed scid
        ([out_scid, "103x1", amt], "incoming"),
        ([out_scid, mid_scid, amt], "incoming"),              # a real channel, not ours
        ([out_scid, "02" + "zz" * 32, amt], "incoming"),      # not hex
        ([out_scid, "02" + "ab" * 31, amt], "incoming"),      # too short
        ([UNKNOWN_NODE_ID, in_scid, amt], "outgoing"),        # valid id, not a peer
        ([out_scid, out_scid, amt], "incoming"),              # same channel twice
        ([l2.info["id"], out_scid, amt], "incoming"),         # same channel, by peer id
        ([out_scid, in_scid, 0], "amount_msat"),
        ([out_scid, in_scid, -5], "amount_msat"),
        ([out_scid, in_scid, 1.5], "amount_msat"),
        ([out_scid, in_scid, "12abc"], "amount_msat"),
        ([out_scid, in_scid, "0sat"], "amount_msat"),
        ([out_scid, in_scid, "22000000btc"], "amount_msat"),  # more than all bitcoin
        ([out_scid, in_scid, 10**20], "amount_msat"),
        ([out_scid, in_scid, 2 * 10**9], "incoming"),         # more than the channel can take
        ([out_scid, in_scid, amt, -1], "maxfeeppm"),
        ([out_scid, in_scid, amt, "lots"], "maxfeeppm"),
        ([out_scid, in_scid, amt, 1000, "lots"], "exemptfee"),
        ([out_scid, in_scid, amt, 1000, 5000, 0], "retry_for"),
        ([out_scid, in_scid, amt, 1000, 5000, 10**6], "retry_for"),
        ([out_scid, in_scid, amt, 1000, 5000, 60, "maybe"], "dryrun"),
        ({"outgoing": out_scid, "incoming": in_scid, "amount": amt}, "amount"),  # unknown keyword
        ({"outgoing": out_scid, "incoming": in_scid, "dry_run": True}, "dry_run"),
        ({"outgoing": 5, "incoming": in_scid}, "outgoing"),
        ({"outgoing": out_scid, "incoming": ""}, "incoming"),
    ]
    for params, name in bad:
        e = rpc_error(l1.rpc.call, "rebalance", params)
        assert e["code"] == -32602, (params, e)
        assert e["message"].startswith(name + ": "), (params, e)
    e = rpc_error(l1.rpc.call, "rebalance", [out_scid, in_scid, amt, 1000, 5000, 60, False, 4, "extra"])
    assert e["code"] == -32602 and "too many" in e["message"], e
    check_nothing_paid(l1, before, pays_before)
    assert rebalance_invoices(l1) == []
    assert sendpays(l1) == pays_before

    # Fee cap too low: 206 before any sendpay, with the cheapest fee it found.
    e = rpc_error(l1.rpc.call, "rebalance", {"outgoing": out_scid, "incoming": in_scid,
                                             "amount_msat": amt, "maxfeeppm": 0, "exemptfee": 0})
    assert e["code"] == 206, e
    cheapest = int(e["data"]["cheapest_fee_msat"])
    assert cheapest > 0 and int(e["data"]["fee_cap_msat"]) == 0, e
    # The cap is max(exemptfee, amount x maxfeeppm): just below the quote still refuses.
    e = rpc_error(l1.rpc.call, "rebalance", [out_scid, in_scid, amt, 0, cheapest - 1])
    assert e["code"] == 206, e
    assert rebalance_invoices(l1) == [] and sendpays(l1) == pays_before

    # Dryrun: a quote over the real graph, nothing paid, no invoice.
    q = l1.rpc.call("rebalance", [out_scid, in_scid, "100000sat", None, None, None, True])
    assert q["status"] == "dryrun", q
    assert q["hops"] == 3 and [h["node_id"] for h in q["route"]] == [
        l2.info["id"], l3.info["id"], l1.info["id"]], q
    assert int(q["fee_msat"]) == cheapest
    assert realnet.check_route_math(l1, q, l1.info["id"]) == cheapest
    q2 = l1.rpc.call("rebalance", {"outgoing": out_scid, "incoming": in_scid,
                                   "amount_msat": amt, "dryrun": True})
    assert q2["fee_msat"] == q["fee_msat"] and q2["route"] == q["route"]
    check_nothing_paid(l1, before, pays_before)
    assert rebalance_invoices(l1) == [] and sendpays(l1) == pays_before

    # A real rebalance, positional, with exactly the quoted fee (the cap is the quote itself).
    r = l1.rpc.call("rebalance", [out_scid, in_scid, "100000sat", 0, cheapest])
    fee = check_complete(l1, r, before, out_scid, in_scid, amt, cap=cheapest)
    assert fee == cheapest and r["route"] == q["route"]
    wait_settled(l2, l3)
    check_balances(l1)

    # Keyword, by peer node ids, integer msat: default cap (1000 ppm, 5000 msat exempt).
    before = snapshot(l1)
    amt2 = 250_000 * SAT
    r = l1.rpc.call("rebalance", {"outgoing": l2.info["id"], "incoming": l3.info["id"],
                                  "amount_msat": amt2, "retry_for": 30})
    check_complete(l1, r, before, out_scid, in_scid, amt2, cap=cap_of(amt2))

    # The real lightning-cli: -k with strings, then positional with a JSON literal.
    if shutil.which("lightning-cli"):
        before = snapshot(l1)
        r = cli(l1, "-k", "rebalance", "outgoing=" + out_scid, "incoming=" + in_scid,
                "amount_msat=10000sat", "dryrun=true")
        assert r["status"] == "dryrun" and snapshot(l1) == before, r
        r = cli(l1, "rebalance", out_scid, in_scid, "0.0001btc", "1000", "5000", "30", "false")
        check_complete(l1, r, before, out_scid, in_scid, 10_000 * SAT, cap=5000)

    wait_settled(l1, l2, l3)
    assert_no_unpaid_rebalance_invoice(l1)

    # The invoice_payment hook leaves ordinary payments to l1 alone.
    before = snapshot(l1)
    l2.pay(l1, 5_000 * SAT, label="ordinary")
    wait_settled(l1, l2)
    assert to_us(l1, out_scid) == before[out_scid] + 5_000 * SAT
    assert l1.rpc.listinvoices("ordinary")["invoices"][0]["status"] == "paid"

    # Outgoing peer offline: refused up front, naming the parameter; nothing paid.
    l1.rpc.disconnect(l2.info["id"], force=True)
    wait_until(lambda: not chan(l1, out_scid)["peer_connected"], 30, "l2 disconnected")
    before = snapshot(l1)
    pays_before = sendpays(l1)
    e = rpc_error(l1.rpc.call, "rebalance", [out_scid, in_scid, amt])
    assert e["code"] == -32602 and e["message"].startswith("outgoing: "), e
    assert "not connected" in e["message"], e
    e = rpc_error(l1.rpc.call, "rebalance", [l2.info["id"], in_scid, amt])
    assert e["code"] == -32602 and e["message"].startswith("outgoing: "), e
    check_nothing_paid(l1, before, pays_before)
    offline = [c for c in l1.rpc.balances()["channels"] if c["short_channel_id"] == out_scid]
    assert offline[0]["peer_connected"] is False


def test_ring_of_five(node_factory):
    """l1 -> l2 -> l3 -> l4 -> l5 -> l1: the return path crosses the network (4 fee-charging
    hops); by node id positionally, then with the amount left to the plugin (50/50)."""
    plugin = realnet.plugin_binary()
    nodes = node_factory.get_nodes(5, opts=[{"plugin": str(plugin)}, {}, {}, {}, {}])
    node_factory.join_nodes(nodes + [nodes[0]], wait_for_announce=True)
    l1, l2, l3, l4, l5 = nodes
    out_scid, in_scid = scid_between(l1, l2), scid_between(l1, l5)
    wait_graph(l1, 5)

    before = snapshot(l1)
    amt = 200_000 * SAT
    r = l1.rpc.call("rebalance", [l2.info["id"], l5.info["id"], amt])
    fee = check_complete(l1, r, before, out_scid, in_scid, amt, cap=cap_of(amt))
    assert r["hops"] == 5
    assert [h["node_id"] for h in r["route"]] == [n.info["id"] for n in (l2, l3, l4, l5, l1)]
    # Each of l2..l5 charged base 1 msat + 10 ppm (pyln-testing's defaults): about 4 x 2001.
    assert 4 * 2001 <= fee < 4 * 2001 + 10, fee
    wait_settled(*nodes)
    check_balances(l1)

    # No amount: the plugin picks what brings one of the two channels to 50/50 without pushing
    # the other past it.
    before = snapshot(l1)
    o, i = chan(l1, out_scid), chan(l1, in_scid)
    expect = min(int(o["to_us_msat"]) - int(o["total_msat"]) // 2,
                 int(i["total_msat"]) // 2 - int(i["to_us_msat"]))
    r = l1.rpc.call("rebalance", {"outgoing": out_scid, "incoming": in_scid})
    assert int(r["amount_msat"]) == expect, (r, expect)
    fee = check_complete(l1, r, before, out_scid, in_scid, expect, cap=cap_of(expect))
    o, i = chan(l1, out_scid), chan(l1, in_scid)
    o_half, i_half = int(o["total_msat"]) // 2, int(i["total_msat"]) // 2
    # One of them is at 50/50 (the outgoing one short by the fee paid), the other not past it.
    assert int(i["to_us_msat"]) == i_half or int(o["to_us_msat"]) == o_half - fee, (o, i, fee)
    assert int(i["to_us_msat"]) <= i_half and int(o["to_us_msat"]) >= o_half - fee, (o, i, fee)
    # Nothing left to balance between these two: refused with a reason, nothing paid.
    pays_before = sendpays(l1)
    before = snapshot(l1)
    e = rpc_error(l1.rpc.call, "rebalance", [out_scid, in_scid])
    assert e["code"] == -32602 and e["message"].startswith("amount_msat: "), e
    check_nothing_paid(l1, before, pays_before)
    wait_settled(*nodes)


def test_parallel_paths_retry(node_factory):
    """l1 -> l2 -> {l3 | l4} -> l5 -> l1 with the cheaper side (via l3) drained: the first
    attempt fails at l2 and the plugin retries over l4; then with both drained it gives up with
    every attempt listed and nothing paid."""
    # The l4 side dearer, so the plugin's first choice is the l3 side, which cannot carry it.
    nodes, (out_scid, in_scid, s23, s24, s45) = realnet.diamond(node_factory, 300,
                                                                realnet.PAY_AT_ONCE)
    l1, l2, l3, l4, l5 = nodes
    amt = 300_000 * SAT
    assert int(chan(l2, s23)["spendable_msat"]) < amt

    q = l1.rpc.call("rebalance", [out_scid, in_scid, amt, None, None, None, True])
    assert s23 in [h["short_channel_id"] for h in q["route"]], q  # cheapest, by gossip

    before = snapshot(l1)
    r = l1.rpc.call("rebalance", {"outgoing": out_scid, "incoming": in_scid, "amount_msat": amt})
    fee = check_complete(l1, r, before, out_scid, in_scid, amt, cap=cap_of(amt))
    assert r["attempts"] == 2, r
    if len(r.get("parts", [])) > 1:
        # The retry may split: what l2 -> l3 still holds in one part, the rest over l4.
        routes = [[h["short_channel_id"] for h in p["route"]] for p in r["parts"]]
        assert [out_scid, s24, s45, in_scid] in routes, r
        assert sum(int(p["amount_msat"]) for p in r["parts"]) == amt, r
    else:
        assert [h["short_channel_id"] for h in r["route"]] == [out_scid, s24, s45, in_scid], r
    assert fee > int(q["fee_msat"])  # paid the dearer path
    wait_settled(*nodes)

    # Drain the l4 side too: every attempt fails, each is listed, nothing is paid.
    push(l2, l4, int(chan(l2, s24)["spendable_msat"]) - 100_000 * SAT)
    before = snapshot(l1)
    pays_before = sendpays(l1)
    # One route at a time (maxparts 1): split, the parts would reach us and wait there for the
    # rest until lightningd's hold ends, and the call give up with them in flight (210); the
    # multi-part side of this is test_real_mpp's.
    e = rpc_error(l1.rpc.call, "rebalance", [out_scid, in_scid, amt, None, None, 20, False, 1])
    assert e["code"] == 205 and "no more routes after 2 failed attempt" in e["message"], e
    attempts = e["data"]["attempts"]
    # Both routes were tried, each once; which first depends on what the first rebalance taught
    # the model (that l2 -> l3 was drained), so the order is not fixed.
    routes = {tuple(a["route"]): a for a in attempts}
    via_l3 = (out_scid, s23, realnet.scid_between(l3, l5), in_scid)
    via_l4 = (out_scid, s24, s45, in_scid)
    assert sorted(routes) == sorted([via_l3, via_l4]), e
    # Both failed at l2, the outgoing peer, short on its other side (two failures: too few for
    # the message to name it).
    assert e["data"]["liquidity_failures"] == {"out_of_outgoing_peer": 2, "between": 0,
                                               "into_incoming_peer": 0}, e
    # Each failed at l2 (hop 1), for lack of liquidity on the channel it was asked to use.
    for route, scid in ((via_l3, s23), (via_l4, s24)):
        a = routes[route]
        assert "TEMPORARY_CHANNEL_FAILURE" in a["outcome"].upper() and scid in a["outcome"], a
    check_nothing_paid(l1, before, pays_before, others=nodes[1:])
    for n in nodes[1:]:
        assert not any(p["status"] == "pending" for p in sendpays(n))


def test_every_way_into_the_incoming_peer_empty_is_named(node_factory):
    """l1 -> l2 -> {l3 | l4 | l5} -> l6 -> l1, where l6 funded its channels to l3, l4 and l5: none
    of them can forward anything to l6. Each way fails into l6, and then no way is left: 205,
    and the message names l6, the incoming peer, as the side that was short. Nothing paid."""
    opts = [dict({"plugin": str(realnet.plugin_binary())}, **realnet.PAY_AT_ONCE)] + [{}] * 5
    l1, l2, l3, l4, l5, l6 = nodes = node_factory.get_nodes(6, opts=opts)
    node_factory.join_nodes([l1, l2])
    node_factory.join_nodes([l6, l1])
    for mid in (l3, l4, l5):
        node_factory.join_nodes([l2, mid])
        node_factory.join_nodes([l6, mid])
    l1.bitcoin.generate_block(5)
    wait_graph(l1, 8)
    out_scid, in_scid = scid_between(l1, l2), scid_between(l1, l6)
    before, pays_before = snapshot(l1), sendpays(l1)
    params = {"outgoing": out_scid, "incoming": in_scid, "amount_msat": 100_000 * SAT,
              "maxparts": 1, "retry_for": 120}
    e = rpc_error(l1.rpc.call, "rebalance", params)
    assert e["code"] == 205, e
    assert e["message"].startswith(
        "no more routes after 3 failed attempt(s). Of its 3 failures for lack of liquidity, all "
        f"were on channels into the incoming peer {l6.info['id']}: "), e
    assert e["data"]["liquidity_failures"] == {"out_of_outgoing_peer": 0, "between": 0,
                                               "into_incoming_peer": 3}, e
    into_l6 = {scid_between(mid, l6) for mid in (l3, l4, l5)}
    assert {a["route"][2] for a in e["data"]["attempts"]} == into_l6, e
    check_nothing_paid(l1, before, pays_before, others=nodes[1:])


def test_an_unsure_route_is_probed_before_it_is_paid(node_factory):
    """The same diamond, the plugin's defaults (rebalance-probe-first): nothing is known of the
    cheaper side (via l3), so it is probed before it is paid; the probe fails at l2, the l4
    side's probe gets round, and the payment goes that way at its first attempt. The probes
    paid nothing and left nothing in flight."""
    nodes, (out_scid, in_scid, s23, s24, s45) = realnet.diamond(node_factory, 300)
    l1 = nodes[0]
    amt = 300_000 * SAT
    before = snapshot(l1)
    pays_before = sendpays(l1)
    r = l1.rpc.call("rebalance", {"outgoing": out_scid, "incoming": in_scid, "amount_msat": amt})
    check_complete(l1, r, before, out_scid, in_scid, amt, cap=cap_of(amt))
    assert r["attempts"] == 1 and r["probes"] >= 2, r
    routes = [[h["short_channel_id"] for h in p["route"]] for p in r.get("parts", [r])]
    assert [out_scid, s24, s45, in_scid] in routes, r
    new = [p for p in sendpays(l1) if p not in pays_before]
    paid = [p for p in new if p["payment_hash"] == r["payment_hash"]]
    probes = [p for p in new if p["payment_hash"] != r["payment_hash"]]
    assert paid and all(p["status"] == "complete" for p in paid), new
    assert len(probes) == r["probes"], new
    assert all(p["status"] == "failed" and p.get("label") == realnet.PROBE_LABEL for p in probes), new
    # What the failed probe taught: l2 -> l3 carries less than the amount.
    learned = l1.rpc.call("rebalance-liquidity", {"short_channel_id": s23})["channels"]
    assert any(int(c.get("learned_max_msat") or amt) < amt for c in learned), learned
    wait_settled(*nodes)
    for n in nodes[1:]:
        assert not any(p["status"] == "pending" for p in sendpays(n))


def test_two_channels_same_peer(node_factory):
    """l2 has two channels to l1. Asked to return over the smaller one, l2 forwards over the
    bigger one (lightningd's non-strict forwarding): the plugin must refuse that arrival, say
    so, and lose nothing. Returning over the bigger one works."""
    plugin = realnet.plugin_binary()
    l1, l2, l3 = node_factory.get_nodes(3, opts=[{"plugin": str(plugin)}, {}, {}])
    node_factory.join_nodes([l1, l3, l2, l1])          # l1->l3, l3->l2, l2->l1 (1M sat)
    # and l2->l1 (400k sat); minconf=0: pyln's fundchannel can race lightningd's view of the
    # block holding the new UTXO ("fundpsbt" then finds nothing spendable).
    small, _ = l2.fundchannel(l1, 400_000, minconf=0)
    l1.bitcoin.generate_block(5)
    out_scid = scid_between(l1, l3)
    bigs = [c["short_channel_id"] for c in l1.rpc.listpeerchannels(l2.info["id"])["channels"]
            if c["short_channel_id"] != small]
    assert len(bigs) == 1
    big = bigs[0]
    wait_graph(l1, 4)

    # Both of l2's channels are below target at the same fees from l2: a job plans only the
    # one l2 would forward over, and says why not the other.
    dry = l1.rpc.call("rebalanceall", {"dryrun": True})
    skipped = {k["short_channel_id"]: k["reason"] for k in dry["skipped"]}
    assert "would come back over {}".format(big) in skipped.get(small, ""), dry
    assert [m["incoming"] for m in dry["moves"]] == [big], dry

    before = {n: snapshot(n) for n in (l1, l2, l3)}
    pays_before = sendpays(l1)
    amt = 100_000 * SAT
    e = rpc_error(l1.rpc.call, "rebalance", [out_scid, small, amt])
    assert e["code"] == 210, e
    assert e["data"]["arrived_on"] == big, e
    assert big in e["message"] and small in e["message"], e
    # No fee lost anywhere, nothing moved, no HTLC, no invoice left to pay.
    wait_settled(l1, l2, l3)
    for n in (l1, l2, l3):
        assert snapshot(n) == before[n], n.info["id"]
    check_nothing_paid(l1, before[l1], pays_before)
    assert not [i for i in rebalance_invoices(l1) if i["status"] == "paid"]
    assert l1.daemon.is_in_log(r"plugin-cln-rebalance: refusing payment for rebalance-.*: it arrived on {}, "
                               r"not on incoming channel {}".format(big, small))

    # Into the channel l2 prefers: completes, and lands where it was asked to.
    r = l1.rpc.call("rebalance", [out_scid, big, amt])
    check_complete(l1, r, before[l1], out_scid, big, amt, cap=cap_of(amt))
    assert to_us(l1, small) == before[l1][small]


def test_private_incoming_channel(node_factory):
    """l1 -> l2 -> l3 public, and l3 -> l1 unannounced (private). There is no gossip for the
    last hop: its fee policy comes from listpeerchannels, and l3 forwards over a private
    channel only when the onion names it by its alias (lightningd answers unknown_next_peer to
    the real scid, to keep the channel from being probed), so the last hop must be given as
    l1's alias.remote for that channel."""
    plugin = realnet.plugin_binary()
    l1, l2, l3 = node_factory.get_nodes(3, opts=[{"plugin": str(plugin)}, {}, {}])
    node_factory.join_nodes([l1, l2, l3], wait_for_announce=True)
    priv, _ = l3.fundchannel(l1, 500_000, announce_channel=False, minconf=0)
    out_scid = scid_between(l1, l2)
    wait_graph(l1, 2)
    assert chan(l1, priv)["private"] is True
    assert [c["private"] for c in l1.rpc.balances(priv)["channels"]] == [True]

    before = snapshot(l1)
    amt = 100_000 * SAT
    q = l1.rpc.call("rebalance", [out_scid, priv, amt, None, None, None, True])
    remote = chan(l1, priv)["updates"]["remote"]
    last_fee = remote["fee_base_msat"] + -(-amt * remote["fee_proportional_millionths"] // 10**6)
    assert int(q["route"][-2]["amount_msat"]) == amt + last_fee, q
    r = l1.rpc.call("rebalance", [out_scid, priv, amt])
    assert [h["node_id"] for h in r["route"]] == [n.info["id"] for n in (l2, l3, l1)], r
    check_complete(l1, r, before, out_scid, priv, amt, cap=cap_of(amt))


def test_held_htlc_outlives_retry_for(node_factory, directory):
    """l2 holds the rebalance HTLC longer than retry_for: the plugin stops waiting (code 200
    from waitsendpay), starts no second attempt, deletes its invoice, and says so; when l2
    lets go, the HTLC reaches l1, finds no invoice and fails back: nothing moves, no fee is
    paid. Afterwards the same channels rebalance normally."""
    plugin = realnet.plugin_binary()
    hold, hold_file = realnet.hold_plugin(os.path.join(directory, "hold-plugin"))
    l1, l2, l3 = node_factory.get_nodes(3, opts=[dict(plugin=str(plugin), **realnet.PAY_AT_ONCE),
                                                 {"plugin": str(hold)}, {}])
    node_factory.join_nodes([l1, l2, l3, l1], wait_for_announce=True)
    out_scid, in_scid = scid_between(l1, l2), scid_between(l1, l3)
    wait_graph(l1, 3)

    before = {n: snapshot(n) for n in (l1, l2, l3)}
    pays_before = sendpays(l1)
    amt = 100_000 * SAT
    hold_file.write_text("12")
    t0 = time.time()
    e = rpc_error(l1.rpc.call, "rebalance", [out_scid, in_scid, amt, None, None, 3])
    assert time.time() - t0 < 10, "waited for the held HTLC instead of giving up at retry_for"
    assert e["code"] == 210 and "still in flight" in e["message"], e
    assert len(e["data"]["attempts"]) == 1, e
    held = e["data"]["payment_hash"]
    assert l2.daemon.is_in_log("holding HTLC {}".format(held))
    assert rebalance_invoices(l1) == [], "the invoice must be gone while the HTLC is held"
    assert any(h["payment_hash"] == held for h in chan(l1, out_scid).get("htlcs", [])), \
        "expected the HTLC to be still held"

    # l2 lets go after 12 s: the HTLC comes back to l1, which has no invoice for it any more.
    wait_settled(l1, l2, l3, timeout=60)
    for n in (l1, l2, l3):
        assert snapshot(n) == before[n], n.info["id"]
    check_nothing_paid(l1, before[l1], pays_before)
    assert [p["status"] for p in sendpays(l1) if p["payment_hash"] == held] == ["failed"]

    hold_file.write_text("0")
    r = l1.rpc.call("rebalance", [out_scid, in_scid, amt])
    check_complete(l1, r, before[l1], out_scid, in_scid, amt, cap=cap_of(amt))


def test_graph_copy_read_while_a_node_was_offline(node_factory):
    """l1 -> l2 -> l3 -> l4 -> l1, the only way round. lightningd disables a channel lazily: with
    l3 stopped, l2 says l2 -> l3 is disabled only once a forward over it fails (a payment from
    l1 here); then a rebalance reads the graph and finds no way (205). l3 comes back, l2
    enables the channel again, and lightningd lists it active; the plugin's copy, under a minute
    old, still has it disabled and is not read again (205). Once the copy is a minute old, the
    refused rebalance reads the graph again and pays."""
    plugin = realnet.plugin_binary()
    opts = [{"plugin": str(plugin)}] + [{"may_reconnect": True} for _ in range(3)]
    nodes = node_factory.get_nodes(4, opts=opts)
    node_factory.join_nodes(nodes + [nodes[0]], wait_for_announce=True)
    l1, l2, l3, l4 = nodes
    out_scid, in_scid, s23 = scid_between(l1, l2), scid_between(l1, l4), scid_between(l2, l3)
    wait_graph(l1, 4)

    def l2_l3_active():
        cs = [c for c in l1.rpc.listchannels(s23)["channels"] if c["source"] == l2.info["id"]]
        return len(cs) == 1 and cs[0]["active"]

    def graph_reads():
        l1.daemon.logs_catchup()
        return sum(1 for line in l1.daemon.logs if "graph refreshed" in line)

    # l3 stops; lightningd still lists l2 -> l3 active (nobody has tried it). (Until ten
    # seconds after its start, l2 would not disable a channel even then: channel_gossip.c's
    # startup mode.)
    wait_until(lambda: l2.daemon.is_in_log("channel_gossip: no longer in startup mode"), 60,
               "l2 out of its startup mode")
    l3.stop()
    wait_until(lambda: not l2.rpc.listpeerchannels(l3.info["id"])["channels"][0]["peer_connected"],
               30, "l2 sees l3 gone")
    assert l2_l3_active()
    # A payment from l1 over l2 -> l3 fails at l2, which then broadcasts the channel disabled.
    probe, pol = 10_000 * SAT, realnet.policy(l1, s23, l2.info["id"])
    fee = int(pol["base_fee_millisatoshi"]) + -(-probe * int(pol["fee_per_millionth"]) // 10**6)
    route = [{"id": l2.info["id"], "channel": out_scid, "amount_msat": probe + fee,
              "delay": 18 + int(pol["delay"])},
             {"id": l3.info["id"], "channel": s23, "amount_msat": probe, "delay": 18}]
    l1.rpc.sendpay(route, "11" * 32)
    e = rpc_error(l1.rpc.waitsendpay, "11" * 32, 30)
    assert e["data"]["erring_index"] == 1 and e["data"]["failcodename"] == "WIRE_TEMPORARY_CHANNEL_FAILURE", e
    wait_until(lambda: not l2_l3_active(), 60, "l2 -> l3 disabled in l1's gossip")

    # The plugin reads the graph now: no way round.
    amt = 100_000 * SAT
    asked = {"outgoing": out_scid, "incoming": in_scid, "amount_msat": amt}
    before, pays_before = snapshot(l1), sendpays(l1)
    reads = graph_reads()
    e = rpc_error(l1.rpc.call, "rebalance", asked)
    read_at = time.time()
    assert e["code"] == 205, e
    wait_until(lambda: graph_reads() == reads + 1, 10, "the graph read for this rebalance")
    check_nothing_paid(l1, before, pays_before)

    # l3 is back; l2 enables the channel and l1's lightningd lists it active again.
    l3.start()
    for peer in (l2, l4):
        l3.rpc.connect(peer.info["id"], "localhost", peer.port)
    wait_until(lambda: all(c["peer_connected"] and c["state"] == "CHANNELD_NORMAL"
                           for c in l3.rpc.listpeerchannels()["channels"]), 60, "l3's channels usable")
    wait_until(l2_l3_active, 60, "l2 -> l3 enabled again in l1's gossip")
    # The plugin's copy is under a minute old: refused again on it (read again, it would have
    # the way lightningd now lists).
    if time.time() - read_at < 50:
        e = rpc_error(l1.rpc.call, "rebalance", asked)
        assert e["code"] == 205, e
        check_nothing_paid(l1, before, pays_before)

    # A minute on, the refusal rereads the graph, plans again and pays.
    time.sleep(max(0.0, read_at + 62 - time.time()))
    r = l1.rpc.call("rebalance", asked)
    check_complete(l1, r, before, out_scid, in_scid, amt, cap=cap_of(amt))
    assert [h["node_id"] for h in r["route"]] == [n.info["id"] for n in (l2, l3, l4, l1)], r
    wait_until(lambda: graph_reads() == reads + 2, 10, "the old copy read again")
    wait_settled(*nodes)


def test_a_fee_raised_since_the_graph_was_read(node_factory):
    """l1 -> l2 -> l3 -> l4 -> l1, the only way round. After the plugin read the graph, l3
    raises its fee on l3 -> l4 at once (`enforcedelay=0`) and tells no one (`dev-suppress-gossip`:
    no peer hears of it). The rebalance's first HTLC (its probe, or the payment) fails at l3 with
    `fee_insufficient` and l3's new channel_update; the plugin hands it to gossipd (`addgossip`),
    so l1's gossip has it while l3 still tells no one, reads the graph again and pays the new
    fee in the same call (before, it ruled l3 -> l4 out and, with no other way, gave up). Then
    the same for `rebalance-probe`."""
    nodes = node_factory.get_nodes(4, opts=[{"plugin": str(realnet.plugin_binary())}, {}, {}, {}])
    node_factory.join_nodes(nodes + [nodes[0]], wait_for_announce=True)
    l1, l2, l3, l4 = nodes
    out_scid, in_scid, s34 = scid_between(l1, l2), scid_between(l1, l4), scid_between(l3, l4)
    wait_graph(l1, 4)
    amt = 100_000 * SAT
    asked = {"outgoing": out_scid, "incoming": in_scid, "amount_msat": amt}
    quote = l1.rpc.call("rebalance", dict(asked, dryrun=True))
    assert [h["short_channel_id"] for h in quote["route"]][2] == s34, quote

    l3.rpc.call("dev-suppress-gossip")
    l3.rpc.setchannel(l4.info["id"], feebase=1, feeppm=300, enforcedelay=0)
    wait_until(lambda: int(realnet.policy(l3, s34, l3.info["id"])["fee_per_millionth"]) == 300,
               30, "l3's own gossip has its new fee")
    assert int(realnet.policy(l1, s34, l3.info["id"])["fee_per_millionth"]) == 10

    def in_log(text):
        l1.daemon.logs_catchup()
        return sum(1 for line in l1.daemon.logs if text in line)

    fee_failure = "with code 0x100c (WIRE_FEE_INSUFFICIENT)"
    before, reads = snapshot(l1), in_log("graph refreshed")
    assert in_log(fee_failure) == 0
    r = l1.rpc.call("rebalance", asked)
    # l1's gossip has l3's new fee though l3 told no peer: the plugin gave it to gossipd.
    assert int(realnet.policy(l1, s34, l3.info["id"])["fee_per_millionth"]) == 300
    # One HTLC failed at l3 on the old fee (the probe, when the set was probed first); the
    # graph was read again, and the next went on the new fee.
    assert in_log(fee_failure) == 1 and r["attempts"] == (1 if r["probes"] else 2), r
    assert in_log("graph refreshed") == reads + 1
    fee = check_complete(l1, r, before, out_scid, in_scid, amt, cap=cap_of(amt))
    # 300 ppm at l3 on what it forwards, 10 ppm and 1 msat at l2 and l4.
    assert 30_000 < fee < 33_000, r
    wait_settled(*nodes)

    # Raised again, still told to no one: probing for the most that moves meets it, hands the
    # update to gossipd and probes on at the new fee (before, it found nothing).
    l3.rpc.setchannel(l4.info["id"], feebase=1, feeppm=400, enforcedelay=0)
    wait_until(lambda: int(realnet.policy(l3, s34, l3.info["id"])["fee_per_millionth"]) == 400,
               30, "l3's own gossip has its second fee")
    p = l1.rpc.call("rebalance-probe", {"outgoing": out_scid, "incoming": in_scid})
    assert int(realnet.policy(l1, s34, l3.info["id"])["fee_per_millionth"]) == 400
    assert in_log(fee_failure) == 2 and int(p["max_msat"]) > amt, p
    wait_settled(*nodes)


def test_the_incoming_peers_fee_raised_before_the_htlc_came(node_factory):
    """l1 -> l2 -> l3 -> l4 -> l1. l4, the incoming peer, raises its fee on its hop to l1 at
    once (`enforcedelay=0`, as lnd enforces a new fee) and tells no one (`dev-suppress-gossip`),
    so l1's listpeerchannels still shows the old fee when the rebalance starts. The first HTLC
    (probe or payment) fails at l4 with `fee_insufficient` and l4's new channel_update; the
    plugin hands it to gossipd, which tells lightningd (l1's listpeerchannels has it now),
    plans the last hop on the new fee and completes in the same call (before, it stopped with
    210 "the incoming peer could not forward back to us"). Then the same for `rebalance-probe`,
    and a fee past the cap."""
    nodes = node_factory.get_nodes(4, opts=[{"plugin": str(realnet.plugin_binary())}, {}, {}, {}])
    node_factory.join_nodes(nodes + [nodes[0]], wait_for_announce=True)
    l1, l2, l3, l4 = nodes
    out_scid, in_scid = scid_between(l1, l2), scid_between(l1, l4)
    wait_graph(l1, 4)
    amt = 100_000 * SAT
    asked = {"outgoing": out_scid, "incoming": in_scid, "amount_msat": amt}

    def remote_ppm():
        return int(chan(l1, in_scid)["updates"]["remote"]["fee_proportional_millionths"])

    l4.rpc.call("dev-suppress-gossip")
    l4.rpc.setchannel(l1.info["id"], feebase=1, feeppm=300, enforcedelay=0)
    wait_until(lambda: int(realnet.policy(l4, in_scid, l4.info["id"])["fee_per_millionth"]) == 300,
               30, "l4's own gossip has its new fee")
    assert remote_ppm() == 10

    def in_log(text):
        l1.daemon.logs_catchup()
        return sum(1 for line in l1.daemon.logs if text in line)

    fee_failure = "with code 0x100c (WIRE_FEE_INSUFFICIENT)"
    before = snapshot(l1)
    r = l1.rpc.call("rebalance", asked)
    # One HTLC failed at l4 on the old fee; l1's lightningd has l4's new one from the plugin.
    assert in_log(fee_failure) == 1 and r["attempts"] == (1 if r["probes"] else 2), r
    assert remote_ppm() == 300
    fee = check_complete(l1, r, before, out_scid, in_scid, amt, cap=cap_of(amt))
    # 300 ppm at l4 on what it forwards, 10 ppm and 1 msat at l2 and l3.
    assert 32_000 < fee < 33_100, r
    wait_settled(*nodes)
    assert_no_unpaid_rebalance_invoice(l1)

    # Raised again: probing for the most that moves meets it, and probes on at the new fee.
    l4.rpc.setchannel(l1.info["id"], feebase=1, feeppm=400, enforcedelay=0)
    wait_until(lambda: int(realnet.policy(l4, in_scid, l4.info["id"])["fee_per_millionth"]) == 400,
               30, "l4's own gossip has its second fee")
    p = l1.rpc.call("rebalance-probe", {"outgoing": out_scid, "incoming": in_scid})
    assert in_log(fee_failure) == 2 and remote_ppm() == 400
    assert int(p["max_msat"]) > amt, p
    wait_settled(*nodes)

    # Raised past the cap: the rebalance stops with what the cheapest way costs, nothing paid.
    l4.rpc.setchannel(l1.info["id"], feebase=1, feeppm=20_000, enforcedelay=0)
    wait_until(lambda: int(realnet.policy(l4, in_scid, l4.info["id"])["fee_per_millionth"]) == 20_000,
               30, "l4's own gossip has its third fee")
    before, sent_before = snapshot(l1), sendpays(l1)
    err = rpc_error(l1.rpc.call, "rebalance", asked)
    assert err["code"] == 206 and "more than the fee cap" in err["message"], err
    assert in_log(fee_failure) == 3 and remote_ppm() == 20_000
    wait_settled(*nodes)
    check_nothing_paid(l1, before, sent_before)

"""The liquidity model on real lightningd: what one rebalance learns from a failed attempt is
saved in lightningd's datastore, survives `plugin stop` / `plugin start`, and spares the next
rebalance the same failure; a corrupt saved record is ignored with a log line. See realnet.py
for how the suite skips without lightningd."""

import pytest

pytest.register_assert_rewrite("realnet")
import realnet  # noqa: E402
from realnet import (  # noqa: E402
    check_complete, rpc_error, snapshot, wait_settled, wait_until,
)

pytestmark = realnet.requires_lightningd
if realnet.SKIP_REASON is None:
    from pyln.testing.fixtures import *  # noqa: F401,F403  (node_factory, bitcoind, ...)

pytest_plugins = ["realnet"]

SAT = 1000
KEY = ["cln-rebalance", "liquidity"]


def learned(node, scid):
    """rebalance-liquidity's entries for one channel, the learned directions only."""
    v = node.rpc.call("rebalance-liquidity", {"short_channel_id": scid})
    return [c for c in v["channels"] if c.get("learned") is not False]


def saved_hex(node):
    entries = [e for e in node.rpc.listdatastore(KEY)["datastore"] if e["key"] == KEY]
    return entries[0].get("hex") if entries else None


def restart_plugin(node, plugin):
    node.rpc.plugin_stop(plugin)
    node.rpc.plugin_start(plugin)


def test_model_saved_restored_and_used(node_factory):
    """l1 -> l2 -> {l3 | l4} -> l5 -> l1, the cheaper side (via l3) drained. The first rebalance
    fails once at l2 -> l3 and learns it; after a plugin restart the model is back from the
    datastore and the same rebalance goes via l4 at once."""
    # The l4 way costs 12 sat more: the cheap way first, while nothing is known of either.
    nodes, (out_scid, in_scid, s23, s24, s45) = realnet.diamond(node_factory, 50,
                                                                realnet.PAY_AT_ONCE)
    plugin = str(realnet.plugin_binary())
    l1, l2, l3, l4, l5 = nodes
    amt = 300_000 * SAT
    assert saved_hex(l1) is None, "nothing saved before the first rebalance"

    before = snapshot(l1)
    r = l1.rpc.call("rebalance", {"outgoing": out_scid, "incoming": in_scid, "amount_msat": amt})
    check_complete(l1, r, before, out_scid, in_scid, amt)
    assert r["attempts"] == 2, r
    wait_settled(*nodes)

    # What it learned: l2's side of s23 carries less than it was asked to forward (the amount
    # plus the fees of the hops after it, within the 1000 ppm fee cap).
    failed = [c for c in learned(l1, s23) if "learned_max_msat" in c]
    assert len(failed) == 1 and failed[0]["source"] == l2.info["id"], learned(l1, s23)
    bound = int(failed[0]["learned_max_msat"])
    assert amt <= bound < amt + amt * 1000 // 10**6, failed
    # Seconds old, the failure still counts nearly in full: what is left of P is the share
    # the channel may have changed since (a few seconds of a 30-minute half-life).
    assert failed[0]["weight"] > 0.99 and failed[0]["probability"]["50%"] < 0.01, failed
    hexval = saved_hex(l1)
    assert hexval and hexval.startswith("43524c5101"), hexval  # "CRLQ", version 1

    # A restart: the model comes back from the datastore.
    restart_plugin(l1, plugin)
    wait_until(lambda: any(int(c.get("learned_max_msat", -1)) == bound for c in learned(l1, s23)),
               what="the model loaded from the datastore")
    before = snapshot(l1)
    r = l1.rpc.call("rebalance", {"outgoing": out_scid, "incoming": in_scid, "amount_msat": amt})
    check_complete(l1, r, before, out_scid, in_scid, amt)
    assert r["attempts"] == 1, r
    assert [h["short_channel_id"] for h in r["route"]] == [out_scid, s24, s45, in_scid], r
    wait_settled(*nodes)

    # A corrupt record: ignored with a log line, the plugin carries on and writes a good one.
    l1.rpc.datastore(key=KEY, hex="00ff00ff", mode="create-or-replace")
    restart_plugin(l1, plugin)
    l1.daemon.wait_for_log("ignoring the saved liquidity model at cln-rebalance/liquidity")
    assert learned(l1, s23) == []
    v = l1.rpc.call("rebalance", {"outgoing": out_scid, "incoming": in_scid,
                                  "amount_msat": 50_000 * SAT, "dryrun": True})
    assert v["status"] == "dryrun", v
    r = l1.rpc.call("rebalance", {"outgoing": out_scid, "incoming": in_scid,
                                  "amount_msat": 50_000 * SAT})
    assert r["status"] == "complete", r
    assert saved_hex(l1).startswith("43524c5101")

    # reset forgets, and saves the forgetting.
    assert l1.rpc.call("rebalance-liquidity", {"reset": True})["reset"] > 0
    assert l1.rpc.call("rebalance-liquidity")["learned_channel_directions"] == 0
    e = rpc_error(l1.rpc.call, "rebalance-liquidity", {"short_channel_id": "nonsense"})
    assert e["code"] == -32602 and e["message"].startswith("short_channel_id:"), e

    # lightningd's `check` reaches the plugin (pyln-testing checks every call it makes): bad
    # params are refused by name, good ones pass, and lightningd never logs that it cannot ask.
    ok = l1.rpc.call("check", {"command_to_check": "rebalance", "outgoing": out_scid,
                               "incoming": in_scid, "amount_msat": "10000sat"})
    assert ok["command_to_check"] == "rebalance", ok
    e = rpc_error(l1.rpc.call, "check", {"command_to_check": "rebalance", "outgoing": out_scid,
                                         "incoming": in_scid, "amount_msat": "lots"})
    assert e["code"] == -32602 and e["message"].startswith("amount_msat:"), e
    assert not l1.daemon.is_in_log("does not support check command")

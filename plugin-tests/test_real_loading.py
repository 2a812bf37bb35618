"""How operators load cln-rebalance into real lightningd: a `plugin=` line (with the plugin's
options) in the node's config file, and `lightning-cli plugin start` on a running node; then
`plugin stop`. See realnet.py for how the suite skips without lightningd."""

import os

import pytest

pytest.register_assert_rewrite("realnet")
import realnet  # noqa: E402
from realnet import (  # noqa: E402
    chan, check_complete, check_nothing_paid, rebalance_invoices, rpc_error, scid_between,
    sendpays, snapshot, wait_graph, wait_settled,
)

pytestmark = realnet.requires_lightningd
if realnet.SKIP_REASON is None:
    from pyln.testing.fixtures import *  # noqa: F401,F403  (node_factory, bitcoind, ...)

pytest_plugins = ["realnet"]

SAT = 1000


def config_value(node, name):
    c = node.rpc.listconfigs(name)["configs"][name]
    return c, c.get("value_int", c.get("value_str"))


def test_config_file_and_plugin_start(node_factory):
    """Triangle l1 -> l2 -> l3 -> l1. l2 loads the plugin from its config file with
    rebalance-maxfeeppm=1 and rebalance-exemptfee=0 (so the default cap refuses, and an explicit
    maxfeeppm lifts it); l3 starts it with `plugin start` and rebalances with the defaults; l1
    runs no plugin and only forwards."""
    plugin = str(realnet.plugin_binary())
    l1, l2, l3 = node_factory.get_nodes(3, opts=[{}, {"start": False}, {}])
    conf = os.path.join(l2.daemon.lightning_dir, "regtest", "config")
    with open(conf, "w") as f:
        f.write("# written by test_config_file_and_plugin_start\n"
                "plugin={}\n"
                "rebalance-maxfeeppm=1\n"
                "rebalance-exemptfee=0\n".format(plugin))
    l2.start()
    node_factory.join_nodes([l1, l2, l3, l1], wait_for_announce=True)
    s12, s23, s31 = scid_between(l1, l2), scid_between(l2, l3), scid_between(l3, l1)

    # l2: loaded from the config file, its options read from there too.
    assert any(p["name"] == plugin and p["active"] for p in l2.rpc.plugin_list()["plugins"])
    c, v = config_value(l2, "rebalance-maxfeeppm")
    assert int(v) == 1 and c["source"].startswith(conf), c
    c, v = config_value(l2, "rebalance-exemptfee")
    assert int(v) == 0, c
    c, v = config_value(l2, "rebalance-retry-for")
    assert int(v) == 120 and c["source"] == "default", c
    wait_graph(l2, 3)

    # With the configured cap (1 ppm of 100k sat = 100 msat, nothing exempt): 206, nothing paid.
    amt = 100_000 * SAT
    before, pays_before = snapshot(l2), sendpays(l2)
    e = rpc_error(l2.rpc.call, "rebalance", [s23, s12, amt])
    assert e["code"] == 206 and int(e["data"]["fee_cap_msat"]) == 100, e
    assert int(e["data"]["cheapest_fee_msat"]) > 100, e
    check_nothing_paid(l2, before, pays_before)
    assert rebalance_invoices(l2) == [] and sendpays(l2) == pays_before
    # A maxfeeppm given in the call overrides the configured one.
    r = l2.rpc.call("rebalance", {"outgoing": s23, "incoming": s12, "amount_msat": amt,
                                  "maxfeeppm": 1000})
    check_complete(l2, r, before, s23, s12, amt, cap=amt * 1000 // 10**6)
    wait_settled(l1, l2, l3)

    # l3: no plugin yet; `plugin start` it on the running node. Bad option values first: the
    # plugin refuses to start, saying which option and why, and l3 carries on without it.
    assert not any(p["name"] == plugin for p in l3.rpc.plugin_list()["plugins"])
    for opts, why in (({"rebalance-retry-for": 0}, "rebalance-retry-for must be 1..=3600"),
                      ({"rebalance-retry-for": 99999}, "rebalance-retry-for must be 1..=3600"),
                      ({"rebalance-maxfeeppm": -5}, "rebalance-maxfeeppm must be >= 0"),
                      ({"rebalance-exemptfee": "lots"}, "'lots' is not a number")):
        e = rpc_error(l3.rpc.plugin_start, plugin, **opts)
        assert e["code"] == -3 and why in e["message"], (opts, e)
        assert not any(p["name"] == plugin for p in l3.rpc.plugin_list()["plugins"])
    started = l3.rpc.plugin_start(plugin)
    assert any(p["name"] == plugin and p["active"] for p in started["plugins"]), started
    h = l3.rpc.help("rebalance")["help"]
    assert h[0]["command"].startswith("rebalance outgoing incoming [amount_msat]"), h
    wait_graph(l3, 3)
    before = snapshot(l3)
    amt = 150_000 * SAT
    r = l3.rpc.call("rebalance", [s31, s23, amt])  # defaults: 1000 ppm, 5000 msat exempt
    check_complete(l3, r, before, s31, s23, amt, cap=max(5000, amt * 1000 // 10**6))
    assert [h["node_id"] for h in r["route"]] == [l1.info["id"], l2.info["id"], l3.info["id"]]
    b = l3.rpc.balances()
    assert {c["short_channel_id"]: int(c["to_us_msat"]) for c in b["channels"]} == snapshot(l3)

    # `plugin stop`: the plugin leaves cleanly and its commands go with it.
    l3.rpc.plugin_stop(plugin)
    assert not any(p["name"] == plugin for p in l3.rpc.plugin_list()["plugins"])
    e = rpc_error(l3.rpc.call, "rebalance", [s31, s23, amt])
    assert e["code"] == -32601, e
    assert chan(l3, s31)["state"] == "CHANNELD_NORMAL"

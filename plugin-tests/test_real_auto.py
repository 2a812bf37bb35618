"""Automatic rebalancing on real lightningd: `rebalanceall` over a ring brings our channels
within target, `rebalancestop` stops a run with nothing left in flight, and the history and
`rebalancereport` survive a plugin restart. See realnet.py for how the suite skips without
lightningd."""

import json
import shutil
import subprocess

import pytest

pytest.register_assert_rewrite("realnet")
import realnet  # noqa: E402
from realnet import (  # noqa: E402
    assert_no_unpaid_rebalance_invoice, channels, no_htlcs,
    wait_settled, wait_until,
)

pytestmark = realnet.requires_lightningd
if realnet.SKIP_REASON is None:
    from pyln.testing.fixtures import *  # noqa: F401,F403  (node_factory, bitcoind, ...)

pytest_plugins = ["realnet"]

SAT = 1000


def shares(node):
    return {c["short_channel_id"]: 100.0 * int(c["to_us_msat"]) / int(c["total_msat"])
            for c in channels(node) if c.get("state") == "CHANNELD_NORMAL"}


def cli(node, *args):
    """The real lightning-cli against `node`: its stdout as text."""
    out = subprocess.run(
        [shutil.which("lightning-cli"), "--lightning-dir={}".format(node.daemon.lightning_dir),
         "--network=regtest", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout


def wait_job_end(node, timeout=120):
    def ended():
        r = node.rpc.call("rebalancereport")
        return r if r.get("last_job") and not r["last_job"]["running"] else None
    return wait_until(ended, timeout, "the rebalanceall job to end")


def test_rebalanceall_ring_stop_and_report_after_restart(node_factory):
    """l1 funds l1->l2 and l1->l3 (all ours) and receives l4->l1 and l5->l1 (nothing ours);
    the others form l2 -> l3 -> l4 -> l5 and l2 -> l5. rebalanceall moves liquidity from the first two into
    the last two until every channel of l1 is within target."""
    nodes = realnet.auto_ring(node_factory)
    l1, l2, l3, l4, l5 = nodes
    plugin = str(realnet.plugin_binary())
    before = shares(l1)
    assert sorted(round(v) for v in before.values()) == [0, 0, 100, 100], before

    # What an operator sees first: the table, printed as it is by the real lightning-cli (with
    # and without -H), the JSON with -J; the suggestions are the moves rebalanceall plans.
    table = cli(l1, "balances-table")
    assert cli(l1, "-H", "balances-table") == table
    lines = table.splitlines()
    assert lines[0].startswith("alias") and "channel" in lines[0], table
    assert sum(1 for ln in lines if "sink" in ln) == 2 and sum(1 for ln in lines if "source" in ln) == 2
    assert "suggested moves" in table and table.count("lightning-cli rebalance ") == 2, table
    assert json.loads(cli(l1, "-J", "balances-table"))["table"].splitlines() == lines
    b = l1.rpc.call("balances")
    assert sorted(c["role"] for c in b["channels"]) == ["sink", "sink", "source", "source"], b
    assert all(c["fee_proportional_millionths"] == 1000 for c in b["channels"]), b
    plan = l1.rpc.call("rebalanceall", {"dryrun": True})
    assert plan["status"] == "dryrun" and len(plan["moves"]) == 2, plan
    assert [m["command"] for m in b["suggestions"]] == [
        "lightning-cli rebalance {} {} {}sat".format(m["outgoing"], m["incoming"], m["amount_msat"] // 1000)
        for m in plan["moves"]], (b["suggestions"], plan)
    for m in plan["moves"]:
        assert m["fee_cap_msat"] <= (1000 + m["amount_msat"] * 1000 // 10**6) // 2, m
    assert l1.rpc.call("rebalancereport").get("last_job") is None, "a dry run starts nothing"

    started = l1.rpc.call("rebalanceall")
    assert started["status"] == "started" and started["job_id"] == 1, started
    report = wait_job_end(l1)
    assert report["last_job"]["ended"] == "every channel is within target", report
    wait_settled(*nodes)
    after = shares(l1)
    assert all(40.0 <= v <= 60.0 for v in after.values()), after
    assert report["total_successful_rebalances"] >= 2, report
    assert report["total_rebalance_fee_msat"] > 0
    assert report["total_rebalance_fee"] == f"{report['total_rebalance_fee_msat']}msat"
    assert_no_unpaid_rebalance_invoice(l1)
    fees_before = report["total_rebalance_fee_msat"]

    # History and report survive a plugin restart.
    l1.rpc.plugin_stop(plugin)
    l1.rpc.plugin_start(plugin)
    wait_until(lambda: l1.rpc.call("rebalancereport")["total_successful_rebalances"]
               == report["total_successful_rebalances"], 30, "history loaded after restart")
    again = l1.rpc.call("rebalancereport")
    for k in ("total_rebalanced_amount", "total_rebalance_fee", "average_rebalance_fee_ppm"):
        assert again[k] == report[k], (k, again, report)
    keys = [e["key"] for e in l1.rpc.listdatastore(["cln-rebalance", "history"])["datastore"]]
    assert keys and all(k[:2] == ["cln-rebalance", "history"] for k in keys), keys

    # Unbalance again: pay l4 over our channel to it (it then holds less of ours) and have l2
    # pay us over its channel (it then holds more). Start a run and stop it at once: it ends,
    # and nothing is left in flight.
    l1.rpc.pay(l4.rpc.invoice(300_000 * SAT, "out", "out")["bolt11"])
    l2.rpc.pay(l1.rpc.invoice(300_000 * SAT, "in", "in")["bolt11"])
    wait_settled(*nodes)
    e = realnet.rpc_error(l1.rpc.call, "rebalancestop", ["extra"])
    assert e["code"] == -32602, e
    assert l1.rpc.call("rebalancestop")["message"] == "no rebalanceall job is running"
    plan = l1.rpc.call("rebalanceall", {"dryrun": True})
    assert len(plan["moves"]) >= 1, plan
    assert l1.rpc.call("rebalanceall")["job_id"] == 2
    stopped = l1.rpc.call("rebalancestop")
    # The job may have finished its one move before the stop arrived.
    job = stopped if "running" in stopped else stopped["last_job"]
    assert job["job_id"] == 2 and job["running"] is False, stopped
    assert job["ended"] in ("stopped by rebalancestop", "every channel is within target"), job
    assert job["moves_in_flight"] == 0, job
    wait_until(lambda: no_htlcs(l1), 30, "no HTLC left")
    assert_no_unpaid_rebalance_invoice(l1)
    text = cli(l1, "rebalancereport-table")
    assert "rebalance" in text.lower() and not text.lstrip().startswith("{"), text
    final = l1.rpc.call("rebalancereport")
    assert final["total_rebalance_fee_msat"] >= fees_before
    assert isinstance(final["text"], str) and "rebalance" in final["text"].lower()
    e = realnet.rpc_error(l1.rpc.call, "rebalancereport", {"days": 0})
    assert e["code"] == -32602 and e["message"].startswith("days:"), e

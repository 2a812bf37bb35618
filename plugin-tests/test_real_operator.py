"""What an operator sees on real lightningd (issue 24), through the real `lightning-cli` binary
(a subprocess, not pyln's RPC): the `#` lines and progress bar of a rebalance that retries once,
`rebalanceall wait=true` followed to its end, the rebalances in flight in `rebalancereport`
while an HTLC is held, rebalance.py's formats, and the version check on a lightningd older
than the plugin supports ($CLN_REBALANCE_OLD_LIGHTNINGD: a release before v25.02; the stand-in's
test_standin_operator.py checks the same with a faked version).
See realnet.py for how the suite skips without lightningd.
"""

import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

pytest.register_assert_rewrite("realnet")
import realnet  # noqa: E402
from realnet import (  # noqa: E402
    assert_no_unpaid_rebalance_invoice, chan, snapshot, wait_settled, wait_until,
)

pytestmark = realnet.requires_lightningd
if realnet.SKIP_REASON is None:
    from pyln.testing.fixtures import *  # noqa: F401,F403  (node_factory, bitcoind, ...)
    from test_real_faults import Holder  # noqa: E402  (holds forwarded HTLCs on demand)

pytest_plugins = ["realnet"]

SAT = 1000  # msat
BAR = re.compile(r"^# +(?:Stage \d+/\d+ )?(\d+)/(\d+) \|[= ]{60}\|$")
# A lightningd release below the plugin's floor (src/lightningd/version.rs OLDEST_SUPPORTED).
OLD_LIGHTNINGD = os.environ.get("CLN_REBALANCE_OLD_LIGHTNINGD", "")


def lightning_cli():
    exe = shutil.which("lightning-cli")
    if exe is None:
        pytest.skip("lightning-cli not on PATH: the operator tests run the real binary")
    return exe


def cli(node, *args, timeout=120):
    """The real lightning-cli against `node` (notifications on, its default `-N info`): the
    `#` message lines, the progress bars (num, total) and the JSON answer, as printed."""
    out = subprocess.run(
        [lightning_cli(), "--lightning-dir={}".format(node.daemon.lightning_dir),
         "--network=regtest", *args], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, (args, out.returncode, out.stdout, out.stderr)
    messages, bars, rest = [], [], []
    for line in out.stdout.split("\n"):
        # A bar is redrawn in place (`\r# 2/60 |==  |`) until a message or the answer.
        for seg in (s for s in line.split("\r") if s):
            m = BAR.match(seg)
            if m:
                bars.append((int(m.group(1)), int(m.group(2))))
            elif seg.startswith("# "):
                messages.append(seg[2:])
            else:
                rest.append(seg)
    return messages, bars, json.loads("\n".join(rest)), out.stdout


def cli_text(node, *args):
    out = subprocess.run(
        [lightning_cli(), "--lightning-dir={}".format(node.daemon.lightning_dir),
         "--network=regtest", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout


def test_progress_formats_and_in_flight(node_factory, directory):
    """l1 -> l2 -> {l3 | l4} -> l5 -> l1, the cheaper side (via l3) drained, l5 holding HTLCs
    on demand: a rebalance that fails once on l2 -> l3 and completes over l4 prints a `#` line
    per attempt, the failure and the outcome, a bar per attempt, then its JSON with
    rebalance.py's `"NNNmsat"` strings; the report has rebalance.py's totals in that form; a
    rebalance held at l5 is listed in flight, in JSON and in the table, and gone once done."""
    holder = Holder(os.path.join(directory, "hold-plugin"))
    nodes, (out_scid, in_scid, s23, s24, s45) = realnet.diamond(
        node_factory, 300, realnet.PAY_AT_ONCE, l5_opts={"plugin": str(holder.plugin)})
    l1, l2, l3, l4, l5 = nodes
    holder.node = l5
    amt = 300_000 * SAT

    # Retries once: the lines say each attempt, each failure where and why in the error
    # table's words, and the outcome (the result's own message); a bar per attempt over
    # retry_for. The second attempt may go over l4 whole or in parts (the model has learned
    # that l2 -> l3 holds less than 300k sat, not how much): the lines say which.
    before = snapshot(l1)
    messages, bars, res, raw = cli(l1, "-k", "rebalance", "outgoing=" + out_scid, "incoming=" + in_scid,
                                   "amount_msat=300000sat", "retry_for=45")
    assert res["status"] == "complete" and res["attempts"] == 2, raw
    assert messages[0].startswith("attempt 1: 4 hops via {} > ".format(s23)), messages
    assert messages[1].startswith("attempt 1 failed: WIRE_TEMPORARY_CHANNEL_FAILURE at hop 1 "
                                  "(channel {}): a channel had too little liquidity".format(s23)), messages
    assert messages[1].endswith("; trying another route"), messages
    parts = res.get("parts") or [{"amount_msat": amt, "fee_msat": res["fee_msat"], "route": res["route"]}]
    if len(parts) == 1:
        assert messages[2].startswith("attempt 2: 4 hops via {} > {}, fee ".format(s24, s45)), messages
    else:
        # (A part replaced by two makes the result list one more part than the attempt planned.)
        assert re.match(r"^attempt 2: \d+ parts, fee \d+msat \(\d+ ppm\): ", messages[2]), messages
    # Between the attempt's line and the outcome: a part that failed (where, why) and its
    # replacement, in that order, or nothing.
    middle = messages[3:-1]
    for failed_line, replace_line in zip(middle[::2], middle[1::2]):
        assert re.match(r"^part \d+ \(\d+msat\) failed: WIRE_\w+ at hop \d+ \(channel \S+\)", failed_line), middle
        assert re.match(r"^\d+ part\(s\) replace \d+msat: via ", replace_line), middle
    assert len(middle) % 2 == 0, middle
    assert messages[-1] == res["message"], messages
    print("lightning-cli rebalance printed:\n" + "\n".join("# " + m for m in messages))
    assert len(bars) >= res["attempts"] and all(t == 45 and 1 <= n <= t for n, t in bars), (bars, raw)
    # The answer is whole JSON after the notifications, with rebalance.py's strings.
    fee = int(res["fee_msat"])
    assert (res["sent"], res["received"], res["fee"]) == ("{}msat".format(amt + fee), "{}msat".format(amt),
                                                         "{}msat".format(fee)), res
    assert (res["sent_msat"], res["received_msat"], res["amount_msat"]) == (amt + fee, amt, amt), res
    assert sum(int(p["amount_msat"]) for p in parts) == amt
    assert sum(int(p["fee_msat"]) for p in parts) == fee and 0 < fee <= amt * 1000 // 10**6, res
    for p in parts:
        scids = [h["short_channel_id"] for h in p["route"]]
        assert scids[0] == out_scid and scids[-1] == in_scid, p
    wait_settled(l1)
    wait_until(lambda: snapshot(l1)[out_scid] == before[out_scid] - amt - fee, 30, "outgoing balance")
    assert snapshot(l1)[in_scid] == before[in_scid] + amt

    # -N none: the same command prints only the answer.
    out = cli_text(l1, "-N", "none", "-k", "rebalance", "outgoing=" + out_scid, "incoming=" + in_scid,
                   "amount_msat=10000sat", "dryrun=true")
    assert not out.lstrip().startswith("#") and json.loads(out)["status"] == "dryrun", out

    _, _, rep, _ = cli(l1, "rebalancereport")
    assert rep["total_successful_rebalances"] == 1, rep
    assert rep["total_rebalanced_amount"] == "{}msat".format(amt), rep
    assert rep["total_rebalance_fee"] == "{}msat".format(fee), rep
    assert rep["total_rebalance_fee_msat"] == fee and rep["in_flight"] == [], rep

    # In flight: l5 holds the next rebalance's HTLC; the report lists it.
    small = 50_000 * SAT
    holder.hold()
    done = {}
    t = threading.Thread(target=lambda: done.update(r=cli(l1, "-k", "rebalance", "outgoing=" + out_scid,
                                                           "incoming=" + in_scid, "amount_msat=50000sat",
                                                           "retry_for=60")), daemon=True)
    t.start()
    held = holder.wait_held()
    _, _, rep, _ = cli(l1, "rebalancereport")
    assert len(rep["in_flight"]) == 1, rep
    f = rep["in_flight"][0]
    assert (f["outgoing_scid"], f["incoming_scid"], f["amount_msat"], f["parts"], f["job_id"],
            f["htlcs_out"], f["payment_hash"]) == (out_scid, in_scid, small, 1, 0, 1, held), f
    # `attempts` counts the attempts made, the one out now included (a first try over l3 may
    # have failed on what is left there); the table says which one is out.
    assert f["attempts"] >= 1 and 0 <= f["seconds"] <= 60, f
    # The HTLC the report counts is there in lightningd's own view.
    assert [h["payment_hash"] for h in chan(l1, out_scid)["htlcs"]] == [held]
    table = cli_text(l1, "rebalancereport-table")
    assert "In flight now:" in table, table
    row = [ln for ln in table.splitlines() if ln.strip().startswith("{} -> {} ".format(out_scid, in_scid))]
    assert len(row) == 1 and "attempt {}, 1 part(s) and 1 HTLC(s) out".format(f["attempts"]) in row[0], table
    assert "manual" in row[0], table
    holder.release()
    t.join(90)
    assert not t.is_alive()
    messages, _, res, _ = done["r"]
    assert res["status"] == "complete" and res["payment_hash"] == held, res
    assert messages[-1] == res["message"], messages
    wait_settled(*nodes)
    _, _, rep, _ = cli(l1, "rebalancereport")
    assert rep["in_flight"] == [] and rep["total_successful_rebalances"] == 2, rep
    assert "In flight now:" not in cli_text(l1, "rebalancereport-table")
    assert_no_unpaid_rebalance_invoice(l1)


def test_rebalanceall_wait_to_its_end(node_factory):
    """The ring of test_real_auto.py (two sources, two sinks): `lightning-cli rebalanceall
    wait=true` prints a line per move and the bar over the planned moves, then answers with
    what the job did, once it has ended; our channels are then within target."""
    nodes = realnet.auto_ring(node_factory)
    l1, l2, l3, l4, l5 = nodes
    before = snapshot(l1)
    plan = l1.rpc.call("rebalanceall", {"dryrun": True})
    assert len(plan["moves"]) == 2, plan

    messages, bars, res, raw = cli(l1, "-k", "rebalanceall", "wait=true", timeout=300)
    assert res["status"] == "ended" and res["running"] is False, raw
    assert res["ended"] == "every channel is within target", res
    assert res["planned"] == 2 and res["moves_completed"] >= 2, res
    moved = [m for m in messages if ": moved for " in m]
    assert len(moved) == res["moves_completed"], messages
    pairs = {"{} -> {} ".format(m["outgoing"], m["incoming"]) for m in plan["moves"]}
    for m in moved:
        assert re.match(r"^\S+ -> \S+ \d+(m?sat): moved for \d+msat$", m), m
        assert any(m.startswith(p) for p in pairs), (m, pairs)
    assert messages[-1] == "job {} ended: every channel is within target".format(res["job_id"]), messages
    # lightning-cli prints `num + 1`/`total`: here the moves ended so far; full at the end.
    assert bars and bars[-1][0] == bars[-1][1], (bars, raw)
    assert all(n < t for n, t in bars[:-1]), bars
    assert [n for n, _ in bars] == sorted(n for n, _ in bars), bars
    assert bars[-1][0] == res["moves_completed"] + res["moves_failed"] + res.get("moves_sized_out", 0), (bars, res)
    # Printed in order: every message before the answer; the answer is the job at its end.
    assert raw.rstrip().endswith("}"), raw
    wait_settled(*nodes)
    after = snapshot(l1)
    shares = {s: 100.0 * v / int(chan(l1, s)["total_msat"]) for s, v in after.items()}
    assert all(40.0 <= v <= 60.0 for v in shares.values()), shares
    assert sum(after.values()) == sum(before.values()) - res["fee_msat"], (before, after, res)
    rep = l1.rpc.call("rebalancereport")
    assert rep["last_job"]["job_id"] == res["job_id"] and not rep["last_job"]["running"], rep
    assert rep["total_rebalance_fee_msat"] == res["fee_msat"], (rep, res)
    assert_no_unpaid_rebalance_invoice(l1)

    # Without wait it answers at once, as before: started, and prints no move.
    messages, _, res, _ = cli(l1, "rebalanceall")
    assert res["status"] in ("started", "nothing to do"), res
    assert not [m for m in messages if ": moved for " in m], messages


def test_older_lightningd_disables_the_plugin_at_init(node_factory):
    """A lightningd below the plugin's floor (v25.02.0): the plugin says so in one
    log line and disables itself in its init answer; its commands are not there and the node
    runs on."""
    old = Path(OLD_LIGHTNINGD)
    if not OLD_LIGHTNINGD or not (old.is_file() and os.access(old, os.X_OK)):
        pytest.skip("no lightningd older than v25.02.0 given (set CLN_REBALANCE_OLD_LIGHTNINGD to one, "
                    "e.g. a v24.11 build, to run the version check on it; v25.02.2 and newer are "
                    "supported)")
    version = subprocess.run([str(old), "--version"], capture_output=True, text=True).stdout.strip()
    if not re.match(r"^v(1\d|2[0-4])\.", version):
        pytest.skip("{} is {}, not older than v25.02".format(old, version))
    plugin = str(realnet.plugin_binary())
    l1 = node_factory.get_node(options={"plugin": plugin}, executable=str(old))
    assert l1.rpc.getinfo()["version"] == version
    why = ("disabled itself at init: lightningd {} is older than v25.02.0, the oldest release "
           "cln-rebalance supports".format(version))
    wait_until(lambda: l1.daemon.is_in_log(re.escape(why)), 30, "the disable line")
    l1.daemon.logs_catchup()
    lines = [ln for ln in l1.daemon.logs if "older than v25.02.0" in ln]
    assert len(lines) == 1, lines
    assert "cln-rebalance" in lines[0], lines
    active = [p["name"] for p in l1.rpc.plugin("list")["plugins"] if p.get("active")]
    assert not any("cln-rebalance" in n for n in active), active
    e = realnet.rpc_error(l1.rpc.call, "rebalance", ["1x1x1", "2x2x2"])
    assert e["code"] == -32601, e
    assert l1.rpc.getinfo()["id"] == l1.info["id"]

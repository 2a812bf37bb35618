"""Helpers for the suite that runs the real cln-rebalance binary inside real lightningd
(pyln-testing, regtest). Used by plugin-tests/test_real_*.py; imports nothing from pyln at
module level, so importing it never fails.

Each test_real_*.py file starts with::

    import realnet
    pytestmark = realnet.requires_lightningd       # skip (with the reason) when unusable
    if realnet.SKIP_REASON is None:
        from pyln.testing.fixtures import *        # node_factory, bitcoind, ...
    pytest_plugins = ["realnet"]                   # keeps a failed test's /tmp/ltests-* dir

Environment:
    CLN_REBALANCE_BIN   the plugin binary to load (default: the newest of
                        target/release/cln-rebalance and target/debug/cln-rebalance)
    plus pyln-testing's own (VALGRIND, SLOW_MACHINE, RUST, TEST_DEBUG, TIMEOUT, TEST_DIR);
    unset, this module defaults them to VALGRIND=0 SLOW_MACHINE=1 TEST_DEBUG=0, and RUST=0
    when the lightningd found on PATH has no cln-grpc plugin.
"""

import math
import os
import shutil
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# For tests of what failed or held payment attempts do: `rebalance` pays at once, unprobed
# (by default a route the model is unsure of is probed first, and a probe held on the way
# ends the call: it can only fail back).
PAY_AT_ONCE = {"rebalance-probe-first": "false"}
# The label of every probe's sendpay (random payment hash, never paid).
PROBE_LABEL = "cln-rebalance probe"

# lightningd's short_channel_id parse of a channel that does not exist anywhere.
UNKNOWN_SCID = "999x999x999"
# A well-formed node id (a valid curve point: secp256k1's generator G) of nobody we know.
UNKNOWN_NODE_ID = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"


def _pyln_defaults():
    """pyln-testing reads these at import; give them defaults that suit an installed
    lightningd: no valgrind, generous timeouts, and no --grpc-port when this lightningd has no
    cln-grpc plugin (pyln passes one unless RUST=0, and lightningd then refuses to start)."""
    os.environ.setdefault("VALGRIND", "0")
    os.environ.setdefault("SLOW_MACHINE", "1")
    os.environ.setdefault("TEST_DEBUG", "0")
    lightningd = shutil.which("lightningd")
    if lightningd and "RUST" not in os.environ:
        prefix = Path(lightningd).resolve().parent.parent
        if not (prefix / "libexec" / "c-lightning" / "plugins" / "cln-grpc").exists():
            os.environ["RUST"] = "0"


def skip_reason():
    """Why the real-lightningd suite cannot run here, or None when it can."""
    missing = [b for b in ("lightningd", "bitcoind") if shutil.which(b) is None]
    if missing:
        return ("real-lightningd suite skipped: {} not on PATH (install Core Lightning v26.06 "
                "and bitcoind, or put them on PATH, to run it)".format(" and ".join(missing)))
    try:
        import pyln.client  # noqa: F401
        import pyln.testing.fixtures  # noqa: F401
    except ImportError as e:
        return ("real-lightningd suite skipped: pyln-testing not importable ({}); "
                "pip install -r plugin-tests/requirements.txt".format(e))
    return None


# Evaluated once, at import. The test modules mark every test skipif(SKIP_REASON) rather than
# skipping at module level, so a run of only this suite reports skips (exit 0), not "no tests
# collected" (exit 5).
_pyln_defaults()
SKIP_REASON = skip_reason()
requires_lightningd = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


def lightningd_version():
    """(major, minor) of the lightningd on PATH (`lightningd --version`: v26.06.6), or None."""
    import re
    import subprocess
    exe = shutil.which("lightningd")
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    m = re.match(r"v?(\d+)\.(\d+)", out.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def plugin_binary():
    """Path of the plugin to load: $CLN_REBALANCE_BIN, else the newest cargo build of it."""
    env = os.environ.get("CLN_REBALANCE_BIN")
    if env:
        p = Path(env).resolve()
        if not (p.is_file() and os.access(p, os.X_OK)):
            pytest.fail("CLN_REBALANCE_BIN={} is not an executable file".format(env))
        return p
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    found = [
        target / profile / "cln-rebalance"
        for profile in ("release", "debug")
        if (target / profile / "cln-rebalance").is_file()
    ]
    if not found:
        pytest.fail(
            "cln-rebalance binary not found under {}: build it first (`make` or "
            "`cargo build --release`) or set CLN_REBALANCE_BIN".format(target)
        )
    return max(found, key=lambda p: p.stat().st_mtime)


# pytest hook, active because the test modules list this module in `pytest_plugins`:
# pyln-testing's `directory` fixture reads `rep_call` to keep a failed test's node directories
# (logs) instead of deleting them.
@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def wait_until(pred, timeout=60, what=None):
    """Poll `pred` every 0.2 s (pyln's wait_for backs off to 5 s, which adds up)."""
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out after {}s waiting for {}".format(timeout, what or pred))
        time.sleep(0.2)


# ---- channels -------------------------------------------------------------------------------

def channels(node):
    return node.rpc.listpeerchannels()["channels"]


def chan(node, scid):
    cs = [c for c in channels(node) if c.get("short_channel_id") == scid]
    assert len(cs) == 1, "{} has no channel {}".format(node.info["id"], scid)
    return cs[0]


def scid_between(a, b):
    """The (single) short_channel_id of a's channel with b."""
    cs = a.rpc.listpeerchannels(b.info["id"])["channels"]
    assert len(cs) == 1, cs
    return cs[0]["short_channel_id"]


def to_us(node, scid):
    return int(chan(node, scid)["to_us_msat"])


def snapshot(node):
    """scid -> to_us_msat of every channel of `node`."""
    return {c["short_channel_id"]: int(c["to_us_msat"]) for c in channels(node) if "short_channel_id" in c}


def no_htlcs(node):
    return all(not c.get("htlcs") for c in channels(node))


def wait_settled(*nodes, timeout=60):
    """No HTLC left in flight on any channel of these nodes."""
    for n in nodes:
        wait_until(lambda: no_htlcs(n), timeout, "no pending HTLC on {}".format(n.info["id"][:8]))


def rebalance_invoices(node):
    return [i for i in node.rpc.listinvoices()["invoices"] if i["label"].startswith("rebalance-")]


def assert_no_unpaid_rebalance_invoice(node):
    left = [i for i in rebalance_invoices(node) if i["status"] == "unpaid"]
    assert left == [], "unpaid rebalance invoices left behind: {}".format(left)


def sendpays(node):
    return node.rpc.listsendpays()["payments"]


def wait_graph(node, nchannels, timeout=90):
    """`node` sees `nchannels` public channels, both directions active."""
    def ok():
        cs = [c for c in node.rpc.listchannels()["channels"] if c["public"]]
        return len(cs) == 2 * nchannels and all(c["active"] for c in cs)
    wait_until(ok, timeout, "{} channel directions in {}'s gossip".format(2 * nchannels, node.info["id"][:8]))


def policy(node, scid, source_id):
    """`source_id`'s fee policy on `scid` as `node` knows it: gossip, or for one of our own
    unannounced channels the peer's update in listpeerchannels."""
    cs = [c for c in node.rpc.listchannels(scid)["channels"] if c["source"] == source_id]
    if len(cs) == 1:
        return cs[0]
    assert cs == [], cs
    ours = [c for c in channels(node) if c["peer_id"] == source_id
            and scid in (c.get("short_channel_id"), c.get("alias", {}).get("remote"))]
    assert len(ours) == 1, "no policy for {} from {}".format(scid, source_id)
    u = ours[0]["updates"]["remote"]
    return {"destination": node.info["id"], "direction": 1 - int(ours[0]["direction"]),
            "base_fee_millisatoshi": u["fee_base_msat"],
            "fee_per_millionth": u["fee_proportional_millionths"], "delay": u["cltv_expiry_delta"]}


def wait_policy(node, scid, source_id, base, ppm, timeout=60):
    """Wait until `node`'s gossip shows `source_id`'s fee update on `scid`."""
    def ok():
        cs = [c for c in node.rpc.listchannels(scid)["channels"] if c["source"] == source_id]
        return (len(cs) == 1 and int(cs[0]["base_fee_millisatoshi"]) == base
                and int(cs[0]["fee_per_millionth"]) == ppm)
    wait_until(ok, timeout, "fee update on {}".format(scid))


def push(src, dst, amount_msat):
    """Move `amount_msat` of src's liquidity to dst over their direct channel (a real payment)."""
    src.pay(dst, amount_msat)
    wait_settled(src, dst)


def diamond(node_factory, l4_feeppm, l1_opts=None, l5_opts=None):
    """l1 -> l2 -> {l3 | l4} -> l5 -> l1, all six channels announced, l1 running the plugin.
    The l4 way is made dearer (100 msat + `l4_feeppm` on l4 -> l5), so a rebalance tries the l3
    way first while nothing is known of either, and that way cannot carry 300,000 sat: l2 has
    pushed all but 100,000 sat of l2 -> l3 to l3. Returns the nodes and the channels
    (l1-l2, l1-l5, l2-l3, l2-l4, l4-l5)."""
    opts = [dict({"plugin": str(plugin_binary())}, **(l1_opts or {})), {}, {}, {}, l5_opts or {}]
    l1, l2, l3, l4, l5 = nodes = node_factory.get_nodes(5, opts=opts)
    node_factory.join_nodes([l1, l2, l3, l5, l1])
    node_factory.join_nodes([l2, l4, l5])
    l1.bitcoin.generate_block(5)
    scids = (scid_between(l1, l2), scid_between(l1, l5), scid_between(l2, l3),
             scid_between(l2, l4), scid_between(l4, l5))
    wait_graph(l1, 6)
    l4.rpc.setchannel(l5.info["id"], feebase=100, feeppm=l4_feeppm)
    wait_policy(l1, scids[4], l4.info["id"], 100, l4_feeppm)
    push(l2, l3, int(chan(l2, scids[2])["spendable_msat"]) - 100_000 * 1000)
    return nodes, scids


def ring_with_htlcmax(node_factory, most):
    """Ring l1 -> l2 -> l3 -> l1 (1M sat each, announced), l1 running the plugin; l3 forwards
    at most `most` msat an HTLC to l1 (`setchannel ... htlcmax`), seen at l1. Returns the nodes
    and l1's outgoing (to l2) and incoming (from l3) channels."""
    nodes = node_factory.get_nodes(3, opts=[{"plugin": str(plugin_binary())}, {}, {}])
    l1, l2, l3 = nodes
    node_factory.join_nodes([l1, l2, l3, l1], wait_for_announce=True)
    out_scid, in_scid = scid_between(l1, l2), scid_between(l1, l3)
    wait_graph(l1, 3)
    l3.rpc.setchannel(l1.info["id"], htlcmax=most)
    wait_until(lambda: int(chan(l1, in_scid)["updates"]["remote"]["htlc_maximum_msat"]) == most,
               60, "l3's htlc maximum at l1")
    return nodes, out_scid, in_scid


def auto_ring(node_factory):
    """l1 funds l1 -> l2 and l1 -> l3 (all ours) and receives l4 -> l1 and l5 -> l1 (nothing
    ours); the others form l2 -> l3 -> l4 -> l5 and l2 -> l5 (so two moves need not share
    l3 -> l4). l1 runs the plugin and charges 1000 msat + 1000 ppm on every channel, so the
    economics rule (half of that) pays for the network's fees (1 msat + 10 ppm a hop)."""
    opts = [{"plugin": str(plugin_binary())}, {}, {}, {}, {}]
    l1, l2, l3, l4, l5 = nodes = node_factory.get_nodes(5, opts=opts)
    node_factory.join_nodes([l1, l2, l3, l4, l5, l1])
    node_factory.join_nodes([l1, l3])
    node_factory.join_nodes([l4, l1])
    node_factory.join_nodes([l2, l5])
    l1.bitcoin.generate_block(5)
    wait_graph(l1, 8)
    l1.rpc.setchannel("all", feebase=1000, feeppm=1000)
    return nodes


# ---- rebalance results ----------------------------------------------------------------------

def check_route_math(node, res, me):
    """Every route the plugin reported (the one `route`, or each of the `parts` when paid in
    several) is consistent hop by hop with the gossip fee policies (fees rounded up, delays
    added), starts on the outgoing channel, ends at us on the incoming one; the parts deliver
    the amount together. Returns the fee this implies."""
    parts = res.get("parts") or [{"route": res["route"], "hops": res["hops"],
                                  "amount_msat": res["amount_msat"], "fee_msat": res["fee_msat"]}]
    assert res["route"] == parts[0]["route"] and res["hops"] == len(parts[0]["route"]), res
    # The last hop may name a private channel by the alias the peer knows it by.
    inc = [c for c in channels(node) if c.get("short_channel_id") == res["incoming_scid"]][0]
    delivered = fee = 0
    for part in parts:
        route = part["route"]
        assert len(route) == part["hops"]
        assert route[0]["short_channel_id"] == res["outgoing_scid"]
        assert route[-1]["short_channel_id"] in (res["incoming_scid"], inc.get("alias", {}).get("remote"))
        assert route[-1]["node_id"] == me
        assert int(route[-1]["amount_msat"]) == int(part["amount_msat"])
        ids = [h["node_id"] for h in route]
        assert me not in ids[:-1], "route passes through us: {}".format(ids)
        for i in range(len(route) - 1, 0, -1):
            hop, prev = route[i], route[i - 1]
            pol = policy(node, hop["short_channel_id"], prev["node_id"])
            assert pol["destination"] == hop["node_id"]
            assert int(hop["direction"]) == int(pol["direction"])
            amt = int(hop["amount_msat"])
            hop_fee = int(pol["base_fee_millisatoshi"]) + math.ceil(amt * int(pol["fee_per_millionth"]) / 10**6)
            assert int(prev["amount_msat"]) == amt + hop_fee, "hop {} fee: {} vs {}+{}".format(i, prev, amt, hop_fee)
            assert int(prev["delay"]) == int(hop["delay"]) + int(pol["delay"]), "hop {} delay".format(i)
        part_fee = int(route[0]["amount_msat"]) - int(route[-1]["amount_msat"])
        assert int(part["fee_msat"]) == part_fee, part
        delivered += int(route[-1]["amount_msat"])
        fee += part_fee
    assert delivered == int(res["amount_msat"]), (delivered, res)
    assert int(res["fee_msat"]) == fee
    assert abs(float(res["fee_ppm"]) - fee * 10**6 / int(res["amount_msat"])) <= 1
    return fee


def check_complete(node, res, before, out_scid, in_scid, amount, cap=None):
    """A completed rebalance really moved the money: outgoing down by amount+fee, incoming up
    by amount, every other channel unchanged, nothing pending, no unpaid invoice."""
    me = node.info["id"]
    assert res["status"] == "complete", res
    assert res["outgoing_scid"] == out_scid and res["incoming_scid"] == in_scid, res
    assert int(res["amount_msat"]) == amount
    assert res["attempts"] >= 1
    assert len(res["payment_hash"]) == 64
    fee = check_route_math(node, res, me)
    if cap is not None:
        assert fee <= cap, "fee {} over cap {}".format(fee, cap)
    wait_settled(node)
    wait_until(lambda: to_us(node, in_scid) == before[in_scid] + amount, 30, "incoming balance")
    after = snapshot(node)
    assert after[out_scid] == before[out_scid] - amount - fee, (before, after, fee)
    assert after[in_scid] == before[in_scid] + amount
    for scid in before:
        if scid not in (out_scid, in_scid):
            assert after[scid] == before[scid], "channel {} moved".format(scid)
    assert_no_unpaid_rebalance_invoice(node)
    pays = [p for p in sendpays(node) if p["payment_hash"] == res["payment_hash"]]
    assert pays and any(p["status"] == "complete" for p in pays), pays
    assert not any(p["status"] == "pending" for p in pays), pays
    return fee


def check_nothing_paid(node, before, sendpays_before, others=()):
    """Nothing moved: same balances, no new sendpay succeeded, no HTLC left, no unpaid invoice."""
    wait_settled(node, *others)
    assert snapshot(node) == before
    key = lambda p: (p["payment_hash"], p.get("groupid"), p.get("partid"))  # noqa: E731
    old = {key(p) for p in sendpays_before}
    new = [p for p in sendpays(node) if key(p) not in old]
    assert all(p["status"] == "failed" for p in new), new
    assert_no_unpaid_rebalance_invoice(node)


HOLD_PLUGIN = """#!{python}
# Test-only plugin: holds every HTLC this node is asked to forward for the number of seconds
# in the file `hold-seconds` next to it (0 when the file is missing), then lets it continue.
import os
import time
from pyln.client import Plugin

plugin = Plugin()
HOLD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hold-seconds")


@plugin.hook("htlc_accepted")
def on_htlc_accepted(onion, htlc, plugin, **kwargs):
    try:
        secs = float(open(HOLD).read())
    except (OSError, ValueError):
        secs = 0
    if "short_channel_id" in onion and secs > 0:
        plugin.log("holding HTLC {{}} for {{}}s".format(htlc["payment_hash"], secs))
        time.sleep(secs)
    return {{"result": "continue"}}


plugin.run()
"""


def hold_plugin(directory):
    """Write the HTLC-holding test plugin into `directory`; returns (plugin path, hold file)."""
    import sys
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    p = d / "hold_htlcs.py"
    p.write_text(HOLD_PLUGIN.format(python=sys.executable))
    p.chmod(0o755)
    return p, d / "hold-seconds"


def rpc_error(fn, *args, **kwargs):
    """Call and return the JSON-RPC error object, failing if the call succeeded."""
    from pyln.client import RpcError
    try:
        r = fn(*args, **kwargs)
    except RpcError as e:
        return e.error
    raise AssertionError("expected an error, got {}".format(r))

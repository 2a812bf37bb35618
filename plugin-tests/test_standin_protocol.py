"""The stand-in itself, with a minimal pyln-client plugin (standin/testplugin): the plugin
protocol (getmanifest/init, forwarded calls, hooks, logs, shutdown) and the lightningd methods
and behaviours the rebalancer depends on (sendpay/waitsendpay semantics, held HTLCs, errors)."""
import os
import subprocess
import sys
import threading
import time

import pytest
from pyln.client import RpcError

from conftest import standin_demo_ids, standin_route

IDS = standin_demo_ids()
TRIANGLE = [(IDS["alice"], "800001x1x0"), (IDS["carol"], "700101x7x1"), (IDS["standin"], "800004x1x0")]


def test_init_options_and_configuration(standin_testplugin):
    r = standin_testplugin.rpc.call("tp-echo", ["a", "b"])
    assert (r["first"], r["second"]) == ("a", "b")
    init = r["init"]
    assert init["options"] == {"tp-hook-mode": "continue", "tp-number": 7}
    conf = init["configuration"]
    assert conf["lightning-dir"] == str(standin_testplugin.dir / "regtest")
    assert conf["rpc-file"] == "lightning-rpc"
    assert conf["network"] == "regtest" and conf["startup"] is True
    r = standin_testplugin.rpc.call("tp-echo", {"second": "k"})
    assert (r["first"], r["second"]) == (None, "k")
    # The plugin calls back over the socket.
    assert standin_testplugin.rpc.call("tp-getinfo")["alias"] == "standin"
    helps = [h["command"] for h in standin_testplugin.rpc.help()["help"]]
    assert any(h.startswith("tp-echo") for h in helps)
    assert any(h.startswith("sendpay") for h in helps)
    with pytest.raises(RpcError) as e:
        standin_testplugin.rpc.call("no-such-method")
    assert e.value.error == {"code": -32601, "message": "Unknown command 'no-such-method'"}


def test_invoice_payment_hook_sees_htlcs(standin_testplugin):
    rpc = standin_testplugin.rpc
    inv = rpc.invoice(100_000_000, "hooked", "d")
    route = standin_route(rpc, TRIANGLE, 100_000_000)
    rpc.sendpay(route, inv["payment_hash"], payment_secret=inv["payment_secret"])
    done = rpc.waitsendpay(inv["payment_hash"], timeout=10)
    assert done["status"] == "complete"
    calls = rpc.call("tp-hooks")["calls"]
    assert len(calls) == 1
    assert calls[0]["payment"]["label"] == "hooked"
    assert calls[0]["payment"]["msat"] == 100_000_000
    seen = {(h["short_channel_id"], h["direction"]) for h in calls[0]["htlcs"]}
    assert seen == {("800004x1x0", "in"), ("800001x1x0", "out")}
    # Subscribed notification arrived too.
    assert rpc.call("tp-hooks")["notifications"][0]["label"] == "hooked"

    # A rejecting hook: permanent failure at the destination, nothing moves.
    rpc.call("tp-set-mode", ["reject"])
    inv = rpc.invoice(100_000_000, "rejected", "d")
    before = standin_testplugin.balances_snapshot()
    rpc.sendpay(standin_route(rpc, TRIANGLE, 100_000_000), inv["payment_hash"],
                payment_secret=inv["payment_secret"])
    with pytest.raises(RpcError) as e:
        rpc.waitsendpay(inv["payment_hash"], timeout=10)
    err = e.value.error
    assert err["code"] == 203
    assert err["data"]["failcodename"] == "WIRE_INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS"
    assert err["data"]["erring_index"] == 3
    assert standin_testplugin.balances_snapshot() == before
    assert rpc.listinvoices("rejected")["invoices"][0]["status"] == "unpaid"


def test_held_htlc_times_out_then_completes(standin_testplugin):
    rpc = standin_testplugin.rpc
    rpc.call("dev-hold", {"node": "carol"})
    inv = rpc.invoice(50_000_000, "held", "d")
    route = standin_route(rpc, TRIANGLE, 50_000_000)
    assert rpc.sendpay(route, inv["payment_hash"], payment_secret=inv["payment_secret"])["status"] == "pending"
    t0 = time.time()
    with pytest.raises(RpcError) as e:
        rpc.waitsendpay(inv["payment_hash"], timeout=1)
    assert e.value.error["code"] == 200
    assert e.value.error["message"] == "Timed out while waiting"
    assert 0.9 < time.time() - t0 < 5
    # Still in flight: visible on our first channel, and a retry is refused.
    ch = rpc.listpeerchannels(short_channel_id="800001x1x0")["channels"][0]
    assert [h["direction"] for h in ch["htlcs"]] == ["out"]
    with pytest.raises(RpcError) as e:
        rpc.sendpay(route, inv["payment_hash"], payment_secret=inv["payment_secret"])
    assert e.value.error["code"] == 200

    # A blocked waitsendpay does not hold up other requests, on this or another connection.
    result = {}
    waiter = threading.Thread(
        target=lambda: result.setdefault("r", rpc.waitsendpay(inv["payment_hash"], timeout=20)))
    waiter.start()
    time.sleep(0.3)
    assert rpc.getinfo()["id"] == IDS["standin"]
    rpc.call("dev-release", {})
    waiter.join(10)
    assert result["r"]["status"] == "complete"
    assert rpc.listpeerchannels(short_channel_id="800001x1x0")["channels"][0]["htlcs"] == []


def test_sendpay_errors_like_lightningd(standin_testplugin):
    rpc = standin_testplugin.rpc
    inv = rpc.invoice(50_000_000, "errs", "d")
    h, s = inv["payment_hash"], inv["payment_secret"]
    route = standin_route(rpc, TRIANGLE, 50_000_000)
    route[0]["amount_msat"] -= 1
    rpc.sendpay(route, h, payment_secret=s)
    with pytest.raises(RpcError) as e:
        rpc.waitsendpay(h)
    err = e.value.error
    assert err["code"] == 204
    assert err["message"] == "failed: WIRE_FEE_INSUFFICIENT (reply from remote)"
    d = err["data"]
    assert (d["erring_index"], d["erring_node"], d["erring_channel"], d["failcode"]) == (
        1, IDS["alice"], "700101x7x1", 4108)
    # Failed before waitsendpay was called: lightningd then reports it "failed".
    assert d["payment_hash"] == h and d["status"] == "failed"

    with pytest.raises(RpcError) as e:
        rpc.sendpay([{"id": IDS["bob"], "channel": "800001x1x0", "amount_msat": 1, "delay": 9}], h)
    assert e.value.error["message"] == "No connection to first peer found"

    with pytest.raises(RpcError) as e:
        rpc.sendpay("nope", h)
    assert e.value.error["code"] == -32602

    with pytest.raises(RpcError) as e:
        rpc.waitsendpay("00" * 32)
    assert e.value.error["code"] == 208

    with pytest.raises(RpcError) as e:
        rpc.invoice(1000, "errs", "dup")
    assert e.value.error == {"code": 900, "message": "Duplicate label 'errs'"}
    with pytest.raises(RpcError) as e:
        rpc.delinvoice("errs", "paid")
    assert e.value.error["code"] == 906
    assert rpc.delinvoice("errs", "unpaid")["label"] == "errs"
    with pytest.raises(RpcError) as e:
        rpc.delinvoice("errs", "unpaid")
    assert e.value.error == {"code": 905, "message": "Unknown invoice"}


def test_dev_controls_and_true_state(standin_testplugin):
    rpc = standin_testplugin.rpc
    rpc.call("dev-set-online", {"node": "carol", "online": False})
    ch = rpc.listpeerchannels(IDS["carol"])["channels"][0]
    assert ch["peer_connected"] is False
    rpc.call("dev-drain", {"short_channel_id": "800003x1x0", "node": "standin"})
    ch = rpc.listpeerchannels(short_channel_id="800003x1x0")["channels"][0]
    assert ch["spendable_msat"] == 0 and ch["to_us_msat"] == ch["our_reserve_msat"]
    assert standin_testplugin.our_msat("800003x1x0") == ch["to_us_msat"]
    rpc.call("dev-set-policy", {"short_channel_id": "700101x7x1", "source": "alice",
                                "fee_proportional_millionths": 777})
    e = [c for c in rpc.listchannels("700101x7x1")["channels"] if c["source"] == IDS["alice"]][0]
    assert e["fee_per_millionth"] == 777
    before = rpc.getinfo()["blockheight"]
    rpc.call("dev-timetravel", {"blocks": 6})
    assert rpc.getinfo()["blockheight"] == before + 6


def test_broken_log_is_flagged(standin_factory):
    s = standin_factory(plugin="testplugin", allow_broken=True)
    s.rpc.call("tp-log", ["error", "something went badly wrong"])
    time.sleep(0.2)
    assert any("something went badly wrong" in line for line in s.broken_lines())


def test_shutdown_notification_and_exit(standin_factory):
    s = standin_factory(plugin="testplugin")
    assert s.rpc.stop() == {"result": "Shutdown complete"}
    assert s.proc.wait(timeout=10) == 0
    assert any("testplugin shutting down" in line for line in s.log_lines())


def test_testplugin_runs_with_the_test_interpreter(standin_testplugin):
    # Started through conftest's wrapper with sys.executable, so it uses this venv's pyln-client
    # whatever `python3` is first on PATH (issue 8: its shebang found a python without pyln).
    r = standin_testplugin.rpc.call("tp-python")
    assert r["prefix"] == sys.prefix
    assert os.path.realpath(r["executable"]) == os.path.realpath(sys.executable)
    assert os.path.realpath(r["pyln_client"]).startswith(os.path.realpath(sys.prefix) + os.sep)


@pytest.mark.skipif(os.environ.get("CLN_REBALANCE_PYTHON_GUARD") != "1",
                    reason="PATH guard is set up by make test (plugin-tests/python_guard.py)")
def test_path_python_has_only_the_stdlib():
    # make test's guard is in force: a subprocess that finds Python through PATH gets the stdlib
    # and none of this machine's packages (nor the venv's), so leaning on them fails loudly.
    for exe in ("python3", "python"):
        assert subprocess.run([exe, "-c", "import json"]).returncode == 0
        r = subprocess.run([exe, "-c", "import pyln.client"], capture_output=True, text=True)
        assert r.returncode != 0 and "No module named 'pyln'" in r.stderr, r.stderr
        r = subprocess.run([exe, "-c", "import sys; print(sys.flags.no_site)"],
                           capture_output=True, text=True)
        assert r.stdout.strip() == "1"

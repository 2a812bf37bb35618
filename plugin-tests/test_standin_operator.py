"""What an operator sees, end to end on the stand-in: progress notifications reaching the client
that asked for them (and nobody else), rebalance.py's formats, the rebalances in flight in the
report, and the version check at start.

Notifications are read off the RPC socket directly, as lightning-cli does: it enables them on
its connection (`notifications`), then prints every `message` / `progress` that arrives before
the answer to its request."""
import json
import socket
import threading
import time

import pytest

SAT = 1000


class RawClient:
    """One connection to the socket, speaking JSON-RPC as lightning-cli does."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.buf = b""

    def send(self, obj):
        self.sock.sendall(json.dumps(obj).encode() + b"\n\n")

    def read(self, timeout=60):
        """The next JSON message on the connection."""
        self.sock.settimeout(timeout)
        dec = json.JSONDecoder()
        while True:
            text = self.buf.decode(errors="replace").lstrip()
            if text:
                try:
                    obj, end = dec.raw_decode(text)
                    self.buf = text[end:].encode()
                    return obj
                except ValueError:
                    pass
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def call(self, method, params, req_id):
        """The notifications that came before the answer, and the answer."""
        self.send({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params})
        notes = []
        while True:
            m = self.read()
            if m.get("id") == req_id:
                return notes, m
            notes.append(m)


def socket_path(s):
    return s.dir / "regtest" / "lightning-rpc"


def drain_cheapest_route(s):
    # The cheapest path us->alice->carol->us is dry in its middle: the first attempt fails.
    s.rpc.call("dev-drain", {"short_channel_id": "700101x7x1", "node": "alice"})


REBALANCE = {"outgoing": "800001x1x0", "incoming": "800004x1x0",
             "amount_msat": 100_000 * SAT, "maxfeeppm": 5000}


def test_a_rebalance_that_retries_tells_the_client_each_attempt(standin):
    s = standin
    drain_cheapest_route(s)
    c = RawClient(socket_path(s))
    _, enabled = c.call("notifications", {"enable": True}, "cli:notifications#1")
    assert "result" in enabled, enabled
    notes, answer = c.call("rebalance", REBALANCE, "cli:rebalance#2")
    res = answer["result"]
    assert res["status"] == "complete" and res["attempts"] >= 2, res
    # Every notification is for our request, with lightningd's id given back as ours.
    assert notes and all(n["params"]["id"] == "cli:rebalance#2" for n in notes), notes
    lines = [n["params"]["message"] for n in notes if n["method"] == "message"]
    bars = [n["params"] for n in notes if n["method"] == "progress"]
    assert lines[0].startswith("attempt 1: 3 hops via 700101x7x1, fee "), lines
    assert lines[1].startswith("attempt 1 failed: WIRE_TEMPORARY_CHANNEL_FAILURE at hop 1 "
                               "(channel 700101x7x1): a channel had too little liquidity"), lines
    assert lines[1].endswith("; trying another route"), lines
    # Then the probes of the next set (nothing is known of its channels), and its attempt.
    assert lines[2].startswith("probe 1: "), lines
    assert any(line.startswith("attempt 2: ") for line in lines[3:]), lines
    assert lines[-1] == res["message"], lines
    assert len(bars) == res["attempts"]
    assert all(b["total"] == 120 and 0 <= b["num"] < b["total"] for b in bars), bars
    # The JSON result is whole, whatever came before it.
    assert res["received"] == f"{100_000 * SAT}msat"


def test_no_notifications_unless_asked(standin):
    s = standin
    drain_cheapest_route(s)
    c = RawClient(socket_path(s))
    notes, answer = c.call("rebalance", REBALANCE, "cli:rebalance#1")
    assert answer["result"]["attempts"] >= 2
    assert notes == [], notes


def test_rebalanceall_wait_follows_the_job(standin_factory):
    s = standin_factory(network="tour.json")
    c = RawClient(socket_path(s))
    c.call("notifications", {"enable": True}, "cli:notifications#1")
    notes, answer = c.call("rebalanceall", {"wait": True}, "cli:rebalanceall#2")
    res = answer["result"]
    assert res["status"] == "ended" and res["running"] is False, res
    assert res["ended"] == "every channel is within target", res
    lines = [n["params"]["message"] for n in notes if n["method"] == "message"]
    bars = [(n["params"]["num"], n["params"]["total"]) for n in notes if n["method"] == "progress"]
    assert sum(": moved for " in l for l in lines) == res["moves_completed"] >= 2, lines
    assert lines[-1] == f"job {res['job_id']} ended: every channel is within target", lines
    assert bars[-1][0] + 1 == bars[-1][1], "the bar ends full: {}".format(bars)
    assert all(n + 1 < t for n, t in bars[:-1]), bars


def test_rebalance_py_formats_and_the_report_in_its_form(standin):
    s = standin
    res = s.rpc.call("rebalance", REBALANCE)
    fee = res["fee_msat"]
    assert (res["sent"], res["received"], res["fee"]) == (
        f"{100_000 * SAT + fee}msat", f"{100_000 * SAT}msat", f"{fee}msat")
    assert (res["sent_msat"], res["received_msat"]) == (100_000 * SAT + fee, 100_000 * SAT)
    rep = s.rpc.call("rebalancereport")
    assert rep["total_rebalanced_amount"] == f"{100_000 * SAT}msat"
    assert rep["total_rebalance_fee"] == f"{fee}msat"
    assert rep["total_rebalance_fee_msat"] == fee


def test_the_report_lists_a_rebalance_in_flight(standin):
    s = standin
    s.rpc.call("dev-hold", {"node": "carol"})
    out = {}

    def run():
        try:
            out["res"] = s.rpc.call("rebalance", {**REBALANCE, "retry_for": 5})
        except Exception as e:  # noqa: BLE001 - the held rebalance gives up: that is expected
            out["err"] = e

    t = threading.Thread(target=run)
    t.start()
    seen = None
    deadline = time.time() + 10
    while time.time() < deadline:
        rep = s.rpc.call("rebalancereport")
        if rep["in_flight"] and rep["in_flight"][0]["htlcs_out"] == 1:
            seen = rep
            break
        time.sleep(0.05)
    assert seen is not None, "the held rebalance never showed in flight"
    f = seen["in_flight"][0]
    assert (f["outgoing_scid"], f["incoming_scid"], f["amount_msat"], f["parts"], f["job_id"]) == (
        "800001x1x0", "800004x1x0", 100_000 * SAT, 1, 0)
    assert "In flight now:" in s.rpc.call("rebalancereport-table")["report"]
    t.join(30)
    s.rpc.call("dev-release", {"node": "carol"})
    assert "err" in out, out
    assert s.rpc.call("rebalancereport")["in_flight"] == []


@pytest.mark.parametrize("version,active", [("v24.11.2", False), ("v26.06.6", True)])
def test_an_unsupported_lightningd_disables_the_plugin_at_start(standin_factory, version, active):
    s = standin_factory(args=["--version-string", version])
    assert s.rpc.getinfo()["version"] == version
    names = [p["name"] for p in s.rpc.call("plugin", {"subcommand": "list"})["plugins"]
             if p.get("active")]
    assert any("cln-rebalance" in n for n in names) == active, names
    log = "\n".join(s.log_lines())
    if active:
        assert "disabled itself" not in log
    else:
        assert ("disabled itself at init: lightningd v24.11.2 is older than v25.02.0, the oldest "
                "release cln-rebalance supports") in log, log

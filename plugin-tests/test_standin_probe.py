"""Probing end to end on lightningd-standin (networks/demo.json), through the plugin binary and
lightningd's RPC as an operator calls it: `rebalance-probe` finds a known bottleneck with probes
that can never be paid (the stand-in fails an unknown payment hash at us with 16399 at once, as
lightningd does), says whether an amount can move, and leaves nothing behind; `rebalance ...
amount_msat=max` moves what it finds; background probing (`rebalance-probe-per-hour`) runs
while idle, teaches the model and leaves nothing behind either.

The bottleneck: out through alice (800001x1x0), back in from carol (800004x1x0). Alice's
side of alice -> erin is drained, and of alice -> carol set to 300k sat: every way from alice
to carol goes over that channel, so what alice can spend on it (300k sat less her channel
reserve, the stand-in's `spendable` figure; carol's fee on the way in rides on it too) is the
most that can move; our own channels carry more.
"""
import time

from pyln.client import RpcError

from conftest import wait_log

SAT = 1000
OUT, INC = "800001x1x0", "800004x1x0"
ALICE_CAROL, ALICE_ERIN = "700101x7x1", "700102x3x0"
BOTTLENECK = 300_000 * SAT


def bottlenecked(s):
    """Sets the bottleneck up; what alice can send over it."""
    s.rpc.call("dev-set-balance", {"short_channel_id": ALICE_CAROL, "node": "alice",
                                   "amount_msat": BOTTLENECK})
    s.rpc.call("dev-drain", {"short_channel_id": ALICE_ERIN, "node": "alice"})
    c = s.rpc.call("dev-state", {"short_channel_id": ALICE_CAROL})["channels"][0]
    side = "1" if c["alias1"] == "alice" else "2"
    spendable = c["spendable" + side + "_msat"]
    assert BOTTLENECK * 8 // 10 < spendable < BOTTLENECK, c
    return spendable


def balances(s):
    return {c["short_channel_id"]: c for c in s.rpc.call("dev-state")["channels"]}


def nothing_left(s, before):
    """No balance moved, no invoice, every sendpay failed, no HTLC on our channels."""
    assert balances(s) == before
    assert s.rpc.listinvoices()["invoices"] == []
    pays = s.rpc.listsendpays()["payments"]
    assert pays and all(p["status"] == "failed" for p in pays), pays
    for c in s.rpc.listpeerchannels()["channels"]:
        assert c["htlcs"] == [], c
    return pays


def test_probe_finds_the_bottleneck_and_pays_nothing(standin):
    s = standin
    most = bottlenecked(s)
    before = balances(s)
    r = s.rpc.call("rebalance-probe", {"outgoing": OUT, "incoming": INC})
    found = r["max_msat"]
    # Within 5% below the bottleneck, never above (carol's fee rides on it as well).
    assert most * 95 // 100 <= found <= most, (r, most)
    assert [h["short_channel_id"] for h in r["route"]] == [OUT, ALICE_CAROL, INC], r
    assert 0 < r["fee_msat"] <= r["fee_cap_msat"], r
    assert 1 <= r["probes"] <= 20, r
    assert r["message"].endswith("nothing paid"), r
    pays = nothing_left(s, before)
    assert len(pays) == r["probes"], (pays, r)
    # Each probe failed at us, as lightningd fails an unknown payment hash: it reached us.
    assert r["probes_reached_us"] >= 1, r

    # With an amount: what it found can move; a third more cannot. Nothing paid either way.
    ok = s.rpc.call("rebalance-probe", {"outgoing": OUT, "incoming": INC, "amount_msat": found})
    assert ok["feasible"] is True, ok
    no = s.rpc.call("rebalance-probe", {"outgoing": OUT, "incoming": INC,
                                        "amount_msat": most * 4 // 3})
    assert no["feasible"] is False, no
    nothing_left(s, before)


def test_probe_bad_input_names_the_parameter(standin):
    s = standin
    for params, name in (({"outgoing": OUT, "incoming": INC, "amount_msat": "lots"}, "amount_msat"),
                         ({"outgoing": "1x2", "incoming": INC}, "outgoing"),
                         ({"outgoing": OUT, "incoming": INC, "maxparts": 0}, "maxparts")):
        try:
            s.rpc.call("rebalance-probe", params)
        except RpcError as e:
            assert e.error["code"] == -32602, e.error
            assert name in e.error["message"], e.error
        else:
            raise AssertionError(f"{params} was accepted")
    assert s.rpc.listsendpays()["payments"] == []


def test_amount_max_moves_what_the_probe_finds(standin):
    s = standin
    most = bottlenecked(s)
    ours_before = {c["short_channel_id"]: c["to_us_msat"] for c in s.rpc.listpeerchannels()["channels"]}
    r = s.rpc.call("rebalance", {"outgoing": OUT, "incoming": INC, "amount_msat": "max"})
    assert r["status"] == "complete", r
    moved, fee = r["amount_msat"], r["fee_msat"]
    assert most * 95 // 100 <= moved <= most, (r, most)
    assert fee <= max(5000, moved // 1000), r
    time.sleep(0.2)
    ours = {c["short_channel_id"]: c["to_us_msat"] for c in s.rpc.listpeerchannels()["channels"]}
    assert ours[OUT] == ours_before[OUT] - moved - fee
    assert ours[INC] == ours_before[INC] + moved
    # Paid once: the probes before it all failed, the payment itself completed.
    done = [p for p in s.rpc.listsendpays()["payments"] if p["status"] == "complete"]
    assert len(done) == 1 and done[0]["payment_hash"] == r["payment_hash"], done


def test_background_probing_off_by_default(standin):
    s = standin
    liq = s.rpc.call("rebalance-liquidity")
    assert liq["background_probing"]["probes_per_hour"] == 0, liq
    assert liq["learned_channel_directions"] == 0, liq
    assert not [line for line in s.log_lines() if "background probing" in line]
    assert s.rpc.listsendpays()["payments"] == []


def test_background_probing_learns_while_idle_and_leaves_nothing(standin_factory):
    # 960 an hour: a round of up to 8 probes every 30 s, the shortest the plugin allows.
    s = standin_factory(options={"rebalance-probe-per-hour": 960})
    wait_log(s, "background probing: at most 960 probes an hour", 20)
    # Our sinks charge 2000 ppm to forward out, so the planned moves may spend up to 1000 ppm
    # (the demo's own fees leave them caps no route between our peers fits: nothing to probe).
    for scid in ("800004x1x0", "800005x1x0"):
        s.rpc.call("dev-set-policy", {"short_channel_id": scid, "source": "standin",
                                      "fee_proportional_millionths": 2000})
    moves = s.rpc.call("balances")["suggestions"]
    assert moves and all(m["fee_cap_msat"] >= m["amount_msat"] // 1000 for m in moves), moves
    before = balances(s)
    lines = wait_log(s, "probe(s) over", 60)
    assert "planned move" in lines[0], lines
    pays = nothing_left(s, before)
    assert 1 <= len(pays) <= 8, pays  # one round's budget at most so far
    # What the probes found is in the model (empty at start): channels between our peers have a
    # learned bound, and the count of probes sent is what lightningd saw.
    liq = s.rpc.call("rebalance-liquidity")
    learned = [c for c in liq["channels"] if not c["short_channel_id"].startswith("8000")
               and (c.get("learned_min_msat") or c.get("learned_max_msat") is not None)]
    assert learned, liq
    assert liq["background_probing"]["probes_since_start"] == len(pays), liq

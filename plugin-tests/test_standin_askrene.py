"""cln-rebalance and askrene end to end on lightningd-standin (networks/demo.json): what xpay
learned (its `xpay` layer, informed here as xpay would after a failed payment) is folded into the
model and routed around; what a rebalance learned is published into the persistent layer
`cln-rebalance`, as askrene lists it and stores it in the datastore, across a restart; the
options turn each direction off; a lightningd without askrene (`--no-askrene`) gets one log line
and rebalances as before."""

import pytest
from pyln.client import RpcError

from conftest import standin_demo_ids, wait_log

IDS = standin_demo_ids()
SAT = 1000
DRAINED = "700101x7x1"  # alice -> carol: the cheapest middle hop from alice to carol
OURS = {"800001x1x0", "800002x1x0", "800003x1x0", "800004x1x0", "800005x1x0"}


def scidd_from(s, scid, source_alias):
    """`scid/direction` of the direction out of `source_alias`."""
    chans = s.rpc.listchannels(short_channel_id=scid)["channels"]
    c = [c for c in chans if c["source"] == IDS[source_alias]][0]
    return f"{scid}/{c['direction']}"


def layer(s, name):
    return s.rpc.call("askrene-listlayers", {"layer": name})["layers"][0]


def rebalance_alice_to_carol(s, amount=100_000 * SAT):
    return s.rpc.call("rebalance", {"outgoing": "800001x1x0", "incoming": "800004x1x0",
                                    "amount_msat": amount, "maxfeeppm": 5000, "maxparts": 1})


def learned_dir(s, scidd):
    scid, d = scidd.split("/")
    chans = s.rpc.call("rebalance-liquidity", {"short_channel_id": scid})["channels"]
    return [c for c in chans if c["direction"] == int(d)][0]


def test_what_xpay_learned_is_routed_around(standin_factory):
    s = standin_factory()
    wait_log(s, "learning from lightningd's payments")
    drained = scidd_from(s, DRAINED, "alice")
    s.rpc.call("dev-drain", {"short_channel_id": DRAINED, "node": "alice"})
    # What xpay tells askrene after a 50k sat payment failed at alice -> carol.
    s.rpc.call("askrene-inform-channel", {"layer": "xpay", "short_channel_id_dir": drained,
                                          "amount_msat": 50_000 * SAT, "inform": "constrained"})
    c = learned_dir(s, drained)
    assert c["learned_max_msat"] == 50_000 * SAT - 1, c
    res = rebalance_alice_to_carol(s)
    assert res["status"] == "complete", res
    assert res["attempts"] == 1, res
    assert DRAINED not in [h["short_channel_id"] for h in res["route"]]
    # No payment attempt failed (probes sent before paying may, on channels nothing was known of).
    pays = s.rpc.listsendpays()["payments"]
    assert [p for p in pays if p["status"] == "failed" and p["payment_hash"] == res["payment_hash"]] == []


def test_a_rebalance_publishes_into_its_layer(standin_factory):
    s = standin_factory()
    wait_log(s, "publishing what rebalancing learns into askrene layer cln-rebalance")
    ours = layer(s, "cln-rebalance")
    assert ours["persistent"] is True
    assert ours["constraints"] == []
    drained = scidd_from(s, DRAINED, "alice")
    s.rpc.call("dev-drain", {"short_channel_id": DRAINED, "node": "alice"})
    res = rebalance_alice_to_carol(s)
    assert res["status"] == "complete", res
    assert res["attempts"] >= 2, res
    constraints = layer(s, "cln-rebalance")["constraints"]
    mine = [c for c in constraints if c["short_channel_id_dir"] == drained]
    assert len(mine) == 1, constraints
    # askrene's maximum is the model's learned maximum, below what failed there.
    assert mine[0]["maximum_msat"] == learned_dir(s, drained)["learned_max_msat"]
    assert mine[0]["maximum_msat"] < 100_000 * SAT + 100 * SAT
    assert not [c for c in constraints if c["short_channel_id_dir"].split("/")[0] in OURS]
    # askrene keeps it in the datastore: one 29-byte record a constraint.
    stored = s.rpc.listdatastore(["askrene", "layers", "cln-rebalance"])["datastore"]
    assert len(stored) == 1 and len(stored[0]["hex"]) == 2 * 29 * len(constraints), stored
    # xpay's layer is untouched: nothing of ours goes there.
    assert layer(s, "xpay")["constraints"] == []


def test_the_layer_survives_a_restart(standin_factory, tmp_path):
    store = tmp_path / "datastore.json"
    s = standin_factory(args=["--datastore-file", str(store)])
    wait_log(s, "publishing what rebalancing learns")
    s.rpc.call("dev-drain", {"short_channel_id": DRAINED, "node": "alice"})
    assert rebalance_alice_to_carol(s)["status"] == "complete"
    before = layer(s, "cln-rebalance")["constraints"]
    assert before
    s.stop()
    again = standin_factory(args=["--datastore-file", str(store)])
    lines = wait_log(again, "publishing what rebalancing learns")
    assert f"({len(before)} constraint(s) in it" in lines[-1], lines
    assert layer(again, "cln-rebalance")["constraints"] == before


@pytest.mark.parametrize("option", ["rebalance-askrene-read", "rebalance-askrene-publish"])
def test_each_direction_can_be_turned_off(standin_factory, option):
    s = standin_factory(options={option: "false"})
    other = ("publishing what rebalancing learns" if option == "rebalance-askrene-read"
             else "learning from lightningd's payments")
    line = wait_log(s, other)[-1]
    drained = scidd_from(s, DRAINED, "alice")
    s.rpc.call("dev-drain", {"short_channel_id": DRAINED, "node": "alice"})
    s.rpc.call("askrene-inform-channel", {"layer": "xpay", "short_channel_id_dir": drained,
                                          "amount_msat": 50_000 * SAT, "inform": "constrained"})
    res = rebalance_alice_to_carol(s)
    assert res["status"] == "complete", res
    if option == "rebalance-askrene-read":
        assert "learning from lightningd's payments" not in line
        assert res["attempts"] >= 2, res  # it paid for the lesson itself
        assert layer(s, "cln-rebalance")["constraints"], "published all the same"
    else:
        assert "publishing" not in line
        assert res["attempts"] == 1, res
        with pytest.raises(RpcError, match="Unknown layer"):
            layer(s, "cln-rebalance")


def test_without_askrene_one_line_and_rebalances_as_before(standin_factory):
    s = standin_factory(args=["--no-askrene"])
    wait_log(s, "askrene not available")
    s.rpc.call("dev-drain", {"short_channel_id": DRAINED, "node": "alice"})
    res = rebalance_alice_to_carol(s)
    assert res["status"] == "complete", res
    assert res["attempts"] >= 2, res
    back = s.rpc.call("rebalance", {"outgoing": "800004x1x0", "incoming": "800002x1x0",
                                    "amount_msat": 30_000 * SAT, "maxfeeppm": 5000})
    assert back["status"] == "complete", back
    assert s.rpc.call("rebalance-liquidity", {"short_channel_id": DRAINED})["channels"]
    said = [line.split("plugin-cln-rebalance: ", 1) for line in s.log_lines()]
    lines = [m[1] for m in said if len(m) == 2 and "askrene" in m[1]]
    assert len(lines) == 1, lines
    assert "askrene not available" in lines[0] and "Unknown command" in lines[0], lines
    assert s.rpc.listdatastore(["askrene"])["datastore"] == []

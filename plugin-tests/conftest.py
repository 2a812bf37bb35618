"""Fixtures for the stand-in end-to-end suite (test_standin_*.py).

They run the real plugin binary (target/debug/cln-rebalance) under lightningd-standin, the
lightningd stand-in in plugin-tests/standin, on a simulated network; no lightningd needed.
Every fixture here is prefixed `standin` so it cannot clash with pyln-testing's fixtures used
by the real-lightningd suite (test_real_*.py). A test fails at teardown if any **BROKEN** log
line appeared or the plugin died.

Python plugins (the test plugin) run with sys.executable, the interpreter running pytest (the
venv with pyln-client), never with whatever `python3` is first on PATH. Under `make test`
(CLN_REBALANCE_PYTHON_GUARD=1) PATH's python3 has only the stdlib, and the run fails if
anything imported here came from outside the venv and the stdlib.
"""
import ast
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

import pytest
from pyln.client import LightningRpc

# CPython keeps the AST constructor's recursion depth in state its threads share, so two
# threads in ast.parse at once can fail one with "SystemError: AST constructor recursion depth
# mismatch" (python/cpython gh-106905; seen here on 3.11.7 in test_real_probe.py). pyln-testing
# starts a test's nodes in threads, each making a Flask bitcoind proxy whose routes werkzeug
# compiles with ast.parse. One ast.parse at a time.
_ast_parse = ast.parse
_ast_parse_lock = threading.Lock()


def _ast_parse_one_at_a_time(*args, **kwargs):
    with _ast_parse_lock:
        return _ast_parse(*args, **kwargs)


ast.parse = _ast_parse_one_at_a_time

ROOT = Path(__file__).resolve().parent.parent
STANDIN_DIR = Path(__file__).resolve().parent / "standin"
NETWORKS = STANDIN_DIR / "networks"
TESTPLUGIN = STANDIN_DIR / "testplugin" / "standin_testplugin.py"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"
# The Makefile points these at release builds; by default the debug ones `cargo build` makes.
STANDIN_BIN = Path(os.environ.get("LIGHTNINGD_STANDIN", TARGET / "lightningd-standin"))
PLUGIN_BIN = Path(os.environ.get("CLN_REBALANCE_BIN", TARGET / "cln-rebalance"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "standin: end-to-end test on lightningd-standin (no lightningd needed)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.fspath.basename.startswith("test_standin_"):
            item.add_marker(pytest.mark.standin)


def modules_from_outside_the_venv():
    """Imported modules whose files lie outside the venv (sys.prefix), the base interpreter's
    stdlib (not its site-packages) and this repository: packages the machine happens to have.
    A path counts as inside when it is either as imported or resolved (Debian's stdlib
    sitecustomize.py is a symlink into /etc)."""
    def forms(p):
        return {os.path.abspath(p) + os.sep, os.path.realpath(p) + os.sep}
    allowed = forms(sys.prefix) | forms(ROOT)
    stdlib = set().union(*(forms(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")))

    def inside(f):
        return (any(f.startswith(a) for a in allowed)
                or any(f.startswith(d) and "site-packages" not in f[len(d):]
                       and "dist-packages" not in f[len(d):] for d in stdlib))

    outside = []
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None)
        if f and not any(inside(x) for x in forms(f)):
            outside.append(f"{name} ({os.path.abspath(f)})")
    return sorted(outside)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CLN_REBALANCE_PYTHON_GUARD") != "1":
        return
    problems = []
    if sys.prefix == sys.base_prefix:
        problems.append(f"pytest is not running in a venv ({sys.executable})")
    problems += modules_from_outside_the_venv()
    if problems:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = ("CLN_REBALANCE_PYTHON_GUARD: imported from outside .venv and the stdlib: "
               + ", ".join(problems))
        if tr is not None:
            tr.write_line(msg, red=True)
        else:
            print(msg, file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def python_plugin(script, directory):
    """A plugin file in `directory` that runs the Python plugin `script` with sys.executable
    (this venv, which has pyln-client) rather than the `python3` its shebang finds on PATH."""
    wrapper = Path(directory) / Path(script).stem
    wrapper.write_text("#!/bin/sh\n# Runs {} with the interpreter running pytest.\nexec {} {} \"$@\"\n".format(
        Path(script).name, shlex.quote(sys.executable), shlex.quote(str(script))))
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture(scope="session")
def standin_bins():
    """Paths of lightningd-standin and cln-rebalance ($LIGHTNINGD_STANDIN, $CLN_REBALANCE_BIN,
    else target/debug), building the workspace if a default one is missing (set
    STANDIN_NO_BUILD=1 to never build). A binary named by its variable (as the Makefile does)
    must exist: the run fails rather than skip what it was asked to test."""
    defaults = "LIGHTNINGD_STANDIN" not in os.environ and "CLN_REBALANCE_BIN" not in os.environ
    if (defaults and not (STANDIN_BIN.exists() and PLUGIN_BIN.exists())
            and not os.environ.get("STANDIN_NO_BUILD")):
        subprocess.run(["cargo", "build", "-q", "--bins"], cwd=ROOT, check=True)
    for var, path in (("LIGHTNINGD_STANDIN", STANDIN_BIN), ("CLN_REBALANCE_BIN", PLUGIN_BIN)):
        if var in os.environ and not path.exists():
            pytest.fail(f"{var}={path} does not exist")
    if not STANDIN_BIN.exists():
        pytest.skip(f"{STANDIN_BIN} not built")
    return {"standin": STANDIN_BIN, "plugin": PLUGIN_BIN}


class Standin:
    """One running lightningd-standin: `.rpc` is a pyln LightningRpc on its socket."""

    def __init__(self, bins, network, plugin, options, allow_broken=False, args=()):
        # Short directory: unix socket paths are limited to 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="standin-", dir="/tmp"))
        self.allow_broken = allow_broken
        if isinstance(network, dict):
            path = self.dir / "network.json"
            path.write_text(json.dumps(network))
            network = path
        elif not os.path.isabs(str(network)):
            network = NETWORKS / network
        if str(network).endswith(".listchannels.json.gz"):
            # A mainnet graph with hidden balances (seeded), "us" its best-connected node.
            source = ["--mainnet", str(network), "--seed", "5"]
        else:
            source = ["--network", str(network)]
        cmd = [str(bins["standin"]), *source,
               "--lightning-dir", str(self.dir), "--shutdown-grace", "10", "--log-stderr", "none"]
        if plugin is not None and str(plugin).endswith(".py"):
            plugin = python_plugin(plugin, self.dir)
        if plugin is not None:
            cmd += ["--plugin", str(plugin)]
        for k, v in (options or {}).items():
            cmd += ["--plugin-opt", f"{k}={v}"]
        cmd += list(args)
        self.log_path = self.dir / "log"
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            if self.log_path.exists() and "Server started with public key" in self.log_path.read_text():
                break
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode()
                raise RuntimeError(f"lightningd-standin exited: {out}")
            if time.time() > deadline:
                self.proc.kill()
                raise RuntimeError("lightningd-standin did not start in 30 s")
            time.sleep(0.05)
        self.rpc = LightningRpc(str(self.dir / "regtest" / "lightning-rpc"))

    def state(self):
        """The network's true state (dev-state)."""
        return self.rpc.call("dev-state", {})

    def channel(self, scid):
        return self.rpc.call("dev-state", {"short_channel_id": scid})["channels"][0]

    def our_msat(self, scid):
        """Our settled balance on one of our channels, from the true state."""
        c = self.channel(scid)
        us = self.rpc.getinfo()["id"]
        return c["node1_msat"] if c["node1"] == us else c["node2_msat"]

    def balances_snapshot(self):
        return {c["short_channel_id"]: (c["node1_msat"], c["node2_msat"])
                for c in self.state()["channels"]}

    def log_lines(self):
        return self.log_path.read_text().splitlines() if self.log_path.exists() else []

    def broken_lines(self):
        return [line for line in self.log_lines()
                if "**BROKEN**" in line or "Killing plugin: exited during normal operation" in line]

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.rpc.stop()
            except Exception:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def standin_factory(standin_bins):
    """Starts stand-ins: `standin_factory(network="demo.json", plugin="rebalance", options={},
    args=[...])` (args: more lightningd-standin flags, e.g. `--version-string`)
    where plugin is "rebalance" (the real binary), "testplugin", None, or a path (a `.py`
    one runs with sys.executable)."""
    started = []

    def make(network="demo.json", plugin="rebalance", options=None, allow_broken=False, args=()):
        if plugin == "rebalance":
            if not standin_bins["plugin"].exists():
                pytest.skip(f"{standin_bins['plugin']} is not built")
            plugin = standin_bins["plugin"]
        elif plugin == "testplugin":
            plugin = TESTPLUGIN
        s = Standin(standin_bins, network, plugin, options, allow_broken, args)
        started.append(s)
        return s

    yield make
    problems = []
    for s in started:
        s.stop()
        broken = s.broken_lines()
        if broken and not s.allow_broken:
            problems.append(f"{s.dir}: " + "\n".join(broken))
        if not problems:
            shutil.rmtree(s.dir, ignore_errors=True)
    if problems:
        pytest.fail("BROKEN log lines:\n" + "\n".join(problems))


@pytest.fixture
def standin(standin_factory):
    """The demo network with the real plugin."""
    return standin_factory()


@pytest.fixture
def standin_testplugin(standin_factory):
    """The demo network with the minimal pyln test plugin."""
    return standin_factory(plugin="testplugin", options={"tp-number": 7})


def standin_route(rpc, hops, amount, final_delay=18):
    """sendpay hops for [(node_id, scid), ...], amounts and delays computed backwards from the
    listchannels policies, fees rounded up."""
    out = []
    amt, delay = amount, final_delay
    for i in range(len(hops) - 1, -1, -1):
        node, scid = hops[i]
        out.append({"id": node, "channel": scid, "amount_msat": amt, "delay": delay})
        if i > 0:
            src = hops[i - 1][0]
            e = [c for c in rpc.listchannels(scid)["channels"] if c["source"] == src][0]
            amt += e["base_fee_millisatoshi"] + -(-amt * e["fee_per_millionth"] // 1_000_000)
            delay += e["delay"]
    return list(reversed(out))


def wait_log(s, text, timeout=20):
    """The lines of a stand-in's log with `text`, once there are any (the plugin's start-up
    work and background rounds run after init)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        lines = [line for line in s.log_lines() if text in line]
        if lines:
            return lines
        time.sleep(0.1)
    raise AssertionError(f"no log line with {text!r} in {timeout}s:\n" + "\n".join(s.log_lines()))


def standin_demo_ids():
    """alias -> node id of networks/demo.json."""
    net = json.loads((NETWORKS / "demo.json").read_text())
    return {n["alias"]: n["id"] for n in net["nodes"]}

#!/usr/bin/env python3
"""A minimal pyln-client plugin that exercises the stand-in's plugin protocol: options and
init, forwarded methods (positional and keyword), calls back over the RPC socket, log levels,
the invoice_payment hook (with what listpeerchannels shows while it is pending), and shutdown.

The stand-in suite starts it with the interpreter running pytest (conftest.py's python_plugin
wrapper), not through the shebang, so it runs with the venv's pyln-client.
"""
import hashlib
import sys
import time

import pyln.client
from pyln.client import Plugin

plugin = Plugin()
state = {"mode": None, "hook_calls": [], "notifications": []}


@plugin.init()
def init(options, configuration, plugin, **kwargs):
    state["mode"] = options["tp-hook-mode"]
    state["init"] = {"options": options, "configuration": configuration}
    plugin.log("testplugin initialized")


@plugin.method("tp-echo")
def echo(plugin, first=None, second=None):
    """Returns its parameters and what init received."""
    return {"first": first, "second": second, "init": state["init"]}


@plugin.method("tp-getinfo")
def tp_getinfo(plugin):
    """Calls getinfo back over the RPC socket."""
    return plugin.rpc.getinfo()


@plugin.method("tp-python")
def tp_python(plugin):
    """The interpreter this plugin runs with, and where its pyln-client came from."""
    return {"executable": sys.executable, "prefix": sys.prefix, "pyln_client": pyln.client.__file__}


@plugin.method("tp-sleep")
def tp_sleep(plugin, seconds=1.0):
    """Blocks this request only (pyln runs methods in the main thread: use async)."""
    time.sleep(float(seconds))
    return {"slept": seconds}


@plugin.method("tp-log")
def tp_log(plugin, level, message):
    """Writes a log line at the given level."""
    plugin.log(message, level=level)
    return {}


@plugin.method("tp-set-mode")
def tp_set_mode(plugin, mode):
    """How invoice_payment answers: continue, reject, or slow (sleeps 3 s then continues)."""
    state["mode"] = mode
    return {"mode": mode}


@plugin.method("tp-hooks")
def tp_hooks(plugin):
    """The invoice_payment calls seen, with the HTLCs visible meanwhile."""
    return {"calls": state["hook_calls"], "notifications": state["notifications"]}


@plugin.hook("invoice_payment")
def on_invoice_payment(payment, plugin, **kwargs):
    preimage = bytes.fromhex(payment["preimage"])
    payment_hash = hashlib.sha256(preimage).hexdigest()
    seen = []
    for ch in plugin.rpc.listpeerchannels()["channels"]:
        for h in ch.get("htlcs", []):
            if h["payment_hash"] == payment_hash:
                seen.append({"short_channel_id": ch["short_channel_id"],
                             "direction": h["direction"], "amount_msat": h["amount_msat"]})
    state["hook_calls"].append({"payment": payment, "htlcs": seen})
    if state["mode"] == "slow":
        time.sleep(3)
    if state["mode"] == "reject":
        return {"result": "reject"}
    return {"result": "continue"}


@plugin.subscribe("invoice_payment")
def on_invoice_paid(plugin, **kwargs):
    state["notifications"].append(kwargs.get("invoice_payment", kwargs))


@plugin.subscribe("shutdown")
def on_shutdown(plugin, **kwargs):
    plugin.log("testplugin shutting down")
    raise SystemExit(0)


plugin.add_option("tp-hook-mode", "continue", "invoice_payment answer", opt_type="string")
plugin.add_option("tp-number", 42, "an int option", opt_type="int")
plugin.add_option("tp-flag", False, "a flag", opt_type="flag")
plugin.run()

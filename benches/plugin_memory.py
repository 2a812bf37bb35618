"""Peak memory of the plugin process itself (VmHWM from /proc), loading and then refreshing
the mainnet graph, on lightningd-standin with a mainnet listchannels snapshot ("us" its
best-connected node, ~2,000 channels). Each dry-run rebalance loads the whole graph again
(rebalance-graph-refresh=0), so the second figure is the peak across a refresh.

usage: plugin_memory.py STANDIN_BIN PLUGIN_BIN GRAPH.listchannels.json.gz
Stdlib only: run it with any python3.
"""
import json, os, socket, subprocess, sys, tempfile, time
standin, plugin, graph = sys.argv[1], sys.argv[2], sys.argv[3]
calls = ["dryrun", "dryrun"]
d = tempfile.mkdtemp(prefix="mem-", dir="/tmp")
p = subprocess.Popen([standin, "--mainnet", graph, "--seed", "5", "--lightning-dir", d,
                      "--plugin", plugin, "--log-stderr", "none", "--plugin-opt", "rebalance-graph-refresh=0"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
log = os.path.join(d, "log")
t0 = time.time()
while not (os.path.exists(log) and "Server started" in open(log).read()):
    time.sleep(0.1)
    if time.time() - t0 > 120: sys.exit("no start")
kids = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
pid = kids[0]
def hwm():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith(("VmHWM", "VmRSS")): print(" ", l.strip())
def call(method, params={}):
    s = socket.socket(socket.AF_UNIX); s.connect(os.path.join(d, "regtest", "lightning-rpc"))
    s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode())
    buf = b""
    while True:
        c = s.recv(1 << 20)
        if not c: break
        buf += c
        try:
            return json.loads(buf)
        except ValueError:
            continue
print("after start:"); hwm()
chans = [c for c in call("listpeerchannels")["result"]["channels"] if c["state"] == "CHANNELD_NORMAL" and c["peer_connected"]]
out = max(chans, key=lambda c: c["spendable_msat"]); inc = max(chans, key=lambda c: c["receivable_msat"])
for m in calls:
    t = time.time(); r = call("rebalance", {"outgoing": out["short_channel_id"], "incoming": inc["short_channel_id"], "amount_msat": 10**8, "dryrun": True, "maxfeeppm": 100000})
    print(f"after dryrun with a graph (re)load ({time.time()-t:.2f}s):", str(r)[:100]); hwm()
call("stop"); p.wait(timeout=30)

#!/usr/bin/python3
"""Cluster throughput benchmark: narf (3 data nodes, 2 copies per slot,
ack `all`) against a Redis Cluster of 3 masters + 3 replicas (run by
`scripts/bench.sh cluster`, which starts and stops the narf cluster; this
script starts and stops the Redis Cluster itself).

The Redis Cluster: six `redis-server --cluster-enabled yes
--cluster-node-timeout 1000 --save '' --appendonly no` on free 127.0.0.1
ports (each port + 10000, the cluster bus, free too) in a temp dir, joined
with `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`,
then waited for until every node says cluster_state:ok. Each redis-server
runs in a session of its own, as narf's processes do (scripts/cluster.sh
starts them with setsid, systemd starts services so): with the kernel's
autogroup scheduling (kernel.sched_autogroup_enabled, on in Debian) CPU
is shared between sessions first, and servers left in redis-benchmark's
session wake up without preempting it, so they find ~4x as many requests
per wake-up as servers in sessions of their own. Measured here with
/usr/bin/time -v around `redis-benchmark --cluster -t get` and
/proc/PID/status of the servers: redis-servers in the benchmark's session
went to sleep 0.13 times per request and preempted the benchmark 0.08
times; narf's nodes, and redis-servers in sessions of their own, 0.53 and
0.5 times; and Redis's GET rate fell from ~100k to ~92k req/s, narf's.

Both are driven by the same `redis-benchmark --cluster -t set,get -c 50
-d 32 -r 100000 -q -P P -n N` (P=1 with N=1,000,000 and P=16 with
N=3,000,000 unless --requests/--pipeline say otherwise), alternating
narf/redis, --rounds rounds. Prints each run, then per test and depth the
medians and the median of the per-round narf/redis ratios. Around every
narf run it reads the map from the coordinator leader and prints whether
any failure decision (a node no longer up, a slot's primary changed) or
any other map change happened during the benchmark.

Every subprocess has a timeout; every wait is bounded.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from narf_harness import HarnessError, call_leader, expand_slots  # noqa

HOST = "127.0.0.1"


def log(msg=""):
    print(msg, flush=True)


def fail(msg):
    print("bench_cluster: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


class Coords:
    def __init__(self, apis):
        self.apis = list(apis)


def bindable(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_redis_ports(n):
    """n ports p (p and the bus port p+10000 both free, below the kernel's
    ephemeral range), in 20000..22767."""
    import random
    out = []
    for _ in range(5000):
        p = random.randrange(20000, 22768)
        if p not in out and bindable(p) and bindable(p + 10000):
            out.append(p)
            if len(out) == n:
                return out
    fail("no free ports for the Redis Cluster")


# --tls-dir: every server speaks TLS only (ca.crt, server.*, client.*).
TLS_DIR = None
TLS_CTX = None


def tls_setup(d):
    global TLS_DIR, TLS_CTX
    import ssl
    TLS_DIR = d
    TLS_CTX = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
    TLS_CTX.check_hostname = False
    TLS_CTX.load_cert_chain(os.path.join(d, "client.crt"),
                            os.path.join(d, "client.key"))


def tls_tool_args():
    """redis-cli's and redis-benchmark's TLS flags ([] without TLS)."""
    if TLS_DIR is None:
        return []
    return ["--tls", "--cacert", os.path.join(TLS_DIR, "ca.crt"), "--cert",
            os.path.join(TLS_DIR, "client.crt"), "--key",
            os.path.join(TLS_DIR, "client.key")]


def tls_server_args(port):
    """redis-server's port flags: TLS only with TLS (port 0, tls-port, the
    bus and replication over TLS, client certificates required, as narf's
    --tls-auth-clients default), else the plain port."""
    if TLS_DIR is None:
        return ["--port", str(port)]
    return ["--port", "0", "--tls-port", str(port), "--tls-cluster", "yes",
            "--tls-replication", "yes", "--tls-auth-clients", "yes",
            "--tls-cert-file", os.path.join(TLS_DIR, "server.crt"),
            "--tls-key-file", os.path.join(TLS_DIR, "server.key"),
            "--tls-ca-cert-file", os.path.join(TLS_DIR, "ca.crt")]


def resp(port, *args, timeout=2.0):
    """One request on a new connection; the raw reply bytes (whole bulk)."""
    req = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a) for a in (
            x.encode() if isinstance(x, str) else x for x in args))
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.settimeout(timeout)
        if TLS_CTX is not None:
            s = TLS_CTX.wrap_socket(s)
        s.sendall(req)
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            head, sep, rest = buf.partition(b"\r\n")
            if sep and not head.startswith(b"$"):
                break
            if head.startswith(b"$") and len(rest) >= max(0, int(head[1:])):
                break
        return buf


class RedisCluster:
    """Six redis-servers in a temp dir, made one cluster."""

    def __init__(self, a):
        self.a = a
        self.dir = tempfile.mkdtemp(prefix="narf-bench-rcluster.")
        self.ports = free_redis_ports(6)
        self.procs = []

    def start(self):
        for p in self.ports:
            d = os.path.join(self.dir, str(p))
            os.makedirs(d)
            log_f = open(os.path.join(d, "redis.log"), "ab")
            argv = [self.a.redis_server] + tls_server_args(p) + [
                "--bind", HOST, "--cluster-enabled", "yes",
                "--cluster-node-timeout", "1000",
                "--cluster-config-file", os.path.join(d, "nodes.conf"),
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", d]
            self.procs.append(subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL, stdout=log_f, stderr=log_f,
                start_new_session=True))
        deadline = time.monotonic() + 15
        for p in self.ports:
            while True:
                try:
                    if resp(p, "PING").startswith(b"+PONG"):
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    fail("redis-server on %d does not answer (logs in %s)"
                         % (p, self.dir))
                time.sleep(0.05)
        argv = [self.a.redis_cli, "--cluster", "create"] + [
            "%s:%d" % (HOST, p) for p in self.ports] + [
            "--cluster-replicas", "1", "--cluster-yes"] + tls_tool_args()
        try:
            out = subprocess.run(argv, capture_output=True, text=True,
                                 timeout=60)
        except subprocess.TimeoutExpired:
            fail("redis-cli --cluster create timed out")
        if out.returncode != 0:
            fail("redis-cli --cluster create failed:\n%s%s"
                 % (out.stdout[-2000:], out.stderr[-2000:]))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if all(b"cluster_state:ok" in resp(p, "CLUSTER", "INFO")
                       for p in self.ports):
                    # Every node also sees six known nodes.
                    if all(b"cluster_known_nodes:6" in
                           resp(p, "CLUSTER", "INFO") for p in self.ports):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        fail("Redis Cluster not ok within 30 s (logs in %s)" % self.dir)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


# A test's name, then for a command test its arguments ("HGET myhash
# element:__rand_int__: 98765.43 requests per second"). In cluster mode
# redis-benchmark gives each master its own {tag}, as in its own tests.
RPS = re.compile(r"^([A-Z]+)(?: .*)?: ([0-9.]+) requests per second")
# Tests redis-benchmark lacks, run as its command tests: `hget` reads the
# fields its `hset` test writes (HSET myhash{tag} element:__rand_int__ xxx), so
# put it after hset in --tests.
COMMANDS = {"hget": ["HGET", "myhash{tag}", "element:__rand_int__"]}
TICK = os.sysconf("SC_CLK_TCK")


def server_pids(ports):
    """The process ids of the servers on ports (INFO server)."""
    pids = []
    for p in ports:
        m = re.search(rb"process_id:(\d+)", resp(p, "INFO", "server"))
        if not m:
            fail("no process_id in INFO server of port %d" % p)
        pids.append(int(m.group(1)))
    return pids


def cpu_seconds(pids):
    """User + system CPU seconds used so far by the processes pids."""
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def run_benchmark(a, port, pipeline, n):
    """`redis-benchmark --cluster` runs; {"SET": rps, "GET": rps} (or the
    --tests asked for): one run for redis-benchmark's own tests, then one
    per test of COMMANDS."""
    names = [t.strip() for t in a.tests.split(",") if t.strip()]
    own = [t for t in names if t not in COMMANDS]
    runs = ([["-t", ",".join(own)]] if own else []) + \
        [COMMANDS[t] for t in names if t in COMMANDS]
    res = {}
    for run in runs:
        argv = [a.bench, "--cluster", "-h", HOST, "-p", str(port), "-c",
                str(a.clients), "-d", "32", "-r", "100000", "-q", "-P",
                str(pipeline), "-n", str(n)] + tls_tool_args() + run
        try:
            out = subprocess.run(argv, capture_output=True, text=True,
                                 timeout=a.run_timeout)
        except subprocess.TimeoutExpired:
            fail("%s timed out after %ds" % (" ".join(argv), a.run_timeout))
        got = {}
        for chunk in out.stdout.replace("\r", "\n").splitlines():
            m = RPS.match(chunk.strip())
            if m:
                got[m.group(1)] = float(m.group(2))
        want = [t.upper() for t in own] if run[0] == "-t" else [run[0]]
        if out.returncode != 0 or set(got) != set(want):
            fail("%s failed (exit %d):\n%s%s" % (
                " ".join(argv), out.returncode, out.stdout[-3000:],
                out.stderr[-3000:]))
        res.update(got)
    return res


def test_names(a):
    """The names redis-benchmark prints for --tests ("HSET", "ZADD")."""
    return [t.strip().upper() for t in a.tests.split(",") if t.strip()]


def map_view(coords):
    rep = call_leader(coords, {"op": "map"}, 10.0)
    if not rep.get("ok") or "map" not in rep:
        fail("coordinator map: %r" % rep)
    m = rep["map"]
    return m["epoch"], {n["id"]: n["state"] for n in m["nodes"]}, \
        [p for p, _, _ in expand_slots(m)]


def map_change(before, after):
    """A line saying what changed in the map between two views."""
    e0, st0, prim0 = before
    e1, st1, prim1 = after
    if e0 == e1:
        return "map epoch %d unchanged: no failure decision" % e0
    downs = [i for i, s in st1.items() if s != "up" and st0.get(i) == "up"]
    moved = sum(1 for x, y in zip(prim0, prim1) if x != y)
    if downs or moved:
        return ("FAILURE DECISION during the benchmark: map epoch %d -> %d, "
                "nodes no longer up %r, %d slots changed primary"
                % (e0, e1, downs, moved))
    return ("map epoch %d -> %d (no node down, no primary changed: an ISR or "
            "settings change)" % (e0, e1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--narf-port", type=int, required=True,
                    help="RESP port of one narf data node")
    ap.add_argument("--coord", required=True,
                    help="coordinator API addresses, comma separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pipeline", default="1,16")
    ap.add_argument("--requests", default="1000000,3000000",
                    help="-n per pipeline depth (one value or one per "
                    "depth)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--tests", default="set,get",
                    help="redis-benchmark -t tests (set,get; hset, zadd, "
                    "lpush, sadd... for issue 16's types), and hget (HGET "
                    "of the fields hset wrote; after hset)")
    ap.add_argument("--run-timeout", type=int, default=600)
    ap.add_argument("--max-seconds", type=int, default=7200)
    ap.add_argument("--tls-dir", default=None,
                    help="ca.crt, server.*, client.*: everything over TLS "
                    "(--narf-port is then narf's first TLS port)")
    ap.add_argument("--bench", default="redis-benchmark")
    ap.add_argument("--redis-server", default="redis-server")
    ap.add_argument("--redis-cli", default="redis-cli")
    a = ap.parse_args()
    if a.tls_dir:
        tls_setup(a.tls_dir)
    # bench.sh's timeout signals its process group, which the redis-servers
    # (in sessions of their own) are not in: exit through the finally
    # block, which stops them.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    depths = [int(p) for p in a.pipeline.split(",")]
    reqs = [int(n) for n in a.requests.split(",")]
    if len(reqs) == 1:
        reqs = reqs * len(depths)
    if len(reqs) != len(depths):
        fail("--requests needs one value or one per pipeline depth")
    coords = Coords(a.coord.split(","))
    rc = RedisCluster(a)
    deadline = time.monotonic() + a.max_seconds
    try:
        rc.start()
        log("Redis Cluster: 3 masters + 3 replicas on %s (node timeout "
            "1000 ms); narf: 3 data nodes, 2 copies, via 127.0.0.1:%d"
            % (",".join(map(str, rc.ports)), a.narf_port))
        log("redis-benchmark --cluster -t %s -c %d -d 32 -r 100000%s, "
            "%d rounds alternating narf/redis"
            % (a.tests, a.clients, " --tls (client certificates; TLS on both "
               "clusters' internal links)" if TLS_DIR else "", a.rounds))
        results = {}  # (test, P) -> {name: [rps per round]}
        cpus = {}  # P -> {name: [server CPU us per request per round]}
        narf_pids = server_pids(range(a.narf_port, a.narf_port + 3))
        redis_pids = [pr.pid for pr in rc.procs]
        decisions = []
        for rnd in range(a.rounds):
            order = ["narf", "redis"] if rnd % 2 == 0 else ["redis", "narf"]
            for p, n in zip(depths, reqs):
                for name in order:
                    if time.monotonic() > deadline:
                        fail("over --max-seconds %d" % a.max_seconds)
                    port = a.narf_port if name == "narf" else rc.ports[0]
                    if name == "narf":
                        before = map_view(coords)
                    pids = narf_pids if name == "narf" else redis_pids
                    cpu0 = cpu_seconds(pids)
                    res = run_benchmark(a, port, p, n)
                    # Server CPU per request, the tests' runs together.
                    cpu_us = (cpu_seconds(pids) - cpu0) * 1e6 / (
                        len(test_names(a)) * n)
                    cpus.setdefault(p, {}).setdefault(name, []).append(
                        cpu_us)
                    note = ""
                    if name == "narf":
                        change = map_change(before, map_view(coords))
                        if "FAILURE" in change:
                            decisions.append(change)
                        note = "  [" + change + "]"
                    for t, v in res.items():
                        results.setdefault((t, p), {}).setdefault(
                            name, []).append(v)
                    log("  round %d  P=%-3d -n %-8d %-5s %s req/s  server "
                        "CPU %5.2f us/req%s"
                        % (rnd + 1, p, n, name, "  ".join(
                            "%s %10.0f" % (t, res[t])
                            for t in test_names(a)), cpu_us, note))
        log()
        hdr = "%-5s %3s | %12s %12s %6s" % ("test", "P", "narf req/s",
                                           "redis req/s", "ratio")
        log("medians over %d rounds (ratio = median of per-round narf/redis)"
            % a.rounds)
        log(hdr)
        log("-" * len(hdr))
        for p in depths:
            for t in test_names(a):
                r = results[(t, p)]
                ratio = statistics.median(
                    x / y for x, y in zip(r["narf"], r["redis"]))
                log("%-5s %3d | %12.0f %12.0f %6.2f" % (
                    t, p, statistics.median(r["narf"]),
                    statistics.median(r["redis"]), ratio))
        log()
        log("server CPU (user+system of all data nodes / all redis-servers) "
            "per request, the runs of %s" % a.tests)
        for p in depths:
            c = cpus[p]
            log("P=%-3d narf %.2f us, redis %.2f us: ratio %.2f" % (
                p, statistics.median(c["narf"]),
                statistics.median(c["redis"]),
                statistics.median(x / y for x, y in zip(c["narf"],
                                                        c["redis"]))))
        log()
        if decisions:
            log("FAILURE DECISIONS during the benchmark (DESIGN.md: none "
                "may be taken at full speed):")
            for d in decisions:
                log("  " + d)
            return 1
        log("no failure decision during any narf run (map epochs checked "
            "before and after each)")
        return 0
    finally:
        rc.stop()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HarnessError as e:
        fail(str(e))

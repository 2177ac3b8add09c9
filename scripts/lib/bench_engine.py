#!/usr/bin/python3
"""Engine benchmark: a standalone datanode against redis-server (run by
`scripts/bench.sh engine`, which starts and stops both servers).

Subcommands:
  ports N        print N free 127.0.0.1 ports below 32768 (not in the
                 kernel's ephemeral range), one per line
  wait PORT...   wait (bounded) until every port answers PING
  throughput     redis-benchmark against both, alternating, R rounds; per
                 test and pipeline depth: median requests/s, median server
                 CPU time per request (all threads' user+system time
                 around the run, from /proc/PID/task/*/schedstat in ns;
                 /proc/PID/stat utime+stime if that is missing), and the medians of the per-round
                 narf/redis ratios; with --tls-dir, over the servers'
                 TLS ports (redis-benchmark --tls with the client
                 certificate there), and narf's plain port too, for
                 narf's TLS cost (TLS over plain)
  memory         load 1,000,000 keys (16-byte key, 32-byte value) into both
                 through `redis-cli --pipe`; print resident bytes per key
                 (VmRSS after the load minus VmRSS measured before it, on
                 freshly started servers) and the ratio; with --shape, a
                 collection shape instead (hash10: keys of 10 fields,
                 hashbig: one hash; set, zset and list likewise), printed
                 as resident bytes per element

Every subprocess has a timeout; nothing loops without a bound.
"""

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
KEYS = 1000000


def log(msg=""):
    print(msg, flush=True)


def fail(msg):
    print("bench_engine: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


# --- small helpers -----------------------------------------------------------


def bindable(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_ports(n):
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            top = min(32768, int(f.read().split()[0]))
    except (OSError, ValueError, IndexError):
        top = 32768
    out = []
    for _ in range(5000):
        p = random.randrange(20000, top)
        if p not in out and bindable(p):
            out.append(p)
            if len(out) == n:
                return out
    fail("no free ports")


def resp_cmd(port, *args, timeout=2.0):
    """One request on a new connection; the raw first reply line."""
    req = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a) for a in (
            x.encode() if isinstance(x, str) else x for x in args))
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(req)
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in buf and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf


def wait_ping(ports, timeout=15.0):
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            try:
                if resp_cmd(port, "PING").startswith(b"+PONG"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                fail("port %d does not answer PING within %.0fs"
                     % (port, timeout))
            time.sleep(0.05)


def cpu_seconds(pid):
    """CPU time of every thread of pid (user + system).

    /proc/PID/task/*/schedstat counts it in nanoseconds; /proc/PID/stat's
    utime+stime is the same figure in clock ticks (10 ms), too coarse for
    a run of a fraction of a second, so it is only the fallback.
    """
    total = 0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        if total > 0:
            return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def vm_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    fail("no VmRSS for pid %d" % pid)


def info_field(port, field):
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nmemory\r\n")
        buf = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            head, _, rest = buf.partition(b"\r\n")
            if head.startswith(b"$") and len(rest) >= int(head[1:]):
                break
    for line in buf.decode(errors="replace").splitlines():
        if line.startswith(field + ":"):
            return int(line.split(":", 1)[1])
    return None


def dbsize(port):
    rep = resp_cmd(port, "DBSIZE", timeout=10.0)
    if not rep.startswith(b":"):
        fail("DBSIZE on %d: %r" % (port, rep[:100]))
    return int(rep[1:].split(b"\r\n")[0])


# --- throughput --------------------------------------------------------------

TEST_NAMES = {"set": "SET", "get": "GET", "incr": "INCR",
              "mset": "MSET (10 keys)", "ping": "PING_MBULK",
              # issue 16's collection tests; redis-benchmark fills the
              # list before an LRANGE test with as many LPUSHes (its CSV's
              # last row is the LRANGE; CPU per request counts both)
              "lpush": "LPUSH", "rpush": "RPUSH", "lpop": "LPOP",
              "rpop": "RPOP", "sadd": "SADD", "hset": "HSET",
              "spop": "SPOP", "zadd": "ZADD", "zpopmin": "ZPOPMIN",
              "lrange_100": "LRANGE_100", "lrange_300": "LRANGE_300",
              "lrange_500": "LRANGE_500", "lrange_600": "LRANGE_600"}


def run_benchmark(bench, port, pid, test, n, clients, pipeline, size,
                  keyspace, timeout, tls_dir=None):
    """One redis-benchmark run of one test; (rps, server cpu us/request).
    With tls_dir: --tls, with the CA and client certificate there."""
    argv = [bench, "-h", HOST, "-p", str(port), "--csv", "-t", test,
            "-n", str(n), "-c", str(clients), "-P", str(pipeline),
            "-d", str(size), "-r", str(keyspace)]
    if tls_dir is not None:
        argv += ["--tls", "--cacert", os.path.join(tls_dir, "ca.crt"),
                 "--cert", os.path.join(tls_dir, "client.crt"),
                 "--key", os.path.join(tls_dir, "client.key")]
    t0 = cpu_seconds(pid)
    try:
        out = subprocess.run(argv, capture_output=True, timeout=timeout,
                             text=True)
    except subprocess.TimeoutExpired:
        fail("%s timed out after %ds" % (" ".join(argv), timeout))
    t1 = cpu_seconds(pid)
    rps = None
    for line in out.stdout.splitlines():
        cols = [c.strip('"') for c in line.split('","')]
        if len(cols) >= 2 and cols[0].strip('"') != "test":
            try:
                rps = float(cols[1])
            except ValueError:
                pass
    if out.returncode != 0 or rps is None:
        fail("%s failed (exit %d):\n%s%s" % (" ".join(argv), out.returncode,
                                             out.stdout, out.stderr))
    cpu_us = (t1 - t0) * 1e6 / n
    return rps, cpu_us


def fmt_ratio(x):
    return "%.2f" % x if x is not None else "-"


def throughput(a):
    tests = [t.strip().lower() for t in a.tests.split(",") if t.strip()]
    for t in tests:
        if t not in TEST_NAMES:
            fail("unknown test %r (have %s)" % (t, ", ".join(TEST_NAMES)))
    depths = [int(p) for p in a.pipeline.split(",")]
    tls = a.tls_dir is not None
    # name: (port, pid, TLS certificates or None)
    servers = {"narf": (a.narf_port, a.narf_pid, None),
               "redis": (a.redis_port, a.redis_pid, None)}
    if tls:
        servers = {"narf": (a.narf_tls_port, a.narf_pid, a.tls_dir),
                   "redis": (a.redis_tls_port, a.redis_pid, a.tls_dir),
                   "narf-plain": (a.narf_port, a.narf_pid, None)}
    # results[(test, P)][server] = [(rps, cpu), ...] per round
    results = {}
    deadline = time.monotonic() + a.max_seconds
    log("redis-benchmark -n %d -c %d -d %d -r %d, pipeline %s, %d rounds, "
        "alternating narf/redis%s" % (
            a.requests, a.clients, a.size, a.keyspace, a.pipeline, a.rounds,
            " over TLS (--tls; narf-plain: narf's plain port)" if tls
            else ""))
    for rnd in range(a.rounds):
        order = ["narf", "redis"] if rnd % 2 == 0 else ["redis", "narf"]
        if tls:
            order.append("narf-plain")
        for p in depths:
            for t in tests:
                for name in order:
                    if time.monotonic() > deadline:
                        fail("throughput runs took over %ds"
                             % a.max_seconds)
                    port, pid, tls_dir = servers[name]
                    rps, cpu = run_benchmark(
                        a.bench, port, pid, t, a.requests, a.clients, p,
                        a.size, a.keyspace, a.run_timeout, tls_dir)
                    results.setdefault((t, p), {}).setdefault(
                        name, []).append((rps, cpu))
                    log("  round %d  P=%-3d %-5s %-10s %12.0f req/s "
                        "%7.3f us/req" % (rnd + 1, p, t, name, rps, cpu))
    log()
    hdr = ("%-6s %3s | %12s %12s %6s | %9s %9s %6s" % (
        "test", "P", "narf req/s", "redis req/s", "ratio", "narf us",
        "redis us", "ratio"))
    log("medians over %d rounds (ratio = median of per-round narf/redis; "
        "us = server CPU per request)" % a.rounds)
    log(hdr)
    log("-" * len(hdr))
    misses = []
    for p in depths:
        for t in tests:
            res = results[(t, p)]
            nr = [x[0] for x in res["narf"]]
            rr = [x[0] for x in res["redis"]]
            nc = [x[1] for x in res["narf"]]
            rc = [x[1] for x in res["redis"]]
            rps_ratio = statistics.median(n / r for n, r in zip(nr, rr))
            cpu_ratios = [n / r for n, r in zip(nc, rc) if r > 0]
            cpu_ratio = statistics.median(cpu_ratios) if cpu_ratios else None
            log("%-6s %3d | %12.0f %12.0f %6s | %9.3f %9.3f %6s" % (
                t.upper(), p, statistics.median(nr), statistics.median(rr),
                fmt_ratio(rps_ratio), statistics.median(nc),
                statistics.median(rc), fmt_ratio(cpu_ratio)))
            # The targets (SET and GET only).
            if t in ("set", "get"):
                want = 1.0 if p >= 16 else 0.95
                if rps_ratio < want:
                    misses.append("%s P=%d throughput ratio %.2f < %.2f"
                                  % (t.upper(), p, rps_ratio, want))
                if cpu_ratio is not None and cpu_ratio > 1.0:
                    misses.append("%s P=%d CPU ratio %.2f > 1.00"
                                  % (t.upper(), p, cpu_ratio))
    if tls:
        log()
        log("narf's TLS cost: narf over TLS against narf's plain port "
            "(ratio = median of per-round TLS/plain)")
        hdr = ("%-6s %3s | %12s %12s %6s | %9s %9s %6s" % (
            "test", "P", "TLS req/s", "plain req/s", "ratio", "TLS us",
            "plain us", "ratio"))
        log(hdr)
        log("-" * len(hdr))
        for p in depths:
            for t in tests:
                res = results[(t, p)]
                tr = [x[0] for x in res["narf"]]
                pr = [x[0] for x in res["narf-plain"]]
                tc = [x[1] for x in res["narf"]]
                pc = [x[1] for x in res["narf-plain"]]
                cpu = [x / y for x, y in zip(tc, pc) if y > 0]
                log("%-6s %3d | %12.0f %12.0f %6s | %9.3f %9.3f %6s" % (
                    t.upper(), p, statistics.median(tr),
                    statistics.median(pr),
                    fmt_ratio(statistics.median(
                        x / y for x, y in zip(tr, pr))),
                    statistics.median(tc), statistics.median(pc),
                    fmt_ratio(statistics.median(cpu) if cpu else None)))
    log()
    if misses:
        log("targets missed: " + "; ".join(misses))
    else:
        log("targets met (SET/GET: CPU/request <= redis; throughput >= 1.0x "
            "at P>=16, >= 0.95x at P=1)")
    return 0


# --- memory ------------------------------------------------------------------


def write_stream(path, n):
    """n SETs of 16-byte keys (key:%012d) and 32-byte values, as RESP."""
    with open(path, "wb") as f:
        chunk = []
        for i in range(n):
            key = b"key:%012d" % i
            val = b"v%031d" % i
            chunk.append(b"*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n$32\r\n%s\r\n"
                         % (key, val))
            if len(chunk) == 10000:
                f.write(b"".join(chunk))
                chunk = []
        f.write(b"".join(chunk))


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


# Collection shapes (issue 16): name -> (command, element maker, elements
# per key). "10" shapes: many keys of 10 small elements each; "big": one key
# holding every element. Elements are small (8-12 bytes), so the small
# encodings apply where Redis 7.0 has them.
SHAPES = {
    "hash10": ("HSET", lambda i: [b"f%d" % (i % 10), b"v%07d" % i], 10),
    "hashbig": ("HSET", lambda i: [b"f%09d" % i, b"v%07d" % i], 0),
    "set10": ("SADD", lambda i: [b"m%09d" % i], 10),
    "setbig": ("SADD", lambda i: [b"m%09d" % i], 0),
    "zset10": ("ZADD", lambda i: [b"%d" % i, b"m%09d" % i], 10),
    "zsetbig": ("ZADD", lambda i: [b"%d" % i, b"m%09d" % i], 0),
    "list10": ("RPUSH", lambda i: [b"e%09d" % i], 10),
    "listbig": ("RPUSH", lambda i: [b"e%09d" % i], 0),
}


def write_shape(path, shape, n):
    """n elements of a collection shape as RESP: for the "10" shapes n/10
    keys (coll:%012d) of 10 elements, one command each; for "big" one key
    filled 100 elements per command. Returns the number of keys."""
    cmd, elem, per_key = SHAPES[shape]
    cmd = cmd.encode()
    batch = per_key or 100
    keys = n // per_key if per_key else 1
    with open(path, "wb") as f:
        chunk = []
        for start in range(0, n, batch):
            key = b"coll:%012d" % (start // per_key if per_key else 0)
            args = [cmd, key]
            for i in range(start, min(start + batch, n)):
                args += elem(i)
            chunk.append(resp(*args))
            if len(chunk) >= 1000:
                f.write(b"".join(chunk))
                chunk = []
        f.write(b"".join(chunk))
    return keys


def load(cli, port, path, timeout):
    with open(path, "rb") as f:
        try:
            out = subprocess.run([cli, "-h", HOST, "-p", str(port), "--pipe"],
                                 stdin=f, capture_output=True, text=True,
                                 timeout=timeout)
        except subprocess.TimeoutExpired:
            fail("redis-cli --pipe to %d timed out after %ds"
                 % (port, timeout))
    if out.returncode != 0 or "errors: 0," not in out.stdout:
        fail("redis-cli --pipe to %d failed (exit %d):\n%s%s"
             % (port, out.returncode, out.stdout, out.stderr))


def memory(a):
    if a.shape != "strings":
        return memory_shape(a)
    servers = [("narf", a.narf_port, a.narf_pid),
               ("redis", a.redis_port, a.redis_pid)]
    base = {name: vm_rss(pid) for name, _, pid in servers}
    with tempfile.TemporaryDirectory(prefix="narf-bench-mem.") as d:
        path = os.path.join(d, "load.resp")
        t0 = time.monotonic()
        write_stream(path, a.keys)
        log("memory: %d keys (16-byte key, 32-byte value), stream of %d MB "
            "written in %.1fs" % (a.keys, os.path.getsize(path) >> 20,
                                  time.monotonic() - t0))
        per_key = {}
        for name, port, pid in servers:
            t0 = time.monotonic()
            load(a.cli, port, path, a.run_timeout)
            took = time.monotonic() - t0
            n = dbsize(port)
            if n != a.keys:
                fail("%s holds %d keys after the load, want %d"
                     % (name, n, a.keys))
            time.sleep(0.5)
            rss = vm_rss(pid)
            used = info_field(port, "used_memory")
            per_key[name] = (rss - base[name]) / a.keys
            log("  %-5s loaded in %.1fs: VmRSS %d -> %d kB, %.1f B/key RSS; "
                "INFO used_memory %s (%.1f B/key)" % (
                    name, took, base[name] >> 10, rss >> 10, per_key[name],
                    used if used is not None else "-",
                    used / a.keys if used else float("nan")))
    ratio = per_key["narf"] / per_key["redis"]
    log()
    log("%-6s | %14s %14s %6s" % ("memory", "narf B/key", "redis B/key",
                                   "ratio"))
    log("%-6s | %14.1f %14.1f %6.2f   (target <= 0.80: %s)" % (
        "RSS", per_key["narf"], per_key["redis"], ratio,
        "met" if ratio <= 0.8 else "MISSED"))
    return 0


SETTLE_S = 15.0


def settled_rss(pid):
    """VmRSS SETTLE_S seconds after the load. The allocator gives back the
    pages a load left behind (the connection's input buffer, listpacks'
    earlier sizes) only after its dirty-page decay time, jemalloc's 10 s
    default in both servers, and in steps (narf's RSS after a 16 MB
    RPUSH stream: unchanged for 9 s, then 2.2 MB less at once): a snapshot
    right after the load measures how soon each allocator purges, not what
    the data holds. Both servers get the same wait."""
    time.sleep(SETTLE_S)
    return vm_rss(pid)


def memory_shape(a):
    """A collection shape: resident bytes per element on both servers, 0.5 s
    after the load and SETTLE_S later (settled_rss); the target is judged on
    the settled figure, the same rule for both."""
    servers = [("narf", a.narf_port, a.narf_pid),
               ("redis", a.redis_port, a.redis_pid)]
    base = {name: vm_rss(pid) for name, _, pid in servers}
    per, early = {}, {}
    with tempfile.TemporaryDirectory(prefix="narf-bench-mem.") as d:
        path = os.path.join(d, "load.resp")
        keys = write_shape(path, a.shape, a.keys)
        log("memory %s: %d elements in %d key(s), stream of %d MB"
            % (a.shape, a.keys, keys, os.path.getsize(path) >> 20))
        for name, port, pid in servers:
            t0 = time.monotonic()
            load(a.cli, port, path, a.run_timeout)
            took = time.monotonic() - t0
            n = dbsize(port)
            if n != keys:
                fail("%s holds %d keys after the load, want %d"
                     % (name, n, keys))
            time.sleep(0.5)
            rss0 = vm_rss(pid)
            rss = settled_rss(pid)
            used = info_field(port, "used_memory")
            early[name] = (rss0 - base[name]) / a.keys
            per[name] = (rss - base[name]) / a.keys
            log("  %-5s loaded in %.1fs: VmRSS %d -> %d kB after 0.5 s "
                "(%.1f B/element), %d kB %d s later (%.1f B/element); INFO "
                "used_memory %.1f B/element"
                % (name, took, base[name] >> 10, rss0 >> 10, early[name],
                   rss >> 10, SETTLE_S, per[name],
                   used / a.keys if used else float("nan")))
    ratio = per["narf"] / per["redis"]
    log("%-8s | %14.1f %14.1f %6.2f   (target <= 1.00: %s; after 0.5 s: "
        "%.2f)" % (a.shape, per["narf"], per["redis"], ratio,
                   "met" if ratio <= 1.0 else "MISSED",
                   early["narf"] / early["redis"]))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ports")
    p.add_argument("n", type=int)
    p = sub.add_parser("wait")
    p.add_argument("ports", type=int, nargs="+")
    for name in ("throughput", "memory"):
        p = sub.add_parser(name)
        p.add_argument("--narf-port", type=int, required=True)
        p.add_argument("--narf-pid", type=int, required=True)
        p.add_argument("--redis-port", type=int, required=True)
        p.add_argument("--redis-pid", type=int, required=True)
        p.add_argument("--run-timeout", type=int, default=300)
        p.add_argument("--max-seconds", type=int, default=1800)
        p.add_argument("--bench", default="redis-benchmark")
        p.add_argument("--cli", default="redis-cli")
        if name == "throughput":
            p.add_argument("--requests", type=int, default=200000)
            p.add_argument("--clients", type=int, default=50)
            p.add_argument("--pipeline", default="1,16")
            p.add_argument("--rounds", type=int, default=3)
            p.add_argument("--tests", default="set,get,incr,mset")
            p.add_argument("--size", type=int, default=32)
            p.add_argument("--keyspace", type=int, default=100000)
            p.add_argument("--tls-dir", default=None)
            p.add_argument("--narf-tls-port", type=int, default=0)
            p.add_argument("--redis-tls-port", type=int, default=0)
        else:
            p.add_argument("--keys", type=int, default=KEYS)
            p.add_argument("--shape", default="strings",
                           choices=["strings"] + sorted(SHAPES))
    a = ap.parse_args()
    if a.cmd == "ports":
        print("\n".join(str(p) for p in free_ports(a.n)))
        return 0
    if a.cmd == "wait":
        wait_ping(a.ports)
        return 0
    if a.cmd == "throughput":
        return throughput(a)
    return memory(a)


if __name__ == "__main__":
    sys.exit(main())

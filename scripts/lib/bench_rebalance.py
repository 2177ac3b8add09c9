#!/usr/bin/python3
"""Rebalance benchmark (run by `scripts/bench.sh rebalance`, which starts
and stops the cluster: 3 coordinators and 3 data nodes from
scripts/cluster.sh).

1. Loads --keys keys (default 1,000,000) of --value-size byte values
   (default 32) straight into their primaries: one `redis-cli --pipe` per
   node, routed by CLUSTER SLOTS, all three at once.
2. Starts a steady load: --workers processes sending pipelined batches
   of --pipeline requests (GET and, --write-ratio of them, SET of the
   loaded keys, picked at random) to the slots' primaries (routing re-read
   every 0.5 s, one -MOVED followed as a cluster client does), counting
   per wall-clock second the requests answered and the ones that failed
   (an error reply or no reply). --load per-node (the default): each
   worker is a narf-loadgen process (tests/bench/loadgen.c) keeping a
   batch in flight to every primary, drawn from its slots, and sending a
   node its next batch when its last is answered, as independent clients
   do (redis-benchmark, memtier, YCSB); 4 of them by default keep the
   nodes busy. --load fan-out: each worker is a Python process whose batch
   is split across the nodes, the next one waiting for all of them, so
   one slow node stalls the whole load (the benchmark's load until
   December 2026; it used about as much CPU as the nodes).
3. After --steady seconds, `cluster.sh add-node` starts a 4th data node,
   and the benchmark polls the leader's status until the rebalance has
   finished: 4 nodes up, nothing moving or syncing, under_replicated 0,
   and every node's primaries and copies within 1 of the mean.
4. Keeps the load --after more seconds, then stops it.

Prints: the time to finish the rebalance; the bytes the nodes' replication
streams carried meanwhile (INFO replication stream_bytes, summed over the
nodes, before the join and once settled), minus the live writes' stream at
the steady rate, against the ideal (a quarter of every copy of the data,
as NARF.SET messages); failed requests (target 0); the steady rate
(median 1-second rate before the join) and the minimum 1-second rate
while the rebalance ran (target: at least 70% of the steady rate); per
phase (steady, rebalance, after), the batches' round-trip times (p50, p99,
max; per node with --load per-node, per whole batch with fan-out) and the
seconds per second the workers spent waiting for each node's replies,
for the map and the -MOVED replies per second: where a dip comes from. Writes the per-second rates and batch times to a CSV and, with
gnuplot, a PNG (the join and the end of the rebalance as vertical lines),
and prints their paths.

Everything is bounded: the load by --max-seconds, every wait by a timeout.
"""

import argparse
import multiprocessing as mp
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from array import array

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import cluster_harness as ch  # noqa: E402
from dn_harness import Closed, Err, RawConn, encode  # noqa: E402
from narf_harness import HarnessError  # noqa: E402


def log(msg=""):
    print(msg, flush=True)


def fail(msg):
    print("bench_rebalance: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def key_of(i):
    return b"key:%d" % i


def value_of(i, gen, size):
    v = b"%d:%d:" % (i, gen)
    return (v + b"x" * size)[:size]


def table_from(addrs, timeout=1.0):
    """CLUSTER SLOTS of the first node that answers with every slot
    served; None if none does."""
    for a in addrs:
        try:
            t = ch.slots_table(ch.addr_port(a), timeout)
        except (OSError, Closed, HarnessError, ValueError, IndexError,
                TypeError):
            continue
        if all(t):
            return t
    return None


def stream_bytes(addrs):
    """{addr: INFO replication stream_bytes} (nodes that answer)."""
    out = {}
    for a in addrs:
        try:
            with RawConn(ch.addr_port(a), timeout=3.0) as c:
                info = c.cmd("INFO", "replication")
        except (OSError, Closed, HarnessError):
            continue
        if isinstance(info, bytes):
            for line in info.decode().splitlines():
                if line.startswith("stream_bytes:"):
                    out[a] = int(line.split(":", 1)[1])
    return out


# ---------------------------------------------------------------------------
# Loading


def load_data(a, addrs, slot_of, tmpdir):
    """Every key SET on its primary with redis-cli --pipe, one per node,
    in parallel. Returns seconds taken."""
    table = table_from(addrs)
    if table is None:
        raise HarnessError("no node answers CLUSTER SLOTS with every slot")
    files = {}
    outs = {}
    for i in range(a.keys):
        addr = table[slot_of[i]]
        f = files.get(addr)
        if f is None:
            f = files[addr] = open(os.path.join(
                tmpdir, "load-%s.resp" % addr.replace(":", "_")), "wb")
            outs[addr] = []
        outs[addr].append(encode("SET", key_of(i), value_of(i, 0,
                                                            a.value_size)))
        if len(outs[addr]) >= 10000:
            f.write(b"".join(outs[addr]))
            outs[addr] = []
    for addr, f in files.items():
        f.write(b"".join(outs[addr]))
        f.close()
    t0 = time.monotonic()
    procs = []
    for addr, f in files.items():
        port = ch.addr_port(addr)
        fin = open(f.name, "rb")
        p = subprocess.Popen(["redis-cli", "-h", "127.0.0.1", "-p",
                              str(port), "--pipe", "--pipe-timeout", "60"],
                             stdin=fin, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        procs.append((addr, p, fin))
    bad = []
    for addr, p, fin in procs:
        try:
            out, _ = p.communicate(timeout=a.load_timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise HarnessError("redis-cli --pipe to %s: over %.0fs" % (
                addr, a.load_timeout))
        finally:
            fin.close()
        last = out.strip().splitlines()[-1] if out.strip() else ""
        if p.returncode != 0 or "errors: 0," not in last:
            bad.append("%s: %s" % (addr, last or out[-300:]))
    for f in files.values():
        os.unlink(f.name)
    if bad:
        raise HarnessError("redis-cli --pipe: " + "; ".join(bad))
    return time.monotonic() - t0


def get_cmd(key):
    """GET key in RESP (encode() without its generality: the load's
    commands are built a million times)."""
    return b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)


def set_cmd(key, value):
    return b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(key), key, len(value), value)


def quantiles(v):
    """p50, p99 and max of v (zeros when empty)."""
    if not v:
        return (0.0, 0.0, 0.0)
    v = sorted(v)
    return (v[len(v) // 2], v[min(len(v) - 1, int(len(v) * 0.99))], v[-1])


# ---------------------------------------------------------------------------
# The load: worker processes (forked: slot_of is shared)


class LoadStats:
    """What a worker saw, per wall-clock second since t0: requests answered
    and failed, batch round trips, seconds spent waiting per node (and
    "map" for slot-table reads, "moved" for -MOVED replies followed), and
    the first few failures' reasons."""

    def __init__(self):
        self.ok, self.bad, self.lat, self.wait, self.errs = {}, {}, {}, {}, []

    def answered(self, t, n):
        if n:
            self.ok[int(t)] = self.ok.get(int(t), 0) + n

    def failed(self, t, n, why):
        if n:
            self.bad[int(t)] = self.bad.get(int(t), 0) + n
            if len(self.errs) < 5:
                self.errs.append(why)

    def waited(self, t, what, amount):
        w = self.wait.setdefault(int(t), {})
        w[what] = w.get(what, 0.0) + amount

    def batch(self, t, secs):
        self.lat.setdefault(int(t), []).append(1000.0 * secs)

    def result(self):
        return (self.ok, self.bad, self.errs, self.lat, self.wait)


def worker_fan_out(idx, a, addrs, slot_of, t0, stop_at, stop_ev, out_q):
    """The fan-out load (--load fan-out): each batch of --pipeline random
    keys is split by node, sent to all of them at once, and the next batch
    waits for every reply, as one client fanning out a multi-key request
    would. A node that is slow for a moment holds up every batch: this load
    measures the slowest node's latency more than the cluster's
    capacity."""
    # A session of its own, as every data node has (cluster.sh starts them
    # with setsid): with the kernel's autogroup scheduling CPU time is
    # shared between sessions first, so load processes left in one
    # session would share one slice among them against the nodes'.
    parent = os.getppid()
    os.setsid()
    rnd = random.Random(idx * 7919 + 1)
    st = LoadStats()
    conns = {}
    table = None
    last_refresh = 0.0
    gen = 1 + idx
    nkeys = a.keys
    try:
        while not stop_ev.is_set() and time.time() < stop_at:
            now = time.time()
            if table is None or now - last_refresh > 0.5:
                if os.getppid() != parent:
                    break  # the benchmark is gone (a signal its session got)
                t = table_from(addrs)
                last_refresh = now
                st.waited(now - t0, "map", time.time() - now)
                if t is not None:
                    table = t
                elif table is None:
                    time.sleep(0.05)
                    continue
            by_addr = {}
            for _ in range(a.pipeline):
                i = rnd.randrange(nkeys)
                if rnd.random() < a.write_ratio:
                    cmd = set_cmd(key_of(i), value_of(i, gen, a.value_size))
                else:
                    cmd = get_cmd(key_of(i))
                by_addr.setdefault(table[slot_of[i]], []).append(cmd)
            gen += a.workers
            t_batch = time.time()
            sent = []
            for addr, cmds in by_addr.items():
                c = conns.get(addr)
                try:
                    if c is None:
                        c = conns[addr] = RawConn(ch.addr_port(addr),
                                                  timeout=a.request_timeout)
                    c.send(b"".join(cmds))
                    sent.append((addr, len(cmds)))
                except (OSError, Closed, HarnessError) as e:
                    conns.pop(addr, None)
                    if c is not None:
                        c.close()
                    st.failed(time.time() - t0, len(cmds),
                              "%s: %r" % (addr, e))
                    last_refresh = 0.0
            moved = []
            for addr, n in sent:
                c = conns[addr]
                got_bad = 0
                t_read = time.time()
                failure = None
                try:
                    errors = c.read_errors(n, a.request_timeout)
                except (OSError, Closed, HarnessError) as e:
                    # Replies that came before the failure count as they
                    # are; the unanswered requests failed.
                    errors, failure = c.partial_errors, e
                    got_bad = n - c.partial
                now = time.time()
                st.failed(now - t0, got_bad, "%s: %r" % (addr, failure))
                st.answered(now - t0, n - got_bad - len(errors))
                for k, rep in errors:
                    if rep.startswith("MOVED "):
                        # As a cluster client: not run; sent again to the
                        # node named, after this batch.
                        moved.append((rep.split()[2], by_addr[addr][k]))
                        st.waited(now - t0, "moved", 1)
                    else:
                        st.failed(now - t0, 1, "%s: -%s" % (addr, rep))
                    last_refresh = 0.0
                if failure is not None:
                    conns.pop(addr, None)
                    c.close()
                    last_refresh = 0.0
                st.waited(now - t0, addr, now - t_read)
            for addr, cmd in moved:
                # One redirect followed, as redis-cli -c does; a second
                # MOVED or no reply is a failure.
                try:
                    c = conns.get(addr)
                    if c is None:
                        c = conns[addr] = RawConn(ch.addr_port(addr),
                                                  timeout=a.request_timeout)
                    c.send(cmd)
                    rep = c.read(a.request_timeout)
                    why = "%s after MOVED: -%s" % (addr, rep)
                except (OSError, Closed, HarnessError) as e:
                    c = conns.pop(addr, None)
                    if c is not None:
                        c.close()
                    rep, why = Err(""), "%s after MOVED: %r" % (addr, e)
                if isinstance(rep, Err):
                    st.failed(time.time() - t0, 1, why)
                else:
                    st.answered(time.time() - t0, 1)
            now = time.time()
            st.batch(now - t0, now - t_batch)
    finally:
        for c in conns.values():
            c.close()
        out_q.put((idx,) + st.result())


def start_loadgen(a, addrs, t0, stop_at):
    """The per-node load: --workers narf-loadgen processes (each in a
    session of its own, as the fan-out workers), their output to files (a
    pipe read only at the end could fill and stall them):
    [(process, stdout file, stderr file)]."""
    procs = []
    for i in range(a.workers):
        out = tempfile.TemporaryFile(mode="w+")
        err = tempfile.TemporaryFile(mode="w+")
        procs.append((subprocess.Popen(
            [a.loadgen, "--seed", ",".join(addrs), "--keys", str(a.keys),
             "--value-size", str(a.value_size), "--pipeline",
             str(a.pipeline), "--write-ratio", str(a.write_ratio),
             "--seconds", str(max(1, int(stop_at - time.time()) + 1)),
             "--t0", "%.3f" % t0, "--timeout",
             "%dms" % int(a.request_timeout * 1000), "--seed-rng",
             str(i + 1)],
            stdout=out, stderr=err, start_new_session=True), out, err))
    return procs


def stop_loadgen(procs, timeout):
    """Stops the narf-loadgen processes and reads their per-second lines:
    ([(ok, failed, errors, {second: (p50, p99, max) ms}, {second:
    {"moved": n}})] per process, [problems]): a process that exited before
    it was stopped, failed, or printed anything else is a problem, which
    fails the benchmark."""
    problems = []
    for p, _, _ in procs:
        if p.poll() is not None:
            problems.append("narf-loadgen %d exited early (status %d)" %
                            (p.pid, p.returncode))
        else:
            p.send_signal(signal.SIGTERM)
    out = []
    for p, fout, ferr in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            problems.append("narf-loadgen %d did not stop" % p.pid)
        if p.returncode != 0:
            problems.append("narf-loadgen %d: status %d" % (p.pid,
                                                            p.returncode))
        fout.seek(0)
        ferr.seek(0)
        text, err = fout.read(), ferr.read()
        fout.close()
        ferr.close()
        ok, bad, q, wait = {}, {}, {}, {}
        for line in text.splitlines():
            f = line.split()
            if len(f) != 8 or not all(x.isdigit() for x in f):
                problems.append("narf-loadgen printed %r" % line[:200])
                continue
            s, n_ok, n_bad, moved, batches = (int(x) for x in f[:5])
            ok[s], bad[s] = n_ok, n_bad
            if batches:
                q[s] = tuple(int(x) / 1000.0 for x in f[5:])
            if moved:
                wait[s] = {"moved": float(moved)}
        errs = [x for x in err.splitlines() if x.strip()][:5]
        out.append((ok, bad, errs, q, wait))
    return out, problems


# ---------------------------------------------------------------------------


def settled(coords, want_up):
    """The leader's status when the rebalance is over, else None."""
    rep = ch.call_leader(coords, {"op": "status"}, 3.0)
    if not rep.get("ok"):
        return None
    st = rep["status"]
    up = [n for n in st["nodes"] if n["state"] == "up"]
    if len(up) < want_up or ch.balance_problems(st):
        return None
    return st


def plot(a, csv_path, png_path, join_s, done_s):
    gp = shutil.which("gnuplot")
    if gp is None:
        return "gnuplot is not installed (Debian package gnuplot-nox)"
    script = """
set terminal pngcairo size 1000,500 noenhanced
set output '%s'
set datafile separator ','
set title 'narf: requests/s while a 4th node joins (%d keys, %s load, %d workers, pipeline %d)'
set xlabel 'seconds since the load started (each point: one second, at its middle)'
set ylabel 'requests answered per second'
set yrange [0:*]
set grid
set key bottom right
set arrow 1 from %.2f, graph 0 to %.2f, graph 1 nohead lw 2 lc rgb 'red'
set label 1 'join' at %.2f, graph 0.95 left offset 0.5,0 tc rgb 'red'
set arrow 2 from %.2f, graph 0 to %.2f, graph 1 nohead lw 1 dt 2 lc rgb 'dark-green'
set label 2 'balanced' at %.2f, graph 0.88 left offset 0.5,0 tc rgb 'dark-green'
plot '%s' every ::1 using ($1+0.5):2 with linespoints title 'ok (per second)', \\
     '%s' every ::1 using ($1+0.5):3 with impulses lw 3 title 'failed'
""" % (png_path, a.keys, a.load, a.workers, a.pipeline, join_s, join_s, join_s,
       done_s, done_s, done_s, csv_path, csv_path)
    try:
        r = subprocess.run([gp], input=script, text=True,
                           capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "gnuplot timed out"
    if r.returncode != 0:
        # pngcairo may be missing: fall back to the plain png terminal.
        r = subprocess.run([gp], input=script.replace(
            "pngcairo", "png"), text=True, capture_output=True, timeout=60)
        if r.returncode != 0:
            return "gnuplot failed: " + r.stderr.strip()[-300:]
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--base-port", type=int, required=True)
    ap.add_argument("--cluster-sh", required=True)
    ap.add_argument("--keys", type=int, default=1000000)
    ap.add_argument("--value-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=0,
                    help="load processes (default 4 per-node, 2 fan-out)")
    ap.add_argument("--load", choices=("per-node", "fan-out"),
                    default="per-node")
    ap.add_argument("--loadgen", help="narf-loadgen (for --load per-node)")
    ap.add_argument("--pipeline", type=int, default=32)
    ap.add_argument("--write-ratio", type=float, default=0.2)
    ap.add_argument("--steady", type=float, default=10.0)
    ap.add_argument("--moves", type=int, default=0,
                    help="the cluster's `moves` setting (0: as it is)")
    ap.add_argument("--after", type=float, default=5.0)
    ap.add_argument("--rebalance-timeout", type=float, default=300.0)
    ap.add_argument("--load-timeout", type=float, default=300.0)
    ap.add_argument("--request-timeout", type=float, default=5.0)
    ap.add_argument("--out", required=True,
                    help="path prefix of the CSV and PNG written")
    ap.add_argument("--max-seconds", type=float, default=900.0)
    a = ap.parse_args()
    a.workers = a.workers or (4 if a.load == "per-node" else 2)
    if a.load == "per-node" and not (a.loadgen and os.access(a.loadgen,
                                                             os.X_OK)):
        fail("--load per-node needs --loadgen, the narf-loadgen binary "
             "(build/tests/narf-loadgen)")
    # bench.sh's timeout signals its process group, which the workers (in
    # sessions of their own) are not in: exit through the finally blocks,
    # which stop them.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    end = time.monotonic() + a.max_seconds
    coords = ch.Coords(["127.0.0.1:%d" % (a.base_port + i)
                        for i in (1, 2, 3)])
    addrs = ["127.0.0.1:%d" % (a.base_port + 200 + k) for k in (1, 2, 3)]
    new_addr = "127.0.0.1:%d" % (a.base_port + 204)

    log("rebalance: 3 data nodes, %d keys of %d bytes, then a 4th node "
        "joins under %d load processes (%s, pipeline %d, %.0f%% SET)" % (
            a.keys, a.value_size, a.workers, a.load, a.pipeline,
            a.write_ratio * 100))
    deadline = time.monotonic() + 60
    while ch.cluster_ready(coords, addrs) is None:
        if time.monotonic() > deadline:
            fail("the cluster is not ready after 60 s")
        time.sleep(0.2)
    slot_of = array("H", (ch.key_slot(key_of(i)) for i in range(a.keys)))
    tmpdir = tempfile.mkdtemp(prefix="narf-rebalance-load.")
    try:
        secs = load_data(a, addrs, slot_of, tmpdir)
    except HarnessError as e:
        fail("loading: %s" % e)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    rep = ch.call_leader(coords, {"op": "status"}, 5.0)
    nkeys = sum(n.get("keys", 0) for n in rep["status"]["nodes"])
    log("loaded %d keys in %.1f s (%.0f keys/s); the nodes hold %d copies"
        % (a.keys, secs, a.keys / secs, nkeys))
    repl = rep["status"].get("replication", 2)
    # The data as the streams carry it: one NARF.SET per copy.
    per_key = sum(len(encode("NARF.SET", "10", key_of(i),
                             value_of(i, 0, a.value_size), "0"))
                  for i in range(0, a.keys, max(1, a.keys // 10000)))
    per_key /= float(len(range(0, a.keys, max(1, a.keys // 10000))))
    data_bytes = per_key * a.keys * repl

    # Steady load.
    t0 = float(int(time.time()))
    stop_at = t0 + min(a.max_seconds, a.steady + a.rebalance_timeout +
                       a.after + 30)
    stop_ev = mp.Event()
    out_q = mp.Queue()
    procs, loadgens, load_problems = [], [], []
    result = {}
    if a.moves:
        rep = ch.call_leader(coords, {"op": "settings", "moves": a.moves},
                             5.0)
        if not rep.get("ok"):
            fail("settings moves=%d: %r" % (a.moves, rep))
        log("moves in flight: %d" % a.moves)
    try:
        if a.load == "per-node":
            loadgens = start_loadgen(a, addrs + [new_addr], t0, stop_at)
        else:
            procs = [mp.Process(target=worker_fan_out,
                                args=(i, a, addrs + [new_addr], slot_of, t0,
                                      stop_at, stop_ev, out_q), daemon=True)
                     for i in range(a.workers)]
        for p in procs:
            p.start()
        time.sleep(min(2.0, a.steady / 2))
        sb0 = stream_bytes(addrs)
        tb0 = time.time()
        time.sleep(max(0.0, t0 + a.steady - time.time()))
        sb1 = stream_bytes(addrs)
        t_join = time.time()
        out = subprocess.run([a.cluster_sh, "add-node", "--dir", a.dir],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise HarnessError("cluster.sh add-node: %s" % out.stderr[-300:])
        log("joined: %s (%s)" % (out.stdout.strip(), new_addr))
        st = None
        last_err = None
        while time.time() < t_join + a.rebalance_timeout and \
                time.monotonic() < end:
            try:
                st = settled(coords, 4)
            except (OSError, ValueError, HarnessError, KeyError) as e:
                last_err, st = e, None
            if st is not None:
                break
            time.sleep(0.1)
        t_done = time.time()
        if st is None:
            raise HarnessError("not balanced within %.0f s (last error %r)"
                               % (a.rebalance_timeout, last_err))
        sb2 = stream_bytes(addrs + [new_addr])
        time.sleep(max(0.0, a.after))
    except (HarnessError, subprocess.TimeoutExpired) as e:
        stop_ev.set()
        fail(str(e))
    finally:
        stop_ev.set()
        t_stop = time.time()
        for _ in procs:
            try:
                idx, ok, bad, errs, lat, wait = out_q.get(
                    timeout=a.request_timeout * 3 + 10)
                result[idx] = (ok, bad, errs, lat, wait)
            except Exception:
                break
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
        got, load_problems = stop_loadgen(loadgens,
                                          a.request_timeout * 3 + 10)
        for i, r in enumerate(got):
            result[i] = r

    # Per second: requests answered and failed, batch round trips (p50,
    # p99, max in ms) and waits. The fan-out workers' raw round trips are
    # pooled; narf-loadgen gives each second's quantiles, and where two
    # processes ran, their median p50 and worst p99 and max count.
    ok, bad, errs, lat, q, wait = {}, {}, [], {}, {}, {}
    for o, b, e, la, wa in result.values():
        for s, n in o.items():
            ok[s] = ok.get(s, 0) + n
        for s, n in b.items():
            bad[s] = bad.get(s, 0) + n
        errs += e
        for s, v in la.items():
            if isinstance(v, tuple):
                lat.setdefault(s, []).append(v)
            else:
                lat.setdefault(s, []).extend(v)
        for s, per in wa.items():
            w = wait.setdefault(s, {})
            for addr, t in per.items():
                w[addr] = w.get(addr, 0.0) + t
    for s, v in lat.items():
        if v and isinstance(v[0], tuple):
            q[s] = (statistics.median(x[0] for x in v),
                    max(x[1] for x in v), max(x[2] for x in v))
        else:
            q[s] = quantiles(v)
    # The last second the load ran whole (the one it stopped in is
    # partial).
    last = min(int(max(list(ok) + list(bad) + [0])), int(t_stop - t0) - 1)
    join_s, done_s = t_join - t0, t_done - t0
    csv_path, png_path = a.out + ".csv", a.out + ".png"
    os.makedirs(os.path.dirname(os.path.abspath(csv_path)), exist_ok=True)
    with open(csv_path, "w") as f:
        f.write("second,ok,failed,phase,batch_p50_ms,batch_p99_ms,"
                "batch_max_ms\n")
        for s in range(last + 1):
            phase = ("steady" if s + 1 <= join_s else
                     "rebalance" if s <= done_s else "after")
            x = q.get(s, (0.0, 0.0, 0.0))
            f.write("%d,%d,%d,%s,%.2f,%.2f,%.2f\n" % (
                s, ok.get(s, 0), bad.get(s, 0), phase, x[0], x[1], x[2]))
    # Steady: whole seconds after a 2 s warm-up, before the join; during:
    # every whole second that overlaps [join, settled].
    steady = [ok.get(s, 0) for s in range(2, int(join_s))]
    during = [ok.get(s, 0) for s in range(int(join_s), int(done_s) + 1)]
    failed = sum(bad.values())
    steady_rate = statistics.median(steady) if steady else 0
    dip = min(during) if during else 0
    live_rate = (sum(sb1.values()) - sum(sb0.values())) / max(
        1e-3, (t_join - tb0))
    moved_raw = sum(sb2.values()) - sum(sb1.values())
    live = live_rate * (t_done - t_join)
    moved = moved_raw - live
    ideal = data_bytes / 4.0
    err = plot(a, csv_path, png_path, join_s, done_s)

    log()
    log("rebalance finished (4 nodes up, balanced, nothing moving or "
        "syncing) %.2f s after the join" % (t_done - t_join))
    log("bytes moved: %.1f MB by the replication streams during the "
        "rebalance, %.1f MB of it live writes (steady stream rate %.2f MB/s)"
        ", so %.1f MB of sync; ideal (1/4 of %d copies of %d keys as "
        "NARF.SET, %.1f MB) %.1f MB: %.2fx the ideal" % (
            moved_raw / 1e6, live / 1e6, live_rate / 1e6, moved / 1e6,
            repl, a.keys, data_bytes / 1e6, ideal / 1e6,
            moved / ideal if ideal else 0))
    log("failed requests: %d (target 0) of %d" % (
        failed, failed + sum(ok.values())))
    for e in errs[:5]:
        log("  e.g. %s" % e)
    log("throughput: steady %d req/s (median 1-s rate before the join), "
        "minimum 1-s rate during the rebalance %d req/s over %d s: %.0f%% "
        "(target >= 70%%)" % (steady_rate, dip, len(during),
                               100.0 * dip / steady_rate if steady_rate
                               else 0))
    phases = (("steady", range(2, int(join_s))),
              ("rebalance", range(int(join_s), int(done_s) + 1)),
              ("after", range(int(done_s) + 1, last + 1)))
    for name, secs in phases:
        x = [q[s] for s in secs if s in q] or [(0.0, 0.0, 0.0)]
        per = {}
        for s in secs:
            for addr, t in wait.get(s, {}).items():
                per[addr] = per.get(addr, 0.0) + t
        log("batch round trip %-9s p50 %.2f ms (median of the seconds'), "
            "p99 %.2f ms (worst second's), max %.1f ms; waiting per node "
            "(s/s): %s" % (
                name, statistics.median(v[0] for v in x),
                max(v[1] for v in x), max(v[2] for v in x),
                " ".join(
                    "%s=%.2f" % (addr.rsplit(":", 1)[-1],
                                 t / max(1, len(secs)))
                    for addr, t in sorted(per.items()))))
    log("per-second rates: %s" % csv_path)
    if err:
        log("plot: not drawn: %s" % err)
    else:
        log("plot: %s" % png_path)
    if st is not None:
        log("nodes: %s" % ", ".join(
            "%d p=%d r=%d keys=%s" % (n["id"], n["primaries"], n["replicas"],
                                       n.get("keys"))
            for n in st["nodes"] if n["state"] == "up"))
    for p in load_problems:
        log("load: %s" % p)
    ok_all = failed == 0 and steady_rate and dip >= 0.7 * steady_rate and \
        not load_problems
    log("ok: targets met" if ok_all else
        "NOT OK: %s" % ", ".join(x for x, c in (
            ("requests failed", failed),
            ("throughput fell below 70%", steady_rate and
             dip < 0.7 * steady_rate),
            ("the load generator failed", load_problems),
            ("no steady rate", not steady_rate)) if c))
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Big-slot handover benchmark (run by `scripts/bench.sh bigslot`, which
starts and stops a cluster of 3 coordinators and 3 data nodes).

1. Loads one sorted set of --members members (default 1,000,000) into the
   key {bigslot}z on its slot's primary (`redis-cli --pipe`, ZADD batches
   of 1000).
2. Starts a steady load on that key: one client sending ZADD of a new
   member at a time (routed by CLUSTER SLOTS, -MOVED followed) and one
   sending PING to the primary every 5 ms, recording every latency.
3. After --steady seconds, sends SIGTERM to the primary: a data node that
   stops leaves first (its slots are synced to another node and handed
   over, then it exits), so the slot holding the big set moves under load.
4. Polls CLUSTER SLOTS on the other nodes until the slot has a new
   primary, keeps the load 2 s more, then stops it and checks that every
   acknowledged ZADD is in the set on the new primary.

Prints: the load time; the time from SIGTERM to the new primary; ZADD
latency p50/p99/max before and during the move, failed writes, the
longest gap between acknowledged writes, PING p99/max on the old primary
while it synced; and how many acknowledged members are missing (target 0).

Everything is bounded: each wait by a timeout, the whole run by
--max-seconds.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import cluster_harness as ch  # noqa: E402
from dn_harness import Closed, Err, RawConn, encode  # noqa: E402
from narf_harness import HarnessError  # noqa: E402

KEY = "{bigslot}z"


def log(msg=""):
    print(msg, flush=True)


def fail(msg):
    log("bench_bigslot: " + msg)
    sys.exit(1)


def table_from(addrs):
    for a in addrs:
        try:
            t = ch.slots_table(ch.addr_port(a), 1.0)
        except (OSError, Closed, HarnessError, ValueError, IndexError,
                TypeError):
            continue
        if all(t):
            return t
    return None


def replicas_of(addrs, slot):
    """The replica addresses CLUSTER SLOTS names for slot, from the first
    node that answers; None when none does."""
    for a in addrs:
        try:
            with RawConn(ch.addr_port(a), timeout=1.0) as c:
                rep = c.cmd("CLUSTER", "SLOTS")
        except (OSError, Closed, HarnessError):
            continue
        if not isinstance(rep, list):
            continue
        for r in rep:
            if r[0] <= slot <= r[1]:
                return ["%s:%d" % (x[0].decode(), x[1]) for x in r[3:]]
    return None


def pid_of(port):
    out = subprocess.run(["pgrep", "-f", "datanode .*--port %d( |$)" % port],
                         capture_output=True, text=True, timeout=10)
    pids = [int(p) for p in out.stdout.split()]
    if len(pids) != 1:
        fail("no single datanode on port %d: %r" % (port, pids))
    return pids[0]


def pct(v, q):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def load(addr, members, tmp):
    path = os.path.join(tmp, "zset.resp")
    with open(path, "wb") as f:
        for i in range(0, members, 1000):
            args = ["ZADD", KEY]
            for j in range(i, min(i + 1000, members)):
                args += [str(j), "m%09d" % j]
            f.write(encode(*args))
    t0 = time.monotonic()
    with open(path, "rb") as fin:
        out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p",
                              str(ch.addr_port(addr)), "--pipe",
                              "--pipe-timeout", "120"],
                             stdin=fin, capture_output=True, text=True,
                             timeout=300)
    if out.returncode != 0 or "errors: 0," not in out.stdout:
        fail("loading: %s%s" % (out.stdout, out.stderr))
    return time.monotonic() - t0


class Writer(threading.Thread):
    """ZADD KEY i w<i>, one at a time, following -MOVED and re-reading
    the routing after an error; records (t, latency, ok) and the acked."""

    def __init__(self, addrs, stop, timeout):
        super().__init__(daemon=True)
        self.addrs, self.stop, self.timeout = addrs, stop, timeout
        self.rec, self.acked = [], []

    def run(self):
        conn, addr, i = None, None, 0
        while not self.stop.is_set() and i < 10 ** 7:
            if addr is None:
                t = table_from(self.addrs)
                addr = t[ch.key_slot(KEY)] if t else None
                if addr is None:
                    time.sleep(0.01)
                    continue
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = RawConn(ch.addr_port(addr), timeout=self.timeout)
                rep = conn.cmd("ZADD", KEY, i, "w%d" % i,
                               timeout=self.timeout)
            except (OSError, Closed, HarnessError):
                rep = None
            dt = time.monotonic() - t0
            ok = rep == 1
            self.rec.append((t0, dt, ok))
            if ok:
                self.acked.append(i)
                i += 1
                continue
            if isinstance(rep, Err) and rep.startswith("MOVED "):
                addr = rep.split()[2]
            else:
                addr = None
                time.sleep(0.005)
            if conn is not None:
                conn.close()
                conn = None


class Prober(threading.Thread):
    """PING to one node every 5 ms until it stops answering."""

    def __init__(self, addr, stop):
        super().__init__(daemon=True)
        self.addr, self.stop, self.rec = addr, stop, []

    def run(self):
        try:
            with RawConn(ch.addr_port(self.addr), timeout=2.0) as c:
                while not self.stop.is_set():
                    t0 = time.monotonic()
                    if c.cmd("PING") != "PONG":
                        return
                    self.rec.append((t0, time.monotonic() - t0))
                    time.sleep(0.005)
        except (OSError, Closed, HarnessError):
            return


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-port", type=int, required=True)
    ap.add_argument("--members", type=int, default=1000000)
    ap.add_argument("--steady", type=float, default=3.0)
    ap.add_argument("--move-timeout", type=float, default=240.0)
    a = ap.parse_args()
    addrs = ["127.0.0.1:%d" % (a.base_port + 200 + k) for k in (1, 2, 3)]
    t = table_from(addrs)
    if t is None:
        fail("no node answers CLUSTER SLOTS with every slot")
    slot = ch.key_slot(KEY)
    old = t[slot]
    with tempfile.TemporaryDirectory(prefix="narf-bigslot.") as tmp:
        took = load(old, a.members, tmp)
    log("loaded %d members into %s (slot %d, primary %s) in %.1f s"
        % (a.members, KEY, slot, old, took))
    stop = threading.Event()
    w = Writer(addrs, stop, 5.0)
    p = Prober(old, stop)
    w.start()
    p.start()
    time.sleep(a.steady)
    t_term = time.monotonic()
    os.kill(pid_of(ch.addr_port(old)), signal.SIGTERM)
    others = [x for x in addrs if x != old]
    t_moved = None
    while time.monotonic() - t_term < a.move_timeout:
        tt = table_from(others)
        if tt is not None and tt[slot] not in (None, old):
            t_moved = time.monotonic()
            break
        time.sleep(0.02)
    if t_moved is None:
        stop.set()
        fail("the slot did not move within %.0f s" % a.move_timeout)
    # then a second copy again: the third node synced the whole set
    t_synced = None
    while time.monotonic() - t_term < a.move_timeout:
        reps = replicas_of(others, slot)
        if reps and any(r != old for r in reps):
            t_synced = time.monotonic()
            break
        time.sleep(0.02)
    time.sleep(2.0)
    stop.set()
    w.join(30)
    p.join(10)
    new = table_from(others)[slot]
    with RawConn(ch.addr_port(new), timeout=30) as c:
        card = c.cmd("ZCARD", KEY)
        missing = 0
        for i in range(0, len(w.acked), 1000):
            part = w.acked[i:i + 1000]
            got = c.cmd("ZMSCORE", KEY, *["w%d" % j for j in part])
            missing += sum(1 for x in got if x is None)
    before = [dt for t0, dt, ok in w.rec if ok and t0 < t_term]
    t_end = max(t_moved, t_synced or t_moved)
    during = [dt for t0, dt, ok in w.rec if ok and t_term <= t0 < t_end]
    failed = sum(1 for t0, dt, ok in w.rec if not ok)
    acked_t = sorted(t0 + dt for t0, dt, ok in w.rec if ok)
    gap = max((b - a_ for a_, b in zip(acked_t, acked_t[1:])), default=0)
    pings = [dt for t0, dt in p.rec if t0 >= t_term]
    ms = 1000.0
    log("SIGTERM of the primary -> slot %d led by %s after %.2f s "
        "(sync of %d members and the handoff, under load)"
        % (slot, new, t_moved - t_term, a.members))
    if t_synced is not None:
        log("... and a second copy again (the set synced to the third "
            "node) %.2f s after SIGTERM" % (t_synced - t_term))
    else:
        log("no second copy within %.0f s" % a.move_timeout)
    log("ZADD before: %d acked, p50 %.2f ms, p99 %.2f ms, max %.1f ms"
        % (len(before), pct(before, .5) * ms, pct(before, .99) * ms,
           max(before, default=0) * ms))
    log("ZADD from SIGTERM to both copies: %d acked, p50 %.2f ms, p99 %.2f ms, "
        "max %.1f ms; %d failed attempts; longest gap between acked "
        "writes %.1f ms" % (len(during), pct(during, .5) * ms,
                            pct(during, .99) * ms,
                            max(during, default=0) * ms, failed, gap * ms))
    log("PING on the old primary while it synced: %d, p99 %.2f ms, max "
        "%.1f ms" % (len(pings), pct(pings, .99) * ms,
                     max(pings, default=0) * ms))
    log("ZCARD on the new primary %s (want %d + %d acked writes); "
        "acknowledged members missing: %d (target 0)"
        % (card, a.members, len(w.acked), missing))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Coordinator failover benchmark: time from kill -9 of the leader to the
first committed write on the new leader (run by `scripts/bench.sh coord`).

Expects a running cluster started by scripts/cluster.sh in --dir (with
--nodes 0). Each round: find the leader, note T0, SIGKILL it, then poll the
two survivors every ~10 ms with a settings write (node_timeout_ms
alternating 600/601 so every write is a real change that must commit)
until one answers ok:true (a follower answers not_leader, a fresh leader
not_ready until its barrier applied); the time since T0 is the round's
result. Then restart the killed member with `cluster.sh restart cN` and wait
until all three agree on one leader and are caught up, plus ~1 s to settle.

Everything is bounded: each round's write phase by --round-timeout, the
restart and settling by fixed timeouts, the whole run by --max-seconds.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coordping  # noqa: E402  (the shared ping helper next to this file)


def log(msg):
    print(msg, flush=True)


def fail(msg):
    print("bench_coord: " + msg, file=sys.stderr, flush=True)


def wait_stable(addrs, timeout):
    """Poll until the three members agree on one caught-up leader."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = coordping.ping_all(addrs)
        if coordping.stable(lines):
            return lines
        time.sleep(0.05)
    return None


def our_pid(cdir, cid, coord_bin):
    """The pid in DIR/pids/cN.pid if it is our coord for that data dir."""
    try:
        with open(os.path.join(cdir, "pids", "c%d.pid" % cid)) as f:
            pid = int(f.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0")]
    except (OSError, ValueError):
        return None
    if coord_bin in argv and os.path.join(cdir, "data", "c%d" % cid) in argv:
        return pid
    return None


class Survivor:
    """A persistent connection to one surviving member, re-made on error."""

    def __init__(self, addr):
        self.addr = addr
        self.conn = None

    def write(self, value, timeout):
        """Send the settings write; returns the reply, or None on error."""
        try:
            if self.conn is None:
                self.conn = coordping.Conn(self.addr, timeout)
            return self.conn.request(
                {"op": "settings", "node_timeout_ms": value}, timeout)
        except (OSError, ValueError):
            # A timed-out request may still be answered later: never reuse
            # a connection whose replies could be out of step.
            self.close()
            return None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def one_round(args, addrs, value):
    """Kill the leader, time the first committed write. Returns
    (ms or None, killed id)."""
    lead = None
    deadline = time.monotonic() + 10
    while lead is None and time.monotonic() < deadline:
        lead = coordping.find_leader(addrs)
        if lead is None:
            time.sleep(0.05)
    if lead is None:
        fail("no leader to kill")
        return None, None
    cid = lead["id"]
    pid = our_pid(args.dir, cid, args.coord)
    if pid is None:
        fail("leader c%d has no live pid of ours in %s/pids" % (cid, args.dir))
        return None, None
    me = "127.0.0.1:%d" % (args.base_port + cid)
    survivors = [Survivor(a) for a in addrs if a != me]
    for s in survivors:  # connect before T0, so T0 is just the kill
        s.write(value, 0.5)  # followers answer not_leader; nothing commits
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    end = t0 + args.round_timeout
    winner = None
    attempts = 0
    while winner is None and time.monotonic() < end:
        for s in survivors:
            attempts += 1
            reply = s.write(value, max(0.05, min(0.5, end - time.monotonic())))
            if reply is not None and reply.get("ok"):
                winner = s.addr
                break
        if winner is None:
            time.sleep(0.01)
    t1 = time.monotonic()
    for s in survivors:
        s.close()
    if winner is None:
        fail("no write committed within %.0f s of killing c%d (%d attempts)"
             % (args.round_timeout, cid, attempts))
        return None, cid
    wid = int(winner.rsplit(":", 1)[1]) - args.base_port
    ms = (t1 - t0) * 1000.0
    return (ms, cid, lead.get("term"), wid), cid


def restart(args, cid, addrs):
    """Restart cN through cluster.sh, then wait until the trio is stable."""
    try:
        r = subprocess.run([args.cluster_sh, "restart", "c%d" % cid, "--dir", args.dir],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=60)
    except subprocess.TimeoutExpired:
        fail("cluster.sh restart c%d took over 60 s" % cid)
        return False
    if r.returncode != 0:
        sys.stderr.write(r.stderr.decode(errors="replace"))
        fail("cluster.sh restart c%d failed (status %d)" % (cid, r.returncode))
        return False
    if wait_stable(addrs, 20) is None:
        fail("cluster not stable 20 s after restarting c%d" % cid)
        return False
    time.sleep(1.0)
    return True


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="the cluster's --dir")
    ap.add_argument("--base-port", type=int, required=True)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--cluster-sh", required=True, help="path of scripts/cluster.sh")
    ap.add_argument("--coord", required=True, help="path of the coord binary")
    ap.add_argument("--round-timeout", type=float, default=15.0,
                    help="seconds to wait for a committed write (default 15)")
    ap.add_argument("--max-seconds", type=float, default=0,
                    help="give up after this long in all (default: 60 per round)")
    args = ap.parse_args(argv)
    if not 1 <= args.rounds <= 1000:
        ap.error("--rounds must be in 1..1000")
    args.dir = os.path.abspath(args.dir)
    budget = args.max_seconds or 60.0 * args.rounds + 30
    stop_at = time.monotonic() + budget

    addrs = ["127.0.0.1:%d" % (args.base_port + i) for i in (1, 2, 3)]
    if wait_stable(addrs, 20) is None:
        fail("cluster not stable before the first round")
        return 1
    reply = coordping.leader_request(addrs, {"op": "settings"}, time.monotonic() + 10)
    if not reply or not reply.get("ok"):
        fail("cannot read settings: %r" % (reply,))
        return 1
    current = reply.get("settings", {}).get("node_timeout_ms")

    times = []
    failures = 0
    for r in range(1, args.rounds + 1):
        if time.monotonic() >= stop_at:
            fail("time budget of %.0f s spent after %d rounds" % (budget, r - 1))
            failures += 1
            break
        value = 601 if current == 600 else 600
        res, cid = one_round(args, addrs, value)
        if res is None:
            failures += 1
            log("round %d/%d: FAILED" % (r, args.rounds))
        else:
            ms, cid, term, wid = res
            current = value
            times.append(ms)
            log("round %d/%d: killed leader c%d (term %s); write committed by c%d after %.1f ms"
                % (r, args.rounds, cid, term, wid, ms))
        if cid is None:
            break  # nothing was killed: the cluster is in no state to go on
        if not restart(args, cid, addrs):
            failures += 1
            break

    if times:
        log("median %.1f ms, max %.1f ms over %d kills"
            % (statistics.median(times), max(times), len(times)))
    else:
        log("no successful kills")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)

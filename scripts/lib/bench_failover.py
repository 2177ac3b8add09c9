#!/usr/bin/python3
"""Data node failover benchmark (run by `scripts/bench.sh failover`, which
starts and stops the cluster: 3 coordinators and 4 data nodes from
scripts/cluster.sh).

A recording writer (tests/integration/cluster_harness.py: it routes by
CLUSTER SLOTS itself and records every attempt) SETs keys at about --rate
writes/s, round-robin over --keys keys. Each round: kill -9 the busiest
primary (the node leading most of the writer's keys), wait until the map
has failed it over and writes to each of its slots succeed again, keep
writing another second, stop the writer, restart the node
(`cluster.sh restart`) and wait until it is up again with
under_replicated == 0; then read every key written so far (every round's)
and count acknowledged writes lost. Per round it prints how long writes to
the killed node's slots were failing (first failed attempt on them to
the first success on them after the last failure), failed writes on the
other nodes' slots, and acknowledged writes lost; then the medians.

Everything is bounded: every wait has a timeout, each round --round-timeout
seconds, the whole run --max-seconds.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import cluster_checks as checks  # noqa: E402
import cluster_harness as ch  # noqa: E402
from narf_harness import (TLS_PORTS, HarnessError,  # noqa: E402
                          expand_slots, tls_context)


def log(msg=""):
    print(msg, flush=True)


def fail(msg):
    print("bench_failover: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def node_addrs(base_port, nodes):
    """The data nodes' addresses in the map: their RESP ports (P+200+k),
    or with TLS (bench.sh --tls exports NARF_TLS=1) their TLS ports
    (P+300+k, cluster.sh start --tls)."""
    first = 300 if os.environ.get("NARF_TLS") == "1" else 200
    return ["127.0.0.1:%d" % (base_port + first + k) for k in
            range(1, nodes + 1)]


def coord_apis(base_port):
    return ["127.0.0.1:%d" % (base_port + i) for i in (1, 2, 3)]


def leader_map(coords):
    rep = ch.call_leader(coords, {"op": "map"}, 10.0)
    if not rep.get("ok") or "map" not in rep:
        raise HarnessError("map: %r" % rep)
    return rep["map"]


def wait_ready(coords, addrs, timeout):
    """Until cluster_ready() holds twice in a row, 0.3 s apart, at the same
    map epoch."""
    deadline = time.monotonic() + timeout
    last = prev = None
    while time.monotonic() < deadline:
        try:
            m = ch.cluster_ready(coords, addrs)
            if m and prev is not None and m["epoch"] == prev:
                return m
            prev = m["epoch"] if m else None
        except (OSError, ValueError, HarnessError, KeyError,
                AssertionError) as e:
            last, prev = e, None
        time.sleep(0.3 if prev is not None else 0.1)
    raise HarnessError("cluster not ready (all %d nodes up, "
                       "under_replicated 0) within %.0fs (last error %r)"
                       % (len(addrs), timeout, last))


def wait_failed_over(coords, old_id, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            m = leader_map(coords)
            states = {n["id"]: n["state"] for n in m["nodes"]}
            if states.get(old_id) not in ("joining", "up", "leaving") and \
                    all(p not in (0, old_id) for p, _, _ in expand_slots(m)):
                return m
        except (OSError, ValueError, HarnessError):
            pass
        time.sleep(0.02)
    raise HarnessError("node %d not failed over within %.0fs"
                       % (old_id, timeout))


def cluster_sh(a, *args, timeout=60):
    argv = [a.cluster_sh] + list(args) + ["--dir", a.dir]
    try:
        out = subprocess.run(argv, capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        raise HarnessError("%s timed out" % " ".join(argv))
    if out.returncode != 0:
        raise HarnessError("%s failed (exit %d): %s" % (
            " ".join(argv), out.returncode, out.stderr.strip()[-500:]))
    return out.stdout.strip()


def busiest(m, keys):
    """(node id, addr) of the up node leading most of keys."""
    slots = expand_slots(m)
    addrs = {n["id"]: n["addr"] for n in m["nodes"] if n["state"] == "up"}
    count = {}
    for k in keys:
        p = slots[ch.key_slot(k)][0]
        if p in addrs:
            count[p] = count.get(p, 0) + 1
    nid = max(count, key=lambda i: (count[i], -i))
    return nid, addrs[nid]


def one_round(a, rnd, coords, addrs, all_records):
    m0 = wait_ready(coords, addrs, a.ready_timeout)
    keys = ["r%d:%d" % (rnd, i) for i in range(a.keys)]
    vid, vaddr = busiest(m0, keys)
    vslots = {s for s, (p, _, _) in enumerate(expand_slots(m0)) if p == vid}
    w = ch.Writer(addrs, keys, rate=a.rate, max_seconds=a.round_timeout,
                  max_count=int(a.rate * a.round_timeout) + 1)
    w.start()
    try:
        w.wait_acks(min(a.keys, int(a.rate)), timeout=20.0)
        k = addrs.index(vaddr) + 1
        t_kill = time.monotonic()
        cluster_sh(a, "kill-node", "n%d" % k)
        wait_failed_over(coords, vid, a.failover_timeout)
        t_map = time.monotonic()
        ch.wait_slots_acked(w, vslots, t_map, a.failover_timeout)
        time.sleep(1.0)
    finally:
        recs = w.stop()
    all_records.extend(recs)
    others = set(range(ch.NSLOTS)) - vslots
    _, stats = checks.window_report(recs, {"killed": vslots, "others": others})
    window = checks.group_window(recs, vslots)
    other_fail = stats["others"][1]
    other_errors = checks.first_errors(recs, others, 3)
    cluster_sh(a, "restart", "n%d" % k)
    wait_ready(coords, addrs, a.ready_timeout)
    values = checks.read_all(addrs, sorted({r.key for r in all_records}))
    problems = checks.check_history(all_records, values)
    return {"node": "n%d (id %d)" % (k, vid), "window_ms":
            window * 1000 if window is not None else None,
            "map_ms": (t_map - t_kill) * 1000,
            "killed_fail": stats["killed"][1], "other_fail": other_fail,
            "attempts": len(recs), "lost": len(problems),
            "problems": problems[:5], "other_errors": other_errors}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--base-port", type=int, required=True)
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--keys", type=int, default=400)
    ap.add_argument("--cluster-sh", required=True)
    ap.add_argument("--round-timeout", type=float, default=60.0)
    ap.add_argument("--failover-timeout", type=float, default=20.0)
    ap.add_argument("--ready-timeout", type=float, default=60.0)
    ap.add_argument("--max-seconds", type=float, default=900.0)
    a = ap.parse_args()
    coords = ch.Coords(coord_apis(a.base_port))
    addrs = node_addrs(a.base_port, a.nodes)
    if os.environ.get("NARF_TLS") == "1":
        # The harness's clients (readiness, the recording writer) speak
        # TLS to the nodes' TLS ports, with cluster.sh's certificates.
        ctx = tls_context(os.environ["NARF_TLS_DIR"])
        for addr in addrs:
            TLS_PORTS[int(addr.rsplit(":", 1)[1])] = ctx
    end = time.monotonic() + a.max_seconds
    log("failover: %d data nodes, writer at ~%.0f writes/s over %d keys "
        "per round, kill -9 of the busiest primary, %d rounds"
        % (a.nodes, a.rate, a.keys, a.rounds))
    log("%-5s %-12s %9s %9s %8s %9s %9s %6s" % (
        "round", "killed", "map ms", "fail ms", "failed", "others", "writes",
        "lost"))
    rows, all_records = [], []
    for rnd in range(1, a.rounds + 1):
        if time.monotonic() > end:
            fail("over --max-seconds %.0f" % a.max_seconds)
        try:
            r = one_round(a, rnd, coords, addrs, all_records)
        except HarnessError as e:
            fail("round %d: %s" % (rnd, e))
        rows.append(r)
        log("%-5d %-12s %9.0f %9s %8d %9d %9d %6d" % (
            rnd, r["node"], r["map_ms"],
            "%.0f" % r["window_ms"] if r["window_ms"] is not None else "-",
            r["killed_fail"], r["other_fail"], r["attempts"], r["lost"]))
        for p in r["problems"]:
            log("        lost: " + p)
        for e in r["other_errors"]:
            log("        failed on another node's slot: %r" % e)
    wins = [r["window_ms"] for r in rows if r["window_ms"] is not None]
    log()
    log("map ms: kill -9 to the leader's map showing the failover; "
        "fail ms: how long writes to the killed node's slots were failing "
        "(first failure to the first success after the last failure); "
        "failed: "
        "failed writes to its slots; others: failed writes to other nodes' "
        "slots; lost: keys (of every round so far) whose last acknowledged "
        "write is gone")
    log("median over %d rounds: writes failing %s ms, map %.0f ms, "
        "failures on other nodes' slots %g, acknowledged writes lost %g"
        % (len(rows), "%.0f" % statistics.median(wins) if wins else "-",
           statistics.median(r["map_ms"] for r in rows),
           statistics.median(r["other_fail"] for r in rows),
           statistics.median(r["lost"] for r in rows)))
    bad = [r for r in rows if r["lost"] or r["other_fail"]]
    if bad:
        log("NOT OK: acknowledged writes lost or writes to other nodes' "
            "slots failed in %d of %d rounds" % (len(bad), len(rows)))
        return 1
    log("ok: no acknowledged write lost, no failure on other nodes' slots")
    return 0


if __name__ == "__main__":
    sys.exit(main())

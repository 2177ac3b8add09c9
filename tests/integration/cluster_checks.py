"""What the cluster tests check once a scenario is over (test_cluster_faults.py,
test_rebalance.py, test_coord_membership.py, scripts/lib/bench_failover.py),
on the records of cluster_harness's writers and on the nodes themselves:

- check_history(): every key holds its last acknowledged value or a later
  attempted one; an acknowledged write is never lost nor replaced by an
  older one.
- failure_windows() / group_window() / window_report(): per slot, how long
  writes to it were failing (first failed attempt to the first success
  after it).
- copies_disagree(): every node that holds a key's slot as primary or
  in-sync replica holds the same value (read with READONLY on replicas).
- stray_keys(): no node keeps entries of a slot it no longer holds.
- check_reads() / check_deletes() / ttls_on_primaries(): what the
  rebalance tests' readers saw, deleted keys staying deleted, TTLs kept.

Every wait has a deadline; every loop has a bound in count and in time.
"""

import time

from cluster_harness import (REQUEST_TIMEOUT, RequestError, Router, key_slot,
                             parse_value)
from dn_harness import Closed, Err, RawConn, encode
from narf_harness import HarnessError, expand_slots


def acked_summary(records):
    """{key: (last acked n or 0, set of attempted n)}."""
    out = {}
    for a in records:
        last, tried = out.get(a.key, (0, set()))
        tried.add(a.n)
        if a.ok and a.n > last:
            last = a.n
        out[a.key] = (last, tried)
    return out


def read_all(seeds, keys, timeout=REQUEST_TIMEOUT, tries=5):
    """GET every key through a fresh Router; {key: bytes or None}. Keys
    whose read failed are retried (bounded) and finally raise."""
    keys = list(keys)
    out = {}
    for attempt in range(tries):
        r = Router(seeds, timeout=timeout)
        try:
            r.refresh(force=True)
            got = r.pipeline_get([k for k in keys if k not in out])
        finally:
            r.close()
        bad = {}
        for k, v in got.items():
            if isinstance(v, (RequestError, Err)):
                bad[k] = v
            else:
                out[k] = v
        if not bad:
            return out
        time.sleep(0.3)
    raise HarnessError("could not read %d keys, e.g. %r" % (
        len(bad), list(bad.items())[:3]))


def check_history(records, values):
    """The problems (a list of strings; empty when fine): for every key the
    writer tried, its value must be its last acknowledged one or a later
    attempted one (an errored write may or may not have landed)."""
    problems = []
    for key, (last, tried) in sorted(acked_summary(records).items()):
        v = values.get(key)
        if v is None:
            if last:
                problems.append("%s: missing, but write %d was acknowledged"
                                % (key, last))
            continue
        try:
            n = parse_value(key, v)
        except ValueError as e:
            problems.append(str(e))
            continue
        if n < last:
            problems.append("%s holds write %d, older than acknowledged "
                            "write %d (lost)" % (key, n, last))
        elif n not in tried:
            problems.append("%s holds write %d, never attempted" % (key, n))
    return problems


def failure_windows(records):
    """{slot: [(t_first_failure, t_next_success or None, failed attempts)]}
    for every slot that had a failed write."""
    by_slot = {}
    for a in sorted(records, key=lambda x: x.t_sent):
        by_slot.setdefault(a.slot, []).append(a)
    out = {}
    for slot, recs in by_slot.items():
        wins = []
        start = None
        nfail = 0
        for a in recs:
            if not a.ok:
                if start is None:
                    start, nfail = a.t_sent, 0
                nfail += 1
            elif start is not None:
                wins.append((start, a.t_done, nfail))
                start = None
        if start is not None:
            wins.append((start, None, nfail))
        if wins:
            out[slot] = wins
    return out


def group_window(records, slots):
    """How long writes to a group of slots were failing, as one figure:
    from the first failed attempt on any of them to the first success on
    any of them after the last failure (seconds; None without failures,
    inf when none succeeded after). Precise to about one attempt interval
    of the group, where a per-slot figure is only as fine as the time the
    writer takes to come back to the same key."""
    recs = sorted((a for a in records if a.slot in slots),
                  key=lambda a: a.t_sent)
    fails = [a for a in recs if not a.ok]
    if not fails:
        return None
    last = fails[-1].t_sent
    after = [a.t_done for a in recs if a.ok and a.t_sent > last]
    return (min(after) if after else float("inf")) - fails[0].t_sent


def window_report(records, groups):
    """One line per group of slots ({name: set of slots}): attempts,
    failures, and the longest time writes to one of its slots were
    failing. Returns (text, {name: (attempts, failures, max window s or
    None, slots never recovered)})."""
    wins = failure_windows(records)
    lines, stats = [], {}
    for name, slots in groups.items():
        att = sum(1 for a in records if a.slot in slots)
        fails = sum(1 for a in records if a.slot in slots and not a.ok)
        longest, open_slots = None, 0
        for s in slots:
            for t0, t1, _ in wins.get(s, ()):
                if t1 is None:
                    open_slots += 1
                    continue
                longest = max(longest or 0.0, t1 - t0)
        stats[name] = (att, fails, longest, open_slots)
        gw = group_window(records, slots)
        lines.append("%-22s %6d attempts %5d failed; failing for %s "
                     "(longest per slot %s)%s" % (
                         name, att, fails,
                         "%.0f ms" % (gw * 1000) if gw is not None else "-",
                         "%.0f ms" % (longest * 1000) if longest is not None
                         else "-",
                         ", %d slots never recovered" % open_slots
                         if open_slots else ""))
    return "\n".join(lines), stats


def first_errors(records, slots=None, n=5):
    return [a for a in records
            if not a.ok and (slots is None or a.slot in slots)][:n]


# How read_local(typed=True) reads a key of each type, and normalises the
# reply so that two copies compare equal exactly when they hold the same
# value (hash and set order is the encoding's, not the value's).
TYPED_READ = {
    "string": (("GET",), lambda r: r),
    "hash": (("HGETALL",), lambda r: tuple(sorted(zip(r[0::2], r[1::2])))),
    "set": (("SMEMBERS",), lambda r: tuple(sorted(r))),
    "zset": (("ZRANGE", 0, -1, "WITHSCORES"), tuple),
    "list": (("LRANGE", 0, -1), tuple),
    "none": (None, lambda r: None),
}


def read_local(addr, keys, readonly=True, timeout=REQUEST_TIMEOUT,
               typed=False):
    """GET keys on one node's own copy (READONLY first), pipelined;
    {key: reply}. typed: any type, as (type, normalised value) from TYPE
    then the type's whole read (TYPED_READ)."""
    host, port = addr.rsplit(":", 1)
    out = {}
    with RawConn(int(port), timeout=timeout, host=host) as c:
        if readonly:
            rep = c.cmd("READONLY")
            if rep != "OK":
                raise HarnessError("READONLY on %s answered %r" % (addr, rep))
        keys = list(keys)
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            if not typed:
                c.send(b"".join(encode("GET", k) for k in part))
                for k in part:
                    out[k] = c.read(timeout)
                continue
            c.send(b"".join(encode("TYPE", k) for k in part))
            types = [c.read(timeout) for _ in part]
            reads = [(k, t) for k, t in zip(part, types)
                     if TYPED_READ.get(t, (None,))[0] is not None]
            c.send(b"".join(encode(TYPED_READ[t][0][0], k,
                                   *TYPED_READ[t][0][1:])
                            for k, t in reads))
            for k, t in reads:
                out[k] = (t, TYPED_READ[t][1](c.read(timeout)))
            for k, t in zip(part, types):
                if k not in out:
                    out[k] = (t, None)
    return out


def copies_disagree(cluster, keys, timeout=10.0, typed=False):
    """No split brain: for every key, the slot's primary and every in-sync
    replica (per the leader's map) hold the same value, read locally (with
    READONLY on replicas). Retried until `timeout` (the stream may still be
    in flight); returns the disagreements left (empty when fine)."""
    deadline = time.monotonic() + timeout
    problems = ["not checked"]
    while time.monotonic() < deadline:
        m = cluster.map()
        slots = expand_slots(m)
        addrs = {n["id"]: n["addr"] for n in m["nodes"]}
        want = {}  # addr -> [keys]
        holders = {}
        for k in keys:
            prim, _, isr = slots[key_slot(k)]
            hs = [addrs[prim]] + [addrs[i] for i in isr]
            holders[k] = hs
            for a in hs:
                want.setdefault(a, []).append(k)
        try:
            got = {a: read_local(a, ks, typed=typed)
                   for a, ks in want.items()}
        except (OSError, Closed, HarnessError, ValueError) as e:
            problems = ["reading copies: %r" % e]
            time.sleep(0.2)
            continue
        problems = []
        for k in keys:
            vals = {a: got[a][k] for a in holders[k]}
            if len(set(map(repr, vals.values()))) > 1:
                problems.append("%s: %r" % (k, vals))
        if not problems:
            return []
        time.sleep(0.2)
    return problems[:10] + (["... %d more" % (len(problems) - 10)]
                            if len(problems) > 10 else [])


def stray_keys(cluster, timeout=10.0):
    """Keys a node stores in slots it holds no copy of (per the leader's
    map), found with SCAN on every live node: such entries would show in
    DBSIZE, SCAN and memory. Retried until `timeout` (a node drops them
    when it sees the map, or in its cron's sweep); returns the problems
    left (empty when fine)."""
    deadline = time.monotonic() + timeout
    problems = ["not checked"]
    while time.monotonic() < deadline:
        m = cluster.map()
        slots = expand_slots(m)
        problems = []
        for n in m["nodes"]:
            if n["state"] not in ("up", "leaving"):
                continue
            port = int(n["addr"].rsplit(":", 1)[1])
            stray = {}
            try:
                with RawConn(port, timeout=REQUEST_TIMEOUT) as c:
                    cursor = b"0"
                    for _ in range(100000):
                        cursor, keys = c.cmd("SCAN", cursor, "COUNT", 1000)
                        for k in keys:
                            s = key_slot(k)
                            p, reps, _ = slots[s]
                            if n["id"] != p and n["id"] not in reps:
                                stray[s] = stray.get(s, 0) + 1
                        if cursor == b"0":
                            break
            except (OSError, Closed, HarnessError, ValueError) as e:
                problems.append("scanning node %d: %r" % (n["id"], e))
                continue
            if stray:
                problems.append("node %d holds %d keys in %d slots it has "
                                "no copy of (e.g. slot %d)" % (
                                    n["id"], sum(stray.values()),
                                    len(stray), min(stray)))
        if not problems:
            return []
        time.sleep(0.3)
    return problems


def check_reads(reads, writes):
    """Stale or impossible reads (a list of strings; empty when fine): a
    GET answered ok must return a value the writer attempted for that key,
    no older than the last write acknowledged before the GET was sent (nil
    only when no write was acknowledged before it)."""
    acked = {}  # key -> [(t_done, n)] of acknowledged writes
    tried = {}
    for a in writes:
        tried.setdefault(a.key, set()).add(a.n)
        if a.ok:
            acked.setdefault(a.key, []).append((a.t_done, a.n))
    for v in acked.values():
        v.sort()
    problems = []
    for r in reads:
        if not r.ok:
            continue
        floor = 0
        for t, n in acked.get(r.key, ()):
            if t < r.t_sent:
                floor = max(floor, n)
            else:
                break
        if r.reply is None:
            if floor:
                problems.append("%r: nil, but write %d was acknowledged "
                                "before" % (r, floor))
            continue
        try:
            n = parse_value(r.key, r.reply)
        except ValueError as e:
            problems.append("%r: %s" % (r, e))
            continue
        if n < floor:
            problems.append("%r: write %d, older than write %d acknowledged "
                            "before the read" % (r, n, floor))
        elif n not in tried.get(r.key, ()):
            problems.append("%r: write %d never attempted" % (r, n))
    return problems


def check_deletes(deletes, values, preloaded=1):
    """Problems (list of strings) with the Deleter's keys, given their
    values now ({key: bytes or None}): a key whose DEL was acknowledged must
    be gone; a key never sent a DEL must still hold its preloaded write;
    a DEL (each key is deleted once) must find its key (reply 1)."""
    sent = {}
    problems = []
    for d in deletes:
        sent[d.key] = sent.get(d.key, False) or d.ok
        if d.ok and d.reply == 0:
            problems.append("%r: the preloaded key was already gone" % (d,))
    for k, v in values.items():
        if sent.get(k) and v is not None:
            problems.append("%s: deleted (acknowledged) but holds %r"
                            % (k, v))
        elif k not in sent:
            if v is None:
                problems.append("%s: never deleted, yet missing" % k)
            elif parse_value(k, v) != preloaded:
                problems.append("%s: holds %r" % (k, v))
    return problems


def ttls_on_primaries(seeds, keys, timeout=REQUEST_TIMEOUT):
    """TTL of every key asked of its slot's primary (a Router, pipelined
    per node; no proxying involved); {key: reply}."""
    r = Router(seeds, timeout=timeout)
    out = {}
    try:
        if not r.refresh(force=True):
            raise HarnessError("no node answers CLUSTER SLOTS")
        by_addr = {}
        for k in keys:
            by_addr.setdefault(r.table[key_slot(k)], []).append(k)
        for addr, ks in by_addr.items():
            c = r.conn(addr)
            for i in range(0, len(ks), 500):
                part = ks[i:i + 500]
                c.send(b"".join(encode("TTL", k) for k in part))
                for k in part:
                    out[k] = c.read(timeout)
    finally:
        r.close()
    return out

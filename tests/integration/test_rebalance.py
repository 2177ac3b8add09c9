"""Live rebalancing under load (DESIGN.md, "Sync, join and rebalancing (no
downtime)"; docs/cluster.md, "Handoff").

Real `coord` and `datanode --join` processes on 127.0.0.1. Every scenario
preloads a data set (plain keys, keys with a 300 s TTL, keys a deleter
will remove), then runs continuous load while the cluster changes shape:

- recording writers (cluster_harness.Writers: SET with increasing values,
  one thread per primary's keys, every attempt recorded),
- a reader (GET over the writers' keys, every answer recorded),
- a deleter (DEL of each of its own keys once, acknowledgements recorded).

When the rebalance has finished (nothing moving or syncing, every slot's
copies in sync, the map epoch stable) the scenario checks: every
acknowledged write holds (its value or a later attempted one), no read
returned a value older than a write acknowledged before it was sent,
acknowledged deletes stay deleted, the TTL keys still have a TTL on their
primary, in-sync copies agree, and the map is balanced (every up node's
primaries and copies within 1 of the mean). Moves between live nodes must
be invisible to clients (requests racing a handoff are held and
forwarded): when a node joins, two join, one leaves, or the coordinator
leader dies mid-move, not a single request may fail. When a data node
involved in a move is killed, only "nothing acknowledged lost" holds.

Times are printed, never asserted.
"""
import threading
import time


import cluster_checks as checks
import cluster_harness as ch
from cluster_harness import Deleter, Reader, Writers
from narf_harness import call_leader, wait_leader

# Generous but bounded waits (the ASan build is 2-3x slower).
READY_WAIT = 90.0
FAILOVER_WAIT = 20.0
LOAD_SECONDS = 150.0   # upper bound of one scenario's load
NKEYS = 150            # writer keys (read by the reader too)
RATE = 300             # writes/s over all writer threads
READ_RATE = 200
DEL_RATE = 50
NBULK = 30000          # preloaded plain keys: something to move
NTTL = 1000            # preloaded keys with a TTL
TTL = 300
MOVES = 512            # the `moves` setting in test_add_two_nodes_at_once
NDEL = 3000            # preloaded keys for the deleter


def bulk_keys():
    return ["p:%d" % i for i in range(NBULK)]


def ttl_keys():
    return ["t:%d" % i for i in range(NTTL)]


def del_keys():
    return ["d:%d" % i for i in range(NDEL)]


def writer_keys():
    return ["k:%d" % i for i in range(NKEYS)]


def preload(c):
    t0 = time.monotonic()
    ch.preload(c.seeds(), bulk_keys())
    ch.preload(c.seeds(), ttl_keys(), ex=TTL)
    ch.preload(c.seeds(), del_keys())
    print("\npreloaded %d keys (%d with a %d s TTL) in %.1f s" % (
        NBULK + NTTL + NDEL, NTTL, TTL, time.monotonic() - t0))


class Load:
    """Writers, a reader and a deleter, started together."""

    def __init__(self, c, plain=None):
        """plain: a data node a plain client reads every key through."""
        seeds = c.seeds()
        keys = writer_keys()
        self.writers = Writers(seeds, keys, c.map(), rate=RATE,
                               max_seconds=LOAD_SECONDS,
                               max_count=int(RATE * LOAD_SECONDS))
        self.reader = Reader(seeds, keys, rate=READ_RATE,
                             max_seconds=LOAD_SECONDS,
                             max_count=int(READ_RATE * LOAD_SECONDS))
        self.deleter = Deleter(seeds, del_keys(), rate=DEL_RATE,
                               max_seconds=LOAD_SECONDS)
        self.plain = None if plain is None else ch.PlainReader(
            plain.addr, keys, rate=READ_RATE, max_seconds=LOAD_SECONDS,
            max_count=int(READ_RATE * LOAD_SECONDS))
        self.writes = self.reads = self.dels = None
        self.plain_reads = []

    def start(self):
        self.t_start = time.monotonic()
        self.writers.start()
        self.reader.start()
        self.deleter.start()
        if self.plain is not None:
            self.plain.start()
        self.writers.wait_acks(NKEYS, timeout=20.0)

    def settle(self, n=100):
        """Load keeps being acknowledged after the change."""
        self.writers.wait_acks(n, timeout=FAILOVER_WAIT)

    def stop(self):
        self.writes = self.writers.stop()
        self.reads = self.reader.stop()
        self.dels = self.deleter.stop()
        if self.plain is not None:
            self.plain_reads = self.plain.stop()
        self.t_stop = time.monotonic()
        return self

    def failures(self):
        return ([a for a in self.writes if not a.ok],
                [r for r in self.reads + self.plain_reads if not r.ok],
                [d for d in self.dels if not d.ok])

    def summary(self, title):
        fw, fr, fd = self.failures()
        print("\n%s: over %.1f s, %d writes (%d failed), %d reads (%d "
              "failed), %d deletes (%d failed)" % (
                  title, self.t_stop - self.t_start, len(self.writes),
                  len(fw), len(self.reads), len(fr), len(self.dels),
                  len(fd)))
        for what, recs in (("write", fw), ("read", fr), ("delete", fd)):
            for a in recs[:3]:
                print("  failed %s: %r" % (what, a))


def assert_no_failures(load):
    fw, fr, fd = load.failures()
    assert not (fw or fr or fd), \
        "requests failed during the rebalance (want none): %d writes, " \
        "%d reads, %d deletes; first: %r" % (
            len(fw), len(fr), len(fd), (fw + fr + fd)[:5])


def wait_settled(c, what):
    """The rebalance has finished: cluster ready (every live node up,
    nothing moving or syncing, epoch stable) and the map balanced; the
    time it took is printed by the caller."""
    c.wait_ready(READY_WAIT, what=what)
    return ch.wait_balanced(c, READY_WAIT)


def check_all(c, load):
    """Every acknowledged write, delete and TTL kept; reads never went
    back in time; the map balanced; in-sync copies agree."""
    st = c.status()
    problems = ch.balance_problems(st)
    assert not problems, "map not balanced after the rebalance:\n" + \
        "\n".join(problems)
    print("nodes: %s" % ", ".join(
        "%d %s p=%d r=%d keys=%s" % (n["id"], n["state"], n["primaries"],
                                     n["replicas"], n.get("keys"))
        for n in st["nodes"]))
    wkeys = sorted({a.key for a in load.writes})
    keys = wkeys + bulk_keys() + ttl_keys() + del_keys()
    values = checks.read_all(c.seeds(), keys)
    problems = checks.check_history(load.writes, values)
    for k in bulk_keys() + ttl_keys():
        v = values.get(k)
        if v is None:
            problems.append("%s: preloaded (acknowledged), now missing" % k)
        elif ch.parse_value(k, v) != 1:
            problems.append("%s: holds %r, not its preloaded value" % (k, v))
    assert not problems, "acknowledged writes lost (%d):\n%s" % (
        len(problems), "\n".join(problems[:20]))
    problems = checks.check_deletes(load.dels, {k: values[k] for k in del_keys()})
    assert not problems, "deletes (%d acknowledged) not kept (%d):\n%s" % (
        sum(1 for d in load.dels if d.ok), len(problems),
        "\n".join(problems[:20]))
    problems = checks.check_reads(load.reads + load.plain_reads, load.writes)
    assert not problems, "stale reads (%d of %d):\n%s" % (
        len(problems), len(load.reads), "\n".join(problems[:20]))
    ttls = checks.ttls_on_primaries(c.seeds(), ttl_keys())
    bad = {k: v for k, v in ttls.items()
           if not (isinstance(v, int) and 0 < v <= TTL)}
    assert not bad, "keys lost their TTL (%d of %d; TTL on the primary): " \
        "%r" % (len(bad), NTTL, sorted(bad.items())[:10])
    diff = checks.copies_disagree(c, wkeys + ttl_keys()[:200] + bulk_keys())
    assert not diff, "copies disagree:\n" + "\n".join(diff)
    stray = checks.stray_keys(c)
    assert not stray, "stray entries:\n" + "\n".join(stray)


def node_id(c, d, timeout=FAILOVER_WAIT):
    m = c.wait_map(lambda m: c.current_id(m, d.addr) is not None, timeout,
                   "%s registered" % d.name)
    return c.current_id(m, d.addr)


def involves(nid):
    """pred for wait_mid_move: a slot syncing to or moving to node nid."""
    def pred(m, moving, syncing):
        return nid in moving.values() or any(
            nid in out for _, out in syncing.values())
    return pred


# ---------------------------------------------------------------------------


def assert_handoffs_taken(c):
    """Nothing failed, so every handoff request was taken the first time.
    (A primary used to send its request again whenever any map arrived
    meanwhile; the copy changed nothing and was logged "not taken".)"""
    for d in c.nodes:
        assert "not taken" not in d.log_text(), (d.name, d.log_tail())


def test_add_node_under_load(make_cluster):
    """A 4th node joins a loaded 3-node cluster: it receives a quarter of
    the primaries and copies, no request fails (a plain client reading
    through one node included), nothing is lost."""
    c = make_cluster()
    preload(c)
    load = Load(c, plain=c.nodes[0])
    load.start()
    t0 = time.monotonic()
    n4 = ch.add_node(c)
    wait_settled(c, "n4 joined and the map rebalanced")
    t_done = time.monotonic() - t0
    load.settle()
    load.stop()
    load.summary("add n4 (rebalanced in %.1f s)" % t_done)
    m = c.map()
    assert c.slots_of(m, n4, "primary") and c.slots_of(m, n4, "isr"), \
        "n4 holds no primaries or no in-sync copies"
    check_all(c, load)
    assert_no_failures(load)
    assert_handoffs_taken(c)


class BusyWatch(threading.Thread):
    """Polls the leader's map while a rebalance runs and records the most
    slots busy (moving or syncing, primary live) seen in one map."""

    def __init__(self, c, limit_s=120.0):
        super().__init__(daemon=True)
        self.c, self.most, self.maps = c, 0, 0
        self.deadline = time.monotonic() + limit_s
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set() and time.monotonic() < self.deadline:
            try:
                rep = call_leader(self.c.trio, {"op": "map"}, 2.0)
            except Exception:  # noqa: BLE001 (a poll; failures show later)
                rep = {}
            m = rep.get("map") if rep.get("ok") else None
            if m is not None:
                moving, syncing = ch.moves_in_flight(m)
                self.most = max(self.most, len(set(moving) | set(syncing)))
                self.maps += 1
            self.done.wait(0.02)


def test_add_two_nodes_at_once(make_cluster):
    """Two nodes join a loaded 3-node cluster at the same moment: the map
    ends balanced over five, no request fails, nothing is lost. With the
    `moves` setting at 512, never more slots than that move at once."""
    c = make_cluster()
    rep = call_leader(c.trio, {"op": "settings", "moves": MOVES})
    assert rep.get("ok") and rep["settings"]["moves"] == MOVES, rep
    preload(c)
    load = Load(c, plain=c.nodes[1])
    load.start()
    watch = BusyWatch(c)
    watch.start()
    t0 = time.monotonic()
    a = ch.DataNode(c.build, c.tmpdir, c.trio.apis, "n4")
    b = ch.DataNode(c.build, c.tmpdir, c.trio.apis, "n5")
    c.nodes += [a, b]
    a.start()
    b.start()
    a.wait_listening()
    b.wait_listening()
    wait_settled(c, "n4 and n5 joined and the map rebalanced")
    t_done = time.monotonic() - t0
    load.settle()
    load.stop()
    watch.done.set()
    watch.join(5)
    load.summary("add n4 and n5 (rebalanced in %.1f s)" % t_done)
    print("moves in flight: at most %d slots in %d maps polled" % (
        watch.most, watch.maps))
    assert 0 < watch.most <= MOVES, watch.most
    m = c.map()
    for d in (a, b):
        assert c.slots_of(m, d, "primary") and c.slots_of(m, d, "isr"), \
            "%s holds no primaries or no in-sync copies" % d.name
    check_all(c, load)
    assert_no_failures(load)
    assert_handoffs_taken(c)


def test_drain_node_with_leave(make_cluster):
    """A 4-node cluster under load; the `leave` op drains n1: the leader
    moves every copy away, marks it `removed`, then it is stopped (SIGTERM,
    exit 0). No request fails, nothing is lost, the three left are
    balanced."""
    c = make_cluster(nodes=4)
    preload(c)
    load = Load(c)
    load.start()
    victim = c.nodes[0]
    vid = node_id(c, victim)
    t0 = time.monotonic()
    rep = ch.leave(c.trio, vid)
    print("\nleave %d: %r" % (vid, rep))
    m = c.wait_map(lambda m: any(n["id"] == vid and n["state"] == "removed"
                                 for n in m["nodes"]), READY_WAIT,
                   "n1 (id %d) removed" % vid)
    t_removed = time.monotonic() - t0
    assert not c.slots_of(m, victim, "replica") and \
        not c.slots_of(m, victim, "primary"), "removed node still holds copies"
    assert all(vid != p and vid not in reps
               for p, reps, _ in ch.expand_slots(m)), \
        "a removed node still holds copies"
    # Everyone routes around it before it goes (it forwards until then).
    c.wait_nodes_route(c.nodes[1:], FAILOVER_WAIT)
    t_term = time.monotonic()
    rc = victim.terminate()
    print("SIGTERM of the removed node %s at %.3f" % (victim.addr, t_term))
    assert rc == 0, "the removed node's SIGTERM gave exit status %r" % rc
    wait_settled(c, "three nodes balanced after the leave")
    t_done = time.monotonic() - t0
    load.settle()
    load.stop()
    load.summary("leave of n1: removed after %.1f s, settled after %.1f s"
                 % (t_removed, t_done))
    check_all(c, load)
    assert_no_failures(load)
    assert_handoffs_taken(c)


def test_sigterm_leaves_first(make_cluster):
    """SIGTERM of a node with --on-stop leave (the datanode's default) in a
    loaded 4-node cluster: it asks to leave, serves while its copies move
    away, drains once removed and exits 0, so no failover happens: no
    request fails, nothing is lost, the three left are balanced."""
    c = make_cluster(nodes=4, node_args={0: ["--on-stop", "leave"]})
    preload(c)
    load = Load(c, plain=c.nodes[1])
    load.start()
    victim = c.nodes[0]
    vid = node_id(c, victim)
    t0 = time.monotonic()
    rc = victim.terminate(wait=READY_WAIT)
    t_exit = time.monotonic() - t0
    assert rc == 0, "SIGTERM gave exit status %r" % rc
    log = victim.log_text()
    assert "asking to leave the cluster first" in log, log[-2000:]
    assert "left the cluster after" in log, log[-2000:]
    c.wait_map(lambda m: any(n["id"] == vid and n["state"] == "removed"
                             for n in m["nodes"]), READY_WAIT,
               "n1 (id %d) removed" % vid)
    wait_settled(c, "three nodes balanced after the SIGTERM leave")
    load.settle()
    load.stop()
    load.summary("SIGTERM of n1: left and exited after %.1f s" % t_exit)
    check_all(c, load)
    assert_no_failures(load)


def test_kill_target_mid_move(make_cluster):
    """kill -9 of a newly added node while slots are syncing or moving to
    it: it is marked down, the cluster settles over the three others and
    nothing acknowledged is lost (requests to it may fail)."""
    c = make_cluster()
    preload(c)
    load = Load(c)
    load.start()
    n4 = ch.add_node(c)
    nid = node_id(c, n4)
    m, moving, syncing = ch.wait_mid_move(c.trio, involves(nid))
    n4.kill9()
    print("\nkilled n4 (id %d) with %d slots moving, %d syncing" % (
        nid, len(moving), len(syncing)))
    c.wait_down(n4, nid, FAILOVER_WAIT)
    wait_settled(c, "three nodes balanced after the target died")
    load.settle()
    load.stop()
    load.summary("kill -9 of the target mid-move")
    check_all(c, load)


def test_kill_source_mid_move(make_cluster):
    """kill -9 of a primary while one of its slots is syncing or moving to
    a newly added node: its slots fail over to their in-sync replicas, the
    cluster settles over the three others (the new node included) and
    nothing acknowledged is lost."""
    c = make_cluster()
    preload(c)
    load = Load(c)
    load.start()
    n4 = ch.add_node(c)
    nid = node_id(c, n4)

    def from_other(m, moving, syncing):
        return any(m_to == nid and src_ok(m, s) for s, m_to in
                   moving.items()) or any(
            nid in out and p != nid for s, (p, out) in syncing.items())

    def src_ok(m, s):
        return ch.expand_slots(m)[s][0] != nid

    m, moving, syncing = ch.wait_mid_move(c.trio, from_other)
    srcs = [p for s, (p, out) in sorted(syncing.items())
            if nid in out and p != nid]
    srcs += [ch.expand_slots(m)[s][0] for s, t in sorted(moving.items())
             if t == nid]
    sid = srcs[0]
    src = c.node_of(m, sid)
    assert src is not None and src is not n4, (sid, m["nodes"])
    src.kill9()
    print("\nkilled source %s (id %d) with %d slots moving, %d syncing" % (
        src.name, sid, len(moving), len(syncing)))
    c.wait_down(src, sid, FAILOVER_WAIT)
    wait_settled(c, "three nodes balanced after the source died")
    load.settle()
    load.stop()
    load.summary("kill -9 of the source mid-move")
    check_all(c, load)


def test_kill_leader_mid_move(make_cluster):
    """kill -9 of the coordinator leader while slots move to a newly added
    node: the new leader picks the rebalance up from the committed map and
    finishes it; no request fails, nothing is lost."""
    c = make_cluster()
    preload(c)
    load = Load(c)
    load.start()
    t0 = time.monotonic()
    n4 = ch.add_node(c)
    nid = node_id(c, n4)
    m, moving, syncing = ch.wait_mid_move(c.trio, involves(nid))
    lead = c.kill_leader()
    print("\nkilled coordinator leader c%d with %d slots moving, %d "
          "syncing" % (lead.id, len(moving), len(syncing)))
    wait_leader(c.trio, members=c.live_coords())
    wait_settled(c, "rebalance finished by the new leader")
    t_done = time.monotonic() - t0
    lead.restart()
    wait_leader(c.trio)
    load.settle()
    load.stop()
    load.summary("kill -9 of the leader mid-move (rebalanced in %.1f s)"
                 % t_done)
    m = c.map()
    assert c.slots_of(m, n4, "primary") and c.slots_of(m, n4, "isr"), \
        "n4 holds no primaries or no in-sync copies"
    check_all(c, load)
    assert_no_failures(load)

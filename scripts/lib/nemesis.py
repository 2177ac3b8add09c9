#!/usr/bin/python3
"""The partition test (DESIGN.md, "Partitions and pauses: what is tested"):
rounds of faults against a cluster whose every process is on a host of its
own (netns.py, nscluster.py), under a recorded load, judged by a checker
over the whole history (history.py). Run by scripts/nemesis.sh and by
tests/integration/test_partition.py.

A run: make the hosts, start 3 coordinators and N data nodes, write the
"once" keys (each written once, before any fault, and read back after
every round), then for each round of the schedule:

  1. the cluster must be healthy (every slot served, every node up, one
     settled leader); after a round that never healed it is rebuilt first
     (a new generation: new once-keys, since the old data died with it);
  2. the load starts: writers (one thread per group of keys, each key
     written 1, 2, 3, ... by its group's thread only) and readers (every
     key of the round and a sample of the once-keys, each reader in its
     own order), all through cluster_harness.Router, which routes by
     CLUSTER SLOTS like a cluster client and follows -MOVED. With
     --types, the keys are strings, hashes, sets, sorted sets and lists
     in turn (TYPES_HELP), each written and read as its type says;
  3. after a healthy second, the round's faults start; they last the
     round's duration, then are undone (cuts flushed, paused processes
     resumed, killed ones restarted: a data node as a new node, a
     coordinator with its data dir);
  4. the cluster must heal within --heal-timeout: every data node up and
     holding its copies, every slot served, the three coordinators agreed
     on one leader. A round that does not is counted unhealed;
  5. the load runs another moment and stops; every key written so far in
     this generation (every round's, and the once-keys) is read back (the
     "final" reads, which decide lost writes);
  6. the checker runs over the whole history; the round is charged with
     the violations of its own reads, and its write outage (the longest
     time a writer's group of keys went without an acknowledged write,
     from the fault's start to the load's end) is measured.

Declared losses: all through the round a LossWatch polls the
coordinators' maps for slots whose `born` epoch moves (the slot started
over empty: every in-sync copy was gone, which min-isr 1 and on-lost
empty allow and count). The checker counts the lost writes and nil reads
those slots explain apart (history.py, "Declared losses"); a run is clean
with them only when min-isr is below 2 (with 2 or more, a declared loss
is reported as a failure: no single fault should cause one).

Schedules are made from the seed (kinds, durations, and the random
choices each fault makes when it starts), so a seed replays the same
faults against the same roles (the leader of the moment, ...).

Everything is bounded: every load thread in count and time, every wait by
a deadline, each round by its duration and the heal timeout.
"""

import argparse
import atexit
import collections
import faulthandler
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time

LIB = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(LIB))
sys.path.insert(0, LIB)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import cluster_harness as ch  # noqa: E402
import history as hist  # noqa: E402
import netns  # noqa: E402
from narf_harness import HarnessError, call, wait_leader  # noqa: E402
from nscluster import NsCluster  # noqa: E402

# One fault each. "double" is two of them at once.
SINGLE = ("partition", "partition-oneway", "host-alone", "leader-alone",
          "primary-alone", "primary-replicas", "coords-split", "pause",
          "leader-pause", "kill", "leader-kill")
KINDS = SINGLE + ("double",)
# No fault at all: the control, to tell what the faults did from what the
# load (or a busy machine) does alone. Not part of "all".
CONTROL = "none"
DESCRIPTIONS = {
    "partition": "the cluster's hosts split in two random sides, cut both "
                 "ways",
    "partition-oneway": "two random sides; packets from the first to the "
                        "second are dropped, the other way passes",
    "host-alone": "one host cut from every other cluster host (round after "
                  "round, each host in turn)",
    "leader-alone": "the coordinator leader cut from every other cluster "
                    "host; clients still reach it",
    "primary-alone": "a data node (a primary) cut from every other cluster "
                     "host; clients still reach it",
    "primary-replicas": "a data node cut from the other data nodes (its "
                        "replicas, and the primaries it replicates) only",
    "coords-split": "the three coordinators cut from one another: no "
                    "majority",
    "pause": "SIGSTOP of a random process (coordinator or data node)",
    "leader-pause": "SIGSTOP of the coordinator leader",
    "kill": "kill -9 of a random process, restarted when the fault ends",
    "leader-kill": "kill -9 of the coordinator leader, restarted with its "
                   "data dir when the fault ends",
    "double": "two of the above at once (distinct targets where they are "
              "processes)",
    CONTROL: "no fault (the control: the load alone, for the duration; "
             "not part of all)",
}

# Errors after which a write certainly did not run (the rest of the
# failures are indeterminate: an error reply or a lost connection may
# come after the write was applied).
NOT_RUN = ("CLUSTERDOWN", "refused", "not served", "no routing table",
           "too many redirects")


class Config:
    """What a run does; the defaults are scripts/nemesis.sh's."""

    def __init__(self, build, workdir, seed=None, kinds=KINDS, rounds=10,
                 nodes=3, min_isr=None, on_lost=None, dmin=1.0, dmax=10.0,
                 heal_timeout=30.0, keys=48, keys_per_writer=8,
                 once_keys=1000, rate=300.0, readers=3, read_rate=100.0,
                 pre=1.0, post=1.0, max_seconds=None, log_level="info",
                 out=None, types=("string",)):
        self.build = build
        self.workdir = workdir
        self.seed = seed if seed is not None else random.randrange(1, 10**6)
        self.kinds = tuple(kinds)
        self.rounds = rounds
        self.nodes = nodes
        self.min_isr = min_isr
        self.on_lost = on_lost
        self.dmin, self.dmax = dmin, dmax
        self.heal_timeout = heal_timeout
        self.keys = keys
        self.keys_per_writer = keys_per_writer
        self.once_keys = once_keys
        self.rate = rate
        self.readers = readers
        self.read_rate = read_rate
        self.pre, self.post = pre, post
        self.max_seconds = max_seconds
        self.log_level = log_level
        self.out = out or (lambda s: print(s, flush=True))
        self.types = tuple(types)


# ---------------------------------------------------------------------------
# The schedule


RoundSpec = collections.namedtuple("RoundSpec",
                                   "index kinds duration seed nth")


def schedule(seed, kinds, rounds, dmin, dmax):
    """The rounds of a run, from the seed alone: each round's kinds (the
    given kinds in a seeded order, cycled; "double" draws two distinct
    singles), its duration in [dmin, dmax] s, a seed for the choices its
    faults make, and nth (how many rounds of its kind came before, offset
    by the seed: host-alone takes the hosts in turn by it)."""
    rnd = random.Random(seed)
    order = list(kinds)
    rnd.shuffle(order)
    seen = collections.Counter()
    out = []
    for i in range(rounds):
        kind = order[i % len(order)]
        ks = tuple(rnd.sample(SINGLE, 2)) if kind == "double" else (kind,)
        out.append(RoundSpec(i + 1, ks, round(rnd.uniform(dmin, dmax), 1),
                             rnd.getrandbits(32), seed + seen[kind]))
        seen[kind] += 1
    return out


# ---------------------------------------------------------------------------
# Faults


class Fault:
    """One planned fault: cuts to make, processes to pause or kill. Targets
    are chosen by plan() before any fault of the round starts, so two
    faults of a round see the same leader."""

    def __init__(self, kind, what):
        self.kind, self.what = kind, what
        self.cuts = []    # (from hosts, to hosts, both ways)
        self.pause = []   # processes to SIGSTOP
        self.kill = []    # processes to kill -9 (restarted on heal)

    def __str__(self):
        return "%s (%s)" % (self.kind, self.what)


def _sides(hosts):
    return "%s | %s" % (" ".join(hosts[0]), " ".join(hosts[1]))


def plan(kind, run, rnd, nth, busy):
    """The Fault of kind `kind` against run's cluster, its random choices
    from rnd; busy holds the hosts whose process another fault of the
    round already pauses or kills (a process fault picks another)."""
    hosts = run.hosts()
    dns = [d.host for d in run.cluster.nodes]
    f = Fault(kind, "")
    if kind in ("partition", "partition-oneway"):
        order = list(hosts)
        rnd.shuffle(order)
        k = rnd.randint(1, len(order) - 1)
        a, b = sorted(order[:k]), sorted(order[k:])
        f.cuts.append((a, b, kind == "partition"))
        f.what = _sides((a, b)) if kind == "partition" else \
            "%s -> %s dropped" % (" ".join(a), " ".join(b))
    elif kind in ("host-alone", "leader-alone", "primary-alone"):
        if kind == "host-alone":
            h = hosts[nth % len(hosts)]
        elif kind == "leader-alone":
            h = run.leader_host()
        else:
            h = rnd.choice(dns)
        f.cuts.append(([h], [x for x in hosts if x != h], True))
        f.what = h + " alone"
    elif kind == "primary-replicas":
        h = rnd.choice(dns)
        f.cuts.append(([h], [x for x in dns if x != h], True))
        f.what = "%s cut from %s" % (h, " ".join(x for x in dns if x != h))
    elif kind == "coords-split":
        f.cuts += [(["c1"], ["c2", "c3"], True), (["c2"], ["c3"], True)]
        f.what = "c1 | c2 | c3"
    elif kind == CONTROL:
        f.what = "no fault"
    elif kind in ("pause", "kill", "leader-pause", "leader-kill"):
        if kind.startswith("leader-"):
            h = run.leader_host()
            if h in busy:  # the other fault has it: another coordinator
                h = rnd.choice([c for c in ("c1", "c2", "c3")
                                if c not in busy])
        else:
            h = rnd.choice([x for x in hosts if x not in busy])
        busy.add(h)
        proc = run.cluster.procs()[h]
        (f.kill if "kill" in kind else f.pause).append(proc)
        f.what = h
    else:
        raise ValueError("unknown nemesis %r" % kind)
    return f


# ---------------------------------------------------------------------------
# The load and its history


def write_status(a):
    if a.ok:
        return hist.OK
    return hist.FAIL if a.err and any(m in a.err for m in NOT_RUN) \
        else hist.INFO


def write_ops(records, rnd):
    return [hist.Op(hist.WRITE, a.key, a.n, a.t_sent, a.t_done,
                    write_status(a), a.addr or "", False, rnd)
            for a in records]


# The workload's types (--types). Each key of a round, and each once-key,
# has one of them, in turn, and its type's letter starts its name
# ("h:r3.7" is round 3's key 7, a hash; "oh:g1.5" a once-key). Whatever
# the type, each key is written 1, 2, 3, ... by one writer (history.py);
# TYPES_HELP (in --help) says what a write and a read are. A string and a
# hash field are registers (a read's value is n); a set, a sorted set and
# a list are read whole (a frozenset, a frozenset of the members, a tuple)
# and judged element by element.
TYPES = ("string", "hash", "set", "zset", "list")
TYPES_HELP = """\
  string  SET key <i>:<n>; GET key: the last write acknowledged before a
          read began, or a newer one (a register)
  hash    HSET key f <i>:<n>; HGET key f: the same (a register)
  set     SADD key n; SMEMBERS key: every n acknowledged before the read
          began, none never written (a hole is a stale read, or a lost
          write at the end)
  zset    ZADD key n n; ZRANGE key 0 -1 WITHSCORES: as a set, each member
          scored with itself
  list    RPUSH key n; LRANGE key 0 -1: as a set, strictly increasing"""
TYPE_LETTER = {"string": "k", "hash": "h", "set": "s", "zset": "z",
               "list": "l"}
LETTER_TYPE = {v: k for k, v in TYPE_LETTER.items()}


def key_name(type_, where, i):
    """The i-th key of `where` ("r3": round 3's; "g1": once-keys of
    generation 1, named o...) of type type_."""
    letter = TYPE_LETTER[type_]
    if where.startswith("g"):  # once-keys: "o:g1.5" for a string, as ever
        return "o%s:%s.%d" % ("" if type_ == "string" else letter, where, i)
    return "%s:%s.%d" % (letter, where, i)


def key_type(key):
    head = key.split(":", 1)[0]
    if head.startswith("o"):
        head = head[1:] or "k"
    return LETTER_TYPE[head]


def typed_keys(types, where, n):
    """n keys of `where`, their types taken from `types` in turn."""
    return [key_name(types[i % len(types)], where, i) for i in range(n)]


def write_command(key, n):
    """The request that writes n to key (its type's, table above)."""
    t = key_type(key)
    if t == "string":
        return ("SET", key, ch.value_of(key, n))
    if t == "hash":
        return ("HSET", key, "f", ch.value_of(key, n))
    if t == "set":
        return ("SADD", key, n)
    if t == "zset":
        return ("ZADD", key, n, n)
    return ("RPUSH", key, n)


def write_acked(reply):
    """Does reply acknowledge a write: +OK (SET) or an integer (the
    others)?"""
    return not isinstance(reply, ch.Err) and (
        reply == "OK" or type(reply) is int)


def read_command(key):
    t = key_type(key)
    if t == "string":
        return ("GET", key)
    if t == "hash":
        return ("HGET", key, "f")
    if t == "set":
        return ("SMEMBERS", key)
    if t == "zset":
        return ("ZRANGE", key, 0, -1, "WITHSCORES")
    return ("LRANGE", key, 0, -1)


def is_value_reply(reply):
    """Is reply a read's answer (a value, or WRONGTYPE: the key holds
    another type, which the checker counts as a phantom) rather than an
    error that says nothing of the key?"""
    return not isinstance(reply, ch.Err) or reply.startswith("WRONGTYPE")


class TypedWriter(ch.Writer):
    """A cluster_harness Writer that writes each key as its type says."""

    def command(self, key, n):
        return write_command(key, n)

    def acked(self, rep):
        return write_acked(rep)


class TypedReader(ch.Reader):
    """A cluster_harness Reader that reads each key as its type says."""

    def args(self, key):
        return read_command(key)

    def ok_reply(self, rep):
        return is_value_reply(rep)


def _elements(key, reply):
    """A collection read's elements (history.py), or a str saying why the
    reply is none."""
    t = key_type(key)
    elements = reply[0::2] if t == "zset" and isinstance(reply, list) \
        else reply
    if not isinstance(reply, list) or not all(
            isinstance(e, bytes) and e.isdigit() for e in elements):
        return "%s reply %r" % (t, reply if len(repr(reply)) < 200
                                else repr(reply)[:200] + "...")
    if t == "list":
        return tuple(int(e) for e in reply)
    if t == "set":
        return frozenset(int(e) for e in reply)
    members = [int(m) for m in elements]
    try:
        scores = [float(sc) for sc in reply[1::2]]
    except (TypeError, ValueError):
        scores = None
    if scores != members or members != sorted(members):
        return "zset reply %r: each member's score must be itself, in " \
            "order" % (reply[:20],)
    return frozenset(members)


def read_value(key, reply):
    """A read's reply as the checker takes it: for a string or a hash
    field, None for nil or the write's n; for a collection, its elements;
    the text when it is no value of key (history.py)."""
    if isinstance(reply, ch.Err):
        return str(reply)
    if key_type(key) not in ("string", "hash"):
        return _elements(key, reply)
    if reply is None:
        return None
    try:
        return ch.parse_value(key, reply)
    except ValueError:
        return reply.decode("utf-8", "replace") if isinstance(
            reply, bytes) else repr(reply)


def read_ops(records, rnd, client):
    out = []
    for r in records:
        status = hist.OK if r.ok else (
            hist.FAIL if r.err and any(m in r.err for m in NOT_RUN)
            else hist.INFO)
        out.append(hist.Op(hist.READ, r.key,
                           read_value(r.key, r.reply) if r.ok else None,
                           r.t_sent, r.t_done, status, client, False, rnd))
    return out


def final_reads(seeds, keys, rnd, tries=5, timeout=ch.REQUEST_TIMEOUT):
    """Read every key (pipelined per primary, a fresh Router per try, at
    most `tries` tries); (final read ops, keys that could not be read)."""
    left = list(keys)
    ops = []
    for attempt in range(tries):
        if not left:
            break
        r = ch.Router(seeds, timeout=timeout)
        try:
            t0 = time.monotonic()
            r.refresh(force=True)
            got = r.pipeline_get(left, args=read_command) \
                if r.table else {}
            t1 = time.monotonic()
        except ch.RequestError:
            got = {}
        finally:
            r.close()
        bad = []
        for k in left:
            v = got.get(k)
            if k not in got or isinstance(v, ch.RequestError) or \
                    not is_value_reply(v):
                bad.append(k)
            else:
                ops.append(hist.Op(hist.READ, k, read_value(k, v), t0, t1,
                                   hist.OK, "final", True, rnd))
        left = bad
        if left:
            time.sleep(0.5)
    return ops, left


def writer_groups(m, keys, per):
    """Keys grouped by their slot's primary in map m, split in groups of
    at most `per`: one writer thread each, so a request held up by one
    node stalls only that node's writers."""
    by_primary = collections.OrderedDict()
    slots = ch.expand_slots(m)
    for k in keys:
        by_primary.setdefault(slots[ch.key_slot(k)][0], []).append(k)
    groups = {}
    for prim, ks in by_primary.items():
        for i in range(0, len(ks), per):
            groups["node%s.%d" % (prim, i // per)] = ks[i:i + per]
    return groups


# ---------------------------------------------------------------------------
# The run


def _interrupted(signum, frame):
    raise KeyboardInterrupt


RoundResult = collections.namedtuple(
    "RoundResult", "spec faults healed heal_s counts outage_s outage_group "
    "writes acked reads unread violations rebuilt lost_slots excused")


def born_of(m):
    """[born epoch of each slot] of a map (0: never started over)."""
    born = [0] * ch.NSLOTS
    for r in m["slots"]:
        for s in range(r["from"], r["to"] + 1):
            born[s] = r.get("born", 0)
    return born


class LossWatch(threading.Thread):
    """The slots the cluster declares lost during a round (module doc):
    polls every coordinator's map (only a leader answers) and notes when
    each slot's `born` first differs from `base` (the round's map before
    the faults). Bounded by max_seconds; stop() polls a last time."""

    def __init__(self, apis, base, interval=0.25, max_seconds=300.0):
        super().__init__(daemon=True, name="loss-watch")
        self.apis = list(apis)
        self.base = base
        self.interval = interval
        self.max_seconds = max_seconds
        self.seen = {}           # slot -> monotonic time first seen moved
        self._stop_ev = threading.Event()

    def poll(self):
        for api in self.apis:
            try:
                rep = call(api, {"op": "map"}, 0.5)
            except (OSError, ValueError):
                continue
            if not rep.get("ok") or "map" not in rep:
                continue
            now = time.monotonic()
            for s, b in enumerate(born_of(rep["map"])):
                if b != self.base[s] and s not in self.seen:
                    self.seen[s] = now

    def run(self):
        end = time.monotonic() + self.max_seconds
        while not self._stop_ev.is_set() and time.monotonic() < end:
            self.poll()
            self._stop_ev.wait(self.interval)

    def stop(self):
        self._stop_ev.set()
        self.join(10.0)
        self.poll()
        return dict(self.seen)


class Run:
    """One run of a schedule; see the module doc. Use as a context manager
    (or call setup() and teardown()): teardown removes every process and
    namespace, also after an error or ctrl-C."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.net = None
        self.cluster = None
        self.gen = 0
        self.history = []
        self.losses = []         # history.Loss of every round
        self.gen_keys = []       # keys of the current generation
        self.once = []           # the current generation's once-keys
        self.problems = []       # from process teardowns
        self.results = []
        self.skipped = 0         # rounds not run for lack of time

    # --- setup and teardown

    def hosts(self):
        return ["c1", "c2", "c3"] + ["n%d" % (i + 1)
                                    for i in range(self.cfg.nodes)]

    def __enter__(self):
        # SIGTERM (test.sh's timeout, a kill) unwinds like ctrl-C, so the
        # teardown runs: no namespace, rule or process outlives the run.
        self._old_sigterm = signal.signal(signal.SIGTERM, _interrupted)
        try:
            self.setup()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        try:
            self.teardown()
        finally:
            signal.signal(signal.SIGTERM, self._old_sigterm)

    def setup(self):
        why = netns.unavailable()
        if why:
            raise HarnessError("nemesis: " + why)
        self.net = netns.Net(self.hosts())
        self.net.create()
        self.net.enter_client()
        self._new_cluster()

    def teardown(self):
        try:
            if self.cluster is not None:
                self.net.heal()
                self.problems += self.cluster.stop()
        finally:
            self.cluster = None
            if self.net is not None:
                self.net.destroy()
                self.net = None

    def _coord_args(self):
        args = []
        if self.cfg.min_isr is not None:
            args += ["--min-isr", str(self.cfg.min_isr)]
        if self.cfg.on_lost is not None:
            args += ["--on-lost", self.cfg.on_lost]
        return args

    def _new_cluster(self):
        self.gen += 1
        d = os.path.join(self.cfg.workdir, "gen%d" % self.gen)
        self.cluster = NsCluster(self.net, self.cfg.build, d, self.cfg.nodes,
                                 self._coord_args(), self.cfg.log_level)
        self.cluster.start(timeout=60.0)
        self.once = typed_keys(self.cfg.types, "g%d" % self.gen,
                               self.cfg.once_keys)
        t0 = time.monotonic()
        ch.preload(self.cluster.seeds(), self.once,
                   command=lambda k: write_command(k, 1), acked=write_acked)
        t1 = time.monotonic()
        self.history += [hist.Op(hist.WRITE, k, 1, t0, t1, hist.OK,
                                 "preload") for k in self.once]
        self.gen_keys = list(self.once)

    def rebuild(self):
        """A fresh cluster (a round did not heal: what follows would only
        measure the wreck)."""
        self.net.heal()
        self.cluster.kill_all()
        self.problems += [p for p in self.cluster.stop()
                          if "SIGTERM" not in p]
        self._new_cluster()

    def leader_host(self):
        lead, _ = wait_leader(self.cluster.trio, timeout=10.0,
                              settled=False)
        return lead.host

    # --- healing

    def wait_healed(self, timeout):
        """Until every process runs, the three coordinators agree on a
        leader, and every data node is up with its copies and every slot
        served (cluster_harness.Cluster.wait_ready); (healed, seconds,
        error text)."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        try:
            dead = [h for h, p in self.cluster.procs().items()
                    if not p.alive()]
            if dead:
                # Every fault is undone before this: a process that is
                # not running died by itself.
                for h in dead:
                    p = self.cluster.procs()[h]
                    self.problems.append("%s exited by itself (status %s; "
                                         "log %s)" % (h, p.proc.returncode,
                                                      p.log_path))
                raise HarnessError("not running: %s" % " ".join(dead))
            wait_leader(self.cluster.trio, timeout=timeout)
            self.cluster.wait_ready(max(1.0, deadline - time.monotonic()),
                                    expect_up=self.cluster.nodes,
                                    what="every node up, every slot served")
        except (HarnessError, OSError, AssertionError) as e:
            return False, time.monotonic() - t0, self.why_not_ready(e)
        return True, time.monotonic() - t0, None

    def why_not_ready(self, err):
        """What keeps the cluster from healthy, in one line: the data
        nodes' states in the leader's map and its slot counts (the error
        of the wait when the leader cannot be asked)."""
        try:
            st = self.cluster.status(3.0)
        except (HarnessError, OSError, AssertionError, ValueError):
            return str(err)[:300]
        sl = st.get("slots", {})
        addr_host = {d.addr: d.host for d in self.cluster.nodes}
        nodes = ", ".join("%s=%s" % (addr_host.get(n["addr"], n["addr"]),
                                     n["state"])
                          for n in st.get("nodes", [])
                          if n["state"] != "removed")
        return ("leader c%s; nodes %s; slots %s" % (
            st.get("leader"), nodes, " ".join(
                "%s=%s" % kv for kv in sorted(sl.items()))))[:400]

    def heal(self, faults):
        self.net.heal()
        for f in faults:
            for p in f.pause:
                if p.alive():
                    p.resume()
        for f in faults:
            for p in f.kill:
                if not p.alive():
                    p.start()

    # --- one round

    def round(self, spec):
        cfg = self.cfg
        rebuilt = False
        ok, _, err = self.wait_healed(cfg.heal_timeout)
        if not ok:
            cfg.out("  round %d: cluster not healthy before the round (%s);"
                    " rebuilding it" % (spec.index, err))
            self.rebuild()
            rebuilt = True
        seeds = self.cluster.seeds()
        keys = typed_keys(cfg.types, "r%d" % spec.index, cfg.keys)
        groups = writer_groups(self.cluster.map(), keys, cfg.keys_per_writer)
        budget = cfg.pre + spec.duration + cfg.heal_timeout + cfg.post + 20
        writers = ch.Writers(seeds, keys, groups=groups, rate=cfg.rate,
                             cls=TypedWriter,
                             max_seconds=budget,
                             max_count=int(cfg.rate * budget) + 1)
        rnd = random.Random(spec.seed)
        sample = rnd.sample(self.once, min(len(self.once), 32))
        readers = []
        for i in range(cfg.readers):
            order = keys + sample
            rnd.shuffle(order)
            readers.append(TypedReader(seeds, order, rate=cfg.read_rate,
                                       max_seconds=budget,
                                       max_count=int(cfg.read_rate * budget)
                                       + 1, name="reader-%d" % i))
        faults = []
        t_fault = None
        t_base = time.monotonic()
        watch = LossWatch(self.cluster.trio.apis,
                          born_of(self.cluster.map()), max_seconds=budget)
        watch.start()
        try:
            writers.start()
            for r in readers:
                r.start()
            time.sleep(cfg.pre)
            busy = set()
            faults = [plan(k, self, rnd, spec.nth, busy) for k in spec.kinds]
            t_fault = time.monotonic()
            try:
                for f in faults:
                    self.net.cut_many(f.cuts)
                    for p in f.pause:
                        p.pause()
                    for p in f.kill:
                        p.kill9()
                time.sleep(spec.duration)
            finally:
                self.heal(faults)
            healed, heal_s, err = self.wait_healed(cfg.heal_timeout)
            time.sleep(cfg.post)
        finally:
            wrecs = writers.stop()
            rrecs = [(r.name, r.stop()) for r in readers]
            seen = watch.stop()
        t_stop = time.monotonic()
        ops = write_ops(wrecs, spec.index)
        for name, recs in rrecs:
            ops += read_ops(recs, spec.index, name)
        self.gen_keys += keys
        finals, unread = final_reads(seeds, self.gen_keys, spec.index)
        self.history += ops + finals
        # A loss seen before the faults began (none should be) excuses
        # only what followed the round's first map.
        self.losses += [hist.Loss(s, t_fault if t_fault and by >= t_fault
                                  else t_base, by)
                        for s, by in sorted(seen.items())]
        report = hist.check(self.history, self.losses, ch.key_slot).only(
            lambda op: op.round == spec.index)
        outage, og = hist.write_outage(
            ops, {w.name: set(w.keys) for w in writers.writers},
            t_fault or t_stop, t_stop)
        res = RoundResult(
            spec, faults, healed, heal_s, report.counts(), outage, og,
            sum(1 for o in ops if o.kind == hist.WRITE),
            sum(1 for o in ops
                if o.kind == hist.WRITE and o.status == hist.OK),
            sum(1 for o in ops if o.kind == hist.READ), unread,
            report.violations(), rebuilt, len(seen),
            report.declared + report.after_loss)
        if seen and (self.cfg.min_isr or 1) >= 2:
            res = res._replace(violations=res.violations + [
                "declared lost: %d slots, with min-isr %d" % (
                    len(seen), self.cfg.min_isr)])
        if not healed:
            res = res._replace(violations=res.violations + [
                "unhealed: %s" % err])
        self.results.append(res)
        return res

    # --- the whole schedule

    def run(self, specs):
        """Run the rounds in order (no new round starts after
        cfg.max_seconds; the rounds left are counted in self.skipped)."""
        cfg = self.cfg
        end = time.monotonic() + (cfg.max_seconds or 1e9)
        for i, spec in enumerate(specs):
            if time.monotonic() > end:
                self.skipped = len(specs) - i
                cfg.out("out of time (%.0f s): %d rounds not run" % (
                    cfg.max_seconds, self.skipped))
                break
            res = self.round(spec)
            cfg.out(format_round(res, len(specs)))
            for v in res.violations[:8]:
                cfg.out("      " + str(v))
            if len(res.violations) > 8:
                cfg.out("      ... %d more" % (len(res.violations) - 8))
        return self.results

    def dump_history(self, path):
        """One JSON object per op; a set's value as {"set": [sorted
        elements]}, a list's as a JSON list."""
        with open(path, "w") as f:
            for op in self.history:
                d = op._asdict()
                if isinstance(op.value, frozenset):
                    d["value"] = {"set": sorted(op.value)}
                f.write(json.dumps(d) + "\n")


# ---------------------------------------------------------------------------
# Reports


def format_round(res, total):
    """Two lines: the round's faults, then what came of them."""
    c = res.counts
    head = "round %d/%d: %s for %.1f s%s" % (
        res.spec.index, total,
        "; ".join(str(f) for f in res.faults) or "+".join(res.spec.kinds),
        res.spec.duration,
        " (the cluster was rebuilt first)" if res.rebuilt else "")
    body = ("    %s; writes %d (%d ok), reads %d; lost %d stale %d "
            "phantom %d; outage %.0f ms%s%s" % (
                "healed in %.1f s" % res.heal_s if res.healed
                else "NOT HEALED within %.0f s" % res.heal_s,
                res.writes, res.acked, res.reads, c["lost"], c["stale"],
                c["phantom"], res.outage_s * 1000,
                "; %d keys unreadable at the end" % len(res.unread)
                if res.unread else "",
                "; %d slots declared lost (%d writes lost with them, %d "
                "reads of them after the loss)" % (
                    res.lost_slots, c["declared"], c["after_loss"])
                if res.lost_slots or c["declared"] or c["after_loss"]
                else ""))
    return head + "\n" + body


def totals(results):
    t = collections.Counter()
    for r in results:
        t.update(r.counts)
        t["unhealed"] += 0 if r.healed else 1
        t["unread"] += len(r.unread)
        t["rounds"] += 1
        t["bad"] += 1 if (r.violations or r.unread) else 0
        t["lost_slots"] += r.lost_slots
    return t


def type_lines(history, results):
    """Per type of key (--types): the writes (acknowledged), the reads the
    checker judged (final ones among them, and the elements of the
    collections they read), and the violations charged to its keys."""
    c = collections.OrderedDict((t, collections.Counter()) for t in TYPES)
    for op in history:
        n = c[key_type(op.key)]
        if op.kind == hist.WRITE:
            n["writes"] += 1
            n["acked"] += op.status == hist.OK
        elif op.status == hist.OK:
            n["reads"] += 1
            n["final"] += op.final
            if hist.is_collection(op.value):
                n["elements"] += len(op.value)
    for r in results:
        for v in r.violations + r.excused:
            if isinstance(v, hist.Violation):
                c[key_type(v.op.key)][v.kind] += 1
    row = "%-7s %8s %8s %8s %8s %10s %5s %6s %8s %9s %11s"
    lines = [row % ("type", "writes", "acked", "reads", "final",
                    "elements", "lost", "stale", "phantom", "declared",
                    "after loss")]
    for t, n in c.items():
        if n["writes"] or n["reads"]:
            lines.append(row % (t, n["writes"], n["acked"], n["reads"],
                                n["final"], n["elements"], n["lost"],
                                n["stale"], n["phantom"], n["declared"],
                                n["after_loss"]))
    lines.append("(reads: answered reads the checker judged, final ones "
                 "included; elements: set, zset and list elements those "
                 "reads checked; declared: final reads that showed a "
                 "declared loss)")
    return lines


def summary(results, problems=(), skipped=0, history=None):
    """The summary lines and whether the run is clean (with the history,
    a table per type of key too)."""
    row = "%-18s %6s %4s %5s %6s %8s %9s %11s %9s %11s"
    lines = [row % ("nemesis", "rounds", "bad", "lost", "stale", "phantom",
                    "unhealed", "max outage", "declared", "after loss")]
    by_kind = collections.OrderedDict()
    for r in results:
        by_kind.setdefault("+".join(r.spec.kinds), []).append(r)
    groups = list(by_kind.items()) + [("total", results)]
    for kind, rs in groups:
        t = totals(rs)
        lines.append(row % (
            kind[:18], t["rounds"], t["bad"], t["lost"], t["stale"],
            t["phantom"], t["unhealed"], "%.0f ms" % (
                max([r.outage_s for r in rs] or [0]) * 1000),
            "%d/%d" % (t["declared"], t["lost_slots"]), t["after_loss"]))
    lines.append("(bad: rounds with any violation; lost and stale count "
                 "keys and reads; declared: writes lost / slots the "
                 "cluster declared lost (not counted in lost); after "
                 "loss: reads of those slots' empty start (not stale))")
    if history:
        lines += type_lines(history, results)
    for p in problems:
        lines.append("process problem: " + p)
    if skipped:
        lines.append("%d rounds not run (out of time)" % skipped)
    t = totals(results)
    clean = not (t["bad"] or t["lost"] or t["stale"] or t["phantom"] or
                 t["unhealed"] or t["unread"] or problems or skipped)
    return lines, clean


def parse_kinds(text):
    if text == "all":
        return KINDS
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in KINDS + (CONTROL,)]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(
            "unknown nemesis %s (one of: all, %s, %s)" % (
                ", ".join(bad) or "''", ", ".join(KINDS), CONTROL))
    return kinds


def parse_types(text):
    if text == "all":
        return TYPES
    types = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in types if t not in TYPES]
    if bad or not types or len(set(types)) != len(types):
        raise argparse.ArgumentTypeError(
            "unknown or repeated type %s (all, or some of: %s)" % (
                ", ".join(bad) or "in %r" % text, ", ".join(TYPES)))
    return types


def parse_duration(text):
    try:
        lo, _, hi = text.partition("-")
        lo, hi = float(lo), float(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError("expected S or MIN-MAX seconds, "
                                         "e.g. 1-10")
    if not 0 < lo <= hi <= 120:
        raise argparse.ArgumentTypeError("durations must be 0 < MIN <= MAX "
                                         "<= 120 s")
    return lo, hi


def main(argv=None):
    # A run that seems stuck: `kill -USR1 PID` prints every thread's stack.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    ap = argparse.ArgumentParser(
        prog="scripts/nemesis.sh",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fault rounds against a narf cluster on network "
        "namespaces (one host per process), judged by a history checker: "
        "acknowledged writes lost, stale reads, phantom reads, rounds that "
        "never healed, write outage. Needs root.",
        epilog="nemeses:\n" + "\n".join("  %-17s %s" % (k, DESCRIPTIONS[k])
                                       for k in KINDS + (CONTROL,)) +
        "\n\ntypes (--types): the round's keys and the once-keys take the "
        "given types in\nturn; each key is written 1, 2, 3, ... by one "
        "writer:\n" + TYPES_HELP +
        "\n\nExit status: 0 when every round is clean, 1 on any violation "
        "or unhealed round, 2 on bad arguments, 3 when namespaces cannot "
        "be used (not root, no iptables).")
    ap.add_argument("--nemesis", type=parse_kinds, default=KINDS,
                    metavar="KIND[,KIND...]|all",
                    help="which faults (default all: every kind in a "
                    "seeded order)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="rounds (default: one per kind, at least 5)")
    ap.add_argument("--seed", type=int, default=None,
                    help="schedule seed (default random, printed)")
    ap.add_argument("--nodes", type=int, default=3,
                    help="data nodes (default 3)")
    ap.add_argument("--min-isr", type=int, default=None,
                    help="pass --min-isr N to the coordinators (default: "
                    "not passed, the coordinator's default)")
    ap.add_argument("--on-lost", choices=("empty", "wait"), default=None,
                    help="pass --on-lost to the coordinators (default: not "
                    "passed, the coordinator's default, empty)")
    ap.add_argument("--duration", type=parse_duration, default=(1.0, 10.0),
                    metavar="MIN-MAX",
                    help="fault duration in seconds (default 1-10)")
    ap.add_argument("--heal-timeout", type=float, default=30.0,
                    help="seconds a round may take to heal (default 30)")
    ap.add_argument("--types", type=parse_types, default=("string",),
                    metavar="TYPE[,TYPE...]|all",
                    help="what the keys are: string, hash, set, zset, list "
                    "(default string; all: every type, in turn)")
    ap.add_argument("--keys", type=int, default=48,
                    help="register keys written per round (default 48)")
    ap.add_argument("--once-keys", type=int, default=1000,
                    help="keys written once before the faults (default 1000)")
    ap.add_argument("--rate", type=float, default=300.0,
                    help="writes per second, all writers (default 300)")
    ap.add_argument("--readers", type=int, default=3,
                    help="reader threads, 100 reads/s each (default 3)")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="start no round after this many seconds (default "
                    "no limit; rounds are bounded anyway)")
    ap.add_argument("--dir", default=None,
                    help="logs and coordinator data (default: a new "
                    "directory under /tmp)")
    ap.add_argument("--build", default=os.environ.get(
        "NARF_BUILD", os.path.join(ROOT, "build")),
        help="build directory (default $NARF_BUILD or <repo>/build)")
    ap.add_argument("--log-level", default="info",
                    help="the processes' --log-level (default info)")
    a = ap.parse_args(argv)
    if a.nodes < 2 or a.nodes > 9:
        ap.error("--nodes must be 2..9")
    if a.rounds is not None and not 1 <= a.rounds <= 10000:
        ap.error("--rounds must be 1..10000")
    if a.min_isr is not None and not 1 <= a.min_isr <= 5:
        ap.error("--min-isr must be 1..5")
    why = netns.unavailable()
    if why:
        print("nemesis: " + why, file=sys.stderr)
        return 3
    build = os.path.abspath(a.build)
    for b in ("coordinator/coord", "datanode/datanode"):
        if not os.access(os.path.join(build, b), os.X_OK):
            print("nemesis: %s/%s is not built (run scripts/setup.sh)"
                  % (build, b), file=sys.stderr)
            return 3
    workdir = a.dir or tempfile.mkdtemp(prefix="narf-nemesis-")
    os.makedirs(workdir, exist_ok=True)
    rounds = a.rounds or max(5, len(a.nemesis))
    cfg = Config(build, workdir, seed=a.seed, kinds=a.nemesis, rounds=rounds,
                 nodes=a.nodes, min_isr=a.min_isr, on_lost=a.on_lost,
                 dmin=a.duration[0],
                 dmax=a.duration[1], heal_timeout=a.heal_timeout,
                 keys=a.keys, once_keys=a.once_keys, rate=a.rate,
                 readers=a.readers, max_seconds=a.max_seconds,
                 log_level=a.log_level, types=a.types)
    specs = schedule(cfg.seed, cfg.kinds, cfg.rounds, cfg.dmin, cfg.dmax)
    cfg.out("nemesis: seed %d, %d rounds of %s, 3 coordinators + %d data "
            "nodes, min-isr %s, on-lost %s, keys of type %s; logs in %s" % (
                cfg.seed, rounds, ",".join(a.nemesis) if a.nemesis != KINDS
                else "all", a.nodes, a.min_isr or "default",
                a.on_lost or "default", ",".join(a.types), workdir))
    run = Run(cfg)
    clean = False
    # Whatever happens (an error in the summary, sys.exit), the teardown
    # runs at exit too; it does nothing the second time.
    atexit.register(run.teardown)
    try:
        with run:
            cfg.out("hosts on 10.213.%d.0/24 (%s); cluster ready" % (
                run.net.subnet, run.net.prefix))
            run.run(specs)
    except KeyboardInterrupt:
        cfg.out("nemesis: interrupted; cleaned up")
        return 130
    except (HarnessError, netns.NetError) as e:
        cfg.out("nemesis: the run stopped: %s" % e)
        run.problems.append("the run stopped: %s" % str(e)[:300])
    finally:
        if run.history:
            run.dump_history(os.path.join(workdir, "history.jsonl"))
        if run.results:
            lines, clean = summary(run.results, run.problems, run.skipped,
                                   run.history)
            cfg.out("\nsummary (seed %d, min-isr %s):" % (
                cfg.seed, a.min_isr or "default"))
            for line in lines:
                cfg.out("  " + line)
    cfg.out("nemesis: %s; history and logs in %s" % (
        "clean" if clean else "VIOLATIONS", workdir))
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())

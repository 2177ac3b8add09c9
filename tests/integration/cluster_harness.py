"""Helpers for the cluster fault tests (test_cluster_faults.py) and the
failover benchmark (scripts/lib/bench_failover.py).

Real processes on 127.0.0.1: a coordinator trio (narf_harness.Trio) and N
`datanode --join c1,c2,c3 --port P`, each a DataNode that can be killed -9,
paused (SIGSTOP), resumed and restarted on the same port (a new process: a
new incarnation with a new boot id and a new node id in the map).

Then the tools a fault scenario needs:

- Router: a self-routing RESP client. It reads CLUSTER SLOTS from any live
  node, sends each key to its slot's primary, follows -MOVED and refreshes
  its table after -MOVED or a connection error. It does not rely on
  proxying and is not redis-py's RedisCluster (4.3.4's does not recover
  when its first startup node dies).
- Writer: a background thread, bounded in count and time, that SETs keys
  "k:{i}" to "{i}:{n}" with n increasing per key and records every attempt
  (key, n, slot, time sent, time answered, ok or error, node that
  answered).
- cluster_checks.py (its own module): what is checked once a scenario is
  over (check_history, failure windows, copies_disagree, stray_keys).

Every wait has a deadline; every loop has a bound in count and in time.
"""

import binascii
import os
import random
import signal
import socket
import subprocess
import threading
import time

from narf_harness import (HOST, PORTS, TLS_MODE, TLS_PORT_OF, TLS_PORTS,
                          HarnessError, call_leader, expand_slots,
                          suite_tls_dir, tls_context, tls_flags,
                          tls_redis_kwargs, wait_leader, with_secret)
from dn_harness import Closed, Err, RawConn, encode

NSLOTS = 16384


def _tls_redis_cluster():
    """NARF_TLS=1: redis-py's RedisCluster given a cluster data node's plain
    port (tests pass node.port) dials its TLS port instead, with the suite's
    certificates, so the nodes CLUSTER SLOTS names (TLS ports) are reached
    the same way. Patched on the class, so every import sees it; ports of
    other servers (a standalone node) are left alone."""
    from redis.cluster import ClusterNode, RedisCluster
    orig = RedisCluster.__init__

    def tls(port):
        return TLS_PORT_OF.get(port)

    def init(self, host=None, port=6379, startup_nodes=None, **kw):
        hit = tls(port) is not None
        if hit:
            port = tls(port)
        if startup_nodes:
            hit = hit or any(tls(n.port) for n in startup_nodes)
            startup_nodes = [ClusterNode(n.host, tls(n.port) or n.port)
                             for n in startup_nodes]
        if hit:
            for k, v in tls_redis_kwargs(suite_tls_dir()).items():
                kw.setdefault(k, v)
        orig(self, host=host, port=port, startup_nodes=startup_nodes, **kw)
    RedisCluster.__init__ = init


if TLS_MODE:
    _tls_redis_cluster()
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "ERROR: ThreadSanitizer")
# A write with ack `all` may wait for a dead replica to leave the ISR (node
# timeout + a Raft commit, slower under ASan): answers within this are fine.
REQUEST_TIMEOUT = 5.0
# Error replies after which a cluster client re-reads the routing.
REFRESH_ERRORS = ("CLUSTERDOWN", "TRYAGAIN")


# ---------------------------------------------------------------------------
# Keys and slots


def key_slot(key):
    """Redis Cluster's slot of a key ({hashtag} rules), via binascii's
    CRC16-CCITT (XMODEM), the same CRC Redis uses."""
    if isinstance(key, str):
        key = key.encode()
    s = key.find(b"{")
    if s >= 0:
        e = key.find(b"}", s + 1)
        if e > s + 1:
            key = key[s + 1:e]
    return binascii.crc_hqx(key, 0) % NSLOTS


def key_name(i):
    return "k:%d" % i


def key_per_slot(prefix="s:"):
    """One key for every slot: {slot: key}."""
    out = {}
    i = 0
    while len(out) < NSLOTS and i < 10 ** 7:
        k = "%s%d" % (prefix, i)
        out.setdefault(key_slot(k), k)
        i += 1
    if len(out) < NSLOTS:
        raise HarnessError("no key found for some slots")
    return out


def addr_port(addr):
    return int(addr.rsplit(":", 1)[1])


# ---------------------------------------------------------------------------
# Data node processes


class DataNode:
    """One `datanode --join` on a fixed port; restart = new process, same
    port (a new incarnation). on_stop is its --on-stop: "drain" unless a
    test says otherwise, so SIGTERM (teardowns, restarts) stops it without
    first moving its slots away."""

    def __init__(self, build, tmpdir, coords, name, port=None,
                 extra_args=(), log_level="info", on_stop="drain",
                 tls_dir=None):
        self.build = build
        self.name = name
        self.port = port or PORTS.take(1)[0]
        self.addr = "%s:%d" % (HOST, self.port)
        # --tls-cluster yes (tls_dir, or the suite's in NARF_TLS=1 mode):
        # the map (and so addr, which the harness compares with the
        # map's) has the node at its TLS port; port stays the plain one,
        # for the harness's own checks.
        if tls_dir is None:
            tls_dir = suite_tls_dir()
        self.tls_dir = tls_dir
        self.tls_port = None
        if tls_dir is not None:
            self.tls_port = PORTS.take(1)[0]
            self.addr = "%s:%d" % (HOST, self.tls_port)
            TLS_PORTS[self.tls_port] = tls_context(tls_dir)
            TLS_PORT_OF[self.port] = self.tls_port
        self.log_path = os.path.join(str(tmpdir), name + ".log")
        self.coords = list(coords)
        self.extra_args = list(extra_args)
        self.log_level = log_level
        self.on_stop = on_stop
        self.proc = None
        self.starts = 0
        self.paused = False
        self.exit_codes = []  # (how it ended, status) per finished process

    def argv(self):
        return [os.path.join(self.build, "datanode", "datanode"),
                "--port", str(self.port), "--join", ",".join(self.coords),
                "--log-level", self.log_level, "--on-stop",
                self.on_stop] + self.tls_args() + with_secret(
                    self.extra_args)

    def tls_args(self):
        if self.tls_dir is None:
            return []
        return ["--tls-port", str(self.tls_port)] + tls_flags(self.tls_dir)

    def start(self):
        if self.alive():
            raise HarnessError("%s already running" % self.name)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(("=== harness: start #%d: %s\n" % (
                self.starts, " ".join(self.argv()))).encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, close_fds=True)
        self.paused = False

    def restart(self, timeout=10.0):
        """Start again on the same port (the old process must be gone)."""
        self.start()
        self.wait_listening(timeout)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pid(self):
        return self.proc.pid if self.proc else None

    def _signal(self, sig):
        if not self.alive():
            raise HarnessError("%s is not running" % self.name)
        os.kill(self.proc.pid, sig)

    def kill9(self, wait=5.0):
        self._signal(signal.SIGKILL)
        self.proc.wait(timeout=wait)
        self.paused = False
        self.exit_codes.append(("kill -9", self.proc.returncode))

    def pause(self):
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self._signal(signal.SIGCONT)
        self.paused = False

    def terminate(self, wait=10.0):
        """SIGTERM (SIGKILL after `wait`); the exit status, None if it had
        to be killed, or "not running"."""
        if not self.alive():
            return "not running"
        try:
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.paused = False
        try:
            rc = self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            rc = None
        self.exit_codes.append(("SIGTERM", rc))
        return rc

    def wait_listening(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise HarnessError("%s exited with %s:\n%s" % (
                    self.name, self.proc.returncode, self.log_tail()))
            try:
                socket.create_connection((HOST, self.port), 0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise HarnessError("%s not listening on %d after %.1fs" % (
            self.name, self.port, timeout))

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def raw(self, timeout=REQUEST_TIMEOUT):
        return RawConn(self.port, timeout=timeout)

    def cmd(self, *args, timeout=REQUEST_TIMEOUT):
        with self.raw(timeout) as c:
            return c.cmd(*args)


# ---------------------------------------------------------------------------
# The cluster


def cluster_ready(trio, addrs):
    """The leader's map when: every node at `addrs` is up, every slot has a
    primary, nothing moves, every slot has its replicas in the ISR
    (status slots.under_replicated == 0 once there are as many up nodes as
    copies; with fewer, every up node holds a copy in the ISR), and every
    node at addrs answers CLUSTER SLOTS with the map's primaries. Else None.
    With 2+ up nodes every node at addrs must also hold copies (a node
    that just came up has none until the leader's next step), and no slot
    may be syncing. `trio` is anything with .apis (the coordinators' API
    addresses)."""
    rep = call_leader(trio, {"op": "status"}, 5.0)
    assert rep.get("ok"), rep
    st = rep["status"]
    rep = call_leader(trio, {"op": "map"}, 5.0)
    assert rep.get("ok") and "map" in rep, rep
    m = rep["map"]
    up = {n["addr"] for n in m["nodes"] if n["state"] == "up"}
    if not set(addrs) <= up:
        return None
    sl = st["slots"]
    if sl.get("assigned") != NSLOTS or sl.get("moving", 0) != 0 or \
            sl.get("syncing", 0) != 0:
        return None
    repl = st.get("replication", 2)
    if len(up) >= repl and sl.get("under_replicated") != 0:
        return None
    want = min(repl, len(up)) - 1
    ids = {n["id"]: n["addr"] for n in m["nodes"]}
    holders = set()
    for prim, reps, isr in expand_slots(m):
        if len(isr) < want:
            return None
        holders.add(ids.get(prim))
        holders.update(ids.get(i) for i in isr)
    if want > 0 and not set(addrs) <= holders:
        return None  # an up node not given its copies yet
    table = [ids.get(prim) for prim, _, _ in expand_slots(m)]
    for addr in addrs:
        try:
            got = slots_table(addr, timeout=1.0)
        except (OSError, Closed, HarnessError, ValueError):
            return None
        if got != table:
            return None
    return m


class Coords:
    """The coordinators' API addresses, for call_leader()."""

    def __init__(self, apis):
        self.apis = list(apis)


class Cluster:
    """A trio (from conftest's make_trio) and N data nodes joined to it."""

    def __init__(self, make_trio, build, tmpdir, nodes=3, node_args=None,
                 node_timeout_ms=None, replicas=None, coord_args=None,
                 tls_dir=None):
        kw = {}
        # tls_dir: --tls-cluster yes on every process (narf_harness,
        # TLS_PORTS; the suite's in NARF_TLS=1 mode)
        if tls_dir is None:
            tls_dir = suite_tls_dir()
        if tls_dir is not None:
            kw["tls_dir"] = tls_dir
        self.tls_dir = tls_dir
        if coord_args is not None:
            kw["coord_args"] = coord_args  # {coord id: [flags]}
        if node_timeout_ms is not None:
            kw["node_timeout_ms"] = node_timeout_ms
        if replicas is not None:
            kw["replicas"] = replicas
        self.trio = make_trio(**kw)
        self.build = build
        self.tmpdir = str(tmpdir)
        node_args = node_args or {}
        self.nodes = [DataNode(build, tmpdir, self.trio.apis, "n%d" % (i + 1),
                               extra_args=node_args.get(i, ()),
                               tls_dir=tls_dir)
                      for i in range(nodes)]

    # --- lifecycle

    def start(self, timeout=40.0):
        wait_leader(self.trio)
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            n.wait_listening()
        return self.wait_ready(timeout)

    def stop(self):
        """SIGTERM every data node; a list of problems (bad exit statuses,
        sanitizer reports)."""
        problems = []
        for n in self.nodes:
            rc = n.terminate()
            if rc not in (0, "not running"):
                problems.append("%s: SIGTERM gave exit status %s (want 0)"
                                % (n.name, rc))
            for how, code in n.exit_codes:
                if how == "SIGTERM" and code != 0:
                    msg = "%s: an earlier SIGTERM gave %s" % (n.name, code)
                    if msg not in problems and code != rc:
                        problems.append(msg)
            text = n.log_text()
            for mark in SANITIZER_MARKS:
                if mark in text:
                    problems.append("%s log contains %r" % (n.name, mark))
        return problems

    def logs(self, n=40):
        out = []
        for d in self.nodes:
            out.append("----- %s (%s, pid %s, %s) tail of %s -----\n%s" % (
                d.name, d.addr, d.pid(),
                "alive" if d.alive() else "exited",
                d.log_path, d.log_tail(n)))
        return "\n".join(out)

    # --- coordinator

    def leader(self, timeout=15.0, members=None):
        return wait_leader(self.trio, timeout=timeout, members=members)[0]

    def live_coords(self):
        return [c for c in self.trio.coords if c.alive()]

    def status(self, timeout=10.0):
        rep = call_leader(self.trio, {"op": "status"}, timeout)
        assert rep.get("ok"), rep
        return rep["status"]

    def map(self, timeout=10.0):
        rep = call_leader(self.trio, {"op": "map"}, timeout)
        assert rep.get("ok") and "map" in rep, rep
        return rep["map"]

    def kill_leader(self):
        """kill -9 the coordinator leader; returns its Coord."""
        lead = self.leader()
        lead.kill9()
        return lead

    # --- map views

    @staticmethod
    def node_ids(m, addr):
        """Ids of the map's nodes at addr, newest first."""
        return sorted((n["id"] for n in m["nodes"] if n["addr"] == addr),
                      reverse=True)

    @staticmethod
    def current_id(m, addr):
        """The id of the live incarnation at addr (newest id whose state is
        joining/up), or None."""
        for n in sorted(m["nodes"], key=lambda x: -x["id"]):
            if n["addr"] == addr and n["state"] in ("joining", "up"):
                return n["id"]
        return None

    def node_of(self, m, nid):
        """The DataNode that holds map node id nid (by address)."""
        addr = next((n["addr"] for n in m["nodes"] if n["id"] == nid), None)
        return next((d for d in self.nodes if d.addr == addr), None)

    @staticmethod
    def addr_of(m, nid):
        return next((n["addr"] for n in m["nodes"] if n["id"] == nid), None)

    def slots_of(self, m, node, role="primary"):
        """Slots where DataNode `node` (its current incarnation) is the
        primary (role primary), a replica (replica) or in the ISR (isr)."""
        nid = self.current_id(m, node.addr)
        out = set()
        for s, (prim, reps, isr) in enumerate(expand_slots(m)):
            if role == "primary" and prim == nid:
                out.add(s)
            elif role == "replica" and nid in reps:
                out.add(s)
            elif role == "isr" and nid in isr:
                out.add(s)
        return out

    def primary_table(self, m):
        """[addr of the primary of slot s] (None when unassigned)."""
        addrs = {n["id"]: n["addr"] for n in m["nodes"]}
        return [addrs.get(prim) for prim, _, _ in expand_slots(m)]

    # --- readiness

    def ready(self, expect_up=None):
        """cluster_ready() for expect_up (default: every running, unpaused
        DataNode)."""
        if expect_up is None:
            expect_up = [d for d in self.nodes if d.alive() and not d.paused]
        return cluster_ready(self.trio, [d.addr for d in expect_up])

    def wait_ready(self, timeout=40.0, expect_up=None, what="cluster ready"):
        """Until ready() holds twice in a row, 0.3 s apart, at the same map
        epoch (the leader takes its next step at once when one applies, so
        a pause between steps does not pass for the end)."""
        deadline = time.monotonic() + timeout
        last = None
        prev = None
        while time.monotonic() < deadline:
            try:
                m = self.ready(expect_up)
                if m and prev is not None and m["epoch"] == prev:
                    return m
                prev = m["epoch"] if m else None
            except (OSError, ValueError, HarnessError, KeyError,
                    AssertionError) as e:
                last = e
                prev = None
            time.sleep(0.3 if prev is not None else 0.1)
        try:
            st = self.status(3.0)
        except (OSError, HarnessError, AssertionError) as e:
            st = e
        raise HarnessError("%s not reached within %.0fs (last error %r); "
                           "status: %r" % (what, timeout, last, st))

    def wait_map(self, pred, timeout=20.0, what="map condition"):
        """Poll the leader's map until pred(map) is true; return the map."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                m = self.map(3.0)
                if pred(m):
                    return m
                last = m.get("epoch")
            except (OSError, ValueError, HarnessError, AssertionError) as e:
                last = e
            time.sleep(0.05)
        raise HarnessError("%s not reached within %.0fs (last: %r)"
                           % (what, timeout, last))

    def wait_down(self, node, old_id, timeout=20.0):
        """Until the map marks node id old_id down and every slot has a
        live primary; returns the map."""
        def pred(m):
            st = {n["id"]: n["state"] for n in m["nodes"]}
            if st.get(old_id) in ("joining", "up", "leaving"):
                return False
            for prim, _, _ in expand_slots(m):
                if prim == 0 or prim == old_id:
                    return False
            return True
        return self.wait_map(pred, timeout, "%s (id %d) marked down with "
                             "its slots taken over" % (node.name, old_id))

    def wait_nodes_route(self, nodes, timeout=20.0):
        """Until every DataNode in nodes answers CLUSTER SLOTS with the
        primaries of the leader's current map; returns that map."""
        def pred(m):
            want = self.primary_table(m)
            for d in nodes:
                try:
                    if slots_table(d.port, timeout=1.0) != want:
                        return False
                except (OSError, Closed, HarnessError, ValueError):
                    return False
            return True
        return self.wait_map(pred, timeout, "%s routing by the leader's map"
                             % ", ".join(d.name for d in nodes))

    def seeds(self):
        return [d.addr for d in self.nodes]


# ---------------------------------------------------------------------------
# RESP routing


def parse_cluster_slots(reply):
    """CLUSTER SLOTS reply -> [addr of slot s's primary or None]."""
    if not isinstance(reply, list):
        raise HarnessError("CLUSTER SLOTS answered %r" % (reply,))
    table = [None] * NSLOTS
    for r in reply:
        lo, hi, prim = r[0], r[1], r[2]
        host = prim[0].decode() if isinstance(prim[0], bytes) else prim[0]
        addr = "%s:%d" % (host, prim[1])
        for s in range(lo, hi + 1):
            table[s] = addr
    return table


# (user, password) the harness's own checks AUTH with on data nodes that
# take users (test_datanode_users.py sets it); None: no AUTH.
DATA_AUTH = None


def slots_table(where, timeout=1.0):
    """CLUSTER SLOTS of the node at `where`: a port on 127.0.0.1, or a
    "host:port" address (nodes on hosts of their own, nemesis.py)."""
    host, port = HOST, where
    if isinstance(where, str):
        host, port = where.rsplit(":", 1)
    with RawConn(int(port), timeout=timeout, host=host) as c:
        if DATA_AUTH is not None:
            c.cmd("AUTH", *DATA_AUTH)
        return parse_cluster_slots(c.cmd("CLUSTER", "SLOTS"))


class RequestError(Exception):
    """A request got no reply (connection refused, reset, timed out)."""


class Router:
    """Sends each key's request to its slot's primary (from CLUSTER SLOTS of
    any live node); follows -MOVED (the request was not run) and refreshes
    the table after -MOVED, -CLUSTERDOWN, -TRYAGAIN or a connection
    error. One connection per node,
    dropped on any error (a late reply must never be read as the answer to
    the next request)."""

    def __init__(self, seeds, timeout=REQUEST_TIMEOUT, refresh_timeout=0.5,
                 min_refresh_interval=0.05):
        self.seeds = list(seeds)
        self.timeout = timeout
        self.refresh_timeout = refresh_timeout
        self.min_refresh_interval = min_refresh_interval
        self.table = None
        self.conns = {}
        self.stale = True
        self.last_refresh = 0.0
        self.refreshes = 0
        self._next_seed = 0

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns = {}

    def refresh(self, force=False):
        """Re-read CLUSTER SLOTS, trying the seeds in turn from the last one
        that answered. True when a table was read."""
        now = time.monotonic()
        if not force and now - self.last_refresh < self.min_refresh_interval:
            return False
        self.last_refresh = now
        n = len(self.seeds)
        for k in range(n):
            addr = self.seeds[(self._next_seed + k) % n]
            try:
                table = slots_table(addr, self.refresh_timeout)
            except (OSError, Closed, HarnessError, ValueError, IndexError,
                    TypeError):
                continue
            if any(a is None for a in table):
                # Slots not served (yet): keep looking, but use it if no
                # node has better.
                if self.table is None:
                    self.table = table
                continue
            self._next_seed = (self._next_seed + k) % n
            self.table = table
            self.stale = False
            self.refreshes += 1
            return True
        return False

    def conn(self, addr, timeout=None):
        c = self.conns.get(addr)
        if c is None:
            host, port = addr.rsplit(":", 1)
            c = RawConn(int(port), timeout=min(1.0, timeout or self.timeout),
                        host=host)
            c.sock.settimeout(timeout or self.timeout)
            c.timeout = timeout or self.timeout
            self.conns[addr] = c
        return c

    def drop(self, addr):
        c = self.conns.pop(addr, None)
        if c:
            c.close()

    def call(self, key, *args, timeout=None):
        """Run one request for key on its primary; returns (reply, addr).
        Raises RequestError when it got no reply (it may or may not have
        run). -MOVED is followed up to 3 times; any other error reply is
        returned as an Err."""
        if self.table is None or self.stale:
            self.refresh()
        if self.table is None:
            raise RequestError("no routing table")
        slot = key_slot(key)
        addr = self.table[slot]
        for _ in range(4):
            if addr is None:
                self.stale = True
                raise RequestError("slot %d not served" % slot)
            try:
                c = self.conn(addr, timeout)
                rep = c.cmd(*args, timeout=timeout or self.timeout)
            except (OSError, Closed, HarnessError, ValueError) as e:
                self.drop(addr)
                self.stale = True
                raise RequestError("%s: %s" % (addr, e or type(e).__name__))
            if isinstance(rep, Err) and rep.startswith("MOVED "):
                parts = rep.split()
                addr = parts[2]
                self.table[slot] = addr
                self.stale = True
                continue
            if isinstance(rep, Err) and rep.startswith(REFRESH_ERRORS):
                # Not run; the routing may be stale (as a cluster client
                # does, re-read CLUSTER SLOTS before the next request).
                self.stale = True
            return rep, addr
        raise RequestError("too many redirects for slot %d" % slot)

    def pipeline_get(self, keys, timeout=None, args=None):
        """GET every key from its primary, pipelined per node; {key: reply}.
        A key whose request failed maps to a RequestError instance. With
        args (a function of the key), args(key) is sent instead of GET."""
        args = args or (lambda k: ("GET", k))
        if self.table is None or self.stale:
            self.refresh(force=True)
        if self.table is None:
            raise RequestError("no routing table")
        by_addr = {}
        for k in keys:
            by_addr.setdefault(self.table[key_slot(k)], []).append(k)
        out = {}
        for addr, ks in by_addr.items():
            try:
                c = self.conn(addr, timeout)
                for i in range(0, len(ks), 500):
                    part = ks[i:i + 500]
                    c.send(b"".join(encode(*args(k)) for k in part))
                    for k in part:
                        out[k] = c.read(timeout or self.timeout)
            except (OSError, Closed, HarnessError, ValueError) as e:
                self.drop(addr)
                for k in ks:
                    out.setdefault(k, RequestError("%s: %r" % (addr, e)))
        # Follow MOVED one key at a time.
        for k, v in list(out.items()):
            if isinstance(v, Err) and v.startswith("MOVED "):
                try:
                    out[k] = self.call(k, *args(k), timeout=timeout)[0]
                except RequestError as e:
                    out[k] = e
        return out


# ---------------------------------------------------------------------------
# The recording writer


class Attempt:
    __slots__ = ("key", "n", "slot", "t_sent", "t_done", "ok", "err", "addr")

    def __init__(self, key, n, slot, t_sent, t_done, ok, err, addr):
        self.key, self.n, self.slot = key, n, slot
        self.t_sent, self.t_done = t_sent, t_done
        self.ok, self.err, self.addr = ok, err, addr

    def __repr__(self):
        return "Attempt(%s=%d slot %d %s %s at %.3f..%.3f via %s)" % (
            self.key, self.n, self.slot, "ok" if self.ok else "FAILED",
            self.err or "", self.t_sent, self.t_done, self.addr)


def value_of(key, n):
    return "%s:%d" % (key.split(":", 1)[1], n)


def parse_value(key, v):
    """The n of a value written for key, or raise."""
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    head, _, n = v.rpartition(":")
    if head != key.split(":", 1)[1] or not n.isdigit():
        raise ValueError("key %s holds %r, not one of its values" % (key, v))
    return int(n)


class Writer(threading.Thread):
    """SET key "{i}:{n}" round-robin over `keys`, n increasing per key,
    about `rate` attempts per second, at most max_count attempts and
    max_seconds; records every attempt. A subclass may write otherwise
    (command() and acked())."""

    def __init__(self, seeds, keys, rate=400, max_count=100000,
                 max_seconds=90.0, timeout=REQUEST_TIMEOUT, name="writer"):
        super().__init__(daemon=True, name=name)
        self.router = Router(seeds, timeout=timeout)
        self.keys = list(keys)
        self.rate = rate
        self.max_count = max_count
        self.max_seconds = max_seconds
        self.records = []
        self.next_n = {k: 0 for k in self.keys}
        self._stop_ev = threading.Event()
        self.t_start = None
        self.exc = None

    def command(self, key, n):
        """The request that writes n to key."""
        return ("SET", key, value_of(key, n))

    def acked(self, rep):
        """Does reply rep acknowledge the write?"""
        return rep == "OK"

    def run(self):
        try:
            self._run()
        except Exception as e:  # reported by stop()
            self.exc = e
        finally:
            self.router.close()

    def _run(self):
        self.t_start = time.monotonic()
        end = self.t_start + self.max_seconds
        count = 0
        nkeys = len(self.keys)
        while (not self._stop_ev.is_set() and count < self.max_count and
               time.monotonic() < end):
            due = self.t_start + count / float(self.rate)
            now = time.monotonic()
            if due > now:
                self._stop_ev.wait(due - now)
            key = self.keys[count % nkeys]
            n = self.next_n[key] + 1
            self.next_n[key] = n
            slot = key_slot(key)
            t0 = time.monotonic()
            ok, err, addr = False, None, None
            try:
                rep, addr = self.router.call(key, *self.command(key, n))
                if self.acked(rep):
                    ok = True
                else:
                    err = "reply %r" % (rep,)
            except RequestError as e:
                err = str(e)
            self.records.append(Attempt(key, n, slot, t0, time.monotonic(),
                                        ok, err, addr))
            count += 1

    def stop(self, timeout=REQUEST_TIMEOUT + 10):
        self._stop_ev.set()
        self.join(timeout)
        if self.is_alive():
            raise HarnessError("writer did not stop within %.0fs" % timeout)
        if self.exc:
            raise self.exc
        return self.records

    def wait_acks(self, n, timeout=20.0, since=None):
        """Until n more attempts after `since` (monotonic) were acked."""
        since = time.monotonic() if since is None else since
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = sum(1 for a in self.records[-4 * n - 100:]
                      if a.ok and a.t_sent >= since)
            if got >= n:
                return
            if not self.is_alive():
                break
            time.sleep(0.02)
        raise HarnessError("writer: not %d acks within %.0fs (last: %r)" % (
            n, timeout, self.records[-3:]))


class Writers:
    """Several Writers over one key set, one thread per group of keys (by
    default the groups are the keys of each primary in map m), so a request
    stuck on a paused or dead node holds up only its own group. Quacks
    like a Writer: records, keys, start, stop, wait_acks, is_alive. cls is
    the writer class (a Writer)."""

    def __init__(self, seeds, keys, m=None, groups=None, rate=400,
                 cls=Writer, **kw):
        if groups is None:
            groups = {}
            if m is not None:
                slots = expand_slots(m)
                for k in keys:
                    groups.setdefault(slots[key_slot(k)][0], []).append(k)
            else:
                groups[0] = list(keys)
        groups = [g for g in groups.values() if g]
        self.keys = list(keys)
        self.writers = [cls(seeds, g, rate=max(1.0, rate * len(g) /
                                                  float(len(self.keys))),
                               name="writer-%d" % i, **kw)
                        for i, g in enumerate(groups)]

    @property
    def records(self):
        out = []
        for w in self.writers:
            out.extend(w.records)
        return out

    def start(self):
        for w in self.writers:
            w.start()

    def is_alive(self):
        return any(w.is_alive() for w in self.writers)

    def stop(self, timeout=REQUEST_TIMEOUT + 10):
        for w in self.writers:
            w._stop_ev.set()
        for w in self.writers:
            w.stop(timeout)
        return sorted(self.records, key=lambda a: a.t_sent)

    def wait_acks(self, n, timeout=20.0, since=None):
        """Until every group has n (scaled to its share of keys, at least 1)
        acknowledged writes after `since`."""
        since = time.monotonic() if since is None else since
        for w in self.writers:
            share = max(1, n * len(w.keys) // len(self.keys))
            w.wait_acks(share, timeout, since)


def wait_slots_acked(writer, slots, since, timeout=20.0):
    """Until the writer has an acknowledged write after `since` in every one
    of `slots` that it writes to (writes to them resumed)."""
    want = {key_slot(k) for k in writer.keys} & set(slots)
    deadline = time.monotonic() + timeout
    seen = set()
    parts = getattr(writer, "writers", [writer])
    idx = [0] * len(parts)
    while time.monotonic() < deadline:
        for i, w in enumerate(parts):
            recs = w.records
            for a in recs[idx[i]:]:
                if a.ok and a.t_sent >= since:
                    seen.add(a.slot)
            idx[i] = len(recs)
        if want <= seen:
            return
        if not writer.is_alive():
            break
        time.sleep(0.05)
    raise HarnessError("writes to %d of %d slots did not resume within %.0fs"
                       % (len(want - seen), len(want), timeout))


# ---------------------------------------------------------------------------
# Keys for a test (the checks after a run are in cluster_checks.py)


def slots_with_keys(keys):
    return {key_slot(k) for k in keys}


def pick(seq, rnd=None):
    return (rnd or random).choice(list(seq))


def preload(seeds, keys, timeout=REQUEST_TIMEOUT, ex=None, command=None,
            acked=None):
    """SET every key to value_of(key, 1) on its primary, pipelined per node
    (with `EX ex` when ex is given); raises unless every write is
    acknowledged. command(key) and acked(reply), when given, say what
    the write is instead and which reply acknowledges it."""
    r = Router(seeds, timeout=timeout)
    try:
        if not r.refresh(force=True):
            raise HarnessError("preload: no node answers CLUSTER SLOTS")
        by_addr = {}
        for k in keys:
            by_addr.setdefault(r.table[key_slot(k)], []).append(k)
        bad = []
        for addr, ks in by_addr.items():
            c = r.conn(addr)
            for i in range(0, len(ks), 500):
                part = ks[i:i + 500]
                c.send(b"".join(encode(*command(k)) if command else
                                encode("SET", k, value_of(k, 1),
                                       *(("EX", ex) if ex else ()))
                                for k in part))
                for k in part:
                    rep = c.read(timeout)
                    if not (acked(rep) if acked else rep == "OK"):
                        bad.append((k, rep))
        if bad:
            raise HarnessError("preload: %d writes not acknowledged, e.g. %r"
                               % (len(bad), bad[:3]))
    finally:
        r.close()


def keys_in(slots, n, prefix="k:", exclude=False, limit=10 ** 6):
    """n keys prefix{i} whose slots are in `slots` (not in, with exclude)."""
    out = []
    i = 0
    while len(out) < n and i < limit:
        k = "%s%d" % (prefix, i)
        if (key_slot(k) in slots) != exclude:
            out.append(k)
        i += 1
    if len(out) < n:
        raise HarnessError("only %d keys found" % len(out))
    return out


# ---------------------------------------------------------------------------
# Rebalancing (test_rebalance.py, scripts/lib/bench_rebalance.py)


def add_node(cluster, name=None, extra_args=(), tls_dir=False):
    """Start one more DataNode joined to cluster's trio (appended to
    cluster.nodes, so stop() and logs() cover it); returns it once it
    listens. tls_dir: the cluster's unless given (None: plain)."""
    name = name or "n%d" % (len(cluster.nodes) + 1)
    if tls_dir is False:
        tls_dir = getattr(cluster, "tls_dir", None)
    d = DataNode(cluster.build, cluster.tmpdir, cluster.trio.apis, name,
                 extra_args=extra_args, tls_dir=tls_dir)
    cluster.nodes.append(d)
    d.start()
    d.wait_listening()
    return d


def leave(trio, nid, timeout=10.0):
    """The coordinator API's leave op for map node id nid; the reply."""
    rep = call_leader(trio, {"op": "leave", "node": nid}, timeout)
    if not rep.get("ok"):
        raise HarnessError("leave %d: %r" % (nid, rep))
    return rep


def moves_in_flight(m):
    """(moving, syncing) slots of map m, as {slot: target} and
    {slot: (primary, replicas outside the ISR)}."""
    moving, syncing = {}, {}
    for r in m["slots"]:
        out = tuple(x for x in r.get("replicas", ()) if x not in
                    r.get("isr", ()))
        for s in range(r["from"], r["to"] + 1):
            if r.get("move"):
                moving[s] = r["move"]
            if out:
                syncing[s] = (r["primary"], out)
    return moving, syncing


def wait_mid_move(trio, pred=None, timeout=30.0, interval=0.005):
    """Poll the leader's map until some slot is moving or syncing (and
    pred(map, moving, syncing) holds, when given); returns (map, moving,
    syncing). Polls fast: a rebalance of a small data set takes well under
    a second."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            rep = call_leader(trio, {"op": "map"}, 2.0)
            m = rep.get("map") if rep.get("ok") else None
        except (OSError, ValueError, HarnessError) as e:
            last, m = e, None
        if m is not None:
            moving, syncing = moves_in_flight(m)
            if (moving or syncing) and (pred is None or
                                        pred(m, moving, syncing)):
                return m, moving, syncing
            last = m["epoch"]
        time.sleep(interval)
    raise HarnessError("no slot moving or syncing within %.0fs (last %r)"
                       % (timeout, last))


def balance_problems(st):
    """What keeps status `st` from a settled, balanced map (empty list
    when fine): every slot assigned, nothing moving or syncing,
    under_replicated 0, and every up node's primaries and copies (primaries
    + replicas) within 1 of the mean over the up nodes."""
    out = []
    sl = st["slots"]
    for k, want in (("assigned", NSLOTS), ("moving", 0), ("syncing", 0),
                    ("under_replicated", 0)):
        if sl.get(k) != want:
            out.append("slots.%s is %r (want %r)" % (k, sl.get(k), want))
    # The coordinator's own judgement (from its derived counts) agrees.
    if st.get("rebalance", {}).get("balanced") is not True:
        out.append("rebalance.balanced is %r" %
                   st.get("rebalance", {}).get("balanced"))
    up = [n for n in st["nodes"] if n["state"] == "up"]
    if not up:
        return out + ["no node up"]
    for what, f in (("primaries", lambda n: n["primaries"]),
                    ("copies", lambda n: n["primaries"] + n["replicas"])):
        mean = sum(f(n) for n in up) / float(len(up))
        for n in up:
            if abs(f(n) - mean) > 1.0:
                out.append("node %d (%s) holds %d %s, mean %.2f" % (
                    n["id"], n["addr"], f(n), what, mean))
    return out


def wait_balanced(cluster, timeout=60.0):
    """Until balance_problems() of the leader's status is empty; returns
    the status, or raises with the last problems."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            st = cluster.status(3.0)
            last = balance_problems(st)
            if not last:
                return st
        except (OSError, ValueError, HarnessError, AssertionError) as e:
            last = [repr(e)]
        time.sleep(0.2)
    raise HarnessError("map not balanced within %.0fs: %s" % (
        timeout, "; ".join(last or ["?"])))


class Op:
    """One recorded read or delete."""
    __slots__ = ("key", "t_sent", "t_done", "ok", "reply", "err", "addr")

    def __init__(self, key, t_sent, t_done, ok, reply, err, addr):
        self.key, self.t_sent, self.t_done = key, t_sent, t_done
        self.ok, self.reply, self.err, self.addr = ok, reply, err, addr

    def __repr__(self):
        return "Op(%s %s %r %s at %.3f..%.3f via %s)" % (
            self.key, "ok" if self.ok else "FAILED", self.reply,
            self.err or "", self.t_sent, self.t_done, self.addr)


class KeyLoop(threading.Thread):
    """Runs one command per key through a Router, round-robin over keys
    (each key once when `once`), about `rate` per second, bounded by
    max_count and max_seconds; records every attempt as an Op. The
    command is GET (a Reader) or DEL (a Deleter), or what args() of a
    subclass sends."""

    command = "GET"
    once = False

    def __init__(self, seeds, keys, rate=300, max_count=100000,
                 max_seconds=90.0, timeout=REQUEST_TIMEOUT, name=None):
        super().__init__(daemon=True, name=name or self.command.lower())
        self.router = Router(seeds, timeout=timeout)
        self.keys = list(keys)
        self.rate = rate
        self.max_count = max_count if not self.once else min(
            max_count, len(self.keys))
        self.max_seconds = max_seconds
        self.records = []
        self._stop_ev = threading.Event()
        self.exc = None

    def ok_reply(self, rep):
        return not isinstance(rep, Err)

    def args(self, key):
        """The request for key."""
        return (self.command, key)

    def run(self):
        try:
            t_start = time.monotonic()
            end = t_start + self.max_seconds
            count = 0
            while (not self._stop_ev.is_set() and count < self.max_count
                   and time.monotonic() < end):
                due = t_start + count / float(self.rate)
                now = time.monotonic()
                if due > now:
                    self._stop_ev.wait(due - now)
                key = self.keys[count % len(self.keys)]
                t0 = time.monotonic()
                ok, rep, err, addr = False, None, None, None
                try:
                    rep, addr = self.router.call(key, *self.args(key))
                    ok = self.ok_reply(rep)
                    if not ok:
                        err = "reply %r" % (rep,)
                except RequestError as e:
                    err = str(e)
                self.records.append(Op(key, t0, time.monotonic(), ok, rep,
                                       err, addr))
                count += 1
        except Exception as e:  # reported by stop()
            self.exc = e
        finally:
            self.router.close()

    def stop(self, timeout=REQUEST_TIMEOUT + 10):
        self._stop_ev.set()
        self.join(timeout)
        if self.is_alive():
            raise HarnessError("%s did not stop within %.0fs" % (
                self.name, timeout))
        if self.exc:
            raise self.exc
        return self.records


class Reader(KeyLoop):
    command = "GET"


class PlainRouter:
    """Every request to one node, as a client that knows nothing of the
    cluster: a -MOVED (or any error) reply is a failure, not a redirect."""

    def __init__(self, addr, timeout=REQUEST_TIMEOUT):
        self.addr = addr
        self.timeout = timeout
        self.conn = None

    def call(self, key, *args):
        try:
            if self.conn is None:
                self.conn = RawConn(addr_port(self.addr),
                                    timeout=self.timeout)
            return self.conn.cmd(*args), self.addr
        except (OSError, Closed, HarnessError) as e:
            self.close()
            raise RequestError("%s: %r" % (self.addr, e))

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class PlainReader(Reader):
    """A Reader through one node only (a plain client: the node forwards
    what it does not lead; -MOVED is a failure)."""

    def __init__(self, addr, keys, **kw):
        super().__init__([addr], keys, name="plain-get", **kw)
        self.router = PlainRouter(addr, timeout=self.router.timeout)


class Deleter(KeyLoop):
    """DEL each key once; a reply of 1 or 0 is an acknowledged delete."""
    command = "DEL"
    once = True

    def ok_reply(self, rep):
        return rep in (0, 1)

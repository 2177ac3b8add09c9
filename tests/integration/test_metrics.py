"""Observability against real processes: --metrics (Prometheus text format,
parsed with prometheus_client's own parser), INFO cluster / replication,
--log-format json, and the new flags' bad values.

A trio with --metrics on every coordinator and three data nodes with
--metrics; traffic goes through one node, and its counters, the keys every
node reports, the replication gauges and the coordinators' Raft and
heartbeat metrics must reflect it. The HTTP endpoint is then fed garbage,
oversized and truncated heads, idle and surplus connections, and must keep
answering (and the node keep serving RESP).
"""

import json
import os
import select
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cluster_harness import NSLOTS, addr_port, key_slot
from dn_harness import SANITIZER_MARKS, RawConn
from narf_harness import HOST, PORTS, expand_slots, wait_leader

READY_WAIT = 60.0
N_KEYS = 60
N_MISSING = 10


# ---------------------------------------------------------------------------
# Helpers


def scrape(addr, timeout=5.0):
    """GET /metrics: {(sample name, frozenset(labels)): value}, and the
    content type."""
    with urllib.request.urlopen("http://%s/metrics" % addr,
                                timeout=timeout) as rep:
        assert rep.status == 200
        ctype = rep.headers.get("Content-Type")
        text = rep.read().decode("utf-8")
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, "sample %r twice" % (key,)
            out[key] = s.value
    return out, ctype


def val(samples, name, **labels):
    """One sample's value; 0 when absent (a counter not yet seen)."""
    return samples.get((name, frozenset(labels.items())), 0)


def series(samples, name, label):
    """{label value: value} of every sample of name."""
    return {dict(k[1])[label]: v for k, v in samples.items()
            if k[0] == name and label in dict(k[1])}


def wait_for(pred, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError("%s not reached within %.0fs (last %r)"
                         % (what, timeout, last))


def raw_http(addr, data, shut=True, timeout=10.0):
    """Send data on a new connection (then half-close when shut) and read
    until the server closes; the bytes received."""
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.settimeout(timeout)
    got = b""
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    return got


def status_of(reply):
    assert reply.startswith(b"HTTP/1.1 "), reply[:100]
    return int(reply[9:12])


def info_fields(conn, *section):
    text = conn.cmd("INFO", *section).decode()
    fields = {}
    for line in text.split("\r\n"):
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            fields[k] = v
    return text, fields


def json_lines(path, process):
    """The log's lines (harness lines aside), each parsed as JSON and
    checked for the five fields."""
    out = []
    with open(path, "rb") as f:
        for raw in f.read().decode("utf-8").splitlines():
            if raw.startswith("=== harness"):
                continue
            obj = json.loads(raw)
            assert set(obj) == {"ts", "level", "process", "node", "msg"}, obj
            assert obj["process"] == process, obj
            assert obj["level"] in ("debug", "info", "warn", "error"), obj
            assert len(obj["ts"]) == 24 and obj["ts"].endswith("Z"), obj
            out.append(obj)
    return out


class Standalone:
    """One `datanode --standalone` with extra flags, stopped with SIGTERM."""

    def __init__(self, build, tmp_path, args):
        self.port = PORTS.take(1)[0]
        self.log_path = str(tmp_path / ("dn%d.log" % self.port))
        argv = [os.path.join(build, "datanode", "datanode"), "--standalone",
                "--port", str(self.port)] + list(args)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        wait_for(self._listening, 10, "datanode listening")

    def _listening(self):
        assert self.proc.poll() is None, open(self.log_path).read()
        try:
            socket.create_connection((HOST, self.port), 0.5).close()
            return True
        except OSError:
            return False

    def stop(self):
        self.proc.terminate()
        return self.proc.wait(timeout=15)


@pytest.fixture
def standalone(build_dir, tmp_path):
    made = []

    def make(*args):
        s = Standalone(build_dir, tmp_path, args)
        made.append(s)
        return s

    yield make
    for s in made:
        if s.proc.poll() is None:
            assert s.stop() == 0, open(s.log_path).read()[-3000:]
        text = open(s.log_path, errors="replace").read()
        for mark in SANITIZER_MARKS:
            assert mark not in text, text[-3000:]


# ---------------------------------------------------------------------------
# Tests


def test_cluster_metrics_reflect_traffic(make_cluster):
    """Node and coordinator metrics follow real traffic and the cluster's
    shape: per-command counts grow by exactly what was sent, keys match
    DBSIZE (two copies each), hits and misses add up, forwarded requests
    are those for slots led elsewhere, replication catches up, and the
    coordinator leader reports is_leader 1 and a heartbeat age for every
    node. INFO cluster and INFO replication work alone and in plain INFO;
    JSON logs parse line by line."""
    mports = PORTS.take(6)
    caddrs = {cid: "%s:%d" % (HOST, mports[cid - 1]) for cid in (1, 2, 3)}
    naddrs = ["%s:%d" % (HOST, p) for p in mports[3:]]
    coord_args = {cid: ["--metrics", caddrs[cid]] for cid in caddrs}
    coord_args[1] += ["--log-format", "json"]
    node_args = {i: ["--metrics", naddrs[i]] for i in range(3)}
    node_args[0] += ["--log-format", "json"]
    cl = make_cluster(nodes=3, node_args=node_args, coord_args=coord_args)
    n1 = cl.nodes[0]

    m = cl.map()
    slots = expand_slots(m)
    ids = {n["addr"]: n["id"] for n in m["nodes"] if n["state"] == "up"}
    n1_id = ids[n1.addr]

    before = [scrape(a)[0] for a in naddrs]
    samples, ctype = scrape(naddrs[0])
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    assert val(samples, "narf_node_id") == n1_id
    assert val(samples, "narf_cluster_enabled") == 1
    assert val(samples, "narf_build_info", process="datanode",
               version="0.1.0") == 1

    # Traffic through n1 only: SETs, GETs that hit, GETs that miss.
    keys = ["metrics:%d" % i for i in range(N_KEYS)]
    missing = ["absent:%d" % i for i in range(N_MISSING)]
    with RawConn(n1.port) as c:
        for k in keys:
            assert c.cmd("SET", k, "v-" + k) == "OK"
        for k in keys:
            assert c.cmd("GET", k) == ("v-" + k).encode()
        for k in missing:
            assert c.cmd("GET", k) is None

    after = [scrape(a)[0] for a in naddrs]
    d = {name: val(after[0], "narf_commands_total", command=name) -
         val(before[0], "narf_commands_total", command=name)
         for name in ("set", "get")}
    assert d == {"set": N_KEYS, "get": N_KEYS + N_MISSING}, d

    # Forwarded: every request for a slot n1 does not lead.
    elsewhere = sum(1 for k in keys if slots[key_slot(k)][0] != n1_id)
    elsewhere_missing = sum(1 for k in missing
                            if slots[key_slot(k)][0] != n1_id)
    assert 0 < elsewhere < N_KEYS
    assert (val(after[0], "narf_proxied_requests_total") -
            val(before[0], "narf_proxied_requests_total")) == \
        2 * elsewhere + elsewhere_missing
    # INFO replication says the same.
    with RawConn(n1.port) as c:
        info = c.cmd("INFO", "replication").decode()
    assert "\r\nproxied_requests:%d\r\n" % val(
        after[0], "narf_proxied_requests_total") in info, info

    # Hits and misses are counted where the key lives.
    hits = sum(val(a, "narf_keyspace_hits_total") -
               val(b, "narf_keyspace_hits_total")
               for a, b in zip(after, before))
    misses = sum(val(a, "narf_keyspace_misses_total") -
                 val(b, "narf_keyspace_misses_total")
                 for a, b in zip(after, before))
    assert (hits, misses) == (N_KEYS, N_MISSING)

    # Keys: each node's gauge is its DBSIZE; two copies of each key.
    total = 0
    for node, addr in zip(cl.nodes, naddrs):
        s = scrape(addr)[0]
        with RawConn(node.port) as c:
            assert val(s, "narf_keys") == c.cmd("DBSIZE")
        total += val(s, "narf_keys")
        assert val(s, "narf_used_memory_bytes") > 0
        assert val(s, "narf_lease_valid") == 1
        nid = ids[node.addr]
        prim = sum(1 for p, _, _ in slots if p == nid)
        rep = sum(1 for _, r, _ in slots if nid in r)
        assert val(s, "narf_slots", role="primary") == prim
        assert val(s, "narf_slots", role="replica") == rep
        assert val(s, "narf_slots_led") == prim
        assert val(s, "narf_node_state", state="up") == 1
    assert total == 2 * N_KEYS

    # n1 streamed a write per key it leads; every peer catches up.
    led = N_KEYS - elsewhere
    assert (val(after[0], "narf_replication_stream_commands_total") -
            val(before[0], "narf_replication_stream_commands_total")) >= led
    peers = set(ids.values()) - {n1_id}

    seen = []

    def caught_up():
        s = scrape(naddrs[0])[0]
        unacked = series(s, "narf_replication_unacked_commands", "peer")
        links = series(s, "narf_replication_link_up", "peer")
        fwd = series(s, "narf_replication_forwarded_slots", "peer")
        seen[:] = [unacked, links, fwd]
        # a link is open to every peer that replicates slots n1 leads
        return ({int(p) for p in unacked} <= peers and
                all(v == 0 for v in unacked.values()) and
                all(links[p] == 1 for p in fwd if fwd[p] > 0) and
                sum(fwd.values()) ==
                sum(len(r) for p, r, _ in slots if p == n1_id))
    wait_for(caught_up, 20, "replication caught up")
    assert seen[0], seen

    # The coordinators: one leader, heartbeat ages for every node there.
    leader, pings = wait_leader(cl.trio)
    epoch = cl.map()["epoch"]

    def coords_agree():
        got = {cid: scrape(caddrs[cid])[0] for cid in caddrs}
        if any(val(s, "narf_map_epoch") != epoch for s in got.values()):
            return False
        return got
    coords = wait_for(coords_agree, 20, "coordinators at the map's epoch")
    for cid, s in coords.items():
        is_leader = cid == leader.id
        assert val(s, "narf_coord_id") == cid
        assert val(s, "narf_is_leader") == (1 if is_leader else 0)
        assert val(s, "narf_raft_role",
                   role="leader" if is_leader else "follower") == 1
        assert val(s, "narf_raft_term") == pings[leader.id]["term"]
        assert val(s, "narf_raft_leader_id") == leader.id
        assert val(s, "narf_raft_applied_index") <= \
            val(s, "narf_raft_commit_index") <= val(s, "narf_raft_last_index")
        assert val(s, "narf_nodes", state="up") == 3
        for nid in ids.values():
            assert val(s, "narf_node_state", node=str(nid), state="up") == 1
        ages = series(s, "narf_node_heartbeat_age_seconds", "node")
        if is_leader:
            assert {int(n) for n in ages} == set(ids.values()), ages
            assert all(0 <= a < 60 for a in ages.values()), ages
            assert val(s, "narf_api_requests_total", op="heartbeat") > 0
            assert val(s, "narf_slots_assigned") == NSLOTS
            assert val(s, "narf_slots_under_replicated") == 0
            reach = series(s, "narf_raft_member_reachable", "member")
            assert reach == {"1": 1, "2": 1, "3": 1}, reach
        else:
            assert ages == {}, ages
    assert sum(val(s, "narf_api_requests_total", op="join")
               for s in coords.values()) >= 3
    assert sum(val(s, "narf_leader_decisions_total", decision="node_up")
               for s in coords.values()) >= 1

    # INFO cluster and INFO replication, alone and within INFO.
    with RawConn(n1.port) as c:
        text, f = info_fields(c, "cluster")
        assert text.startswith("# Cluster\r\n") and "# Replication" not in text
        assert f["cluster_enabled"] == "1"
        assert f["cluster_mode"] == "cluster"
        assert f["cluster_state"] == "ok"
        assert int(f["cluster_node_id"]) == n1_id
        assert f["cluster_node_state"] == "up"
        assert int(f["cluster_map_epoch"]) >= m["epoch"]
        assert int(f["cluster_known_nodes"]) == 3
        assert f["cluster_coordinator_leader"] == leader.api
        assert int(f["cluster_slots_primary"]) == \
            sum(1 for p, _, _ in slots if p == n1_id)
        assert f["cluster_lease_valid"] == "1"
        assert int(f["cluster_lease_ms_left"]) > 0
        text, f = info_fields(c, "replication")
        assert text.startswith("# Replication\r\n") and "# Cluster" not in text
        assert "slots_led" in f
        text, _ = info_fields(c)
        for sec in ("# Server", "# Stats", "# Cluster", "# Replication",
                    "# Keyspace"):
            assert sec in text, sec

    # A failover: kill -9 a node; the leader counts it and the slots it
    # led, and every member's map says it is down.
    victim = cl.nodes[2]
    vid = ids[victim.addr]
    vprim = sum(1 for p, _, _ in slots if p == vid)
    fo0 = sum(val(s, "narf_failovers_total") for s in coords.values())
    fs0 = sum(val(s, "narf_failover_slots_total") for s in coords.values())
    victim.kill9()
    last = []

    def failed_over():
        got = [scrape(a)[0] for a in caddrs.values()]
        last[:] = [sum(val(s, "narf_failovers_total") for s in got),
                   sum(val(s, "narf_failover_slots_total") for s in got),
                   [val(s, "narf_node_state", node=str(vid), state="down")
                    for s in got]]
        return last[0] == fo0 + 1 and last[1] == fs0 + vprim and \
            last[2] == [1, 1, 1]
    wait_for(failed_over, 30, "failover counted")
    assert last[0] == fo0 + 1, last

    # JSON logs: every line parses, with the member's and node's ids.
    lines = json_lines(cl.trio[1].log_path, "coord")
    assert lines and all(o["node"] == 1 for o in lines)
    lines = json_lines(n1.log_path, "datanode")
    assert lines[0]["node"] is None  # before it joined
    assert any(o["node"] == n1_id for o in lines)
    assert all(o["node"] in (None, n1_id) for o in lines)


def bad_http_then_ok(addr):
    """Garbage, oversized, truncated, wrong-method, wrong-path and idle
    requests each get their answer (or a close), and a scrape still works
    after each. Returns the number of answered bad requests."""
    bad = 0
    cases = [
        (b"hello there\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 10, 400),
        (b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 9000, 431),
        (b"GET /metrics HTTP/1.1\r\n" +
         b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n", 431),
        (b"GET /" + b"p" * 2000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /metrics HTTP/2.0\r\n\r\n", 505),
        (b"GET /metrics HTTP/1.1\r\nNo colon\r\n\r\n", 400),
    ]
    for data, want in cases:
        rep = raw_http(addr, data)
        assert status_of(rep) == want, (data[:40], rep[:200])
        assert b"Connection: close" in rep
        bad += 1
        scrape(addr)
    for data, want in [
            (b"POST /metrics HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd", 405),
            (b"GET /nope HTTP/1.1\r\n\r\n", 404),
            (b"GET / HTTP/1.0\r\n\r\n", 404)]:
        rep = raw_http(addr, data)
        assert status_of(rep) == want, (data[:40], rep[:200])
    # HEAD: the headers and no body; HTTP/1.0 GET: the metrics.
    rep = raw_http(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n")
    assert status_of(rep) == 200 and rep.endswith(b"\r\n\r\n"), rep[:300]
    rep = raw_http(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n")
    assert status_of(rep) == 200 and b"narf_build_info" in rep
    # Truncated heads, then the client goes away: nothing to answer.
    for cut in (b"GET /metr", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"):
        assert raw_http(addr, cut) == b""
        scrape(addr)
    return bad


def crowd_and_idle(addr):
    """40 idle connections (over the limit of 32): the surplus is closed
    at once, a scrape still gets through once they are gone, and an idle
    one is closed at its deadline."""
    host, port = addr.rsplit(":", 1)
    socks = []
    try:
        for _ in range(40):
            socks.append(socket.create_connection((host, int(port)), 5))
        # The surplus is closed at once: wait for those closes on all
        # sockets together (one 0.5 s wait per open one took 16 s).
        closed, open_ = set(), list(socks)
        deadline = time.monotonic() + 5
        while len(closed) < 40 - 32 and time.monotonic() < deadline:
            ready, _, _ = select.select(
                open_, [], [], max(0.0, deadline - time.monotonic()))
            for s in ready:
                try:
                    gone = s.recv(1) == b""
                except ConnectionResetError:
                    gone = True
                if gone:
                    closed.add(s)
                    open_.remove(s)
        assert len(closed) >= 40 - 32, len(closed)
    finally:
        for s in socks:
            s.close()
    s = socket.create_connection((host, int(port)), 5)
    try:
        s.settimeout(20)
        assert s.recv(1) == b""  # closed by the server at its deadline
    finally:
        s.close()
    samples = wait_for(lambda: scrape(addr)[0], 10, "scrape")
    assert val(samples, "narf_http_rejected_connections_total") >= 8
    assert val(samples, "narf_http_timeouts_total") >= 1
    return samples


def test_bad_http_datanode(standalone):
    """A data node's metrics endpoint survives bad HTTP, and the node keeps
    serving RESP throughout."""
    maddr = "%s:%d" % (HOST, PORTS.take(1)[0])
    dn = standalone("--metrics", maddr)
    bad = bad_http_then_ok(maddr)
    samples = crowd_and_idle(maddr)
    assert val(samples, "narf_http_bad_requests_total") >= bad
    with RawConn(dn.port) as c:
        assert c.cmd("PING") == "PONG"
        assert c.cmd("SET", "a", "1") == "OK"
    samples = scrape(maddr)[0]
    assert val(samples, "narf_commands_total", command="set") == 1
    assert val(samples, "narf_keys") == 1
    assert dn.proc.poll() is None


def test_bad_http_coordinator(make_trio):
    """A coordinator's metrics endpoint survives bad HTTP and the member
    keeps answering its API."""
    maddr = "%s:%d" % (HOST, PORTS.take(1)[0])
    trio = make_trio(coord_args={2: ["--metrics", maddr]})
    wait_leader(trio)
    bad_http_then_ok(maddr)
    crowd_and_idle(maddr)
    assert trio[2].ping()["ok"]
    samples = scrape(maddr)[0]
    assert val(samples, "narf_coord_id") == 2
    assert val(samples, "narf_api_requests_total", op="ping") >= 1


def test_standalone_json_log_and_info(standalone, tmp_path):
    """--log-format json on a standalone node: every line is a JSON object
    (node null: no cluster id); INFO cluster says standalone."""
    dn = standalone("--log-format", "json", "--log-level", "debug")
    with RawConn(dn.port) as c:
        text, f = info_fields(c, "cluster")
        assert f["cluster_enabled"] == "1"
        assert f["cluster_mode"] == "standalone"
        assert f["cluster_slots_primary"] == str(NSLOTS)
        # garbage makes the node log a client error, with its text
        c.send(b"*1\r\n$x\"\\\r\n")
    assert dn.stop() == 0
    lines = json_lines(dn.log_path, "datanode")
    assert len(lines) >= 2
    assert all(o["node"] is None for o in lines)
    assert lines[-1]["msg"] == "stopped"


BAD_FLAGS = [
    (["--metrics", "nowhere"], "--metrics"),
    (["--metrics", "127.0.0.1"], "--metrics"),
    (["--metrics", "127.0.0.1:0"], "--metrics"),
    (["--metrics", "127.0.0.1:99999"], "--metrics"),
    (["--metrics"], "--metrics"),
    (["--log-format", "xml"], "--log-format"),
    (["--log-format", ""], "--log-format"),
    (["--log-level", "loud"], "--log-level"),
]


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=10,
                          stdin=subprocess.DEVNULL)


def test_bad_flag_values(build_dir, tmp_path):
    """Bad values of --metrics, --log-format and --log-level exit 2 with a
    one-line message naming the flag, on every program that has them; each
    --help documents them."""
    dn = os.path.join(build_dir, "datanode", "datanode")
    coord = os.path.join(build_dir, "coordinator", "coord")
    cli = os.path.join(build_dir, "cli", "cachecli")
    p = PORTS.take(2)
    coord_base = [coord, "--id", "1", "--data-dir", str(tmp_path / "c1"),
                  "--members", "1=%s:%d/%s:%d" % (HOST, p[0], HOST, p[1])]
    for args, name in BAD_FLAGS:
        for argv in ([dn, "--standalone"] + args, coord_base + args):
            out = run(argv)
            assert out.returncode == 2, (argv, out.returncode, out.stderr)
            assert name in out.stderr, (argv, out.stderr)
            assert len(out.stderr.strip().splitlines()) <= 2, out.stderr
    out = run([cli, "--log-level", "loud", "status"])
    assert out.returncode == 2 and "--log-level" in out.stderr, out.stderr
    for binary, flags in ((dn, ("--metrics", "--log-format", "--log-level")),
                          (coord, ("--metrics", "--log-format",
                                   "--log-level")),
                          (cli, ("--log-level",))):
        out = run([binary, "--help"])
        assert out.returncode == 0
        for flag in flags:
            assert flag in out.stdout, (binary, flag)
    assert not os.path.exists(tmp_path / "c1")

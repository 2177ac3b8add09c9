"""cachecli against a real cluster (docs/cachecli.md; DESIGN.md, "The
command-line contract").

Real `coord` and `datanode --join` processes on 127.0.0.1 (conftest's
make_trio and make_cluster), and the real build/cli/cachecli run as a
subprocess: every command and its exit codes (0 ok, 1 missing key or an
error answer, 2 usage, 3 unreachable), keys/scan across the cluster, the
status dashboard and its JSON while a node is down and while slots move, a
set issued right after its primary is killed, --watch, type and get of each
collection type (also against a redis-server the map routes to), and the
shell both through a pseudo-terminal (libedit, completion, history) and
from a pipe.

Every wait is bounded in time and count; nothing asserts how fast anything
is.
"""
import json
import os
import pty
import select
import signal
import subprocess
import time

import pytest
import redis

import cluster_harness as ch
from dn_fixtures import make_server  # noqa: F401
from narf_harness import (expand_slots, unused_addr, wait_for, wait_leader,
                          wait_map)

READY_WAIT = 60.0
RUN_TIMEOUT = 30.0     # one cachecli run (its own --timeout is shorter)
FAILOVER_WAIT = 20.0
SYNC_RATE = "256kb"    # slows the fill of new copies so moves can be seen
NPRELOAD = 20000       # keys of PRELOAD_VALUE bytes: something to move
PRELOAD_VALUE = 500


def cli_path(build):
    return os.path.join(build, "cli", "cachecli")


class Cli:
    """Runs cachecli with CACHE_COORD set to a trio's API addresses."""

    def __init__(self, build, apis, home=None):
        self.path = cli_path(build)
        self.env = dict(os.environ, CACHE_COORD=",".join(apis), NO_COLOR="1")
        if home is not None:
            self.env["HOME"] = str(home)

    def run(self, *args, input=None, text=True, timeout=RUN_TIMEOUT):
        return subprocess.run([self.path] + list(args), env=self.env,
                              input=input, capture_output=True, text=text,
                              timeout=timeout)

    def ok(self, *args, **kw):
        r = self.run(*args, **kw)
        assert r.returncode == 0, r
        return r.stdout

    def status_json(self, *args):
        return json.loads(self.ok("status", "--json", *args))

    def popen(self, *args, **kw):
        return subprocess.Popen([self.path] + list(args), env=self.env, **kw)


def one_error_line(r):
    """Errors are one line on stderr."""
    lines = r.stderr.strip().splitlines()
    assert len(lines) >= 1, r
    assert lines[0].startswith("cachecli"), r
    return lines[0]


def primary_of(c, m, key):
    """The DataNode leading key's slot in map m."""
    slot = ch.key_slot(key)
    prim = ch.expand_slots(m)[slot][0]
    return c.node_of(m, prim)


# ---------------------------------------------------------------------------
# Commands and exit codes


def test_data_commands_and_exit_codes(make_cluster, build_dir, tmp_path):
    """get/set/del/ttl/keys/scan/nodes/leave do what docs/cachecli.md says
    against a 3-node cluster, with the contract's exit codes, and keys/scan
    list every matching key exactly once although nodes also hold replica
    copies."""
    c = make_cluster()
    cli = Cli(build_dir, c.trio.apis)

    assert cli.ok("set", "greeting", "hello world") == "OK\n"
    assert cli.ok("get", "greeting") == "hello world\n"
    assert cli.ok("ttl", "greeting") == "-1\n"
    assert cli.ok("set", "brief", "x", "--ttl", "100") == "OK\n"
    assert 95 <= int(cli.ok("ttl", "brief")) <= 100
    # Missing keys: nothing on stdout, exit 1.
    for cmd in ("get", "ttl"):
        r = cli.run(cmd, "no-such-key")
        assert (r.returncode, r.stdout) == (1, ""), r

    # --nx / --xx: exit 1 and "not set" when the condition fails.
    r = cli.run("set", "greeting", "other", "--nx")
    assert r.returncode == 1 and "not set" in one_error_line(r), r
    assert cli.ok("get", "greeting") == "hello world\n"
    r = cli.run("set", "absent", "v", "--xx")
    assert r.returncode == 1 and "not set" in r.stderr, r
    assert cli.run("get", "absent").returncode == 1
    assert cli.ok("set", "fresh", "v1", "--nx") == "OK\n"
    assert cli.ok("set", "fresh", "v2", "--xx") == "OK\n"
    assert cli.ok("get", "fresh") == "v2\n"

    # Values from stdin are stored as they are, binary included.
    blob = b"line one\nline two\x00\xff end\n"
    r = cli.run("set", "blob", "-", input=blob, text=False)
    assert (r.returncode, r.stdout) == (0, b"OK\n"), r
    r = cli.run("get", "blob", text=False)
    assert (r.returncode, r.stdout) == (0, blob + b"\n"), r
    # An empty stdin is an empty value; a value starting with '-' after --.
    assert cli.ok("set", "empty", "-", input="") == "OK\n"
    assert cli.ok("get", "empty") == "\n"
    assert cli.ok("set", "temperature", "--", "-5") == "OK\n"
    assert cli.ok("get", "temperature") == "-5\n"

    # del of several keys on different nodes counts those that existed.
    keys = ["del:%d" % i for i in range(12)]
    for k in keys[:9]:
        cli.ok("set", k, "v")
    assert len({primary_of(c, c.map(), k).name for k in keys}) > 1
    assert cli.ok("del", *keys) == "9\n"
    assert cli.ok("del", *keys) == "0\n"
    r = cli.run("get", keys[0])
    assert r.returncode == 1, r

    # keys / scan against what was written straight to the nodes.
    users = ["user:%d" % i for i in range(500)]
    ch.preload(c.seeds(), users)
    got = cli.ok("keys", "user:*").splitlines()
    assert got == sorted(users), (len(got), got[:5])
    got = cli.ok("scan", "user:*").splitlines()
    assert len(got) == len(users) and sorted(got) == sorted(users)
    every = set(cli.ok("scan").splitlines())
    assert set(users) | {"greeting", "brief", "blob", "fresh"} <= every
    assert cli.ok("keys", "user:1?").splitlines() == \
        sorted("user:%d" % i for i in range(10, 20))
    assert cli.ok("keys", "nothing-matches-*") == ""

    # nodes: the map's data nodes, as a table and as JSON.
    table = cli.ok("nodes").splitlines()
    assert table[0].split()[:3] == ["ID", "ADDR", "STATE"]
    assert len(table) == 4 and all(" up " in line for line in table[1:])
    for d in c.nodes:
        assert any(d.addr in line for line in table[1:]), table
    nodes = json.loads(cli.ok("nodes", "--json"))
    assert sorted(n["addr"] for n in nodes) == sorted(c.seeds())
    assert sum(n["primaries"] for n in nodes) == ch.NSLOTS
    assert sum(n["replicas"] for n in nodes) == ch.NSLOTS

    # leave: an unknown node is the cluster saying no (exit 1).
    r = cli.run("leave", "999")
    assert r.returncode == 1 and "unknown_node" in one_error_line(r), r

    # The same cluster, asked through one coordinator only, and a
    # member list with a dead address first: the leader is found.
    dead = unused_addr()
    assert cli.ok("--coord", "%s,%s" % (dead, c.trio.apis[2]), "get",
                  "greeting") == "hello world\n"


def test_usage_errors_exit_2(build_dir):
    """Bad flags, missing arguments and unknown commands exit 2 with one
    line that says what is wrong, before anything is sent; --help documents
    every command and flag and exits 0."""
    cli = Cli(build_dir, [unused_addr()])
    cases = [
        ((), "missing command"),
        (("frob",), "unknown command"),
        (("get",), "usage"),
        (("get", "a", "b"), "usage"),
        (("set", "k"), "usage"),
        (("set", "k", "v", "--ttl", "0"), "--ttl"),
        (("set", "k", "v", "--ttl", "abc"), "--ttl"),
        (("set", "k", "v", "--nx", "--xx"), "exclude"),
        (("get", "k", "--ttl", "5"), "does not take --ttl"),
        (("get", "k", "--json"), "does not take --json"),
        (("nodes", "--watch"), "does not take --watch"),
        (("del",), "usage"),
        (("ttl",), "usage"),
        (("type",), "usage"),
        (("type", "a", "b"), "usage"),
        (("type", "k", "--nx"), "does not take --nx"),
        (("keys",), "usage"),
        (("scan", "a", "b"), "usage"),
        (("status", "extra"), "no arguments"),
        (("shell", "extra"), "no arguments"),
        (("nodes", "extra"), "usage"),
        (("leave",), "usage"),
        (("leave", "abc"), "bad node id"),
        (("leave", "0"), "bad node id"),
        (("--bogus", "status"), "unknown option '--bogus'"),
        (("-x", "status"), "unknown option '-x'"),
        (("--json=1", "status"), "takes no value"),
        (("status", "--coord"), "needs a value"),
        (("--timeout", "soon", "status"), "--timeout"),
        (("--timeout", "0", "status"), "--timeout"),
        (("--coord", "nonsense", "status"), "host:port"),
        (("--coord", "127.0.0.1:1,", "status"), "host:port"),
        (("--coord", "127.0.0.1:99999", "status"), "host:port"),
    ]
    for args, words in cases:
        r = cli.run(*args)
        assert r.returncode == 2, (args, r)
        assert r.stdout == "", (args, r)
        assert words in r.stderr.splitlines()[0], (args, r.stderr)
    r = cli.run("--help")
    assert r.returncode == 0 and r.stderr == "", r
    for word in ("get KEY", "set KEY VALUE", "--ttl", "--nx", "--xx",
                 "del KEY...", "ttl KEY", "type KEY", "keys PATTERN",
                 "scan [PATTERN]", "field<TAB>value", "member<TAB>score",
                 "shell", "status", "--json", "--watch", "nodes", "leave ID",
                 "--coord", "--timeout", "CACHE_COORD", "NO_COLOR", "HOME",
                 "Exit status"):
        assert word in r.stdout, word
    # A CACHE_COORD typo is a usage error too, named as such.
    env = dict(cli.env, CACHE_COORD="localhost")
    r = subprocess.run([cli.path, "get", "k"], env=env, capture_output=True,
                       text=True, timeout=RUN_TIMEOUT)
    assert r.returncode == 2 and "CACHE_COORD" in r.stderr, r


def test_unreachable_cluster_exits_3(build_dir):
    """With no coordinator listening, every command that needs the cluster
    exits 3 within its --timeout, with one line on stderr."""
    cli = Cli(build_dir, [unused_addr(), unused_addr()])
    for args in (("get", "k"), ("set", "k", "v"), ("del", "k"), ("ttl", "k"),
                 ("type", "k"), ("keys", "*"), ("scan",), ("nodes",),
                 ("leave", "1"), ("status",), ("status", "--json")):
        r = cli.run("--timeout", "500ms", *args)
        assert r.returncode == 3, (args, r)
        line = one_error_line(r)
        assert "coordinator" in line and "cluster.sh" in line, (args, line)
        assert len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        if args == ("status",):
            # the dashboard still says what it could learn
            assert "no leader answered" in r.stdout, r
            assert r.stdout.count(" no") >= 2, r.stdout
        else:
            assert r.stdout == "", (args, r)


def test_status_without_a_majority(make_trio, build_dir):
    """A trio with no data node: status says so; with two coordinators
    killed it draws the survivor's answer and the missing majority, and
    exits 3."""
    trio = make_trio()
    leader = wait_leader(trio)[0]
    cli = Cli(build_dir, trio.apis)
    def status_ok():
        r = cli.run("status", "--json")
        return json.loads(r.stdout) if r.returncode == 0 else None

    st = wait_for(status_ok, 20.0, 0.2, "status answers")
    assert st["nodes"] == [] and st["leader"] in (1, 2, 3), st
    assert all(co["reachable"] for co in st["coordinators"]), st
    roles = sorted(co["role"] for co in st["coordinators"])
    assert roles == ["follower", "follower", "leader"], st
    out = cli.ok("status")
    assert "(none has joined yet)" in out and "no data node is up" in out
    # The leader and one follower: the survivor cannot be elected.
    leader.kill9()
    next(co for co in trio.coords if co is not leader).kill9()
    r = cli.run("--timeout", "1s", "status")
    assert r.returncode == 3, r
    assert "no leader answered" in r.stdout, r
    assert "only 1 of 3 coordinators answer" in r.stdout, r
    assert r.stdout.count("connection refused") == 2, r.stdout
    one_error_line(r)
    r = cli.run("--timeout", "1s", "get", "k")
    assert r.returncode == 3 and r.stdout == "", r


# ---------------------------------------------------------------------------
# Failover


@pytest.mark.parametrize("redirect", [False, True],
                         ids=["forwarding", "redirecting"])
def test_set_straddles_failover_and_status_while_down(make_cluster,
                                                      build_dir, redirect):
    """kill -9 of the primary of a key's slot, then at once `cachecli set`
    of that key: it succeeds once a replica is promoted, the value is read
    back, and status (human and JSON) shows the node down, how long, and
    the slots that failed over. With --redirect nodes, the survivors answer
    -MOVED (to the dead primary, until the map changes) instead of
    forwarding, and cachecli follows them."""
    c = make_cluster(node_args={i: ["--redirect"] for i in range(3)}
                     if redirect else None)
    cli = Cli(build_dir, c.trio.apis)
    key = "straddle"
    assert cli.ok("set", key, "before") == "OK\n"
    m = c.map()
    victim = primary_of(c, m, key)
    victim_id = c.current_id(m, victim.addr)
    victim.kill9()
    r = cli.run("--timeout", "15s", "set", key, "after")
    assert (r.returncode, r.stdout) == (0, "OK\n"), r
    assert cli.ok("get", key) == "after\n"
    if not redirect:
        for d in c.nodes:
            if d is not victim:
                assert redis.Redis(host="127.0.0.1",
                                   port=d.port).get(key) == b"after"

    def victim_down():
        st = cli.status_json()
        n = next(n for n in st["nodes"] if n["id"] == victim_id)
        return st if n["state"] == "down" else None

    st = wait_for(victim_down, FAILOVER_WAIT, 0.2, "victim marked down")
    # The contract's fields (DESIGN.md), and what cachecli adds.
    for f in ("leader", "term", "epoch", "replication", "coordinators",
              "nodes", "slots"):
        assert f in st, f
    assert st["slots"]["assigned"] == ch.NSLOTS, st["slots"]
    for co in st["coordinators"]:
        assert {"id", "api", "raft", "role", "reachable"} <= set(co), co
        assert co["reachable"] is True, co
    for n in st["nodes"]:
        assert {"id", "addr", "state", "primaries", "replicas", "keys",
                "used_memory"} <= set(n), n
        if n["id"] == victim_id:
            assert n["reachable"] is False, n
            assert n["probe_error"] == "connection refused", n
            assert n["down_primaries"] > 0 and n["down_ms"] >= 0, n
            assert n["primaries"] == 0 and n["replicas"] == 0, n
        else:
            assert n["reachable"] is True and n["state"] == "up", n
            assert n["keys"] >= 0 and n["used_memory"] > 0, n
            assert isinstance(n["ops_per_sec"], int), n
    out = cli.ok("status")
    line = next(ln for ln in out.splitlines()
                if ("node %d " % victim_id) in ln and "down for" in ln)
    assert victim.addr in line and "failed over to their replicas" in line
    row = next(ln for ln in out.splitlines()
               if ln.split()[:2] == [str(victim_id), victim.addr])
    assert " down " in row and "no answer (connection refused)" in row, row


# ---------------------------------------------------------------------------
# Moves


@pytest.mark.plain_only("the moves of test_rebalance.py; it checks what "
                        "status draws")
def test_status_while_moves_run(make_cluster, build_dir):
    """A fourth node joins a loaded cluster whose syncs are slowed: status
    shows the moves in progress (JSON counters, the human progress bar),
    --watch redraws meanwhile, and once balanced status is healthy."""
    c = make_cluster(node_args={i: ["--sync-rate", SYNC_RATE]
                                for i in range(3)})
    cli = Cli(build_dir, c.trio.apis)
    value = "v" * PRELOAD_VALUE
    r0 = redis.Redis(host="127.0.0.1", port=c.nodes[0].port)
    for i in range(0, NPRELOAD, 1000):
        p = r0.pipeline(transaction=False)
        for k in range(i, i + 1000):
            p.set("p:%d" % k, value)
        assert all(p.execute())
    watch = cli.popen("status", "--watch", stdout=subprocess.PIPE,
                      stderr=subprocess.DEVNULL, text=True)
    t_watch = time.monotonic()
    try:
        n4 = ch.DataNode(c.build, c.tmpdir, c.trio.apis, "n4",
                         extra_args=["--sync-rate", SYNC_RATE])
        c.nodes.append(n4)
        n4.start()
        n4.wait_listening()

        def moving_json():
            st = cli.status_json()
            s, rb = st["slots"], st["rebalance"]
            busy = s["moving"] or s["syncing"] or rb["remaining"]
            return st if busy and any(n["addr"] == n4.addr
                                      for n in st["nodes"]) else None

        st = wait_for(moving_json, 30.0, 0.1, "status --json shows moves")
        assert st["rebalance"]["total"] >= st["rebalance"]["remaining"]
        # A move under way is never reported balanced.
        assert st["rebalance"]["balanced"] is False, st["rebalance"]

        def moving_human():
            out = cli.ok("status")
            return out if "Rebalance  [" in out else None

        out = wait_for(moving_human, 30.0, 0.1, "status draws a rebalance")
        bar = next(ln for ln in out.splitlines() if ln.startswith("Rebalance"))
        assert "slots placed" in bar and "%" in bar, bar
        assert "rebalancing:" in out or "under-replicated" in out, out
    finally:
        # long enough for a few frames whatever the moves took
        time.sleep(max(0.1, t_watch + 3.5 - time.monotonic()))
        watch.send_signal(signal.SIGTERM)
        frames, _ = watch.communicate(timeout=10)
    # --watch drew a frame per second all along, with the same dashboard.
    assert frames.count("narf cluster  leader") >= 2, frames[-2000:]
    assert frames.count("every 1s, Ctrl-C to stop") >= 2
    c.wait_ready(READY_WAIT, what="n4 joined and the map rebalanced")
    out = wait_for(lambda: (lambda o: o if "healthy:" in o else None)(
        cli.ok("status")), 30.0, 0.2, "status healthy after the moves")
    assert "Rebalance" not in out
    assert cli.status_json()["rebalance"]["balanced"] is True
    assert sum(1 for ln in out.splitlines() if " up " in ln) == 4, out
    got = cli.ok("keys", "p:1999*").splitlines()
    assert got == sorted(["p:1999"] + ["p:1999%d" % i for i in range(10)
                                       if 19990 + i < NPRELOAD]), got


def test_watch_json_lines(make_cluster, build_dir):
    """status --watch --json prints one whole JSON object per line, one a
    second, until it is stopped; ops/s comes from the previous frame."""
    c = make_cluster(nodes=1)
    cli = Cli(build_dir, c.trio.apis)
    p = cli.popen("status", "--watch", "--json", stdout=subprocess.PIPE,
                  stderr=subprocess.DEVNULL)
    lines = []
    deadline = time.monotonic() + 20
    try:
        while len(lines) < 3 and time.monotonic() < deadline:
            ready, _, _ = select.select([p.stdout], [], [], 0.5)
            if ready:
                line = p.stdout.readline()
                if not line:
                    break
                lines.append(line)
        assert p.poll() is None, "--watch stopped by itself"
    finally:
        p.kill()
        p.wait(timeout=10)
    assert len(lines) == 3, lines
    for line in lines:
        st = json.loads(line)
        assert st["nodes"][0]["state"] == "up", st
        assert isinstance(st["nodes"][0]["ops_per_sec"], int), st


# ---------------------------------------------------------------------------
# Types: type, and get of a hash, set, list or sorted set


def raw_call(c, key, *args):
    """One request for key on its primary, over a plain connection (not
    through cachecli); the reply."""
    r = ch.Router(c.seeds())
    try:
        return r.call(key, *args)[0]
    finally:
        r.close()


def test_type_and_get_of_a_hash(make_cluster, build_dir):
    """type prints TYPE's word (a missing key: none, exit 1); get of a hash
    prints field<TAB>value lines, bytes as stored (a tab or newline inside
    is not escaped: docs/cachecli.md), and get of a string is unchanged;
    both route by the key through a 3-node cluster."""
    c = make_cluster()
    cli = Cli(build_dir, c.trio.apis)

    assert cli.ok("set", "s", "a string") == "OK\n"
    assert cli.ok("type", "s") == "string\n"
    r = cli.run("type", "missing")
    assert (r.returncode, r.stdout, r.stderr) == (1, "none\n", ""), r

    fields = {"f%d" % i: "v%d" % i for i in range(20)}
    args = [x for kv in fields.items() for x in kv]
    hashes = ["h:%d" % i for i in range(8)]  # on more than one node
    assert len({primary_of(c, c.map(), k).name for k in hashes}) > 1
    for h in hashes:
        assert raw_call(c, h, "HSET", h, *args) == len(fields)
        assert cli.ok("type", h) == "hash\n"
        r = cli.run("get", h)
        assert (r.returncode, r.stderr) == (0, ""), r
        got = r.stdout.splitlines()
        assert sorted(got) == sorted("%s\t%s" % kv for kv in fields.items())

    # Bytes as stored: a field with a tab, a value with a newline.
    assert raw_call(c, "odd", "HSET", "odd", "tab\tfield", "two\nlines",
                    "plain", "v") == 2
    r = cli.run("get", "odd", text=False)
    assert r.returncode == 0, r
    a, b = b"tab\tfield\ttwo\nlines\n", b"plain\tv\n"
    assert r.stdout in (a + b, b + a), r.stdout

    # A string is printed as before; a missing key still prints nothing.
    assert cli.ok("get", "s") == "a string\n"
    r = cli.run("get", "missing")
    assert (r.returncode, r.stdout) == (1, ""), r
    # ttl and set work on a key of any type (SET replaces the hash).
    assert cli.ok("ttl", "odd") == "-1\n"
    assert cli.ok("set", "odd", "x", "--xx") == "OK\n"
    assert cli.ok("type", "odd") == "string\n"
    assert cli.ok("get", "odd") == "x\n"

    # The shell: type, and get of a hash, from a pipe.
    r = cli.run("shell", input="type s\ntype h:0\nget h:1\ntype nope\n")
    assert r.returncode == 1, r  # the last command: a missing key
    lines = r.stdout.splitlines()
    assert lines[:2] == ["string", "hash"], lines
    assert sorted(lines[2:-1]) == sorted("%s\t%s" % kv
                                         for kv in fields.items()), lines
    assert lines[-1] == "none", lines


# What each type is written with, and what get prints for it: members in
# the order get prints them, or None when that order is the server's
# (a set's).
COLLECTIONS = {
    "set": ([("SADD", "b", "a\tb", "c")], ["b", "a\tb", "c"], None),
    "list": ([("RPUSH", "b", "c", "tail"), ("LPUSH", "a")],
             None, ["a", "b", "c", "tail"]),
    "zset": ([("ZADD", "2", "two", "1", "one", "3.5", "three\tx")],
             None, ["one\t1", "two\t2", "three\tx\t3.5"]),
}


@pytest.mark.parametrize("kind", sorted(COLLECTIONS))
def test_type_and_get_of_other_collections(make_cluster, build_dir, kind):
    """type and get of a set (one member per line), a list (head to tail)
    and a sorted set (member<TAB>score by score); skipped while the data
    node answers "ERR unknown command" for the type's write."""
    writes, unordered, ordered = COLLECTIONS[kind]
    c = make_cluster(nodes=1)
    cli = Cli(build_dir, c.trio.apis)
    key = "coll:" + kind
    for cmd, *args in writes:
        rep = raw_call(c, key, cmd, key, *args)
        if isinstance(rep, ch.Err) and rep.startswith("ERR unknown command"):
            pytest.skip("the data node has no %s yet: %s" % (cmd, rep))
        assert not isinstance(rep, ch.Err), rep
    assert cli.ok("type", key) == kind + "\n"
    out = cli.ok("get", key)
    assert out.endswith("\n"), out
    if ordered is not None:
        assert out == "".join(x + "\n" for x in ordered), out
    else:
        # split on newlines only: the tab stays in its member
        assert sorted(out[:-1].split("\n")) == sorted(unordered), out
    r = cli.run("shell", input="type %s\nget %s\n" % (key, key))
    assert r.returncode == 0, r
    assert r.stdout == kind + "\n" + out, r


def test_get_of_collections_from_redis(make_trio, fakes, make_server,
                                       build_dir):
    """The same against Redis 7.0 itself, which has every type now: a fake
    data node joins with the address of a redis-server, so the map routes
    every key there. type names each type; get prints a set one member per
    line, a list head to tail, a sorted set member<TAB>score by score, a
    hash field<TAB>value, all bytes as stored; a type get has no read for
    (a stream) is one line and exit 1."""
    redis_srv = make_server("redis")
    trio = make_trio(node_timeout_ms=1000)
    wait_leader(trio)
    fakes(trio, addr="%s:%d" % (ch.HOST, redis_srv.port))
    wait_map(trio, lambda m: all(p for p, _, _ in expand_slots(m)), 30.0,
             "every slot led by the fake node")
    cli = Cli(build_dir, trio.apis)
    with redis_srv.raw() as r:
        r.cmd("RPUSH", "l", "b", "c", "tail")
        r.cmd("LPUSH", "l", "a\nx")
        r.cmd("SADD", "s", "m1", "m\t2", "m3")
        r.cmd("ZADD", "z", "2", "two", "1", "one", "-inf", "low", "3.5",
              "t\tx")
        r.cmd("HSET", "h", "f", "v", "g", "w")
        r.cmd("SET", "str", "plain")
        r.cmd("XADD", "stream", "*", "k", "v")
    for key, word in (("l", "list"), ("s", "set"), ("z", "zset"),
                      ("h", "hash"), ("str", "string"), ("stream", "stream")):
        assert cli.ok("type", key) == word + "\n", key
    r = cli.run("type", "nope")
    assert (r.returncode, r.stdout) == (1, "none\n"), r

    assert cli.ok("get", "l") == "a\nx\nb\nc\ntail\n"
    out = cli.ok("get", "s")
    assert sorted(out[:-1].split("\n")) == sorted(["m1", "m\t2", "m3"]), out
    assert cli.ok("get", "z") == "low\t-inf\none\t1\ntwo\t2\nt\tx\t3.5\n"
    assert cli.ok("get", "h") == "f\tv\ng\tw\n"
    assert cli.ok("get", "str") == "plain\n"
    r = cli.run("get", "stream")
    assert (r.returncode, r.stdout) == (1, ""), r
    assert "holds a stream" in one_error_line(r), r
    r = cli.run("get", "nope")
    assert (r.returncode, r.stdout) == (1, ""), r
    r = cli.run("shell", input="type z\nget l\nget nope\ntype nope\n")
    assert r.stdout == "zset\na\nx\nb\nc\ntail\n(nil)\nnone\n", r
    assert r.returncode == 1, r


def test_get_of_a_hash_too_big_to_read(make_cluster, build_dir):
    """A hash whose HGETALL has more elements than cachecli's reply parser
    takes (1,048,576) is refused with one clear line and exit 1, at once
    (not retried until the timeout); its fields are still there."""
    c = make_cluster(nodes=1)
    cli = Cli(build_dir, c.trio.apis)
    nfields = (1 << 19) + 1  # 2 * nfields elements: one pair too many
    conn = ch.Router(c.seeds())
    try:
        addr = conn.call("big", "PING")[1]
        raw = conn.conn(addr)
        for start in range(0, nfields, 2000):
            args = []
            for i in range(start, min(start + 2000, nfields)):
                args += ["f%d" % i, "v"]
            raw.send(ch.encode("HSET", "big", *args))
        for start in range(0, nfields, 2000):
            assert raw.read(60) == min(2000, nfields - start)
    finally:
        conn.close()
    assert cli.ok("type", "big") == "hash\n"
    t0 = time.monotonic()
    r = cli.run("--timeout", "20s", "get", "big")
    assert (r.returncode, r.stdout) == (1, ""), r
    line = one_error_line(r)
    assert "too big" in line and "1048576 elements" in line, line
    assert "HSCAN" in line, line
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert time.monotonic() - t0 < 15, "retried until the timeout?"
    assert raw_call(c, "big", "HLEN", "big") == nfields


# ---------------------------------------------------------------------------
# The shell


class Pty:
    """A process on a pseudo-terminal: send lines, read up to a marker."""

    def __init__(self, argv, env):
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave,
                                     stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.buf = b""

    def read_until(self, marker, timeout=15.0):
        deadline = time.monotonic() + timeout
        while marker not in self.buf and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    break
                if not data:
                    break
                self.buf += data
        assert marker in self.buf, (marker, self.buf[-500:])
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out.decode("utf-8", "replace")

    def send(self, line):
        os.write(self.master, line.encode() + b"\r")

    def end(self, data, timeout=10.0):
        """Send data (a line or Ctrl-D that ends the session) until the
        process is gone: input that races the line editor's switch of the
        terminal mode at a fresh prompt can be discarded (seen about once
        in twenty runs), and ending twice is harmless. What it prints
        meanwhile is drained, so a full terminal buffer cannot hold its
        exit up."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                os.write(self.master, data)
            except OSError:
                break
            t_end = time.monotonic() + 0.5
            while self.proc.poll() is None and time.monotonic() < t_end:
                ready, _, _ = select.select([self.master], [], [], 0.05)
                if ready:
                    try:
                        self.buf += os.read(self.master, 4096)
                    except OSError:
                        break

    def where(self):
        """Where a process that will not exit is stuck (for the message):
        its state, wait channel and kernel stack."""
        out = []
        for f in ("stat", "wchan", "stack"):
            try:
                with open("/proc/%d/%s" % (self.proc.pid, f)) as fh:
                    out.append("%s: %s" % (f, fh.read().strip()[:600]))
            except OSError as e:
                out.append("%s: %r" % (f, e))
        return "; ".join(out) + "; output tail %r" % self.buf[-300:]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self.master)


PROMPT = b"narf> "


def test_shell_through_a_pty(make_cluster, build_dir, tmp_path):
    """cachecli shell on a pseudo-terminal: a prompt, get/set/del/keys/ttl/
    type and help answered in turn, errors that do not end the session, Tab
    completing the command word only, history saved to
    $HOME/.cachecli_history and recalled (Ctrl-P) in the next session."""
    c = make_cluster()
    cli = Cli(build_dir, c.trio.apis, home=tmp_path)
    env = dict(cli.env, TERM="xterm")
    sh = Pty([cli.path, "shell"], env)
    try:
        banner = sh.read_until(PROMPT)
        assert "map epoch" in banner, banner

        def say(line):
            sh.send(line)
            return sh.read_until(PROMPT)

        assert "OK" in say('set greeting "hello world"')
        assert "hello world" in say("get greeting")
        assert "(nil)" in say("get missing")
        assert "OK" in say("set short 1 --ttl 100")
        out = say("ttl short")
        assert any(95 <= int(w) <= 100 for w in out.split() if w.isdigit())
        assert "(no such key)" in say("ttl missing")
        out = say("keys *")
        assert "greeting" in out and "short" in out
        assert "usage" in say("set onlykey")
        assert "unknown command 'frob'" in say("frob")
        assert "unbalanced quotes" in say('set x "open')
        assert "get KEY" in say("help")
        out = say("del greeting short missing")
        assert "2" in out.split(), out
        assert "(nil)" in say("GET greeting")
        assert "OK" in say('set greeting "hello world"')
        assert "string" in say("type greeting")
        assert "none" in say("type greeting-not")
        # Tab completes the command word ("ty" -> "type ") and nothing
        # after it: "get qu<Tab>" stays "get qu" (not "get quit", nor a
        # file name), so it reads the missing key "qu".
        sh.send("ty\tgreeting")
        out = sh.read_until(PROMPT)
        assert "string" in out and "unknown" not in out, out
        assert "OK" in say("set quit completed-wrongly")
        sh.send("get qu\t")
        out = sh.read_until(PROMPT)
        assert "(nil)" in out and "completed-wrongly" not in out, out
        sh.send("g\t\tgreeting")
        out = sh.read_until(PROMPT)
        assert "hello world" in out, out
        sh.end(b"quit\r")
        assert sh.proc.poll() is not None, sh.where()
        assert sh.proc.wait(timeout=10) == 0
    finally:
        sh.close()
    hist = (tmp_path / ".cachecli_history").read_bytes()
    assert b"greeting" in hist and b"frob" in hist, hist
    assert oct((tmp_path / ".cachecli_history").stat().st_mode & 0o777) == \
        "0o600"

    # A new session recalls the last session's lines: Ctrl-P twice gives
    # "GET greeting" (the one before "quit"); it runs again.
    assert cli.ok("set", "greeting", "back again") == "OK\n"
    sh = Pty([cli.path, "shell"], env)
    try:
        sh.read_until(PROMPT)
        sh.send("\x10\x10")
        assert "back again" in sh.read_until(PROMPT)
        # Ctrl-D ends the session. A Ctrl-D that races libedit's switch
        # to raw mode can land in the line as a literal byte, and every
        # later Ctrl-D then only beeps (2 runs in 20 of this test as it
        # was before Tab completion): Ctrl-U empties the line first.
        sh.end(b"\x15\x04")
        assert sh.proc.poll() is not None, sh.where()
        assert sh.proc.wait(timeout=10) in (0, 1)
    finally:
        sh.close()


def test_shell_from_a_pipe(make_cluster, build_dir, tmp_path):
    """Without a terminal the shell reads commands from stdin, prints only
    the answers (no prompt, no history file) and exits with the status of
    its last command."""
    c = make_cluster(nodes=1)
    cli = Cli(build_dir, c.trio.apis, home=tmp_path)
    script = "\n".join([
        'set "a key" "a value"',
        "get 'a key'",
        "get nope",
        "set n 1 --nx",
        "set n 2 --nx",
        "del n 'a key'",
        "keys *",
        "help",
        "bogus",
        "get nope",
    ]) + "\n"
    r = cli.run("shell", input=script)
    assert r.returncode == 1, r
    lines = r.stdout.splitlines()
    assert lines[:6] == ["OK", "a value", "(nil)", "OK", "(not set)", "2"], \
        lines
    assert lines[6] == "(empty)", lines
    assert lines[-1] == "(nil)", lines
    assert "unknown command 'bogus'" in r.stderr, r
    assert not (tmp_path / ".cachecli_history").exists()
    r = cli.run("shell", input="set k v\nquit\nget k\n")
    assert (r.returncode, r.stdout) == (0, "OK\n"), r
    # An over-long line is refused and the session goes on.
    r = cli.run("shell", input="get " + "x" * 70000 + "\nget k\n")
    assert (r.returncode, r.stdout) == (0, "v\n"), r
    assert "too long" in r.stderr, r


def test_shell_follows_moved_after_a_rebalance(make_cluster, build_dir):
    """A shell session keeps its map; when a node joins and primaries move
    under it, redirecting nodes (--redirect) answer -MOVED for the slots
    they gave away, and the session follows them: every key still reads
    back."""
    c = make_cluster(node_args={i: ["--redirect"] for i in range(3)})
    cli = Cli(build_dir, c.trio.apis)
    sh = cli.popen("shell", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, text=True, bufsize=1)
    keys = ["moved:%d" % i for i in range(64)]
    try:
        for k in keys:
            sh.stdin.write("set %s v-%s\n" % (k, k))
        sh.stdin.flush()
        for k in keys:
            assert sh.stdout.readline() == "OK\n"
        n4 = ch.DataNode(c.build, c.tmpdir, c.trio.apis, "n4",
                         extra_args=["--redirect"])
        c.nodes.append(n4)
        n4.start()
        n4.wait_listening()
        m = c.wait_ready(READY_WAIT, what="n4 joined and took primaries")
        moved = [k for k in keys if primary_of(c, m, k) is n4]
        assert moved, "no key moved to n4"
        for k in keys:
            sh.stdin.write("get %s\n" % k)
        sh.stdin.write("quit\n")
        sh.stdin.flush()
        for k in keys:
            assert sh.stdout.readline() == "v-%s\n" % k
        assert sh.wait(timeout=RUN_TIMEOUT) == 0
    finally:
        if sh.poll() is None:
            sh.kill()
        sh.wait(timeout=10)

"""Data nodes joining a coordinator trio (the first part of the cluster
issue): registration, heartbeats through a leader kill, routing by the map.

Real `coord` and `datanode --join` processes on 127.0.0.1; cluster-aware
clients (redis-py's RedisCluster, redis-cli -c) route by CLUSTER SLOTS and
-MOVED, as they do against Redis Cluster.
"""
import os
import random
import signal
import socket
import subprocess
import time

import pytest
import redis
from redis.cluster import RedisCluster

from narf_harness import (HOST, PORTS, leader_map, wait_for, wait_leader,
                          call_leader, with_secret)


class DataNode:
    """A `datanode --join` process with its log in the test's tmp dir."""

    def __init__(self, build, tmpdir, coords, name):
        self.port = PORTS.take(1)[0]
        self.addr = "%s:%d" % (HOST, self.port)
        self.log_path = os.path.join(str(tmpdir), name + ".log")
        self.argv = [os.path.join(build, "datanode", "datanode"),
                     "--port", str(self.port), "--join", ",".join(coords),
                     "--on-stop", "drain"] + with_secret([])
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                return None
        return self.proc.returncode if self.proc else None

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


@pytest.fixture
def cluster(make_trio, build_dir, tmp_path):
    """A trio (node timeout 1000 ms) and three data nodes joined to it."""
    trio = make_trio(node_timeout_ms=1000)
    wait_leader(trio)
    nodes = [DataNode(build_dir, tmp_path, trio.apis, "n%d" % i)
             for i in (1, 2, 3)]
    for n in nodes:
        n.start()
    yield trio, nodes
    codes = [n.stop() for n in nodes]
    for n in nodes:
        text = n.log_text()
        assert "ERROR: AddressSanitizer" not in text, text[-3000:]
        assert "runtime error:" not in text, text[-3000:]
    assert codes == [0, 0, 0], [n.log_text()[-2000:] for n in nodes]


def settled(trio):
    """Nothing moving, syncing or left to rebalance (status)."""
    st = call_leader(trio, {"op": "status"})["status"]
    return (st["slots"]["moving"] == 0 and st["slots"]["syncing"] == 0
            and st["rebalance"]["remaining"] == 0)


def all_up_and_assigned(trio, addrs):
    m = leader_map(trio)
    up = {n["addr"] for n in m["nodes"] if n["state"] == "up"}
    if not set(addrs) <= up:
        return None
    if any(r["primary"] == 0 for r in m["slots"]):
        return None
    owners = {r["primary"] for r in m["slots"]}
    return m if len(owners) == len(addrs) else None


def change_arrives_as_deltas(trio, nodes, moves_list):
    """A change (one settings entry per value of moves_list) reaches every
    node as deltas in heartbeat replies, with no whole map fetched and
    the map digests equal (docs/protocol.md, "Map deltas")."""
    def map_info():
        return [redis.Redis(host=HOST, port=n.port).info("cluster")
                for n in nodes]
    before = map_info()
    for moves in moves_list:
        rep = call_leader(trio, {"op": "settings", "moves": moves})
        assert rep["ok"], rep
    epoch = leader_map(trio)["epoch"]
    wait_for(lambda: all(i["cluster_map_epoch"] == epoch
                         for i in map_info()), 10.0, 0.05,
             "every node at epoch %d" % epoch)
    for b, a in zip(before, map_info()):
        assert (a["map_deltas_applied"] >=
                b["map_deltas_applied"] + len(moves_list)), a
        assert a["map_full_installs"] == b["map_full_installs"], (b, a)
        assert a["map_digest_mismatches"] == 0, a


def test_nodes_join_and_clients_route_by_the_map(cluster):
    """Three `datanode --join` register and become up with every slot
    assigned across them, and a cluster client's keys land on their owners."""
    trio, nodes = cluster
    m = wait_for(lambda: all_up_and_assigned(trio, [n.addr for n in nodes]),
                 20.0, 0.1, "three nodes up with every slot")
    assert len(m["nodes"]) == 3
    # The placement settles in waves; copies counted mid-move are short.
    wait_for(lambda: settled(trio), 30.0, 0.1, "placement settled")
    # Give every node time to fetch the final map before routing by it.
    time.sleep(0.5)
    rc = RedisCluster(host=HOST, port=nodes[0].port)
    for i in range(300):
        rc.set("key:%d" % i, "v%d" % i)
    assert all(rc.get("key:%d" % i) == b"v%d" % i for i in range(300))
    # Two copies of every key (replication 2, ack all: a reply means the
    # replica has the write too).
    sizes = [redis.Redis(host=HOST, port=n.port).dbsize() for n in nodes]
    assert sum(sizes) == 600 and min(sizes) > 0, sizes
    rc.close()
    change_arrives_as_deltas(trio, nodes, (77, 78))


def test_plain_client_is_proxied_and_gets_crossslot(cluster):
    """A request for another node's slot is forwarded to the owner and the
    reply relayed (a plain client sees the whole cache); MSET/MGET/DEL over
    several nodes' keys are split and merged; MSETNX across slots answers
    -CROSSSLOT."""
    trio, nodes = cluster
    m = wait_for(lambda: all_up_and_assigned(trio, [n.addr for n in nodes]),
                 20.0, 0.1, "three nodes up with every slot")
    time.sleep(0.5)
    by_id = {n["id"]: n["addr"] for n in m["nodes"]}
    owner_of_foo = None
    for r in m["slots"]:
        if r["from"] <= 12182 <= r["to"]:
            owner_of_foo = by_id[r["primary"]]
    other = next(n for n in nodes if n.addr != owner_of_foo)
    owner = next(n for n in nodes if n.addr == owner_of_foo)
    c = redis.Redis(host=HOST, port=other.port)
    assert c.set("foo", "bar") is True
    assert c.get("foo") == b"bar"
    assert redis.Redis(host=HOST, port=owner.port).get("foo") == b"bar"
    # MSET/MGET/DEL across slots of several nodes are split and merged;
    # other multi-key commands across slots are refused as Redis does.
    assert c.mset({"a": 1, "b": 2, "foo": 3}) is True
    assert c.mget("a", "nope", "foo", "b") == [b"1", None, b"3", b"2"]
    assert c.delete("a", "b", "nope") == 2
    with pytest.raises(redis.ResponseError) as e:
        c.msetnx({"a": 1, "b": 2})
    assert "CROSSSLOT" in str(e.value)
    slots = c.execute_command("CLUSTER", "SLOTS")
    assert sum(s[1] - s[0] + 1 for s in slots) == 16384


def test_plain_pipeline_through_one_node_keeps_request_order(cluster):
    """A plain client pipelining through one node: requests for every
    node's slots (forwarded several at a time), split MGETs and local ones
    are answered in request order, and each key reads its latest write."""
    trio, nodes = cluster
    wait_for(lambda: all_up_and_assigned(trio, [n.addr for n in nodes]),
             20.0, 0.1, "three nodes up with every slot")
    wait_for(lambda: settled(trio), 30.0, 0.1, "placement settled")
    time.sleep(0.5)
    c = redis.Redis(host=HOST, port=nodes[0].port)
    rnd = random.Random(7)
    model, counters = {}, {}
    for _ in range(3):
        p = c.pipeline(transaction=False)
        ops = []
        for _ in range(5000):
            k = "po:%d" % rnd.randrange(2000)
            x = rnd.random()
            if x < 0.3:
                v = "%d" % rnd.randrange(10 ** 9)
                p.set(k, v)
                ops.append(("set", k, v))
            elif x < 0.6:
                p.get(k)
                ops.append(("get", k, None))
            elif x < 0.7:
                k2 = "po:%d" % rnd.randrange(2000)
                p.mget(k, k2)
                ops.append(("mget", k, k2))
            else:
                ctr = "pc:%d" % rnd.randrange(30)
                p.incr(ctr)
                ops.append(("incr", ctr, None))
        res = p.execute(raise_on_error=False)
        assert len(res) == len(ops)
        for (op, k, v), got in zip(ops, res):
            if op == "set":
                assert got is True, (op, k, got)
                model[k] = v.encode()
            elif op == "get":
                assert got == model.get(k), (op, k, got)
            elif op == "mget":
                assert got == [model.get(k), model.get(v)], (op, k, got)
            else:
                assert got == counters.get(k, 0) + 1, (op, k, got)
                counters[k] = got
    # Most of those keys live on the other two nodes.
    sizes = [redis.Redis(host=HOST, port=n.port).dbsize() for n in nodes]
    assert min(sizes) > 0, sizes
    # A forwarded GET and a QUIT in one packet: the GET's reply comes
    # before +OK and the close (the close waits for forwarded replies).
    owners = {}
    for lo, hi, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):
        for slot in range(lo, hi + 1):
            owners[slot] = primary[1]
    key = next(k for k in model
               if owners[c.execute_command("CLUSTER", "KEYSLOT", k)] !=
               nodes[0].port)
    with socket.create_connection((HOST, nodes[0].port), timeout=5) as so:
        so.sendall(b"GET %s\r\nQUIT\r\n" % key.encode())
        got = b""
        while True:
            data = so.recv(4096)
            if not data:
                break
            got += data
    want = model[key]
    assert got == b"$%d\r\n%s\r\n+OK\r\n" % (len(want), want), got


def test_nodes_stay_up_through_a_leader_kill(cluster):
    """Killing the coordinator leader neither marks a data node down nor
    stops it from serving: heartbeats find the new leader."""
    trio, nodes = cluster
    wait_for(lambda: all_up_and_assigned(trio, [n.addr for n in nodes]),
             20.0, 0.1, "three nodes up with every slot")
    # A new cluster places its slots in waves: the placement must have
    # settled first, or the new leader goes on with it and slots move.
    wait_for(lambda: settled(trio), 30.0, 0.1, "placement settled")
    before = leader_map(trio)
    leader, _ = wait_leader(trio)
    leader.kill9()
    live = [c for c in (trio[1], trio[2], trio[3]) if c is not leader]
    wait_leader(trio, members=live)
    time.sleep(2.5)  # more than two node timeouts
    after = call_leader(trio, {"op": "map"})["map"]
    assert all(n["state"] == "up" for n in after["nodes"]), after["nodes"]
    assert after["slots"] == before["slots"]
    rc = RedisCluster(host=HOST, port=nodes[1].port)
    rc.set("after-kill", "ok")
    assert rc.get("after-kill") == b"ok"
    rc.close()
    # The new leader filled its delta ring as a follower: it sends deltas
    # at once.
    change_arrives_as_deltas(trio, nodes, (55,))


def test_cachecli_data_commands(cluster, build_dir):
    """cachecli set/get/del/ttl reach the key's node through the map, with
    the exit codes of the command-line contract: a missing key exits 1, a
    usage error 2, an unreachable cluster 3."""
    trio, nodes = cluster
    wait_for(lambda: all_up_and_assigned(trio, [n.addr for n in nodes]),
             20.0, 0.1, "three nodes up with every slot")
    time.sleep(0.5)
    cli = os.path.join(build_dir, "cli", "cachecli")
    env = dict(os.environ, CACHE_COORD=",".join(trio.apis), NO_COLOR="1")

    def run(*args):
        return subprocess.run([cli] + list(args), env=env,
                              capture_output=True, text=True, timeout=20)

    r = run("set", "greeting", "hello world")
    assert (r.returncode, r.stdout) == (0, "OK\n"), r
    r = run("get", "greeting")
    assert (r.returncode, r.stdout) == (0, "hello world\n"), r
    # Every node agrees, whichever one a client asks (proxying).
    for n in nodes:
        assert redis.Redis(host=HOST, port=n.port).get("greeting") == \
            b"hello world"
    r = run("ttl", "greeting")
    assert (r.returncode, r.stdout) == (0, "-1\n"), r
    r = run("set", "brief", "x", "--ttl", "100")
    assert r.returncode == 0, r
    r = run("ttl", "brief")
    assert r.returncode == 0 and 95 <= int(r.stdout) <= 100, r
    r = run("del", "greeting")
    assert (r.returncode, r.stdout) == (0, "1\n"), r
    r = run("get", "greeting")
    assert (r.returncode, r.stdout) == (1, ""), r
    r = run("ttl", "greeting")
    assert (r.returncode, r.stdout) == (1, ""), r
    r = run("del", "greeting")
    assert (r.returncode, r.stdout) == (0, "0\n"), r
    r = run("get")
    assert r.returncode == 2 and "usage" in r.stderr, r
    r = run("set", "k", "v", "--ttl", "0")
    assert r.returncode == 2 and "--ttl" in r.stderr, r
    r = run("--coord", "127.0.0.1:1", "--timeout", "500ms", "get", "k")
    assert r.returncode == 3 and "unreachable" in r.stderr, r

"""What a replica does with its primary's stream (DESIGN.md, "Replication
and write acknowledgement"): it acknowledges only what it applied, never
evicts or expires on its own, and fences stale primaries with a per-slot
epoch high-water mark.

Real `coord` and `datanode --join` processes on 127.0.0.1. Some tests
write the stream by hand: a raw connection that proves the node role with
NARF.AUTH (the suite's node key) is a peer link, so NARF.SET / NARF.DEL
sent on it are what a primary would send.
"""
import time

import redis

import cluster_checks as checks
import cluster_harness as ch
from dn_harness import Err
from narf_harness import HOST, expand_slots, wait_for
from peer_auth import peer_conn

READY_WAIT = 60.0
BIG = 64 * 1024


def slot_epochs(m):
    """[slot epoch of slot s] from the map's ranges."""
    out = [0] * ch.NSLOTS
    for r in m["slots"]:
        for s in range(r["from"], r["to"] + 1):
            out[s] = r.get("epoch", 0)
    return out


def replica_slot(c, m, node):
    """(slot, key, primary DataNode) for a slot `node` replicates in sync,
    picked from the keys "t:{i}"."""
    keys = ch.key_per_slot("t:")
    nid = c.current_id(m, node.addr)
    for s, (prim, reps, isr) in enumerate(expand_slots(m)):
        if nid in isr:
            return s, keys[s], c.node_of(m, prim)
    raise AssertionError("%s replicates no slot in sync" % node.name)


def keys_led_by(c, m, primary, replica, n):
    """n keys whose slot `primary` leads and `replica` holds in sync."""
    pid = c.current_id(m, primary.addr)
    rid = c.current_id(m, replica.addr)
    table = expand_slots(m)
    out, i = [], 0
    while len(out) < n and i < 10 ** 6:
        k = "big:%d" % i
        prim, _, isr = table[ch.key_slot(k)]
        if prim == pid and rid in isr:
            out.append(k)
        i += 1
    assert len(out) == n
    return out


def info(node, section):
    return redis.Redis(host=HOST, port=node.port).info(section)


def peer(node, sender=999):
    """A raw connection that is a peer link (sender: the node id it
    claims)."""
    return peer_conn(node.raw(), sender)


def readonly_get(node, key):
    r = redis.Redis(host=HOST, port=node.port)
    r.execute_command("READONLY")
    return r.get(key)


def test_replica_at_memory_limit_answers_notapplied(make_cluster):
    """A replica whose --max-memory cannot hold its primary's data refuses
    the writes with -NOTAPPLIED instead of evicting (evicted_keys stays 0),
    its primary counts no ack for them and has the coordinator drop it
    from the ISR, and clients' writes still complete."""
    c = make_cluster(nodes=2, node_args={1: ["--max-memory", "4mb"]})
    prim, small = c.nodes
    m = c.map()
    keys = keys_led_by(c, m, prim, small, 120)
    r = redis.Redis(host=HOST, port=prim.port, socket_timeout=10)
    value = b"x" * BIG
    for k in keys:  # 7.5 MiB through a replica limited to 4 MiB
        assert r.set(k, value) is True
    wait_for(lambda: "refused: NOTAPPLIED" in prim.log_text() and
             "dropped from our ISRs" in prim.log_text(), 20.0,
             what="the primary seeing -NOTAPPLIED and dropping the replica")
    assert info(small, "stats")["evicted_keys"] == 0
    assert info(small, "memory")["used_memory_dataset"] <= 4 * 1024 * 1024
    assert all(v == value for v in r.mget(keys))
    # Whatever the ISR now holds for these slots has every value: the
    # refused writes were never counted as acks there.
    assert checks.copies_disagree(c, keys) == []


def test_notapplied_on_a_peer_link(make_cluster):
    """A NARF.SET the store cannot take answers -NOTAPPLIED (not +OK) and
    leaves nothing behind; malformed or truncated stream messages get
    errors and change nothing."""
    c = make_cluster(nodes=2, node_args={1: ["--max-memory", "2mb"]})
    small = c.nodes[1]
    m = c.map()
    s, key, _ = replica_slot(c, m, small)
    ep = slot_epochs(m)[s]
    with peer(small) as p:
        got = p.cmd("NARF.SET", ep, key, b"y" * (3 * 1024 * 1024), 0)
        assert isinstance(got, Err) and got.startswith(
            "NOTAPPLIED slot %d:" % s), got
        assert p.cmd("NARF.SET", ep, key, "v", 0) == "OK"
        # Malformed: bad epoch, bad expiry, missing arguments.
        assert p.cmd("NARF.SET", "x", key, "w", 0) == Err("ERR bad slot epoch")
        assert p.cmd("NARF.SET", -1, key, "w", 0) == Err("ERR bad slot epoch")
        assert p.cmd("NARF.SET", ep, key, "w", "soon") == Err(
            "ERR bad expiry")
        assert p.cmd("NARF.SET", ep, key, "w", "9" * 25) == Err(
            "ERR bad expiry")
        assert isinstance(p.cmd("NARF.SET", ep, key, "w"), Err)
        assert isinstance(p.cmd("NARF.DEL", ep), Err)
        assert isinstance(p.cmd("NARF.DEL", "", key), Err)
        # A request cut short on the wire is not applied until it is whole.
        p.send(b"*5\r\n$8\r\nNARF.SET\r\n$%d\r\n%d\r\n$%d\r\n%s\r\n$1\r\nz" % (
            len(str(ep)), ep, len(key), key.encode()))
        time.sleep(0.2)
        assert readonly_get(small, key) == b"v"
        p.send(b"\r\n$1\r\n0\r\n")
        assert p.read() == "OK"
    assert readonly_get(small, key) == b"z"
    assert info(small, "stats")["evicted_keys"] == 0


def test_stale_epoch_after_newer_is_refused(make_cluster):
    """Once a replica has applied a stream message at a newer slot epoch
    (a new primary its map does not know yet), a message at its map's
    older epoch (the old primary) is refused -STALE and does not overwrite
    the newer value."""
    c = make_cluster(nodes=2)
    rep = c.nodes[1]
    m = c.map()
    s, key, prim = replica_slot(c, m, rep)
    old = slot_epochs(m)[s]
    newer = m["epoch"] + 1  # the epoch of the next map: a new primary
    pid = c.current_id(m, prim.addr)
    with peer(rep, 4242) as new_primary, peer(rep, pid) as old_primary:
        assert new_primary.cmd("NARF.SET", newer, key, "new", 0) == "OK"
        got = old_primary.cmd("NARF.SET", old, key, "old", 0)
        assert isinstance(got, Err) and got.startswith("STALE slot %d" % s)
        got = old_primary.cmd("NARF.DEL", old, key)
        assert isinstance(got, Err) and got.startswith("STALE")
        # The new primary's epoch and newer ones still apply.
        assert new_primary.cmd("NARF.SET", newer, key, "new2", 0) == "OK"
    assert readonly_get(rep, key) == b"new2"


def test_replica_ttl_hidden_then_deleted_by_primary_del(make_cluster):
    """A key whose TTL has passed is hidden on a replica at once but stays
    stored until its primary's NARF.DEL arrives; the replica never expires
    it itself (expired_keys stays 0), and a NARF.SET whose expiry has
    already passed is stored as sent, hidden."""
    c = make_cluster(nodes=2)
    rep = c.nodes[1]
    m = c.map()
    s, key, _ = replica_slot(c, m, rep)
    other = "{%s}other" % key  # the same slot
    ep = slot_epochs(m)[s]
    rep_r = redis.Redis(host=HOST, port=rep.port)
    before = info(rep, "stats")["expired_keys"]
    base = rep_r.dbsize()
    with peer(rep) as p:
        pxat = int(time.time() * 1000) + 300
        assert p.cmd("NARF.SET", ep, key, "v", pxat) == "OK"
        assert readonly_get(rep, key) == b"v"
        time.sleep(0.8)  # the active expiry cron runs every tick
        assert readonly_get(rep, key) is None
        assert rep_r.dbsize() == base + 1
        assert p.cmd("NARF.SET", ep, other, "v", pxat) == "OK"
        assert readonly_get(rep, other) is None
        assert rep_r.dbsize() == base + 2
        assert p.cmd("NARF.DEL", ep, key) == "OK"
        assert p.cmd("NARF.DEL", ep, other) == "OK"
    assert rep_r.dbsize() == base
    assert info(rep, "stats")["expired_keys"] == before


def test_primary_expiry_reaches_replica_as_delete(make_cluster):
    """A key with a TTL written through its primary disappears from the
    replica's store after expiry because the primary's expiry streams a
    NARF.DEL: the primary counts the expiry, the replica does not."""
    c = make_cluster(nodes=2)
    rep = c.nodes[1]
    m = c.map()
    keys = keys_led_by(c, m, c.nodes[0], rep, 50)
    prim = c.nodes[0]
    r = redis.Redis(host=HOST, port=prim.port)
    rep_r = redis.Redis(host=HOST, port=rep.port)
    base = rep_r.dbsize()
    rep_before = info(rep, "stats")["expired_keys"]
    prim_before = info(prim, "stats")["expired_keys"]
    for k in keys:
        assert r.set(k, "v", px=1500) is True
    assert rep_r.dbsize() == base + len(keys)  # ack all: applied there
    wait_for(lambda: rep_r.dbsize() == base, 10.0,
             what="the primary's deletes on the replica")
    assert info(prim, "stats")["expired_keys"] - prim_before == len(keys)
    assert info(rep, "stats")["expired_keys"] == rep_before

"""Blocking list pops in a cluster (issue 16, slices 20 and 27): a client
blocked on the owner of its key is served by a push there, and the pop it
performs replicates as an ordinary pop effect, so the slot's in-sync
copies keep matching the primary; a blocking command sent to a node that
does not own its key is forwarded (NARF.REQ with a token, +NARF.BLOCKED,
then a push frame) and is woken, timed out, queued FIFO and cancelled as
a local one; and clients blocked on slots that a handoff or a failover
moves stay blocked and get the element or their timeout, never an error.

Real `coord` and `datanode --join` processes on 127.0.0.1. Copies are
compared per key with cluster_checks.copies_disagree(typed=True).
"""
import time

import cluster_checks as checks
import cluster_harness as ch
from dn_harness import Err, encode
from narf_harness import expand_slots

READY_WAIT = 90.0


def owner(c, key):
    """(DataNode that leads key's slot, its address, the slot)."""
    m = c.map()
    slot = ch.key_slot(key)
    prim = expand_slots(m)[slot][0]
    return c.node_of(m, prim), c.addr_of(m, prim), slot


def blocked_clients(node):
    text = node.cmd("INFO", "clients")
    text = text.decode() if isinstance(text, bytes) else str(text)
    for line in text.splitlines():
        if line.startswith("blocked_clients:"):
            return int(line.split(":", 1)[1])
    raise AssertionError("no blocked_clients in INFO:\n" + text)


def wait_blocked(node, n, timeout=10.0):
    deadline = time.monotonic() + timeout
    while blocked_clients(node) != n:
        assert time.monotonic() < deadline, \
            "%s: blocked_clients never reached %d" % (node.name, n)
        time.sleep(0.02)


def assert_no_link_trouble(c):
    """No stream link failed or diverged: a resync would hide a wrong
    effect."""
    for n in c.nodes:
        text = n.log_text()
        for bad in ("diverged", "NOTAPPLIED", "replication link to node"):
            assert bad not in text, "%s logged %r:\n%s" % (
                n.name, bad, n.log_tail(20))


def test_blocked_pop_on_owner_is_replicated(make_cluster):
    """BLPOP, BLMPOP and a BLMOVE chain blocked on their keys' primary are
    served by pushes from another client; what they popped and moved
    replicates: every in-sync copy of the keys matches the primary."""
    c = make_cluster()
    keys = ["{b}list", "{b}src", "{b}dst", "{b}multi"]
    prim, _, slot = owner(c, keys[0])
    w1, w2, w3, w4 = (prim.raw() for _ in range(4))
    pusher = prim.raw()
    try:
        w1.send(encode("BLPOP", "{b}list", 0))
        wait_blocked(prim, 1)
        w2.send(encode("BLMOVE", "{b}src", "{b}dst", "LEFT", "RIGHT", 0))
        wait_blocked(prim, 2)
        w3.send(encode("BRPOP", "{b}dst", 0))
        wait_blocked(prim, 3)
        w4.send(encode("BLMPOP", 0, 1, "{b}multi", "LEFT", "COUNT", 2))
        wait_blocked(prim, 4)
        assert pusher.cmd("RPUSH", "{b}list", "a", "b", "c") == 3
        assert w1.read() == [b"{b}list", b"a"]
        assert pusher.cmd("RPUSH", "{b}src", "x", "y") == 2
        assert w2.read() == b"x"
        assert w3.read() == [b"{b}dst", b"x"]
        assert pusher.cmd("RPUSH", "{b}multi", 1, 2, 3) == 3
        assert w4.read() == [b"{b}multi", [b"1", b"2"]]
        wait_blocked(prim, 0)
        assert pusher.cmd("LRANGE", "{b}list", 0, -1) == [b"b", b"c"]
        assert pusher.cmd("LRANGE", "{b}src", 0, -1) == [b"y"]
        assert pusher.cmd("EXISTS", "{b}dst") == 0
    finally:
        for x in (w1, w2, w3, w4, pusher):
            x.close()
    m = c.map()
    _, _, isr = expand_slots(m)[slot]
    assert isr, "the slot of {b} has no in-sync replica"
    diff = checks.copies_disagree(c, keys, typed=True)
    assert not diff, "copies disagree:\n" + "\n".join(diff)
    assert_no_link_trouble(c)


def test_remote_blocking_via_non_owner(make_cluster):
    """A blocking pop sent to a node that does not lead its key blocks on
    the owner without holding up other requests forwarded on the same
    link; it is woken by a push on the owner and by one forwarded from a
    third node; its timeout answers `*-1` (`_` under RESP3); two remote
    waiters are served first come first served; every blocking command
    pops through the proxy; a client that closes while blocked pops
    nothing (LLEN counts the element)."""
    c = make_cluster()
    key = "{nb}k"
    prim, _, _ = owner(c, key)
    other, third = (n for n in c.nodes if n is not prim)
    w = other.raw()
    w2 = third.raw()
    try:
        # woken by a push on the owner; a GET forwarded on the same
        # link meanwhile is answered at once
        w.send(encode("BLPOP", key, 0))
        wait_blocked(prim, 1)
        assert blocked_clients(other) == 0
        assert other.cmd("SET", "{nb}s", "v") == "OK"
        assert other.cmd("GET", "{nb}s") == b"v"
        assert prim.cmd("LPUSH", key, "a") == 1
        assert w.read() == [key.encode(), b"a"]
        # woken by a push forwarded from a third node; a pipelined
        # request behind the BLPOP waits for it
        w.send(encode("BLPOP", key, 0) + encode("GET", "{nb}s"))
        wait_blocked(prim, 1)
        assert third.cmd("RPUSH", key, "b") == 1
        assert w.read() == [key.encode(), b"b"]
        assert w.read() == b"v"
        # timeouts, in both protocols
        t0 = time.monotonic()
        assert w.cmd_bytes("BLPOP", key, "0.2") == b"*-1\r\n"
        assert 0.15 < time.monotonic() - t0 < 3.0
        assert w.cmd("HELLO", 3) is not None
        assert w.cmd_bytes("BZPOPMIN", "{nb}z", "0.1") == b"_\r\n"
        assert w.cmd("HELLO", 2) is not None
        # FIFO among two remote waiters, through two nodes
        w.send(encode("BRPOP", key, 0))
        wait_blocked(prim, 1)
        w2.send(encode("BLPOP", key, 0))
        wait_blocked(prim, 2)
        assert prim.cmd("RPUSH", key, "x", "y") == 2
        assert w.read() == [key.encode(), b"y"]
        assert w2.read() == [key.encode(), b"x"]
        wait_blocked(prim, 0)
        # every blocking command, with something to pop or blocked
        assert prim.cmd("RPUSH", key, "v1", "v2", "v3") == 3
        assert w.cmd("BLMOVE", key, "{nb}d", "LEFT", "LEFT", 0) == b"v1"
        assert w.cmd("BRPOPLPUSH", key, "{nb}d", 0) == b"v3"
        assert w.cmd("BLMPOP", 0, 1, key, "LEFT") == [key.encode(),
                                                      [b"v2"]]
        w.send(encode("BZPOPMAX", "{nb}z", 0))
        wait_blocked(prim, 1)
        assert third.cmd("ZADD", "{nb}z", 1, "m") == 1
        assert w.read() == [b"{nb}z", b"m", b"1"]
        w.send(encode("BLMOVE", "{nb}d", key, "RIGHT", "LEFT", 5))
        assert w.read() == b"v1"
        assert prim.cmd("LRANGE", key, 0, -1) == [b"v1"]
        assert prim.cmd("LPOP", key) == b"v1"
    finally:
        w.close()
        w2.close()
    # a client that goes away while blocked pops nothing
    gone = other.raw()
    gone.send(encode("BLPOP", key, 0))
    wait_blocked(prim, 1)
    gone.close()
    wait_blocked(prim, 0)
    assert prim.cmd("LPUSH", key, "kept") == 1
    time.sleep(0.2)
    assert prim.cmd("LLEN", key) == 1
    diff = checks.copies_disagree(c, [key, "{nb}d", "{nb}z"], typed=True)
    assert not diff, "copies disagree:\n" + "\n".join(diff)


def test_waiters_held_across_handoff(make_cluster):
    """Clients blocked on every node's slots, directly and through the
    other nodes, stay blocked while a 4th node joins and slots are handed
    to it: no reply comes, not even -MOVED, and each waits on its key's
    new owner; then one push per key, through any node, serves each
    waiter its own element, and no element is left or lost."""
    c = make_cluster()
    m = c.map()
    table = expand_slots(m)
    per_node = {}
    for k in (ch.key_name(i) for i in range(3000)):
        lst = per_node.setdefault(table[ch.key_slot(k)][0], [])
        if len(lst) < 12:
            lst.append(k)
    keys = [k for lst in per_node.values() for k in lst]
    assert len(keys) == 36
    conns = []
    try:
        for i, k in enumerate(keys):
            w = c.nodes[i % 3].raw(timeout=60.0)
            w.send(encode("BLPOP", k, 0))
            conns.append(w)
        for nid, lst in per_node.items():
            wait_blocked(c.node_of(m, nid), len(lst))
        n4 = ch.add_node(c)
        c.wait_ready(READY_WAIT, what="n4 joined")
        ch.wait_balanced(c, READY_WAIT)
        m2 = c.map()
        n4_id = c.current_id(m2, n4.addr)
        table = expand_slots(m2)
        moved = [k for k in keys if table[ch.key_slot(k)][0] == n4_id]
        assert moved, "no waited-on slot moved to n4"
        nodes = c.nodes + [n4]
        for n in nodes:
            nid = c.current_id(m2, n.addr)
            wait_blocked(n, sum(1 for k in keys
                                if table[ch.key_slot(k)][0] == nid))
        for w in conns:
            w.sock.settimeout(0.05)
            try:
                got = w.sock.recv(100)
            except OSError:
                got = None
            assert got is None, "a waiter got %r" % got
            w.sock.settimeout(60.0)
        for i, k in enumerate(keys):
            assert nodes[i % 4].cmd("RPUSH", k, "v%d" % i) == 1
            assert conns[i].read() == [k.encode(), b"v%d" % i]
        for n in nodes:
            wait_blocked(n, 0)
        for k in keys:
            assert n4.cmd("LLEN", k) == 0
    finally:
        for w in conns:
            w.close()
    diff = checks.copies_disagree(c, keys, typed=True)
    assert not diff, "copies disagree:\n" + "\n".join(diff)


def test_waiter_held_across_failover(make_cluster):
    """Clients blocked through the two non-owners (forever, and with a
    timeout that outlasts the failover) stay blocked across a kill -9 of
    the owner: their nodes route them again to the promoted replica, where
    pushes serve them; none gets an error, and of the elements pushed each
    is popped once or still in the list."""
    c = make_cluster()
    key = "{fo}k"
    prim, _, slot = owner(c, key)
    m = c.map()
    vid = c.current_id(m, prim.addr)
    others = [n for n in c.nodes if n is not prim]
    waiters = []
    try:
        for n in others:
            w = n.raw(timeout=60.0)
            w.send(encode("BLPOP", key, 0))
            waiters.append(w)
        w = others[0].raw(timeout=60.0)
        w.send(encode("BLPOP", key, 30))
        waiters.append(w)
        wait_blocked(prim, 3)
        prim.kill9()
        c.wait_down(prim, vid, 20.0)
        popped = []
        acked, unsure = [], []
        for i in range(len(waiters) + 2):
            deadline = time.monotonic() + 20.0
            for attempt in range(1000):
                v = b"e%d.%d" % (i, attempt)
                try:
                    rep = others[i % 2].cmd("RPUSH", key, v)
                except Exception:
                    rep = None
                if isinstance(rep, int):
                    acked.append(v)
                    break
                unsure.append(v)  # an error may hide an applied push
                assert time.monotonic() < deadline, rep
                time.sleep(0.1)
        for i, w in enumerate(waiters):
            r = w.read(timeout=20.0)
            assert not isinstance(r, Err) and r is not None and \
                r[0] == key.encode(), (i, r, c.logs(30))
            popped.append(r[1])
        left = others[0].cmd("LRANGE", key, 0, -1)
        got = popped + left
        assert len(set(got)) == len(got), got
        assert set(acked) <= set(got), (acked, got)
        assert set(got) <= set(acked) | set(unsure), (acked, unsure, got)
        assert len(set(popped)) == len(popped)
    finally:
        for w in waiters:
            w.close()

"""Blocking list pops in a cluster (issue 16, slice 20): a client blocked
on the owner of its key is served by a push there, and the pop it
performs replicates as an ordinary pop effect, so the slot's in-sync
copies keep matching the primary; a blocking command sent to a node that
does not own its key answers -MOVED (it would stall the pipelined proxy
link; remote blocking is slice 27); and clients blocked on slots that a
handoff moves to a new node are redirected with -MOVED when the map
changes.

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


def test_non_owner_answers_moved(make_cluster):
    """A blocking command sent to a node that does not lead its key is not
    forwarded (it would hold up every request behind it on the proxy link):
    -MOVED <slot> <owner>, even with an element there to pop, and the
    owner's list is untouched."""
    c = make_cluster()
    key = "{nb}k"
    prim, addr, slot = owner(c, key)
    other = next(n for n in c.nodes if n is not prim)
    assert prim.cmd("RPUSH", key, "v") == 1
    moved = Err("MOVED %d %s" % (slot, addr))
    for args in (("BLPOP", key, 0), ("BRPOP", key, "0.1"),
                 ("BLMOVE", key, "{nb}d", "LEFT", "LEFT", 0),
                 ("BRPOPLPUSH", key, "{nb}d", 0),
                 ("BLMPOP", 0, 1, key, "LEFT")):
        assert other.cmd(*args) == moved, args
    # non-blocking list commands still go through the proxy
    assert other.cmd("LLEN", key) == 1
    assert prim.cmd("LRANGE", key, 0, -1) == [b"v"]
    assert blocked_clients(other) == 0


def test_waiters_redirected_when_their_slot_moves(make_cluster):
    """Clients blocked on one node's slots stay blocked while a 4th node
    joins; those whose slot was handed to it get -MOVED naming it when the
    map changes; the others are still blocked and are served by a push."""
    c = make_cluster()
    m = c.map()
    table = expand_slots(m)
    first = c.nodes[0]
    nid = c.current_id(m, first.addr)
    keys = [k for k in (ch.key_name(i) for i in range(2000))
            if table[ch.key_slot(k)][0] == nid][:40]
    conns = []
    try:
        for i, k in enumerate(keys):
            w = first.raw(timeout=60.0)
            w.send(encode("BLPOP", k, 0))
            conns.append(w)
        wait_blocked(first, len(keys))
        n4 = ch.add_node(c)
        c.wait_ready(READY_WAIT, what="n4 joined")
        ch.wait_balanced(c, READY_WAIT)
        m = c.map()
        n4_id = c.current_id(m, n4.addr)
        table = expand_slots(m)
        moved = [i for i, k in enumerate(keys)
                 if table[ch.key_slot(k)][0] == n4_id]
        stayed = [i for i, k in enumerate(keys)
                  if table[ch.key_slot(k)][0] == nid]
        assert moved, "no waited-on slot moved to n4"
        assert len(moved) + len(stayed) == len(keys), \
            "a waited-on slot moved elsewhere than n4"
        for i in moved:
            slot = ch.key_slot(keys[i])
            assert conns[i].read() == Err("MOVED %d %s" % (slot, n4.addr))
        wait_blocked(first, len(stayed))
        for i in stayed:
            assert first.cmd("RPUSH", keys[i], "v%d" % i) == 1
            assert conns[i].read() == [keys[i].encode(), b"v%d" % i]
        wait_blocked(first, 0)
    finally:
        for w in conns:
            w.close()
    diff = checks.copies_disagree(c, keys, typed=True)
    assert not diff, "copies disagree:\n" + "\n".join(diff)

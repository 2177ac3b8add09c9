"""RESP3 through the proxy (issue 16, slice 26): a client that said HELLO 3
on a node that does not lead its key gets exactly the bytes the key's
owner gives a RESP3 client directly (the forwarder wraps the request in
NARF.REQ 3 0 0 ..., and the owner runs it with RESP3 replies), split
requests merge RESP3 parts (MGET's missing keys are `_`), and a RESP2
client's bytes are unchanged (its requests still go bare).

Real `coord` and `datanode --join` processes on 127.0.0.1.
"""
import cluster_harness as ch
from dn_harness import encode
from narf_harness import expand_slots

READY_WAIT = 60.0

# Each a request on the key "{r}h" etc.: replies whose RESP3 form differs
# (maps, sets, doubles, pairs, nulls) and some that do not.
REQUESTS = [
    ("HGETALL", "{r}h"),
    ("HGET", "{r}h", "nope"),
    ("SMEMBERS", "{r}s"),
    ("ZSCORE", "{r}z", "a"),
    ("ZSCORE", "{r}z", "nope"),
    ("ZMSCORE", "{r}z", "a", "nope", "b"),
    ("ZRANGE", "{r}z", 0, -1, "WITHSCORES"),
    ("ZINCRBY", "{r}z", "0", "b"),
    ("GET", "{r}missing"),
    ("GET", "{r}str"),
    ("LPOP", "{r}missing"),
    ("LRANGE", "{r}l", 0, -1),
    ("TTL", "{r}str"),
    ("TYPE", "{r}z"),
    ("HRANDFIELD", "{r}missing"),
]


def owner_and_other(c, key):
    m = c.map()
    prim = expand_slots(m)[ch.key_slot(key)][0]
    node = c.node_of(m, prim)
    return node, next(n for n in c.nodes if n is not node)


def keys_by_owner(c, n_each=2):
    """{node: [keys it leads]} with n_each keys for every node."""
    m = c.map()
    table = expand_slots(m)
    out = {}
    for i in range(5000):
        k = "mg:%d" % i
        node = c.node_of(m, table[ch.key_slot(k)][0])
        if len(out.setdefault(node, [])) < n_each:
            out[node].append(k)
        if len(out) == len(c.nodes) and all(
                len(v) == n_each for v in out.values()):
            return out
    raise AssertionError("no keys for every node")


def hello(node, proto):
    conn = node.raw()
    assert conn.cmd("HELLO", proto) is not None
    return conn


def test_resp3_client_via_non_owner_gets_owner_bytes(make_cluster):
    """For every request in REQUESTS, a HELLO 3 client on a non-owner reads
    the owner's RESP3 bytes and a RESP2 client the owner's RESP2 bytes;
    a split MGET (keys on every node, half missing) reads `*n` of the
    owners' own GET bytes in request order (`_` for missing under RESP3,
    `$-1` under RESP2), and split EXISTS/DEL sums as usual."""
    c = make_cluster()
    prim, other = owner_and_other(c, "{r}h")
    setup = prim.raw()
    try:
        assert setup.cmd("HSET", "{r}h", "f1", "v1", "f2", "v2") == 2
        assert setup.cmd("SADD", "{r}s", "x", "y", "z") == 3
        assert setup.cmd("ZADD", "{r}z", "1.5", "a", "2", "b") == 2
        assert setup.cmd("SET", "{r}str", "hello") == "OK"
        assert setup.cmd("RPUSH", "{r}l", "p", "q") == 2
    finally:
        setup.close()
    for proto in (3, 2):
        direct, via = hello(prim, proto), hello(other, proto)
        try:
            for req in REQUESTS:
                want = direct.cmd_bytes(*req)
                assert via.cmd_bytes(*req) == want, (proto, req, want)
            # pipelined: replies in order, same bytes
            via.send(b"".join(encode(*r) for r in REQUESTS))
            for req in REQUESTS:
                assert via.read_bytes() == direct.cmd_bytes(*req), req
        finally:
            direct.close()
            via.close()
    by_owner = keys_by_owner(c)
    present = []
    for node, ks in by_owner.items():
        assert node.cmd("SET", ks[0], "v-" + ks[0]) == "OK"
        present.append(ks[0])
    keys = [k for ks in by_owner.values() for k in ks]
    m = c.map()
    table = expand_slots(m)
    for proto in (3, 2):
        conns = {n: hello(n, proto) for n in c.nodes}
        try:
            want = b"*%d\r\n" % len(keys) + b"".join(
                conns[c.node_of(m, table[ch.key_slot(k)][0])]
                .cmd_bytes("GET", k) for k in keys)
            assert (b"_\r\n" in want) == (proto == 3)
            for n in c.nodes:
                assert conns[n].cmd_bytes("MGET", *keys) == want, (proto,
                                                                    n.name)
                assert conns[n].cmd_bytes("EXISTS", *keys) == \
                    b":%d\r\n" % len(present)
        finally:
            for x in conns.values():
                x.close()
    via = hello(c.nodes[0], 3)
    try:
        assert via.cmd_bytes("DEL", *keys) == b":%d\r\n" % len(present)
        assert via.cmd_bytes("MGET", *keys) == \
            b"*%d\r\n" % len(keys) + b"_\r\n" * len(keys)
    finally:
        via.close()

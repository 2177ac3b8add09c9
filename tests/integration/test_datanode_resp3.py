"""RESP3 per connection (docs/datatypes-plan.md, section 5): HELLO 2/3 and
the replies whose wire type changes under HELLO 3, for the commands narf
has today (strings, keyspace, CONFIG, INFO, CLIENT, CLUSTER, COMMAND).

As in test_datanode.py, the `kind` fixture runs each test against a real
redis-server (Debian's 7.0.15) and `datanode --standalone` with the same
assertions, most of them on exact bytes (RawConn.cmd_bytes) or on RawConn's
typed RESP3 values (a Map is not its RESP2 flat array, a Set not an array,
NULL3 not None), so passing on both proves narf writes Redis's bytes. The
`redis-cli -3` transcript runs both servers in one test and compares their
outputs line for line. Debian 12's redis-py 4.3.4 has no protocol=3; the
redis-py test skips below 5.0.

Run: NARF_BUILD=/abs/build /usr/bin/python3 -m pytest -q \
         tests/integration/test_datanode_resp3.py
"""

import re

import pytest
import redis

from dn_fixtures import (c, kind, make_server, srv)  # noqa: F401
from dn_harness import (NULL3, Err, Map, RawConn, Set, Verbatim, encode,
                        key_slot)

WRONGPASS = Err("WRONGPASS invalid username-password pair or user is "
                "disabled.")
NOAUTH_HELLO = Err(
    "NOAUTH HELLO must be called with the client already authenticated, "
    "otherwise the HELLO AUTH <user> <pass> option can be used to "
    "authenticate the client and select the RESP protocol version at the "
    "same time")
NOPROTO = Err("NOPROTO unsupported protocol version")

# HELLO's reply with the version and id masked (hello_bytes): a map of 7
# under RESP3, the same items as a flat array of 14 under RESP2.
HELLO_ITEMS = (b"$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\nVERSION"
               b"$5\r\nproto\r\n:%d\r\n$2\r\nid\r\nID"
               b"$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n"
               b"$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n")
HELLO2 = b"*14\r\n" + HELLO_ITEMS % 2
HELLO3 = b"%7\r\n" + HELLO_ITEMS % 3


def mask_hello(raw):
    """HELLO's bytes without what legitimately differs: the version string
    (7.0.15 / narf's 7.0.0) and the client id."""
    raw = re.sub(rb"\$7\r\nversion\r\n\$\d+\r\n7\.0\.\d+\r\n",
                 b"$7\r\nversion\r\nVERSION", raw, count=1)
    return re.sub(rb"\$2\r\nid\r\n:\d+\r\n", b"$2\r\nid\r\nID", raw,
                  count=1)


def hello_bytes(conn, *args):
    return mask_hello(conn.cmd_bytes("HELLO", *args))


# ---------------------------------------------------------------------------
# HELLO


def test_hello_switches_protocol(c):
    """HELLO without a version answers in the current protocol; HELLO 3 and
    HELLO 2 switch and answer a map of 7 (RESP2: a flat array of 14) with
    the same keys and types as Redis; other versions are -NOPROTO and a
    non-integer Redis's error, and neither switches."""
    assert hello_bytes(c) == HELLO2
    assert hello_bytes(c, 3) == HELLO3
    assert hello_bytes(c) == HELLO3
    m = c.cmd("HELLO")
    assert isinstance(m, Map) and set(m) == {
        b"server", b"version", b"proto", b"id", b"mode", b"role",
        b"modules"}
    assert m[b"proto"] == 3 and isinstance(m[b"id"], int)
    assert m[b"version"].startswith(b"7.0.")
    assert m[b"modules"] == [] and not isinstance(m[b"modules"], Set)
    for bad in (4, 1, 0, -1, 300):
        assert c.cmd("HELLO", bad) == NOPROTO, bad
    for bad in ("x", "3.0", " 3", "99999999999999999999"):
        assert c.cmd("HELLO", bad) == Err(
            "ERR Protocol version is not an integer or out of range"), bad
    assert c.cmd_bytes("GET", "nokey") == b"_\r\n"  # still RESP3
    assert c.cmd("HELLO", 4, "AUTH", "default", "x") == NOPROTO
    assert hello_bytes(c, 2) == HELLO2
    assert c.cmd_bytes("GET", "nokey") == b"$-1\r\n"
    assert c.cmd("HELLO", 3, "FOO") == Err(
        "ERR Syntax error in HELLO option 'FOO'")
    assert c.cmd("HELLO", 3, "AUTH", "default") == Err(
        "ERR Syntax error in HELLO option 'AUTH'")
    assert c.cmd("HELLO", 3, "SETNAME") == Err(
        "ERR Syntax error in HELLO option 'SETNAME'")
    assert c.cmd_bytes("GET", "nokey") == b"$-1\r\n"  # none switched


def test_hello_setname(c):
    """HELLO SETNAME names the connection with CLIENT SETNAME's rules: a
    name Redis refuses is its error and the protocol stays; an empty name
    clears it."""
    assert hello_bytes(c, 3, "SETNAME", "resp3-client") == HELLO3
    assert c.cmd("CLIENT", "GETNAME") == b"resp3-client"
    assert c.cmd("HELLO", 2, "SETNAME", "a b") == Err(
        "ERR Client names cannot contain spaces, newlines or special "
        "characters.")
    assert c.cmd_bytes("GET", "nokey") == b"_\r\n"
    assert c.cmd("CLIENT", "GETNAME") == b"resp3-client"
    assert hello_bytes(c, 2, "SETNAME", "") == HELLO2
    assert c.cmd("CLIENT", "GETNAME") is None
    assert hello_bytes(c, "3", "setname", "x", "SETNAME", "y") == HELLO3
    assert c.cmd("CLIENT", "GETNAME") == b"y"


@pytest.fixture
def auth_srv(make_server, kind):
    """A server with a password and a user (narf: --requirepass-file and a
    users file; redis: requirepass and an ACL user)."""
    return make_server(kind, password="s3cret pw",
                       users=[("alice", "read", "alice-pw-0123456789")])


def test_hello_auth(auth_srv):
    """HELLO 3 AUTH checks the password before switching: a refused one
    stays RESP2 and unauthenticated; HELLO without AUTH needs the
    connection authenticated. As in Redis 7.0.15 (not 7.2), each option
    acts where it stands: a later bad option is a syntax error that leaves
    the connection authenticated but not switched, and a SETNAME before a
    refused AUTH (or without any) has named the connection."""
    s = auth_srv
    with s.raw(auth=False) as c:
        assert c.cmd("HELLO") == NOAUTH_HELLO
        assert c.cmd("HELLO", 3) == NOAUTH_HELLO
        assert c.cmd("HELLO", 3, "AUTH", "default", "wrong") == WRONGPASS
        assert c.cmd("HELLO", 3, "AUTH", "nobody", "s3cret pw") == WRONGPASS
        assert c.cmd("HELLO", 4, "AUTH", "default", "s3cret pw") == NOPROTO
        assert c.cmd("GET", "k") == Err("NOAUTH Authentication required.")
        assert c.cmd("HELLO", 3, "SETNAME", "x", "AUTH", "default",
                     "wrong") == WRONGPASS
        assert c.cmd("HELLO", 3, "AUTH", "default", "s3cret pw",
                     "BAD") == Err("ERR Syntax error in HELLO option 'BAD'")
        assert c.cmd_bytes("GET", "k") == b"$-1\r\n"  # never switched
        assert c.cmd("CLIENT", "GETNAME") == b"x"
    with s.raw(auth=False) as c:
        assert c.cmd("HELLO", 3, "SETNAME", "early") == NOAUTH_HELLO
        assert c.cmd("AUTH", "s3cret pw") == "OK"
        assert c.cmd("CLIENT", "GETNAME") == b"early"
    with s.raw(auth=False) as c:
        assert hello_bytes(c, 3, "AUTH", "default", "s3cret pw") == HELLO3
        assert c.cmd_bytes("GET", "k") == b"_\r\n"
        # A refused AUTH later keeps what the connection had.
        assert c.cmd("HELLO", 2, "AUTH", "default", "wrong") == WRONGPASS
        assert c.cmd_bytes("GET", "k") == b"_\r\n"
    with s.raw(auth=False) as c:
        assert hello_bytes(c, 3, "AUTH", "alice", "alice-pw-0123456789",
                           "SETNAME", "al") == HELLO3
        assert c.cmd_bytes("GET", "k") == b"_\r\n"
        assert c.cmd("CLIENT", "GETNAME") == b"al"
        assert c.cmd("SET", "k", "v") == Err(
            "NOPERM this user has no permissions to run the 'set' command")


# ---------------------------------------------------------------------------
# Replies that change under RESP3


# (request, RESP2 bytes, RESP3 bytes), run in order on an empty server.
NULLS = [
    (("GET", "nokey"), b"$-1\r\n", b"_\r\n"),
    (("GETDEL", "nokey"), b"$-1\r\n", b"_\r\n"),
    (("GETEX", "nokey"), b"$-1\r\n", b"_\r\n"),
    (("GETEX", "nokey", "PERSIST"), b"$-1\r\n", b"_\r\n"),
    (("GETEX", "nokey", "EX", "10"), b"$-1\r\n", b"_\r\n"),
    (("RANDOMKEY",), b"$-1\r\n", b"_\r\n"),
    (("CLIENT", "GETNAME"), b"$-1\r\n", b"_\r\n"),
    (("COMMAND", "INFO", "nosuchcommand"), b"*1\r\n$-1\r\n", b"*1\r\n_\r\n"),
    (("GETSET", "gs", "v"), b"$-1\r\n", b"_\r\n"),
    (("SET", "k", "v", "XX"), b"$-1\r\n", b"_\r\n"),
    (("SET", "k", "v", "XX", "GET"), b"$-1\r\n", b"_\r\n"),
    (("SET", "k", "v", "GET"), b"$-1\r\n", b"_\r\n"),
    (("SET", "k", "w", "NX"), b"$-1\r\n", b"_\r\n"),
    (("SET", "k", "w", "NX", "GET"), b"$1\r\nv\r\n", b"$1\r\nv\r\n"),
    (("MGET", "nokey", "k", "nokey2"), b"*3\r\n$-1\r\n$1\r\nv\r\n$-1\r\n",
     b"*3\r\n_\r\n$1\r\nv\r\n_\r\n"),
    # TTLs stay integers; DEL and counters too.
    (("TTL", "nokey"), b":-2\r\n", b":-2\r\n"),
    (("PTTL", "k"), b":-1\r\n", b":-1\r\n"),
    (("EXPIRETIME", "k"), b":-1\r\n", b":-1\r\n"),
    (("INCRBYFLOAT", "f", "1.5"), b"$3\r\n1.5\r\n", b"$3\r\n1.5\r\n"),
    (("DEL", "k", "gs", "f"), b":3\r\n", b":3\r\n"),
]


@pytest.mark.parametrize("proto", [2, 3])
def test_nulls_per_protocol(c, proto):
    """Every null narf returns is `$-1` (or `*-1`) under RESP2 and `_`
    under RESP3, byte for byte as Redis; integers and bulks are the same
    in both."""
    if proto == 3:
        assert hello_bytes(c, 3) == HELLO3
    bad = []
    for args, want2, want3 in NULLS:
        got = c.cmd_bytes(*args)
        if got != (want3 if proto == 3 else want2):
            bad.append("%s: got %r" % (" ".join(args), got))
    assert not bad, "\n".join(bad)


def test_config_get_is_a_map(c):
    """CONFIG GET answers a map under RESP3 (a flat array under RESP2):
    one pattern, several, none matching."""
    want = b"$9\r\nmaxmemory\r\n$1\r\n0\r\n"
    assert c.cmd_bytes("CONFIG", "GET", "maxmemory") == b"*2\r\n" + want
    assert c.cmd_bytes("CONFIG", "GET", "nomatch") == b"*0\r\n"
    c.cmd("HELLO", 3)
    assert c.cmd_bytes("CONFIG", "GET", "maxmemory") == b"%1\r\n" + want
    assert c.cmd_bytes("CONFIG", "GET", "nomatch") == b"%0\r\n"
    assert c.cmd_bytes("CONFIG", "GET", "save") == \
        b"%1\r\n$4\r\nsave\r\n$0\r\n\r\n"
    m = c.cmd("CONFIG", "GET", "port", "maxclients", "maxmemory-policy")
    assert isinstance(m, Map)
    assert set(m) == {b"port", b"maxclients", b"maxmemory-policy"}
    assert all(isinstance(v, bytes) for v in m.values())
    assert m[b"maxmemory-policy"] == b"allkeys-lru"


def test_info_is_verbatim(c):
    """INFO and CLIENT INFO are verbatim strings (`=n txt:...`) under RESP3
    and bulks under RESP2, with the same text."""
    assert c.cmd("SET", "k", "v") == "OK"
    text = b"# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n"
    assert c.cmd_bytes("INFO", "keyspace") == b"$%d\r\n%s\r\n" % (
        len(text), text)
    c.cmd("HELLO", 3)
    assert c.cmd_bytes("INFO", "keyspace") == b"=%d\r\ntxt:%s\r\n" % (
        len(text) + 4, text)
    info = c.cmd("INFO")
    assert isinstance(info, Verbatim) and info.format == "txt"
    assert info.startswith(b"# Server\r\nredis_version:7.0.")
    ci = c.cmd("CLIENT", "INFO")
    assert isinstance(ci, Verbatim) and ci.format == "txt", ci
    assert ci.startswith(b"id=") and ci.endswith(b"\n")
    c.cmd("HELLO", 2)
    assert type(c.cmd("INFO")) is bytes
    assert type(c.cmd("CLIENT", "INFO")) is bytes


def test_command_flags_are_sets(c):
    """COMMAND INFO's flags (and its category, tip, key-spec and
    subcommand lists) are sets under RESP3, arrays under RESP2; COMMAND
    DOCS is a map. Contents differ (narf lists fewer details), types do
    not."""
    def check(proto):
        entry = c.cmd("COMMAND", "INFO", "get")[0]
        assert len(entry) == 10
        assert entry[:2] == [b"get", 2] and entry[3:6] == [1, 1, 1]
        for i in (2, 6, 7, 8, 9):
            assert isinstance(entry[i], list), (i, entry[i])
            assert isinstance(entry[i], Set) == (proto == 3), (i, entry[i])
        assert sorted(entry[2]) == ["fast", "readonly"]
        docs = c.cmd("COMMAND", "DOCS", "get")
        assert isinstance(docs, Map if proto == 3 else list), docs
        assert c.cmd("COMMAND", "COUNT") > 0

    check(2)
    c.cmd("HELLO", 3)
    check(3)
    full = c.cmd("COMMAND")
    assert isinstance(full, list) and not isinstance(full, Set)
    assert all(isinstance(e[2], Set) for e in full)


@pytest.fixture
def cluster_srv(make_server, kind):
    """narf standalone, or redis-server in cluster mode owning every slot."""
    if kind == "redis":
        return make_server("redis", cluster=True)
    return make_server("narf")


def test_cluster_replies(cluster_srv):
    """CLUSTER INFO and NODES are verbatim strings under RESP3; CLUSTER
    SHARDS' shards and nodes are maps (flat arrays under RESP2); SLOTS,
    KEYSLOT and MYID are unchanged."""
    s = cluster_srv
    with s.raw() as c:
        slots2 = c.cmd_bytes("CLUSTER", "SLOTS")
        shards2 = c.cmd("CLUSTER", "SHARDS")
        assert isinstance(shards2[0], list) and len(shards2[0]) == 4
        assert len(shards2[0][3][0]) == 14
        assert isinstance(c.cmd("CLUSTER", "INFO"), bytes)
        c.cmd("HELLO", 3)
        info = c.cmd("CLUSTER", "INFO")
        assert isinstance(info, Verbatim) and info.format == "txt"
        assert b"cluster_state:ok\r\n" in info
        nodes = c.cmd("CLUSTER", "NODES")
        assert isinstance(nodes, Verbatim) and nodes.format == "txt"
        assert b" myself,master " in nodes and nodes.endswith(b"\n")
        shards = c.cmd("CLUSTER", "SHARDS")
        assert isinstance(shards, list) and len(shards) == 1
        shard = shards[0]
        assert isinstance(shard, Map) and set(shard) == {b"slots", b"nodes"}
        assert shard[b"slots"] == [0, 16383]
        node = shard[b"nodes"][0]
        assert isinstance(node, Map) and set(node) == {
            b"id", b"port", b"ip", b"endpoint", b"role",
            b"replication-offset", b"health"}
        assert node[b"port"] == s.port and node[b"health"] == b"online"
        # Deliberate difference (as in test_datanode.py): Redis 7.0 adds a
        # 4th element per node, an empty map under RESP3 (%0), an empty
        # array under RESP2; narf's 3 elements read the same in both.
        slots3 = c.cmd_bytes("CLUSTER", "SLOTS")
        assert slots3 == slots2.replace(b"*0\r\n", b"%0\r\n")
        assert c.cmd("CLUSTER", "KEYSLOT", "foo") == 12182


# ---------------------------------------------------------------------------
# Switching


def test_switch_back_with_hello_2(c):
    """HELLO 2 brings RESP2's bytes back on the same connection, and HELLO
    3 RESP3's again."""
    for _ in range(2):
        assert hello_bytes(c, 3) == HELLO3
        assert c.cmd_bytes("GET", "nokey") == b"_\r\n"
        assert c.cmd_bytes("CONFIG", "GET", "maxmemory")[:4] == b"%1\r\n"
        assert hello_bytes(c, 2) == HELLO2
        assert c.cmd_bytes("GET", "nokey") == b"$-1\r\n"
        assert c.cmd_bytes("CONFIG", "GET", "maxmemory")[:4] == b"*2\r\n"


def test_pipeline_across_a_switch(c):
    """Requests pipelined in one write across HELLO 3 and HELLO 2 are each
    answered in the protocol in force when they run; also with the
    pipeline cut in the middle of the HELLO."""
    reqs = [("GET", "nokey"), ("HELLO", "3"), ("GET", "nokey"),
            ("MGET", "a", "b"), ("CONFIG", "GET", "maxmemory"),
            ("HELLO",), ("HELLO", "2"), ("GET", "nokey"),
            ("CONFIG", "GET", "maxmemory"), ("HELLO", "3"),
            ("CLIENT", "GETNAME")]
    want = [b"$-1\r\n", HELLO3, b"_\r\n", b"*2\r\n_\r\n_\r\n",
            b"%1\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n", HELLO3, HELLO2,
            b"$-1\r\n", b"*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n", HELLO3,
            b"_\r\n"]
    stream = b"".join(encode(*r) for r in reqs)
    c.send(stream)
    assert [mask_hello(c.read_bytes()) for _ in reqs] == want
    c.cmd("HELLO", 2)
    cut = stream.index(b"HELLO") + 3
    c.send(stream[:cut])
    assert c.read_bytes() == b"$-1\r\n"
    c.send(stream[cut:])
    assert [mask_hello(c.read_bytes()) for _ in reqs[1:]] == want[1:]


# ---------------------------------------------------------------------------
# Clients


CLI_SCRIPT = """SET k v
GET k
GET nokey
MGET k nokey
GETDEL nokey
SET k w NX
SET k w XX GET
CONFIG GET maxmemory
CONFIG GET nomatch
TTL nokey
CLIENT GETNAME
CLIENT SETNAME cli
CLIENT GETNAME
INFO keyspace
COMMAND INFO nosuchcommand
HELLO
DEL k
RANDOMKEY
HELLO 2
GET nokey
CONFIG GET maxmemory
HELLO 3
GET nokey
"""


def cli_transcript(s):
    out = s.cli("-3", "--no-raw", input=CLI_SCRIPT.encode(), timeout=30)
    assert out.returncode == 0, out
    text = out.stdout.decode()
    # What legitimately differs: HELLO's version and id (as a map under
    # RESP3, as `n) ...` lines under RESP2).
    text = re.sub(r'"7\.0\.\d+"', '"VERSION"', text)
    text = re.sub(r'"id" => \(integer\) \d+', '"id" => ID', text)
    return re.sub(r'(\d+\) "id"\n *\d+\) )\(integer\) \d+', r'\1ID', text)


def test_redis_cli_resp3_transcript(make_server):
    """`redis-cli -3` (which says HELLO 3 first) prints the same transcript
    for redis-server and narf: nulls, maps, verbatim INFO, the switch to
    RESP2 and back."""
    want = cli_transcript(make_server("redis"))
    got = cli_transcript(make_server("narf"))
    assert got == want
    assert '1# "maxmemory" => "0"' in want and "(nil)" in want
    assert '1) "maxmemory"' in want  # after HELLO 2
    assert "db0:keys=1,expires=0,avg_ttl=0" in want


def test_redis_py_protocol_3(srv):
    """redis-py 5's protocol=3 client reads narf's RESP3 as Redis's."""
    major = int(redis.__version__.split(".")[0])
    if major < 5:
        pytest.skip("redis-py %s has no protocol=3 (needs 5.0)"
                    % redis.__version__)
    r = srv.client(protocol=3)
    try:
        assert r.get("nokey") is None
        assert r.config_get("maxmemory") == {b"maxmemory": b"0"}
        assert r.info("keyspace") == {}
    finally:
        r.close()


# ---------------------------------------------------------------------------
# A cluster: a RESP3 client of a node that does not own its keys


READY_WAIT = 60.0


def test_resp3_client_on_a_non_owner(make_cluster):
    """Until slice 26 (RESP3 through the proxy), a request forwarded for a
    RESP3 client is answered in RESP2 by the owner; RESP2 is a subset of
    RESP3, so every reply is still a valid frame: a remote miss reads as
    `$-1`, a local one as `_`, a split MGET mixes both in one array."""
    cl = make_cluster(nodes=2)
    node = cl.nodes[0]
    owners = cl.primary_table(cl.map())
    local = next("k%d" % i for i in range(10000)
                 if owners[key_slot("k%d" % i)] == node.addr)
    remote = next("k%d" % i for i in range(10000)
                  if owners[key_slot("k%d" % i)] not in (node.addr, None))
    with RawConn(node.port) as c:
        assert isinstance(c.cmd("HELLO", 3), Map)
        assert c.cmd_bytes("GET", local) == b"_\r\n"
        assert c.cmd_bytes("GET", remote) in (b"$-1\r\n", b"_\r\n")
        assert c.cmd("SET", remote, "v") == "OK"
        assert c.cmd("GET", remote) == b"v"
        got = c.cmd("MGET", local, remote, local)
        assert got[1] == b"v" and got[0] in (None, NULL3) and \
            got[2] in (None, NULL3), got
        assert c.cmd("DEL", remote) == 1
        assert c.cmd("PING") == "PONG"  # still in step

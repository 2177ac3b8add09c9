"""Integration tests of the standalone data node, part two: bad input and
limits, load (pipelines, many clients, vanishing clients), memory limits,
expiry and flow control. Part one (test_datanode.py) holds the command
semantics; both run against redis-server and narf with the same assertions.
"""

import os
import random
import socket
import subprocess
import time

import pytest
import redis

from dn_harness import (HOST, MB, REDIS_SERVER, SANITIZER_MARKS,
                        Closed, DataNode, Err, RawConn, RedisServer, encode,
                        key_slot, wait_until)

from dn_fixtures import (KINDS, OOM, Servers, c, datanode_binary,  # noqa: F401
                         kind, make_server, near, r, srv)

# ---------------------------------------------------------------------------
# Bad input and limits


class Bystander:
    """A second client holding data, to check that nothing it owns is
    disturbed by what another client does."""

    def __init__(self, srv):
        self.srv = srv
        self.c = srv.raw()
        assert self.c.cmd("SET", "bystander", "safe") == "OK"

    def check(self):
        assert self.srv.alive(), "server died"
        assert self.c.cmd("GET", "bystander") == b"safe"
        assert self.c.cmd("PING") == "PONG"
        with self.srv.raw() as fresh:
            assert fresh.cmd("GET", "bystander") == b"safe"
        self.c.close()


def expect_protocol_error(srv, data, message, eof=True):
    """Send data on a new connection; expect the error line (and EOF)."""
    with srv.raw() as c:
        c.send(data)
        rep = c.read()
        assert rep == Err(message), (data[:60], rep)
        if eof:
            assert c.at_eof(3.0), "connection left open after %r" % data[:60]


BAD_FRAMES = [
    (b"*abc\r\n", "ERR Protocol error: invalid multibulk length"),
    (b"*-5x\r\n", "ERR Protocol error: invalid multibulk length"),
    (b"*2147483648\r\n", "ERR Protocol error: invalid multibulk length"),
    (b"*-0\r\n", "ERR Protocol error: invalid multibulk length"),
    (b"*-\r\n", "ERR Protocol error: invalid multibulk length"),
    (b"*-99999999999999999999\r\n",
     "ERR Protocol error: invalid multibulk length"),
    (b"*1\r\n$-5\r\n", "ERR Protocol error: invalid bulk length"),
    (b"*1\r\n$abc\r\n", "ERR Protocol error: invalid bulk length"),
    (b"*1\r\n$99999999999999999999\r\n",
     "ERR Protocol error: invalid bulk length"),
    (b"*1\r\n$536870913\r\n", "ERR Protocol error: invalid bulk length"),
    (b"*1\r\n*1\r\n", "ERR Protocol error: expected '$', got '*'"),
    (b"*2\r\n$3\r\nGET\r\n:5\r\n", "ERR Protocol error: expected '$', got ':'"),
    (b"*1\r\n+PING\r\n", "ERR Protocol error: expected '$', got '+'"),
]


@pytest.mark.parametrize("data,message", BAD_FRAMES,
                         ids=[repr(d)[2:22] for d, _ in BAD_FRAMES])
def test_malformed_multibulk(srv, data, message):
    """Malformed multibulk framing gets Redis's protocol error, the
    connection is closed, and another client and its data are untouched."""
    b = Bystander(srv)
    expect_protocol_error(srv, data, message)
    b.check()


def test_misc_bad_input(srv):
    """A bulk header where '*' is expected is read as an inline command
    (as Redis does), an over-long inline line and a huge unterminated
    multibulk count are protocol errors, and a zero-argument multibulk is
    ignored."""
    b = Bystander(srv)
    with srv.raw() as c:
        c.send(b"$3\r\nGET\r\n")
        assert c.read() == Err(
            "ERR unknown command '$3', with args beginning with: ")
        assert c.read() == Err(
            "ERR wrong number of arguments for 'get' command")
        c.send(b"*0\r\n*-1\r\nPING\r\n")
        assert c.read() == "PONG"
    expect_protocol_error(srv, b"A" * 70000,
                          "ERR Protocol error: too big inline request")
    expect_protocol_error(srv, b"*" + b"1" * 70000,
                          "ERR Protocol error: too big mbulk count string")
    b.check()


def test_nonpositive_multibulk_counts_skipped(srv):
    """A multibulk header with a count of zero or below, down to LLONG_MIN,
    is skipped silently as Redis 7.0 does: the PING after it is the only
    thing answered, whole or sent a byte at a time."""
    data = (b"*-1\r\n*0\r\n*-10\r\n*-2147483649\r\n"
            b"*-9223372036854775808\r\n")
    with srv.raw() as c:
        c.send(data + b"PING\r\n")
        assert c.read() == "PONG"
        c.send(data + encode("ECHO", "after"))
        assert c.read() == b"after"
        for i in range(len(data)):
            c.send(data[i:i + 1])
        c.send(b"PING\r\n")
        assert c.read() == "PONG"
        assert c.cmd("ECHO", "nothing else") == b"nothing else"


def test_value_over_max_value_size(make_server, kind):
    """A bulk longer than --max-value-size (Redis: proto-max-bulk-len) is
    refused at its header and closes only that connection."""
    s = make_server(kind, max_value_size=MB)
    b = Bystander(s)
    expect_protocol_error(
        s, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % (MB + 1),
        "ERR Protocol error: invalid bulk length")
    with s.raw() as c:
        assert c.cmd("SET", "ok", b"x" * MB) == "OK"
        assert c.cmd("STRLEN", "ok") == MB
    b.check()


def test_key_over_max_key_size(make_server):
    """A key longer than --max-key-size gets an error reply, nothing is
    stored, and the connection stays usable."""
    s = make_server("narf", max_key_size=1024)
    b = Bystander(s)
    with s.raw() as c:
        big = "k" * 1025
        for args in (("SET", big, "v"), ("GET", big), ("MSET", "a", "1",
                                                       big, "2"),
                     ("DEL", big)):
            rep = c.cmd(*args)
            assert isinstance(rep, Err) and rep.startswith("ERR "), (
                args[0], rep)
        assert c.cmd("EXISTS", "a") == 0
        assert c.cmd("DBSIZE") == 1
        assert c.cmd("SET", "k" * 1024, "v") == "OK"
        assert c.cmd("PING") == "PONG"
    b.check()


def test_too_many_arguments(make_server):
    """More arguments than --max-multibulk is a protocol error that closes
    the connection; exactly the limit is served."""
    s = make_server("narf", max_multibulk=100)
    b = Bystander(s)
    expect_protocol_error(s, b"*101\r\n",
                          "ERR Protocol error: invalid multibulk length")
    with s.raw() as c:
        assert c.cmd("DEL", *["k%d" % i for i in range(99)]) == 0
    b.check()


def test_declared_huge_bulk_not_allocated(srv):
    """Bulks declared at 100 MB but sent with a few bytes are not allocated
    up front: RSS stays small and the server keeps serving."""
    b = Bystander(srv)
    rss0, vm0 = srv.rss(), srv.vmsize()
    conns = []
    for i in range(20):
        c = srv.raw()
        c.send(b"*3\r\n$3\r\nSET\r\n$2\r\nhk\r\n$104857600\r\nabc")
        conns.append(c)
    time.sleep(0.5)
    with srv.raw() as c:
        assert c.cmd("PING") == "PONG"
    rss1, vm1 = srv.rss(), srv.vmsize()
    for c in conns:
        c.close()
    print("%s: RSS %d -> %d kB, VmSize %d -> %d kB" % (
        srv.kind, rss0 // 1024, rss1 // 1024, vm0 // 1024, vm1 // 1024))
    assert rss1 - rss0 < 40 * MB, "VmRSS grew %d kB" % ((rss1 - rss0) // 1024)
    if rss0 < 25 * MB:  # a sanitizer build starts bigger
        assert rss1 < 50 * MB, "VmRSS %d kB" % (rss1 // 1024)
    if srv.kind == "narf":
        # Stricter than Redis (which reserves the declared size, only
        # untouched): narf must not even reserve it. 20 x 100 MB would show.
        assert vm1 - vm0 < 200 * MB, "VmSize grew %d kB" % (
            (vm1 - vm0) // 1024)
    b.check()


# ---------------------------------------------------------------------------
# Load


def test_pipelined_flood(r):
    """100k SETs through redis-py pipelines (10k per round trip) all land,
    and every value reads back."""
    n, chunk = 100000, 10000
    for start in range(0, n, chunk):
        p = r.pipeline(transaction=False)
        for i in range(start, start + chunk):
            p.set("flood:%d" % i, "val:%d" % i)
        assert p.execute() == [True] * chunk
    assert r.dbsize() == n
    for start in range(0, n, chunk):
        p = r.pipeline(transaction=False)
        for i in range(start, start + chunk):
            p.get("flood:%d" % i)
        got = p.execute()
        want = [("val:%d" % i).encode() for i in range(start, start + chunk)]
        assert got == want


def test_thousand_concurrent_clients(srv):
    """1,000 connections open at once each SET and GET their own key and
    all get correct replies within a bounded time."""
    n = 1000
    deadline = time.monotonic() + 60
    conns = []
    try:
        for i in range(n):
            conns.append(RawConn(srv.port, timeout=20))
        for i, c in enumerate(conns):
            c.send(encode("SET", "cc:%d" % i, "v%d" % i) +
                   encode("GET", "cc:%d" % i))
        for i, c in enumerate(conns):
            assert c.read() == "OK", i
            assert c.read() == ("v%d" % i).encode(), i
        assert time.monotonic() < deadline
        with srv.raw() as probe:
            info = probe.cmd("INFO", "clients").decode()
            connected = int(info.split("connected_clients:")[1].split()[0])
            assert connected >= n + 1, info
            assert probe.cmd("DBSIZE") == n
    finally:
        for c in conns:
            c.close()
    r = srv.client()
    wait_until(lambda: r.info("clients")["connected_clients"] <= 2, 10,
               what="connections released")
    r.close()


def test_clients_vanishing_mid_request(srv):
    """200 clients that close (or reset) halfway through a request leave
    the server healthy, the data intact and no connection leaked."""
    b = Bystander(srv)
    halves = [b"*3\r\n$3\r\nSET\r\n$3\r\nke", b"*3\r\n$3\r\nSET\r\n",
              b"*2\r\n$3\r\nGET", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n"
              + b"x" * 5000, b"GET half", b"*1"]
    for i in range(200):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(halves[i % len(halves)])
        if i % 2:
            # RST instead of FIN.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    b.check()
    r = srv.client()
    assert r.exists("ke", "k", "half") == 0
    wait_until(lambda: r.info("clients")["connected_clients"] <= 1, 5,
               what="half-open connections released")
    assert r.set("after", "1") is True
    r.close()


def test_max_clients(make_server, kind):
    """With --max-clients 50 the 51st connection gets `-ERR max number of
    clients reached` and is closed; a freed place can be taken again."""
    s = make_server(kind, max_clients=50)
    conns = []
    try:
        for i in range(50):
            c = RawConn(s.port, timeout=5)
            assert c.cmd("PING") == "PONG", i
            conns.append(c)
        with RawConn(s.port, timeout=5) as extra:
            assert extra.read() == Err("ERR max number of clients reached")
            assert extra.at_eof(3.0)
        assert conns[0].cmd("SET", "k", "v") == "OK"
        conns.pop().close()
        time.sleep(0.2)

        def retry():
            c = RawConn(s.port, timeout=5)
            try:
                if c.cmd("PING") == "PONG":
                    return c
            except Closed:
                pass
            c.close()
            return None
        conns.append(wait_until(retry, 5, interval=0.1,
                                what="a freed client slot"))
        assert conns[-1].cmd("GET", "k") == b"v"
    finally:
        for c in conns:
            c.close()


def test_idle_timeout(make_server, kind):
    """With --timeout 1 an idle client is closed after about 1-2 s while
    an active one survives."""
    s = make_server(kind, timeout=1)
    active = s.raw()
    idle = s.raw()
    assert idle.cmd("PING") == "PONG"
    t0 = time.monotonic()
    end = t0 + 4
    closed_at = None
    while time.monotonic() < end:
        assert active.cmd("PING") == "PONG"
        if closed_at is None and idle.at_eof(0.25):
            closed_at = time.monotonic() - t0
    active.close()
    idle.close()
    assert closed_at is not None, "idle client still open after 4 s"
    print("%s: idle client closed after %.2f s" % (kind, closed_at))
    assert 0.9 <= closed_at <= 3.0, closed_at


# ---------------------------------------------------------------------------
# Memory


def test_eviction_allkeys_lru(make_server, kind):
    """At --max-memory 20mb with allkeys-lru, 100k 1 KB writes all succeed,
    old keys are evicted (INFO evicted_keys), recent ones kept, and the
    dataset stays under the limit."""
    limit = 20 * MB
    s = make_server(kind, max_memory="20mb", eviction="allkeys-lru")
    r = s.client()
    value = b"x" * 1024
    n, chunk = 100000, 1000
    for start in range(0, n, chunk):
        p = r.pipeline(transaction=False)
        for i in range(start, start + chunk):
            p.set("ev:%06d" % i, value)
        assert p.execute() == [True] * chunk, start
    dbsize = r.dbsize()
    info = r.info()
    print("%s: dbsize %d, evicted %d, used_memory %d, dataset %d" % (
        kind, dbsize, info["evicted_keys"], info["used_memory"],
        info["used_memory_dataset"]))
    assert 5000 <= dbsize < n
    assert info["evicted_keys"] > 0
    assert info["evicted_keys"] >= n - dbsize
    assert info["used_memory_dataset"] <= limit
    recent = r.exists(*["ev:%06d" % i for i in range(n - 1000, n)])
    assert recent >= 900, recent
    if kind == "narf":
        # Both LRU clocks tick once a second, so every key written in the
        # last second looks equally old. redis-server also evicts before
        # reads while over the limit, and may so evict the newest key at
        # the EXISTS above (CI saw exactly that once). narf evicts only to
        # make room for a write, never the key being written, and nothing
        # was written after it.
        assert r.get("ev:%06d" % (n - 1)) == value
    r.close()


def test_noeviction_oom(make_server, kind):
    """At --max-memory 20mb with noeviction, writes eventually get Redis's
    -OOM error while reads and DEL keep working, and DEL makes room."""
    s = make_server(kind, max_memory="20mb", eviction="noeviction")
    r = s.client()
    value = b"y" * 1024
    chunk = 1000
    written = None
    for start in range(0, 200000, chunk):
        p = r.pipeline(transaction=False)
        for i in range(start, start + chunk):
            p.set("oom:%06d" % i, value)
        res = p.execute(raise_on_error=False)
        errs = [x for x in res if x is not True]
        if errs:
            assert all(isinstance(e, redis.exceptions.ResponseError) and
                       str(e) == OOM for e in errs), errs[:3]
            written = start + res.index(errs[0])
            break
    assert written is not None, "no OOM after 200k 1 KB writes"
    print("%s: first OOM after %d keys" % (kind, written))
    assert written > 5000
    with s.raw() as c:
        # Deliberate difference: Redis refuses every write once over the
        # limit; narf never goes over it and refuses only writes that need
        # room it lacks (so a write may still fit after, e.g., a finished
        # rehash freed its old table). Hence "eventually" and a 1 MB APPEND.
        reps = [c.cmd("SET", "one-more:%d" % i, value) for i in range(100)]
        assert Err(OOM) in reps, reps
        assert set(reps) <= {"OK", Err(OOM)}, reps
        assert c.cmd("APPEND", "oom:000000", b"z" * MB) == Err(OOM)
        assert c.cmd("GET", "oom:000000") == value
        assert c.cmd("EXISTS", "oom:000001") == 1
        assert c.cmd("DEL", "oom:000000") == 1
        assert c.cmd("DEL", *["oom:%06d" % i for i in range(1, 3001)]) == 3000
        assert c.cmd("SET", "one-more", value) == "OK"
        assert c.cmd("GET", "one-more") == value
        assert c.cmd("GET", "oom:005000") == value
    r.close()


# ---------------------------------------------------------------------------
# Expiry


def test_expiry_lazy_and_active(srv):
    """10k keys with PX 100 are gone for GET after 200 ms, and without being
    touched DBSIZE drops to the persistent keys within ~2 s."""
    r = srv.client()
    n, chunk = 10000, 2000
    for start in range(0, n, chunk):
        p = r.pipeline(transaction=False)
        for i in range(start, start + chunk):
            p.set("px:%d" % i, "v", px=100)
        assert p.execute() == [True] * chunk
    r.mset({"keep:%d" % i: "v" for i in range(10)})
    t0 = time.monotonic()
    time.sleep(0.25)
    sample = random.Random(3).sample(range(n), 100)
    p = r.pipeline(transaction=False)
    for i in sample:
        p.get("px:%d" % i)
    assert p.execute() == [None] * 100
    wait_until(lambda: r.dbsize() == 10, 3.0, interval=0.05,
               what="active expiry of 10k keys")
    took = time.monotonic() - t0
    print("%s: DBSIZE reached 10 %.2f s after the writes" % (srv.kind, took))
    assert r.info("stats")["expired_keys"] >= n
    assert r.mget(*["keep:%d" % i for i in range(10)]) == [b"v"] * 10
    assert r.info("keyspace")["db0"]["expires"] == 0
    r.close()


# ---------------------------------------------------------------------------
# Added checks: SCAN across growth, query buffer limit, flags


def test_scan_during_growth(r):
    """A SCAN never misses a key present from its start to its end, even
    while 50k other keys are added under it (table resizes)."""
    base = {("base:%d" % i).encode() for i in range(1000)}
    r.mset({k: b"v" for k in base})
    seen = set()
    cursor, calls, added = 0, 0, 0
    while calls < 100000:
        cursor, keys = r.scan(cursor, count=20)
        calls += 1
        seen.update(keys)
        if added < 50000:
            p = r.pipeline(transaction=False)
            for i in range(added, added + 1000):
                p.set("grow:%d" % i, "v")
            p.execute()
            added += 1000
        if cursor == 0:
            break
    assert cursor == 0, "SCAN did not finish in %d calls" % calls
    missing = base - seen
    assert not missing, "%d base keys missed, e.g. %r" % (
        len(missing), sorted(missing)[:5])


def test_query_buffer_limit(make_server, kind):
    """A request bigger than --max-query-buffer (Redis:
    client-query-buffer-limit) closes that client only; nothing is
    stored."""
    s = make_server(kind, max_query_buffer="1mb")
    b = Bystander(s)
    with s.raw() as c:
        try:
            c.send(encode("SET", "big", b"z" * (3 * MB)))
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert c.at_eof(5.0), "client over its query buffer left open"
    with s.raw() as c:
        assert c.cmd("EXISTS", "big") == 0
    b.check()


BAD_FLAGS = [
    (["--max-memory", "lots"], "--max-memory"),
    (["--max-memory", "-5mb"], "--max-memory"),
    (["--eviction", "volatile-lru"], "--eviction"),
    (["--port", "0"], "--port"),
    (["--port", "70000"], "--port"),
    (["--port", "12ab"], "--port"),
    (["--max-clients", "0"], "--max-clients"),
    (["--max-peer-links", "many"], "--max-peer-links"),
    (["--max-key-size", "0"], "--max-key-size"),
    (["--max-value-size", "huge"], "--max-value-size"),
    (["--max-multibulk", "0"], "--max-multibulk"),
    (["--timeout", "-1"], "--timeout"),
    (["--log-level", "loud"], "--log-level"),
    (["--protected-mode", "maybe"], "--protected-mode"),
    (["--requirepass-file", "/nonexistent/narf-pass"], "--requirepass-file"),
    (["--cluster-secret-file", "/nonexistent/narf-secret"],
     "--cluster-secret-file"),
    (["--on-stop", "vanish"], "--on-stop"),
    (["--leave-timeout", "soon"], "--leave-timeout"),
    (["--sync-rate", "fast"], "--sync-rate"),
    (["--no-such-flag"], "--no-such-flag"),
    (["--port"], "--port"),
    (["stray"], "stray"),
]


def test_bad_flags():
    """Every malformed flag exits 2 at once with a message naming it;
    --help lists every flag and exits 0."""
    binary = datanode_binary()
    env = dict(os.environ)
    for args, name in BAD_FLAGS:
        out = subprocess.run([binary, "--standalone"] + args,
                             capture_output=True, text=True, timeout=10,
                             env=env, stdin=subprocess.DEVNULL)
        assert out.returncode == 2, (args, out.returncode, out.stderr)
        assert name in out.stderr, (args, out.stderr)
    out = subprocess.run([binary, "--help"], capture_output=True, text=True,
                         timeout=10, stdin=subprocess.DEVNULL)
    assert out.returncode == 0
    for flag in ("--standalone", "--port", "--bind", "--max-memory",
                 "--eviction", "--requirepass-file", "--cluster-secret-file",
                 "--max-clients", "--max-peer-links", "--max-key-size",
                 "--max-value-size",
                 "--max-multibulk", "--max-query-buffer", "--timeout",
                 "--log-level", "--protected-mode"):
        assert flag in out.stdout, flag


def test_binary_safe_keys_and_values(r, c):
    """Keys and values with NUL, CR, LF and high bytes are stored, listed
    and removed intact."""
    keys = [b"k\x00ey", b"k\r\nx", b"\xff\xfe", b" spaced key "]
    for i, k in enumerate(keys):
        assert r.set(k, b"v\x00\r\n%d" % i) is True
    for i, k in enumerate(keys):
        assert r.get(k) == b"v\x00\r\n%d" % i
    assert set(r.keys("*")) == set(keys)
    assert c.cmd("EXISTS", *keys) == len(keys)
    assert r.delete(*keys) == len(keys)
    assert r.dbsize() == 0


def read_replies(sock, n, deadline_s=60.0, chunk=65536, pause=0.0):
    """Read n RESP bulk/simple replies from a raw socket, slowly if asked;
    returns how many arrived before the deadline or EOF."""
    import socket as _socket
    buf = b""
    got = 0
    end = time.monotonic() + deadline_s
    sock.settimeout(1.0)
    while got < n and time.monotonic() < end:
        try:
            data = sock.recv(chunk)
        except _socket.timeout:
            continue
        if not data:
            break
        buf += data
        while True:
            if buf.startswith(b"$"):
                nl = buf.find(b"\r\n")
                if nl < 0:
                    break
                size = int(buf[1:nl])
                total = nl + 2 + (size + 2 if size >= 0 else 0)
                if len(buf) < total:
                    break
                buf = buf[total:]
            else:
                nl = buf.find(b"\r\n")
                if nl < 0:
                    break
                buf = buf[nl + 2:]
            got += 1
        if pause:
            time.sleep(pause)
    return got


def test_slow_reader_of_a_long_pipeline_gets_every_reply(srv):
    """A client that pipelines 20k GETs of a 2 KB value and reads slowly
    receives all 20k replies: pausing for output never stalls the
    connection for good."""
    import socket as _socket
    r = srv.client()
    r.set("v", "x" * 2048)
    s = _socket.create_connection((HOST, srv.port), timeout=5)
    s.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, 16384)
    s.sendall(b"*2\r\n$3\r\nGET\r\n$1\r\nv\r\n" * 20000)
    assert read_replies(s, 20000, pause=0.001) == 20000
    s.close()


def test_pipeline_of_large_replies_is_served_not_dropped(srv):
    """400 pipelined GETs of a 1 MB value in one write are all answered
    (replies are produced as they drain, not all at once and dropped)."""
    import socket as _socket
    r = srv.client()
    r.set("big", "y" * (1 << 20))
    s = _socket.create_connection((HOST, srv.port), timeout=5)
    s.sendall(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" * 400)
    assert read_replies(s, 400, chunk=1 << 20) == 400
    s.close()

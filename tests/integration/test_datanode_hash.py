"""Hashes against Redis 7.0 (issue 16, slice 11): every test runs against a
real redis-server and `datanode --standalone` with the same assertions, as
test_datanode.py does for strings. Exact replies go through RawConn.

Run: NARF_BUILD=/abs/build /usr/bin/python3 -m pytest -q \
         tests/integration/test_datanode_hash.py
"""

import pytest

from dn_harness import Err

from dn_fixtures import (KINDS, OOM, Servers, c, datanode_binary,  # noqa: F401
                         kind, make_server, near, r, srv)

WRONGTYPE = Err("WRONGTYPE Operation against a key holding the wrong kind "
                "of value")


def pairs(flat):
    """A flat field/value reply as a dict."""
    assert len(flat) % 2 == 0
    return dict(zip(flat[0::2], flat[1::2]))


def test_hset_hget_basics(c):
    """HSET counts new fields only, HGET/HMGET/HEXISTS/HLEN/HSTRLEN read
    them back, a missing field or key is nil or 0, HSETNX leaves a field
    alone, HMSET answers OK."""
    assert c.cmd("HSET", "h", "a", "1", "b", "2") == 2
    assert c.cmd("HSET", "h", "a", "10", "c", "3") == 1
    assert c.cmd("HGET", "h", "a") == b"10"
    assert c.cmd("HGET", "h", "zz") is None
    assert c.cmd("HGET", "nokey", "a") is None
    assert c.cmd("HMGET", "h", "a", "zz", "c") == [b"10", None, b"3"]
    assert c.cmd("HMGET", "nokey", "a", "b") == [None, None]
    assert c.cmd("HEXISTS", "h", "b") == 1
    assert c.cmd("HEXISTS", "h", "zz") == 0
    assert c.cmd("HEXISTS", "nokey", "b") == 0
    assert c.cmd("HLEN", "h") == 3
    assert c.cmd("HLEN", "nokey") == 0
    assert c.cmd("HSTRLEN", "h", "a") == 2
    assert c.cmd("HSTRLEN", "h", "zz") == 0
    assert c.cmd("HSETNX", "h", "a", "x") == 0
    assert c.cmd("HSETNX", "h", "d", "4") == 1
    assert c.cmd("HGET", "h", "a") == b"10"
    assert c.cmd("HMSET", "h", "e", "5", "f", "6") == "OK"
    assert c.cmd("HLEN", "h") == 6
    assert c.cmd("TYPE", "h") == "hash"


def test_hdel_removes_emptied_key(c):
    """HDEL counts the fields it removed (a field named twice once) and
    deletes the key with its last field, as Redis."""
    assert c.cmd("HSET", "h", "a", "1", "b", "2", "c", "3") == 3
    assert c.cmd("HDEL", "h", "a", "a", "zz") == 1
    assert c.cmd("HDEL", "nokey", "a") == 0
    assert c.cmd("HDEL", "h", "b", "c") == 2
    assert c.cmd("EXISTS", "h") == 0
    assert c.cmd("TYPE", "h") == "none"
    assert c.cmd("HLEN", "h") == 0


def test_arity_errors(c):
    """Odd field/value lists and short commands get Redis's arity errors,
    and the connection goes on."""
    for args, name in ((("HSET", "h"), "hset"),
                       (("HSET", "h", "f"), "hset"),
                       (("HSET", "h", "f", "v", "g"), "hset"),
                       (("HMSET", "h", "f"), "hmset"),
                       (("HMSET", "h", "f", "v", "g"), "hmset"),
                       (("HGET", "h"), "hget"),
                       (("HSETNX", "h", "f"), "hsetnx"),
                       (("HDEL", "h"), "hdel"),
                       (("HINCRBY", "h", "f"), "hincrby"),
                       (("HGETALL",), "hgetall")):
        assert c.cmd(*args) == Err(
            "ERR wrong number of arguments for '%s' command" % name), args
    assert c.cmd("EXISTS", "h") == 0
    assert c.cmd("PING") == "PONG"


def test_hincrby(c):
    """HINCRBY creates, adds, refuses a non-integer field or increment and
    an overflow, leaving the value as it was."""
    assert c.cmd("HINCRBY", "h", "n", 5) == 5
    assert c.cmd("HINCRBY", "h", "n", -7) == -2
    assert c.cmd("HSET", "h", "s", "abc", "f", "1.5", "big",
                 "9223372036854775807") == 3
    assert c.cmd("HINCRBY", "h", "s", 1) == Err(
        "ERR hash value is not an integer")
    assert c.cmd("HINCRBY", "h", "f", 1) == Err(
        "ERR hash value is not an integer")
    assert c.cmd("HINCRBY", "h", "n", "x") == Err(
        "ERR value is not an integer or out of range")
    assert c.cmd("HINCRBY", "h", "big", 1) == Err(
        "ERR increment or decrement would overflow")
    assert c.cmd("HGET", "h", "big") == b"9223372036854775807"
    assert c.cmd("HINCRBY", "h", "n", "-9223372036854775808") == Err(
        "ERR increment or decrement would overflow")
    assert c.cmd("HGET", "h", "n") == b"-2"


def test_hincrbyfloat(c):
    """HINCRBYFLOAT prints as INCRBYFLOAT does (no trailing zeros, no
    exponent), and refuses non-floats, NaN and infinity."""
    assert c.cmd("HINCRBYFLOAT", "h", "x", "10.5") == b"10.5"
    assert c.cmd("HINCRBYFLOAT", "h", "x", "0.1") == b"10.6"
    assert c.cmd("HSET", "h", "e", "5.0e3") == 1
    assert c.cmd("HINCRBYFLOAT", "h", "e", "2.0e2") == b"5200"
    assert c.cmd("HGET", "h", "e") == b"5200"
    assert c.cmd("HINCRBYFLOAT", "h", "i", 3) == b"3"
    assert c.cmd("HSET", "h", "s", "abc") == 1
    assert c.cmd("HINCRBYFLOAT", "h", "s", 1) == Err(
        "ERR hash value is not a float")
    assert c.cmd("HINCRBYFLOAT", "h", "x", "abc") == Err(
        "ERR value is not a valid float")
    assert c.cmd("HINCRBYFLOAT", "h", "x", "inf") == Err(
        "ERR value is NaN or Infinity")
    # long double arithmetic, as Redis: 1e4932 twice is infinity.
    assert c.cmd("HSET", "h", "m", "1e4932") == 1
    assert c.cmd("HINCRBYFLOAT", "h", "m", "1e4932") == Err(
        "ERR increment would produce NaN or Infinity")
    assert c.cmd("HGET", "h", "x") == b"10.6"


def test_getall_keys_vals_small_and_big(c):
    """HGETALL/HKEYS/HVALS return every pair; a small hash keeps insertion
    order (listpack) in both servers, a big one is compared as a map."""
    assert c.cmd("HSET", "s", "z", "1", "a", "2", "m", "3") == 3
    assert c.cmd("HGETALL", "s") == [b"z", b"1", b"a", b"2", b"m", b"3"]
    assert c.cmd("HKEYS", "s") == [b"z", b"a", b"m"]
    assert c.cmd("HVALS", "s") == [b"1", b"2", b"3"]
    assert c.cmd("HGETALL", "nokey") == []
    assert c.cmd("HKEYS", "nokey") == []
    want = {("f%d" % i).encode(): ("v%d" % i).encode() for i in range(300)}
    args = []
    for k, v in want.items():
        args += [k, v]
    assert c.cmd("HSET", "b", *args) == 300
    assert pairs(c.cmd("HGETALL", "b")) == want
    assert sorted(c.cmd("HKEYS", "b")) == sorted(want)
    assert sorted(c.cmd("HVALS", "b")) == sorted(want.values())


def test_encoding_converts_at_thresholds(c):
    """OBJECT ENCODING: listpack up to 512 fields (7.0.15's
    hash-max-listpack-entries) and 64-byte values, hashtable at the 513th
    field or a 65-byte field or value, and it does not go back when the
    hash shrinks."""
    args = []
    for i in range(512):
        args += ["f%d" % i, i]
    c.cmd("HSET", "n", *args)
    assert c.cmd("OBJECT", "ENCODING", "n") == b"listpack"
    c.cmd("HSET", "n", "f512", 1)
    assert c.cmd("OBJECT", "ENCODING", "n") == b"hashtable"
    c.cmd("HDEL", "n", *["f%d" % i for i in range(500)])
    assert c.cmd("OBJECT", "ENCODING", "n") == b"hashtable"
    assert c.cmd("HLEN", "n") == 13
    c.cmd("HSET", "v", "k", "x" * 64)
    assert c.cmd("OBJECT", "ENCODING", "v") == b"listpack"
    c.cmd("HSET", "v", "k2", "x" * 65)
    assert c.cmd("OBJECT", "ENCODING", "v") == b"hashtable"
    c.cmd("HSET", "w", "y" * 65, "1")
    assert c.cmd("OBJECT", "ENCODING", "w") == b"hashtable"
    assert c.cmd("HGET", "w", "y" * 65) == b"1"
    assert c.cmd("OBJECT", "ENCODING", "nokey") is None


def test_binary_and_big_elements(c):
    """Fields and values with NUL, CR and LF bytes, an empty field and value,
    integer-looking values with leading zeros, and a 1 MB value round-trip
    exactly."""
    f = b"\x00a\r\nb\xff"
    assert c.cmd("HSET", "h", f, b"\r\n\x00", "", "", "z", "007", "m",
                 "-0") == 4
    assert c.cmd("HGET", "h", f) == b"\r\n\x00"
    assert c.cmd("HGET", "h", "") == b""
    assert c.cmd("HGET", "h", "z") == b"007"
    assert c.cmd("HGET", "h", "m") == b"-0"
    big = b"x" * (1 << 20)
    assert c.cmd("HSET", "h", "big", big) == 1
    assert c.cmd("HGET", "h", "big") == big
    assert c.cmd("HSTRLEN", "h", "big") == 1 << 20
    assert c.cmd("HSET", "i", "n", "12", "neg", "-9223372036854775808") == 2
    assert c.cmd("HGET", "i", "neg") == b"-9223372036854775808"
    assert c.cmd("HINCRBY", "i", "n", 1) == 13


def test_hrandfield(c):
    """HRANDFIELD: one field; a positive count gives distinct fields (all of
    them when it exceeds HLEN), a negative one exactly |count| with repeats;
    WITHVALUES pairs match the hash; a missing key is nil or empty."""
    c.cmd("HSET", "h", "a", "1", "b", "2", "c", "3")
    assert c.cmd("HRANDFIELD", "h") in (b"a", b"b", b"c")
    got = c.cmd("HRANDFIELD", "h", 2)
    assert len(got) == 2 and len(set(got)) == 2
    assert sorted(c.cmd("HRANDFIELD", "h", 10)) == [b"a", b"b", b"c"]
    got = c.cmd("HRANDFIELD", "h", -10)
    assert len(got) == 10 and set(got) <= {b"a", b"b", b"c"}
    flat = c.cmd("HRANDFIELD", "h", -5, "WITHVALUES")
    assert len(flat) == 10
    for f, v in zip(flat[0::2], flat[1::2]):
        assert c.cmd("HGET", "h", f) == v
    assert pairs(c.cmd("HRANDFIELD", "h", 3, "WITHVALUES")) == {
        b"a": b"1", b"b": b"2", b"c": b"3"}
    assert c.cmd("HRANDFIELD", "h", 0) == []
    assert c.cmd("HRANDFIELD", "nokey") is None
    assert c.cmd("HRANDFIELD", "nokey", 3) == []
    assert c.cmd("HRANDFIELD", "h", "x") == Err(
        "ERR value is not an integer or out of range")
    assert c.cmd("HRANDFIELD", "h", 1, "WITHVALUE") == Err("ERR syntax error")
    assert c.cmd("HRANDFIELD", "h", -9223372036854775808, "WITHVALUES") == \
        Err("ERR value is out of range, value must between "
            "-9223372036854775807 and 9223372036854775807")
    assert c.cmd("HRANDFIELD", "h", -4611686018427387904, "WITHVALUES") == \
        Err("ERR value is out of range")
    # A big hash: distinct picks, every pick a real field.
    args = []
    for i in range(500):
        args += ["f%d" % i, i]
    c.cmd("HSET", "big", *args)
    got = c.cmd("HRANDFIELD", "big", 50, "WITHVALUES")
    d = pairs(got)
    assert len(d) == 50
    for f, v in d.items():
        assert b"f" + v == f


def test_hscan(c):
    """HSCAN walks every field of a small and a big hash, MATCH filters,
    COUNT is checked, a bad cursor is an error."""
    c.cmd("HSET", "s", "a1", "1", "b1", "2", "a2", "3")
    cur, items = c.cmd("HSCAN", "s", 0)
    assert cur == b"0"
    assert pairs(items) == {b"a1": b"1", b"b1": b"2", b"a2": b"3"}
    cur, items = c.cmd("HSCAN", "s", 0, "MATCH", "a*")
    assert pairs(items) == {b"a1": b"1", b"a2": b"3"}
    args = []
    for i in range(1000):
        args += ["f%d" % i, i]
    c.cmd("HSET", "b", *args)
    seen, cur, calls = {}, b"0", 0
    while True:
        cur, items = c.cmd("HSCAN", "b", cur, "COUNT", 50)
        seen.update(pairs(items))
        calls += 1
        if cur == b"0" or calls > 10000:
            break
    assert cur == b"0"
    assert len(seen) == 1000 and seen[b"f7"] == b"7"
    assert c.cmd("HSCAN", "nokey", 0) == [b"0", []]
    # Redis 7.0 looks the key up before it reads the options
    assert c.cmd("HSCAN", "nokey", 0, "BOGUS", 1) == [b"0", []]
    assert c.cmd("HSCAN", "nokey", 0, "COUNT", 0) == [b"0", []]
    c.cmd("SET", "str", "v")
    assert c.cmd("HSCAN", "str", 0, "BOGUS", 1) == WRONGTYPE
    assert c.cmd("HSCAN", "s", "abc") == Err("ERR invalid cursor")
    assert c.cmd("HSCAN", "s", 0, "COUNT", 0) == Err("ERR syntax error")
    assert c.cmd("HSCAN", "s", 0, "COUNT") == Err("ERR syntax error")
    assert c.cmd("HSCAN", "s", 0, "BOGUS", 1) == Err("ERR syntax error")


def test_wrongtype_both_ways(c):
    """Hash commands on a string and string commands on a hash answer
    WRONGTYPE and change nothing; SET replaces a hash; MGET reads nil;
    DEL, EXISTS, TYPE, EXPIRE and RENAME work on any type."""
    c.cmd("SET", "s", "v")
    c.cmd("HSET", "h", "f", "1")
    for args in (("HSET", "s", "f", "v"), ("HGET", "s", "f"),
                 ("HMGET", "s", "f"), ("HDEL", "s", "f"), ("HLEN", "s"),
                 ("HGETALL", "s"), ("HINCRBY", "s", "f", 1),
                 ("HINCRBYFLOAT", "s", "f", 1), ("HRANDFIELD", "s"),
                 ("HSCAN", "s", 0), ("HEXISTS", "s", "f"),
                 ("HSTRLEN", "s", "f"), ("HKEYS", "s"), ("HVALS", "s"),
                 ("HSETNX", "s", "f", "v"),
                 ("GET", "h"), ("GETSET", "h", "x"), ("GETDEL", "h"),
                 ("GETEX", "h"), ("STRLEN", "h"), ("APPEND", "h", "x"),
                 ("GETRANGE", "h", 0, 1), ("SETRANGE", "h", 0, "x"),
                 ("INCR", "h"), ("DECRBY", "h", 2),
                 ("INCRBYFLOAT", "h", 1), ("SET", "h", "x", "GET")):
        assert c.cmd(*args) == WRONGTYPE, args
    assert c.cmd("GET", "s") == b"v"
    assert c.cmd("HGET", "h", "f") == b"1"
    assert c.cmd("MGET", "s", "h", "nokey") == [b"v", None, None]
    assert c.cmd("SETNX", "h", "x") == 0
    assert c.cmd("EXISTS", "h", "s") == 2
    assert c.cmd("EXPIRE", "h", 100) == 1
    assert 0 < c.cmd("TTL", "h") <= 100
    assert c.cmd("PERSIST", "h") == 1
    assert c.cmd("TTL", "h") == -1
    assert c.cmd("RENAME", "h", "h2") == "OK"
    assert c.cmd("TYPE", "h2") == "hash"
    assert c.cmd("HGET", "h2", "f") == b"1"
    assert c.cmd("RENAME", "s", "h2") == "OK"
    assert c.cmd("TYPE", "h2") == "string"
    c.cmd("HSET", "h3", "f", "1")
    assert c.cmd("SET", "h3", "plain") == "OK"
    assert c.cmd("GET", "h3") == b"plain"
    c.cmd("HSET", "h4", "f", "1")
    assert c.cmd("DEL", "h4") == 1
    assert c.cmd("EXISTS", "h4") == 0


def test_expiry_of_a_hash(c):
    """A hash with a TTL expires whole, and a later HSET starts a new one."""
    c.cmd("HSET", "h", "f", "1")
    assert c.cmd("PEXPIRE", "h", 50) == 1
    import time
    time.sleep(0.2)
    assert c.cmd("HGET", "h", "f") is None
    assert c.cmd("EXISTS", "h") == 0
    assert c.cmd("HSET", "h", "g", "2") == 1
    assert c.cmd("HGETALL", "h") == [b"g", b"2"]


def test_scan_type_and_object(c):
    """SCAN TYPE filters by type, an unknown type name matches nothing;
    OBJECT ENCODING knows strings."""
    c.cmd("SET", "s", "v")
    c.cmd("SET", "n", "12345")
    c.cmd("SET", "l", "x" * 45)
    c.cmd("HSET", "h", "f", "1")
    assert c.cmd("SCAN", 0, "TYPE", "hash", "COUNT", 100)[1] == [b"h"]
    assert sorted(c.cmd("SCAN", 0, "TYPE", "string", "COUNT", 100)[1]) == \
        [b"l", b"n", b"s"]
    assert c.cmd("SCAN", 0, "TYPE", "nosuchtype", "COUNT", 100)[1] == []
    assert c.cmd("OBJECT", "ENCODING", "s") == b"embstr"
    assert c.cmd("OBJECT", "ENCODING", "n") == b"int"
    assert c.cmd("OBJECT", "ENCODING", "l") == b"raw"


@pytest.mark.parametrize("kind", KINDS)
def test_hash_oom_under_noeviction(make_server, kind):
    """Under noeviction a hash write that does not fit is refused with OOM
    and the hash keeps what it had; reads and deletes still work."""
    s = make_server(kind, max_memory=4 * 1024 * 1024, eviction="noeviction")
    with s.raw() as c:
        big = "x" * 1000
        refused = None
        for i in range(20000):
            rep = c.cmd("HSET", "h", "f%d" % i, big)
            if rep != 1:
                refused = (i, rep)
                break
        assert refused is not None, "4 MB never filled"
        i, rep = refused
        assert rep == Err(OOM)
        assert c.cmd("HLEN", "h") == i
        assert c.cmd("HGET", "h", "f0") == big.encode()
        assert c.cmd("DEL", "h") == 1
        assert c.cmd("HSET", "h", "f", "v") == 1


def test_hash_replies_in_resp3(c):
    """Under HELLO 3: HGETALL is a map, a missing HGET is `_`, HMGET's
    misses are `_`, HRANDFIELD WITHVALUES gives [field, value] pairs, and
    HKEYS stays an array; exact bytes where the order is fixed."""
    from dn_harness import Map, NULL3
    c.cmd("HSET", "h", "a", "1", "b", "2")
    c.cmd("HELLO", 3)
    assert c.cmd_bytes("HGETALL", "h") == \
        b"%2\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n"
    assert c.cmd("HGETALL", "h") == Map({b"a": b"1", b"b": b"2"})
    assert c.cmd_bytes("HGETALL", "nokey") == b"%0\r\n"
    assert c.cmd_bytes("HGET", "h", "zz") == b"_\r\n"
    assert c.cmd("HMGET", "h", "a", "zz") == [b"1", NULL3]
    assert c.cmd_bytes("HKEYS", "h") == b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    got = c.cmd("HRANDFIELD", "h", 2, "WITHVALUES")
    assert sorted(got) == [[b"a", b"1"], [b"b", b"2"]]
    got = c.cmd("HRANDFIELD", "h", -3, "WITHVALUES")
    assert len(got) == 3 and all(len(p) == 2 for p in got)
    assert c.cmd_bytes("HRANDFIELD", "nokey") == b"_\r\n"
    assert c.cmd_bytes("OBJECT", "ENCODING", "nokey") == b"_\r\n"
    assert c.cmd("HINCRBYFLOAT", "h", "a", "0.5") == b"1.5"


def test_config_thresholds(c):
    """CONFIG SET/GET of the encoding thresholds as Redis 7.0: several at
    once, the old ziplist names as aliases, Redis's errors for a bad value,
    a duplicate or an unknown name; a lower threshold converts the next
    write's hash, and existing hashes never convert back."""
    assert c.cmd("CONFIG", "SET", "hash-max-listpack-entries", 4,
                 "hash-max-listpack-value", 8) == "OK"
    got = c.cmd("CONFIG", "GET", "hash-max-listpack-*")
    assert dict(zip(got[0::2], got[1::2])) == {
        b"hash-max-listpack-entries": b"4", b"hash-max-listpack-value": b"8"}
    assert c.cmd("CONFIG", "GET", "hash-max-ziplist-entries") == [
        b"hash-max-ziplist-entries", b"4"]
    c.cmd("HSET", "h", "a", 1, "b", 2, "c", 3, "d", 4)
    assert c.cmd("OBJECT", "ENCODING", "h") == b"listpack"
    c.cmd("HSET", "h", "e", 5)
    assert c.cmd("OBJECT", "ENCODING", "h") == b"hashtable"
    c.cmd("HSET", "v", "k", "123456789")
    assert c.cmd("OBJECT", "ENCODING", "v") == b"hashtable"
    assert c.cmd("CONFIG", "SET", "hash-max-ziplist-entries", 512) == "OK"
    assert c.cmd("HDEL", "h", "a", "b", "c") == 3
    assert c.cmd("OBJECT", "ENCODING", "h") == b"hashtable"
    assert c.cmd("CONFIG", "SET", "hash-max-listpack-entries", "abc") == Err(
        "ERR CONFIG SET failed (possibly related to argument "
        "'hash-max-listpack-entries') - argument couldn't be parsed into an "
        "integer")
    assert c.cmd("CONFIG", "SET", "hash-max-listpack-entries", -1) == Err(
        "ERR CONFIG SET failed (possibly related to argument "
        "'hash-max-listpack-entries') - argument must be between 0 and "
        "9223372036854775807 inclusive")
    assert c.cmd("CONFIG", "SET", "hash-max-listpack-entries", 5,
                 "hash-max-listpack-entries", 6) == Err(
        "ERR CONFIG SET failed (possibly related to argument "
        "'hash-max-listpack-entries') - duplicate parameter")
    assert c.cmd("CONFIG", "SET", "nosuch", 1) == Err(
        "ERR Unknown option or number of arguments for CONFIG SET - "
        "'nosuch'")
    assert c.cmd("CONFIG", "SET", "hash-max-listpack-entries") == Err(
        "ERR wrong number of arguments for 'config|set' command")
    assert c.cmd("CONFIG", "GET", "hash-max-listpack-entries") == [
        b"hash-max-listpack-entries", b"512"]
    assert c.cmd("CONFIG", "SET", "list-max-listpack-size", -3) == "OK"
    assert c.cmd("CONFIG", "GET", "list-max-listpack-size") == [
        b"list-max-listpack-size", b"-3"]


def test_copy_every_type(c):
    """COPY as Redis 7.0: every type with its TTL, a copy independent of its
    source, REPLACE, DB 0 only, a missing source, the same key, a syntax
    error."""
    c.cmd("SET", "s", "v")
    c.cmd("HSET", "h", "a", "1", "b", "2")
    c.cmd("RPUSH", "l", "x", "y", "z")
    c.cmd("SADD", "st", "1", "2", "m")
    c.cmd("ZADD", "z", "1.5", "a", "-2", "b")
    c.cmd("PEXPIRE", "h", 100000)
    for k in ("s", "h", "l", "st", "z"):
        assert c.cmd("COPY", k, k + "2") == 1, k
        assert c.cmd("TYPE", k + "2") == c.cmd("TYPE", k)
    assert c.cmd("HGETALL", "h2") == [b"a", b"1", b"b", b"2"]
    assert 0 < c.cmd("PTTL", "h2") <= 100000
    assert c.cmd("PTTL", "l2") == -1
    assert c.cmd("LRANGE", "l2", 0, -1) == [b"x", b"y", b"z"]
    assert sorted(c.cmd("SMEMBERS", "st2")) == [b"1", b"2", b"m"]
    assert c.cmd("ZRANGE", "z2", 0, -1, "WITHSCORES") == [
        b"b", b"-2", b"a", b"1.5"]
    c.cmd("HSET", "h2", "c", "3")
    assert c.cmd("HLEN", "h") == 2
    assert c.cmd("COPY", "s", "h2") == 0
    assert c.cmd("COPY", "s", "h2", "REPLACE") == 1
    assert c.cmd("GET", "h2") == b"v"
    assert c.cmd("COPY", "s", "x", "DB", 0) == 1
    assert c.cmd("COPY", "nokey", "y") == 0
    assert c.cmd("COPY", "s", "s") == Err(
        "ERR source and destination objects are the same")
    assert c.cmd("COPY", "s", "y", "foo") == Err("ERR syntax error")
    assert c.cmd("COPY", "s", "y", "DB", "x") == Err(
        "ERR value is not an integer or out of range")

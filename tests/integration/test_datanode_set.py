"""Sets against Redis 7.0 (issue 16, slices 13-14): every test runs against
a real redis-server (Debian's 7.0.15) and `datanode --standalone` with the
same assertions, as test_datanode_hash.py does for hashes. Exact replies go
through RawConn; where the order is Redis's own (an intset walks in
ascending order, and SUNION/SDIFF reply in the order of the set they
build) the bytes are compared, elsewhere the contents.

Run: NARF_BUILD=/abs/build /usr/bin/python3 -m pytest -q \
         tests/integration/test_datanode_set.py
"""

import time

import pytest

from dn_harness import NULL3, Err, Set

from dn_fixtures import (KINDS, OOM, Servers, c, datanode_binary,  # noqa: F401
                         kind, make_server, near, r, srv)

WRONGTYPE = Err("WRONGTYPE Operation against a key holding the wrong kind "
                "of value")
NOT_POSITIVE = Err("ERR value is out of range, must be positive")
NOT_INT = Err("ERR value is not an integer or out of range")


def bulks(*items):
    """The RESP bytes of a sequence of bulk strings."""
    return b"".join(b"$%d\r\n%s\r\n" % (len(i), i)
                    for i in (x if isinstance(x, bytes) else str(x).encode()
                              for x in items))


def sadd_range(c, key, members):
    members = list(members)
    for i in range(0, len(members), 1000):
        c.cmd("SADD", key, *members[i:i + 1000])


def test_sadd_basics(c):
    """SADD counts new members only (a member named twice once), SISMEMBER,
    SMISMEMBER and SCARD read them back, a missing key is an empty set."""
    assert c.cmd("SADD", "s", "a", "b", "a", "c") == 3
    assert c.cmd("SADD", "s", "a", "d", "d") == 1
    assert c.cmd("SCARD", "s") == 4
    assert c.cmd("SISMEMBER", "s", "a") == 1
    assert c.cmd("SISMEMBER", "s", "zz") == 0
    assert c.cmd("SISMEMBER", "nokey", "a") == 0
    assert c.cmd("SMISMEMBER", "s", "a", "zz", "d") == [1, 0, 1]
    assert c.cmd("SMISMEMBER", "nokey", "a", "b") == [0, 0]
    assert c.cmd("SCARD", "nokey") == 0
    assert sorted(c.cmd("SMEMBERS", "s")) == [b"a", b"b", b"c", b"d"]
    assert c.cmd("SMEMBERS", "nokey") == []
    assert c.cmd("TYPE", "s") == "set"
    assert c.cmd("SADD", "n", 3, 1, 2, 1) == 3
    assert c.cmd("SISMEMBER", "n", "01") == 0
    assert c.cmd("SISMEMBER", "n", "1") == 1


def test_srem_removes_emptied_key(c):
    """SREM counts the members it removed (a member named twice once) and
    deletes the key with its last member, in both encodings."""
    for members in (("a", "b", "c"), (1, 2, 3)):
        assert c.cmd("SADD", "s", *members) == 3
        assert c.cmd("SREM", "s", members[0], members[0], "zz") == 1
        assert c.cmd("SREM", "nokey", "a") == 0
        assert c.cmd("SREM", "s", *members[1:], "more") == 2
        assert c.cmd("EXISTS", "s") == 0
        assert c.cmd("TYPE", "s") == "none"
        assert c.cmd("SCARD", "s") == 0


def test_arity_errors(c):
    """Short commands get Redis's arity errors and the connection goes
    on; extra arguments to SPOP and SRANDMEMBER are a syntax error."""
    for args, name in ((("SADD", "s"), "sadd"), (("SREM", "s"), "srem"),
                       (("SISMEMBER", "s"), "sismember"),
                       (("SMISMEMBER", "s"), "smismember"),
                       (("SCARD",), "scard"), (("SPOP",), "spop"),
                       (("SRANDMEMBER",), "srandmember"),
                       (("SMOVE", "a", "b"), "smove"),
                       (("SMEMBERS", "a", "b"), "smembers"),
                       (("SINTER",), "sinter"), (("SUNION",), "sunion"),
                       (("SDIFF",), "sdiff"),
                       (("SINTERSTORE", "d"), "sinterstore"),
                       (("SUNIONSTORE", "d"), "sunionstore"),
                       (("SDIFFSTORE", "d"), "sdiffstore"),
                       (("SINTERCARD", 1), "sintercard"),
                       (("SSCAN", "s"), "sscan")):
        assert c.cmd(*args) == Err(
            "ERR wrong number of arguments for '%s' command" % name), args
    c.cmd("SADD", "s", "a")
    assert c.cmd("SPOP", "s", 1, 2) == Err("ERR syntax error")
    assert c.cmd("SRANDMEMBER", "s", 1, 2) == Err("ERR syntax error")
    assert c.cmd("SCARD", "s") == 1
    assert c.cmd("PING") == "PONG"


def test_encoding_converts_at_thresholds(c):
    """OBJECT ENCODING: intset up to 512 integers (set-max-intset-entries),
    hashtable at the 513th or at the first member that is not a canonical
    int64 ("007", "-0", "+1", " 1", 2^63), and never back when the set
    shrinks. Redis 7.0 has no listpack sets."""
    sadd_range(c, "n", range(-256, 256))
    assert c.cmd("OBJECT", "ENCODING", "n") == b"intset"
    assert c.cmd("SADD", "n", 0) == 0
    assert c.cmd("OBJECT", "ENCODING", "n") == b"intset"
    assert c.cmd("SADD", "n", 256) == 1
    assert c.cmd("OBJECT", "ENCODING", "n") == b"hashtable"
    c.cmd("SREM", "n", *range(-256, 250))
    assert c.cmd("SCARD", "n") == 7
    assert c.cmd("OBJECT", "ENCODING", "n") == b"hashtable"
    assert c.cmd("SADD", "i", "-9223372036854775808", "9223372036854775807",
                 0) == 3
    assert c.cmd("OBJECT", "ENCODING", "i") == b"intset"
    assert c.cmd("SADD", "i", "x") == 1
    assert c.cmd("OBJECT", "ENCODING", "i") == b"hashtable"
    assert c.cmd("SISMEMBER", "i", "-9223372036854775808") == 1
    for i, m in enumerate(("007", "-0", "+1", " 1", "1 ", "1.0",
                           "9223372036854775808", "")):
        assert c.cmd("SADD", "first%d" % i, m) == 1
        assert c.cmd("OBJECT", "ENCODING", "first%d" % i) == b"hashtable", m
        assert c.cmd("SADD", "then%d" % i, 5, m) == 2
        assert c.cmd("OBJECT", "ENCODING", "then%d" % i) == b"hashtable", m
        assert c.cmd("SMISMEMBER", "then%d" % i, m, 5) == [1, 1]
    assert c.cmd("OBJECT", "ENCODING", "nokey") is None


def test_built_values_encodings(c):
    """Values built whole take Redis's encodings: a STORE result of a few
    integers is an intset even from hashtable sources, of strings or of
    more than 512 integers a hashtable; SPOP taking most of a hashtable
    set rebuilds it from the members that stay (an intset when they are
    integers), and SDIFFSTORE's algorithm 2 (first set added, the others
    removed) leaves 10 integers a hashtable, as 7.0.15 does."""
    sadd_range(c, "big", range(700))
    sadd_range(c, "mid", range(590))
    c.cmd("SADD", "few", 1, 3, 5, "x")
    assert c.cmd("SINTERSTORE", "d", "big", "few") == 3
    assert c.cmd("OBJECT", "ENCODING", "d") == b"intset"
    assert c.cmd("SUNIONSTORE", "d", "big", "few") == 701
    assert c.cmd("OBJECT", "ENCODING", "d") == b"hashtable"
    assert c.cmd("SDIFFSTORE", "d", "few", "big") == 1
    assert c.cmd("OBJECT", "ENCODING", "d") == b"hashtable"
    # Algorithm 1 (the default estimate): only adds, 110 integers.
    assert c.cmd("SDIFFSTORE", "d", "big", "mid") == 110
    assert c.cmd("OBJECT", "ENCODING", "d") == b"intset"
    # Algorithm 2: 4 sets, the others smaller than the first in all.
    sadd_range(c, "x", range(600))
    c.cmd("SADD", "z", "a")
    c.cmd("SADD", "w", "b")
    assert c.cmd("SDIFFSTORE", "d", "x", "mid", "z", "w") == 10
    assert c.cmd("OBJECT", "ENCODING", "d") == b"hashtable"
    assert sorted(int(m) for m in c.cmd("SMEMBERS", "d")) == \
        list(range(590, 600))
    sadd_range(c, "p", range(1000))
    assert len(c.cmd("SPOP", "p", 995)) == 995
    assert c.cmd("SCARD", "p") == 5
    assert c.cmd("OBJECT", "ENCODING", "p") == b"intset"
    sadd_range(c, "q", range(1000))
    assert len(c.cmd("SPOP", "q", 100)) == 100
    assert c.cmd("OBJECT", "ENCODING", "q") == b"hashtable"


def test_binary_and_big_members(c):
    """Members with NUL, CR and LF bytes, the empty member, integer-looking
    strings and a 1 MB member round-trip exactly; an integer member reads
    back as its canonical digits."""
    m = b"\x00a\r\nb\xff"
    assert c.cmd("SADD", "s", m, "", "007", "-0", "7") == 5
    assert c.cmd("SISMEMBER", "s", m) == 1
    assert c.cmd("SISMEMBER", "s", "") == 1
    assert c.cmd("SISMEMBER", "s", "0") == 0
    assert sorted(c.cmd("SMEMBERS", "s")) == sorted(
        [m, b"", b"007", b"-0", b"7"])
    big = b"x" * (1 << 20)
    assert c.cmd("SADD", "s", big) == 1
    assert c.cmd("SISMEMBER", "s", big) == 1
    assert big in c.cmd("SMEMBERS", "s")
    assert c.cmd("SREM", "s", big) == 1
    assert c.cmd("SADD", "i", "-9223372036854775808", "42") == 2
    assert c.cmd_bytes("SMEMBERS", "i") == b"*2\r\n" + bulks(
        "-9223372036854775808", "42")


def test_spop_srandmember(c):
    """SPOP and SRANDMEMBER: one member; count 0 is empty; a positive count
    gives distinct members (all of them past SCARD, and SPOP then deletes
    the key); SRANDMEMBER's negative count gives exactly |count| with
    repeats; SPOP refuses a negative or non-integer count; a missing key
    is nil or empty."""
    members = {b"a", b"b", b"c", b"d", b"e"}
    c.cmd("SADD", "s", *members)
    assert c.cmd("SRANDMEMBER", "s") in members
    got = c.cmd("SRANDMEMBER", "s", 3)
    assert len(got) == 3 and set(got) <= members and len(set(got)) == 3
    assert sorted(c.cmd("SRANDMEMBER", "s", 10)) == sorted(members)
    got = c.cmd("SRANDMEMBER", "s", -20)
    assert len(got) == 20 and set(got) <= members
    assert c.cmd("SRANDMEMBER", "s", 0) == []
    assert c.cmd("SRANDMEMBER", "s", "x") == NOT_INT
    assert c.cmd("SRANDMEMBER", "s", "-9223372036854775808") == Err(
        "ERR value is out of range, value must between "
        "-9223372036854775807 and 9223372036854775807")
    assert c.cmd("SRANDMEMBER", "nokey") is None
    assert c.cmd("SRANDMEMBER", "nokey", 3) == []
    assert c.cmd("SRANDMEMBER", "nokey", -3) == []
    assert c.cmd("SCARD", "s") == 5
    for bad in (-1, "x", "-0", "1.5", "00"):
        assert c.cmd("SPOP", "s", bad) == NOT_POSITIVE, bad
    assert c.cmd("SPOP", "s", 0) == []
    one = c.cmd("SPOP", "s")
    assert one in members and c.cmd("SISMEMBER", "s", one) == 0
    two = c.cmd("SPOP", "s", 2)
    assert len(set(two)) == 2 and set(two) <= members - {one}
    rest = c.cmd("SPOP", "s", 9223372036854775807)
    assert sorted([one] + two + rest) == sorted(members)
    assert c.cmd("EXISTS", "s") == 0
    assert c.cmd("SPOP", "nokey") is None
    assert c.cmd("SPOP", "nokey", 2) == []
    # The last member popped one at a time deletes the key too.
    c.cmd("SADD", "t", 1)
    assert c.cmd("SPOP", "t") == b"1"
    assert c.cmd("EXISTS", "t") == 0
    # A whole intset pops in ascending order (a one-key SUNION in 7.0).
    c.cmd("SADD", "n", 30, 10, 20)
    assert c.cmd_bytes("SPOP", "n", 3) == b"*3\r\n" + bulks(10, 20, 30)


def test_spop_srandmember_big(c):
    """On a big hashtable set: SRANDMEMBER's positive counts are distinct
    members, and SPOP with a count takes exactly that many distinct
    members, by either of Redis's strategies (few: one by one; most:
    rebuild from the rest)."""
    want = {("m%d" % i).encode() for i in range(1000)}
    sadd_range(c, "s", sorted(want))
    got = c.cmd("SRANDMEMBER", "s", 300)
    assert len(set(got)) == 300 and set(got) <= want
    got = c.cmd("SRANDMEMBER", "s", 900)
    assert len(set(got)) == 900 and set(got) <= want
    popped = set()
    for n in (10, 850, 50):  # one by one, rebuilt, one by one
        got = c.cmd("SPOP", "s", n)
        assert len(got) == n and len(set(got)) == n
        assert not popped & set(got)
        popped |= set(got)
    left = set(c.cmd("SMEMBERS", "s"))
    assert len(left) == 90 and left | popped == want


def test_smove(c):
    """SMOVE moves a member and deletes an emptied source; a missing source
    answers 0 whatever dst is; WRONGTYPE for a source or destination of
    another type even when the member is absent; the same key is a
    membership test; a new destination takes its encoding from the
    member."""
    c.cmd("SET", "str", "v")
    c.cmd("SADD", "a", 1, 2)
    assert c.cmd("SMOVE", "nokey", "str", "x") == 0
    assert c.cmd("SMOVE", "a", "str", "zz") == WRONGTYPE
    assert c.cmd("SMOVE", "a", "str", 1) == WRONGTYPE
    assert c.cmd("SMOVE", "str", "a", 1) == WRONGTYPE
    assert c.cmd("SMOVE", "a", "a", 1) == 1
    assert c.cmd("SMOVE", "a", "a", 9) == 0
    assert c.cmd("SMOVE", "a", "b", 9) == 0
    assert c.cmd("EXISTS", "b") == 0
    assert c.cmd("SMOVE", "a", "b", 1) == 1
    assert c.cmd("OBJECT", "ENCODING", "b") == b"intset"
    assert c.cmd("SMEMBERS", "a") == [b"2"]
    assert c.cmd("SMOVE", "a", "b", 1) == 0
    c.cmd("SADD", "a", 1)
    assert c.cmd("SMOVE", "a", "b", 1) == 1  # already there: still 1
    assert c.cmd("SCARD", "b") == 1
    assert c.cmd("SMOVE", "a", "b", 2) == 1
    assert c.cmd("EXISTS", "a") == 0
    assert c.cmd_bytes("SMEMBERS", "b") == b"*2\r\n" + bulks(1, 2)
    c.cmd("SADD", "c", "x")
    assert c.cmd("SMOVE", "c", "b", "x") == 1
    assert c.cmd("OBJECT", "ENCODING", "b") == b"hashtable"
    assert c.cmd("SMOVE", "b", "e", "x") == 1
    assert c.cmd("OBJECT", "ENCODING", "e") == b"hashtable"
    assert c.cmd("GET", "str") == b"v"


def test_algebra(c):
    """SINTER walks its smallest set (an intset: ascending), SUNION and
    SDIFF reply in the order of the set they build (all integers: an
    intset, ascending): exact bytes. Missing keys are empty sets; a set
    named twice is itself; strings compare as contents."""
    c.cmd("SADD", "a1", 5, 1, 3, 7, 9)
    c.cmd("SADD", "a2", 1, 2, 3, 4, 5, 6, 7)
    assert c.cmd_bytes("SINTER", "a2", "a1") == b"*4\r\n" + bulks(1, 3, 5, 7)
    assert c.cmd_bytes("SUNION", "a2", "a1") == b"*8\r\n" + bulks(
        1, 2, 3, 4, 5, 6, 7, 9)
    assert c.cmd_bytes("SDIFF", "a2", "a1") == b"*3\r\n" + bulks(2, 4, 6)
    assert c.cmd_bytes("SDIFF", "a1", "a2") == b"*1\r\n" + bulks(9)
    assert c.cmd("SINTER", "a1", "nokey") == []
    assert c.cmd("SINTER", "nokey", "a1") == []
    assert c.cmd_bytes("SINTER", "a1", "a1") == b"*5\r\n" + bulks(1, 3, 5, 7,
                                                                  9)
    assert c.cmd_bytes("SUNION", "nokey", "a1") == b"*5\r\n" + bulks(
        1, 3, 5, 7, 9)
    assert c.cmd("SDIFF", "a1", "a1") == []
    assert c.cmd("SDIFF", "a1", "nokey", "a1") == []
    assert c.cmd("SDIFF", "nokey", "a1") == []
    assert c.cmd_bytes("SDIFF", "a1", "nokey") == b"*5\r\n" + bulks(
        1, 3, 5, 7, 9)
    assert c.cmd("SUNION", "nokey", "nokey2") == []
    c.cmd("SADD", "s1", "x", "y", "z", 1)
    c.cmd("SADD", "s2", "y", "z", "w", 3)
    assert sorted(c.cmd("SINTER", "s1", "s2")) == [b"y", b"z"]
    assert sorted(c.cmd("SUNION", "s1", "s2", "a1")) == sorted(
        [b"x", b"y", b"z", b"w", b"1", b"3", b"5", b"7", b"9"])
    assert sorted(c.cmd("SDIFF", "s1", "s2")) == [b"1", b"x"]
    assert sorted(c.cmd("SDIFF", "a1", "s1", "s2")) == [b"5", b"7", b"9"]
    assert c.cmd("SINTER", "s1", "s2", "a1") == []


def test_algebra_wrongtype_anywhere(c):
    """A key of another type among the inputs answers WRONGTYPE wherever it
    stands, before or after a missing key, and a STORE form then leaves its
    destination alone."""
    c.cmd("SET", "str", "v")
    c.cmd("SADD", "a", 1, 2)
    c.cmd("SADD", "d", "keep")
    for op in ("SINTER", "SUNION", "SDIFF"):
        for keys in (("str", "a"), ("a", "str"), ("nokey", "str"),
                     ("str", "nokey"), ("a", "nokey", "str")):
            assert c.cmd(op, *keys) == WRONGTYPE, (op, keys)
            assert c.cmd(op + "STORE", "d", *keys) == WRONGTYPE, (op, keys)
    for keys in (("str", "a"), ("nokey", "str"), ("a", "nokey", "str")):
        assert c.cmd("SINTERCARD", len(keys), *keys) == WRONGTYPE, keys
    assert c.cmd("SMEMBERS", "d") == [b"keep"]
    assert c.cmd("SMEMBERS", "str") == WRONGTYPE


def test_store_forms(c):
    """SINTERSTORE, SUNIONSTORE and SDIFFSTORE replace the destination
    whatever it held (a string with a TTL too: no TTL survives), delete it
    when the result is empty, and may read the destination as a source."""
    c.cmd("SADD", "a", 1, 2, 3)
    c.cmd("SADD", "b", 2, 3, 4)
    for op, want in (("SINTERSTORE", [2, 3]), ("SUNIONSTORE", [1, 2, 3, 4]),
                     ("SDIFFSTORE", [1])):
        c.cmd("SET", "dst", "v", "EX", 100)
        assert c.cmd(op, "dst", "a", "b") == len(want), op
        assert c.cmd("TYPE", "dst") == "set"
        assert c.cmd("TTL", "dst") == -1
        assert c.cmd_bytes("SMEMBERS", "dst") == b"*%d\r\n" % len(
            want) + bulks(*want)
        c.cmd("SET", "dst", "v")
        assert c.cmd(op, "dst", "nokey") == 0, op
        assert c.cmd("EXISTS", "dst") == 0, op
        c.cmd("HSET", "dst", "f", "v")
        want_n = 3 if op == "SUNIONSTORE" else 0
        assert c.cmd(op, "dst", "nokey", "a") == want_n, op
        assert c.cmd("TYPE", "dst") == ("set" if op == "SUNIONSTORE"
                                        else "none")
    c.cmd("SADD", "x", 1, 2, 3, 4)
    assert c.cmd("SINTERSTORE", "x", "x", "b") == 3
    assert c.cmd_bytes("SMEMBERS", "x") == b"*3\r\n" + bulks(2, 3, 4)
    assert c.cmd("SUNIONSTORE", "x", "x", "a") == 4
    assert c.cmd("SDIFFSTORE", "x", "x", "a") == 1
    assert c.cmd("SMEMBERS", "x") == [b"4"]
    assert c.cmd("SDIFFSTORE", "x", "x", "x") == 0
    assert c.cmd("EXISTS", "x") == 0
    c.cmd("SADD", "s", "p", "q")
    assert c.cmd("SUNIONSTORE", "u", "s", "a") == 5
    assert sorted(c.cmd("SMEMBERS", "u")) == [b"1", b"2", b"3", b"p", b"q"]


def test_sintercard(c):
    """SINTERCARD counts the intersection, stops at LIMIT (0: no limit, the
    last LIMIT given wins), and has 7.0.15's own error texts for numkeys
    and LIMIT."""
    c.cmd("SADD", "a", *range(10))
    c.cmd("SADD", "b", *range(5, 20))
    c.cmd("SADD", "s", "x", "y")
    assert c.cmd("SINTERCARD", 2, "a", "b") == 5
    assert c.cmd("SINTERCARD", 1, "a") == 10
    assert c.cmd("SINTERCARD", 2, "a", "b", "LIMIT", 3) == 3
    assert c.cmd("SINTERCARD", 2, "a", "b", "limit", 0) == 5
    assert c.cmd("SINTERCARD", 2, "a", "b", "LIMIT", 9) == 5
    assert c.cmd("SINTERCARD", 2, "a", "b", "LIMIT", 1, "LIMIT", 4) == 4
    assert c.cmd("SINTERCARD", 2, "a", "nokey") == 0
    assert c.cmd("SINTERCARD", 2, "a", "s") == 0
    assert c.cmd("SINTERCARD", 1, "nokey", "LIMIT", 0) == 0
    # "a" is read as a key name here, not as LIMIT
    assert c.cmd("SINTERCARD", 2, "a", "LIMIT") == 0
    for bad in (0, -1, "x", "1.0", " 1"):
        assert c.cmd("SINTERCARD", bad, "a") == Err(
            "ERR numkeys should be greater than 0"), bad
    assert c.cmd("SINTERCARD", 3, "a", "b") == Err(
        "ERR Number of keys can't be greater than number of args")
    for bad in (-1, "x", "9223372036854775808"):
        assert c.cmd("SINTERCARD", 1, "a", "LIMIT", bad) == Err(
            "ERR LIMIT can't be negative"), bad
    assert c.cmd("SINTERCARD", 1, "a", "LIMIT") == Err("ERR syntax error")
    assert c.cmd("SINTERCARD", 1, "a", "FOO", 1) == Err("ERR syntax error")


def test_sscan(c):
    """SSCAN returns an intset whole with cursor 0 (whatever the cursor),
    walks every member of a big hashtable set with COUNT, filters with
    MATCH; a missing key answers an empty scan before its options are
    checked (as 7.0.15), an existing one checks them."""
    c.cmd("SADD", "n", 11, 2, 13, 4)
    assert c.cmd_bytes("SSCAN", "n", 0) == b"*2\r\n$1\r\n0\r\n*4\r\n" + \
        bulks(2, 4, 11, 13)
    assert c.cmd("SSCAN", "n", 77) == [b"0", [b"2", b"4", b"11", b"13"]]
    assert c.cmd("SSCAN", "n", 0, "MATCH", "1*") == [b"0", [b"11", b"13"]]
    want = {("m%d" % i).encode() for i in range(1000)}
    sadd_range(c, "b", sorted(want))
    seen, cur, calls = [], b"0", 0
    while True:
        cur, items = c.cmd("SSCAN", "b", cur, "COUNT", 50)
        seen += items
        calls += 1
        if cur == b"0" or calls > 10000:
            break
    assert cur == b"0" and calls > 5
    assert set(seen) == want
    seen, cur = set(), b"0"
    while True:
        cur, items = c.cmd("SSCAN", "b", cur, "MATCH", "m1?", "COUNT", 100)
        seen |= set(items)
        if cur == b"0":
            break
    assert seen == {("m1%d" % i).encode() for i in range(10)}
    assert c.cmd("SSCAN", "nokey", 0) == [b"0", []]
    assert c.cmd("SSCAN", "nokey", 0, "BOGUS", 1) == [b"0", []]
    assert c.cmd("SSCAN", "nokey", 0, "COUNT", 0) == [b"0", []]
    assert c.cmd("SSCAN", "nokey", "x") == Err("ERR invalid cursor")
    assert c.cmd("SSCAN", "n", "abc") == Err("ERR invalid cursor")
    assert c.cmd("SSCAN", "n", 0, "COUNT", 0) == Err("ERR syntax error")
    assert c.cmd("SSCAN", "n", 0, "COUNT") == Err("ERR syntax error")
    assert c.cmd("SSCAN", "n", 0, "COUNT", "x") == NOT_INT
    assert c.cmd("SSCAN", "n", 0, "BOGUS", 1) == Err("ERR syntax error")


def test_wrongtype_both_ways(c):
    """Set commands on a string or a hash and string and hash commands on a
    set answer WRONGTYPE and change nothing; SET replaces a set; DEL,
    EXPIRE and RENAME work on it."""
    c.cmd("SET", "str", "v")
    c.cmd("HSET", "h", "f", "1")
    c.cmd("SADD", "s", "m")
    for k in ("str", "h"):
        for args in (("SADD", k, "m"), ("SREM", k, "m"),
                     ("SISMEMBER", k, "m"), ("SMISMEMBER", k, "m"),
                     ("SCARD", k), ("SMEMBERS", k), ("SPOP", k),
                     ("SPOP", k, 2), ("SRANDMEMBER", k),
                     ("SRANDMEMBER", k, 2), ("SSCAN", k, 0),
                     ("SINTER", k), ("SUNION", k), ("SDIFF", k),
                     ("SINTERCARD", 1, k), ("SMOVE", k, "s", "m"),
                     ("SMOVE", "s", k, "m")):
            assert c.cmd(*args) == WRONGTYPE, args
    for args in (("GET", "s"), ("APPEND", "s", "x"), ("INCR", "s"),
                 ("STRLEN", "s"), ("HGET", "s", "f"), ("HSET", "s", "f", "v"),
                 ("HGETALL", "s"), ("HLEN", "s")):
        assert c.cmd(*args) == WRONGTYPE, args
    assert c.cmd("GET", "str") == b"v"
    assert c.cmd("HGET", "h", "f") == b"1"
    assert c.cmd("SMEMBERS", "s") == [b"m"]
    assert c.cmd("MGET", "s", "str") == [None, b"v"]
    assert c.cmd("EXPIRE", "s", 100) == 1
    assert 0 < c.cmd("TTL", "s") <= 100
    assert c.cmd("RENAME", "s", "s2") == "OK"
    assert c.cmd("TYPE", "s2") == "set"
    assert c.cmd("SCAN", 0, "TYPE", "set", "COUNT", 100)[1] == [b"s2"]
    assert c.cmd("SET", "s2", "plain") == "OK"
    assert c.cmd("GET", "s2") == b"plain"
    c.cmd("SADD", "s3", 1)
    assert c.cmd("DEL", "s3") == 1
    assert c.cmd("EXISTS", "s3") == 0


def test_expiry_of_a_set(c):
    """A set with a TTL expires whole, and a later SADD starts a new one."""
    c.cmd("SADD", "s", 1, 2)
    assert c.cmd("PEXPIRE", "s", 50) == 1
    time.sleep(0.2)
    assert c.cmd("SCARD", "s") == 0
    assert c.cmd("EXISTS", "s") == 0
    assert c.cmd("SADD", "s", 3) == 1
    assert c.cmd("SMEMBERS", "s") == [b"3"]


def test_resp3_replies(c):
    """Under HELLO 3, SMEMBERS, SINTER, SUNION, SDIFF and SPOP with a count
    reply with sets (`~n`, empty ones `~0`), SPOP and SRANDMEMBER of a
    missing key with `_`; SRANDMEMBER with a count, SMISMEMBER and SSCAN
    stay arrays, SISMEMBER, SCARD, SINTERCARD and the STORE forms
    integers."""
    c.cmd("HELLO", 3)
    c.cmd("SADD", "n", 3, 1, 2)
    c.cmd("SADD", "m", 2, 5)
    c.cmd("SADD", "s", "a", "b", "c")
    s123 = bulks(1, 2, 3)
    assert c.cmd_bytes("SMEMBERS", "n") == b"~3\r\n" + s123
    assert c.cmd_bytes("SMEMBERS", "nokey") == b"~0\r\n"
    assert c.cmd_bytes("SINTER", "n", "m") == b"~1\r\n" + bulks(2)
    assert c.cmd_bytes("SINTER", "n", "nokey") == b"~0\r\n"
    assert c.cmd_bytes("SUNION", "n", "m") == b"~4\r\n" + bulks(1, 2, 3, 5)
    assert c.cmd_bytes("SDIFF", "n", "m") == b"~2\r\n" + bulks(1, 3)
    assert c.cmd_bytes("SDIFF", "nokey") == b"~0\r\n"
    got = c.cmd("SMEMBERS", "s")
    assert isinstance(got, Set) and sorted(got) == [b"a", b"b", b"c"]
    got = c.cmd("SUNION", "s", "n")
    assert isinstance(got, Set) and len(got) == 6
    assert c.cmd_bytes("SPOP", "nokey") == b"_\r\n"
    assert c.cmd_bytes("SPOP", "nokey", 2) == b"~0\r\n"
    assert c.cmd_bytes("SPOP", "s", 0) == b"~0\r\n"
    got = c.cmd("SPOP", "s", 2)
    assert isinstance(got, Set) and len(got) == 2
    assert c.cmd_bytes("SPOP", "n", 5) == b"~3\r\n" + s123
    assert c.cmd_bytes("SRANDMEMBER", "nokey") == b"_\r\n"
    assert c.cmd_bytes("SRANDMEMBER", "nokey", 2) == b"*0\r\n"
    assert c.cmd_bytes("SRANDMEMBER", "m", 5) == b"*2\r\n" + bulks(2, 5)
    got = c.cmd("SRANDMEMBER", "m", -3)
    assert type(got) is list and len(got) == 3
    assert c.cmd_bytes("SISMEMBER", "m", 2) == b":1\r\n"
    assert c.cmd_bytes("SMISMEMBER", "m", 2, 9) == b"*2\r\n:1\r\n:0\r\n"
    assert c.cmd_bytes("SCARD", "m") == b":2\r\n"
    assert c.cmd_bytes("SINTERCARD", 1, "m") == b":2\r\n"
    assert c.cmd_bytes("SUNIONSTORE", "d", "m") == b":2\r\n"
    assert c.cmd_bytes("SSCAN", "m", 0) == b"*2\r\n$1\r\n0\r\n*2\r\n" + \
        bulks(2, 5)


def test_command_info_describes_keys(c):
    """COMMAND INFO gives every set command Redis's arity and key positions
    (first, last, step: the STORE destination included; SINTERCARD's keys
    are counted, 0 0 0) and its flags but movablekeys."""
    names = ("sadd", "srem", "sismember", "smismember", "scard", "spop",
             "srandmember", "smove", "smembers", "sinter", "sunion", "sdiff",
             "sinterstore", "sunionstore", "sdiffstore", "sintercard",
             "sscan")
    infos = c.cmd("COMMAND", "INFO", *names)
    assert len(infos) == len(names)
    got = {}
    for info in infos:
        flags = sorted(f for f in info[2] if f != "movablekeys")
        got[info[0]] = (info[1], flags, info[3], info[4], info[5])
    assert got[b"sadd"] == (-3, ["denyoom", "fast", "write"], 1, 1, 1)
    assert got[b"smove"] == (4, ["fast", "write"], 1, 2, 1)
    assert got[b"spop"] == (-2, ["fast", "write"], 1, 1, 1)
    assert got[b"sinter"] == (-2, ["readonly"], 1, -1, 1)
    assert got[b"sinterstore"] == (-3, ["denyoom", "write"], 1, -1, 1)
    assert got[b"sintercard"] == (-3, ["readonly"], 0, 0, 0)
    assert got[b"srandmember"] == (-2, ["readonly"], 1, 1, 1)
    assert got[b"sscan"] == (-3, ["readonly"], 1, 1, 1)
    assert got[b"smismember"] == (-3, ["fast", "readonly"], 1, 1, 1)


@pytest.mark.parametrize("kind", KINDS)
def test_set_oom_under_noeviction(make_server, kind):
    """Under noeviction a set write that does not fit is refused with OOM
    and the set keeps what it had; reads, SREM and DEL still work."""
    s = make_server(kind, max_memory=4 * 1024 * 1024, eviction="noeviction")
    with s.raw() as c:
        big = "x" * 1000
        refused = None
        for i in range(20000):
            rep = c.cmd("SADD", "s", "%d%s" % (i, big))
            if rep != 1:
                refused = (i, rep)
                break
        assert refused is not None, "4 MB never filled"
        i, rep = refused
        assert rep == Err(OOM)
        assert c.cmd("SCARD", "s") == i
        assert c.cmd("SISMEMBER", "s", "0" + big) == 1
        assert c.cmd("SISMEMBER", "s", "%d%s" % (i, big)) == 0
        assert c.cmd("SREM", "s", "0" + big) == 1
        assert c.cmd("DEL", "s") == 1
        assert c.cmd("SADD", "s", "m") == 1


def test_store_over_limit_keeps_destination(make_server):
    """narf only (Redis checks memory before a command, so 7.0.15 stores
    the result and ends over its limit): under noeviction a STORE whose
    result takes the store past max-memory is refused with OOM, and the
    destination keeps its old value; an empty result still deletes it."""
    s = make_server("narf", max_memory=4 * 1024 * 1024,
                    eviction="noeviction")
    with s.raw() as c:
        big = "x" * 1000
        for i in range(20000):
            if c.cmd("SADD", "s", "%d%s" % (i, big)) != 1:
                break
        else:
            pytest.fail("4 MB never filled")
        n = c.cmd("SCARD", "s")
        assert c.cmd("SET", "dst", "keep") == "OK"
        assert c.cmd("SUNIONSTORE", "dst", "s") == Err(OOM)
        assert c.cmd("GET", "dst") == b"keep"
        assert c.cmd("SCARD", "s") == n
        assert c.cmd("SINTERSTORE", "dst", "s", "nokey") == 0
        assert c.cmd("EXISTS", "dst") == 0
        assert c.cmd("SINTERSTORE", "small", "s") == Err(OOM)
        c.cmd("SREM", "s", *["%d%s" % (i, big) for i in range(n - 3)])
        assert c.cmd("SUNIONSTORE", "small", "s") == 3

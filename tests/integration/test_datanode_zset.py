"""Sorted sets against Redis 7.0 (issue 16, slices 16-18): every test runs
against a real redis-server and `datanode --standalone` with the same
assertions, as test_datanode_hash.py does for hashes. Exact replies go
through RawConn; ranges are checked against a Python model of the order
(score, then member bytes).

Run: NARF_BUILD=/abs/build /usr/bin/python3 -m pytest -q \
         tests/integration/test_datanode_zset.py
"""

import random

import pytest

from dn_harness import NULL3, Double, Err

from dn_fixtures import (KINDS, OOM, Servers, c, datanode_binary,  # noqa: F401
                         kind, make_server, near, r, srv)

WRONGTYPE = Err("WRONGTYPE Operation against a key holding the wrong kind "
                "of value")
SYNTAX = Err("ERR syntax error")
NOTFLOAT = Err("ERR value is not a valid float")
NOTINT = Err("ERR value is not an integer or out of range")
RANGE_NOTFLOAT = Err("ERR min or max is not a float")
RANGE_NOTLEX = Err("ERR min or max not valid string range item")


def fmt(score):
    """A score as Redis 7.0 replies it in RESP2 (%.17g)."""
    return ("%.17g" % score).encode()


def flat(pairs):
    """[(member, score)] as a flat WITHSCORES reply."""
    out = []
    for m, s in pairs:
        out += [m, fmt(s)]
    return out


def zadd_many(c, key, pairs):
    args = []
    for m, s in pairs:
        args += [repr(s) if isinstance(s, float) else s, m]
    return c.cmd("ZADD", key, *args)


class Model:
    """A sorted set: members in (score, member bytes) order."""

    def __init__(self, pairs):
        self.d = {m if isinstance(m, bytes) else m.encode(): float(s)
                  for m, s in pairs}

    def items(self):
        return sorted(self.d.items(), key=lambda kv: (kv[1], kv[0]))

    def by_score(self, lo, lox, hi, hix, rev=False, off=0, cnt=-1):
        got = [(m, s) for m, s in self.items()
               if (s > lo if lox else s >= lo) and (s < hi if hix else s <= hi)]
        if rev:
            got.reverse()
        if off < 0:
            return []
        got = got[off:]
        return got if cnt < 0 else got[:cnt]

    def by_lex(self, lo, hi, rev=False, off=0, cnt=-1):
        def gte(m, b):
            if b == b"-":
                return True
            if b == b"+":
                return False
            return m > b[1:] if b[:1] == b"(" else m >= b[1:]

        def lte(m, b):
            if b == b"+":
                return True
            if b == b"-":
                return False
            return m < b[1:] if b[:1] == b"(" else m <= b[1:]
        got = [(m, s) for m, s in self.items() if gte(m, lo) and lte(m, hi)]
        if rev:
            got.reverse()
        if off < 0:
            return []
        got = got[off:]
        return got if cnt < 0 else got[:cnt]


def bound(v, ex):
    text = "inf" if v == float("inf") else "-inf" if v == -float("inf") \
        else repr(v)
    return ("(" if ex else "") + text


# ---------------------------------------------------------------------------
# ZADD and point reads


def test_zadd_and_point_reads(c):
    """ZADD counts new members only; ZSCORE, ZMSCORE, ZCARD, ZRANK and
    ZREVRANK read them back; missing members and keys are nil or 0; TYPE
    says zset."""
    assert c.cmd("ZADD", "z", 1, "a", 2, "b", 3, "c") == 3
    assert c.cmd("ZADD", "z", 10, "a", 4, "d") == 1
    assert c.cmd("ZSCORE", "z", "a") == b"10"
    assert c.cmd("ZSCORE", "z", "zz") is None
    assert c.cmd("ZSCORE", "nokey", "a") is None
    assert c.cmd("ZMSCORE", "z", "a", "zz", "b") == [b"10", None, b"2"]
    assert c.cmd("ZMSCORE", "nokey", "a", "b") == [None, None]
    assert c.cmd("ZCARD", "z") == 4
    assert c.cmd("ZCARD", "nokey") == 0
    assert c.cmd("ZRANK", "z", "b") == 0
    assert c.cmd("ZRANK", "z", "a") == 3
    assert c.cmd("ZREVRANK", "z", "a") == 0
    assert c.cmd("ZREVRANK", "z", "b") == 3
    assert c.cmd("ZRANK", "z", "zz") is None
    assert c.cmd("ZREVRANK", "nokey", "a") is None
    assert c.cmd("TYPE", "z") == "zset"
    assert c.cmd("ZREM", "z", "a", "a", "zz") == 1
    assert c.cmd("ZREM", "nokey", "a") == 0
    assert c.cmd("ZREM", "z", "b", "c", "d") == 3
    assert c.cmd("EXISTS", "z") == 0


def test_zadd_flags_matrix(c):
    """NX, XX, GT, LT, CH and INCR as Redis 7.0 combines them: GT/LT still
    add new members, XX never adds, CH counts changed scores, INCR answers
    the new score or nil when a flag refused it; and the conflicts' exact
    errors, checked before the scores."""
    assert c.cmd("ZADD", "z", 5, "a") == 1
    assert c.cmd("ZADD", "z", "NX", 1, "a", 1, "b") == 1
    assert c.cmd("ZSCORE", "z", "a") == b"5"
    assert c.cmd("ZADD", "z", "XX", 6, "a", 1, "x") == 0
    assert c.cmd("ZSCORE", "z", "a") == b"6"
    assert c.cmd("ZSCORE", "z", "x") is None
    assert c.cmd("ZADD", "z", "XX", "CH", 7, "a", 1, "x") == 1
    assert c.cmd("ZADD", "z", "GT", "CH", 3, "a", 9, "b", 2, "g") == 2
    assert c.cmd("ZMSCORE", "z", "a", "b", "g") == [b"7", b"9", b"2"]
    assert c.cmd("ZADD", "z", "LT", "CH", 8, "a", 1, "b", 1, "l") == 2
    assert c.cmd("ZMSCORE", "z", "a", "b", "l") == [b"7", b"1", b"1"]
    assert c.cmd("ZADD", "z", "GT", "XX", "CH", 100, "a", 1, "new") == 1
    assert c.cmd("ZSCORE", "z", "new") is None
    assert c.cmd("ZADD", "z", "CH", 100, "a", 1, "b") == 0
    assert c.cmd("ZADD", "z", "INCR", "2.5", "a") == b"102.5"
    assert c.cmd("ZADD", "z", "INCR", "NX", 1, "a") is None
    assert c.cmd("ZADD", "z", "INCR", "XX", 1, "nope") is None
    assert c.cmd("ZADD", "z", "INCR", "GT", -1, "a") is None
    assert c.cmd("ZADD", "z", "INCR", "LT", -1, "a") == b"101.5"
    assert c.cmd("ZADD", "z", "incr", "nx", 4, "fresh") == b"4"
    assert c.cmd("ZADD", "nokey", "XX", 1, "a") == 0
    assert c.cmd("ZADD", "nokey", "XX", "INCR", 1, "a") is None
    assert c.cmd("EXISTS", "nokey") == 0
    for args, err in (
            (("NX", "XX", 1, "a"), "ERR XX and NX options at the same time "
                                   "are not compatible"),
            (("GT", "LT", 1, "a"), "ERR GT, LT, and/or NX options at the "
                                   "same time are not compatible"),
            (("NX", "GT", 1, "a"), "ERR GT, LT, and/or NX options at the "
                                   "same time are not compatible"),
            (("LT", "NX", "x", "a"), "ERR GT, LT, and/or NX options at the "
                                     "same time are not compatible"),
            (("INCR", 1, "a", 2, "b"), "ERR INCR option supports a single "
                                       "increment-element pair"),
            ((1, "a", 2), "ERR syntax error"),
            (("NX", "XX"), "ERR syntax error"),
            (("CH", "x", "a"), "ERR value is not a valid float"),
            ((1, "a", "nan", "b"), "ERR value is not a valid float")):
        assert c.cmd("ZADD", "z", *args) == Err(err), args
    assert c.cmd("ZCARD", "z") == 5
    assert c.cmd("ZADD", "z") == Err(
        "ERR wrong number of arguments for 'zadd' command")
    assert c.cmd("ZADD", "z", 1) == Err(
        "ERR wrong number of arguments for 'zadd' command")


def test_score_parsing(c):
    """Scores parse as Redis's string2d: inf, +inf, -inf and hex are
    floats; NaN, overflow, an empty string and spaces are not."""
    for text, want in (("inf", b"inf"), ("+inf", b"inf"), ("-inf", b"-inf"),
                       ("0x10", b"16"), ("1e3", b"1000"), ("-.5", b"-0.5"),
                       ("1e-310", b"9.9999999999999694e-311")):
        assert c.cmd("ZADD", "z", text, "m") in (0, 1), text
        assert c.cmd("ZSCORE", "z", "m") == want, text
    for text in ("nan", "NaN", "1e400", "-1e400", "1e-400", "", " 1", "1 ",
                 "abc", "1\x00"):
        assert c.cmd("ZADD", "z", text, "m") == NOTFLOAT, text
        assert c.cmd("ZINCRBY", "z", text, "m") == NOTFLOAT, text


def test_zincrby(c):
    """ZINCRBY creates, adds, answers the score with 7.0's digits, refuses
    a sum that is NaN (inf + -inf) leaving the score, and parses ZADD's
    options where its increment is (so an option word is a syntax
    error)."""
    assert c.cmd("ZINCRBY", "z", 1, "a") == b"1"
    assert c.cmd("ZINCRBY", "z", "0.1", "a") == b"1.1000000000000001"
    assert c.cmd("ZINCRBY", "z", "0.2", "b") == b"0.20000000000000001"
    assert c.cmd("ZINCRBY", "z", "0.1", "b") == b"0.30000000000000004"
    assert c.cmd("ZINCRBY", "z", "-inf", "c") == b"-inf"
    assert c.cmd("ZINCRBY", "z", "+inf", "c") == Err(
        "ERR resulting score is not a number (NaN)")
    assert c.cmd("ZSCORE", "z", "c") == b"-inf"
    assert c.cmd("ZADD", "z", "INCR", "inf", "c") == Err(
        "ERR resulting score is not a number (NaN)")
    assert c.cmd("ZINCRBY", "z", "nx", "a") == SYNTAX
    assert c.cmd("ZINCRBY", "z", "incr", "a") == SYNTAX
    assert c.cmd("ZINCRBY", "z", "x", "a") == NOTFLOAT
    assert c.cmd("ZINCRBY", "z", 1) == Err(
        "ERR wrong number of arguments for 'zincrby' command")


def test_score_format(c):
    """Scores print as Redis 7.0 prints doubles: %.17g (1.1 reads
    1.1000000000000001, 0.1 + 0.2 0.30000000000000004, 1e20 1e+20), plain
    integers, inf and -inf; ZSCAN shows a listpack's stored text."""
    c.cmd("ZADD", "z", "1.1", "a", "1e20", "b", 3, "c", "-inf", "d",
          "2.5", "e", "123456789012345678", "f", "4611686018427387904", "g")
    assert c.cmd("ZINCRBY", "z", "0.1", "x") == b"0.10000000000000001"
    assert c.cmd("ZINCRBY", "z", "0.2", "x") == b"0.30000000000000004"
    assert c.cmd("ZMSCORE", "z", "a", "b", "c", "d", "e", "f", "g") == [
        b"1.1000000000000001", b"1e+20", b"3", b"-inf", b"2.5",
        b"1.2345678901234568e+17", b"4.6116860184273879e+18"]
    assert c.cmd("ZRANGE", "z", 0, 0, "WITHSCORES") == [b"d", b"-inf"]
    # A listpack holds an integral score as an integer: ZSCAN shows its
    # digits; other scores as %.17g text.
    cur, items = c.cmd("ZSCAN", "z", 0)
    got = dict(zip(items[0::2], items[1::2]))
    assert got[b"f"] == b"123456789012345680"
    assert got[b"g"] == b"4611686018427387904"
    assert got[b"a"] == b"1.1000000000000001"
    assert got[b"d"] == b"-inf"
    assert c.cmd("OBJECT", "ENCODING", "z") == b"listpack"


def test_ties_order_by_member_and_signed_zero(c):
    """Equal scores order by member bytes (a prefix first), in both
    encodings; -0 and 0 are one score: a listpack stores -0 as 0, a
    skiplist keeps -0; ZINCRBY answers the -0 it computed."""
    members = [b"b", b"a", b"ab", b"a\x00", b"", b"B", b"10", b"9"]
    want = sorted(members)
    for key, extra in (("small", 0), ("big", 130)):
        args = []
        for m in members:
            args += [0, m]
        for i in range(extra):
            args += [1, "filler%03d" % i]
        c.cmd("ZADD", key, *args)
        assert c.cmd("ZRANGE", key, 0, len(members) - 1) == want
        assert c.cmd("ZREVRANGE", key, extra, -1) == want[::-1]
        assert c.cmd("ZRANK", key, b"a\x00") == want.index(b"a\x00")
    assert c.cmd("OBJECT", "ENCODING", "big") == b"skiplist"
    assert c.cmd("ZADD", "small", "-0", "nz") == 1
    assert c.cmd("ZSCORE", "small", "nz") == b"0"
    assert c.cmd("ZADD", "big", "-0", "nz") == 1
    assert c.cmd("ZSCORE", "big", "nz") == b"-0"
    assert c.cmd("ZADD", "big", "0", "nz") == 0
    assert c.cmd("ZADD", "big", "CH", "0", "nz") == 0
    assert c.cmd("ZSCORE", "big", "nz") == b"-0"
    assert c.cmd("ZINCRBY", "small", "-0", "nz2") == b"-0"
    assert c.cmd("ZSCORE", "small", "nz2") == b"0"
    assert c.cmd("ZRANGEBYSCORE", "small", "-0", "0") == [b"", b"10", b"9",
                                                           b"B", b"a",
                                                           b"a\x00", b"ab",
                                                           b"b", b"nz",
                                                           b"nz2"]


def test_encoding_thresholds(c):
    """OBJECT ENCODING: listpack up to 128 members and 64-byte members,
    skiplist at the 129th or a 65-byte member, and it never goes back when
    the set shrinks by ZREM, ZPOPMIN or ZREMRANGEBYRANK."""
    args = []
    for i in range(128):
        args += [i, "m%d" % i]
    assert c.cmd("ZADD", "z", *args) == 128
    assert c.cmd("OBJECT", "ENCODING", "z") == b"listpack"
    assert c.cmd("ZADD", "z", 128, "m128") == 1
    assert c.cmd("OBJECT", "ENCODING", "z") == b"skiplist"
    assert c.cmd("ZREM", "z", *["m%d" % i for i in range(100)]) == 100
    assert len(c.cmd("ZPOPMIN", "z", 10)) == 20
    assert c.cmd("ZREMRANGEBYRANK", "z", 0, 10) == 11
    assert c.cmd("ZCARD", "z") == 8
    assert c.cmd("OBJECT", "ENCODING", "z") == b"skiplist"
    assert c.cmd("ZRANGE", "z", 0, -1) == [b"m%d" % i
                                           for i in range(121, 129)]
    c.cmd("ZADD", "v", 1, "x" * 64)
    assert c.cmd("OBJECT", "ENCODING", "v") == b"listpack"
    c.cmd("ZADD", "v", 2, "y" * 65)
    assert c.cmd("OBJECT", "ENCODING", "v") == b"skiplist"
    assert c.cmd("ZRANGE", "v", 0, -1, "WITHSCORES") == [
        b"x" * 64, b"1", b"y" * 65, b"2"]
    c.cmd("ZADD", "w", 1, "y" * 65)
    assert c.cmd("OBJECT", "ENCODING", "w") == b"skiplist"
    assert c.cmd("OBJECT", "ENCODING", "nokey") is None


# ---------------------------------------------------------------------------
# ranges


def make_sets(c, n_small=10, n_big=300, seed=7):
    """A small (listpack) and a big (skiplist) zset with repeated scores,
    and their models."""
    rnd = random.Random(seed)
    out = {}
    for key, n in (("small", n_small), ("big", n_big)):
        pairs = [("m%03d" % i, rnd.choice([-2.5, -1, 0, 0.5, 1, 1, 2, 3.25,
                                           7, 100]))
                 for i in range(n)]
        zadd_many(c, key, pairs)
        out[key] = Model(pairs)
    assert c.cmd("OBJECT", "ENCODING", "small") == b"listpack"
    assert c.cmd("OBJECT", "ENCODING", "big") == b"skiplist"
    return out


def test_zrange_by_rank(c):
    """ZRANGE by rank with negative indexes, out of range and inverted
    ranges, REV, the legacy ZREVRANGE, WITHSCORES, in both encodings."""
    models = make_sets(c)
    for key, model in models.items():
        items = model.items()
        n = len(items)
        for start, stop in ((0, -1), (0, 0), (-1, -1), (2, 5), (-5, -2),
                            (-1000, 2), (3, 1000), (5, 2), (n, n + 5),
                            (0, -n - 1), (-n, -n), (n - 1, n - 1)):
            lo = start + n if start < 0 else start
            hi = stop + n if stop < 0 else stop
            lo = max(lo, 0)
            want = items[lo:hi + 1] if lo <= hi else []
            assert c.cmd("ZRANGE", key, start, stop, "WITHSCORES") == \
                flat(want), (key, start, stop)
            rwant = items[::-1][lo:hi + 1] if lo <= hi else []
            assert c.cmd("ZRANGE", key, start, stop, "REV") == \
                [m for m, _ in rwant], (key, start, stop)
            assert c.cmd("ZREVRANGE", key, start, stop) == \
                [m for m, _ in rwant], (key, start, stop)
    assert c.cmd("ZRANGE", "nokey", 0, -1) == []
    assert c.cmd("ZRANGE", "small", "x", 1) == NOTINT
    assert c.cmd("ZRANGE", "small", 0, "1.5") == NOTINT


def test_zrange_by_score(c):
    """BYSCORE and the legacy Z[REV]RANGEBYSCORE: exclusive bounds, -inf and
    +inf, LIMIT with a negative count (all) and a negative offset
    (nothing), REV taking max first, in both encodings against the
    model."""
    models = make_sets(c)
    rnd = random.Random(3)
    cuts = [-float("inf"), -3, -2.5, -1, 0, 0.5, 1, 2, 3.25, 50, 100,
            float("inf")]
    for key, model in models.items():
        for _ in range(120):
            lo, hi = sorted([rnd.choice(cuts), rnd.choice(cuts)])
            if rnd.random() < 0.1:
                lo, hi = hi, lo
            lox, hix = rnd.random() < 0.4, rnd.random() < 0.4
            off, cnt = 0, -1
            limit = []
            if rnd.random() < 0.5:
                off = rnd.choice([0, 1, 3, 20, 500, -1])
                cnt = rnd.choice([-1, -5, 0, 1, 4, 1000])
                limit = ["LIMIT", off, cnt]
            want = model.by_score(lo, lox, hi, hix, False, off, cnt)
            a, b = bound(lo, lox), bound(hi, hix)
            assert c.cmd("ZRANGEBYSCORE", key, a, b, "WITHSCORES",
                         *limit) == flat(want), (key, a, b, limit)
            assert c.cmd("ZRANGE", key, a, b, "BYSCORE", *limit) == \
                [m for m, _ in want], (key, a, b, limit)
            rwant = model.by_score(lo, lox, hi, hix, True, off, cnt)
            assert c.cmd("ZREVRANGEBYSCORE", key, b, a, *limit) == \
                [m for m, _ in rwant], (key, a, b, limit)
            assert c.cmd("ZRANGE", key, b, a, "BYSCORE", "REV",
                         "WITHSCORES", *limit) == flat(rwant)
            assert c.cmd("ZCOUNT", key, a, b) == len(
                model.by_score(lo, lox, hi, hix))
    # zslParseRange's strtod: an empty bound is 0, "(" alone is (0,
    # leading spaces pass; NaN and trailing junk do not.
    c.cmd("ZADD", "s", 0, "zero", 1, "one")
    assert c.cmd("ZRANGEBYSCORE", "s", "", "") == [b"zero"]
    assert c.cmd("ZRANGEBYSCORE", "s", "(", "+inf") == [b"one"]
    assert c.cmd("ZRANGEBYSCORE", "s", " 1", "1e400") == [b"one"]
    assert c.cmd("ZRANGEBYSCORE", "s", "(0", "(1") == []
    assert c.cmd("ZRANGEBYSCORE", "s", 1, 0) == []
    for a, b in (("nan", 1), (0, "1x"), ("((1", 2), ("abc", 1)):
        assert c.cmd("ZRANGEBYSCORE", "s", a, b) == RANGE_NOTFLOAT
        assert c.cmd("ZCOUNT", "s", a, b) == RANGE_NOTFLOAT
    assert c.cmd("ZRANGEBYSCORE", "s", 0, 1, "LIMIT", 0) == SYNTAX
    assert c.cmd("ZRANGEBYSCORE", "s", 0, 1, "LIMIT", 0, "x") == NOTINT
    assert c.cmd("ZRANGEBYSCORE", "s", 0, 1, "LIMIT", 0, 1, "x") == SYNTAX
    assert c.cmd("ZRANGEBYSCORE", "s", 0, 1, "BYSCORE") == SYNTAX
    assert c.cmd("ZRANGEBYSCORE", "nokey", 0, 1) == []
    assert c.cmd("ZCOUNT", "nokey", 0, 1) == 0


def test_zrange_by_lex(c):
    """BYLEX and Z[REV]RANGEBYLEX on equal scores: [ ( - + bounds, LIMIT,
    REV, ZLEXCOUNT, in both encodings against the model; bad bounds are
    refused."""
    words = ["a", "aa", "ab", "b", "ba", "c", "d", "e", "f", "g", "h"]
    big = words + ["z%03d" % i for i in range(200)]
    c.cmd("ZADD", "small", *[x for w in words for x in (0, w)])
    c.cmd("ZADD", "big", *[x for w in big for x in (0, w)])
    models = {"small": Model((w, 0) for w in words),
              "big": Model((w, 0) for w in big)}
    rnd = random.Random(5)
    ends = ["-", "+", "[a", "(a", "[aa", "(ab", "[b", "(b", "[c", "(d",
            "[z050", "(z100", "[zz", "[", "("]
    for key, model in models.items():
        for _ in range(150):
            lo, hi = rnd.choice(ends), rnd.choice(ends)
            off, cnt, limit = 0, -1, []
            if rnd.random() < 0.5:
                off = rnd.choice([0, 1, 2, 50, -1])
                cnt = rnd.choice([-1, 0, 1, 3, 100])
                limit = ["LIMIT", off, cnt]
            want = [m for m, _ in model.by_lex(lo.encode(), hi.encode(),
                                               False, off, cnt)]
            assert c.cmd("ZRANGEBYLEX", key, lo, hi, *limit) == want, \
                (key, lo, hi, limit)
            assert c.cmd("ZRANGE", key, lo, hi, "BYLEX", *limit) == want
            rwant = [m for m, _ in model.by_lex(lo.encode(), hi.encode(),
                                                True, off, cnt)]
            assert c.cmd("ZREVRANGEBYLEX", key, hi, lo, *limit) == rwant, \
                (key, lo, hi, limit)
            assert c.cmd("ZRANGE", key, hi, lo, "BYLEX", "REV",
                         *limit) == rwant
            assert c.cmd("ZLEXCOUNT", key, lo, hi) == len(
                model.by_lex(lo.encode(), hi.encode()))
    # Over unequal scores (unspecified) a listpack answers as 7.0 walks
    # it: from the first member in range, skip the offset, then take
    # members while they are within the far end.
    c.cmd("ZADD", "u", "-inf", "m137", 0, "m162", 1, "m20", 1, "m22", 1,
          "m32", "2.5", "m36", "2.5", "m84", 3, "m1", 7, "m2", "1e20", "m106")
    assert c.cmd("ZREVRANGEBYLEX", "u", "[m3", "(m1", "LIMIT", 4, 1) == \
        [b"m36"]
    c.cmd("ZADD", "v", -3, "m3", 0, "m45", "0.1", "", "1.1", "m24", "2.5",
          "m2", "1e20", "m0", "1e20", "m185")
    assert c.cmd("ZRANGEBYLEX", "v", "[", "[m3", "LIMIT", 2, 1) == [b""]
    assert c.cmd("ZRANGEBYLEX", "v", "[", "[m3") == [b"m3"]
    for a, b in (("a", "[b"), ("[a", "b"), ("+x", "[b"), ("-", "++"),
                 ("", "+")):
        assert c.cmd("ZRANGEBYLEX", "small", a, b) == RANGE_NOTLEX
        assert c.cmd("ZLEXCOUNT", "small", a, b) == RANGE_NOTLEX
        assert c.cmd("ZREMRANGEBYLEX", "small", a, b) == RANGE_NOTLEX
    assert c.cmd("ZRANGEBYLEX", "nokey", "-", "+") == []
    assert c.cmd("ZLEXCOUNT", "nokey", "-", "+") == 0


def test_zrange_option_errors(c):
    """ZRANGE's invalid combinations answer Redis 7.0's texts, in its
    order; repeated WITHSCORES is fine; the legacy forms refuse the options
    they fix."""
    c.cmd("ZADD", "z", 1, "a", 2, "b", 3, "c")
    limit_err = Err("ERR syntax error, LIMIT is only supported in "
                    "combination with either BYSCORE or BYLEX")
    lex_err = Err("ERR syntax error, WITHSCORES not supported in "
                  "combination with BYLEX")
    assert c.cmd("ZRANGE", "z", 0, -1, "LIMIT", 0, 1) == limit_err
    assert c.cmd("ZRANGE", "z", 0, -1, "REV", "LIMIT", 0, 1) == limit_err
    assert c.cmd("ZREVRANGE", "z", 0, -1, "LIMIT", 0, 1) == limit_err
    assert c.cmd("ZRANGESTORE", "d", "z", 0, -1, "LIMIT", 0, 1) == limit_err
    assert c.cmd("ZRANGE", "z", 0, -1, "LIMIT", 0, -1) == [b"a", b"b", b"c"]
    assert c.cmd("ZRANGE", "z", "-", "+", "BYLEX", "WITHSCORES") == lex_err
    assert c.cmd("ZRANGEBYLEX", "z", "-", "+", "WITHSCORES") == lex_err
    assert c.cmd("ZRANGE", "z", 0, -1, "BYSCORE", "BYLEX") == SYNTAX
    assert c.cmd("ZRANGE", "z", 0, -1, "BYSCORE", "BYSCORE") == SYNTAX
    assert c.cmd("ZRANGE", "z", 0, -1, "REV", "REV") == SYNTAX
    assert c.cmd("ZREVRANGE", "z", 0, -1, "REV") == SYNTAX
    assert c.cmd("ZRANGE", "z", 0, -1, "foo") == SYNTAX
    assert c.cmd("ZRANGE", "z", 0, -1, "LIMIT", 1) == SYNTAX
    assert c.cmd("ZRANGESTORE", "d", "z", 0, -1, "WITHSCORES") == SYNTAX
    assert c.cmd("ZRANGE", "z", 0, -1, "WITHSCORES", "WITHSCORES") == [
        b"a", b"1", b"b", b"2", b"c", b"3"]
    assert c.cmd("ZRANGE", "z", "(1", "+inf", "BYSCORE", "LIMIT", "x",
                 1) == NOTINT
    assert c.cmd("ZRANGE", "z", "a", "b", "BYSCORE") == RANGE_NOTFLOAT
    assert c.cmd("ZRANGE", "z", 1, 2, "BYLEX") == RANGE_NOTLEX
    assert c.cmd("ZRANGE", "z", 0) == Err(
        "ERR wrong number of arguments for 'zrange' command")
    assert c.cmd("EXISTS", "d") == 0


def test_withscores_bytes_resp2_and_resp3(c):
    """WITHSCORES is flat in RESP2 and [member, double] pairs in RESP3,
    byte for byte; ZSCORE/ZINCRBY/ZMSCORE are doubles in RESP3, misses
    `_`; ZRANK stays an integer."""
    c.cmd("ZADD", "z", "1.5", "a", 2, "b", "inf", "c")
    assert c.cmd_bytes("ZRANGE", "z", 0, 1, "WITHSCORES") == \
        b"*4\r\n$1\r\na\r\n$3\r\n1.5\r\n$1\r\nb\r\n$1\r\n2\r\n"
    assert c.cmd_bytes("ZRANGE", "z", 2, 2, "WITHSCORES") == \
        b"*2\r\n$1\r\nc\r\n$3\r\ninf\r\n"
    assert c.cmd_bytes("ZSCORE", "z", "nope") == b"$-1\r\n"
    c.cmd("HELLO", 3)
    assert c.cmd_bytes("ZRANGE", "z", 0, -1, "WITHSCORES") == (
        b"*3\r\n*2\r\n$1\r\na\r\n,1.5\r\n*2\r\n$1\r\nb\r\n,2\r\n"
        b"*2\r\n$1\r\nc\r\n,inf\r\n")
    assert c.cmd_bytes("ZRANGE", "z", 0, -1) == \
        b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
    assert c.cmd_bytes("ZRANGEBYSCORE", "z", 2, "+inf", "WITHSCORES") == \
        b"*2\r\n*2\r\n$1\r\nb\r\n,2\r\n*2\r\n$1\r\nc\r\n,inf\r\n"
    assert c.cmd_bytes("ZREVRANGE", "z", 0, 0, "WITHSCORES") == \
        b"*1\r\n*2\r\n$1\r\nc\r\n,inf\r\n"
    assert c.cmd_bytes("ZRANGE", "nokey", 0, -1, "WITHSCORES") == b"*0\r\n"
    assert c.cmd_bytes("ZSCORE", "z", "a") == b",1.5\r\n"
    assert c.cmd_bytes("ZSCORE", "z", "nope") == b"_\r\n"
    assert c.cmd("ZMSCORE", "z", "a", "nope") == [Double("1.5"), NULL3]
    assert c.cmd_bytes("ZINCRBY", "z", "0.1", "a") == b",1.6000000000000001\r\n"
    assert c.cmd_bytes("ZADD", "z", "XX", "INCR", 1, "nope") == b"_\r\n"
    assert c.cmd_bytes("ZRANK", "z", "b") == b":1\r\n"
    assert c.cmd_bytes("ZRANK", "z", "nope") == b"_\r\n"
    assert c.cmd_bytes("ZUNION", 1, "z", "WITHSCORES") == (
        b"*3\r\n*2\r\n$1\r\na\r\n,1.6000000000000001\r\n"
        b"*2\r\n$1\r\nb\r\n,2\r\n*2\r\n$1\r\nc\r\n,inf\r\n")
    # ZSCAN's scores stay bulk strings in RESP3.
    assert c.cmd_bytes("ZSCAN", "z", 0, "MATCH", "b") == \
        b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n"


def test_zremrange(c):
    """ZREMRANGEBYRANK/SCORE/LEX remove what the ranges name (negative
    ranks, exclusive bounds), in both encodings, delete an emptied key and
    check their arguments before the key."""
    models = make_sets(c)
    for key, model in models.items():
        items = model.items()
        n = len(items)
        assert c.cmd("ZREMRANGEBYRANK", key, n, n + 10) == 0
        assert c.cmd("ZREMRANGEBYRANK", key, 5, 2) == 0
        assert c.cmd("ZREMRANGEBYRANK", key, -2, -1) == 2
        items = items[:-2]
        assert c.cmd("ZREMRANGEBYRANK", key, -1000, 0) == 1
        items = items[1:]
        assert c.cmd("ZREMRANGEBYSCORE", key, "(0", 1) == len(
            [1 for _, s in items if 0 < s <= 1])
        items = [(m, s) for m, s in items if not 0 < s <= 1]
        assert c.cmd("ZREMRANGEBYSCORE", key, "(100", "+inf") == 0
        assert c.cmd("ZRANGE", key, 0, -1, "WITHSCORES") == flat(items)
        assert c.cmd("ZREMRANGEBYSCORE", key, "-inf", "+inf") == len(items)
        assert c.cmd("EXISTS", key) == 0
    c.cmd("ZADD", "l", 0, "a", 0, "b", 0, "c", 0, "d")
    assert c.cmd("ZREMRANGEBYLEX", "l", "(a", "[c") == 2
    assert c.cmd("ZRANGE", "l", 0, -1) == [b"a", b"d"]
    assert c.cmd("ZREMRANGEBYLEX", "l", "-", "+") == 2
    assert c.cmd("EXISTS", "l") == 0
    assert c.cmd("ZREMRANGEBYRANK", "nokey", 0, -1) == 0
    assert c.cmd("ZREMRANGEBYRANK", "nokey", "x", 1) == NOTINT
    assert c.cmd("ZREMRANGEBYSCORE", "nokey", "x", 1) == RANGE_NOTFLOAT


# ---------------------------------------------------------------------------
# pops, random members, scans


def test_zpop_and_zmpop(c):
    """ZPOPMIN/ZPOPMAX with and without a count, ZMPOP from the first
    non-empty key with MIN/MAX and COUNT; an emptied key is deleted; the
    errors and their order (WRONGTYPE before a zero count's empty
    reply)."""
    c.cmd("ZADD", "z", 1, "a", 2, "b", 3, "c", 4, "d")
    assert c.cmd("ZPOPMIN", "z") == [b"a", b"1"]
    assert c.cmd("ZPOPMAX", "z", 2) == [b"d", b"4", b"c", b"3"]
    assert c.cmd("ZPOPMIN", "z", 0) == []
    assert c.cmd("ZPOPMIN", "z", 10) == [b"b", b"2"]
    assert c.cmd("EXISTS", "z") == 0
    assert c.cmd("ZPOPMIN", "nokey") == []
    assert c.cmd("ZPOPMAX", "nokey", 3) == []
    assert c.cmd("ZPOPMIN", "z", -1) == Err(
        "ERR value is out of range, must be positive")
    assert c.cmd("ZPOPMIN", "z", "x") == Err(
        "ERR value is out of range, must be positive")
    assert c.cmd("ZPOPMIN", "z", 1, 2) == SYNTAX
    c.cmd("ZADD", "y", 5, "p", 6, "q", 7, "r")
    assert c.cmd("ZMPOP", 3, "nokey", "y", "z", "MAX") == [
        b"y", [[b"r", b"7"]]]
    assert c.cmd("ZMPOP", 2, "nokey", "y", "MIN", "COUNT", 5) == [
        b"y", [[b"p", b"5"], [b"q", b"6"]]]
    assert c.cmd("EXISTS", "y") == 0
    assert c.cmd("ZMPOP", 1, "y", "MIN") is None
    for args, err in (((0, "y", "MIN"), "ERR numkeys should be greater "
                                        "than 0"),
                      (("x", "y", "MIN"), "ERR numkeys should be greater "
                                          "than 0"),
                      ((1, "y", "FOO"), "ERR syntax error"),
                      ((2, "y", "MIN"), "ERR syntax error"),
                      ((1, "y", "MIN", "COUNT", 0), "ERR count should be "
                                                    "greater than 0"),
                      ((1, "y", "MIN", "COUNT", "x"), "ERR count should be "
                                                      "greater than 0"),
                      ((1, "y", "MIN", "COUNT"), "ERR syntax error"),
                      ((1, "y", "MIN", "COUNT", 1, "COUNT", 2),
                       "ERR syntax error")):
        assert c.cmd("ZMPOP", *args) == Err(err), args
    c.cmd("SET", "s", "v")
    assert c.cmd("ZPOPMIN", "s", 0) == WRONGTYPE
    assert c.cmd("ZMPOP", 2, "nokey", "s", "MIN") == WRONGTYPE
    # big: pops in order from a skiplist, the key stays a skiplist
    c.cmd("ZADD", "b", *[x for i in range(200) for x in (i, "m%03d" % i)])
    got = c.cmd("ZPOPMAX", "b", 3)
    assert got == [b"m199", b"199", b"m198", b"198", b"m197", b"197"]
    assert c.cmd("ZMPOP", 1, "b", "MIN", "COUNT", 2) == [
        b"b", [[b"m000", b"0"], [b"m001", b"1"]]]
    assert c.cmd("ZCARD", "b") == 195


def test_zpop_replies_in_resp3(c):
    """Under HELLO 3: ZPOPMIN without a count is a flat [member, double],
    with a count pairs; ZMPOP nests pairs and answers `_` for no key."""
    c.cmd("ZADD", "z", 1, "a", 2, "b", 3, "c")
    c.cmd("HELLO", 3)
    assert c.cmd_bytes("ZPOPMIN", "z") == b"*2\r\n$1\r\na\r\n,1\r\n"
    assert c.cmd_bytes("ZPOPMIN", "z", 1) == b"*1\r\n*2\r\n$1\r\nb\r\n,2\r\n"
    assert c.cmd_bytes("ZMPOP", 1, "z", "MAX") == \
        b"*2\r\n$1\r\nz\r\n*1\r\n*2\r\n$1\r\nc\r\n,3\r\n"
    assert c.cmd_bytes("ZMPOP", 1, "z", "MAX") == b"_\r\n"
    assert c.cmd_bytes("ZPOPMAX", "z") == b"*0\r\n"


def test_zrandmember(c):
    """ZRANDMEMBER as HRANDFIELD: one member; a positive count gives
    distinct members (the whole set, highest first, when it exceeds
    ZCARD), a negative one exactly |count| with repeats; WITHSCORES pairs
    match the set; the range errors of 7.0."""
    c.cmd("ZADD", "z", 1, "a", 2, "b", 3, "c")
    assert c.cmd("ZRANDMEMBER", "z") in (b"a", b"b", b"c")
    got = c.cmd("ZRANDMEMBER", "z", 2)
    assert len(got) == 2 and len(set(got)) == 2
    assert c.cmd("ZRANDMEMBER", "z", 10) == [b"c", b"b", b"a"]
    assert c.cmd("ZRANDMEMBER", "z", 3, "WITHSCORES") == [
        b"c", b"3", b"b", b"2", b"a", b"1"]
    got = c.cmd("ZRANDMEMBER", "z", -10)
    assert len(got) == 10 and set(got) <= {b"a", b"b", b"c"}
    fl = c.cmd("ZRANDMEMBER", "z", -5, "WITHSCORES")
    assert len(fl) == 10
    for m, s in zip(fl[0::2], fl[1::2]):
        assert c.cmd("ZSCORE", "z", m) == s
    assert c.cmd("ZRANDMEMBER", "z", 0) == []
    assert c.cmd("ZRANDMEMBER", "nokey") is None
    assert c.cmd("ZRANDMEMBER", "nokey", 3) == []
    assert c.cmd("ZRANDMEMBER", "z", "x") == NOTINT
    assert c.cmd("ZRANDMEMBER", "z", "x", "y", "z") == NOTINT
    assert c.cmd("ZRANDMEMBER", "z", 1, "WITHSCORE") == SYNTAX
    assert c.cmd("ZRANDMEMBER", "z", 1, "WITHSCORES", "x") == SYNTAX
    assert c.cmd("ZRANDMEMBER", "z", -9223372036854775808) == Err(
        "ERR value is out of range, value must between "
        "-9223372036854775807 and 9223372036854775807")
    for n in (-4611686018427387904, 4611686018427387904):
        assert c.cmd("ZRANDMEMBER", "z", n, "WITHSCORES") == Err(
            "ERR value is out of range")
    c.cmd("ZADD", "big", *[x for i in range(300) for x in (i, "m%d" % i)])
    got = c.cmd("ZRANDMEMBER", "big", 50, "WITHSCORES")
    d = dict(zip(got[0::2], got[1::2]))
    assert len(d) == 50
    for m, s in d.items():
        assert m == b"m" + s
    c.cmd("HELLO", 3)
    got = c.cmd("ZRANDMEMBER", "z", -3, "WITHSCORES")
    assert len(got) == 3 and all(len(p) == 2 and type(p[1]) is Double
                                 for p in got)
    assert c.cmd_bytes("ZRANDMEMBER", "nokey") == b"_\r\n"


def test_zscan(c):
    """ZSCAN returns a small zset whole, walks every member of a big one
    (scores as text), MATCH filters members, COUNT and the cursor are
    checked."""
    c.cmd("ZADD", "s", 1, "a1", "2.5", "b1", 3, "a2")
    assert c.cmd("ZSCAN", "s", 0) == [b"0", [b"a1", b"1", b"b1", b"2.5",
                                             b"a2", b"3"]]
    assert c.cmd("ZSCAN", "s", 0, "MATCH", "a*") == [
        b"0", [b"a1", b"1", b"a2", b"3"]]
    c.cmd("ZADD", "b", *[x for i in range(1000) for x in ("%d.5" % i,
                                                          "m%d" % i)])
    seen, cur, calls = {}, b"0", 0
    while True:
        cur, items = c.cmd("ZSCAN", "b", cur, "COUNT", 50)
        seen.update(zip(items[0::2], items[1::2]))
        calls += 1
        if cur == b"0" or calls > 10000:
            break
    assert cur == b"0" and calls > 1
    assert len(seen) == 1000 and seen[b"m7"] == b"7.5"
    assert c.cmd("ZSCAN", "nokey", 0) == [b"0", []]
    assert c.cmd("ZSCAN", "s", "abc") == Err("ERR invalid cursor")
    assert c.cmd("ZSCAN", "s", 0, "COUNT", 0) == SYNTAX
    assert c.cmd("ZSCAN", "s", 0, "COUNT", "x") == NOTINT
    assert c.cmd("ZSCAN", "s", 0, "MATCH") == SYNTAX
    # the key before the options: a missing key scans empty whatever
    # follows, WRONGTYPE wins over a syntax error
    assert c.cmd("ZSCAN", "nokey", 0, "COUNT", 0) == [b"0", []]
    assert c.cmd("ZSCAN", "nokey", "x") == Err("ERR invalid cursor")
    c.cmd("SET", "str", "v")
    assert c.cmd("ZSCAN", "str", 0, "BOGUS") == WRONGTYPE


# ---------------------------------------------------------------------------
# algebra and the STORE forms


def test_union_inter_diff(c):
    """ZUNION/ZINTER/ZDIFF with WEIGHTS and AGGREGATE SUM|MIN|MAX, missing
    keys as empty sets, WITHSCORES; inf * 0 and inf + -inf give 0, as
    Redis's aggregation does; ZINTERCARD with LIMIT."""
    c.cmd("ZADD", "a", 1, "x", 2, "y", 3, "z")
    c.cmd("ZADD", "b", 10, "y", 20, "z", 30, "w")
    assert c.cmd("ZUNION", 2, "a", "b", "WITHSCORES") == [
        b"x", b"1", b"y", b"12", b"z", b"23", b"w", b"30"]
    assert c.cmd("ZUNION", 2, "a", "b", "WEIGHTS", 2, "-1", "AGGREGATE",
                 "MAX", "WITHSCORES") == [
        b"w", b"-30", b"x", b"2", b"y", b"4", b"z", b"6"]
    assert c.cmd("ZUNION", 3, "a", "nokey", "b", "AGGREGATE", "MIN") == [
        b"x", b"y", b"z", b"w"]
    assert c.cmd("ZINTER", 2, "a", "b", "WITHSCORES") == [
        b"y", b"12", b"z", b"23"]
    assert c.cmd("ZINTER", 2, "a", "b", "AGGREGATE", "MIN", "WEIGHTS",
                 "0.5", 1, "WITHSCORES") == [b"y", b"1", b"z", b"1.5"]
    assert c.cmd("ZINTER", 2, "a", "nokey") == []
    assert c.cmd("ZDIFF", 2, "a", "b", "WITHSCORES") == [b"x", b"1"]
    assert c.cmd("ZDIFF", 3, "b", "nokey", "a") == [b"w"]
    assert c.cmd("ZDIFF", 1, "nokey") == []
    assert c.cmd("ZINTERCARD", 2, "a", "b") == 2
    assert c.cmd("ZINTERCARD", 2, "a", "b", "LIMIT", 1) == 1
    assert c.cmd("ZINTERCARD", 2, "a", "b", "LIMIT", 0) == 2
    assert c.cmd("ZINTERCARD", 1, "a", "LIMIT", 1, "LIMIT", 2) == 2
    assert c.cmd("ZINTERCARD", 2, "a", "nokey") == 0
    c.cmd("ZADD", "i", "inf", "x", "-inf", "y")
    c.cmd("ZADD", "j", "-inf", "x", "-inf", "y")
    assert c.cmd("ZUNION", 2, "i", "j", "WITHSCORES") == [
        b"y", b"-inf", b"x", b"0"]
    assert c.cmd("ZUNION", 1, "i", "WEIGHTS", 0, "WITHSCORES") == [
        b"x", b"0", b"y", b"0"]
    assert c.cmd("ZINTER", 2, "i", "j", "WEIGHTS", 1, 0, "AGGREGATE", "MAX",
                 "WITHSCORES") == [b"y", b"-inf", b"x", b"inf"]
    assert c.cmd("ZINTER", 2, "i", "j", "WEIGHTS", 1, 0,
                 "WITHSCORES") == [b"x", b"0", b"y", b"0"]


def test_algebra_takes_sets(c):
    """Plain sets are inputs of the algebra, every member scoring 1
    (intsets and hashtables alike, WEIGHTS applying); ZRANGESTORE and the
    other zset commands still refuse them."""
    c.cmd("SADD", "s", "a", "b", "c")
    c.cmd("SADD", "is", 1, 2, 3)
    c.cmd("ZADD", "z", 2, "a", 5, "d", "0.5", "1")
    assert c.cmd("OBJECT", "ENCODING", "is") == b"intset"
    assert c.cmd("ZUNION", 2, "z", "s", "WITHSCORES") == [
        b"1", b"0.5", b"b", b"1", b"c", b"1", b"a", b"3", b"d", b"5"]
    assert c.cmd("ZINTER", 2, "s", "z", "WITHSCORES") == [b"a", b"3"]
    assert c.cmd("ZDIFF", 2, "s", "z", "WITHSCORES") == [
        b"b", b"1", b"c", b"1"]
    assert c.cmd("ZUNION", 2, "is", "z", "WEIGHTS", 2, 1, "WITHSCORES") == [
        b"2", b"2", b"3", b"2", b"a", b"2", b"1", b"2.5", b"d", b"5"]
    assert c.cmd("ZINTERCARD", 2, "s", "z") == 1
    assert c.cmd("ZINTERSTORE", "d", 2, "s", "s", "WEIGHTS", 2, 3) == 3
    assert c.cmd("ZRANGE", "d", 0, -1, "WITHSCORES") == [
        b"a", b"5", b"b", b"5", b"c", b"5"]
    assert c.cmd("TYPE", "d") == "zset"
    assert c.cmd("ZDIFFSTORE", "s", 2, "s", "z") == 2
    assert c.cmd("TYPE", "s") == "zset"
    c.cmd("SADD", "s2", "x")
    assert c.cmd("ZRANGESTORE", "d", "s2", 0, -1) == WRONGTYPE
    assert c.cmd("ZCARD", "s2") == WRONGTYPE
    assert c.cmd("ZSCORE", "s2", "x") == WRONGTYPE


def test_thresholds_follow_config_set(c):
    """CONFIG SET zset-max-listpack-entries/-value move the conversion
    points for new writes and for results built whole."""
    assert c.cmd("CONFIG", "SET", "zset-max-listpack-entries", 4,
                 "zset-max-listpack-value", 8) == "OK"
    c.cmd("ZADD", "z", 1, "a", 2, "b", 3, "c", 4, "d")
    assert c.cmd("OBJECT", "ENCODING", "z") == b"listpack"
    c.cmd("ZADD", "z", 5, "e")
    assert c.cmd("OBJECT", "ENCODING", "z") == b"skiplist"
    c.cmd("ZADD", "v", 1, "12345678")
    assert c.cmd("OBJECT", "ENCODING", "v") == b"listpack"
    c.cmd("ZADD", "v", 1, "123456789")
    assert c.cmd("OBJECT", "ENCODING", "v") == b"skiplist"
    assert c.cmd("ZUNIONSTORE", "d", 1, "z") == 5
    assert c.cmd("OBJECT", "ENCODING", "d") == b"skiplist"
    assert c.cmd("ZRANGESTORE", "d", "z", 0, 3) == 4
    assert c.cmd("OBJECT", "ENCODING", "d") == b"listpack"
    assert c.cmd("ZINTERSTORE", "d", 1, "v") == 2
    assert c.cmd("OBJECT", "ENCODING", "d") == b"skiplist"
    assert c.cmd("CONFIG", "SET", "zset-max-listpack-entries", 0) == "OK"
    c.cmd("ZADD", "w", 1, "a")
    assert c.cmd("OBJECT", "ENCODING", "w") == b"skiplist"
    assert c.cmd("CONFIG", "SET", "zset-max-listpack-entries", 128,
                 "zset-max-listpack-value", 64) == "OK"


def test_algebra_errors(c):
    """numkeys, WEIGHTS, AGGREGATE, WITHSCORES and LIMIT errors with 7.0's
    texts; WRONGTYPE comes before a syntax error in the options."""
    c.cmd("ZADD", "a", 1, "x")
    c.cmd("SET", "s", "v")
    for cmd, args, err in (
            ("ZUNIONSTORE", ("d", 0, "a"), "ERR at least 1 input key is "
                                           "needed for 'zunionstore' "
                                           "command"),
            ("ZINTERSTORE", ("d", -1, "a"), "ERR at least 1 input key is "
                                            "needed for 'zinterstore' "
                                            "command"),
            ("ZDIFF", (0, "a"), "ERR at least 1 input key is needed for "
                                "'zdiff' command"),
            ("ZINTERCARD", (0, "a"), "ERR at least 1 input key is needed "
                                     "for 'zintercard' command"),
            ("ZUNION", ("x", "a"), "ERR value is not an integer or out of "
                                   "range"),
            ("ZUNION", (2, "a"), "ERR syntax error"),
            ("ZUNIONSTORE", ("d", 3, "a"), "ERR syntax error"),
            ("ZUNIONSTORE", ("d", 2, "a", "b", "WEIGHTS", 1),
             "ERR syntax error"),
            ("ZUNIONSTORE", ("d", 1, "a", "WEIGHTS", "x"),
             "ERR weight value is not a float"),
            ("ZUNIONSTORE", ("d", 1, "a", "WEIGHTS", "nan"),
             "ERR weight value is not a float"),
            ("ZUNIONSTORE", ("d", 1, "a", "AGGREGATE", "avg"),
             "ERR syntax error"),
            ("ZUNIONSTORE", ("d", 1, "a", "AGGREGATE"), "ERR syntax error"),
            ("ZUNIONSTORE", ("d", 1, "a", "WITHSCORES"), "ERR syntax error"),
            ("ZDIFF", (1, "a", "WEIGHTS", 1), "ERR syntax error"),
            ("ZDIFF", (1, "a", "AGGREGATE", "MIN"), "ERR syntax error"),
            ("ZINTERCARD", (1, "a", "WITHSCORES"), "ERR syntax error"),
            ("ZINTERCARD", (1, "a", "WEIGHTS", 1), "ERR syntax error"),
            ("ZINTERCARD", (2, "a"), "ERR syntax error"),
            ("ZINTERCARD", (1, "a", "LIMIT", -1), "ERR LIMIT can't be "
                                                  "negative"),
            ("ZINTERCARD", (1, "a", "LIMIT", "x"), "ERR LIMIT can't be "
                                                   "negative"),
            ("ZINTERCARD", (1, "a", "LIMIT"), "ERR syntax error"),
            ("ZUNION", (1, "s", "BOGUS"), WRONGTYPE),
            ("ZINTER", (2, "nokey", "s"), WRONGTYPE),
            ("ZINTERCARD", (2, "nokey", "s"), WRONGTYPE),
            ("ZDIFFSTORE", ("d", 2, "a", "s"), WRONGTYPE)):
        assert c.cmd(cmd, *args) == Err(err), (cmd, args)
    assert c.cmd("EXISTS", "d") == 0
    assert c.cmd("ZUNION", 0) == Err(
        "ERR wrong number of arguments for 'zunion' command")
    assert c.cmd("ZINTERSTORE", "d", 1) == Err(
        "ERR wrong number of arguments for 'zinterstore' command")


def test_store_forms(c):
    """ZUNIONSTORE/ZINTERSTORE/ZDIFFSTORE/ZRANGESTORE overwrite a
    destination of any type and drop its TTL, delete it when the result is
    empty, may name it as an input, and leave a result in the encoding of
    its final size."""
    c.cmd("ZADD", "a", 1, "x", 2, "y", 3, "z")
    c.cmd("ZADD", "b", 5, "y")
    c.cmd("SET", "d", "string", "EX", 100)
    assert c.cmd("ZUNIONSTORE", "d", 2, "a", "b") == 3
    assert c.cmd("TYPE", "d") == "zset"
    assert c.cmd("TTL", "d") == -1
    assert c.cmd("ZRANGE", "d", 0, -1, "WITHSCORES") == [
        b"x", b"1", b"z", b"3", b"y", b"7"]
    assert c.cmd("OBJECT", "ENCODING", "d") == b"listpack"
    assert c.cmd("ZINTERSTORE", "d", 2, "d", "b", "WEIGHTS", 1, 2) == 1
    assert c.cmd("ZRANGE", "d", 0, -1, "WITHSCORES") == [b"y", b"17"]
    assert c.cmd("ZDIFFSTORE", "d", 2, "a", "b") == 2
    assert c.cmd("ZRANGE", "d", 0, -1) == [b"x", b"z"]
    c.cmd("HSET", "h", "f", "v")
    assert c.cmd("ZRANGESTORE", "h", "a", 1, -1) == 2
    assert c.cmd("ZRANGE", "h", 0, -1) == [b"y", b"z"]
    assert c.cmd("ZRANGESTORE", "h", "a", "(1", 2, "BYSCORE") == 1
    assert c.cmd("ZRANGESTORE", "h", "a", "+", "[y", "BYLEX", "REV",
                 "LIMIT", 0, 1) == 1
    assert c.cmd("ZRANGE", "h", 0, -1) == [b"z"]
    # empty results delete the destination, whatever it held
    c.cmd("SET", "e", "v")
    assert c.cmd("ZINTERSTORE", "e", 2, "a", "nokey") == 0
    assert c.cmd("EXISTS", "e") == 0
    c.cmd("SET", "e", "v")
    assert c.cmd("ZRANGESTORE", "e", "nokey", 0, -1) == 0
    assert c.cmd("EXISTS", "e") == 0
    c.cmd("SET", "e", "v")
    assert c.cmd("ZRANGESTORE", "e", "a", 5, 10) == 0
    assert c.cmd("EXISTS", "e") == 0
    c.cmd("SET", "e", "v")
    assert c.cmd("ZDIFFSTORE", "e", 2, "a", "a") == 0
    assert c.cmd("EXISTS", "e") == 0
    # the source's type is checked, and the destination then kept
    c.cmd("SET", "e", "v")
    assert c.cmd("ZRANGESTORE", "a", "e", 0, -1) == WRONGTYPE
    assert c.cmd("ZRANGE", "a", 0, -1) == [b"x", b"y", b"z"]
    # encodings of results: by final size
    c.cmd("ZADD", "big", *[x for i in range(200) for x in (i, "m%03d" % i)])
    assert c.cmd("ZRANGESTORE", "r", "big", 0, 127) == 128
    assert c.cmd("OBJECT", "ENCODING", "r") == b"listpack"
    assert c.cmd("ZRANGESTORE", "r", "big", 0, 128) == 129
    assert c.cmd("OBJECT", "ENCODING", "r") == b"skiplist"
    assert c.cmd("ZRANGESTORE", "r", "big", 0, 9, "BYSCORE") == 10
    assert c.cmd("OBJECT", "ENCODING", "r") == b"listpack"
    assert c.cmd("ZUNIONSTORE", "r", 1, "big") == 200
    assert c.cmd("OBJECT", "ENCODING", "r") == b"skiplist"
    assert c.cmd("ZINTERSTORE", "r", 2, "big", "a") == 0
    assert c.cmd("ZUNIONSTORE", "r", 2, "big", "a") == 203
    assert c.cmd("ZDIFFSTORE", "r", 2, "r", "a") == 200
    assert c.cmd("ZREMRANGEBYRANK", "r", 0, 150) == 151
    assert c.cmd("ZUNIONSTORE", "r2", 1, "r") == 49
    assert c.cmd("OBJECT", "ENCODING", "r2") == b"listpack"
    assert c.cmd("OBJECT", "ENCODING", "r") == b"skiplist"
    c.cmd("ZADD", "long", 1, "x" * 65)
    assert c.cmd("ZUNIONSTORE", "r3", 1, "long") == 1
    assert c.cmd("OBJECT", "ENCODING", "r3") == b"skiplist"
    # a -0 survives where Redis builds a skiplist, not in a listpack
    c.cmd("ZADD", "big", "-0", "nz")
    assert c.cmd("ZUNIONSTORE", "r", 1, "big") == 201
    assert c.cmd("ZSCORE", "r", "nz") == b"-0"
    assert c.cmd("ZRANGESTORE", "r", "big", 0, -1) == 201
    assert c.cmd("ZSCORE", "r", "nz") == b"-0"
    assert c.cmd("ZRANGESTORE", "r", "big", "-inf", 500, "BYSCORE") == 201
    assert c.cmd("ZSCORE", "r", "nz") == b"0"


def test_wrongtype_both_ways(c):
    """Zset commands on a string or a hash and string/hash commands on a
    zset answer WRONGTYPE and change nothing; DEL, EXISTS, EXPIRE, RENAME
    and SET work on a zset."""
    c.cmd("SET", "s", "v")
    c.cmd("HSET", "h", "f", "1")
    c.cmd("ZADD", "z", 1, "m")
    for key in ("s", "h"):
        for args in (("ZADD", key, 1, "m"), ("ZINCRBY", key, 1, "m"),
                     ("ZREM", key, "m"), ("ZCARD", key),
                     ("ZSCORE", key, "m"), ("ZMSCORE", key, "m"),
                     ("ZRANK", key, "m"), ("ZREVRANK", key, "m"),
                     ("ZCOUNT", key, 0, 1), ("ZLEXCOUNT", key, "-", "+"),
                     ("ZRANGE", key, 0, -1), ("ZREVRANGE", key, 0, -1),
                     ("ZRANGEBYSCORE", key, 0, 1),
                     ("ZREVRANGEBYSCORE", key, 1, 0),
                     ("ZRANGEBYLEX", key, "-", "+"),
                     ("ZREVRANGEBYLEX", key, "+", "-"),
                     ("ZRANGESTORE", "dst", key, 0, -1),
                     ("ZREMRANGEBYRANK", key, 0, -1),
                     ("ZREMRANGEBYSCORE", key, 0, 1),
                     ("ZREMRANGEBYLEX", key, "-", "+"),
                     ("ZPOPMIN", key), ("ZPOPMAX", key, 2),
                     ("ZMPOP", 1, key, "MIN"), ("ZRANDMEMBER", key),
                     ("ZRANDMEMBER", key, 2), ("ZSCAN", key, 0),
                     ("ZUNION", 2, "z", key), ("ZINTER", 1, key),
                     ("ZDIFF", 1, key), ("ZINTERCARD", 1, key),
                     ("ZUNIONSTORE", "dst", 1, key),
                     ("ZINTERSTORE", "dst", 2, "z", key),
                     ("ZDIFFSTORE", "dst", 1, key)):
            assert c.cmd(*args) == WRONGTYPE, args
    for args in (("GET", "z"), ("APPEND", "z", "x"), ("INCR", "z"),
                 ("STRLEN", "z"), ("GETSET", "z", "x"), ("HGET", "z", "f"),
                 ("HSET", "z", "f", "v"), ("HGETALL", "z"), ("HLEN", "z")):
        assert c.cmd(*args) == WRONGTYPE, args
    assert c.cmd("EXISTS", "dst") == 0
    assert c.cmd("GET", "s") == b"v"
    assert c.cmd("MGET", "s", "z") == [b"v", None]
    assert c.cmd("ZSCORE", "z", "m") == b"1"
    assert c.cmd("EXPIRE", "z", 100) == 1
    assert c.cmd("RENAME", "z", "z2") == "OK"
    assert c.cmd("TYPE", "z2") == "zset"
    assert 0 < c.cmd("TTL", "z2") <= 100
    assert c.cmd("ZSCORE", "z2", "m") == b"1"
    assert c.cmd("SCAN", 0, "TYPE", "zset", "COUNT", 100)[1] == [b"z2"]
    assert c.cmd("SET", "z2", "plain") == "OK"
    assert c.cmd("GET", "z2") == b"plain"
    c.cmd("ZADD", "z3", 1, "m")
    assert c.cmd("DEL", "z3") == 1
    assert c.cmd("EXISTS", "z3") == 0


def test_expiry_of_a_zset(c):
    """A zset with a TTL expires whole, and a later ZADD starts a new one."""
    c.cmd("ZADD", "z", 1, "a")
    assert c.cmd("PEXPIRE", "z", 50) == 1
    import time
    time.sleep(0.2)
    assert c.cmd("ZSCORE", "z", "a") is None
    assert c.cmd("EXISTS", "z") == 0
    assert c.cmd("ZADD", "z", 2, "b") == 1
    assert c.cmd("ZRANGE", "z", 0, -1, "WITHSCORES") == [b"b", b"2"]


def test_arity_errors(c):
    """Short commands get Redis's arity errors and the connection goes
    on."""
    for args, name in ((("ZADD", "z", 1), "zadd"),
                       (("ZINCRBY", "z", 1), "zincrby"),
                       (("ZREM", "z"), "zrem"), (("ZCARD",), "zcard"),
                       (("ZSCORE", "z"), "zscore"),
                       (("ZMSCORE", "z"), "zmscore"),
                       (("ZRANK", "z", "a", "WITHSCORE"), "zrank"),
                       (("ZCOUNT", "z", 0), "zcount"),
                       (("ZRANGEBYSCORE", "z", 0), "zrangebyscore"),
                       (("ZRANGESTORE", "d", "z", 0), "zrangestore"),
                       (("ZREMRANGEBYRANK", "z", 0), "zremrangebyrank"),
                       (("ZPOPMIN",), "zpopmin"),
                       (("ZMPOP", 1, "z"), "zmpop"),
                       (("ZRANDMEMBER",), "zrandmember"),
                       (("ZSCAN", "z"), "zscan"),
                       (("ZUNIONSTORE", "d", 1), "zunionstore"),
                       (("ZDIFF", 1), "zdiff"),
                       (("ZINTERCARD", 1), "zintercard")):
        assert c.cmd(*args) == Err(
            "ERR wrong number of arguments for '%s' command" % name), args
    assert c.cmd("PING") == "PONG"


@pytest.mark.parametrize("kind", KINDS)
def test_zset_oom_under_noeviction(make_server, kind):
    """Under noeviction a ZADD or a *STORE that does not fit is refused
    with OOM and the zset keeps what it had; reads, ZREM and DEL still
    work."""
    s = make_server(kind, max_memory=4 * 1024 * 1024, eviction="noeviction")
    with s.raw() as c:
        refused = None
        for i in range(40000):
            rep = c.cmd("ZADD", "z", i, "member-%06d-%s" % (i, "x" * 200))
            if rep != 1:
                refused = (i, rep)
                break
        assert refused is not None, "4 MB never filled"
        i, rep = refused
        assert rep == Err(OOM)
        assert c.cmd("ZCARD", "z") == i
        assert c.cmd("ZUNIONSTORE", "d", 1, "z") == Err(OOM)
        assert c.cmd("ZSCORE", "z", "member-000000-" + "x" * 200) == b"0"
        assert c.cmd("ZREM", "z", "member-000000-" + "x" * 200) == 1
        assert c.cmd("ZPOPMIN", "z") != Err(OOM)
        assert c.cmd("DEL", "z") == 1
        assert c.cmd("ZADD", "z", 1, "m") == 1


def test_big_zset_against_model(c):
    """A few hundred random writes (ZADD with flags, ZINCRBY, ZREM, pops,
    range removals) on one zset that crosses the listpack limit, checked
    against the model after each batch: contents, ranks and counts."""
    rnd = random.Random(11)
    model = {b"p%d" % i: float(i) for i in range(120)}
    c.cmd("ZADD", "z", *[x for m, s in model.items() for x in (repr(s), m)])
    for step in range(400):
        m = ("k%d" % rnd.randrange(180)).encode()
        op = rnd.randrange(10)
        if op < 5:
            s = rnd.choice([0, 1, 2.5, -3, 7, 1e3])
            flags = rnd.choice([[], ["NX"], ["XX"], ["GT"], ["LT"]])
            exists = m in model
            got = c.cmd("ZADD", "z", *flags, "CH", repr(float(s)), m)
            cur = model.get(m)
            if "NX" in flags and exists or "XX" in flags and not exists or \
                    exists and ("GT" in flags and s <= cur or
                                "LT" in flags and s >= cur):
                assert got == 0
            else:
                assert got == (0 if exists and cur == s else 1)
                model[m] = float(s)
        elif op < 7:
            got = c.cmd("ZINCRBY", "z", "0.5", m)
            model[m] = model.get(m, 0.0) + 0.5
            assert got == fmt(model[m])
        elif op < 8:
            assert c.cmd("ZREM", "z", m) == (1 if model.pop(m, None)
                                             is not None else 0)
        elif op < 9:
            got = c.cmd("ZPOPMIN", "z", 2)
            for gm in got[0::2]:
                del model[gm]
        else:
            lo = rnd.choice([-3, 0, 1, 2.5])
            got = c.cmd("ZREMRANGEBYSCORE", "z", repr(float(lo)), "(%r" % (lo + 1.0))
            gone = [k for k, v in model.items() if lo <= v < lo + 1]
            assert got == len(gone)
            for k in gone:
                del model[k]
        if step % 40 == 39:
            items = Model(model.items()).items()
            assert c.cmd("ZRANGE", "z", 0, -1, "WITHSCORES") == flat(items)
            assert c.cmd("ZCARD", "z") == len(items)
            for i in (0, len(items) // 2, len(items) - 1):
                if items:
                    assert c.cmd("ZRANK", "z", items[i][0]) == i
                    assert c.cmd("ZREVRANK", "z", items[i][0]) == \
                        len(items) - 1 - i
    assert c.cmd("OBJECT", "ENCODING", "z") == b"skiplist"


ZSET_SHAPES = {
    "zadd": (-4, 1, 1, 1), "zincrby": (4, 1, 1, 1), "zrem": (-3, 1, 1, 1),
    "zcard": (2, 1, 1, 1), "zscore": (3, 1, 1, 1), "zmscore": (-3, 1, 1, 1),
    "zrank": (3, 1, 1, 1), "zrevrank": (3, 1, 1, 1),
    "zpopmin": (-2, 1, 1, 1), "zpopmax": (-2, 1, 1, 1),
    "zmpop": (-4, 0, 0, 0), "zrandmember": (-2, 1, 1, 1),
    "zscan": (-3, 1, 1, 1), "zrange": (-4, 1, 1, 1),
    "zrangestore": (-5, 1, 2, 1), "zrevrange": (-4, 1, 1, 1),
    "zrangebyscore": (-4, 1, 1, 1), "zrevrangebyscore": (-4, 1, 1, 1),
    "zrangebylex": (-4, 1, 1, 1), "zrevrangebylex": (-4, 1, 1, 1),
    "zcount": (4, 1, 1, 1), "zlexcount": (4, 1, 1, 1),
    "zremrangebyrank": (4, 1, 1, 1), "zremrangebyscore": (4, 1, 1, 1),
    "zremrangebylex": (4, 1, 1, 1), "zunionstore": (-4, 1, 1, 1),
    "zinterstore": (-4, 1, 1, 1), "zdiffstore": (-4, 1, 1, 1),
    "zunion": (-3, 0, 0, 0), "zinter": (-3, 0, 0, 0),
    "zdiff": (-3, 0, 0, 0), "zintercard": (-3, 0, 0, 0),
}


def test_command_info_shapes(c):
    """COMMAND INFO gives every zset command Redis 7.0's arity and key
    positions, and its write/readonly/denyoom flags."""
    for name, shape in ZSET_SHAPES.items():
        entry = c.cmd("COMMAND", "INFO", name)[0]
        assert entry[0] == name.encode()
        assert (entry[1], entry[3], entry[4], entry[5]) == shape, name
        flags = set(entry[2])
        assert ("write" in flags) != ("readonly" in flags), name
        assert ("denyoom" in flags) == (name in (
            "zadd", "zincrby", "zrangestore", "zunionstore", "zinterstore",
            "zdiffstore")), name

"""Lists against Redis 7.0 (issue 16, slice 15: the commands that never
block): every test runs against a real redis-server and `datanode
--standalone` with the same assertions, as test_datanode_hash.py does.
Exact replies go through RawConn; big lists are checked against a Python
model of the list.

Run: NARF_BUILD=/abs/build /usr/bin/python3 -m pytest -q \
         tests/integration/test_datanode_list.py
"""

import random
import time

import pytest

from dn_harness import Err, NULL3

from dn_fixtures import (KINDS, OOM, Servers, c, datanode_binary,  # noqa: F401
                         kind, make_server, near, r, srv)

WRONGTYPE = Err("WRONGTYPE Operation against a key holding the wrong kind "
                "of value")
RANK0 = Err("ERR RANK can't be zero: use 1 to start from the first match, "
            "2 from the second ... or use negative to start from the end "
            "of the list")
NOT_INT = Err("ERR value is not an integer or out of range")
SYNTAX = Err("ERR syntax error")
LLONG_MIN = "-9223372036854775808"
LLONG_MAX = "9223372036854775807"


def lrange_model(lst, start, stop):
    """Redis's LRANGE on a Python list."""
    n = len(lst)
    if start < 0:
        start = max(n + start, 0)
    if stop < 0:
        stop = n + stop
    stop = min(stop, n - 1)
    if start > stop:
        return []
    return lst[start:stop + 1]


def ltrim_model(lst, start, stop):
    return lrange_model(lst, start, stop)


def push_all(c, key, items, chunk=1000):
    """RPUSH items in chunks; returns the final length."""
    n = 0
    for i in range(0, len(items), chunk):
        n = c.cmd("RPUSH", key, *items[i:i + chunk])
    return n


def test_push_pop_both_ends(c):
    """LPUSH pushes each argument at the head in turn, RPUSH at the tail;
    the reply is the new length; LPOP/RPOP take one element or, with a
    count, up to count in pop order; the key goes with its last element."""
    assert c.cmd("RPUSH", "l", "c", "d") == 2
    assert c.cmd("LPUSH", "l", "b", "a") == 4
    assert c.cmd("LRANGE", "l", 0, -1) == [b"a", b"b", b"c", b"d"]
    assert c.cmd("LPUSHX", "l", "0") == 5
    assert c.cmd("RPUSHX", "l", "e", "f") == 7
    assert c.cmd("LPUSHX", "nokey", "x") == 0
    assert c.cmd("RPUSHX", "nokey", "x", "y") == 0
    assert c.cmd("EXISTS", "nokey") == 0
    assert c.cmd("LLEN", "l") == 7
    assert c.cmd("LLEN", "nokey") == 0
    assert c.cmd("LPOP", "l") == b"0"
    assert c.cmd("RPOP", "l") == b"f"
    assert c.cmd("LPOP", "l", 2) == [b"a", b"b"]
    assert c.cmd("RPOP", "l", 2) == [b"e", b"d"]
    assert c.cmd("LPOP", "l", 0) == []
    assert c.cmd("RPOP", "l", 10) == [b"c"]
    assert c.cmd("EXISTS", "l") == 0
    assert c.cmd("TYPE", "l") == "none"
    assert c.cmd("LPOP", "l") is None
    assert c.cmd("RPOP", "l", 3) is None
    # a big count on a short list, from both ends
    c.cmd("RPUSH", "m", 1, 2, 3)
    assert c.cmd("LPOP", "m", LLONG_MAX) == [b"1", b"2", b"3"]
    c.cmd("RPUSH", "m", 1, 2, 3)
    assert c.cmd("RPOP", "m", 5) == [b"3", b"2", b"1"]
    assert c.cmd("EXISTS", "m") == 0


def test_pop_nulls_and_count_errors(c):
    """Exact RESP2 nulls: a missing key is `$-1` without a count and the
    null ARRAY `*-1` with one (even count 0); an existing list with count 0
    is `*0`. A bad count is "must be positive" (Redis uses that text for a
    non-integer too) and more arguments are an arity error."""
    assert c.cmd_bytes("LPOP", "nokey") == b"$-1\r\n"
    assert c.cmd_bytes("RPOP", "nokey") == b"$-1\r\n"
    assert c.cmd_bytes("LPOP", "nokey", 2) == b"*-1\r\n"
    assert c.cmd_bytes("RPOP", "nokey", 0) == b"*-1\r\n"
    c.cmd("RPUSH", "l", "a")
    assert c.cmd_bytes("LPOP", "l", 0) == b"*0\r\n"
    assert c.cmd_bytes("LPOP", "l", 1) == b"*1\r\n$1\r\na\r\n"
    c.cmd("RPUSH", "l", "a")
    for bad in (-1, "abc", "1.5", "", LLONG_MIN, "9223372036854775808"):
        assert c.cmd("LPOP", "l", bad) == Err(
            "ERR value is out of range, must be positive"), bad
        assert c.cmd("RPOP", "nokey", bad) == Err(
            "ERR value is out of range, must be positive"), bad
    assert c.cmd("LPOP", "l", 1, 2) == Err(
        "ERR wrong number of arguments for 'lpop' command")
    assert c.cmd("RPOP", "l", 1, 2) == Err(
        "ERR wrong number of arguments for 'rpop' command")
    assert c.cmd("LLEN", "l") == 1


def test_arity_errors(c):
    """Short or long requests get Redis's arity errors and change
    nothing."""
    for args, name in ((("LPUSH", "l"), "lpush"),
                       (("RPUSHX", "l"), "rpushx"),
                       (("LPOP",), "lpop"),
                       (("LLEN", "l", "x"), "llen"),
                       (("LRANGE", "l", 0), "lrange"),
                       (("LINDEX", "l"), "lindex"),
                       (("LSET", "l", 0), "lset"),
                       (("LINSERT", "l", "BEFORE", "a"), "linsert"),
                       (("LREM", "l", 0), "lrem"),
                       (("LTRIM", "l", 0), "ltrim"),
                       (("LPOS", "l"), "lpos"),
                       (("LMOVE", "a", "b", "LEFT"), "lmove"),
                       (("RPOPLPUSH", "a"), "rpoplpush"),
                       (("LMPOP", 1, "l"), "lmpop")):
        assert c.cmd(*args) == Err(
            "ERR wrong number of arguments for '%s' command" % name), args
    assert c.cmd("EXISTS", "l") == 0


def test_lrange_lindex_negative_and_out_of_range(c):
    """LRANGE clamps both ends (negative from the tail), start > stop and
    ranges past the end are empty; LINDEX counts negative from the tail and
    is nil outside; a missing key reads as empty; indexes must be
    integers (LRANGE checks them before the key, LINDEX after)."""
    items = [b"a", b"b", b"c", b"d", b"e"]
    c.cmd("RPUSH", "l", *items)
    cases = [(0, -1), (1, 3), (-2, -1), (-100, 100), (-100, -4), (2, 1),
             (5, 10), (-1, -2), (4, 4), (-5, -5), (0, 0), (3, -3),
             (LLONG_MIN, LLONG_MAX), (LLONG_MAX, LLONG_MIN)]
    for start, stop in cases:
        assert c.cmd("LRANGE", "l", start, stop) == \
            lrange_model(items, int(start), int(stop)), (start, stop)
    for i in range(-7, 7):
        want = items[i] if -5 <= i < 5 else None
        assert c.cmd("LINDEX", "l", i) == want, i
    assert c.cmd("LINDEX", "l", LLONG_MIN) is None
    assert c.cmd("LINDEX", "l", LLONG_MAX) is None
    assert c.cmd("LRANGE", "nokey", 0, -1) == []
    assert c.cmd("LINDEX", "nokey", 0) is None
    assert c.cmd("LRANGE", "l", "x", 1) == NOT_INT
    assert c.cmd("LRANGE", "l", 0, "1.0") == NOT_INT
    assert c.cmd("LRANGE", "nokey", "x", 1) == NOT_INT
    assert c.cmd("LINDEX", "l", "x") == NOT_INT
    assert c.cmd_bytes("LINDEX", "nokey", "x") == b"$-1\r\n"


def test_lset(c):
    """LSET replaces at an index (negative from the tail), refuses an index
    outside the list and a missing key, and checks the key before the
    index."""
    c.cmd("RPUSH", "l", "a", "b", "c")
    assert c.cmd("LSET", "l", 0, "A") == "OK"
    assert c.cmd("LSET", "l", -1, "C") == "OK"
    assert c.cmd("LSET", "l", -2, "B") == "OK"
    assert c.cmd("LRANGE", "l", 0, -1) == [b"A", b"B", b"C"]
    for i in (3, -4, LLONG_MAX, LLONG_MIN):
        assert c.cmd("LSET", "l", i, "x") == Err("ERR index out of range")
    assert c.cmd("LSET", "nokey", 0, "x") == Err("ERR no such key")
    assert c.cmd("LSET", "nokey", "x", "x") == Err("ERR no such key")
    assert c.cmd("LSET", "l", "x", "x") == NOT_INT
    assert c.cmd("EXISTS", "nokey") == 0


def test_big_list_node_boundaries(c):
    """A 10,000-element list of 100-byte elements spans many 8 KiB nodes:
    LINDEX at every index near where nodes end (and a sweep from both
    ends) reads the model's element; LSET there to longer and shorter
    values keeps the whole list equal to the model."""
    n = 10000
    model = [(b"%05d-" % i) + b"v" * 94 for i in range(n)]
    assert push_all(c, "big", model) == n
    assert c.cmd("LLEN", "big") == n
    # about 80 elements a node: test every index around multiples of 8
    # neighbours, and the ends
    idx = set(range(0, 300)) | set(range(n - 300, n))
    idx |= set(range(0, n, 37)) | {i + d for i in range(0, n, 79)
                                   for d in (-1, 0, 1) if 0 <= i + d < n}
    for i in sorted(idx):
        assert c.cmd("LINDEX", "big", i) == model[i], i
        assert c.cmd("LINDEX", "big", i - n) == model[i], i - n
    rnd = random.Random(15)
    for i in sorted(idx)[::3]:
        v = (b"%d" % i) if rnd.random() < 0.3 else b"s" * rnd.choice(
            (1, 50, 150, 300, 9000))
        neg = rnd.random() < 0.5
        assert c.cmd("LSET", "big", i - n if neg else i, v) == "OK"
        model[i] = v
    assert c.cmd("LLEN", "big") == n
    assert c.cmd("LRANGE", "big", 0, -1) == model
    for start, stop in ((78, 160), (-200, -100), (5000, 5079), (9990, -1)):
        assert c.cmd("LRANGE", "big", start, stop) == \
            lrange_model(model, start, stop)


def test_linsert(c):
    """LINSERT puts the element before or after the first match of the
    pivot and answers the new length; -1 when the pivot is not there, 0
    for a missing key (which stays missing); BEFORE/AFTER in any case,
    anything else a syntax error even on a missing key."""
    c.cmd("RPUSH", "l", "a", "b", "a")
    assert c.cmd("LINSERT", "l", "BEFORE", "a", "x") == 4
    assert c.cmd("LINSERT", "l", "after", "a", "y") == 5
    assert c.cmd("LRANGE", "l", 0, -1) == [b"x", b"a", b"y", b"b", b"a"]
    assert c.cmd("LINSERT", "l", "before", "zz", "q") == -1
    assert c.cmd("LINSERT", "nokey", "before", "a", "q") == 0
    assert c.cmd("EXISTS", "nokey") == 0
    assert c.cmd("LINSERT", "l", "middle", "a", "q") == SYNTAX
    assert c.cmd("LINSERT", "nokey", "middle", "a", "q") == SYNTAX
    assert c.cmd("LLEN", "l") == 5


def test_lrem(c):
    """LREM count > 0 removes that many from the head, < 0 from the tail,
    0 all; a missing key is 0; the key goes with its last element; the
    count must be an integer, checked before the key."""
    c.cmd("RPUSH", "l", "a", "b", "a", "c", "a", "b", "a")
    assert c.cmd("LREM", "l", 2, "a") == 2
    assert c.cmd("LRANGE", "l", 0, -1) == [b"b", b"c", b"a", b"b", b"a"]
    assert c.cmd("LREM", "l", -1, "b") == 1
    assert c.cmd("LRANGE", "l", 0, -1) == [b"b", b"c", b"a", b"a"]
    assert c.cmd("LREM", "l", 0, "a") == 2
    assert c.cmd("LREM", "l", 0, "zz") == 0
    assert c.cmd("LREM", "nokey", 1, "a") == 0
    assert c.cmd("LREM", "l", "x", "a") == NOT_INT
    assert c.cmd("LREM", "nokey", "x", "a") == NOT_INT
    assert c.cmd("LRANGE", "l", 0, -1) == [b"b", b"c"]
    # LLONG_MIN: every match, from the tail
    c.cmd("RPUSH", "l", "b")
    assert c.cmd("LREM", "l", LLONG_MIN, "b") == 2
    assert c.cmd("LREM", "l", 5, "c") == 1
    assert c.cmd("EXISTS", "l") == 0


def test_ltrim(c):
    """LTRIM keeps Redis's range (negative from the tail, clamped), an
    empty range deletes the key, a missing key is OK, indexes are checked
    before the key."""
    items = [b"%d" % i for i in range(10)]
    for start, stop in ((1, -2), (0, -1), (-3, 100), (-100, 2), (2, 2),
                        (LLONG_MIN, LLONG_MAX)):
        c.cmd("DEL", "l")
        c.cmd("RPUSH", "l", *items)
        assert c.cmd("LTRIM", "l", start, stop) == "OK"
        assert c.cmd("LRANGE", "l", 0, -1) == \
            ltrim_model(items, int(start), int(stop)), (start, stop)
    for start, stop in ((5, 3), (10, 20), (-1, -2), (0, -11)):
        c.cmd("DEL", "l")
        c.cmd("RPUSH", "l", *items)
        assert c.cmd("LTRIM", "l", start, stop) == "OK"
        assert c.cmd("EXISTS", "l") == 0, (start, stop)
    assert c.cmd("LTRIM", "nokey", 0, 1) == "OK"
    assert c.cmd("LTRIM", "nokey", "x", 1) == NOT_INT
    assert c.cmd("EXISTS", "nokey") == 0


def test_insert_rem_trim_big_against_model(c):
    """Seeded LINSERT, LREM, LTRIM, LSET, pushes and pops on a list of a few
    thousand elements of mixed sizes (integers, short strings, 100 bytes,
    some over a node) keep it equal to a Python model."""
    rnd = random.Random(1515)
    vals = [b"a", b"b", b"12", b"-7", b"x" * 100, b"y" * 100, b"z" * 3000]
    model = [rnd.choice(vals) for _ in range(4000)]
    push_all(c, "l", model)
    for step in range(400):
        op = rnd.random()
        if op < 0.3:
            pivot, v = rnd.choice(vals), rnd.choice(vals + [b"new"])
            where = rnd.choice(("BEFORE", "AFTER"))
            got = c.cmd("LINSERT", "l", where, pivot, v)
            if pivot in model:
                i = model.index(pivot)
                model.insert(i if where == "BEFORE" else i + 1, v)
                assert got == len(model)
            else:
                assert got == (-1 if model else 0)
        elif op < 0.5:
            v, count = rnd.choice(vals + [b"new"]), rnd.randint(-5, 5)
            got = c.cmd("LREM", "l", count, v)
            idx = [i for i, x in enumerate(model) if x == v]
            if count < 0:
                idx = idx[::-1][:-count]
            elif count > 0:
                idx = idx[:count]
            for i in sorted(idx, reverse=True):
                del model[i]
            assert got == len(idx)
        elif op < 0.6 and len(model) > 500:
            start = rnd.randint(-20, 20)
            stop = rnd.randint(-20, 0) if rnd.random() < 0.5 else \
                len(model) - rnd.randint(1, 20)
            assert c.cmd("LTRIM", "l", start, stop) == "OK"
            model = ltrim_model(model, start, stop)
        elif op < 0.75 and model:
            i = rnd.randrange(-len(model), len(model))
            v = rnd.choice(vals)
            assert c.cmd("LSET", "l", i, v) == "OK"
            model[i] = v
        elif op < 0.9:
            vs = [rnd.choice(vals) for _ in range(rnd.randint(1, 30))]
            if rnd.random() < 0.5:
                assert c.cmd("LPUSH", "l", *vs) == len(model) + len(vs)
                model = vs[::-1] + model
            else:
                assert c.cmd("RPUSH", "l", *vs) == len(model) + len(vs)
                model = model + vs
        elif model:
            k = rnd.randint(1, 40)
            if rnd.random() < 0.5:
                want, model = model[:k], model[k:]
                assert c.cmd("LPOP", "l", k) == want
            else:
                want = model[::-1][:k]
                model = model[:len(model) - len(want)]
                assert c.cmd("RPOP", "l", k) == want
        if step % 50 == 0:
            assert c.cmd("LRANGE", "l", 0, -1) == model, step
    assert c.cmd("LLEN", "l") == len(model)
    assert c.cmd("LRANGE", "l", 0, -1) == model


def test_lpos(c):
    """LPOS: first match, RANK from the head or (negative) the tail, COUNT
    (0: all) as an array, MAXLEN bounding the elements compared; no match
    is nil or an empty array; options repeat (the last wins)."""
    c.cmd("RPUSH", "l", "a", "b", "c", "a", "b", "c", "a")
    assert c.cmd("LPOS", "l", "a") == 0
    assert c.cmd("LPOS", "l", "c") == 2
    assert c.cmd("LPOS", "l", "a", "RANK", 2) == 3
    assert c.cmd("LPOS", "l", "a", "rank", -1) == 6
    assert c.cmd("LPOS", "l", "a", "RANK", -2) == 3
    assert c.cmd("LPOS", "l", "a", "RANK", 5) is None
    assert c.cmd("LPOS", "l", "a", "RANK", LLONG_MAX) is None
    assert c.cmd("LPOS", "l", "a", "COUNT", 0) == [0, 3, 6]
    assert c.cmd("LPOS", "l", "a", "COUNT", 2) == [0, 3]
    assert c.cmd("LPOS", "l", "a", "COUNT", 9) == [0, 3, 6]
    assert c.cmd("LPOS", "l", "a", "RANK", -1, "COUNT", 2) == [6, 3]
    assert c.cmd("LPOS", "l", "a", "RANK", 2, "COUNT", 0) == [3, 6]
    assert c.cmd("LPOS", "l", "a", "MAXLEN", 1, "COUNT", 0) == [0]
    assert c.cmd("LPOS", "l", "a", "MAXLEN", 4, "COUNT", 0) == [0, 3]
    assert c.cmd("LPOS", "l", "a", "MAXLEN", 3) == 0
    assert c.cmd("LPOS", "l", "b", "MAXLEN", 1) is None
    assert c.cmd("LPOS", "l", "a", "RANK", -1, "MAXLEN", 4,
                 "COUNT", 0) == [6, 3]
    assert c.cmd("LPOS", "l", "a", "RANK", 2, "COUNT", 0,
                 "MAXLEN", 3) == []
    assert c.cmd("LPOS", "l", "a", "RANK", -2, "MAXLEN", 3) is None
    assert c.cmd("LPOS", "l", "zz") is None
    assert c.cmd("LPOS", "l", "zz", "COUNT", 1) == []
    assert c.cmd("LPOS", "nokey", "a") is None
    assert c.cmd("LPOS", "nokey", "a", "COUNT", 1) == []
    assert c.cmd("LPOS", "l", "a", "COUNT", 2, "COUNT", 1) == [0]
    assert c.cmd("LPOS", "l", "a", "RANK", 1, "RANK", -1) == 6
    assert c.cmd("LPOS", "l", "a", "MAXLEN", 0) == 0


def test_lpos_llong_min_rank(c):
    """Redis 7.0.15 negates RANK without a check: LLONG_MIN searches from
    the tail, takes the first match, and ignores COUNT (but not MAXLEN)."""
    c.cmd("RPUSH", "l", "a", "b", "a", "c", "a")
    assert c.cmd("LPOS", "l", "a", "RANK", LLONG_MIN) == 4
    assert c.cmd("LPOS", "l", "a", "RANK", LLONG_MIN, "COUNT", 1) == \
        [4, 2, 0]
    assert c.cmd("LPOS", "l", "a", "RANK", LLONG_MIN, "COUNT", 2,
                 "MAXLEN", 4) == [4, 2]
    assert c.cmd("LPOS", "l", "a", "RANK", "-9223372036854775807",
                 "COUNT", 1) == []


def test_lpos_errors(c):
    """LPOS's errors, checked before the key is looked up: RANK 0, a
    non-integer RANK, a negative or non-integer COUNT or MAXLEN (their own
    texts), a missing option value or an unknown option."""
    c.cmd("RPUSH", "l", "a")
    c.cmd("SET", "s", "v")
    for key in ("l", "nokey", "s"):
        assert c.cmd("LPOS", key, "a", "RANK", 0) == RANK0
        assert c.cmd("LPOS", key, "a", "RANK", "x") == NOT_INT
        assert c.cmd("LPOS", key, "a", "RANK",
                     "9223372036854775808") == NOT_INT
        for v in (-1, "x"):
            assert c.cmd("LPOS", key, "a", "COUNT", v) == Err(
                "ERR COUNT can't be negative")
            assert c.cmd("LPOS", key, "a", "MAXLEN", v) == Err(
                "ERR MAXLEN can't be negative")
        assert c.cmd("LPOS", key, "a", "COUNT") == SYNTAX
        assert c.cmd("LPOS", key, "a", "BOGUS", 1) == SYNTAX
        assert c.cmd("LPOS", key, "a", "RANK", 1, "MAXLEN") == SYNTAX
    assert c.cmd("LPOS", "s", "a") == WRONGTYPE
    assert c.cmd("LPOS", "s", "a", "COUNT", 1) == WRONGTYPE


def test_lmove_four_directions(c):
    """LMOVE from either end to either end of another list (created when
    missing), the source deleted with its last element; a missing source
    is nil and creates nothing; LEFT/RIGHT in any case, anything else a
    syntax error."""
    c.cmd("RPUSH", "src", "a", "b", "c", "d")
    c.cmd("RPUSH", "dst", "x")
    assert c.cmd("LMOVE", "src", "dst", "LEFT", "LEFT") == b"a"
    assert c.cmd("LMOVE", "src", "dst", "LEFT", "RIGHT") == b"b"
    assert c.cmd("LMOVE", "src", "dst", "right", "left") == b"d"
    assert c.cmd("LMOVE", "src", "dst", "Right", "Right") == b"c"
    assert c.cmd("LRANGE", "dst", 0, -1) == [b"d", b"a", b"x", b"b", b"c"]
    assert c.cmd("EXISTS", "src") == 0
    assert c.cmd("LMOVE", "src", "dst", "LEFT", "LEFT") is None
    assert c.cmd("LMOVE", "dst", "new", "RIGHT", "LEFT") == b"c"
    assert c.cmd("LRANGE", "new", 0, -1) == [b"c"]
    assert c.cmd("LMOVE", "nokey", "other", "LEFT", "LEFT") is None
    assert c.cmd("EXISTS", "other") == 0
    assert c.cmd("LMOVE", "dst", "new", "MIDDLE", "LEFT") == SYNTAX
    assert c.cmd("LMOVE", "dst", "new", "LEFT", "UP") == SYNTAX
    assert c.cmd("LMOVE", "nokey", "new", "LEFT", "UP") == SYNTAX
    assert c.cmd("LLEN", "dst") == 4


def test_lmove_same_key(c):
    """LMOVE of a list onto itself rotates it (or leaves it as it is for the
    same end) and answers the element, also for a one-element list, which
    stays; RPOPLPUSH k k rotates right to left."""
    c.cmd("RPUSH", "l", "a", "b", "c")
    assert c.cmd("LMOVE", "l", "l", "LEFT", "RIGHT") == b"a"
    assert c.cmd("LRANGE", "l", 0, -1) == [b"b", b"c", b"a"]
    assert c.cmd("LMOVE", "l", "l", "RIGHT", "LEFT") == b"a"
    assert c.cmd("LRANGE", "l", 0, -1) == [b"a", b"b", b"c"]
    assert c.cmd("LMOVE", "l", "l", "LEFT", "LEFT") == b"a"
    assert c.cmd("LMOVE", "l", "l", "RIGHT", "RIGHT") == b"c"
    assert c.cmd("LRANGE", "l", 0, -1) == [b"a", b"b", b"c"]
    assert c.cmd("RPOPLPUSH", "l", "l") == b"c"
    assert c.cmd("LRANGE", "l", 0, -1) == [b"c", b"a", b"b"]
    c.cmd("RPUSH", "one", "x")
    for a, b in (("LEFT", "RIGHT"), ("RIGHT", "LEFT"), ("LEFT", "LEFT")):
        assert c.cmd("LMOVE", "one", "one", a, b) == b"x"
        assert c.cmd("LRANGE", "one", 0, -1) == [b"x"]
    # a big element and integers survive the rotation
    big = b"q" * 20000
    c.cmd("RPUSH", "r", "12", big, "-0")
    assert c.cmd("LMOVE", "r", "r", "LEFT", "RIGHT") == b"12"
    assert c.cmd("LMOVE", "r", "r", "LEFT", "RIGHT") == big
    assert c.cmd("LRANGE", "r", 0, -1) == [b"-0", b"12", big]


def test_rpoplpush(c):
    """RPOPLPUSH moves the tail of one list to the head of another; a
    missing source is nil."""
    c.cmd("RPUSH", "a", 1, 2, 3)
    assert c.cmd("RPOPLPUSH", "a", "b") == b"3"
    assert c.cmd("RPOPLPUSH", "a", "b") == b"2"
    assert c.cmd("LRANGE", "b", 0, -1) == [b"2", b"3"]
    assert c.cmd("RPOPLPUSH", "a", "b") == b"1"
    assert c.cmd("EXISTS", "a") == 0
    assert c.cmd("RPOPLPUSH", "a", "b") is None
    assert c.cmd("LLEN", "b") == 3


def test_move_wrongtype_order(c):
    """LMOVE/RPOPLPUSH: a missing source answers nil whatever the
    destination holds; a source of another type is WRONGTYPE; a
    destination of another type is WRONGTYPE before anything is popped."""
    c.cmd("SET", "s", "v")
    c.cmd("RPUSH", "l", "a", "b")
    assert c.cmd("LMOVE", "nokey", "s", "LEFT", "LEFT") is None
    assert c.cmd("RPOPLPUSH", "nokey", "s") is None
    assert c.cmd("LMOVE", "s", "l", "LEFT", "LEFT") == WRONGTYPE
    assert c.cmd("RPOPLPUSH", "s", "l") == WRONGTYPE
    assert c.cmd("LMOVE", "l", "s", "LEFT", "LEFT") == WRONGTYPE
    assert c.cmd("RPOPLPUSH", "l", "s") == WRONGTYPE
    assert c.cmd("LMOVE", "s", "s", "LEFT", "LEFT") == WRONGTYPE
    assert c.cmd("LRANGE", "l", 0, -1) == [b"a", b"b"]
    assert c.cmd("GET", "s") == b"v"
    c.cmd("HSET", "h", "f", "1")
    assert c.cmd("LMOVE", "l", "h", "RIGHT", "LEFT") == WRONGTYPE
    assert c.cmd("LLEN", "l") == 2


def test_lmpop(c):
    """LMPOP pops from the first key that holds a list, [key, [elements]],
    up to COUNT (default 1), deleting an emptied list; none: a null array;
    a key of another type before the first list is WRONGTYPE, after it is
    never looked at."""
    c.cmd("RPUSH", "l", "a", "b", "c")
    c.cmd("RPUSH", "m", "x", "y")
    c.cmd("SET", "s", "v")
    assert c.cmd("LMPOP", 2, "nokey", "m", "RIGHT") == [b"m", [b"y"]]
    assert c.cmd("LMPOP", 2, "nokey", "m", "right", "COUNT", 10) == \
        [b"m", [b"x"]]
    assert c.cmd("EXISTS", "m") == 0
    assert c.cmd("LMPOP", 2, "nokey", "s", "LEFT") == WRONGTYPE
    assert c.cmd("LMPOP", 2, "s", "l", "LEFT") == WRONGTYPE
    assert c.cmd("LMPOP", 2, "l", "s", "LEFT") == [b"l", [b"a"]]
    assert c.cmd("LMPOP", 1, "l", "LEFT", "count", 2) == [b"l", [b"b", b"c"]]
    assert c.cmd("EXISTS", "l") == 0
    assert c.cmd_bytes("LMPOP", 1, "l", "LEFT") == b"*-1\r\n"
    assert c.cmd_bytes("LMPOP", 3, "a", "b", "c", "RIGHT") == b"*-1\r\n"
    c.cmd("RPUSH", "l", 1, 2, 3)
    assert c.cmd("LMPOP", 1, "l", "RIGHT", "COUNT", 2) == [b"l", [b"3", b"2"]]


def test_lmpop_errors(c):
    """LMPOP's argument errors, all before any key is read: numkeys not a
    positive integer, more keys than arguments, a missing or bad LEFT/RIGHT,
    COUNT not positive, COUNT twice or without a value, unknown options."""
    c.cmd("RPUSH", "l", "a")
    numkeys = Err("ERR numkeys should be greater than 0")
    for n in (0, -1, "abc", "9223372036854775808"):
        assert c.cmd("LMPOP", n, "l", "LEFT") == numkeys, n
    for args in ((3, "l", "m", "LEFT"), (2, "l", "m"), (2, "l", "m", "UP"),
                 (1, "l", "LEFT", "COUNT"), (1, "l", "LEFT", "BOGUS"),
                 (1, "l", "LEFT", "COUNT", 1, "COUNT", 1),
                 (LLONG_MAX, "l", "LEFT")):
        assert c.cmd("LMPOP", *args) == SYNTAX, args
    for v in (0, -1, "abc"):
        assert c.cmd("LMPOP", 1, "l", "LEFT", "COUNT", v) == Err(
            "ERR count should be greater than 0"), v
    assert c.cmd("LLEN", "l") == 1


def test_big_and_binary_elements(c):
    """Elements with NUL, CR and LF bytes, an empty element, 1 MB elements
    at both ends and in the middle, and integer-looking elements ("007",
    "-0", "12", "+1", " 1", LLONG_MIN) round-trip exactly, and LPOS, LREM
    and LINSERT match them by their bytes ("12" is not "012")."""
    odd = [b"007", b"-0", b"12", b"+1", b" 1", b"1.5", LLONG_MIN.encode(),
           b"-9223372036854775809", b"0", b"-1", b"012"]
    binary = [b"\x00a\r\nb\xff", b"", b"\r\n", b"\x00"]
    assert c.cmd("RPUSH", "l", *(odd + binary)) == len(odd) + len(binary)
    assert c.cmd("LRANGE", "l", 0, -1) == odd + binary
    assert c.cmd("LPOS", "l", "12") == 2
    assert c.cmd("LPOS", "l", "012") == 10
    assert c.cmd("LPOS", "l", "0") == 8
    assert c.cmd("LPOS", "l", "") == 12
    assert c.cmd("LINSERT", "l", "AFTER", "-0", "x") == 16
    assert c.cmd("LINDEX", "l", 2) == b"x"
    assert c.cmd("LREM", "l", 0, "12") == 1
    assert c.cmd("LREM", "l", 0, "007") == 1
    assert c.cmd("LPOS", "l", "7") is None
    assert c.cmd("LSET", "l", 0, "00") == "OK"
    assert c.cmd("LINDEX", "l", 0) == b"00"
    assert c.cmd("RPOP", "l") == b"\x00"
    assert c.cmd("LPOP", "l") == b"00"
    big = bytes(range(256)) * 4096  # 1 MiB
    assert c.cmd("RPUSH", "b", "s", big, "t") == 3
    assert c.cmd("LPUSH", "b", big) == 4
    assert c.cmd("LINDEX", "b", 2) == big
    assert c.cmd("LRANGE", "b", 0, -1) == [big, b"s", big, b"t"]
    assert c.cmd("LINSERT", "b", "BEFORE", "t", big) == 5
    assert c.cmd("LPOS", "b", big, "COUNT", 0) == [0, 2, 3]
    assert c.cmd("LSET", "b", 1, big) == "OK"
    assert c.cmd("LREM", "b", -2, big) == 2
    assert c.cmd("LRANGE", "b", 0, -1) == [big, big, b"t"]
    assert c.cmd("LMOVE", "b", "b2", "LEFT", "RIGHT") == big
    assert c.cmd("RPOP", "b", 5) == [b"t", big]
    assert c.cmd("LRANGE", "b2", 0, -1) == [big]


def test_wrongtype_both_ways(c):
    """List commands on a string and a hash answer WRONGTYPE and change
    nothing; string and hash commands on a list do too; MGET reads a list
    as nil; SET replaces a list; DEL, EXISTS, TYPE work on it."""
    c.cmd("SET", "s", "v")
    c.cmd("HSET", "h", "f", "1")
    c.cmd("RPUSH", "l", "a", "b")
    for key in ("s", "h"):
        for args in (("LPUSH", key, "x"), ("RPUSH", key, "x"),
                     ("LPUSHX", key, "x"), ("RPUSHX", key, "x"),
                     ("LPOP", key), ("RPOP", key), ("LPOP", key, 2),
                     ("RPOP", key, 0), ("LLEN", key),
                     ("LRANGE", key, 0, -1), ("LINDEX", key, 0),
                     ("LINDEX", key, "x"), ("LSET", key, 0, "x"),
                     ("LSET", key, "x", "x"),
                     ("LINSERT", key, "BEFORE", "a", "x"),
                     ("LREM", key, 0, "a"), ("LTRIM", key, 0, 1),
                     ("LPOS", key, "a"), ("LMOVE", key, "l", "LEFT", "LEFT"),
                     ("LMOVE", "l", key, "LEFT", "LEFT"),
                     ("RPOPLPUSH", key, "l"), ("RPOPLPUSH", "l", key),
                     ("LMPOP", 1, key, "LEFT")):
            assert c.cmd(*args) == WRONGTYPE, args
    for args in (("GET", "l"), ("GETSET", "l", "x"), ("GETDEL", "l"),
                 ("GETEX", "l"), ("STRLEN", "l"), ("APPEND", "l", "x"),
                 ("GETRANGE", "l", 0, 1), ("SETRANGE", "l", 0, "x"),
                 ("INCR", "l"), ("DECRBY", "l", 2), ("INCRBYFLOAT", "l", 1),
                 ("SET", "l", "x", "GET"), ("HSET", "l", "f", "v"),
                 ("HGET", "l", "f"), ("HGETALL", "l"), ("HLEN", "l")):
        assert c.cmd(*args) == WRONGTYPE, args
    assert c.cmd("GET", "s") == b"v"
    assert c.cmd("HGET", "h", "f") == b"1"
    assert c.cmd("LRANGE", "l", 0, -1) == [b"a", b"b"]
    assert c.cmd("MGET", "s", "l") == [b"v", None]
    assert c.cmd("EXISTS", "l", "s", "h") == 3
    assert c.cmd("TYPE", "l") == "list"
    assert c.cmd("SET", "l", "plain") == "OK"
    assert c.cmd("GET", "l") == b"plain"
    c.cmd("RPUSH", "l2", "a")
    assert c.cmd("DEL", "l2") == 1
    assert c.cmd("EXISTS", "l2") == 0


def test_expire_rename_type_object(c):
    """A list takes a TTL (EXPIRE, TTL, PERSIST), RENAME moves it whole
    (over a string too), TYPE is "list", OBJECT ENCODING "quicklist" (7.0's
    only list encoding, a small list too), SCAN TYPE finds it, and an
    expired list is gone for every list command."""
    c.cmd("RPUSH", "l", "a", "b")
    assert c.cmd("TYPE", "l") == "list"
    assert c.cmd("OBJECT", "ENCODING", "l") == b"quicklist"
    assert c.cmd("EXPIRE", "l", 100) == 1
    assert 0 < c.cmd("TTL", "l") <= 100
    assert c.cmd("PERSIST", "l") == 1
    assert c.cmd("TTL", "l") == -1
    assert c.cmd("RENAME", "l", "l2") == "OK"
    assert c.cmd("EXISTS", "l") == 0
    assert c.cmd("LRANGE", "l2", 0, -1) == [b"a", b"b"]
    c.cmd("SET", "s", "v")
    assert c.cmd("RENAME", "l2", "s") == "OK"
    assert c.cmd("TYPE", "s") == "list"
    assert c.cmd("LPOP", "s") == b"a"
    c.cmd("SET", "str", "x")
    assert c.cmd("SCAN", 0, "TYPE", "list", "COUNT", 100)[1] == [b"s"]
    big = [b"%d" % i for i in range(5000)]
    push_all(c, "big", big)
    assert c.cmd("OBJECT", "ENCODING", "big") == b"quicklist"
    assert c.cmd("PEXPIRE", "big", 50) == 1
    time.sleep(0.2)
    assert c.cmd("LLEN", "big") == 0
    assert c.cmd("LPOP", "big") is None
    assert c.cmd("LPUSHX", "big", "x") == 0
    assert c.cmd("EXISTS", "big") == 0
    assert c.cmd("RPUSH", "big", "new") == 1
    assert c.cmd("TTL", "big") == -1


@pytest.mark.parametrize("kind", KINDS)
def test_list_oom_under_noeviction(make_server, kind):
    """Under noeviction a push that does not fit is refused with OOM and
    the list keeps what it had; reads, pops and deletes still work, and
    LMOVE into a new list is refused as well."""
    s = make_server(kind, max_memory=4 * 1024 * 1024, eviction="noeviction")
    with s.raw() as c:
        big = "x" * 1000
        refused = None
        for i in range(20000):
            rep = c.cmd("RPUSH", "l", "%d-%s" % (i, big))
            if rep != i + 1:
                refused = (i, rep)
                break
        assert refused is not None, "4 MB never filled"
        i, rep = refused
        assert rep == Err(OOM)
        assert c.cmd("LLEN", "l") == i
        assert c.cmd("LINDEX", "l", 0) == ("0-" + big).encode()
        assert c.cmd("LPUSH", "l", "y" + big) == Err(OOM)
        assert c.cmd("LMOVE", "l", "other", "LEFT", "LEFT") == Err(OOM)
        assert c.cmd("EXISTS", "other") == 0
        assert c.cmd("LLEN", "l") == i
        assert c.cmd("RPOP", "l") == ("%d-%s" % (i - 1, big)).encode()
        assert c.cmd("DEL", "l") == 1
        assert c.cmd("RPUSH", "l", "v") == 1


def test_list_replies_in_resp3(c):
    """Under HELLO 3, byte for byte: LPOP/RPOP of a missing key is `_` with
    or without a count; LMPOP is [key, [elements]] as arrays and `_` when
    nothing pops; LPOS's nil is `_`; LINDEX's too; counts and arrays are
    as in RESP2."""
    c.cmd("RPUSH", "l", "a", "b", "c")
    c.cmd("HELLO", 3)
    assert c.cmd_bytes("LPOP", "nokey") == b"_\r\n"
    assert c.cmd_bytes("LPOP", "nokey", 2) == b"_\r\n"
    assert c.cmd_bytes("RPOP", "nokey", 0) == b"_\r\n"
    assert c.cmd("LPOP", "nokey") == NULL3
    assert c.cmd_bytes("LPOP", "l", 0) == b"*0\r\n"
    assert c.cmd_bytes("LMPOP", 1, "l", "LEFT") == \
        b"*2\r\n$1\r\nl\r\n*1\r\n$1\r\na\r\n"
    assert c.cmd_bytes("LMPOP", 2, "nokey", "l", "RIGHT", "COUNT", 5) == \
        b"*2\r\n$1\r\nl\r\n*2\r\n$1\r\nc\r\n$1\r\nb\r\n"
    assert c.cmd_bytes("LMPOP", 1, "l", "LEFT") == b"_\r\n"
    c.cmd("RPUSH", "l", "a", "b", "a")
    assert c.cmd_bytes("LPOS", "l", "zz") == b"_\r\n"
    assert c.cmd_bytes("LPOS", "nokey", "a") == b"_\r\n"
    assert c.cmd_bytes("LPOS", "l", "a", "COUNT", 0) == b"*2\r\n:0\r\n:2\r\n"
    assert c.cmd_bytes("LINDEX", "l", 9) == b"_\r\n"
    assert c.cmd_bytes("LMOVE", "nokey", "l", "LEFT", "LEFT") == b"_\r\n"
    assert c.cmd_bytes("RPOP", "l", 2) == b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    assert c.cmd_bytes("LRANGE", "nokey", 0, -1) == b"*0\r\n"
    assert c.cmd_bytes("LLEN", "l") == b":1\r\n"


LIST_COMMANDS = {
    # name: (arity, flags, first key, last key, step), as 7.0.15's
    # COMMAND INFO (LMPOP's keys follow its numkeys: 0, 0, 0)
    "lpush": (-3, ["write", "denyoom", "fast"], 1, 1, 1),
    "rpush": (-3, ["write", "denyoom", "fast"], 1, 1, 1),
    "lpushx": (-3, ["write", "denyoom", "fast"], 1, 1, 1),
    "rpushx": (-3, ["write", "denyoom", "fast"], 1, 1, 1),
    "lpop": (-2, ["write", "fast"], 1, 1, 1),
    "rpop": (-2, ["write", "fast"], 1, 1, 1),
    "llen": (2, ["readonly", "fast"], 1, 1, 1),
    "lrange": (4, ["readonly"], 1, 1, 1),
    "lindex": (3, ["readonly"], 1, 1, 1),
    "lset": (4, ["write", "denyoom"], 1, 1, 1),
    "linsert": (5, ["write", "denyoom"], 1, 1, 1),
    "lrem": (4, ["write"], 1, 1, 1),
    "ltrim": (4, ["write"], 1, 1, 1),
    "lpos": (-3, ["readonly"], 1, 1, 1),
    "lmove": (5, ["write", "denyoom"], 1, 2, 1),
    "rpoplpush": (3, ["write", "denyoom"], 1, 2, 1),
    "lmpop": (-4, ["write"], 0, 0, 0),
}


def test_command_info(c):
    """COMMAND INFO gives each list command Redis's arity, flags and key
    positions (what cluster clients route by); Redis's `movablekeys` flag
    of LMPOP is not compared (narf's COMMAND does not print it yet)."""
    names = sorted(LIST_COMMANDS)
    rep = c.cmd("COMMAND", "INFO", *names)
    for name, info in zip(names, rep):
        arity, flags, first, last, step = LIST_COMMANDS[name]
        assert info[0] == name.encode()
        got_flags = [f for f in info[2] if f != "movablekeys"]
        assert (info[1], got_flags, info[3], info[4], info[5]) == \
            (arity, flags, first, last, step), name

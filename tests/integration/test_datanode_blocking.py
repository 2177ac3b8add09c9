"""Blocking list pops against Redis 7.0 (issue 16, slices 19-20): BLPOP,
BRPOP, BLMOVE, BRPOPLPUSH and BLMPOP. Every test runs against a real
redis-server and `datanode --standalone` with the same assertions, as
test_datanode_list.py does: the `c` fixture is one raw connection, and
blocked clients are further raw connections of srv (srv.raw()).

What is pinned: the order in which waiters are served (FIFO per key, after
each command rather than each pipeline), BLMOVE chains within one push,
WRONGTYPE at call time against a key that turns into another type later
(the waiter stays blocked), disconnects, the timeout's parsing and exact
error texts, its reply (`*-1`, `_` under RESP3) and INFO's blocked_clients.

Redis checks timeouts about every 100 ms when idle, so elapsed times are
only bounded loosely.

Run: NARF_BUILD=/abs/build /usr/bin/python3 -m pytest -q \\
         tests/integration/test_datanode_blocking.py
"""

import time

import pytest

from dn_harness import NULL3, Err, encode

from dn_fixtures import (KINDS, Servers, c, datanode_binary,  # noqa: F401
                         kind, make_server, srv)

WRONGTYPE = Err("WRONGTYPE Operation against a key holding the wrong kind "
                "of value")
NOT_FLOAT = Err("ERR timeout is not a float or out of range")
NEGATIVE = Err("ERR timeout is negative")


def info_field(c, section, name):
    rep = c.cmd("INFO", section)
    text = rep.decode() if isinstance(rep, bytes) else str(rep)
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split(":", 1)[1])
    raise AssertionError("INFO %s has no %s:\n%s" % (section, name, text))


def wait_blocked(c, n, timeout=5.0):
    """Until INFO clients says n clients are blocked."""
    deadline = time.monotonic() + timeout
    while True:
        got = info_field(c, "clients", "blocked_clients")
        if got == n:
            return
        if time.monotonic() > deadline:
            raise AssertionError("blocked_clients is %d, want %d" % (got, n))
        time.sleep(0.01)


class Waiters:
    """Raw connections of srv that send blocking requests, closed at the
    end of the test (a client left blocked would hold a SIGTERM'd narf in
    its drain)."""

    def __init__(self, srv, c):
        self.srv, self.c, self.conns = srv, c, []

    def block(self, *args, n=None):
        """A new connection sends args and is blocked by it; n is the
        number of clients blocked then (default: one more than before)."""
        want = n if n is not None else \
            info_field(self.c, "clients", "blocked_clients") + 1
        w = self.srv.raw()
        self.conns.append(w)
        w.send(encode(*args))
        wait_blocked(self.c, want)
        return w

    def close(self):
        for w in self.conns:
            w.close()


@pytest.fixture
def ws(srv, c):
    w = Waiters(srv, c)
    yield w
    w.close()


def quiet(w, wait=0.2):
    """Nothing came on w within wait seconds."""
    try:
        rep = w.read(timeout=wait)
    except (TimeoutError, OSError):
        return True
    raise AssertionError("unexpected reply %r" % (rep,))


def timed(w, *args, timeout=5.0):
    t0 = time.monotonic()
    rep = w.cmd_bytes(*args, timeout=timeout)
    return rep, time.monotonic() - t0


# ---------------------------------------------------------------------------


def test_timeout_with_nothing(c):
    """With nothing to pop each blocking command waits out its timeout and
    answers a null array (`*-1`, BLMOVE and BRPOPLPUSH too: 7.0 answers
    every blocking pop's timeout so), and pops nothing."""
    for args in (("BLPOP", "k", "0.2"), ("BRPOP", "k", "j", "0.2"),
                 ("BLMOVE", "k", "d", "LEFT", "RIGHT", "0.2"),
                 ("BRPOPLPUSH", "k", "d", "0.2"),
                 ("BLMPOP", "0.2", 2, "k", "j", "LEFT", "COUNT", 3)):
        rep, took = timed(c, *args)
        assert rep == b"*-1\r\n", args
        assert 0.15 <= took < 2.0, (args, took)
    assert c.cmd("EXISTS", "k", "j", "d") == 0
    assert info_field(c, "clients", "blocked_clients") == 0


def test_wake_on_push_from_another_connection(c, ws):
    """A client blocked on an empty key is served by another connection's
    push with [key, element]; the key is gone once its one element is."""
    w = ws.block("BLPOP", "k", 0)
    assert c.cmd("RPUSH", "k", "v") == 1
    assert w.read() == [b"k", b"v"]
    assert c.cmd("EXISTS", "k") == 0
    w2 = ws.block("BRPOP", "k", 5)
    assert c.cmd("LPUSH", "k", "a", "b") == 2
    assert w2.read() == [b"k", b"a"]
    assert c.cmd("LRANGE", "k", 0, -1) == [b"b"]
    wait_blocked(c, 0)


def test_fifo_between_two_waiters(c, ws):
    """Waiters on one key are served in the order they blocked: the first
    gets the first push, the second the next."""
    w1 = ws.block("BLPOP", "k", 0)
    w2 = ws.block("BLPOP", "k", 0)
    assert c.cmd("RPUSH", "k", "x") == 1
    assert w1.read() == [b"k", b"x"]
    assert quiet(w2)
    assert c.cmd("RPUSH", "k", "y") == 1
    assert w2.read() == [b"k", b"y"]
    assert c.cmd("EXISTS", "k") == 0


def test_one_push_serves_waiters_in_order(c, ws):
    """One RPUSH of three elements serves three waiters of the key in the
    order they blocked, whatever other keys they also wait on and from
    whichever end they pop; a fourth stays blocked."""
    w1 = ws.block("BLPOP", "k", 0)
    w2 = ws.block("BRPOP", "other", "k", 0)
    w3 = ws.block("BLMPOP", 0, 2, "k", "x", "LEFT", "COUNT", 5)
    w4 = ws.block("BLPOP", "k", "other", 0)
    assert c.cmd("RPUSH", "k", 1, 2, 3) == 3
    assert w1.read() == [b"k", b"1"]
    assert w2.read() == [b"k", b"3"]
    assert w3.read() == [b"k", [b"2"]]
    assert quiet(w4)
    assert c.cmd("EXISTS", "k") == 0
    assert c.cmd("RPUSH", "other", "o") == 1
    assert w4.read() == [b"other", b"o"]


def test_blpop_several_keys(c):
    """BLPOP on several keys pops from the first that holds a list, in
    argument order (not push order), replying [key, element]."""
    c.cmd("RPUSH", "c", "c1")
    c.cmd("RPUSH", "b", "b1", "b2")
    assert c.cmd("BLPOP", "a", "b", "c", 1) == [b"b", b"b1"]
    assert c.cmd("BRPOP", "a", "b", "c", 1) == [b"b", b"b2"]
    assert c.cmd("BLPOP", "a", "b", "c", 1) == [b"c", b"c1"]
    assert c.cmd("EXISTS", "a", "b", "c") == 0


def test_several_keys_served_by_the_pushed_one(c, ws):
    """A client blocked on several keys is served from the key pushed to,
    and only once: a push to its other key afterwards stays put."""
    w = ws.block("BLPOP", "a", "b", "c", 0)
    assert c.cmd("RPUSH", "c", "v") == 1
    assert w.read() == [b"c", b"v"]
    assert c.cmd("RPUSH", "a", "w") == 1
    assert c.cmd("LRANGE", "a", 0, -1) == [b"w"]
    # many keys (past a short request's argument arrays)
    keys = ["m%d" % i for i in range(20)]
    w = ws.block("BLMPOP", 0, 20, *keys, "RIGHT", "COUNT", 2)
    assert c.cmd("RPUSH", "m17", 1, 2, 3) == 3
    assert w.read() == [b"m17", [b"3", b"2"]]


def test_pipelined_push_then_pop_loses_to_earlier_waiter(c, ws):
    """Waiters are served after each command, not after each pipeline: a
    pipelined `RPUSH k a; LPOP k` from one client loses `a` to another
    client's earlier BLPOP."""
    w = ws.block("BLPOP", "k", 0)
    c.send(encode("RPUSH", "k", "a") + encode("LPOP", "k") +
           encode("EXISTS", "k"))
    assert c.read() == 1
    assert c.read() is None
    assert c.read() == 0
    assert w.read() == [b"k", b"a"]


def test_blocked_client_pipeline_goes_on(c, ws):
    """Requests pipelined behind a blocking one wait for it and then run in
    order: the pop's reply, then theirs."""
    w = ws.block("BLPOP", "k", 0)
    w.send(encode("PING") + encode("LLEN", "k"))
    assert quiet(w)
    assert c.cmd("RPUSH", "k", "a", "b") == 2
    assert w.read() == [b"k", b"a"]
    assert w.read() == "PONG"
    assert w.read() == 1


def test_blmove_chain(c, ws):
    """A BLMOVE that is served pushes to its destination, which serves the
    client blocked there in the same pass: one push runs the chain
    a -> b -> c -> BLPOP, leaving the second element in a."""
    w1 = ws.block("BLMOVE", "a", "b", "LEFT", "RIGHT", 0)
    w2 = ws.block("BLMOVE", "b", "c", "LEFT", "LEFT", 0)
    w3 = ws.block("BLPOP", "c", 0)
    assert c.cmd("RPUSH", "a", "x", "y") == 2
    assert w1.read() == b"x"
    assert w2.read() == b"x"
    assert w3.read() == [b"c", b"x"]
    assert c.cmd("LRANGE", "a", 0, -1) == [b"y"]
    assert c.cmd("EXISTS", "b", "c") == 0
    wait_blocked(c, 0)


def test_blmove_now_and_onto_itself(c, ws):
    """BLMOVE with a source that holds a list moves at once, as LMOVE; a
    waiter whose source is its destination rotates the pushed list."""
    c.cmd("RPUSH", "s", 1, 2)
    assert c.cmd("BLMOVE", "s", "d", "RIGHT", "LEFT", 0) == b"2"
    assert c.cmd("LRANGE", "d", 0, -1) == [b"2"]
    w = ws.block("BLMOVE", "same", "same", "LEFT", "RIGHT", 0)
    assert c.cmd("RPUSH", "same", "1", "2") == 2
    assert w.read() == b"1"
    assert c.cmd("LRANGE", "same", 0, -1) == [b"2", b"1"]


def test_brpoplpush(c, ws):
    """BRPOPLPUSH pops the tail and pushes at the head, at once or when
    served; a served one's push reaches a client blocked on the
    destination."""
    c.cmd("RPUSH", "s", "a", "b")
    assert c.cmd("BRPOPLPUSH", "s", "d", 0) == b"b"
    assert c.cmd("LRANGE", "d", 0, -1) == [b"b"]
    w1 = ws.block("BRPOPLPUSH", "src", "dst", 0)
    w2 = ws.block("BRPOP", "dst", 0)
    assert c.cmd("RPUSH", "src", "1", "2") == 2
    assert w1.read() == b"2"
    assert w2.read() == [b"dst", b"2"]
    assert c.cmd("LRANGE", "src", 0, -1) == [b"1"]


def test_blmpop_count(c, ws):
    """BLMPOP pops up to COUNT from the first key holding a list, at once
    or when served; [key, [elements]] in pop order; errors in Redis's
    order (numkeys, direction, COUNT, then the timeout)."""
    c.cmd("RPUSH", "b", 1, 2, 3)
    assert c.cmd("BLMPOP", 0, 2, "a", "b", "RIGHT", "COUNT", 2) == \
        [b"b", [b"3", b"2"]]
    assert c.cmd("BLMPOP", 0, 2, "a", "b", "LEFT") == [b"b", [b"1"]]
    w = ws.block("BLMPOP", 0, 2, "a", "b", "LEFT", "COUNT", 10)
    assert c.cmd("RPUSH", "b", "x", "y", "z") == 3
    assert w.read() == [b"b", [b"x", b"y", b"z"]]
    assert c.cmd("EXISTS", "b") == 0
    assert c.cmd("BLMPOP", "x", 0, "a", "LEFT") == Err(
        "ERR numkeys should be greater than 0")
    assert c.cmd("BLMPOP", "x", 3, "a", "LEFT") == Err("ERR syntax error")
    assert c.cmd("BLMPOP", "x", 1, "a", "UP") == Err("ERR syntax error")
    assert c.cmd("BLMPOP", "x", 1, "a", "LEFT", "COUNT", 0) == Err(
        "ERR count should be greater than 0")
    assert c.cmd("BLMPOP", "x", 1, "a", "LEFT") == NOT_FLOAT
    assert c.cmd("BLMPOP", 0, 1, "a") == Err(
        "ERR wrong number of arguments for 'blmpop' command")


def test_wrongtype_at_call_time(c):
    """A key of another type answers WRONGTYPE at once (one before the
    first list, for the several-key forms; BLMOVE's destination only when
    the source has something to move); a bad timeout is reported before
    WRONGTYPE."""
    c.cmd("SET", "s", "v")
    c.cmd("RPUSH", "l", "1")
    assert c.cmd("BLPOP", "nokey", "s", "l", 0) == WRONGTYPE
    assert c.cmd("BRPOP", "s", 0) == WRONGTYPE
    assert c.cmd("BLMPOP", 0, 2, "nokey", "s", "LEFT") == WRONGTYPE
    assert c.cmd("BLMOVE", "s", "l", "LEFT", "RIGHT", 0) == WRONGTYPE
    assert c.cmd("BLMOVE", "l", "s", "LEFT", "RIGHT", 0) == WRONGTYPE
    assert c.cmd("BRPOPLPUSH", "s", "l", 0) == WRONGTYPE
    assert c.cmd("BLPOP", "s", "x") == NOT_FLOAT
    assert c.cmd("BLPOP", "l", "-1") == NEGATIVE
    assert c.cmd("LRANGE", "l", 0, -1) == [b"1"]
    # a missing source blocks whatever the destination holds
    assert c.cmd_bytes("BLMOVE", "nokey", "s", "LEFT", "RIGHT",
                       "0.05") == b"*-1\r\n"


def test_key_appearing_as_another_type(c, ws):
    """A key that appears as a set keeps a list waiter blocked (7.0 serves
    only list waiters from a list); once it is deleted and pushed to as a
    list the waiter is served. A BLMOVE waiter whose destination became
    a string is answered WRONGTYPE when served, and nothing moves."""
    w = ws.block("BLPOP", "k", 0)
    assert c.cmd("SADD", "k", "m") == 1
    assert quiet(w)
    assert info_field(c, "clients", "blocked_clients") == 1
    assert c.cmd("SMEMBERS", "k") == [b"m"]
    assert c.cmd("DEL", "k") == 1
    assert c.cmd("RPUSH", "k", "v") == 1
    assert w.read() == [b"k", b"v"]
    w = ws.block("BLMOVE", "src", "dst", "LEFT", "RIGHT", 0)
    c.cmd("SET", "dst", "str")
    assert c.cmd("RPUSH", "src", "e") == 1
    assert w.read() == WRONGTYPE
    assert c.cmd("LRANGE", "src", 0, -1) == [b"e"]
    assert c.cmd("GET", "dst") == b"str"


def test_rename_onto_a_waited_key(c, ws):
    """A list renamed onto a key somebody waits for serves them."""
    w = ws.block("BLPOP", "k", 0)
    c.cmd("RPUSH", "tmp", "q")
    assert c.cmd("RENAME", "tmp", "k") == "OK"
    assert w.read() == [b"k", b"q"]
    assert c.cmd("EXISTS", "k", "tmp") == 0


def test_disconnect_while_blocked(c, ws):
    """A client that disconnects while blocked is dropped without popping:
    a later push stays in the list, and the next waiter in line gets the
    next push."""
    w1 = ws.block("BLPOP", "k", 0)
    w2 = ws.block("BLPOP", "k", 0)
    w1.close()
    wait_blocked(c, 1)
    assert c.cmd("RPUSH", "k", "a") == 1
    assert w2.read() == [b"k", b"a"]
    w3 = ws.block("BLPOP", "k", 0)
    w3.close()
    wait_blocked(c, 0)
    assert c.cmd("RPUSH", "k", "b") == 1
    assert c.cmd("LRANGE", "k", 0, -1) == [b"b"]


def test_timeout_zero_waits_for_a_later_push(c, ws):
    """Timeout 0 blocks for as long as it takes: still blocked after a
    while, then served by a push."""
    w = ws.block("BRPOP", "k", 0)
    time.sleep(0.5)
    assert info_field(c, "clients", "blocked_clients") == 1
    assert c.cmd("RPUSH", "k", "late") == 1
    assert w.read() == [b"k", b"late"]


def test_fractional_timeouts(c, srv):
    """Timeouts are seconds as a float: 0.3 waits about that long; 0.0001
    rounds up to a millisecond (7.0.15 rounds up), not to 'forever';
    forms strtold takes (1e-1, +0.1) are seconds too."""
    rep, took = timed(c, "BLPOP", "k", "0.3")
    assert rep == b"*-1\r\n" and 0.25 <= took < 2.0, took
    for t in ("0.0001", "1e-1", "+0.1", "1e-400"):
        rep, took = timed(c, "BLPOP", "k", t)
        assert rep == b"*-1\r\n" and took < 1.5, (t, took)


def test_bad_timeout_errors(c, ws):
    """Redis 7.0.15's exact texts: not a float (letters, spaces, empty,
    nan), negative (below 0, and "inf" or anything beyond a long long of
    milliseconds, which x86's conversion makes negative); a small negative
    fraction rounds up to 0 and blocks forever."""
    for t in ("abc", " 1", "1 ", "", "nan", "1,5", "0.1s"):
        for args in (("BLPOP", "k", t), ("BRPOP", "k", t),
                     ("BLMOVE", "k", "d", "LEFT", "LEFT", t),
                     ("BRPOPLPUSH", "k", "d", t),
                     ("BLMPOP", t, 1, "k", "LEFT")):
            assert c.cmd(*args) == NOT_FLOAT, (t, args)
    for t in ("-1", "-0.5", "-0.0011", "inf", "-inf", "1e16", "1e400",
              "9223372036854775807", "99999999999999999"):
        assert c.cmd("BLPOP", "k", t) == NEGATIVE, t
        assert c.cmd("BLMPOP", t, 1, "k", "LEFT") == NEGATIVE, t
    w = ws.block("BLPOP", "k", "-0.0001")
    time.sleep(0.2)
    assert info_field(c, "clients", "blocked_clients") == 1
    w.close()
    wait_blocked(c, 0)
    assert c.cmd("BLPOP", "k") == Err(
        "ERR wrong number of arguments for 'blpop' command")


def test_resp3_timeout_reply(srv):
    """Under HELLO 3 a timeout is RESP3's null `_`, for every blocking
    pop; a served pop is the same array as in RESP2."""
    c3 = srv.raw()
    try:
        c3.cmd("HELLO", 3)
        for args in (("BLPOP", "k", "0.05"), ("BRPOP", "k", "0.05"),
                     ("BLMOVE", "k", "d", "LEFT", "RIGHT", "0.05"),
                     ("BRPOPLPUSH", "k", "d", "0.05"),
                     ("BLMPOP", "0.05", 1, "k", "LEFT")):
            assert c3.cmd_bytes(*args) == b"_\r\n", args
        assert c3.cmd("BLPOP", "k", "0.05") is NULL3
        c3.cmd("RPUSH", "k", "v")
        assert c3.cmd_bytes("BLPOP", "k", 0) == b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n"
    finally:
        c3.close()


def test_info_blocked_clients(c, ws):
    """INFO clients counts blocked clients: up as they block, down as they
    are served, time out or disconnect."""
    assert info_field(c, "clients", "blocked_clients") == 0
    w1 = ws.block("BLPOP", "a", 0)
    ws.block("BLPOP", "b", "1")
    w3 = ws.block("BLMOVE", "c", "d", "LEFT", "LEFT", 0)
    assert info_field(c, "clients", "blocked_clients") == 3
    c.cmd("RPUSH", "a", 1)
    assert w1.read() == [b"a", b"1"]
    wait_blocked(c, 1)  # the 1 s one timed out too
    w3.close()
    wait_blocked(c, 0)


def test_a_closed_waiter_then_a_timeout(c, ws):
    """Waiters with different timeouts time out in deadline order, not
    arrival order, and one that disconnects first is never answered."""
    w1 = ws.block("BLPOP", "k", "0.6")
    w2 = ws.block("BLPOP", "k", "0.2")
    w3 = ws.block("BLPOP", "k", "0.4")
    w3.close()
    t0 = time.monotonic()
    assert w2.read() is None
    t2 = time.monotonic() - t0
    assert w1.read() is None
    t1 = time.monotonic() - t0
    assert t2 < t1, (t2, t1)
    wait_blocked(c, 0)


def test_client_unblock(c, srv, ws):
    """CLIENT UNBLOCK id answers a blocked client as its timeout would
    (`*-1`, `_` under RESP3), or with ERROR `-UNBLOCKED ...`, and replies 1;
    0 for a client not blocked or unknown; the unblocked client's pipeline
    goes on and a later push is not given to it. Argument errors in Redis's
    order (the reason before the id)."""
    w = srv.raw()
    ws.conns.append(w)
    wid = w.cmd("CLIENT", "ID")
    w.send(encode("BLPOP", "k", 0) + encode("PING"))
    wait_blocked(c, 1)
    assert c.cmd("CLIENT", "UNBLOCK", wid) == 1
    assert w.read_bytes() == b"*-1\r\n"
    assert w.read() == "PONG"
    wait_blocked(c, 0)
    assert c.cmd("CLIENT", "UNBLOCK", wid) == 0
    w.send(encode("BLMOVE", "k", "d", "LEFT", "LEFT", 0))
    wait_blocked(c, 1)
    assert c.cmd("CLIENT", "UNBLOCK", wid, "error") == 1
    assert w.read() == Err("UNBLOCKED client unblocked via CLIENT UNBLOCK")
    c.cmd("RPUSH", "k", "v")
    assert c.cmd("LRANGE", "k", 0, -1) == [b"v"]
    c.cmd("DEL", "k")
    w.cmd("HELLO", 3)
    w.send(encode("BLMPOP", 0, 1, "k", "LEFT"))
    wait_blocked(c, 1)
    assert c.cmd("CLIENT", "UNBLOCK", wid, "TIMEOUT") == 1
    assert w.read_bytes() == b"_\r\n"
    assert c.cmd("CLIENT", "UNBLOCK", 999999) == 0
    assert c.cmd("CLIENT", "UNBLOCK", -1) == 0
    assert c.cmd("CLIENT", "UNBLOCK", c.cmd("CLIENT", "ID")) == 0
    assert c.cmd("CLIENT", "UNBLOCK", "abc") == Err(
        "ERR value is not an integer or out of range")
    for args in (("abc", "foo"), (1, "foo")):
        assert c.cmd("CLIENT", "UNBLOCK", *args) == Err(
            "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
    assert c.cmd("CLIENT", "UNBLOCK") == Err(
        "ERR wrong number of arguments for 'client|unblock' command")
    assert c.cmd("CLIENT", "UNBLOCK", 1, "error", "x") == Err(
        "ERR unknown subcommand or wrong number of arguments for "
        "'UNBLOCK'. Try CLIENT HELP.")


BLOCKING_COMMANDS = {
    # name: (arity, flags but Redis's noscript and movablekeys, first key,
    # last key, step), as 7.0.15's COMMAND INFO
    "blpop": (-3, ["write", "blocking"], 1, -2, 1),
    "brpop": (-3, ["write", "blocking"], 1, -2, 1),
    "blmove": (6, ["write", "denyoom", "blocking"], 1, 2, 1),
    "brpoplpush": (4, ["write", "denyoom", "blocking"], 1, 2, 1),
    "blmpop": (-5, ["write", "blocking"], 0, 0, 0),
}


def test_command_info(c):
    """COMMAND INFO shows Redis's arity, key positions and the `blocking`
    flag for each (noscript and movablekeys, which narf does not print,
    left out)."""
    names = sorted(BLOCKING_COMMANDS)
    for name, info in zip(names, c.cmd("COMMAND", "INFO", *names)):
        arity, flags, first, last, step = BLOCKING_COMMANDS[name]
        got = [f for f in info[2] if f not in ("noscript", "movablekeys")]
        assert (info[0], info[1], got, info[3], info[4], info[5]) == \
            (name.encode(), arity, flags, first, last, step), name


# --- sorted sets: BZPOPMIN, BZPOPMAX, BZMPOP ---------------------------------


def test_bzpop_now_wait_and_timeout(c, ws):
    """BZPOPMIN/BZPOPMAX answer [key, member, score] at once from the first
    key holding a zset, block when none does and are served by a ZADD from
    another connection; a timeout is a null array; a string among the keys
    is WRONGTYPE."""
    c.cmd("ZADD", "z", 1, "a", 2, "b", 3, "c")
    assert c.cmd("BZPOPMIN", "nokey", "z", 0) == [b"z", b"a", b"1"]
    assert c.cmd("BZPOPMAX", "z", 0) == [b"z", b"c", b"3"]
    assert c.cmd("BZPOPMIN", "empty", "0.05") is None
    w = ws.block("BZPOPMAX", "q1", "q2", 0)
    assert c.cmd("ZADD", "q2", 5, "x", 7, "y") == 2
    assert w.read() == [b"q2", b"y", b"7"]
    assert c.cmd("ZRANGE", "q2", 0, -1) == [b"x"]
    c.cmd("SET", "s", "v")
    assert c.cmd("BZPOPMIN", "s", 0) == WRONGTYPE
    assert c.cmd("BZPOPMIN", "z", "x") == NOT_FLOAT
    wait_blocked(c, 0)


def test_bzmpop(c, ws):
    """BZMPOP pops up to COUNT from the first zset at once, blocks when
    none holds one, and is served [key, [[member, score]..]] by a ZADD."""
    c.cmd("ZADD", "z", 1, "a", 2, "b", 3, "c")
    assert c.cmd("BZMPOP", 0, 2, "nokey", "z", "MAX", "COUNT", 2) == [
        b"z", [[b"c", b"3"], [b"b", b"2"]]]
    w = ws.block("BZMPOP", 0, 1, "q", "MIN", "COUNT", 5)
    assert c.cmd("ZADD", "q", 9, "m", 8, "n") == 2
    assert w.read() == [b"q", [[b"n", b"8"], [b"m", b"9"]]]
    assert c.cmd("EXISTS", "q") == 0
    assert c.cmd("BZMPOP", "0.05", 1, "none", "MIN") is None
    wait_blocked(c, 0)

"""The load generator's reply scanner (dn_harness.scan_replies): the
benchmarks count requests by it, so a reply it miscounts is a wrong
figure. And RawConn's RESP3 reader, which the RESP3 tests compare wire
types with. No servers: bytes in, counts or values out."""

import pytest

from dn_harness import (NULL3, BigNum, Bool, Double, Err, Map, Push,
                        RawConn, Set, Verbatim, scan_replies)
from narf_harness import HarnessError

REPLIES = b"+OK\r\n$3\r\nabc\r\n$-1\r\n:42\r\n-MOVED 7 127.0.0.1:7201\r\n$0\r\n\r\n"


def test_whole_replies_counted_and_errors_indexed():
    got, errors, used = scan_replies(REPLIES, 10)
    assert (got, used) == (6, len(REPLIES))
    assert errors == [(4, "MOVED 7 127.0.0.1:7201")]
    assert isinstance(errors[0][1], Err)


def test_stops_at_need():
    got, errors, used = scan_replies(REPLIES, 2)
    assert (got, errors) == (2, [])
    assert REPLIES[used:].startswith(b"$-1\r\n")


def test_truncated_reply_is_left_for_the_next_read():
    # Whatever the cut, the replies before it are counted and the cut one
    # is not; scanning the rest after the cut finds the others.
    for cut in range(len(REPLIES)):
        got, errors, used = scan_replies(REPLIES[:cut], 10)
        assert used <= cut
        rest, errors2, used2 = scan_replies(REPLIES[used:], 10)
        assert got + rest == 6, cut
        assert used + used2 == len(REPLIES), cut
        assert [k for k, _ in errors] + [got + k for k, _ in errors2] == [4]


def test_malformed_replies_are_refused():
    for bad in (b"*1\r\n:1\r\n", b"hello\r\n", b"\x00\r\n", b"$x\r\n",
                b"$\r\n", b"$12ab\r\nabc\r\n"):
        with pytest.raises(HarnessError) as e:
            scan_replies(b"+OK\r\n-ERR x\r\n" + bad, 5)
        # what came before it is described
        assert (e.value.got, e.value.errors, e.value.pos) == \
            (2, [(1, "ERR x")], 13)


def test_read_errors_keeps_what_came_before_a_bad_reply():
    # RawConn without a socket: the replies are already buffered.
    c = RawConn.__new__(RawConn)
    c.buf, c.timeout, c.port = b"+OK\r\n-MOVED 1 a:1\r\n*1\r\n:1\r\n", 1.0, 0
    with pytest.raises(HarnessError):
        c.read_errors(4)
    assert (c.partial, c.partial_errors) == (2, [(1, "MOVED 1 a:1")])
    assert c.buf == b"*1\r\n:1\r\n"


def test_oversized_bulk_waits_without_reading_past_the_buffer():
    # A length larger than what arrived is a reply still coming.
    got, errors, used = scan_replies(b"$1000000000\r\nabc", 1)
    assert (got, errors, used) == (0, [], 0)


def buffered(data):
    """A RawConn without a socket whose replies are already buffered."""
    c = RawConn.__new__(RawConn)
    c.buf, c.timeout, c.port = data, 1.0, 0
    return c


def test_resp3_replies_are_typed():
    # redis-server 7.0.15's bytes under HELLO 3 (and the spec's other
    # types): each reads as its own type, and none equals its RESP2 twin.
    c = buffered(b"_\r\n%1\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"
                 b"~2\r\n+readonly\r\n+fast\r\n,1.1000000000000001\r\n"
                 b"#t\r\n#f\r\n(12345678901234567890\r\n"
                 b"=8\r\ntxt:a\r\nb\r\n!5\r\nERR x\r\n"
                 b">2\r\n$7\r\nmessage\r\n:1\r\n"
                 b"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n"
                 b"*2\r\n$1\r\nv\r\n_\r\n$-1\r\n")
    assert c.read() == NULL3
    m = c.read()
    assert m == Map({b"maxmemory": b"0"}) and isinstance(m, dict)
    assert m != {b"maxmemory": b"0"} and m != [b"maxmemory", b"0"]
    s = c.read()
    assert s == Set(["readonly", "fast"]) and s != ["readonly", "fast"]
    d = c.read()
    assert d == Double("1.1000000000000001") and float(d) == 1.1
    assert d != Double("1.1") and d != b"1.1000000000000001"
    t, f = c.read(), c.read()
    assert (t, f) == (Bool(True), Bool(False)) and t != 1 and f != 0
    n = c.read()
    assert n == BigNum(12345678901234567890) and n != 12345678901234567890
    v = c.read()
    assert v == Verbatim(b"a\r\nb", "txt") and v.format == "txt"
    assert v != b"a\r\nb"
    assert c.read() == Err("ERR x")
    assert c.read() == Push([b"message", 1])
    assert c.read() == b"v" and c.attributes == Map({"ttl": 3})
    assert c.read() == [b"v", NULL3]
    assert c.read() is None and NULL3 is not None and NULL3 != None  # noqa
    assert c.buf == b""


def test_read_bytes_gives_one_replys_exact_bytes():
    reply = b"*3\r\n%1\r\n$1\r\na\r\n~1\r\n_\r\n=6\r\ntxt:hi\r\n$-1\r\n"
    c = buffered(reply + b"+OK\r\n")
    assert c.read_bytes() == reply
    assert c.read() == "OK"

"""Integration tests of the standalone data node (issue 3: the RESP engine).

Most tests run twice, against a real redis-server (Debian's 7.0, started on
its own port with `--save '' --appendonly no --databases 1`) and against
`datanode --standalone`, with the same assertions: passing on redis-server
proves an expectation is Redis's behaviour, passing on narf proves narf
matches it. Differences accepted on purpose are marked "Deliberate
difference". Tests of flags Redis has no equivalent for run on narf only.

Run: NARF_BUILD=/abs/build /usr/bin/python3 -m pytest -q \
         tests/integration/test_datanode.py

Without NARF_BUILD the narf half is skipped (the redis half still runs);
with NARF_BUILD set but no build/datanode/datanode, the narf half fails.
Every server is stopped with SIGTERM and must exit 0; a narf log holding a
sanitizer report fails the test; on failure the log tails are printed.
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
# Connection and server commands


def test_ping_echo_select(r, c):
    """PING, PING msg, ECHO and SELECT 0 answer as Redis; SELECT 1 is out of
    range with one database."""
    assert r.ping() is True
    assert c.cmd("PING") == "PONG"
    assert c.cmd("PING", "hi") == b"hi"
    assert c.cmd("PING", "a", "b") == Err(
        "ERR wrong number of arguments for 'ping' command")
    assert r.echo("hello world") == b"hello world"
    assert c.cmd("ECHO", b"\x00\r\n\xff") == b"\x00\r\n\xff"
    assert c.cmd("SELECT", 0) == "OK"
    # redis-server runs with --databases 1, like narf's single database.
    assert c.cmd("SELECT", 1) == Err("ERR DB index is out of range")
    assert c.cmd("SELECT", "x") == Err(
        "ERR value is not an integer or out of range")
    assert c.cmd("PING") == "PONG"


def test_unknown_command_and_arity(c):
    """An unknown command or a wrong argument count gets Redis's exact error
    and the connection stays usable; names are case-insensitive."""
    assert c.cmd("FOOBAR", "a", "b") == Err(
        "ERR unknown command 'FOOBAR', with args beginning with: 'a' 'b' ")
    assert c.cmd("NOPE") == Err(
        "ERR unknown command 'NOPE', with args beginning with: ")
    assert c.cmd("GET") == Err(
        "ERR wrong number of arguments for 'get' command")
    assert c.cmd("get", "a", "b") == Err(
        "ERR wrong number of arguments for 'get' command")
    assert c.cmd("SET", "k") == Err(
        "ERR wrong number of arguments for 'set' command")
    assert c.cmd("EXPIRE", "k") == Err(
        "ERR wrong number of arguments for 'expire' command")
    assert c.cmd("sEt", "k", "v") == "OK"
    assert c.cmd("GeT", "k") == b"v"
    assert c.cmd("PING") == "PONG"


def test_quit(srv):
    """QUIT replies +OK and closes; requests pipelined after it are not
    answered."""
    with srv.raw() as c:
        c.send(b"PING\r\n" + encode("QUIT") + encode("SET", "after", "x"))
        assert c.read() == "PONG"
        assert c.read() == "OK"
        assert c.at_eof(3.0)
        assert c.buf == b""
    with srv.raw() as c2:
        assert c2.cmd("EXISTS", "after") == 0


def test_client_commands(srv, r):
    """CLIENT ID/SETNAME/GETNAME behave as Redis's, ids differ per
    connection and bad names are refused."""
    r2 = srv.client()
    id1, id2 = r.client_id(), r2.client_id()
    assert isinstance(id1, int) and id1 > 0 and id1 != id2
    with srv.raw() as c:
        assert c.cmd("CLIENT", "GETNAME") is None
        assert c.cmd("CLIENT", "SETNAME", "worker-1") == "OK"
        assert c.cmd("CLIENT", "GETNAME") == b"worker-1"
        assert c.cmd("CLIENT", "SETNAME", "a b") == Err(
            "ERR Client names cannot contain spaces, newlines or special "
            "characters.")
        assert c.cmd("CLIENT", "GETNAME") == b"worker-1"
        assert isinstance(c.cmd("CLIENT", "ID"), int)
    r2.close()


def test_subcommand_errors(c):
    """Unknown or short subcommands of CLIENT, CONFIG and COMMAND get
    Redis's wording."""
    want = [
        (("CLIENT", "NOSUCH"),
         "ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP."),
        (("CONFIG", "NOSUCH"),
         "ERR unknown subcommand 'NOSUCH'. Try CONFIG HELP."),
        (("COMMAND", "NOSUCH"),
         "ERR unknown subcommand 'NOSUCH'. Try COMMAND HELP."),
        (("CONFIG", "GET"),
         "ERR wrong number of arguments for 'config|get' command"),
        (("CLIENT", "SETNAME"),
         "ERR wrong number of arguments for 'client|setname' command"),
    ]
    bad = []
    for args, msg in want:
        got = c.cmd(*args)
        if got != Err(msg):
            bad.append("%s: want -%s, got %r" % (" ".join(args), msg, got))
    assert not bad, "\n".join(bad)


def test_hello(c):
    """HELLO and HELLO 2 answer Redis's map as a flat RESP2 array; other
    versions and bad options are refused."""
    for args in ((), (2,)):
        rep = c.cmd("HELLO", *args)
        assert isinstance(rep, list) and len(rep) == 14, rep
        m = dict(zip(rep[0::2], rep[1::2]))
        assert set(m) == {b"server", b"version", b"proto", b"id", b"mode",
                          b"role", b"modules"}
        assert m[b"server"] == b"redis"
        assert m[b"version"].startswith(b"7.")
        assert m[b"proto"] == 2
        assert isinstance(m[b"id"], int)
        assert m[b"mode"] == b"standalone"
        assert m[b"role"] == b"master"
        assert m[b"modules"] == []
    assert c.cmd("HELLO", 4) == Err("NOPROTO unsupported protocol version")
    assert c.cmd("HELLO", "x") == Err(
        "ERR Protocol version is not an integer or out of range")
    assert c.cmd("HELLO", 2, "SETNAME", "hi") != None  # noqa: E711
    assert c.cmd("CLIENT", "GETNAME") == b"hi"
    assert c.cmd("PING") == "PONG"


def test_info_sections(srv, r):
    """INFO has the server, clients, memory, stats and keyspace sections
    with the fields clients read, and the keyspace line counts keys and
    TTLs."""
    assert r.info("keyspace") == {}
    r.set("a", "1")
    r.set("b", "2", ex=100)
    r.set("c", "3")
    r.get("a")
    r.get("missing")
    info = r.info()
    for field in ("redis_version", "process_id", "tcp_port",
                  "uptime_in_seconds", "connected_clients", "used_memory",
                  "used_memory_human", "used_memory_rss",
                  "used_memory_dataset", "maxmemory", "maxmemory_policy",
                  "total_connections_received", "total_commands_processed",
                  "expired_keys", "evicted_keys", "keyspace_hits",
                  "keyspace_misses", "rejected_connections"):
        assert field in info, field
    assert str(info["redis_version"]).startswith("7.")
    assert info["process_id"] == srv.pid
    assert info["tcp_port"] == srv.port
    assert info["connected_clients"] >= 1
    assert info["used_memory"] > 0
    assert info["maxmemory"] == 0
    assert info["keyspace_hits"] >= 1 and info["keyspace_misses"] >= 1
    assert info["db0"]["keys"] == 3 and info["db0"]["expires"] == 1
    assert "redis_version" in r.info("server")
    assert "connected_clients" in r.info("clients")
    assert "used_memory" in r.info("memory")
    assert "keyspace_hits" in r.info("stats")
    assert "used_memory" not in r.info("server")
    assert r.info("keyspace")["db0"]["keys"] == 3
    with srv.raw() as c:
        text = c.cmd("INFO")
        for sec in (b"# Server", b"# Clients", b"# Memory", b"# Stats",
                    b"# Keyspace"):
            assert sec in text, sec
        text = c.cmd("INFO", "keyspace")
        assert text.startswith(b"# Keyspace\r\n")
        assert b"db0:keys=3,expires=1," in text


def test_config_get(r, c):
    """CONFIG GET answers the settings redis-benchmark and clients ask for,
    with glob patterns, as name/value pairs."""
    assert r.config_get("maxmemory") == {"maxmemory": "0"}
    assert r.config_get("maxmemory-policy") == {
        "maxmemory-policy": "allkeys-lru"}
    assert r.config_get("save") == {"save": ""}
    assert r.config_get("appendonly") == {"appendonly": "no"}
    assert r.config_get("databases") == {"databases": "1"}
    got = r.config_get("maxmemory*")
    assert {"maxmemory", "maxmemory-policy"} <= set(got)
    assert r.config_get("no-such-setting") == {}
    rep = c.cmd("CONFIG", "GET", "save", "appendonly")
    assert sorted(zip(rep[0::2], rep[1::2])) == [(b"appendonly", b"no"),
                                                (b"save", b"")]


# Redis 7.0 arities and key positions of every command the issue lists.
COMMAND_SHAPES = {
    "get": (2, 1, 1, 1), "set": (-3, 1, 1, 1), "setnx": (3, 1, 1, 1),
    "setex": (4, 1, 1, 1), "psetex": (4, 1, 1, 1), "getset": (3, 1, 1, 1),
    "getdel": (2, 1, 1, 1), "getex": (-2, 1, 1, 1),
    "getrange": (4, 1, 1, 1), "setrange": (4, 1, 1, 1),
    "append": (3, 1, 1, 1), "strlen": (2, 1, 1, 1), "mget": (-2, 1, -1, 1),
    "mset": (-3, 1, -1, 2), "msetnx": (-3, 1, -1, 2), "incr": (2, 1, 1, 1),
    "decr": (2, 1, 1, 1), "incrby": (3, 1, 1, 1), "decrby": (3, 1, 1, 1),
    "incrbyfloat": (3, 1, 1, 1), "del": (-2, 1, -1, 1),
    "unlink": (-2, 1, -1, 1), "exists": (-2, 1, -1, 1),
    "touch": (-2, 1, -1, 1), "type": (2, 1, 1, 1), "rename": (3, 1, 2, 1),
    "renamenx": (3, 1, 2, 1), "randomkey": (1, 0, 0, 0),
    "expire": (-3, 1, 1, 1), "pexpire": (-3, 1, 1, 1),
    "expireat": (-3, 1, 1, 1), "pexpireat": (-3, 1, 1, 1),
    "expiretime": (2, 1, 1, 1), "pexpiretime": (2, 1, 1, 1),
    "ttl": (2, 1, 1, 1), "pttl": (2, 1, 1, 1), "persist": (2, 1, 1, 1),
    "scan": (-2, 0, 0, 0), "keys": (2, 0, 0, 0), "dbsize": (1, 0, 0, 0),
    "flushall": (-1, 0, 0, 0), "flushdb": (-1, 0, 0, 0),
    "ping": (-1, 0, 0, 0), "echo": (2, 0, 0, 0), "select": (2, 0, 0, 0),
    "info": (-1, 0, 0, 0), "auth": (-2, 0, 0, 0), "hello": (-1, 0, 0, 0),
    "quit": (-1, 0, 0, 0), "client": (-2, 0, 0, 0),
    "command": (-1, 0, 0, 0), "config": (-2, 0, 0, 0),
    "cluster": (-2, 0, 0, 0),
}


def test_command(r, c):
    """COMMAND, COMMAND COUNT and COMMAND INFO describe every listed command
    with Redis's arity and key positions (what clients route by)."""
    table = r.command()
    count = c.cmd("COMMAND", "COUNT")
    assert isinstance(count, int) and count == len(table)
    for name, (arity, first, last, step) in COMMAND_SHAPES.items():
        assert name in table, name
        t = table[name]
        assert (t["arity"], t["first_key_pos"], t["last_key_pos"],
                t["step_count"]) == (arity, first, last, step), name
    rep = c.cmd("COMMAND", "INFO", "get", "nosuchcommand", "SET")
    assert len(rep) == 3
    assert rep[0][0] == b"get" and rep[0][1] == 2
    assert rep[1] is None
    assert rep[2][0] == b"set" and rep[2][1] == -3
    assert isinstance(c.cmd("COMMAND", "DOCS", "get"), list)


# ---------------------------------------------------------------------------
# The string family


def test_set_options(r, c):
    """SET with NX/XX/EX/PX/EXAT/PXAT/KEEPTTL/GET sets, keeps or replaces the
    value and TTL exactly as Redis 7.0 does."""
    assert r.set("k", "v") is True
    assert r.get("k") == b"v"
    assert r.set("k", "v2", nx=True) is None
    assert r.get("k") == b"v"
    assert r.set("k", "v2", xx=True) is True
    assert r.get("k") == b"v2"
    assert r.set("absent", "x", xx=True) is None
    assert r.exists("absent") == 0
    assert r.set("k", "v", ex=100) is True
    assert near(r.ttl("k"), 100, 1)
    assert r.set("k", "v", px=100000) is True
    assert near(r.pttl("k"), 100000, 2000)
    now = int(time.time())
    assert r.set("k", "v", exat=now + 100) is True
    assert near(r.ttl("k"), 100, 2)
    assert r.set("k", "v", pxat=(now + 200) * 1000) is True
    assert near(r.ttl("k"), 200, 2)
    # KEEPTTL keeps it; a plain SET drops it.
    assert r.set("k", "v1", ex=100) is True
    assert r.set("k", "v2", keepttl=True) is True
    assert near(r.ttl("k"), 100, 1) and r.get("k") == b"v2"
    assert r.set("k", "v3") is True
    assert r.ttl("k") == -1
    # GET returns the old value (nil for a new key).
    assert c.cmd("SET", "k", "v4", "GET") == b"v3"
    assert c.cmd("SET", "new", "n", "GET") is None
    assert r.get("new") == b"n"
    # Redis 7.0 accepts NX with GET: old value back, nothing written.
    assert c.cmd("SET", "k", "v5", "NX", "GET") == b"v4"
    assert r.get("k") == b"v4"
    assert c.cmd("SET", "fresh", "f", "NX", "GET") is None
    assert r.get("fresh") == b"f"
    assert c.cmd("SET", "k", "v6", "XX", "GET") == b"v4"
    assert c.cmd("set", "k", "v", "ex", "10", "nx") is None  # lowercase
    # An EXAT in the past stores nothing visible.
    assert c.cmd("SET", "past", "p", "EXAT", now - 10) == "OK"
    assert r.get("past") is None and r.exists("past") == 0
    # Errors.
    bad_expire = Err("ERR invalid expire time in 'set' command")
    assert c.cmd("SET", "k", "v", "EX", 0) == bad_expire
    assert c.cmd("SET", "k", "v", "EX", -1) == bad_expire
    assert c.cmd("SET", "k", "v", "PX", 0) == bad_expire
    assert c.cmd("SET", "k", "v", "EX", 9223372036854775) == bad_expire
    assert c.cmd("SET", "k", "v", "EX", "ten") == Err(
        "ERR value is not an integer or out of range")
    syntax = Err("ERR syntax error")
    assert c.cmd("SET", "k", "v", "NX", "XX") == syntax
    assert c.cmd("SET", "k", "v", "EX", 10, "PX", 100) == syntax
    assert c.cmd("SET", "k", "v", "KEEPTTL", "EX", 10) == syntax
    assert c.cmd("SET", "k", "v", "EX") == syntax
    assert c.cmd("SET", "k", "v", "BOGUS") == syntax
    assert r.get("k") == b"v6"


def test_setnx_setex_psetex_getset_getdel(r, c):
    """SETNX, SETEX, PSETEX, GETSET and GETDEL reply and store as Redis."""
    assert r.setnx("k", "a") is True
    assert r.setnx("k", "b") is False
    assert r.get("k") == b"a"
    assert r.setex("e", 100, "x") is True
    assert near(r.ttl("e"), 100, 1) and r.get("e") == b"x"
    assert c.cmd("SETEX", "e", 0, "x") == Err(
        "ERR invalid expire time in 'setex' command")
    assert c.cmd("SETEX", "e", -5, "x") == Err(
        "ERR invalid expire time in 'setex' command")
    assert c.cmd("SETEX", "e", "x", "x") == Err(
        "ERR value is not an integer or out of range")
    assert r.psetex("p", 100000, "y") is True
    assert near(r.pttl("p"), 100000, 2000)
    assert c.cmd("PSETEX", "p", 0, "y") == Err(
        "ERR invalid expire time in 'psetex' command")
    # GETSET returns the old value and clears the TTL.
    assert r.getset("e", "new") == b"x"
    assert r.ttl("e") == -1 and r.get("e") == b"new"
    assert r.getset("nokey", "v") is None
    assert r.get("nokey") == b"v"
    assert r.getdel("k") == b"a"
    assert r.exists("k") == 0
    assert r.getdel("k") is None


def test_getex(r, c):
    """GETEX reads and sets, changes or removes the TTL; bad options are
    refused."""
    r.set("k", "v")
    assert r.getex("k") == b"v" and r.ttl("k") == -1
    assert r.getex("k", ex=100) == b"v" and near(r.ttl("k"), 100, 1)
    assert r.getex("k", px=50000) == b"v"
    assert near(r.pttl("k"), 50000, 2000)
    now = int(time.time())
    assert r.getex("k", exat=now + 300) == b"v"
    assert near(r.ttl("k"), 300, 2)
    assert r.getex("k", pxat=(now + 400) * 1000) == b"v"
    assert near(r.ttl("k"), 400, 2)
    assert r.getex("k", persist=True) == b"v" and r.ttl("k") == -1
    assert r.getex("missing", ex=10) is None
    assert r.exists("missing") == 0
    assert c.cmd("GETEX", "k", "EX", 0) == Err(
        "ERR invalid expire time in 'getex' command")
    assert c.cmd("GETEX", "k", "PERSIST", "EX", 10) == Err("ERR syntax error")
    assert c.cmd("GETEX", "k", "BOGUS") == Err("ERR syntax error")
    assert c.cmd("GETEX", "k", "EX", "x") == Err(
        "ERR value is not an integer or out of range")
    # A past EXAT deletes the key after returning it.
    assert c.cmd("GETEX", "k", "EXAT", now - 10) == b"v"
    assert r.exists("k") == 0


def test_getrange_setrange_append_strlen(r, c):
    """GETRANGE, SETRANGE, APPEND and STRLEN with negative, out-of-range and
    zero-padding offsets, on plain and integer-looking values."""
    r.set("s", "Hello World")
    assert r.getrange("s", 0, 4) == b"Hello"
    assert r.getrange("s", -5, -1) == b"World"
    assert r.getrange("s", 0, -1) == b"Hello World"
    assert r.getrange("s", 5, 2) == b""
    assert r.getrange("s", 100, 200) == b""
    assert r.getrange("s", -100, 2) == b"Hel"
    assert r.getrange("s", 3, 1000) == b"lo World"
    assert r.getrange("missing", 0, -1) == b""
    assert c.cmd("GETRANGE", "s", "a", 2) == Err(
        "ERR value is not an integer or out of range")
    assert r.setrange("s", 6, "Redis") == 11
    assert r.get("s") == b"Hello Redis"
    assert r.setrange("pad", 5, "x") == 6
    assert r.get("pad") == b"\x00\x00\x00\x00\x00x"
    assert r.setrange("s", 20, "!") == 21
    assert r.get("s") == b"Hello Redis" + b"\x00" * 9 + b"!"
    assert r.setrange("nothing", 0, "") == 0
    assert r.exists("nothing") == 0
    assert r.setrange("s", 0, "") == 21
    assert c.cmd("SETRANGE", "s", -1, "x") == Err(
        "ERR offset is out of range")
    assert c.cmd("SETRANGE", "s", 536870911, "ab") == Err(
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    assert r.append("a", "Hello") == 5
    assert r.append("a", " World") == 11
    assert r.get("a") == b"Hello World"
    assert r.strlen("a") == 11
    assert r.strlen("missing") == 0
    r.set("n", 12345)
    assert r.strlen("n") == 5
    assert r.append("n", "6") == 6
    assert r.get("n") == b"123456"
    assert r.getrange("n", 1, 2) == b"23"
    assert r.incr("n") == 123457
    assert r.strlen("n") == 6
    r.set("empty", "")
    assert r.get("empty") == b"" and r.strlen("empty") == 0
    blob = bytes(range(256)) * 40
    r.set("bin", blob)
    assert r.get("bin") == blob and r.strlen("bin") == len(blob)


def test_mget_mset_msetnx(r, c):
    """MGET, MSET and MSETNX: all-or-nothing MSETNX, nil for missing keys,
    and the arity error for an odd argument count."""
    assert r.mset({"a": "1", "b": "2"}) is True
    assert r.mget("a", "b", "missing", "a") == [b"1", b"2", None, b"1"]
    assert r.msetnx({"a": "3", "c": "4"}) is False
    assert r.get("a") == b"1" and r.exists("c") == 0
    assert r.msetnx({"c": "3", "d": "4"}) is True
    assert r.mget("c", "d") == [b"3", b"4"]
    assert c.cmd("MSET", "a", "1", "b") == Err(
        "ERR wrong number of arguments for 'mset' command")
    assert c.cmd("MSETNX", "a", "1", "b") == Err(
        "ERR wrong number of arguments for 'msetnx' command")
    assert c.cmd("MSET", "x", "1", "x", "2") == "OK"
    assert r.get("x") == b"2"
    r.set("t", "v", ex=100)
    r.mset({"t": "w"})
    assert r.ttl("t") == -1


def test_incr_family(r, c):
    """INCR/DECR/INCRBY/DECRBY/INCRBYFLOAT: arithmetic, overflow and
    not-a-number errors with Redis's messages, and the value left intact."""
    assert r.incr("n") == 1
    assert r.incrby("n", 10) == 11
    assert r.decr("n") == 10
    assert r.decrby("n", 5) == 5
    assert r.incrby("n", -3) == 2
    assert r.decrby("n", -3) == 5
    assert r.decr("neg") == -1
    r.set("n", "9223372036854775807")
    overflow = Err("ERR increment or decrement would overflow")
    assert c.cmd("INCR", "n") == overflow
    assert c.cmd("INCRBY", "n", 1) == overflow
    assert r.get("n") == b"9223372036854775807"
    r.set("n", "-9223372036854775808")
    assert c.cmd("DECR", "n") == overflow
    assert c.cmd("INCRBY", "n", -1) == overflow
    r.set("n", "0")
    assert c.cmd("DECRBY", "n", "-9223372036854775808") == Err(
        "ERR decrement would overflow")
    assert c.cmd("INCRBY", "n", "9223372036854775808") == Err(
        "ERR value is not an integer or out of range")
    notint = Err("ERR value is not an integer or out of range")
    for bad in ("abc", " 1", "1 ", "01", "+1", "1.5", "", "0x10"):
        r.set("s", bad)
        assert c.cmd("INCR", "s") == notint, bad
        assert r.get("s") == bad.encode()
    assert c.cmd("INCRBY", "n", "abc") == notint
    # INCRBYFLOAT replies with a bulk string, Redis's %.17Lg formatting.
    r.set("f", "10.5")
    assert c.cmd("INCRBYFLOAT", "f", "0.1") == b"10.6"
    assert c.cmd("INCRBYFLOAT", "f", "-5") == b"5.6"
    r.set("f", "5.0e3")
    assert c.cmd("INCRBYFLOAT", "f", "2.0e2") == b"5200"
    assert c.cmd("INCRBYFLOAT", "newf", "3") == b"3"
    assert c.cmd("INCRBYFLOAT", "newf", "1.5") == b"4.5"
    r.set("i", "3")
    assert c.cmd("INCRBYFLOAT", "i", "0.25") == b"3.25"
    assert c.cmd("INCRBYFLOAT", "f", "abc") == Err(
        "ERR value is not a valid float")
    assert c.cmd("INCRBYFLOAT", "f", "inf") == Err(
        "ERR increment would produce NaN or Infinity")
    r.set("s", "abc")
    assert c.cmd("INCRBYFLOAT", "s", "1") == Err(
        "ERR value is not a valid float")
    assert r.get("f") == b"5200"
    assert r.incrbyfloat("f", 0.5) == 5200.5


def test_del_unlink_exists_touch_type(r, c):
    """DEL/UNLINK count removed keys, EXISTS counts repeats, TOUCH counts
    existing keys, TYPE says string or none."""
    r.mset({"a": "1", "b": "2", "c": "3"})
    assert r.exists("a", "b", "missing", "a") == 3
    assert r.touch("a", "b", "missing") == 2
    assert r.type("a") == b"string"
    assert r.type("missing") == b"none"
    assert r.delete("a", "missing") == 1
    assert r.unlink("b", "c", "b") == 2
    assert r.exists("a", "b", "c") == 0
    assert r.delete("a") == 0
    assert c.cmd("DEL") == Err(
        "ERR wrong number of arguments for 'del' command")


def test_rename(r, c):
    """RENAME moves value and TTL and overwrites; RENAMENX refuses an
    existing target; a missing source is an error."""
    assert c.cmd("RENAME", "missing", "x") == Err("ERR no such key")
    assert c.cmd("RENAMENX", "missing", "x") == Err("ERR no such key")
    r.set("a", "1", ex=100)
    r.set("b", "2")
    assert r.rename("a", "b") is True
    assert r.exists("a") == 0 and r.get("b") == b"1"
    assert near(r.ttl("b"), 100, 1)
    r.set("c", "3")
    assert r.rename("c", "b") is True
    assert r.ttl("b") == -1 and r.get("b") == b"3"
    assert r.rename("b", "b") is True and r.get("b") == b"3"
    r.set("d", "4")
    assert r.renamenx("b", "d") is False
    assert r.get("b") == b"3" and r.get("d") == b"4"
    assert r.renamenx("b", "e") is True
    assert r.exists("b") == 0 and r.get("e") == b"3"
    assert c.cmd("RENAMENX", "e", "e") == 0


def test_randomkey_dbsize_flush(r, c):
    """RANDOMKEY, DBSIZE, FLUSHDB and FLUSHALL [SYNC|ASYNC] on an empty and
    a filled keyspace."""
    assert r.randomkey() is None
    assert r.dbsize() == 0
    keys = {("key%d" % i).encode() for i in range(10)}
    r.mset({k: b"v" for k in keys})
    assert r.dbsize() == 10
    seen = {r.randomkey() for _ in range(30)}
    assert seen <= keys and len(seen) > 1
    assert r.flushdb() is True
    assert r.dbsize() == 0 and r.randomkey() is None
    r.mset({k: b"v" for k in keys})
    assert r.flushall() is True
    assert r.dbsize() == 0
    r.set("x", "1")
    assert c.cmd("FLUSHALL", "ASYNC") == "OK"
    r.set("x", "1")
    assert c.cmd("FLUSHDB", "SYNC") == "OK"
    assert r.dbsize() == 0
    assert c.cmd("FLUSHALL", "BOGUS") == Err("ERR syntax error")


def test_expire_family(r, c):
    """EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT with NX/XX/GT/LT, TTL/PTTL -2/-1,
    EXPIRETIME/PEXPIRETIME, PERSIST, and a non-positive EXPIRE deleting."""
    assert r.ttl("missing") == -2 and r.pttl("missing") == -2
    assert r.expire("missing", 10) is False
    r.set("k", "v")
    assert r.ttl("k") == -1 and r.pttl("k") == -1
    assert r.expiretime("k") == -1 and r.pexpiretime("k") == -1
    assert r.expiretime("missing") == -2
    assert r.pexpiretime("missing") == -2
    assert r.expire("k", 100) is True and near(r.ttl("k"), 100, 1)
    assert r.pexpire("k", 50000) is True
    assert near(r.pttl("k"), 50000, 2000)
    at = int(time.time()) + 1000
    assert r.expireat("k", at) is True
    assert r.expiretime("k") == at
    assert r.pexpiretime("k") == at * 1000
    # EXPIRETIME rounds to the nearest second, as Redis's (ms + 500) / 1000.
    assert r.pexpireat("k", at * 1000 + 400) is True
    assert r.pexpiretime("k") == at * 1000 + 400
    assert r.expiretime("k") == at
    assert r.persist("k") is True and r.ttl("k") == -1
    assert r.persist("k") is False
    assert r.persist("missing") is False
    # NX / XX / GT / LT (a key without TTL counts as infinite).
    assert r.expire("k", 100, xx=True) is False and r.ttl("k") == -1
    assert r.expire("k", 100, gt=True) is False and r.ttl("k") == -1
    assert r.expire("k", 100, nx=True) is True
    assert r.expire("k", 200, nx=True) is False
    assert near(r.ttl("k"), 100, 1)
    assert r.expire("k", 200, xx=True) is True
    assert r.expire("k", 100, gt=True) is False
    assert r.expire("k", 300, gt=True) is True
    assert near(r.ttl("k"), 300, 1)
    assert r.expire("k", 400, lt=True) is False
    assert r.expire("k", 150, lt=True) is True
    assert near(r.ttl("k"), 150, 1)
    r.persist("k")
    assert r.expire("k", 500, lt=True) is True
    assert near(r.ttl("k"), 500, 1)
    assert c.cmd("PEXPIRE", "k", 600000, "GT") == 1
    assert c.cmd("EXPIREAT", "k", at, "XX", "GT") == 1
    assert r.expiretime("k") == at
    assert c.cmd("EXPIRE", "k", 10, "NX", "XX") == Err(
        "ERR NX and XX, GT or LT options at the same time are not "
        "compatible")
    assert c.cmd("EXPIRE", "k", 10, "NX", "GT") == Err(
        "ERR NX and XX, GT or LT options at the same time are not "
        "compatible")
    assert c.cmd("EXPIRE", "k", 10, "GT", "LT") == Err(
        "ERR GT and LT options at the same time are not compatible")
    assert c.cmd("EXPIRE", "k", 10, "FOO") == Err(
        "ERR Unsupported option FOO")
    assert c.cmd("EXPIRE", "k", "ten") == Err(
        "ERR value is not an integer or out of range")
    assert c.cmd("EXPIRE", "k", 9223372036854775807) == Err(
        "ERR invalid expire time in 'expire' command")
    assert c.cmd("PEXPIRE", "k", 9223372036854775807) == Err(
        "ERR invalid expire time in 'pexpire' command")
    assert r.expiretime("k") == at
    # A TTL of zero, a negative one or a past time deletes the key.
    for cmd, arg in (("EXPIRE", 0), ("EXPIRE", -1), ("PEXPIRE", 0),
                     ("EXPIREAT", 1), ("PEXPIREAT", 1000)):
        r.set("d", "v")
        assert c.cmd(cmd, "d", arg) == 1, cmd
        assert r.exists("d") == 0 and r.get("d") is None, cmd
        assert r.ttl("d") == -2
    assert r.dbsize() == 1
    # Rounding up from .600 (checked last so the rest always runs).
    assert r.pexpireat("k", at * 1000 + 600) is True
    assert r.expiretime("k") == at + 1


def scan_all(r, pattern=None, count=None, _type=None, limit=100000):
    """Every key a full SCAN returns (bounded number of calls)."""
    seen = []
    cursor = 0
    for _ in range(limit):
        cursor, keys = r.scan(cursor, match=pattern, count=count,
                              _type=_type)
        seen.extend(keys)
        if cursor == 0:
            return seen
    raise AssertionError("SCAN did not finish in %d calls" % limit)


def test_scan(r, c):
    """SCAN with MATCH, COUNT and TYPE returns every key (and only matching
    ones) in a bounded number of calls; bad arguments are refused."""
    user = {("user:%d" % i).encode() for i in range(200)}
    other = {("other:%d" % i).encode() for i in range(100)}
    r.mset({k: b"v" for k in user | other})
    assert set(scan_all(r)) == user | other
    assert set(scan_all(r, count=7)) == user | other
    got = scan_all(r, pattern="user:*", count=50)
    assert set(got) == user
    assert set(scan_all(r, pattern="user:1?", count=1000)) == {
        ("user:1%d" % i).encode() for i in range(10)}
    assert set(scan_all(r, _type="string")) == user | other
    assert scan_all(r, _type="hash") == []
    rep = c.cmd("SCAN", 0)
    assert isinstance(rep, list) and len(rep) == 2
    assert isinstance(rep[0], bytes) and int(rep[0]) >= 0
    assert c.cmd("SCAN", "abc") == Err("ERR invalid cursor")
    assert c.cmd("SCAN", 0, "COUNT", 0) == Err("ERR syntax error")
    assert c.cmd("SCAN", 0, "COUNT", "x") == Err(
        "ERR value is not an integer or out of range")
    assert c.cmd("SCAN", 0, "MATCH") == Err("ERR syntax error")
    assert c.cmd("SCAN", 0, "BOGUS", 1) == Err("ERR syntax error")
    r.flushall()
    assert r.scan(0) == (0, [])


def test_scan_count_hint(r):
    """SCAN's COUNT is honoured roughly as Redis does: on 20k keys a call
    returns about COUNT keys, so a full scan takes about keys/COUNT calls."""
    n = 20000
    p = r.pipeline(transaction=False)
    for i in range(n):
        p.set("h:%d" % i, "v")
    p.execute()
    for count in (10, 100, 1000):
        calls, cursor, seen = 0, 0, set()
        while calls < 10 * n:
            cursor, keys = r.scan(cursor, count=count)
            calls += 1
            seen.update(keys)
            if cursor == 0:
                break
        assert len(seen) == n
        # Redis 7.0 here: 1940, 196 and 20 calls.
        assert calls <= 1.5 * n / count, (count, calls)


def test_keys_glob(r):
    """KEYS matches Redis's glob syntax: ?, *, [set], [^set], [a-b] and
    backslash escapes."""
    names = [b"hello", b"hallo", b"hxllo", b"hllo", b"heeeello", b"h*llo",
             b"other"]
    r.mset({k: b"1" for k in names})
    assert set(r.keys("*")) == set(names)
    assert set(r.keys("h?llo")) == {b"hello", b"hallo", b"hxllo", b"h*llo"}
    assert set(r.keys("h*llo")) == set(names) - {b"other"}
    assert set(r.keys("h[ae]llo")) == {b"hello", b"hallo"}
    assert set(r.keys("h[^e]llo")) == {b"hallo", b"hxllo", b"h*llo"}
    assert set(r.keys("h[a-b]llo")) == {b"hallo"}
    assert set(r.keys("h\\*llo")) == {b"h*llo"}
    assert r.keys("nomatch*") == []
    assert r.keys("other") == [b"other"]


# ---------------------------------------------------------------------------
# Cluster commands: narf standalone vs a one-node Redis Cluster


@pytest.fixture
def cluster_srv(make_server, kind):
    """narf standalone, or redis-server in cluster mode owning every slot."""
    if kind == "redis":
        return make_server("redis", cluster=True)
    return make_server("narf")


def test_cluster_keyslot(cluster_srv):
    """CLUSTER KEYSLOT is CRC16 mod 16384 with {hashtag} rules."""
    with cluster_srv.raw() as c:
        for key in ("foo", "bar", "somekey", "hello", "{user1000}.following",
                    "{user1000}.followers", "foo{}{bar}", "foo{{bar}}zap",
                    "foo{bar}{zap}", "", "{}", "\xff\x00"):
            assert c.cmd("CLUSTER", "KEYSLOT", key) == key_slot(key), key
        assert c.cmd("CLUSTER", "KEYSLOT", "foo") == 12182
        assert c.cmd("CLUSTER", "KEYSLOT", "somekey") == 11058


def test_cluster_topology(cluster_srv):
    """CLUSTER SLOTS, SHARDS and NODES describe one master owning 0-16383
    at this address, as cluster-aware clients expect."""
    s = cluster_srv
    with s.raw() as c:
        slots = c.cmd("CLUSTER", "SLOTS")
        assert len(slots) == 1
        assert slots[0][:2] == [0, 16383]
        master = slots[0][2]
        # Deliberate difference: Redis 7.0 adds a 4th element (networking
        # metadata); only ip, port and id are compared.
        assert master[0] == b"127.0.0.1" and master[1] == s.port
        node_id = master[2]
        assert len(node_id) == 40 and int(node_id, 16) >= 0
        assert len(slots[0]) == 3  # no replicas

        shards = c.cmd("CLUSTER", "SHARDS")
        assert len(shards) == 1
        shard = dict(zip(shards[0][0::2], shards[0][1::2]))
        assert shard[b"slots"] == [0, 16383]
        assert len(shard[b"nodes"]) == 1
        node = dict(zip(shard[b"nodes"][0][0::2], shard[b"nodes"][0][1::2]))
        assert node[b"id"] == node_id
        assert node[b"port"] == s.port
        assert node[b"ip"] == b"127.0.0.1"
        assert node[b"role"] == b"master"
        assert node[b"health"] == b"online"

        nodes = c.cmd("CLUSTER", "NODES").decode()
        lines = nodes.strip("\n").split("\n")
        assert len(lines) == 1, nodes
        f = lines[0].split(" ")
        assert f[0] == node_id.decode()
        # ip:port@cport[,hostname]; the bus port is not compared (narf
        # has no cluster bus; redis here runs one on a free port).
        assert f[1].split("@")[0] == "127.0.0.1:%d" % s.port
        assert set(f[2].split(",")) == {"myself", "master"}
        assert f[3] == "-"
        assert f[7] == "connected"
        assert f[8:] == ["0-16383"]


def test_cluster_clients(cluster_srv):
    """`redis-cli -c` and redis-py's RedisCluster route through CLUSTER SLOTS
    and read and write keys of every slot range."""
    s = cluster_srv
    out = s.cli("CLUSTER", "SLOTS", cluster=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().split()
    assert lines[:4] == ["0", "16383", "127.0.0.1", str(s.port)], lines
    out = s.cli("SET", "{tag}x", "hello", cluster=True)
    assert out.stdout.decode().strip() == "OK"
    out = s.cli("GET", "{tag}x", cluster=True)
    assert out.stdout.decode().strip() == "hello"
    # redis-py also reads INFO's cluster_enabled before trusting the node.
    cl = s.client()
    info = cl.info()
    cl.close()
    assert info.get("cluster_enabled") == 1, "INFO cluster_enabled: %r" % (
        info.get("cluster_enabled"))
    rc = redis.cluster.RedisCluster(host="127.0.0.1", port=s.port,
                                    socket_timeout=10)
    try:
        for i in range(200):
            assert rc.set("ck:%d" % i, i) is True
        for i in range(200):
            assert rc.get("ck:%d" % i) == str(i).encode()
        assert rc.mget_nonatomic(["ck:1", "ck:2"]) == [b"1", b"2"]
        assert len(rc.get_nodes()) == 1
    finally:
        rc.close()


# ---------------------------------------------------------------------------
# redis-cli and inline commands


def test_redis_cli(srv):
    """redis-cli PING, SET/GET, --pipe mass insertion of 10k keys, DBSIZE
    and INFO keyspace all work."""
    out = srv.cli("PING")
    assert (out.returncode, out.stdout.strip()) == (0, b"PONG"), out
    assert srv.cli("SET", "foo", "bar value").stdout.strip() == b"OK"
    assert srv.cli("GET", "foo").stdout.strip() == b"bar value"
    assert srv.cli("--no-raw", "GET", "missing").stdout.strip() == b"(nil)"
    srv.cli("DEL", "foo")
    stream = b"".join(encode("SET", "mass:%05d" % i, "value-%d" % i)
                      for i in range(10000))
    out = srv.cli("--pipe", input=stream, timeout=60)
    assert out.returncode == 0, out
    text = out.stdout.decode()
    assert "errors: 0, replies: 10000" in text, text
    assert srv.cli("DBSIZE").stdout.strip() == b"10000"
    info = srv.cli("INFO", "keyspace").stdout.decode()
    assert "db0:keys=10000,expires=0" in info, info
    assert srv.cli("GET", "mass:09999").stdout.strip() == b"value-9999"
    # The inline (telnet-style) form that `nc` users type.
    out = subprocess.run(["nc", "-q", "1", "127.0.0.1", str(srv.port)],
                         input=b"PING\r\nGET mass:00042\r\nQUIT\r\n",
                         capture_output=True, timeout=10)
    assert out.stdout == b"+PONG\r\n$8\r\nvalue-42\r\n+OK\r\n", out


def test_inline_commands(srv):
    """Inline commands with quotes and escapes work, blank lines are
    skipped and unbalanced quotes are a protocol error that closes."""
    with srv.raw() as c:
        c.send(b"PING\r\n")
        assert c.read() == "PONG"
        c.send(b'SET a "b c"\r\n')
        assert c.read() == "OK"
        assert c.cmd("GET", "a") == b"b c"
        c.send(b'SET b "x\\ny\\x41"\r\n')
        assert c.read() == "OK"
        assert c.cmd("GET", "b") == b"x\nyA"
        c.send(b"\r\n\r\nPING\n")
        assert c.read() == "PONG"
        c.send(b"  get   a  \r\n")
        assert c.read() == b"b c"
        c.send(b"ECHO 'single quoted'\r\n")
        assert c.read() == b"single quoted"
        c.send(b"GET a\r\nGET b\r\nPING\r\n")
        assert [c.read(), c.read(), c.read()] == [b"b c", b"x\nyA", "PONG"]
        c.send(b'SET a "b\r\n')
        assert c.read() == Err(
            "ERR Protocol error: unbalanced quotes in request")
        assert c.at_eof(3.0)
    with srv.raw() as c:
        assert c.cmd("GET", "a") == b"b c"


def test_requests_split_at_every_byte(srv):
    """A pipeline sent one byte at a time is answered exactly as when sent
    whole."""
    data = (encode("SET", "split", "v" * 40) + b"GET split\r\n" +
            encode("MGET", "split", "nokey") + encode("PING"))
    with srv.raw() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            c.send(data[i:i + 1])
            if i % 7 == 0:
                time.sleep(0.001)
        assert c.read() == "OK"
        assert c.read() == b"v" * 40
        assert c.read() == [b"v" * 40, None]
        assert c.read() == "PONG"


# ---------------------------------------------------------------------------
# AUTH


@pytest.fixture
def auth_srv(make_server, kind):
    """A server with a password (narf: through --requirepass-file)."""
    return make_server(kind, password="s3cret pw")


def test_auth_required(auth_srv):
    """Before AUTH every command but AUTH/HELLO/QUIT gets NOAUTH; a wrong
    password gets WRONGPASS; the right one unlocks the connection."""
    s = auth_srv
    noauth = Err("NOAUTH Authentication required.")
    wrong = Err("WRONGPASS invalid username-password pair or user is "
                "disabled.")
    with s.raw(auth=False) as c:
        assert c.cmd("GET", "k") == noauth
        assert c.cmd("SET", "k", "v") == noauth
        assert c.cmd("PING") == noauth
        assert c.cmd("FOO") == Err(
            "ERR unknown command 'FOO', with args beginning with: ")
        assert c.cmd("AUTH", "nope") == wrong
        assert c.cmd("AUTH", "default", "nope") == wrong
        assert c.cmd("AUTH", "someone", "s3cret pw") == wrong
        assert c.cmd("GET", "k") == noauth
        assert c.cmd("HELLO", 2) == Err(
            "NOAUTH HELLO must be called with the client already "
            "authenticated, otherwise the HELLO AUTH <user> <pass> option "
            "can be used to authenticate the client and select the RESP "
            "protocol version at the same time")
        assert c.cmd("AUTH", "s3cret pw") == "OK"
        assert c.cmd("SET", "k", "v") == "OK"
        assert c.cmd("GET", "k") == b"v"
    with s.raw(auth=False) as c:
        assert c.cmd("AUTH", "default", "s3cret pw") == "OK"
        assert c.cmd("GET", "k") == b"v"
    with s.raw(auth=False) as c:
        assert c.cmd("HELLO", 2, "AUTH", "default", "wrong") == wrong
        rep = c.cmd("HELLO", 2, "AUTH", "default", "s3cret pw")
        assert isinstance(rep, list) and rep[0] == b"server", rep
        assert c.cmd("GET", "k") == b"v"
    with s.raw(auth=False) as c:
        assert c.cmd("QUIT") == "OK"
        assert c.at_eof(3.0)
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=s.port, socket_timeout=5).get("k")
    # redis-py 4.3.4 has no class for WRONGPASS: a plain ResponseError.
    with pytest.raises(redis.exceptions.ResponseError,
                       match="^WRONGPASS invalid username-password pair"):
        redis.Redis(host="127.0.0.1", port=s.port, socket_timeout=5,
                    password="bad").get("k")
    good = s.client()
    assert good.get("k") == b"v"
    good.close()
    assert s.cli("GET", "k").stdout.strip() == b"v"


def test_auth_without_password(c):
    """AUTH on a server without a password gets Redis's explanation."""
    assert c.cmd("AUTH", "x") == Err(
        "ERR AUTH <password> called without any password configured for "
        "the default user. Are you sure your configuration is correct?")
    assert c.cmd("PING") == "PONG"


def test_requirepass_file(make_server):
    """--requirepass-file reads the password from the file's first line."""
    s = make_server("narf", password="from-a-file", password_via="file")
    assert "from-a-file" not in " ".join(s.argv())
    with s.raw(auth=False) as c:
        assert c.cmd("GET", "k") == Err("NOAUTH Authentication required.")
        assert c.cmd("AUTH", "from-a-file") == "OK"
        assert c.cmd("PING") == "PONG"

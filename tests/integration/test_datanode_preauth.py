"""Integration tests of the data node's client port before a client has
proven itself, against redis-server (Debian's 7.0) and narf with the same
assertions: Redis's limits on an unauthenticated client (10 arguments of
16 KiB), protected mode (no password: loopback clients only), and the
counting of refused AUTH attempts.

Protected mode needs a client that is not on the loopback interface. The
`outside` fixture finds one: a non-loopback address of this machine
(servers listen on 0.0.0.0 and the client connects to that address, so
its source address is that address too); without one (or with
NARF_TEST_NETNS=1), a network namespace of the test's own with an extra
address on its loopback device, entered by this thread for the test
(servers started meanwhile are born in it). Neither changes anything
outside the test.
"""

import ctypes
import os
import random
import re
import socket
import subprocess

import pytest

from dn_harness import MB, Closed, Err, RawConn, encode, wait_until
from dn_fixtures import kind, make_server  # noqa: F401
from peer_auth import first_step, prove

PASSWORD = "pre-auth-pw"
NOAUTH = Err("NOAUTH Authentication required.")
UNAUTH_MBULK = Err("ERR Protocol error: unauthenticated multibulk length")
UNAUTH_BULK = Err("ERR Protocol error: unauthenticated bulk length")
# Redis 7.0's reply to a client from outside in protected mode, which narf
# sends word for word (datanode/engine.h, NARF_DENIED).
DENIED = Err(
    "DENIED Redis is running in protected mode because protected mode is "
    "enabled and no password is set for the default user. In this mode "
    "connections are only accepted from the loopback interface. If you "
    "want to connect from external computers to Redis you may adopt one of "
    "the following solutions: 1) Just disable protected mode sending the "
    "command 'CONFIG SET protected-mode no' from the loopback interface by "
    "connecting to Redis from the same host the server is running, however "
    "MAKE SURE Redis is not publicly accessible from internet if you do "
    "so. Use CONFIG REWRITE to make this change permanent. 2) "
    "Alternatively you can just disable the protected mode by editing the "
    "Redis configuration file, and setting the protected mode option to "
    "'no', and then restarting the server. 3) If you started the server "
    "manually just for testing, restart it with the '--protected-mode no' "
    "option. 4) Setup a an authentication password for the default user. "
    "NOTE: You only need to do one of the above things in order for the "
    "server to start accepting connections from the outside.")


def fresh(srv):
    """A raw connection to srv that has not sent AUTH."""
    return srv.raw(auth=False)


def expect_closed_with(conn, data, want):
    """Send data; expect the reply want and then EOF."""
    conn.send(data)
    assert conn.read() == want, data[:40]
    assert conn.at_eof(3.0), "connection left open after %r" % data[:40]


def info_field(conn, section, field):
    text = conn.cmd("INFO", section).decode()
    m = re.search(r"^%s:(\d+)\r?$" % field, text, re.M)
    assert m, "no %s in INFO %s" % (field, section)
    return int(m.group(1))


# ---------------------------------------------------------------------------
# Limits before AUTH


@pytest.fixture
def psrv(make_server, kind):
    """A server of the parametrized kind with a password."""
    return make_server(kind, password=PASSWORD)


def test_preauth_argument_count(psrv):
    """Before AUTH a multibulk request may have 10 arguments: 11 (or two
    million) is Redis's "unauthenticated multibulk length" error and the
    connection closes; 10 is parsed and gets NOAUTH; after AUTH the
    configured limit applies again."""
    for count in (11, 2000000):
        with fresh(psrv) as c:
            expect_closed_with(c, b"*%d\r\n" % count, UNAUTH_MBULK)
    with fresh(psrv) as c:
        # Cut before the count's line ends: nothing is refused yet.
        c.send(b"*11")
        assert not c.at_eof(0.3)
        expect_closed_with(c, b"\r\n", UNAUTH_MBULK)
    with fresh(psrv) as c:
        assert c.cmd("DEL", *["k%d" % i for i in range(9)]) == NOAUTH
        # Arity comes before NOAUTH (Redis 7.0's order).
        assert c.cmd("GET", "a", "b") == Err(
            "ERR wrong number of arguments for 'get' command")
        assert c.cmd("AUTH", PASSWORD) == "OK"
        assert c.cmd("DEL", *["k%d" % i for i in range(100)]) == 0


def test_preauth_bulk_length(psrv):
    """Before AUTH an argument may be 16 KiB: a longer one is refused at
    its header with Redis's "unauthenticated bulk length" error and the
    connection closes; 16 KiB exactly gets NOAUTH; after AUTH (also AUTH
    pipelined with the big request) a 1 MB value is taken."""
    with fresh(psrv) as c:
        expect_closed_with(c, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$16385\r\n",
                           UNAUTH_BULK)
    with fresh(psrv) as c:
        assert c.cmd("SET", "k", b"v" * 16384) == NOAUTH
        assert c.cmd("AUTH", PASSWORD) == "OK"
        assert c.cmd("SET", "k", b"v" * MB) == "OK"
    with fresh(psrv) as c:
        c.send(encode("AUTH", PASSWORD) + encode("SET", "k2", b"w" * MB))
        assert c.read() == "OK"
        assert c.read() == "OK"
        assert c.cmd("STRLEN", "k2") == MB


def test_preauth_other_limits_first(psrv):
    """The "invalid" errors keep their precedence, as in Redis: a count
    over INT_MAX and a bulk over the value limit are "invalid ... length",
    not "unauthenticated"."""
    with fresh(psrv) as c:
        expect_closed_with(c, b"*3000000000\r\n", Err(
            "ERR Protocol error: invalid multibulk length"))
    with fresh(psrv) as c:
        expect_closed_with(c, b"*1\r\n$600000000\r\n", Err(
            "ERR Protocol error: invalid bulk length"))


def test_preauth_inline_and_pipeline(psrv):
    """Inline requests are not held to 10 arguments (Redis checks only
    multibulk counts), and a pipeline before AUTH is answered while its
    replies stay small."""
    with fresh(psrv) as c:
        c.send(b"DEL" + b" k" * 50 + b"\r\n")
        assert c.read() == NOAUTH
        n = 200  # 6.6 KB of replies
        c.send(encode("GET", "k") * n)
        assert c.read_errors(n) == [(i, NOAUTH) for i in range(n)]
        assert c.cmd("AUTH", PASSWORD) == "OK"
        assert c.cmd("PING") == "PONG"


def test_preauth_reply_limit(psrv):
    """A client that has not authenticated is closed once more than about
    17 KB of its replies wait to be written (Redis since CVE-2025-21605:
    its 16 KiB reply buffer plus 1 KiB; here a 2 MB pipeline of GETs
    piles up NOAUTH replies faster than they go): it gets no further than
    a fraction of the replies, and the server serves others."""
    n = 2 * MB // len(encode("GET", "k"))
    with fresh(psrv) as c:
        try:
            c.send(encode("GET", "k") * n)
        except OSError:
            pass  # closed while we were still sending
        with pytest.raises(Closed):
            c.read_errors(n)
        assert c.partial < n // 10, c.partial
    with psrv.raw() as ok:
        assert ok.cmd("PING") == "PONG"


def test_preauth_bystander(psrv):
    """Clients refused before AUTH do not disturb an authenticated one."""
    with psrv.raw() as ok:
        assert ok.cmd("SET", "bystander", "safe") == "OK"
        for data in (b"*11\r\n", b"*1\r\n$20000\r\n", b"*2000000\r\n"):
            with fresh(psrv) as c:
                c.send(data)
                assert isinstance(c.read(), Err)
        assert ok.cmd("GET", "bystander") == b"safe"


def test_auth_failures_counted(make_server):
    """Refused AUTH attempts are counted in INFO stats'
    acl_access_denied_auth (Redis 7.2's field; Debian's 7.0 has none, so
    narf only) and logged at a bounded rate with the client's address,
    never the password tried; a right password and AUTH without a
    password configured are not counted."""
    s = make_server("narf", password=PASSWORD)
    with fresh(s) as c:
        for i in range(50):
            assert c.cmd("AUTH", "guess-%d" % i) == Err(
                "WRONGPASS invalid username-password pair or user is "
                "disabled.")
        assert c.cmd("HELLO", "2", "AUTH", "default", "guess") == Err(
            "WRONGPASS invalid username-password pair or user is "
            "disabled.")
        assert c.cmd("AUTH", PASSWORD) == "OK"
        assert info_field(c, "stats", "acl_access_denied_auth") == 51

    def auth_lines():
        return [ln for ln in s.log_text().splitlines()
                if "AUTH failed" in ln]

    # The first failure is logged at once, the others within about a
    # second (by the cron, or with a failure a second later): a line
    # "client N (addr)" stands for itself, "K more times" for K others.
    def logged():
        n = 0
        for ln in auth_lines():
            m = re.search(r"(\d+) more times", ln)
            n += ("client " in ln) + (int(m.group(1)) if m else 0)
        return n

    wait_until(lambda: logged() == 51, 5.0, what="51 failures logged")
    lines = auth_lines()
    assert len(lines) <= 4, lines  # the burst takes well under 2 s
    assert "(127.0.0.1:" in lines[0], lines[0]
    assert "guess" not in s.log_text()
    s2 = make_server("narf")
    with s2.raw() as c:
        assert isinstance(c.cmd("AUTH", "x"), Err)
        assert info_field(c, "stats", "acl_access_denied_auth") == 0


# ---------------------------------------------------------------------------
# Protected mode


def local_address():
    """A non-loopback IPv4 address of this machine that can be bound, or
    None."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope",
                              "global", "up"], capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for m in re.finditer(r"\binet (\d+\.\d+\.\d+\.\d+)/", out):
        ip = m.group(1)
        try:
            with socket.socket() as s:
                s.bind((ip, 0))
            return ip
        except OSError:
            continue
    return None


class OwnNetns:
    """A network namespace of this test with lo up and ADDR on it; enter()
    moves the calling thread in (processes it starts are born there),
    leave() back, destroy() deletes it."""

    ADDR = "10.213.254.1"
    CLONE_NEWNET = 0x40000000

    def __init__(self):
        self.name = "narfpm-%d-%04x" % (os.getpid(),
                                        random.getrandbits(16))
        self.root_fd = None
        self.libc = ctypes.CDLL(None, use_errno=True)

    def _ip(self, *args):
        p = subprocess.run(["ip"] + list(args), capture_output=True,
                           text=True, timeout=20)
        if p.returncode != 0:
            raise OSError("ip %s: %s" % (" ".join(args), p.stderr.strip()))

    def create(self):
        self._ip("netns", "add", self.name)
        try:
            self._ip("-n", self.name, "link", "set", "lo", "up")
            self._ip("-n", self.name, "addr", "add", self.ADDR + "/32",
                     "dev", "lo")
        except OSError:
            self.destroy()
            raise

    def enter(self):
        self.root_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open("/run/netns/" + self.name, os.O_RDONLY)
        try:
            if self.libc.setns(fd, self.CLONE_NEWNET) != 0:
                raise OSError("setns: %s" % os.strerror(ctypes.get_errno()))
        finally:
            os.close(fd)

    def leave(self):
        if self.root_fd is None:
            return
        rc = self.libc.setns(self.root_fd, self.CLONE_NEWNET)
        os.close(self.root_fd)
        self.root_fd = None
        if rc != 0:
            raise OSError("setns back: %s" % os.strerror(ctypes.get_errno()))

    def destroy(self):
        subprocess.run(["ip", "netns", "del", self.name],
                       capture_output=True, timeout=20)


@pytest.fixture
def outside():
    """A local address that is not loopback, for servers on 0.0.0.0 to be
    reached from (see the module doc). Request it before make_server, so
    the servers stop before a namespace goes."""
    ip = None if os.environ.get("NARF_TEST_NETNS") else local_address()
    if ip is not None:
        yield ip
        return
    if os.geteuid() != 0:
        pytest.skip("no non-loopback address here, and making a network "
                    "namespace needs root")
    ns = OwnNetns()
    try:
        ns.create()
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip("no non-loopback address here, and no network "
                    "namespace either: %s" % e)
    try:
        ns.enter()
        yield ns.ADDR
    finally:
        ns.leave()
        ns.destroy()


def remote(srv, ip, timeout=5.0):
    """A raw connection to srv from address ip (not loopback)."""
    return RawConn(srv.port, timeout=timeout, host=ip)


def test_protected_mode_denies_outside(outside, make_server, kind):
    """No password and protected mode (the default): a client from
    outside gets Redis's -DENIED text before it sends anything, and the
    connection closes; it is counted in rejected_connections; a loopback
    client is served as before."""
    s = make_server(kind, bind="0.0.0.0")
    with remote(s, outside) as c:
        assert c.read() == DENIED
        assert c.at_eof(3.0)
    with remote(s, outside) as c:
        assert c.read() == DENIED
        assert c.at_eof(3.0)
    with s.raw() as c:
        assert c.cmd("PING") == "PONG"
        assert info_field(c, "stats", "rejected_connections") == 2


def test_protected_mode_no(outside, make_server, kind):
    """--protected-mode no serves clients from outside without a
    password."""
    s = make_server(kind, bind="0.0.0.0", protected_mode="no")
    with remote(s, outside) as c:
        assert c.cmd("SET", "k", "v") == "OK"
        assert c.cmd("GET", "k") == b"v"


def test_protected_mode_password(outside, make_server, kind):
    """With a password protected mode does not apply: a client from outside
    must AUTH, with the limits before AUTH, and is then served."""
    s = make_server(kind, bind="0.0.0.0", password=PASSWORD)
    with remote(s, outside) as c:
        assert c.cmd("PING") == NOAUTH
        assert c.cmd("AUTH", PASSWORD) == "OK"
        assert c.cmd("PING") == "PONG"
    with remote(s, outside) as c:
        expect_closed_with(c, b"*11\r\n", UNAUTH_MBULK)


def test_protected_mode_peer_handshake(outside, make_server):
    """A node that holds the node key lets a connection from outside run
    the peer handshake (NARF.AUTH), and nothing else, until it has proven
    itself: it is not denied at accept, a wrong proof is refused and
    closes it (a failed NARF.AUTH, not a denial), any other request (or a
    protocol error) gets -DENIED and closes it, and a right proof makes it
    a peer that is served."""
    s = make_server("narf", bind="0.0.0.0", cluster_secret=True)
    with remote(s, outside) as c:
        assert not c.at_eof(0.3) and c.buf == b""
        nonce_c, rep = first_step(c, 9)
        assert isinstance(rep, list) and len(rep) == 2, rep
        assert c.cmd("NARF.AUTH", "00" * 32) == Err(
            "NOPERM NARF.AUTH: wrong proof")
        assert c.at_eof(3.0)
    with remote(s, outside) as c:
        expect_closed_with(c, encode("PING"), DENIED)
    with remote(s, outside) as c:
        expect_closed_with(c, b"*20\r\n", DENIED)
    with remote(s, outside) as c:
        expect_closed_with(c, b"PING\r\n", DENIED)
    with remote(s, outside) as c:
        assert prove(c, 9) == "OK"
        assert c.cmd("PING") == "PONG"
    with s.raw() as c:
        assert info_field(c, "stats", "rejected_connections") == 3
        assert info_field(c, "stats", "peer_auth_failures") == 1
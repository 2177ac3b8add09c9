"""The Raft port authenticates before libraft sees a byte (docs/security.md,
"Raft transport"; coordinator/transport.c).

Real trios on 127.0.0.1 with --metrics on every member: the tests watch
Raft through /metrics (term, leader, handshake counters) and the members'
logs, never through the API. A stranger's garbage, a stock libraft
preamble with a forged AppendEntries of a huge term, a forged narf hello
without the secret, and a silent connection are all closed and logged, and
the leader keeps its term; a coordinator started with another cluster's
secret on a member's addresses can neither reach the trio nor be reached.
The transport's own C test (tests/integration/transport_loop.c, one loop
over 127.0.0.1) runs here too.
"""

import os
import socket
import struct
import subprocess
import time
import urllib.request

from conftest import SANITIZER_MARKS
from narf_harness import (HOST, Coord, HarnessError, unused_addr,
                          wait_for)

OTHER_SECRET = b"another-cluster-entirely-not-ours-42"

# The Raft handshake's frames (coordinator/raft_hs.h).
HELLO_SIZE = 96
CHALLENGE_SIZE = 56


def metrics(addr, timeout=2.0):
    """GET /metrics as {'name{labels}': value} (labels as written)."""
    with urllib.request.urlopen("http://%s/metrics" % addr,
                                timeout=timeout) as rep:
        text = rep.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def refused(m):
    return m.get('narf_raft_handshakes_total{direction="in",'
                 'result="refused"}', 0)


def raft_view(maddrs):
    """{id: (is_leader, term, leader_id)} of the members answering."""
    out = {}
    for cid, addr in maddrs.items():
        try:
            m = metrics(addr)
        except OSError:
            continue
        out[cid] = (m["narf_is_leader"] == 1, int(m["narf_raft_term"]),
                    int(m["narf_raft_leader_id"]))
    return out


def settled_leader(maddrs, timeout=15.0):
    """(leader id, term) once every member in maddrs agrees on both."""
    found = []

    def agreed():
        v = raft_view(maddrs)
        if len(v) != len(maddrs):
            return False
        leaders = [cid for cid, (lead, _, _) in v.items() if lead]
        terms = {term for _, term, _ in v.values()}
        ids = {lid for _, _, lid in v.values()}
        if len(leaders) == 1 and len(terms) == 1 and ids == {leaders[0]}:
            found[:] = [leaders[0], terms.pop()]
            return True
        return False

    wait_for(agreed, timeout, what="one leader every member agrees on")
    return found[0], found[1]


def start_trio(make_trio):
    maddrs = {cid: unused_addr() for cid in (1, 2, 3)}
    trio = make_trio(node_timeout_ms=1000,
                     coord_args={cid: ["--metrics", maddrs[cid]]
                                 for cid in maddrs})
    return trio, maddrs


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def closed_within(sock, timeout):
    """Read until the peer closes; returns (bytes read, seconds taken), or
    raises HarnessError when it stays open for timeout."""
    t0 = time.monotonic()
    got = b""
    sock.settimeout(0.2)
    while time.monotonic() - t0 < timeout:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return got, time.monotonic() - t0
        if not chunk:
            return got, time.monotonic() - t0
        got += chunk
    raise HarnessError("connection still open after %.1fs" % timeout)


def stock_append_entries(term):
    """What a stranger speaking stock libraft 0.15 sends: its TCP preamble
    (protocol 1, server id, address) and an AppendEntries (type 1) from
    "leader" 9 with a huge term and no entries."""
    addr = b"127.0.0.1:9999".ljust(16, b"\0")
    preamble = struct.pack("<QQQ", 1, 9, len(addr)) + addr
    header = struct.pack("<QQQQQ", term, 1, 1, 1, 0)  # term, prev index,
    # prev term, commit, n_entries
    return preamble + struct.pack("<QQ", 1, len(header)) + header


def forged_hello(ident, address):
    """A well-formed narf hello claiming member ident, from someone who
    does not hold the secret."""
    addr = address.encode().ljust(64, b"\0")
    return (b"NRFT" + bytes([1, 3, 0, 0]) + ident.to_bytes(8, "big") +
            os.urandom(16) + addr)


def test_strangers_refused_leader_keeps_term(make_trio):
    """Garbage, a stock libraft preamble with a forged AppendEntries of term
    2^40, and a narf hello followed by a made-up proof are each closed by
    every member, which logs the refusal; no OK byte is ever sent, and the
    leader and term stay as they were (no re-election)."""
    trio, maddrs = start_trio(make_trio)
    leader, term = settled_leader(maddrs)
    before = {cid: refused(metrics(a)) for cid, a in maddrs.items()}
    for c in trio.coords:
        port = port_of(c.raft)
        # 1. garbage
        with socket.create_connection((HOST, port), 2) as s:
            s.sendall(os.urandom(300))
            got, _ = closed_within(s, 5)
            assert got == b"", got
        # 2. stock libraft: preamble + AppendEntries with a huge term
        with socket.create_connection((HOST, port), 2) as s:
            s.sendall(stock_append_entries(1 << 40))
            got, _ = closed_within(s, 5)
            assert got == b"", got
        # 3. our own hello, then a proof made up without the secret
        with socket.create_connection((HOST, port), 2) as s:
            s.sendall(forged_hello(leader, "127.0.0.1:9999"))
            s.settimeout(2)
            chal = b""
            while len(chal) < CHALLENGE_SIZE:
                chunk = s.recv(CHALLENGE_SIZE - len(chal))
                assert chunk, "closed before the challenge"
                chal += chunk
            assert chal[:5] == b"NRFT\x01"
            s.sendall(os.urandom(32))
            got, _ = closed_within(s, 5)
            assert got == b"", "the server answered a wrong proof: %r" % got
    time.sleep(1.0)  # three election timeouts: time enough to misbehave
    assert settled_leader(maddrs, timeout=5) == (leader, term)
    for c in trio.coords:
        log = c.log_text()
        assert "raft: refused a connection from 127.0.0.1:" in log, \
            c.log_tail()
        assert "bad magic" in log, c.log_tail()
        assert "claims member %d: wrong proof" % leader in log, c.log_tail()
        assert refused(metrics(maddrs[c.id])) - before[c.id] >= 3


def test_silent_connection_closed_after_deadline(make_trio):
    """A connection that sends nothing is closed once the 2 s handshake
    deadline passes, and the refusal is logged."""
    trio, maddrs = start_trio(make_trio)
    leader, term = settled_leader(maddrs)
    follower = next(c for c in trio.coords if c.id != leader)
    with socket.create_connection((HOST, port_of(follower.raft)), 2) as s:
        got, took = closed_within(s, 10)
    print("silent connection closed after %.2fs" % took)
    assert got == b""
    assert 1.5 <= took <= 5.0, took
    wait_for(lambda: "no handshake within 2000 ms" in follower.log_text(),
             3, what="the deadline's refusal in the log")
    assert settled_leader(maddrs, timeout=5) == (leader, term)


def test_other_secret_cannot_join(make_trio, tmp_path):
    """A coordinator holding another cluster's secret, started as a member
    (its id, Raft and API addresses) after the real one stopped: its
    connections are refused by the trio, the trio's are refused by it (it
    cannot prove the secret back), the leader keeps its term, and the real
    member rejoins afterwards."""
    trio, maddrs = start_trio(make_trio)
    leader, term = settled_leader(maddrs)
    victim = next(c for c in trio.coords if c.id != leader)
    assert victim.terminate() == 0
    rest = {cid: a for cid, a in maddrs.items() if cid != victim.id}
    other = tmp_path / "other.secret"
    other.write_bytes(OTHER_SECRET + b"\n")
    os.chmod(other, 0o600)
    stranger = Coord(trio.build, victim.id, trio.members,
                     str(tmp_path / "stranger"),
                     str(tmp_path / "stranger.log"), victim.api,
                     victim.raft,
                     ["--cluster-secret-file", str(other),
                      "--log-level", "debug"])
    stranger.start()
    try:
        # It campaigns (election timeouts of 300 ms) and the leader keeps
        # trying to send it entries, for three seconds.
        time.sleep(3.0)
        assert stranger.alive(), stranger.log_tail()
        assert settled_leader(rest, timeout=5) == (leader, term)
        # Refusal lines are rate limited (5 per 10 s): allow a window.
        line = ("raft: handshake with member %d at %s: the server did not "
                "prove the cluster secret" % (victim.id, victim.raft))
        wait_for(lambda: line in trio[leader].log_text(), 12,
                 what="the leader's refusal of the stranger's proof")
        slog = stranger.log_text()
        assert "the server did not prove the cluster secret" in slog, \
            stranger.log_tail()
        assert "raft: refused a connection from" in slog, stranger.log_tail()
        assert "proved itself" not in slog, stranger.log_tail()
        # The trio refused its connections.
        assert any(refused(metrics(a)) > 0 for a in rest.values())
    finally:
        assert stranger.terminate() == 0, stranger.log_tail()
        for mark in SANITIZER_MARKS:
            assert mark not in stranger.log_text(), stranger.log_tail()
    # The real member comes back and follows the same leader.
    victim.start()
    lid, t2 = settled_leader(maddrs, timeout=15)
    assert lid == leader and t2 == term, (lid, t2, leader, term)


def test_transport_loop(build_dir):
    """coordinator/transport.c on one loop over 127.0.0.1 (C, cmocka)."""
    exe = os.path.join(build_dir, "tests", "transport_loop")
    assert os.access(exe, os.X_OK), exe
    p = subprocess.run([exe], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out
    assert "FAILED" not in out, out

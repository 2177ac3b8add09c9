"""The coordinator API authenticates every caller first (docs/protocol.md,
"Authentication"; docs/security.md): real `coord` processes, callers with
no credential, a wrong one, and a data node's, and a real data node with
another cluster's secret.
"""

import os
import time

import pytest

from cluster_harness import DataNode
from narf_harness import (Conn, HarnessError, coordping, leader_map,
                          node_key_text, role_key, wait_for, wait_leader)

# Every op of the API, each with a request that would change something (or
# read something) if it ran.
OPS = [
    {"op": "ping"},
    {"op": "map"},
    {"op": "status"},
    {"op": "coords"},
    {"op": "join", "addr": "127.0.0.1:1", "boot_id": "stranger"},
    {"op": "heartbeat", "node": 1, "boot_id": "x", "epoch": 1},
    {"op": "leave", "node": 1},
    {"op": "settings", "replication": 1, "node_timeout_ms": 400},
    {"op": "isr", "node": 1, "boot_id": "x", "drop": {"peer": 2,
                                                       "slots": [[0, 9]]}},
    {"op": "handoff", "node": 1, "boot_id": "x", "slots": [[0, 9]]},
    {"op": "coord_add", "id": 9, "raft": "127.0.0.1:1", "api": "127.0.0.1:2"},
    {"op": "coord_remove", "id": 2},
    {"op": "coord_replace", "old": 2, "raft": "127.0.0.1:1",
     "api": "127.0.0.1:2"},
]


def snapshot(trio):
    """What an op could have changed: the map (nodes, settings, epoch) and
    the coordinators."""
    m = leader_map(trio)
    with Conn(wait_leader(trio)[0].api) as c:
        coords = c.request({"op": "coords"})
    return m, coords.get("coords")


def stranger(addr, timeout=3.0):
    return Conn(addr, timeout=timeout, role=None)


def test_every_op_refused_without_a_proof(trio):
    """From a connection that has not proven anything, every op gets
    auth_failed and the connection is closed, on the leader and on a
    follower, and none of them changed anything."""
    leader, _ = wait_leader(trio)
    before = snapshot(trio)
    targets = [leader] + [c for c in trio.coords if c is not leader][:1]
    for member in targets:
        for req in OPS:
            with stranger(member.api) as c:
                rep = c.request(req)
                assert rep == {"ok": False, "error": "auth_failed",
                               "message": rep["message"]}, (req, rep)
                assert c.at_eof(), req
    time.sleep(0.3)
    assert snapshot(trio) == before


def test_a_wrong_secret_is_refused_both_ways(trio):
    """A caller with another cluster's secret finds that the coordinator
    cannot prove ours (so it sends nothing further), and a caller that
    sends a made-up proof anyway is refused and closed."""
    leader, _ = wait_leader(trio)
    other = role_key("operator", b"another cluster's secret, long enough")
    with pytest.raises(HarnessError, match="failed to prove"):
        Conn(leader.api, role="operator", key=other)
    with stranger(leader.api) as c:
        rep = c.request({"op": "auth", "role": "operator", "id": 0,
                         "nonce": os.urandom(16).hex()})
        assert rep["ok"] is True and len(rep["proof"]) == 64, rep
        rep = c.request({"op": "auth", "proof": "00" * 32})
        assert rep["error"] == "auth_failed", rep
        assert c.at_eof()
    # A coordinator role is never spoken on the API; an unknown role and a
    # malformed nonce are refused before any proof.
    for hello in ({"op": "auth", "role": "coord", "nonce": "00" * 16},
                  {"op": "auth", "role": "root", "nonce": "00" * 16},
                  {"op": "auth", "role": "node", "nonce": "zz" * 16},
                  {"op": "auth", "role": "node", "nonce": "00" * 15}):
        with stranger(leader.api) as c:
            assert c.request(hello)["error"] == "auth_failed", hello
            assert c.at_eof()
    # The proven connections of others go on: a good caller still works.
    with Conn(leader.api) as c:
        assert c.request({"op": "ping"})["ok"] is True


def test_node_key_cannot_do_operator_ops(trio):
    """A data node's credential (the node key) joins, heartbeats and reads
    the map, but settings and coordinator changes are denied, and it may
    make only itself leave."""
    leader, _ = wait_leader(trio)
    node_key = bytes.fromhex(node_key_text()[5:])
    wait_for(lambda: leader_map(trio), 10.0, 0.1, "the leader is ready")
    with Conn(leader.api, role="node", key=node_key) as c:
        boot = "auth-test-node"
        rep = c.request({"op": "join", "addr": "127.0.0.1:9",
                         "boot_id": boot})
        assert rep["ok"] is True, rep
        me = rep["node"]
        assert c.request({"op": "map"})["ok"] is True
        for req in ({"op": "settings", "replication": 1},
                    {"op": "settings"},
                    {"op": "coord_remove", "id": 2},
                    {"op": "coord_add", "id": 9, "raft": "127.0.0.1:1",
                     "api": "127.0.0.1:2"}):
            rep = c.request(req)
            assert rep["error"] == "denied", (req, rep)
        other = c.request({"op": "join", "addr": "127.0.0.1:8",
                           "boot_id": "other"})["node"]
        rep = c.request({"op": "leave", "node": other})
        assert rep["error"] == "denied", rep
        rep = c.request({"op": "leave", "node": other, "boot_id": boot})
        assert rep["error"] == "denied", rep
        rep = c.request({"op": "leave", "node": me, "boot_id": boot})
        assert rep["ok"] is True, rep
    nodes = {n["id"]: n["state"] for n in leader_map(trio)["nodes"]}
    assert nodes[other] in ("joining", "up"), nodes
    assert nodes[me] in ("leaving", "removed"), nodes


def test_pre_auth_limits_close_the_connection(trio):
    """Before the proof: a line over 512 bytes, or silence (nothing, or
    bytes that never end a line) for 2 s, closes the connection."""
    leader, _ = wait_leader(trio)
    with stranger(leader.api) as c:
        c.send_raw(b'{"op":"auth","pad":"' + b"a" * 600 + b'"}\n')
        assert c.at_eof(3.0)
    for data in (b"", b'{"op":"au'):
        with stranger(leader.api, timeout=6.0) as c:
            t0 = time.monotonic()
            c.send_raw(data)
            for _ in range(4):  # trickle, never a newline
                time.sleep(0.3)
                try:
                    c.send_raw(b" ")
                except OSError:
                    break
            assert c.at_eof(5.0), data
            waited = time.monotonic() - t0
            assert 1.5 <= waited < 5.0, (data, waited)


def test_failures_are_logged_at_a_bounded_rate(trio):
    """Refused callers are logged with their address, at most about once a
    second however many there are."""
    leader, _ = wait_leader(trio)
    for _ in range(20):
        with stranger(leader.api) as c:
            c.request({"op": "ping"})
    text = open(leader.log_path, errors="replace").read()
    lines = [ln for ln in text.splitlines()
             if "authentication failed" in ln]
    assert lines and "127.0.0.1:" in lines[0], lines[:3]
    # 20 failures within a second or two: at most a few lines.
    assert len(lines) <= 4, lines


def test_coordping_speaks_the_exchange(trio, monkeypatch):
    """scripts/lib/coordping.py (cluster.sh's and bench.sh's client) proves
    NARF_SECRET_FILE's credential, and a node key file proves the node
    role."""
    leader, _ = wait_leader(trio)
    assert coordping.ping(leader.api)["reachable"] is True
    monkeypatch.delenv("NARF_SECRET_FILE")
    conn = coordping.Conn(leader.api)
    try:
        assert conn.request({"op": "ping"})["error"] == "auth_failed"
    finally:
        conn.close()


def test_node_with_another_secret_never_gets_slots(make_cluster,
                                                   build_dir, tmp_path):
    """A real data node started with another cluster's secret is refused
    by every coordinator: it never joins, never gets a slot, and says why
    in its log; the cluster goes on serving."""
    c = make_cluster(nodes=2)
    bad = tmp_path / "other.secret"
    bad.write_text("another cluster's secret, long enough\n")
    os.chmod(str(bad), 0o600)
    n = DataNode(build_dir, tmp_path, c.trio.apis, "stranger",
                 extra_args=["--cluster-secret-file", str(bad)])
    c.nodes.append(n)
    n.start()
    n.wait_listening()

    def refused():
        return "coordinator" in n.log_text() and \
            "prove the cluster secret" in n.log_text()
    wait_for(refused, 10.0, 0.2, "the stranger logs the refusal")
    time.sleep(1.0)
    m = c.map()
    assert all(x["addr"] != n.addr for x in m["nodes"]), m["nodes"]
    assert n.alive()
    # The cluster goes on: both real nodes up, every slot served.
    c.wait_ready(10.0, expect_up=c.nodes[:2])


def test_a_flood_of_silent_connections_does_not_lock_callers_out(trio):
    """200 connections that never prove anything: past 128 each new one
    pushes out the oldest, so a caller with the secret still gets in
    (within its 2 s timeout), and the flood's first connections are
    closed."""
    leader, _ = wait_leader(trio)
    flood = []
    try:
        for _ in range(200):
            flood.append(stranger(leader.api))
        with Conn(leader.api) as c:
            assert c.request({"op": "ping"})["ok"] is True
        assert flood[0].at_eof(1.0)
        # The newest are still open (within their 2 s to prove).
        assert not flood[-1].at_eof(0.2)
    finally:
        for s in flood:
            s.close()


def test_secret_rotation_on_sighup(make_trio, tmp_path, monkeypatch):
    """Rotating the secret (docs/security.md) with SIGHUP: [old], then
    [old, new], [new, old] and [new] on every member. Callers with the old
    secret get in until the last stage and callers with the new one from
    the second on; the leader never changes; a file that does not parse
    is refused and the secret in use kept."""
    import signal
    old, new = b"the old secret of this trio", b"the new secret of this trio"
    f = tmp_path / "rotating.secret"
    f.write_bytes(old + b"\n")
    os.chmod(str(f), 0o600)
    arg = ["--cluster-secret-file", str(f)]
    # The harness's own calls prove the file's first line.
    monkeypatch.setenv("NARF_SECRET_FILE", str(f))
    trio = make_trio(coord_args={i: arg for i in (1, 2, 3)})
    leader, pings = wait_leader(trio)
    term = pings[leader.id]["term"]

    def hup(text):
        f.write_bytes(text)
        for c in trio.coords:
            c.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)

    def gets_in(secret):
        try:
            with Conn(leader.api, key=role_key("operator", secret)) as c:
                return c.request({"op": "ping"})["ok"] is True
        except HarnessError:
            return False

    assert gets_in(old) and not gets_in(new)
    hup(old + b"\n" + new + b"\n")
    assert gets_in(old)
    hup(new + b"\n" + old + b"\n")
    assert gets_in(new)
    hup(new + b"\n")
    assert gets_in(new) and not gets_in(old)
    hup(b"short\n")  # refused: the new secret stays
    assert gets_in(new)
    assert "keeping the secret in use" in open(leader.log_path).read()
    f.write_bytes(new + b"\n")  # what the harness's own calls prove
    again, pings = wait_leader(trio)
    assert again.id == leader.id and pings[leader.id]["term"] == term

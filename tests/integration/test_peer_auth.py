"""Peer links prove the node role (DESIGN.md "Security"; docs/protocol.md,
"Opening a link"): NARF.AUTH's challenge-response, the NARF.* commands
refused on any connection that has not proven it, and the peer links'
own connection budget beyond --max-clients.

The standalone tests run one `datanode --standalone` (which takes peer
links only when it holds a node key: --cluster-secret-file) and play the
peer from Python (peer_auth.py). The cluster tests at the end run real
coordinators and `datanode --join` processes.
"""
import os
import subprocess
import time

import pytest

import cluster_harness as ch
from dn_fixtures import datanode_binary, make_server  # noqa: F401
from dn_harness import Closed, Err, RawConn, wait_until
from narf_harness import SECRET, expand_slots, node_key_text, secret_file
from peer_auth import (StrangerError, first_step, node_key, peer_conn,
                       proof, prove)

NOPERM = Err("NOPERM this is a cluster-internal command (a peer link "
             "proves the node role with NARF.AUTH first)")
MAXCLIENTS = Err("ERR max number of clients reached")
OTHER_SECRET = b"not-the-suite-secret-but-long-enough"
READY_WAIT = 60.0


def write_secret(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text + b"\n")
    os.chmod(path, 0o600)
    return str(path)


def keyed(make_server, *extra, secret=None, **opts):
    """A standalone narf node holding the suite's secret (or the file
    `secret`), so it takes peer links."""
    args = ["--cluster-secret-file", secret or secret_file()] + list(extra)
    return make_server("narf", extra_args=args, **opts)


def info(conn, section):
    text = conn.cmd("INFO", section).decode()
    return dict(line.split(":", 1) for line in text.split("\r\n")
                if ":" in line)


def internal_commands_refused(conn, key):
    """Every NARF.* stream command on conn is refused and changes
    nothing."""
    assert conn.cmd("NARF.SET", 0, key, "v", 0) == NOPERM
    assert conn.cmd("NARF.DEL", 0, key) == NOPERM
    assert conn.cmd("NARF.SYNC", 1, 0) == NOPERM
    assert conn.cmd("NARF.SYNCED", 1, 0) == NOPERM
    assert conn.cmd("NARF.SET", 0, key) == NOPERM  # refused before arity
    assert isinstance(conn.cmd("NARF.HELLO", 1, "secret"), Err)  # gone


# ---------------------------------------------------------------------------
# Standalone


def test_internal_commands_refused_without_keys(make_server):
    """A standalone node without a node key refuses NARF.SET / NARF.DEL /
    NARF.SYNC from any connection, with or without a password, and they
    change nothing; its NARF.AUTH refuses every peer and closes."""
    s = make_server("narf")
    with s.raw() as c:
        assert c.cmd("SET", "kept", "1") == "OK"
        internal_commands_refused(c, "k")
        internal_commands_refused(c, "kept")
        assert c.cmd("GET", "k") is None
        assert c.cmd("GET", "kept") == b"1"
        assert c.cmd("DBSIZE") == 1
    with s.raw() as c:
        assert prove(c, 3, check_server=False) == Err(
            "NOPERM NARF.AUTH: this node takes no peer links (it holds no "
            "node key: --cluster-secret-file)")
        assert c.at_eof(3.0)
    p = make_server("narf", password="pw")
    with p.raw() as c:  # AUTHed as a client: still no peer
        internal_commands_refused(c, "k")
        assert c.cmd("DBSIZE") == 0


def test_peer_proves_then_runs_internal_commands(make_server):
    """With a node key the node refuses internal commands until NARF.AUTH
    proved the node role (password or not), then runs them; a peer needs
    no AUTH; the node's own proof checks out on our side."""
    s = keyed(make_server, password="pw")
    with s.raw(auth=False) as c:
        assert c.cmd("NARF.SET", 0, "k", "v", 0) == NOPERM
        assert c.cmd("GET", "k") == Err("NOAUTH Authentication required.")
        assert prove(c, 12) == "OK"
        assert c.cmd("NARF.SET", 0, "k", "v", 0) == "OK"
        assert c.cmd("GET", "k") == b"v"
        assert c.cmd("NARF.DEL", 0, "k") == "OK"
        assert c.cmd("EXISTS", "k") == 0
        assert info(c, "clients")["connected_peer_links"] == "1"
        # Once is enough; a second NARF.AUTH does not undo it.
        assert isinstance(c.cmd("NARF.AUTH", "00"), Err)
        assert c.cmd("PING") == "PONG"
    with s.raw() as c:  # a client's AUTH is no peer's proof
        internal_commands_refused(c, "k")


def test_node_key_file(make_server, tmp_path):
    """A node holding only the node key ("node:<hex>") and a dialer holding
    the secret prove the node role to each other."""
    path = write_secret(tmp_path, "node.key", node_key_text().encode())
    s = keyed(make_server, secret=path)
    with s.raw() as c:
        assert prove(c, 5, key=node_key(SECRET)) == "OK"
        assert c.cmd("NARF.SET", 0, "nk", "1", 0) == "OK"
    assert node_key_text() not in s.log_text()


def test_wrong_proof_refused_and_closed(make_server):
    """NARF.AUTH with a wrong proof is refused and the connection closed;
    the failure is counted (INFO, metrics) and logged at WARN with the
    address, at most about a line a second however many fail."""
    s = keyed(make_server)
    t0 = time.monotonic()
    with s.raw() as c:
        nonce_c, rep = first_step(c, 4)
        assert isinstance(rep, list) and len(rep) == 2, rep
        assert c.cmd("NARF.AUTH", "00" * 32) == Err(
            "NOPERM NARF.AUTH: wrong proof")
        assert c.at_eof(3.0)
    # The proof of another key, over the right transcript.
    with s.raw() as c:
        nonce_c, rep = first_step(c, 4)
        nonce_s = bytes.fromhex(rep[0].decode())
        bad = proof(node_key(OTHER_SECRET), 4, nonce_c, nonce_s)
        assert c.cmd("NARF.AUTH", bad.hex()) == Err(
            "NOPERM NARF.AUTH: wrong proof")
        assert c.at_eof(3.0)
    # A proof made for another claimed id is as wrong.
    with s.raw() as c:
        nonce_c, rep = first_step(c, 4)
        nonce_s = bytes.fromhex(rep[0].decode())
        other = proof(node_key(), 5, nonce_c, nonce_s)
        assert c.cmd("NARF.AUTH", other.hex()) == Err(
            "NOPERM NARF.AUTH: wrong proof")
    # A flood of failures: all counted, few lines.
    for i in range(30):
        with s.raw() as c:
            assert c.cmd("NARF.AUTH", "00" * 32) == Err(
                "NOPERM NARF.AUTH: a proof without NARF.AUTH <node id> "
                "<nonce> first")
    elapsed = time.monotonic() - t0
    with s.raw() as c:
        assert int(info(c, "stats")["peer_auth_failures"]) == 33
        internal_commands_refused(c, "k")
    lines = [ln for ln in s.log_text().splitlines()
             if "NARF.AUTH failed" in ln]
    assert any("(127.0.0.1:" in ln and "claiming node 4: wrong proof" in ln
               for ln in lines), lines
    # At most a line a second, and a count of the rest now and then.
    assert len(lines) <= 2 * elapsed + 3, lines
    assert all(" WARN " in ln or '"warn"' in ln for ln in lines), lines


def test_stranger_node_fails_its_proof(make_server, tmp_path):
    """A node holding another cluster's secret cannot prove the node key:
    the dialer refuses it before sending a proof of its own."""
    path = write_secret(tmp_path, "other.secret", OTHER_SECRET)
    s = keyed(make_server, secret=path)
    with s.raw() as c:
        with pytest.raises(StrangerError):
            prove(c, 2)
    assert OTHER_SECRET.decode() not in s.log_text()


def test_secrets_never_from_the_environment(make_server, tmp_path):
    """NARF_REQUIREPASS and NARF_CLUSTER_SECRET in a data node's
    environment are ignored: no password is set, no node key held, and
    --join still needs --cluster-secret-file."""
    env = dict(os.environ, NARF_REQUIREPASS="envpass",
               NARF_CLUSTER_SECRET=SECRET.decode())
    binary = datanode_binary()
    out = subprocess.run([binary, "--join", "127.0.0.1:1"],
                         capture_output=True, text=True, timeout=10, env=env,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 2, out
    assert "--cluster-secret-file" in out.stderr
    s = make_server("narf")
    s.stop()
    s.env.update(NARF_REQUIREPASS="envpass",
                 NARF_CLUSTER_SECRET=SECRET.decode())
    s.start()
    with s.raw() as c:
        assert c.cmd("PING") == "PONG"  # no password came from env
        assert prove(c, 3, check_server=False) == Err(
            "NOPERM NARF.AUTH: this node takes no peer links (it holds no "
            "node key: --cluster-secret-file)")
    help_text = subprocess.run([binary, "--help"], capture_output=True,
                               text=True, timeout=10).stdout
    assert "NARF_REQUIREPASS" not in help_text
    assert "NARF_CLUSTER_SECRET" not in help_text
    assert "node:" in help_text and "--max-peer-links" in help_text


def test_peer_reserve_beyond_max_clients(make_server):
    """Idle clients filling --max-clients do not keep a peer out: beyond
    it a connection may still prove the node role (the peer reserve, up to
    --max-peer-links), while a client there gets Redis's error on its first
    command, or after 2 s if it says nothing, and is closed. Proven peers
    do not take client places."""
    s = keyed(make_server, "--max-peer-links", "2", max_clients=4)
    clients, peers = [], []
    try:
        for i in range(4):
            c = s.raw()
            assert c.cmd("PING") == "PONG"
            clients.append(c)
        with s.raw() as extra:  # a client beyond --max-clients
            assert extra.cmd("PING") == MAXCLIENTS
            assert extra.at_eof(3.0)
        peers.append(peer_conn(s.raw(), 21))
        assert peers[0].cmd("NARF.SET", 0, "pk", "1", 0) == "OK"
        st = info(peers[0], "clients")
        assert (st["connected_clients"], st["connected_peer_links"],
                st["max_peer_links"]) == ("4", "1", "2"), st
        # One reserve place left: a silent connection holds it 2 s.
        t0 = time.monotonic()
        with s.raw() as silent:
            assert silent.read(timeout=5) == MAXCLIENTS
            waited = time.monotonic() - t0
            assert silent.at_eof(3.0)
        assert 1.5 <= waited <= 4.0, waited
        peers.append(peer_conn(s.raw(), 22))
        # Both budgets full: refused at once.
        with s.raw() as late:
            assert late.read(timeout=2) == MAXCLIENTS
            assert late.at_eof(3.0)
        # A client place freed is a client's again, peers notwithstanding.
        clients.pop().close()

        def fresh_client():
            c = s.raw()
            try:
                if c.cmd("PING") == "PONG":
                    return c
            except (Closed, OSError):
                pass
            c.close()
            return None
        clients.append(wait_until(fresh_client, 5, interval=0.1,
                                  what="a freed client place"))
        assert clients[-1].cmd("GET", "pk") == b"1"
        st = info(clients[-1], "stats")
        assert int(st["rejected_connections"]) >= 3, st
    finally:
        for c in clients + peers:
            c.close()


# ---------------------------------------------------------------------------
# Clusters (coordinators and `datanode --join`)


def test_wrong_secret_node_cannot_replicate(make_cluster, tmp_path):
    """A data node started with another cluster's secret gets no copy of
    anything: its peer links are refused both ways (neither side proves
    the node key to the other), so it is never synced into an ISR and the
    writes acknowledged meanwhile never reach it; the others go on
    serving. (Once the coordinators check the API's auth it is refused
    there first; either way it never holds the cluster's data.)"""
    c = make_cluster(nodes=2)
    bad_secret = write_secret(tmp_path, "wrong.secret", OTHER_SECRET)
    bad = ch.DataNode(c.build, tmp_path, c.trio.apis, "wrong",
                      extra_args=["--cluster-secret-file", bad_secret])
    c.nodes.append(bad)  # stopped with the others
    bad.start()
    bad.wait_listening()
    keys = ["w:%d" % i for i in range(60)]
    r = ch.Router(c.seeds())
    try:
        for k in keys:
            rep, _ = r.call(k, "SET", k, "v")
            assert rep == "OK", rep
    finally:
        r.close()
    # Long enough for the leader to place copies on it and the primaries
    # to try syncing them: it never holds one in sync.
    in_map = False
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        m = c.map()
        ids = {n["id"] for n in m["nodes"] if n["addr"] == bad.addr}
        in_map = in_map or bool(ids)
        for prim, reps, isr in expand_slots(m):
            assert not (ids & set(isr)) and prim not in ids, \
                "the wrong-secret node holds an in-sync copy"
        time.sleep(0.5)
    if in_map:
        # Registered: the primaries' links to it were refused; and its own
        # links (here a proxy link, for a write it does not lead) are
        # refused the other way: the write fails, nothing changes.
        assert "did not prove the node key" in "".join(
            n.log_text() for n in c.nodes[:2])
        with RawConn(bad.port, timeout=10) as w:
            rep = w.cmd("SET", keys[0], "from-the-stranger")
        assert rep != "OK", rep
        wait_until(lambda: "did not prove the node key" in bad.log_text(),
                   5, what="the wrong-secret node refusing its peers")
    r = ch.Router(c.seeds())
    try:
        for k in keys:
            rep, _ = r.call(k, "GET", k)
            assert rep == b"v", (k, rep)
    finally:
        r.close()
    logs = "".join(n.log_text() for n in c.nodes)
    with RawConn(bad.port, timeout=10) as q:
        assert q.cmd("DBSIZE") == 0  # not one key reached it
    assert OTHER_SECRET.decode() not in logs
    assert SECRET.decode() not in logs


def test_max_clients_flood_leaves_peer_links(make_cluster):
    """Idle client connections filling one node's --max-clients do not
    keep the other nodes' links out: a request proxied to it over a link
    opened after the flood, and writes replicated to it, still
    succeed."""
    c = make_cluster(nodes=3, node_args={1: ["--max-clients", "6"]})
    m = c.map()
    full = c.nodes[1]
    led = ch.keys_in(c.slots_of(m, full, "primary"), 20, prefix="fl:")
    flood = []
    try:
        while len(flood) < 20:
            conn = RawConn(full.port, timeout=5)
            try:
                if conn.cmd("PING") != "PONG":
                    conn.close()
                    break
            except (Closed, OSError):
                conn.close()
                break
            flood.append(conn)
        assert len(flood) <= 6, "--max-clients 6 let %d in" % len(flood)
        # Keys the full node leads, set through another node: proxied
        # over a link the full node accepts into its peer reserve.
        with RawConn(c.nodes[0].port, timeout=10) as w:
            for k in led:
                assert w.cmd("SET", k, "x") == "OK"
            assert w.cmd("GET", led[0]) == b"x"
        # A peer's view of the full node: its peer links are counted
        # apart from the clients.
        with RawConn(full.port, timeout=5) as p:
            peer_conn(p, 4000)
            st = info(p, "clients")
            assert len(flood) <= int(st["connected_clients"]) <= 6, st
            assert int(st["connected_peer_links"]) >= 2, st
            assert p.cmd("GET", led[0]) == b"x"
    finally:
        for conn in flood:
            conn.close()

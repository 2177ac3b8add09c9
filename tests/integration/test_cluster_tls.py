"""TLS on a cluster's internal links (--tls-cluster yes; docs/security.md,
"TLS"): peer links between data nodes and the data nodes' calls to the
coordinators go over TLS, and the map has every node at its TLS port.

The cluster tests run every process with --tls-cluster yes (the
coordinators' API and Raft ports then speak TLS only and want a client
certificate from the CA). They are skipped while `coord` has no
--tls-cluster flag (the coordinator side is a separate change). The
standalone tests need no coordinator: a data node's TLS port takes peer
links (NARF.AUTH over TLS) like its plain one, and the flag's checks.

Certificates (openssl CLI, once per module): a CA; a certificate for
127.0.0.1 without an extendedKeyUsage, which every process presents both
as a server and as a client; the harness's client certificate; and the
same set from a second CA the cluster does not trust.

Run: NARF_BUILD=$PWD/build /usr/bin/python3 -m pytest -q \\
     tests/integration/test_cluster_tls.py
"""

import os
import shutil
import signal
import subprocess
import time

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

import cluster_harness as ch
from dn_fixtures import datanode_binary, make_server  # noqa: F401
from dn_harness import Closed, Err, wait_until
from narf_harness import HOST, call_leader, secret_file, tls_flags
from peer_auth import peer_conn, prove
from test_datanode_tls import TLSDataNode, TLSRaw, make_ca, make_cert

READY_WAIT = 90.0


# ---------------------------------------------------------------------------
# Certificates


def tls_set(root, name, ca):
    """A tls_dir (narf_harness) signed by CA `ca` (made in root)."""
    d = os.path.join(root, name)
    os.makedirs(d)
    make_cert(root, ca, name + "-server", "narf " + name, server=True)
    make_cert(root, ca, name + "-client", "narf harness " + name)
    for src, dst in ((ca + ".crt", "ca.crt"),
                     (name + "-server.crt", "server.crt"),
                     (name + "-server.key", "server.key"),
                     (name + "-client.crt", "client.crt"),
                     (name + "-client.key", "client.key")):
        shutil.copy(os.path.join(root, src), os.path.join(d, dst))
    return d


class Certs:
    def __init__(self, root):
        root = str(root)
        make_ca(root, "ca")
        make_ca(root, "rogue")
        self.good = tls_set(root, "good", "ca")
        self.rogue = tls_set(root, "foreign", "rogue")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    try:
        return Certs(tmp_path_factory.mktemp("clustercerts"))
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip("cannot make certificates with openssl: %s" % e)


def coord_has_tls(build):
    out = subprocess.run([os.path.join(build, "coordinator", "coord"),
                          "--help"], capture_output=True, text=True,
                         timeout=10)
    return "--tls-cluster" in out.stdout


@pytest.fixture
def tls_cluster(make_cluster, build_dir, certs):
    """make_cluster with --tls-cluster yes on every process."""
    if not coord_has_tls(build_dir):
        pytest.skip("coord has no --tls-cluster yet (the coordinator side "
                    "of TLS is a separate change)")

    def make(nodes=3, **kw):
        return make_cluster(nodes=nodes, tls_dir=certs.good, **kw)
    return make


def cluster_client(c, certs):
    """redis-py's cluster client over TLS, seeded with the TLS ports."""
    d = certs.good
    return RedisCluster(
        startup_nodes=[ClusterNode(HOST, n.tls_port) for n in c.nodes
                       if n.alive()],
        ssl=True, ssl_ca_certs=os.path.join(d, "ca.crt"),
        ssl_certfile=os.path.join(d, "client.crt"),
        ssl_keyfile=os.path.join(d, "client.key"),
        ssl_cert_reqs="required", ssl_check_hostname=False,
        socket_timeout=5, socket_connect_timeout=5)


def tls_node_client(node, certs):
    """redis-py on one node's TLS port."""
    d = certs.good
    return redis.Redis(host=HOST, port=node.tls_port, ssl=True,
                       ssl_ca_certs=os.path.join(d, "ca.crt"),
                       ssl_certfile=os.path.join(d, "client.crt"),
                       ssl_keyfile=os.path.join(d, "client.key"),
                       ssl_cert_reqs="required", ssl_check_hostname=False,
                       socket_timeout=5, socket_connect_timeout=5)


# ---------------------------------------------------------------------------
# The flag


def run_datanode(*args):
    return subprocess.run([datanode_binary()] + list(args),
                          capture_output=True, text=True, timeout=10)


def test_tls_cluster_flag_needs_everything(certs):
    """--tls-cluster yes without --join, --tls-port or any of the three
    files is a usage error (exit 2) that names what is missing; a value
    other than yes or no too."""
    d = certs.good
    full = ["--join", "127.0.0.1:1", "--cluster-secret-file", secret_file(),
            "--tls-port", "1"] + tls_flags(d)
    for drop in ("--join", "--tls-port", "--tls-cert-file", "--tls-key-file",
                 "--tls-ca-cert-file"):
        i = full.index(drop)
        argv = full[:i] + full[i + 2:]
        if drop == "--join":
            argv.remove("--cluster-secret-file")
            argv.remove(secret_file())
        out = run_datanode(*argv)
        assert out.returncode == 2, (drop, out.stderr)
        assert "--tls-cluster yes needs --join, --tls-port" in out.stderr
    out = run_datanode("--tls-cluster", "maybe")
    assert out.returncode == 2
    assert "--tls-cluster 'maybe': expected yes or no" in out.stderr
    assert "--tls-cluster yes|no" in run_datanode("--help").stdout


def test_tls_cluster_port_0_tls_address_and_reload(tmp_path, certs):
    """With --tls-cluster yes, --join may go with --port 0 (no plain port:
    peer links use TLS); the node joins as host:tls_port and calls the
    coordinators through TLS (here nobody listens). SIGHUP reloads the TLS
    port's context and the internal links' client context; a key that no
    longer loads keeps both in use, logged, and the node runs on."""
    tls_port = ch.PORTS.take(1)[0]
    log = tmp_path / "n.log"
    files = {}
    for name in ("server.crt", "server.key"):
        files[name] = str(tmp_path / name)
        shutil.copy(os.path.join(certs.good, name), files[name])
    argv = [datanode_binary(), "--port", "0", "--join", "127.0.0.1:1",
            "--cluster-secret-file", secret_file(), "--tls-port",
            str(tls_port), "--log-level", "debug", "--tls-cluster", "yes",
            "--tls-cert-file", files["server.crt"], "--tls-key-file",
            files["server.key"], "--tls-ca-cert-file",
            os.path.join(certs.good, "ca.crt")]
    with open(log, "wb") as f:
        p = subprocess.Popen(argv, stdout=f, stderr=f)
    try:
        wait_until(lambda: "as 127.0.0.1:%d" % tls_port in log.read_text(),
                   10, what="the join line")
        wait_until(lambda: "cannot reach 127.0.0.1:1 over TLS" in
                   log.read_text(), 10, what="a TLS dial")
        p.send_signal(signal.SIGHUP)
        wait_until(lambda: "TLS cluster (outgoing links) reload: new "
                   "connections get" in log.read_text(), 10,
                   what="the client context reloaded")
        assert "INFO  datanode TLS reload: new connections get" in \
            log.read_text()
        with open(files["server.key"], "w") as f:
            f.write("not a key\n")
        p.send_signal(signal.SIGHUP)
        wait_until(lambda: log.read_text().count(
            "new connections keep the certificate in use") == 2, 10,
            what="both reloads refused")
        assert "ERROR datanode TLS cluster (outgoing links) reload: " in \
            log.read_text()
        assert p.poll() is None
    finally:
        p.terminate()
        p.wait(timeout=10)


# ---------------------------------------------------------------------------
# Peer links on the TLS port (no coordinator needed)


def keyed_tls(make_server, certs, **opts):
    """A standalone node with the node key and a TLS port (CA: good)."""
    d = certs.good
    s = TLSDataNode(datanode_binary(), make_server.tmp_path,
                    "tls%d" % len(make_server.made),
                    extra_args=["--cluster-secret-file", secret_file()],
                    **opts)
    s.setup_tls(_Certs(d))
    make_server.made.append(s)
    s.start()
    return s


class _Certs:
    """test_datanode_tls's Certs shape over a tls_dir (same file names)."""

    def __init__(self, d):
        self.dir = d

    def path(self, name):
        return os.path.join(self.dir, name)


def test_peer_link_over_tls_port(make_server, certs):
    """A peer link on the TLS port, presenting a node's certificate (the
    server one, as --tls-cluster does), proves NARF.AUTH both ways and
    runs the stream's commands; it counts as a peer link as on the plain
    port."""
    s = keyed_tls(make_server, certs)
    with TLSRaw(s.tls_port, s.tls_context(cert="server")) as c:
        peer_conn(c, 31)
        assert c.cmd("NARF.SET", 0, "k", "v", 0) == "OK"
        text = c.cmd("INFO", "clients").decode()
        assert "connected_peer_links:1" in text, text
    assert s.client().get("k") == b"v"


def test_peer_reserve_on_tls_port(make_server, certs):
    """Beyond --max-clients a TLS connection may still prove the node role
    (the peer reserve counts the TLS port as the plain one), and a client
    there is refused."""
    s = keyed_tls(make_server, certs, max_clients=2)
    clients = []
    try:
        for _ in range(2):
            c = s.raw()
            assert c.cmd("PING") == "PONG"
            clients.append(c)
        with TLSRaw(s.tls_port, s.tls_context(cert="server")) as p:
            peer_conn(p, 32)
            assert p.cmd("NARF.SET", 0, "pk", "1", 0) == "OK"
        with TLSRaw(s.tls_port, s.tls_context()) as extra:
            assert extra.cmd("PING") == Err(
                "ERR max number of clients reached")
    finally:
        for c in clients:
            c.close()


def test_peer_with_foreign_certificate_refused(make_server, certs):
    """A would-be peer whose certificate is from another CA never gets to
    NARF.AUTH on the TLS port: the handshake fails, counted."""
    s = keyed_tls(make_server, certs)
    rogue = _Certs(certs.rogue)

    def attempt():
        ctx = s.tls_context(cert=None)
        ctx.load_cert_chain(rogue.path("server.crt"),
                            rogue.path("server.key"))
        with TLSRaw(s.tls_port, ctx) as c:
            prove(c, 33)
    with pytest.raises((OSError, Closed)):
        attempt()
    wait_until(lambda: "TLS handshake failed" in s.log_text(), 5,
               what="the handshake failure logged")


# ---------------------------------------------------------------------------
# Clusters (every process with --tls-cluster yes)


def acked_writes(rc, prefix, n):
    ok = {}
    for i in range(n):
        k = "%s%d" % (prefix, i)
        try:
            if rc.set(k, "v%d" % i):
                ok[k] = b"v%d" % i
        except redis.exceptions.RedisError:
            pass
    return ok


@pytest.mark.xdist_group("cluster_tls")
def test_tls_cluster_writes_replicate_and_fail_over(tls_cluster, certs):
    """A 3-node TLS cluster: the map has every node at its TLS port, clients
    write through redis-py's TLS cluster client, and after a primary's
    SIGKILL the replicas (filled over TLS peer links) take over with no
    acknowledged write lost."""
    c = tls_cluster(nodes=3)
    m = c.map()
    assert sorted(n["addr"] for n in m["nodes"]) == sorted(
        d.addr for d in c.nodes)
    assert all(d.addr.endswith(":%d" % d.tls_port) for d in c.nodes)
    rc = cluster_client(c, certs)
    acked = acked_writes(rc, "tls:", 2000)
    assert len(acked) == 2000
    # CLUSTER SLOTS on a node's plain port names TLS ports.
    assert set(ch.slots_table(c.nodes[0].port)) <= {d.addr for d in c.nodes}
    # The replicas' links came in on the TLS ports (the map's), proven,
    # and no handshake failed.
    for d in c.nodes:
        with d.raw() as conn:
            text = conn.cmd("INFO").decode()
        assert "tls_handshake_failures:0" in text, d.name
        assert "connected_peer_links:0" not in text, d.name
    victim = c.nodes[1]
    old_id = c.current_id(m, victim.addr)
    victim.kill9()
    c.wait_down(victim, old_id, timeout=30)
    c.wait_ready(timeout=60, expect_up=[d for d in c.nodes if d.alive()])
    rc.close()
    rc = cluster_client(c, certs)
    lost = [k for k, v in acked.items() if rc.get(k) != v]
    assert lost == [], "%d acknowledged writes lost: %s" % (len(lost),
                                                            lost[:10])
    rc.close()


@pytest.mark.xdist_group("cluster_tls")
def test_tls_cluster_join_moves_data_over_tls(tls_cluster, certs):
    """A node joining a TLS cluster is given slots and their keys, moved
    to it over TLS peer links; it serves them on its TLS port."""
    c = tls_cluster(nodes=2)
    rc = cluster_client(c, certs)
    acked = acked_writes(rc, "join:", 1500)
    rc.close()
    d = ch.add_node(c)
    c.wait_ready(timeout=90, expect_up=c.nodes)
    m = c.map()
    mine = set(c.slots_of(m, d))
    assert mine, "the new node was given no primary slots"
    r = tls_node_client(d, certs)
    moved = [k for k in acked if ch.key_slot(k) in mine]
    assert moved
    assert all(r.get(k) == acked[k] for k in moved)
    r.close()


@pytest.mark.xdist_group("cluster_tls")
def test_tls_cluster_node_from_another_ca_never_joins(tls_cluster, certs):
    """A data node whose certificate (and CA) are another PKI's is never
    in the map: its calls to the coordinators fail the TLS handshake, with
    a clear line in its log."""
    c = tls_cluster(nodes=2)
    d = ch.add_node(c, name="rogue", tls_dir=certs.rogue)
    wait_until(lambda: "TLS handshake failed" in d.log_text(), 15,
               what="the rogue node's handshake failure logged")
    time.sleep(2)
    m = c.map()
    assert d.addr not in {n["addr"] for n in m["nodes"]}
    rep = call_leader(c.trio, {"op": "status"}, 5.0)
    assert rep.get("ok"), rep
    d.terminate()

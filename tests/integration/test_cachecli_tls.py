"""cachecli --tls (docs/cachecli.md, "TLS"): the data port and the
coordinator API over TLS, with redis-cli's flag names.

A real standalone data node serves its --tls-port; the coordinator is a
small fake here (a TLS server in this process that answers the `map`
request with a map whose one node is that TLS port), so the data path and
the coordinator client's TLS (common/jclient.c) are both exercised before
the coordinator has TLS of its own. The tests against a real `coord
--tls-cluster yes` and `scripts/cluster.sh start --tls` skip until the
coordinator takes --tls-cluster (`coord --help`), and run by themselves
after that.

Run: NARF_BUILD=$PWD/build /usr/bin/python3 -m pytest -q \\
     tests/integration/test_cachecli_tls.py
"""

import json
import os
import socket
import ssl
import subprocess
import threading

import pytest

import dn_fixtures
from dn_harness import HOST, DataNode
from narf_harness import PORTS, make_tls_dir, secret_file
from tls_certs import make_ca, make_cert

RUN_TIMEOUT = 30


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """ca/server/client, plus a CA the clients do not know with a server
    certificate of its own, and an expired server certificate."""
    d = str(tmp_path_factory.mktemp("tls"))
    try:
        make_tls_dir(d)
        make_ca(d, "rogue")
        make_cert(d, "rogue", "rogue-server", "narf rogue", server=True)
        make_cert(d, "ca", "expired", "narf expired", days="-1", server=True)
        make_cert(d, "rogue", "stranger", "narf stranger")
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip("cannot make certificates with openssl: %s" % e)
    return d


def path(certs, name):
    return os.path.join(certs, name)


# ---------------------------------------------------------------------------
# A fake coordinator over TLS: answers `map` with one node owning every slot


def one_node_map(addr, api):
    return {"epoch": 1, "next_node": 2, "next_coord": 2, "lost_slots": 0,
            "coordinators": [{"id": 1, "raft": "127.0.0.1:1", "api": api}],
            "nodes": [{"id": 1, "addr": addr, "boot_id": "a" * 32,
                       "state": "up"}],
            "slots": [{"from": 0, "to": 16383, "primary": 1, "replicas": [],
                       "isr": [], "epoch": 1}]}


class FakeCoord:
    """A TLS JSON-lines server on a fresh port (server.crt, client
    certificates required from ca.crt, as coord --tls-cluster yes)."""

    def __init__(self, certs, node_addr, cert="server", verify=True):
        self.port = PORTS.take(1)[0]
        self.api = "%s:%d" % (HOST, self.port)
        self.map = one_node_map(node_addr, self.api)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(path(certs, cert + ".crt"),
                                 path(certs, cert + ".key"))
        self.ctx.load_verify_locations(path(certs, "ca.crt"))
        self.ctx.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, self.port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.requests = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(5)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as t:
                f = t.makefile("rwb")
                for line in f:
                    req = json.loads(line)
                    self.requests.append(req)
                    if req.get("op") == "map":
                        rep = {"ok": True, "map": self.map}
                    elif req.get("op") == "status":
                        rep = {"ok": True, "status": {
                            "epoch": 1,
                            "coordinators": [{"id": 1, "api": self.api}],
                            "nodes": self.map["nodes"]}}
                    elif req.get("op") == "ping":
                        rep = {"ok": True, "role": "leader", "term": 1,
                               "id": 1}
                    else:
                        rep = {"ok": False, "error": "unknown_op"}
                    f.write(json.dumps(rep).encode() + b"\n")
                    f.flush()
        except (OSError, ValueError, ssl.SSLError):
            pass

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def fakes():
    made = []

    def make(*a, **kw):
        made.append(FakeCoord(*a, **kw))
        return made[-1]
    yield make
    for f in made:
        f.stop()


def tls_node(binary, tmp_path, certs, cert="server", auth=None):
    """A standalone data node with a TLS port beside its plain one."""
    tls_port = PORTS.take(1)[0]
    extra = ["--tls-port", str(tls_port), "--tls-cert-file",
             path(certs, cert + ".crt"), "--tls-key-file",
             path(certs, cert + ".key"), "--tls-ca-cert-file",
             path(certs, "ca.crt")]
    if auth is not None:
        extra += ["--tls-auth-clients", auth]
    n = DataNode(binary, tmp_path, extra_args=extra)
    n.tls_port = tls_port
    n.start()
    return n


def cachecli(build, coord, *args, env=None):
    e = dict(os.environ, NO_COLOR="1")
    e.pop("NARF_TLS_DIR", None)
    e.pop("NARF_SECRET_FILE", None)
    e.update(env or {})
    return subprocess.run(
        [os.path.join(build, "cli", "cachecli"), "--coord", coord,
         "--timeout", "3s"] + list(args),
        env=e, capture_output=True, text=True, timeout=RUN_TIMEOUT)


def tls_flags(certs, ca="ca", cert="client"):
    a = ["--tls", "--cacert", path(certs, ca + ".crt")]
    if cert is not None:
        a += ["--cert", path(certs, cert + ".crt"), "--key",
              path(certs, cert + ".key")]
    return a


@pytest.fixture
def datanode_binary():
    return dn_fixtures.datanode_binary()


@pytest.fixture
def node(datanode_binary, tmp_path, certs):
    n = tls_node(datanode_binary, tmp_path, certs)
    yield n
    n.stop()


# ---------------------------------------------------------------------------
# The data port and the API over TLS


def test_data_commands_over_tls(build_dir, node, certs, fakes):
    """get/set/del/ttl go over TLS to the coordinator (the map) and to the
    data node's TLS port, with redis-cli's flags and with NARF_TLS_DIR."""
    fake = fakes(certs, "%s:%d" % (HOST, node.tls_port))
    flags = tls_flags(certs)

    def ok(*args, env=None, extra=flags):
        r = cachecli(build_dir, fake.api, *(list(extra) + list(args)),
                     env=env)
        assert r.returncode == 0, r
        return r.stdout

    assert ok("set", "greeting", "hello over tls") == "OK\n"
    assert ok("get", "greeting") == "hello over tls\n"
    assert ok("ttl", "greeting") == "-1\n"
    assert ok("set", "brief", "x", "--ttl", "100") == "OK\n"
    assert 95 <= int(ok("ttl", "brief")) <= 100
    assert ok("del", "greeting", "brief", "absent") == "2\n"
    r = cachecli(build_dir, fake.api, *(flags + ["get", "greeting"]))
    assert (r.returncode, r.stdout) == (1, ""), r
    # The value really went to the node (read back on its plain port).
    assert ok("set", "k", "v") == "OK\n"
    assert node.client().get("k") == b"v"
    # NARF_TLS_DIR alone turns TLS on with its ca.crt and client.*.
    assert ok("get", "k", env={"NARF_TLS_DIR": certs}, extra=()) == "v\n"
    assert ok("keys", "*") == "k\n"
    assert any(q.get("op") == "map" for q in fake.requests)


def test_insecure_skips_the_server_check(build_dir, datanode_binary,
                                         tmp_path, certs, fakes):
    """--insecure talks to servers whose certificates it cannot verify (a
    CA it does not have); without it the same call is refused."""
    n = tls_node(datanode_binary, tmp_path, certs, cert="rogue-server")
    try:
        fake = fakes(certs, "%s:%d" % (HOST, n.tls_port),
                     cert="rogue-server")
        r = cachecli(build_dir, fake.api,
                     *(tls_flags(certs) + ["--insecure", "set", "a", "1"]))
        assert (r.returncode, r.stdout) == (0, "OK\n"), r
        r = cachecli(build_dir, fake.api, *(tls_flags(certs) + ["get", "a"]))
        assert r.returncode == 3, r
        assert "server certificate: " in r.stderr, r
    finally:
        n.stop()


def test_plain_port_with_tls_is_a_clear_error(build_dir, node, certs,
                                              fakes):
    """--tls against a data node's plain port fails at once with exit 3
    and one line that says the server does not speak TLS."""
    fake = fakes(certs, "%s:%d" % (HOST, node.port))
    r = cachecli(build_dir, fake.api, *(tls_flags(certs) + ["get", "k"]))
    assert r.returncode == 3, r
    line = r.stderr.strip().splitlines()[0]
    assert line.startswith("cachecli: get: 127.0.0.1:%d: " % node.port), r
    assert ("plain-text server" in line or "handshake" in line), r
    assert "--tls" in line, r


def test_plain_coordinator_with_tls_is_a_clear_error(build_dir, tmp_path):
    """--tls against a plain-text JSON-lines port (what a coordinator
    without TLS is) fails with a line about TLS, not a hang."""
    port = PORTS.take(1)[0]
    srv = socket.socket()
    srv.bind((HOST, port))
    srv.listen(4)
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            try:
                c.settimeout(2)
                c.recv(4096)
                c.sendall(b'{"ok":false,"error":"auth_failed"}\n')
            except OSError:
                pass
            c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        r = cachecli(build_dir, "%s:%d" % (HOST, port), "--tls", "--insecure",
                     "nodes")
    finally:
        stop.set()
        t.join(5)
        srv.close()
    assert r.returncode == 3, r
    assert "plain-text server on a TLS connection?" in r.stderr, r


def test_server_certificate_from_another_ca(build_dir, datanode_binary,
                                            tmp_path, certs, fakes):
    """A data node whose certificate another CA signed is refused with
    "server certificate: ..." and exit 3; so is an expired one."""
    for cert, why in (("rogue-server", "server certificate: "),
                      ("expired", "server certificate: certificate has "
                                  "expired")):
        n = tls_node(datanode_binary, tmp_path, certs, cert=cert)
        try:
            fake = fakes(certs, "%s:%d" % (HOST, n.tls_port))
            r = cachecli(build_dir, fake.api,
                         *(tls_flags(certs) + ["get", "k"]))
            assert r.returncode == 3, r
            assert why in r.stderr, r
        finally:
            n.stop()


def test_client_certificate_refused(build_dir, node, certs, fakes):
    """Without a client certificate, or with one from another CA, the
    coordinator (fake, as coord --tls-cluster) and a data node that
    requires one (the default with a CA) each refuse it, and cachecli says
    so (TLS 1.3 tells the client only at its first read)."""
    addr = "%s:%d" % (HOST, node.tls_port)
    strict = fakes(certs, addr)
    lax = fakes(certs, addr, verify=False)
    for cert in (None, "stranger"):
        for fake, who in ((strict, strict.api), (lax, "get: " + addr)):
            r = cachecli(build_dir, fake.api,
                         *(tls_flags(certs, cert=cert) + ["get", "k"]))
            assert r.returncode == 3, r
            assert ("cachecli: %s: " % who) in r.stderr, r
            assert "the server refused our client certificate" in \
                r.stderr, r


def test_tls_usage_errors(build_dir, certs):
    """Flags that need --tls, a missing file and a --cert without --key
    are usage errors (exit 2) naming cachecli's flag."""
    for args, want in (
            (["--cacert", path(certs, "ca.crt")], "go with --tls"),
            (["--insecure"], "go with --tls"),
            (["--tls", "--cacert", "/nonexistent/ca.crt"], "--cacert"),
            (["--tls", "--cert", path(certs, "client.crt")],
             "--cert and --key go together"),
            (["--tls", "--cert", path(certs, "client.crt"), "--key",
              path(certs, "server.key")], "--key")):
        r = cachecli(build_dir, "127.0.0.1:1", *(args + ["get", "k"]))
        assert r.returncode == 2, r
        assert want in r.stderr, r


def test_status_probes_over_tls(build_dir, node, certs, fakes):
    """status's fan-out INFOs the data node over TLS, and its threads ping
    the coordinator (the fake) over TLS."""
    fake = fakes(certs, "%s:%d" % (HOST, node.tls_port))
    r = cachecli(build_dir, fake.api, *(tls_flags(certs) + ["status",
                                                            "--json"]))
    assert r.returncode == 0, r
    st = json.loads(r.stdout)
    nodes = st["nodes"]
    assert len(nodes) == 1 and nodes[0]["reachable"] is True, st
    assert st["coordinators"][0]["reachable"] is True, st
    # A node on its plain port: unreachable, and status says why.
    fake.map["nodes"][0]["addr"] = "%s:%d" % (HOST, node.port)
    r = cachecli(build_dir, fake.api, *(tls_flags(certs) + ["status",
                                                            "--json"]))
    st = json.loads(r.stdout)
    assert st["nodes"][0]["reachable"] is False, st
    assert "TLS" in st["nodes"][0]["probe_error"] or \
        "plain-text" in st["nodes"][0]["probe_error"], st


# ---------------------------------------------------------------------------
# Against the real coordinator (once it has --tls-cluster)


def coord_has_tls(build):
    r = subprocess.run([os.path.join(build, "coordinator", "coord"),
                        "--help"], capture_output=True, text=True, timeout=10)
    return "--tls-cluster" in r.stdout + r.stderr


def test_cachecli_against_a_tls_coordinator(build_dir, tmp_path, certs):
    """cachecli --tls (and NARF_TLS_DIR) reaches a real coord
    --tls-cluster yes: `coord status` and `nodes` answer; without --tls it
    gets a clear error instead of a hang."""
    if not coord_has_tls(build_dir):
        pytest.skip("coord has no --tls-cluster yet (the coordinator's "
                    "TLS branch)")
    from narf_harness import Trio, wait_leader
    tls = ["--tls-cluster", "yes", "--tls-cert-file",
           path(certs, "server.crt"), "--tls-key-file",
           path(certs, "server.key"), "--tls-ca-cert-file",
           path(certs, "ca.crt")]
    trio = Trio(build_dir, tmp_path, coord_args={1: tls, 2: tls, 3: tls})
    old = os.environ.get("NARF_TLS_DIR")
    os.environ["NARF_TLS_DIR"] = certs  # the harness's own API calls
    try:
        trio.start()
        wait_leader(trio)
        apis = ",".join(trio.apis)
        env = {"NARF_SECRET_FILE": secret_file()}
        r = cachecli(build_dir, apis, *(tls_flags(certs) + ["nodes"]),
                     env=env)
        assert r.returncode == 0, r
        r = cachecli(build_dir, apis, "coord", "status",
                     env=dict(env, NARF_TLS_DIR=certs))
        assert r.returncode == 0, r
        r = cachecli(build_dir, apis, "nodes", env=env)
        assert r.returncode == 3, r
        assert "--tls" in r.stderr, r
    finally:
        trio.stop()
        if old is None:
            os.environ.pop("NARF_TLS_DIR", None)
        else:
            os.environ["NARF_TLS_DIR"] = old

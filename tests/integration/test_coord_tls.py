"""Coordinators with --tls-cluster yes: mutual TLS on the Raft and API
ports, the cluster secret's proofs inside the tunnel (docs/security.md,
"TLS"; coordinator/transport.c, api.c; common/tls_relay.c).

Real trios on 127.0.0.1 with --metrics (plain HTTP: Raft is watched
there) and every member's certificate in its own files, so a test can
rotate one. The API is spoken by scripts/lib/coordping.py with
NARF_TLS_DIR (ca.crt, client.crt, client.key). The certificates are made
once per module with the openssl command-line tool (tls_certs.py): a CA,
two coordinator certificates (the second for the rotation), a client
certificate, and a client certificate from a CA the trio does not know.

Run: NARF_BUILD=$PWD/build /usr/bin/python3 -m pytest -q \\
     tests/integration/test_coord_tls.py
"""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from narf_harness import HOST, coordping, unused_addr, wait_for
from test_raft_auth import closed_within, metrics, port_of, settled_leader
from tls_certs import make_ca, make_cert, serial_of


class Certs:
    def __init__(self, d):
        self.dir = str(d)
        make_ca(self.dir, "ca")
        make_ca(self.dir, "rogue")
        make_cert(self.dir, "ca", "coord", "narf coord", usage="both")
        make_cert(self.dir, "ca", "coord2", "narf coord rotated",
                  usage="both")
        make_cert(self.dir, "ca", "client", "narf operator")
        make_cert(self.dir, "rogue", "stranger", "narf stranger")

    def path(self, name):
        return os.path.join(self.dir, name)

    def context(self, cert="client", ca="ca"):
        """A client context as coordping's: the CA verifies the server
        (not its name); cert (or None) is presented."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(self.path(ca + ".crt"))
        if cert is not None:
            ctx.load_cert_chain(self.path(cert + ".crt"),
                                self.path(cert + ".key"))
        return ctx


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    try:
        return Certs(tmp_path_factory.mktemp("certs"))
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip("cannot make certificates with openssl: %s" % e)


@pytest.fixture
def tls_env(certs, monkeypatch):
    """coordping speaks TLS with the client certificate."""
    monkeypatch.setenv("NARF_TLS_DIR", certs.dir)


def use_cert(certs, name, cert_file, key_file):
    """Replace a member's certificate and key files whole (as `mv`)."""
    for src, dst in ((name + ".crt", cert_file), (name + ".key", key_file)):
        shutil.copyfile(certs.path(src), dst + ".tmp")
        os.replace(dst + ".tmp", dst)


def start_tls_trio(make_trio, certs, tmp_path):
    """A trio with --tls-cluster yes and --metrics; {id: metrics addr},
    {id: (cert file, key file)}."""
    maddrs = {cid: unused_addr() for cid in (1, 2, 3)}
    files, args = {}, {}
    for cid in maddrs:
        crt = str(tmp_path / ("coord%d-tls.crt" % cid))
        key = str(tmp_path / ("coord%d-tls.key" % cid))
        use_cert(certs, "coord", crt, key)
        files[cid] = (crt, key)
        args[cid] = ["--metrics", maddrs[cid], "--tls-cluster", "yes",
                     "--tls-cert-file", crt, "--tls-key-file", key,
                     "--tls-ca-cert-file", certs.path("ca.crt")]
    trio = make_trio(node_timeout_ms=1000, coord_args=args)
    return trio, maddrs, files


def tls_failures(maddr, port):
    return metrics(maddr).get(
        'narf_tls_handshake_failures_total{port="%s"}' % port, 0)


def served_serial(addr, certs):
    """The serial of the certificate a member serves on addr (its API or
    Raft port), read by a TLS client presenting the client
    certificate."""
    with socket.create_connection((HOST, port_of(addr)), 5) as s:
        with certs.context().wrap_socket(s) as t:
            return t.getpeercert()["serialNumber"].upper()


def api_ok(addr, timeout=2.0):
    """The member answers ping over TLS (coordping, NARF_TLS_DIR)."""
    return coordping.ping(addr, timeout).get("ok") is True


def refused_tls(addr, ctx):
    """Connect with ctx and try the auth exchange: the member must close
    the connection (a TLS alert or EOF) without a reply line."""
    with socket.create_connection((HOST, port_of(addr)), 5) as s:
        try:
            t = ctx.wrap_socket(s)
        except (ssl.SSLError, OSError):
            return True  # refused in the handshake (TLS 1.2)
        # TLS 1.3: the client's handshake ends before the server has
        # checked its certificate; the refusal comes as an alert.
        try:
            t.settimeout(5)
            t.sendall(b'{"op":"auth","role":"operator","id":0,'
                      b'"nonce":"00000000000000000000000000000000"}\n')
            got = t.recv(4096)
        except (ssl.SSLError, OSError):
            return True
        finally:
            t.close()
        return got == b""


def test_leader_elected_and_api_over_tls(make_trio, certs, tls_env,
                                         tmp_path):
    """Three members with --tls-cluster yes elect a leader (their Raft
    links are TLS tunnels carrying the secret's proof), the API answers
    over TLS with the client certificate, every member logs what it
    serves, and killing the leader with SIGKILL elects another."""
    trio, maddrs, _ = start_tls_trio(make_trio, certs, tmp_path)
    leader, term = settled_leader(maddrs)
    line = coordping.find_leader(trio.apis)
    assert line is not None and line["id"] == leader, line
    for c in trio.coords:
        log = c.log_text()
        assert ("TLS on the Raft and API ports: subject /CN=narf coord, "
                "expires") in log, c.log_tail()
        assert "proved itself from 127.0.0.1:" in log, c.log_tail()
        assert api_ok(c.api), c.log_tail()
    # A request beyond ping: the leader's status over TLS (a new leader
    # answers not_ready until its first barrier applies).
    deadline = time.monotonic() + 10
    while True:
        rep = coordping.request(trio[leader].api, {"op": "status"}, 2.0)
        if rep.get("error") != "not_ready" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rep.get("ok") is True, rep
    trio[leader].kill9()
    rest = {cid: a for cid, a in maddrs.items() if cid != leader}
    new, term2 = settled_leader(rest, timeout=15)
    assert new != leader and term2 > term, (new, term2, leader, term)
    assert api_ok(trio[new].api)


def test_api_refuses_plain_and_foreign_clients(make_trio, certs, tls_env,
                                               tmp_path):
    """On a TLS API port, a plain-text client (the auth exchange in
    clear), a TLS client without a client certificate and one whose
    certificate comes from another CA are each closed without a reply,
    counted and logged; the member keeps answering proper clients and the
    group keeps its leader and term."""
    trio, maddrs, _ = start_tls_trio(make_trio, certs, tmp_path)
    leader, term = settled_leader(maddrs)
    target = trio[leader]
    before = tls_failures(maddrs[leader], "api")
    # (TLS failures are logged at most once a second: one attempt a
    # second, so each gets its line)
    time.sleep(1.1)
    # 1. plain text
    with socket.create_connection((HOST, port_of(target.api)), 5) as s:
        s.sendall(b'{"op":"auth","role":"operator","id":0,'
                  b'"nonce":"00000000000000000000000000000000"}\n')
        got, _ = closed_within(s, 5)
        # nothing, or a TLS alert record (content type 21): never JSON
        assert got == b"" or got[0] == 0x15, got
    # 2. no client certificate; 3. a certificate from another CA
    time.sleep(1.1)
    assert refused_tls(target.api, certs.context(cert=None))
    time.sleep(1.1)
    assert refused_tls(target.api, certs.context(cert="stranger"))
    wait_for(lambda: tls_failures(maddrs[leader], "api") - before >= 3, 5,
             what="three TLS failures counted")
    log = target.log_text()
    for why in ("wrong version number", "peer did not return a certificate",
                "client certificate: unable to get local issuer"):
        assert "TLS handshake failed: " + why in log, (why, target.log_tail())
    assert api_ok(target.api), target.log_tail()
    assert settled_leader(maddrs, timeout=5) == (leader, term)


def test_raft_port_closes_plain_tcp(make_trio, certs, tls_env, tmp_path):
    """A raw TCP connection to a TLS Raft port (garbage, then silence) is
    closed, counted and logged, without disturbing the group: same leader,
    same term."""
    trio, maddrs, _ = start_tls_trio(make_trio, certs, tmp_path)
    leader, term = settled_leader(maddrs)
    follower = next(c for c in trio.coords if c.id != leader)
    before = tls_failures(maddrs[follower.id], "raft")
    with socket.create_connection((HOST, port_of(follower.raft)), 2) as s:
        s.sendall(os.urandom(300))
        got, _ = closed_within(s, 5)
        assert got == b"" or got[0] == 0x15, got
    with socket.create_connection((HOST, port_of(follower.raft)), 2) as s:
        got, took = closed_within(s, 10)
        assert got == b"" and took <= 5.0, (got, took)
    # Raft does not take the client certificate alone either: no proof.
    with socket.create_connection((HOST, port_of(follower.raft)), 2) as s:
        with certs.context().wrap_socket(s) as t:
            t.sendall(os.urandom(96))
            got, _ = closed_within(t, 5)
            assert got == b"", got
    wait_for(lambda: tls_failures(maddrs[follower.id], "raft") - before
             >= 1, 5, what="TLS failures counted on the Raft port")
    assert "raft: refused a connection from 127.0.0.1:" in \
        follower.log_text(), follower.log_tail()
    assert "TLS handshake:" in follower.log_text(), follower.log_tail()
    time.sleep(1.0)  # three election timeouts: time enough to misbehave
    assert settled_leader(maddrs, timeout=5) == (leader, term)


def test_sighup_rotates_the_certificate(make_trio, certs, tls_env,
                                        tmp_path):
    """SIGHUP after a member's certificate files were replaced: new
    connections to its API and Raft ports get the new certificate (its
    serial), the group stays up with the same leader and the member
    keeps proving itself to the others (a follower is restarted so the
    links are new); a certificate file that does not load is logged and
    the one in use kept."""
    trio, maddrs, files = start_tls_trio(make_trio, certs, tmp_path)
    leader, term = settled_leader(maddrs)
    member = next(c for c in trio.coords if c.id != leader)
    old, new = serial_of(certs.path("coord.crt")), \
        serial_of(certs.path("coord2.crt"))
    assert old != new
    assert served_serial(member.api, certs) == old
    use_cert(certs, "coord2", *files[member.id])
    member._signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP: TLS reloaded: new connections get subject "
             "/CN=narf coord rotated" in member.log_text(), 5,
             what="the reload's log line")
    assert served_serial(member.api, certs) == new
    assert served_serial(member.raft, certs) == new
    assert api_ok(member.api)
    # The others dial it anew and it dials them: a restart of another
    # follower makes new links both ways with the rotated certificate.
    other = next(c for c in trio.coords
                 if c.id not in (leader, member.id))
    assert other.terminate() == 0
    other.start()
    assert settled_leader(maddrs, timeout=15)[0] == leader
    # A broken certificate file: logged, the rotated one stays.
    with open(files[member.id][0], "w") as f:
        f.write("not a certificate\n")
    member._signal(signal.SIGHUP)
    wait_for(lambda: "keeping the certificate in use" in member.log_text(),
             5, what="the failed reload's log line")
    assert served_serial(member.api, certs) == new
    assert api_ok(member.api)
    assert settled_leader(maddrs, timeout=5)[0] == leader


def test_removed_member_probes_over_tls(make_trio, certs, tls_env,
                                        tmp_path):
    """A follower removed from the group (coord_remove over TLS) hears of
    it only by asking (coordinator/removal.c): its probe dials the
    others' TLS API ports with its certificate, the leader confirms, and
    it stops by itself with exit status 0."""
    trio, maddrs, _ = start_tls_trio(make_trio, certs, tmp_path)
    leader, _ = settled_leader(maddrs)
    gone = next(c for c in trio.coords if c.id != leader)
    rep = coordping.leader_request(trio.apis,
                                   {"op": "coord_remove", "id": gone.id},
                                   time.monotonic() + 10)
    assert rep is not None and rep.get("ok"), rep
    wait_for(lambda: not gone.alive(), 20, 0.1,
             what="the removed member stops by itself")
    gone.terminated_by_test = True
    assert gone.proc.returncode == 0, gone.log_tail()
    assert "confirms that this member (%d) was removed" % gone.id in \
        gone.log_text(), gone.log_tail()
    rest = {cid: a for cid, a in maddrs.items() if cid != gone.id}
    assert settled_leader(rest, timeout=10)[0] == leader


def test_flags(build_dir, certs, tmp_path):
    """--tls-cluster needs yes or no, and with yes all three files; the
    files without it are an error; an unreadable file names itself. Each
    is a usage error (exit 2)."""
    coord = os.path.join(build_dir, "coordinator", "coord")
    base = [coord, "--id", "1", "--data-dir", str(tmp_path / "d"),
            "--members", "1=127.0.0.1:1/127.0.0.1:2",
            "--cluster-secret-file", os.environ["NARF_SECRET_FILE"]]
    files = ["--tls-cert-file", certs.path("coord.crt"), "--tls-key-file",
             certs.path("coord.key"), "--tls-ca-cert-file",
             certs.path("ca.crt")]
    cases = [
        (["--tls-cluster", "maybe"], "expected yes or no"),
        (["--tls-cluster", "yes"] + files[:4], "needs --tls-cert-file"),
        (files, "go with --tls-cluster yes"),
        (["--tls-cluster", "no"] + files[:2], "go with --tls-cluster yes"),
        (["--tls-cluster", "yes"] + files[:5] + ["/nonexistent/ca.crt"],
         "--tls-ca-cert-file /nonexistent/ca.crt"),
        (["--tls-cluster", "yes", "--tls-cert-file",
          certs.path("coord.crt"), "--tls-key-file",
          certs.path("client.key"), "--tls-ca-cert-file",
          certs.path("ca.crt")], "does not match"),
    ]
    for extra, want in cases:
        p = subprocess.run(base + extra, capture_output=True, timeout=30)
        err = p.stderr.decode()
        assert p.returncode == 2, (extra, p.returncode, err)
        assert want in err, (extra, err)
    assert not os.path.exists(str(tmp_path / "d"))

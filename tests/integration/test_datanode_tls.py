"""TLS on the data node's client port (--tls-port), side by side with
Debian's redis-server 7.0 given the same flags and the same certificates
where Redis behaves the same (docs/security.md, "TLS").

The certificates are made once per module with the openssl command-line
tool: a CA, a server certificate for 127.0.0.1, a second one (for the
reload), a client certificate, an expired one (`-days -1`: OpenSSL 3.0
accepts it and writes a notAfter before notBefore), and a client
certificate from a CA the servers do not know.

Run: NARF_BUILD=$PWD/build /usr/bin/python3 -m pytest -q \\
     tests/integration/test_datanode_tls.py
"""

import os
import signal
import socket
import ssl
import subprocess
import time

import pytest
import redis

from dn_fixtures import datanode_binary, kind, make_server  # noqa: F401
from dn_harness import (HOST, MB, REDIS_CLI, REDIS_SERVER, Closed, DataNode,
                        Err, RawConn, RedisServer, wait_until)
from narf_harness import PORTS, HarnessError
from tls_certs import make_ca, make_cert

# ---------------------------------------------------------------------------
# Certificates


class Certs:
    def __init__(self, d):
        self.dir = str(d)
        make_ca(self.dir, "ca")
        make_ca(self.dir, "rogue")
        make_cert(self.dir, "ca", "server", "narf server", server=True)
        make_cert(self.dir, "ca", "server2", "narf server reloaded",
                  server=True)
        make_cert(self.dir, "ca", "client", "narf client")
        make_cert(self.dir, "ca", "expired", "narf expired", days="-1")
        make_cert(self.dir, "rogue", "stranger", "narf stranger")

    def path(self, name):
        return os.path.join(self.dir, name)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    try:
        return Certs(tmp_path_factory.mktemp("certs"))
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip("cannot make certificates with openssl: %s" % e)


# ---------------------------------------------------------------------------
# Servers with a TLS port


class TLSMixin:
    """A server with --tls-port beside its plain --port (the harness waits
    for PING on the plain one). The certificate and key are copied into
    the server's own files, so a test can replace them and reload."""

    def setup_tls(self, certs, auth=None, ca=True):
        self.tls_port = PORTS.take(1)[0]
        self.certs = certs
        self.cert_file = os.path.join(self.tmpdir, self.name + "-tls.crt")
        self.key_file = os.path.join(self.tmpdir, self.name + "-tls.key")
        self.use_cert("server")
        self.tls_auth = auth
        self.tls_ca = ca

    def use_cert(self, name):
        for src, dst in ((name + ".crt", self.cert_file),
                         (name + ".key", self.key_file)):
            with open(self.certs.path(src), "rb") as f:
                data = f.read()
            with open(dst + ".tmp", "wb") as f:
                f.write(data)
            os.replace(dst + ".tmp", dst)

    def tls_flags(self):
        a = ["--tls-port", str(self.tls_port), "--tls-cert-file",
             self.cert_file, "--tls-key-file", self.key_file]
        if self.tls_ca:
            a += ["--tls-ca-cert-file", self.certs.path("ca.crt")]
        if self.tls_auth is not None:
            a += ["--tls-auth-clients", self.tls_auth]
        return a

    def tls_context(self, cert="client", ca="ca", max_version=None):
        ctx = ssl.create_default_context(cafile=self.certs.path(ca + ".crt"))
        ctx.check_hostname = False
        if cert is not None:
            ctx.load_cert_chain(self.certs.path(cert + ".crt"),
                                self.certs.path(cert + ".key"))
        if max_version is not None:
            ctx.maximum_version = max_version
        return ctx

    def tls_raw(self, cert="client", timeout=5.0, **kw):
        return TLSRaw(self.tls_port, self.tls_context(cert, **kw), timeout)

    def tls_client(self, cert="client", **kw):
        kw.setdefault("socket_timeout", 20)
        kw.setdefault("socket_connect_timeout", 5)
        if cert is not None:
            kw["ssl_certfile"] = self.certs.path(cert + ".crt")
            kw["ssl_keyfile"] = self.certs.path(cert + ".key")
        return redis.Redis(host=HOST, port=self.tls_port, ssl=True,
                           ssl_ca_certs=self.certs.path("ca.crt"),
                           ssl_cert_reqs="required", **kw)

    def tls_cli(self, *args, cert="client", timeout=30):
        argv = [REDIS_CLI, "-h", HOST, "-p", str(self.tls_port), "--tls",
                "--cacert", self.certs.path("ca.crt")]
        if cert is not None:
            argv += ["--cert", self.certs.path(cert + ".crt"), "--key",
                     self.certs.path(cert + ".key")]
        return subprocess.run(argv + list(args), capture_output=True,
                              timeout=timeout, text=True)


class TLSDataNode(TLSMixin, DataNode):
    def argv(self):
        return super().argv() + self.tls_flags()


class TLSRedisServer(TLSMixin, RedisServer):
    def argv(self):
        return super().argv() + self.tls_flags()


class TLSRaw(RawConn):
    """RawConn over TLS."""

    def __init__(self, port, ctx, timeout=5.0):
        self.port = port
        raw = socket.create_connection((HOST, port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = b""


def start_tls(make_server, kind, certs, auth=None, ca=True, **opts):
    name = "%s%d" % (kind, len(make_server.made))
    if kind == "narf":
        s = TLSDataNode(datanode_binary(), make_server.tmp_path, name,
                        **opts)
    else:
        if not os.access(REDIS_SERVER, os.X_OK):
            pytest.skip("redis-server is not installed")
        s = TLSRedisServer(make_server.tmp_path, name, **opts)
    s.setup_tls(certs, auth=auth, ca=ca)
    make_server.made.append(s)
    s.start()
    return s


def refused(fn):
    """fn() fails the way a refused TLS client fails: the handshake, or
    (TLS 1.3: the client finishes before the server has checked its
    certificate) the first reply."""
    with pytest.raises((redis.exceptions.ConnectionError, ssl.SSLError,
                        OSError, Closed)):
        fn()


def narf_info(s, field):
    with s.raw() as c:
        info = c.cmd("INFO", "stats").decode()
    for line in info.splitlines():
        if line.startswith(field + ":"):
            return int(line.split(":", 1)[1])
    raise HarnessError("no %s in INFO stats" % field)


# ---------------------------------------------------------------------------
# Tests


def test_tls_redis_cli(make_server, kind, certs):
    """redis-cli --tls with --cacert, --cert and --key works unchanged."""
    s = start_tls(make_server, kind, certs)
    out = s.tls_cli("SET", "k", "v")
    assert (out.returncode, out.stdout.strip()) == (0, "OK"), out.stderr
    out = s.tls_cli("GET", "k")
    assert out.stdout.strip() == "v"
    # The plain port stays open beside it, with the same data.
    assert s.client().get("k") == b"v"


def test_tls_redis_py(make_server, kind, certs):
    """redis-py ssl=True: SET/GET, a pipeline, and a value of 8 MiB both
    ways, with the same replies as on the plain port."""
    s = start_tls(make_server, kind, certs)
    r = s.tls_client()
    assert r.set("a", "1") is True
    assert r.get("a") == b"1"
    p = r.pipeline(transaction=False)
    for i in range(500):
        p.set("p%d" % i, "v%d" % i)
        p.get("p%d" % i)
        p.incr("n")
    got = p.execute()
    assert got == [x for i in range(500)
                   for x in (True, b"v%d" % i, i + 1)]
    big = os.urandom(8 * MB)
    assert r.set("big", big) is True
    assert r.get("big") == big
    assert s.client().get("big") == big
    assert r.strlen("big") == 8 * MB
    r.close()


def test_tls_auth_yes_needs_certificate(make_server, kind, certs):
    """With a CA and --tls-auth-clients yes (the default when a CA is
    given, as in Redis) a client without a certificate is refused, and
    one with a certificate from another CA, or an expired one, too."""
    s = start_tls(make_server, kind, certs)
    for cert in (None, "stranger", "expired"):
        def attempt():
            with s.tls_raw(cert=cert) as c:
                rep = c.cmd("PING")
                raise HarnessError("%s: PING answered %r" % (cert, rep))
        refused(attempt)
    with s.tls_raw() as c:
        assert c.cmd("PING") == "PONG"
    if kind == "narf":
        wait_until(lambda: narf_info(s, "tls_handshake_failures") >= 3, 5,
                   what="3 handshake failures counted")
        log = s.log_text()
        assert "TLS handshake failed" in log
        assert "127.0.0.1:" in log


def test_tls_auth_yes_flag(make_server, kind, certs):
    """--tls-auth-clients yes given explicitly: the same refusal."""
    s = start_tls(make_server, kind, certs, auth="yes")
    refused(lambda: s.tls_client(cert=None).ping())
    assert s.tls_client().ping() is True


def test_tls_auth_optional(make_server, kind, certs):
    """optional: a client without a certificate is served; one that sends a
    certificate the CA did not sign is refused."""
    s = start_tls(make_server, kind, certs, auth="optional")
    assert s.tls_client(cert=None).ping() is True
    assert s.tls_client().ping() is True

    def stranger():
        with s.tls_raw(cert="stranger") as c:
            raise HarnessError("PING answered %r" % c.cmd("PING"))
    refused(stranger)


def test_tls_auth_no(make_server, kind, certs):
    """no: no certificate asked for, none needed."""
    s = start_tls(make_server, kind, certs, auth="no")
    out = s.tls_cli("PING", cert=None)
    assert out.stdout.strip() == "PONG", out.stderr


def test_tls_plain_client_on_tls_port(make_server, kind, certs):
    """A plain-text client on the TLS port gets no reply and is closed,
    while a TLS client on the same port, connected before, keeps working;
    on narf each failure is counted and the log has at most about one
    line a second for them."""
    s = start_tls(make_server, kind, certs)
    tls = s.tls_raw()
    assert tls.cmd("SET", "k", "v") == "OK"
    for _ in range(20):
        with RawConn(s.tls_port, timeout=5) as c:
            c.send(b"*1\r\n$4\r\nPING\r\n")
            assert c.at_eof(timeout=5)
            assert b"PONG" not in c.buf
    assert tls.cmd("GET", "k") == b"v"
    assert s.tls_client().get("k") == b"v"
    tls.close()
    if kind == "narf":
        assert narf_info(s, "tls_handshake_failures") == 20
        lines = [x for x in s.log_text().splitlines()
                 if "TLS handshake failed" in x]
        assert 1 <= len(lines) <= 3, lines


def test_tls_version_and_ciphers(make_server, kind, certs):
    """TLS 1.2 is accepted with an ECDHE suite; TLS 1.3 is the default."""
    s = start_tls(make_server, kind, certs)
    with s.tls_raw(max_version=ssl.TLSVersion.TLSv1_2) as c:
        assert c.cmd("PING") == "PONG"
        assert c.sock.version() == "TLSv1.2"
        assert c.sock.cipher()[0].startswith("ECDHE-")
    with s.tls_raw() as c:
        assert c.cmd("PING") == "PONG"
        assert c.sock.version() == "TLSv1.3"


def test_tls_session_resumption(make_server, kind, certs):
    """Session tickets are on: a second connection resumes the first's
    session (TLS 1.2, where Python exposes the session at once)."""
    s = start_tls(make_server, kind, certs)
    ctx = s.tls_context(max_version=ssl.TLSVersion.TLSv1_2)
    raw = socket.create_connection((HOST, s.tls_port), timeout=5)
    a = ctx.wrap_socket(raw, server_hostname="localhost")
    a.sendall(b"*1\r\n$4\r\nPING\r\n")
    assert a.recv(100) == b"+PONG\r\n"
    session = a.session
    a.close()
    raw = socket.create_connection((HOST, s.tls_port), timeout=5)
    b = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    b.sendall(b"*1\r\n$4\r\nPING\r\n")
    assert b.recv(100) == b"+PONG\r\n"
    assert b.session_reused
    b.close()


def peer_der(s):
    with s.tls_raw() as c:
        assert c.cmd("PING") == "PONG"
        return c.sock.getpeercert(binary_form=True)


def cert_der(certs, name):
    with open(certs.path(name + ".crt")) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def test_tls_reload_on_sighup(make_server, certs):
    """SIGHUP (narf only: Redis reloads with CONFIG SET): a new connection
    gets the new certificate, one opened before keeps working; a bad file
    on the next reload is logged and the certificate in use stays."""
    s = start_tls(make_server, "narf", certs)
    assert peer_der(s) == cert_der(certs, "server")
    old = s.tls_raw()
    assert old.cmd("SET", "k", "before") == "OK"
    s.use_cert("server2")
    s.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "TLS reload: new connections get" in s.log_text(),
               5, what="the reload's log line")
    assert peer_der(s) == cert_der(certs, "server2")
    assert old.cmd("GET", "k") == b"before"
    assert old.cmd("SET", "k", "after") == "OK"
    # A key that does not match the certificate: refused, old one kept.
    with open(s.key_file, "wb") as f:
        with open(certs.path("client.key"), "rb") as g:
            f.write(g.read())
    s.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "does not match" in s.log_text(), 5,
               what="the failed reload's log line")
    assert peer_der(s) == cert_der(certs, "server2")
    assert old.cmd("GET", "k") == b"after"
    old.close()
    assert s.alive()


def run_datanode(certs, tmp_path, *flags):
    return subprocess.run([datanode_binary(), "--port", "0"] + list(flags),
                          capture_output=True, text=True, timeout=20,
                          cwd=str(tmp_path))


def test_tls_start_errors(certs, tmp_path):
    """Unreadable or mismatched files, and a missing CA for client
    certificates, stop the node at start with exit status 2 and a message
    naming the file."""
    p = PORTS.take(1)[0]
    base = ["--tls-port", str(p)]
    cases = [
        (["--tls-cert-file", certs.path("nope.crt"), "--tls-key-file",
          certs.path("server.key")], "nope.crt: No such file"),
        (["--tls-cert-file", certs.path("server.crt"), "--tls-key-file",
          certs.path("client.key")], "does not match --tls-cert-file"),
        (["--tls-cert-file", certs.path("server.key"), "--tls-key-file",
          certs.path("server.key")], "not a PEM certificate"),
        (["--tls-cert-file", certs.path("server.crt"), "--tls-key-file",
          certs.path("server.key"), "--tls-auth-clients", "yes"],
         "needs --tls-ca-cert-file"),
        (["--tls-cert-file", certs.path("server.crt")],
         "needs --tls-cert-file and --tls-key-file"),
        ([], "--port 0 needs --tls-port"),
    ]
    for flags, want in cases:
        out = run_datanode(certs, tmp_path, *(base + flags if flags
                                              else []))
        assert out.returncode == 2, (flags, out.stderr)
        assert want in out.stderr, (flags, out.stderr)


def test_tls_only(certs, tmp_path):
    """--port 0 --tls-port P: TLS only, without a CA (no client
    certificates asked for)."""
    p = PORTS.take(1)[0]
    log = open(os.path.join(str(tmp_path), "tlsonly.log"), "wb")
    proc = subprocess.Popen(
        [datanode_binary(), "--port", "0", "--tls-port", str(p),
         "--tls-cert-file", certs.path("server.crt"), "--tls-key-file",
         certs.path("server.key")], stdout=log, stderr=log,
        stdin=subprocess.DEVNULL, cwd=str(tmp_path))
    try:
        ctx = ssl.create_default_context(cafile=certs.path("ca.crt"))
        ctx.check_hostname = False

        def ping():
            try:
                return TLSRaw(p, ctx).cmd("PING") == "PONG"
            except OSError:
                return False
        wait_until(ping, 10, what="PING over TLS")
        r = redis.Redis(host=HOST, port=p, ssl=True,
                        ssl_ca_certs=certs.path("ca.crt"),
                        ssl_cert_reqs="required", socket_timeout=10)
        assert r.set("x", "y") and r.get("x") == b"y"
        r.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        log.close()

"""Helpers for the coordinator integration tests (docs/protocol.md).

Everything here drives real `coord` processes on 127.0.0.1: it allocates
ports, starts, pauses, kills and restarts members, speaks the API's
newline-delimited JSON, finds the leader, and plays data nodes (FakeNode)
that join and heartbeat like the real ones. Every wait is bounded by a
deadline; nothing here loops forever.
"""

import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid

import tls_certs

# ---------------------------------------------------------------------------
# TLS (NARF_TLS=1): every coordinator and data node of the suite speaks TLS
# on its internal links and its client port, with one throwaway CA made
# once per test process. Set up before coordping is imported, as that reads
# NARF_TLS_DIR (ca.crt, client.crt, client.key) to wrap its sockets.

TLS_MODE = os.environ.get("NARF_TLS", "") not in ("", "0", "no")


def make_tls_dir(d):
    """The harness convention (scripts/cluster.sh start --tls makes the
    same): ca.crt, server.crt/key (used by every process), client.crt/key
    (operators, tests). Returns d."""
    d = str(d)
    tls_certs.make_ca(d, "ca")
    tls_certs.make_cert(d, "ca", "server", "narf server", usage="both")
    tls_certs.make_cert(d, "ca", "client", "narf client")
    for name in ("ca.key", "server.key", "client.key"):
        os.chmod(os.path.join(d, name), 0o600)
    return d


_suite_tls_dir = None


def suite_tls_dir():
    """TLS mode's certificates (None outside it): NARF_TLS_DIR's when set
    (a cluster's own, bench.sh cluster --tls), else made once per test
    process and exported as NARF_TLS_DIR (coordping, cachecli). Every
    Trio and cluster DataNode takes it as its tls_dir by default."""
    global _suite_tls_dir
    if not TLS_MODE:
        return None
    if _suite_tls_dir is None:
        given = os.environ.get("NARF_TLS_DIR", "")
        if given:
            _suite_tls_dir = given
        else:
            import atexit
            import shutil
            import tempfile
            _suite_tls_dir = make_tls_dir(
                tempfile.mkdtemp(prefix="narf-tls-"))
            atexit.register(shutil.rmtree, _suite_tls_dir, True)
            os.environ["NARF_TLS_DIR"] = _suite_tls_dir
    return _suite_tls_dir


suite_tls_dir()

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))), "scripts", "lib"))
import coordping  # noqa: E402  (the API client's auth, shared with scripts)

HOST = "127.0.0.1"
# Coordinator errors that mean "ask again shortly" (docs/protocol.md).
RETRY_ERRORS = ("not_ready", "busy")
NSLOTS = 16384


# ---------------------------------------------------------------------------
# TLS (--tls-cluster): ports that speak TLS only, and how the harness
# connects to them. A tls_dir holds ca.crt, server.crt/.key (what the
# processes present, to clients and to each other) and client.crt/.key
# (what the harness presents). Trio(tls_dir=...) and the cluster harness's
# DataNode(tls_dir=...) register their TLS ports here; Conn (coordinator
# API) and dn_harness.RawConn wrap a connection to a registered port.
TLS_PORTS = {}  # port -> ssl.SSLContext
TLS_PORT_OF = {}  # a cluster data node's plain port -> its TLS port


def tls_context(tls_dir):
    """A client context trusting tls_dir's CA and presenting its client
    certificate (host names unchecked: narf checks the chain only)."""
    ctx = ssl.create_default_context(cafile=os.path.join(tls_dir, "ca.crt"))
    ctx.check_hostname = False
    ctx.load_cert_chain(os.path.join(tls_dir, "client.crt"),
                        os.path.join(tls_dir, "client.key"))
    return ctx


def tls_flags(tls_dir):
    """The TLS flags of a process of a --tls-cluster (coord and datanode
    take the same names)."""
    return ["--tls-cluster", "yes",
            "--tls-cert-file", os.path.join(tls_dir, "server.crt"),
            "--tls-key-file", os.path.join(tls_dir, "server.key"),
            "--tls-ca-cert-file", os.path.join(tls_dir, "ca.crt")]


def tls_redis_kwargs(tls_dir):
    """redis-py's keyword arguments for a TLS data port of tls_dir's
    cluster."""
    return {"ssl": True, "ssl_ca_certs": os.path.join(tls_dir, "ca.crt"),
            "ssl_certfile": os.path.join(tls_dir, "client.crt"),
            "ssl_keyfile": os.path.join(tls_dir, "client.key"),
            "ssl_check_hostname": False}


def tls_wrap(sock, port):
    """sock, wrapped in TLS when port is a registered TLS port."""
    ctx = TLS_PORTS.get(int(port))
    if ctx is None:
        return sock
    try:
        return ctx.wrap_socket(sock, server_hostname="localhost")
    except BaseException:
        sock.close()
        raise


class HarnessError(AssertionError):
    """A bounded wait ran out, or a process misbehaved."""


# ---------------------------------------------------------------------------
# The cluster secret (common/auth.h, docs/security.md)

# Every process the suite starts proves this secret (coordinators, data
# nodes) or the node key derived from it; the harness's own API calls
# prove the operator role.
SECRET = b"narf-test-suite-cluster-secret-1"
_secret_dir = None


def secret_file():
    """A file holding SECRET (mode 600), made once per test process."""
    global _secret_dir
    if _secret_dir is None:
        import tempfile
        _secret_dir = tempfile.mkdtemp(prefix="narf-secret-")
        path = os.path.join(_secret_dir, "cluster.secret")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(SECRET + b"\n")
    return os.path.join(_secret_dir, "cluster.secret")


def with_secret(args):
    """args plus --cluster-secret-file (unless they name one already)."""
    args = list(args)
    if "--cluster-secret-file" not in args:
        args += ["--cluster-secret-file", secret_file()]
    return args


def role_key(role, secret=SECRET):
    """The key of role ("operator", "node", "coord") of a cluster secret,
    as common/auth.c derives it."""
    return coordping.role_key(role, secret)


def node_key_text(secret=SECRET):
    """What a data node's key file holds: "node:" and the hex node key."""
    return "node:" + role_key("node", secret).hex()


# ---------------------------------------------------------------------------
# Ports


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# The ports the suite hands out: PORT_LOW up to the kernel's ephemeral range
# (at most PORT_HIGH), so an outgoing connection cannot take one of our ports
# between the check and the bind.
PORT_LOW = 20000
PORT_HIGH = 40000


def xdist_worker():
    """(index, count) of this pytest-xdist worker: PYTEST_XDIST_WORKER is
    gw0, gw1, ... and PYTEST_XDIST_WORKER_COUNT their number; (0, 1)
    outside xdist (a plain or serial pytest run)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    try:
        index = int(name[2:]) if name.startswith("gw") else 0
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    except ValueError:
        return 0, 1
    if count < 1 or not 0 <= index < count:
        return 0, 1
    return index, count


def port_slice(index, count, low=PORT_LOW, high=None):
    """[lo, hi): worker index's share of low..high (high defaults to the
    bottom of the ephemeral range, at most PORT_HIGH). The slices of
    0..count-1 are disjoint and cover the range."""
    if high is None:
        high = min(PORT_HIGH, _ephemeral_low())
    size = (high - low) // count
    if size < 100:
        raise HarnessError("port range %d..%d too small for %d workers"
                           % (low, high, count))
    lo = low + index * size
    return lo, lo + size


class PortAllocator:
    """Hands out ports that are bindable now and never handed out before.

    Each pytest-xdist worker (gw0, gw1, ...) owns a disjoint slice of
    PORT_LOW.. the ephemeral range (port_slice), so two workers can never
    hand out the same port, whatever happens between the bindable() check
    and the real bind. Within its slice an allocator starts at a random
    point (another test run on the machine most likely works elsewhere) and
    moves a cursor, wrapping within the slice: every cluster of a session
    gets fresh ports, so a test never meets the TIME_WAIT sockets of the
    previous one.
    """

    def __init__(self, index=None, count=None):
        if index is None or count is None:
            index, count = xdist_worker()
        self._low, self._top = port_slice(index, count)
        self._cursor = random.randrange(self._low, self._top)
        self._lock = threading.Lock()

    @property
    def range(self):
        return self._low, self._top

    @staticmethod
    def bindable(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((HOST, port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def _next(self):
        """The next port of the slice (the cursor wraps at its top)."""
        self._cursor += 1
        if self._cursor >= self._top:
            self._cursor = self._low
        return self._cursor

    def take(self, n=1):
        out = []
        with self._lock:
            tries = 0
            while len(out) < n:
                tries += 1
                if tries > 5000:
                    raise HarnessError("no free ports found in %d..%d"
                                       % (self._low, self._top - 1))
                port = self._next()
                if self.bindable(port):
                    out.append(port)
        return out

    def take_base(self, offsets, align=10):
        """A base port B (a multiple of align) such that B + o is bindable
        for every o in offsets, all within this allocator's slice; the
        ports up to B + max(offsets) are never handed out afterwards
        (scripts/cluster.sh --base-port B puts its processes there)."""
        span = max(offsets)
        if span + align >= self._top - self._low:
            raise HarnessError("port span %d too wide for slice %d..%d"
                               % (span, self._low, self._top - 1))
        with self._lock:
            for _ in range(200):
                base = -(-(self._cursor + 1) // align) * align
                if base + span >= self._top:
                    self._cursor = self._low - 1
                    continue
                self._cursor = base + span
                if all(self.bindable(base + o) for o in offsets):
                    return base
        raise HarnessError("no free base port found in %d..%d"
                           % (self._low, self._top - 1))


PORTS = PortAllocator()


def unused_addr():
    """A host:port string nobody listens on (a fake data node's address)."""
    return "%s:%d" % (HOST, PORTS.take(1)[0])


# ---------------------------------------------------------------------------
# The API client


class Conn:
    """One API connection: send request lines, read reply lines in order.
    It first proves `role` with `key` (default: NARF_SECRET_FILE's when
    it holds that role's credential, else the suite's secret's key for
    the role); role None sends nothing first (a stranger)."""

    def __init__(self, addr, timeout=2.0, role="operator", key=None):
        host, port = addr.rsplit(":", 1)
        self.addr = addr
        self.sock = tls_wrap(
            socket.create_connection((host, int(port)), timeout=timeout),
            port)
        self.sock.settimeout(timeout)
        # An unregistered port: TLS when NARF_TLS_DIR names certificates
        # (a test of a TLS coordinator may set it for a while).
        ctx = None if int(port) in TLS_PORTS else coordping.env_tls()
        if ctx is not None:
            try:
                self.sock = ctx.wrap_socket(self.sock)
            except BaseException:
                self.close()
                raise
        self.buf = b""
        if role is not None and key is None:
            cred = coordping.env_credential()
            key = cred[1] if cred and cred[0] == role else role_key(role)
        if role is not None:
            try:
                self.authenticate(role, key)
            except BaseException:
                self.close()
                raise

    def authenticate(self, role, key, ident=0):
        """The API's challenge-response (docs/protocol.md, "Authentication");
        raises HarnessError when the server refuses or fails its proof."""
        try:
            coordping.authenticate(self.request, role, key, ident)
        except coordping.AuthError as e:
            raise HarnessError("%s: %s" % (self.addr, e))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, obj):
        self.send_raw(json.dumps(obj).encode() + b"\n")

    def read_line(self, timeout=None):
        """The next reply line (without newline) or None on EOF."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        deadline = time.monotonic() + (timeout or self.sock.gettimeout() or 5)
        while b"\n" not in self.buf:
            if time.monotonic() > deadline:
                raise socket.timeout("no reply line from %s" % self.addr)
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
            if len(self.buf) > 64 << 20:
                raise HarnessError("reply line over 64 MiB")
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def read(self, timeout=None):
        line = self.read_line(timeout)
        if line is None:
            raise ConnectionError("%s closed the connection" % self.addr)
        return json.loads(line)

    def request(self, obj, timeout=None):
        self.send(obj)
        return self.read(timeout)

    def at_eof(self, timeout=2.0):
        """True when the server closes the connection within timeout."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False


def call(addr, obj, timeout=2.0):
    """Send one request on a new connection and return the reply object."""
    with Conn(addr, timeout) as c:
        return c.request(obj, timeout)


# ---------------------------------------------------------------------------
# Processes


class Coord:
    """One coordinator process, its data dir and its stderr log."""

    def __init__(self, build, cid, members, data_dir, log_path, api, raft,
                 extra_args=()):
        self.build = build
        self.id = cid
        self.members = members
        self.data_dir = data_dir
        self.log_path = log_path
        self.api = api
        self.raft = raft
        self.extra_args = list(extra_args)
        self.proc = None
        self.starts = 0
        # Set when the test itself killed the process (so its exit status
        # is expected to be non-zero).
        self.killed_by_test = False
        # Set when the test stopped it with SIGTERM (exit status must be 0).
        self.terminated_by_test = False

    @property
    def binary(self):
        return os.path.join(self.build, "coordinator", "coord")

    def argv(self):
        return [self.binary, "--id", str(self.id), "--data-dir",
                self.data_dir, "--members", self.members] + with_secret(
                    self.extra_args)

    def start(self):
        if self.alive():
            raise HarnessError("coord %d already running" % self.id)
        os.makedirs(self.data_dir, exist_ok=True)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(("=== harness: start #%d: %s\n" % (
                self.starts, " ".join(self.argv()))).encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, close_fds=True)
        self.killed_by_test = False
        self.terminated_by_test = False

    restart = start

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pid(self):
        return self.proc.pid if self.proc else None

    def _signal(self, sig):
        if not self.alive():
            raise HarnessError("coord %d is not running" % self.id)
        os.kill(self.proc.pid, sig)

    def kill9(self, wait=5.0):
        """kill -9 and reap."""
        self._signal(signal.SIGKILL)
        self.killed_by_test = True
        self.proc.wait(timeout=wait)

    def pause(self):
        self._signal(signal.SIGSTOP)

    def resume(self):
        self._signal(signal.SIGCONT)

    def terminate(self, wait=10.0):
        """SIGTERM, then SIGKILL after `wait` seconds; returns exit status
        (None when it had to be SIGKILLed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.terminated_by_test = True
        try:
            os.kill(self.proc.pid, signal.SIGCONT)  # a paused one cannot exit
            os.kill(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            return self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.killed_by_test = True
            self.proc.wait(timeout=5)
            return None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def wait_listening(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise HarnessError("coord %d exited with %s:\n%s" % (
                    self.id, self.proc.returncode, self.log_tail()))
            try:
                socket.create_connection(
                    (HOST, int(self.api.rsplit(":", 1)[1])), 0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise HarnessError("coord %d API %s not listening after %.1fs" % (
            self.id, self.api, timeout))

    def ping(self, timeout=1.0):
        return call(self.api, {"op": "ping"}, timeout)


class Trio:
    """Three coordinators in a tmp dir, with fresh ports."""

    def __init__(self, build, tmpdir, node_timeout_ms=None, replicas=None,
                 election_timeout_ms=None, heartbeat_timeout_ms=None,
                 log_level="debug", coord_args=None, tls_dir=None):
        self.build = build
        self.tmpdir = str(tmpdir)
        ports = PORTS.take(6)
        self.coords = []
        parts = []
        for i in range(3):
            raft = "%s:%d" % (HOST, ports[2 * i])
            api = "%s:%d" % (HOST, ports[2 * i + 1])
            parts.append("%d=%s/%s" % (i + 1, raft, api))
        self.members = ",".join(parts)
        extra = []
        if replicas is not None:
            extra += ["--replicas", str(replicas)]
        if node_timeout_ms is not None:
            extra += ["--node-timeout", str(node_timeout_ms)]
        if election_timeout_ms is not None:
            extra += ["--election-timeout", str(election_timeout_ms)]
        if heartbeat_timeout_ms is not None:
            extra += ["--heartbeat-timeout", str(heartbeat_timeout_ms)]
        if log_level:
            extra += ["--log-level", log_level]
        if tls_dir is None:
            tls_dir = suite_tls_dir()
        if tls_dir is not None:
            # API and Raft ports speak TLS only (coord --tls-cluster yes)
            extra += tls_flags(tls_dir)
            for i in range(3):
                TLS_PORTS[ports[2 * i + 1]] = tls_context(tls_dir)
        self.tls_dir = tls_dir
        self.node_timeout_ms = node_timeout_ms
        for i in range(3):
            cid = i + 1
            self.coords.append(Coord(
                build, cid, self.members,
                os.path.join(self.tmpdir, "coord%d" % cid),
                os.path.join(self.tmpdir, "coord%d.log" % cid),
                "%s:%d" % (HOST, ports[2 * i + 1]),
                "%s:%d" % (HOST, ports[2 * i]),
                extra + list((coord_args or {}).get(cid, ()))))

    def __getitem__(self, cid):
        """Member by id (1..3)."""
        return self.coords[cid - 1]

    def by_api(self, api):
        for c in self.coords:
            if c.api == api:
                return c
        return None

    @property
    def apis(self):
        return [c.api for c in self.coords]

    def start(self):
        for c in self.coords:
            c.start()
        for c in self.coords:
            c.wait_listening()

    def stop(self):
        """SIGTERM everyone (SIGKILL after 10 s); {id: exit status}."""
        return {c.id: c.terminate() for c in self.coords}

    def logs(self, n=40):
        out = []
        for c in self.coords:
            out.append("----- coord %d (%s, pid %s, %s) tail of %s -----\n%s" % (
                c.id, c.api, c.pid(),
                "alive" if c.alive() else "exit %s" % (
                    c.proc.returncode if c.proc else "-"),
                c.log_path, c.log_tail(n)))
        return "\n".join(out)

    def pings(self, timeout=1.0, members=None):
        """{id: ping reply or None} for the running members."""
        out = {}
        for c in (members or self.coords):
            if not c.alive():
                out[c.id] = None
                continue
            try:
                out[c.id] = c.ping(timeout)
            except (OSError, ValueError):
                out[c.id] = None
        return out


# ---------------------------------------------------------------------------
# Leader helpers


def wait_leader(trio, timeout=15.0, members=None, settled=True):
    """Wait until exactly one running member says `leader` and (settled) every
    other running member that answers agrees on its id and term. Returns
    (leader Coord, {id: ping}).
    """
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        pings = trio.pings(0.5, members)
        last = pings
        leaders = [cid for cid, p in pings.items()
                   if p and p.get("role") == "leader"]
        if len(leaders) == 1:
            lid = leaders[0]
            term = pings[lid].get("term")
            others = [p for cid, p in pings.items()
                      if cid != lid and p is not None]
            if not settled or all(p.get("role") == "follower" and
                                  p.get("leader") == lid and
                                  p.get("term") == term for p in others):
                return trio[lid], pings
        time.sleep(0.05)
    raise HarnessError("no single leader within %.1fs; last pings: %r" % (
        timeout, last))


def call_leader(trio, obj, timeout=10.0, call_timeout=2.0, hint=None):
    """Send obj to the leader: follow not_leader, retry not_ready/busy and
    unreachable members until `timeout`. Returns the first reply that is not
    a redirect or a retry (it may be an error such as bad_request).
    """
    deadline = time.monotonic() + timeout
    order = list(trio.apis)
    target = hint or order[0]
    idx = 0
    last = None
    while time.monotonic() < deadline:
        try:
            rep = call(target, obj, call_timeout)
        except (OSError, ValueError) as e:
            last = "%s: %r" % (target, e)
            idx += 1
            target = order[idx % len(order)]
            time.sleep(0.02)
            continue
        last = rep
        if rep.get("ok"):
            return rep
        err = rep.get("error")
        if err == "not_leader":
            leader = rep.get("leader")
            if leader and leader != target:
                target = leader
            else:
                idx += 1
                target = order[idx % len(order)]
                time.sleep(0.05)
            continue
        if err in RETRY_ERRORS:
            time.sleep(0.05)
            continue
        return rep
    raise HarnessError("call_leader(%r) gave up after %.1fs; last: %r" % (
        obj, timeout, last))


def get_map(trio, epoch=None, timeout=10.0):
    req = {"op": "map"}
    if epoch is not None:
        req["epoch"] = epoch
    rep = call_leader(trio, req, timeout)
    assert rep.get("ok"), rep
    return rep


def leader_map(trio, timeout=10.0):
    """The whole map object from the leader."""
    rep = get_map(trio, timeout=timeout)
    assert "map" in rep, rep
    return rep["map"]


def wait_for(pred, timeout, interval=0.05, what="condition"):
    """Poll pred() until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except (OSError, ValueError, HarnessError, KeyError) as e:
            last_exc = e
        time.sleep(interval)
    raise HarnessError("%s not reached within %.1fs (last error: %r)" % (
        what, timeout, last_exc))


# ---------------------------------------------------------------------------
# Map helpers


def expand_slots(m):
    """List of 16384 (primary, replicas tuple, isr tuple) from map ranges;
    asserts the ranges cover 0..16383 in order with no gap or overlap."""
    out = []
    expect = 0
    for r in m["slots"]:
        assert r["from"] == expect, "slot ranges gap/overlap at %d: %r" % (
            expect, r)
        assert r["to"] >= r["from"], r
        for _ in range(r["from"], r["to"] + 1):
            out.append((r["primary"], tuple(r.get("replicas", [])),
                        tuple(r.get("isr", []))))
        expect = r["to"] + 1
    assert expect == NSLOTS, "slot ranges end at %d" % expect
    return out


def node_by_id(m, nid):
    for n in m["nodes"]:
        if n["id"] == nid:
            return n
    return None


def node_state(m, nid):
    n = node_by_id(m, nid)
    return n["state"] if n else None


def counts(m):
    """{node id: [primaries, replicas]} from the map's slots."""
    c = {}
    for prim, reps, _ in expand_slots(m):
        if prim:
            c.setdefault(prim, [0, 0])[0] += 1
        for r in reps:
            c.setdefault(r, [0, 0])[1] += 1
    return c


def copies_ok(m):
    """Never two copies of a slot on one node, isr within replicas."""
    for s, (prim, reps, isr) in enumerate(expand_slots(m)):
        copies = ([prim] if prim else []) + list(reps)
        assert len(copies) == len(set(copies)), "slot %d: %r" % (s, copies)
        assert set(isr) <= set(reps), "slot %d isr %r not in %r" % (
            s, isr, reps)
    return True


def balanced(m, ids, replication):
    """Every slot: primary in ids and replication-1 replicas in ids, on
    distinct nodes; primaries per node within 16384/len(ids) +-1."""
    slots = expand_slots(m)
    want_reps = min(replication, len(ids)) - 1
    prim_count = {i: 0 for i in ids}
    for prim, reps, _ in slots:
        if prim not in prim_count:
            return False
        if len(reps) != want_reps or prim in reps:
            return False
        if len(set(reps)) != len(reps) or not set(reps) <= set(ids):
            return False
        prim_count[prim] += 1
    lo = NSLOTS // len(ids)
    return all(lo - 1 <= v <= lo + 1 for v in prim_count.values())


# ---------------------------------------------------------------------------
# Fake data nodes


def join(trio, addr=None, boot_id=None, timeout=10.0):
    """Join a node; returns (reply, addr, boot_id)."""
    addr = addr or unused_addr()
    boot_id = boot_id or uuid.uuid4().hex
    rep = call_leader(trio, {"op": "join", "addr": addr, "boot_id": boot_id},
                      timeout)
    return rep, addr, boot_id


class FakeNode:
    """A test client that joins like a data node and heartbeats the leader
    every 100 ms from a background thread, following not_leader."""

    def __init__(self, trio, addr=None, boot_id=None, interval=0.1,
                 max_life=300.0):
        self.trio = trio
        self.addr = addr or unused_addr()
        self.boot_id = boot_id or uuid.uuid4().hex
        self.interval = interval
        self.max_life = max_life
        self.id = None
        self.epoch = 0
        self.last_ack = None  # monotonic time of the last ok heartbeat reply
        self.acks = 0
        self.errors = {}
        self._stop = threading.Event()
        self._thread = None
        self._conn = None
        self._target = None

    def join(self, timeout=10.0):
        rep = call_leader(self.trio, {"op": "join", "addr": self.addr,
                                      "boot_id": self.boot_id}, timeout)
        assert rep.get("ok"), "join failed: %r" % rep
        self.id = rep["node"]
        self.epoch = rep.get("epoch", 0)
        return self.id

    def start(self):
        """Join (if needed) and start heartbeating."""
        if self.id is None:
            self.join()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="fakenode-%s" % self.id)
        self._thread.start()
        return self

    def stop(self, timeout=3.0):
        """Stop heartbeating; returns the time of the last ok heartbeat."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        self._drop_conn()
        return self.last_ack

    def _drop_conn(self):
        if self._conn:
            self._conn.close()
            self._conn = None

    def _next_target(self, hint=None):
        self._drop_conn()
        apis = self.trio.apis
        if hint and hint in apis:
            self._target = hint
        elif self._target in apis:
            self._target = apis[(apis.index(self._target) + 1) % len(apis)]
        else:
            self._target = apis[0]

    def beat_once(self, timeout=0.5):
        if self._target is None:
            self._next_target()
        try:
            if self._conn is None:
                self._conn = Conn(self._target, timeout)
            rep = self._conn.request({"op": "heartbeat", "node": self.id,
                                      "boot_id": self.boot_id,
                                      "epoch": self.epoch, "keys": 0,
                                      "used_memory": 0}, timeout)
        except (OSError, ValueError):
            self.errors["conn"] = self.errors.get("conn", 0) + 1
            self._next_target()
            return None
        if rep.get("ok"):
            self.last_ack = time.monotonic()
            self.acks += 1
            self.epoch = rep.get("epoch", self.epoch)
            return rep
        err = rep.get("error")
        self.errors[err] = self.errors.get(err, 0) + 1
        if err == "not_leader":
            self._next_target(rep.get("leader"))
        return rep

    def _run(self):
        end = time.monotonic() + self.max_life
        while not self._stop.is_set() and time.monotonic() < end:
            t0 = time.monotonic()
            self.beat_once()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t0)))


# ---------------------------------------------------------------------------
# Waits on the leader's map and the members, and a fake node that syncs:
# shared by test_coord.py and test_coord_settings.py (the `fakes` fixture in
# conftest.py makes SyncingFakes).


def moving_ranges(m, node):
    """[lo, hi] ranges of the slots `node` leads with a pending move."""
    return [[r["from"], r["to"]] for r in m["slots"]
            if r["primary"] == node and r.get("move")]


class SyncingFake(FakeNode):
    """A FakeNode that also plays the primary's part of replication: when it
    sees the map move, it reports every replica of the slots it leads that
    is outside the ISR as synced (`isr add`), as a data node does once a new
    copy has caught up, and hands over every slot it leads with a pending
    move (`handoff`), as a data node does once the target has acknowledged
    every write. A fake holds no data, so both are instant."""

    def __init__(self, trio, **kw):
        super().__init__(trio, **kw)
        self.synced_epoch = None
        self.isr_adds = 0
        self.handoffs = 0

    def beat_once(self, timeout=0.5):
        rep = super().beat_once(timeout)
        if rep and rep.get("ok") and rep.get("epoch") != self.synced_epoch:
            try:
                self._report_synced(timeout)
            except (OSError, ValueError, KeyError):
                self._next_target()
        return rep

    def _report_synced(self, timeout):
        rep = self._conn.request({"op": "map"}, timeout)
        if not rep.get("ok"):
            return
        m = rep["map"]
        pending = {}
        for r in m["slots"]:
            if r["primary"] != self.id:
                continue
            for peer in r["replicas"]:
                if peer not in r["isr"]:
                    pending.setdefault(peer, []).append([r["from"], r["to"]])
        for peer, ranges in sorted(pending.items()):
            rep = self._conn.request({"op": "isr", "node": self.id,
                                      "boot_id": self.boot_id, "peer": peer,
                                      "add": ranges}, timeout)
            if not rep.get("ok"):
                return  # again at the next heartbeat
            self.isr_adds += 1
        ranges = moving_ranges(m, self.id)
        if ranges:
            rep = self._conn.request({"op": "handoff", "node": self.id,
                                      "boot_id": self.boot_id,
                                      "slots": ranges}, timeout)
            if not rep.get("ok"):
                return
            self.handoffs += 1
        self.synced_epoch = m["epoch"]


def wait_map(trio, pred, timeout, what, interval=0.05):
    """Poll the leader's map until pred(map) is true; return that map."""
    holder = {}

    def check():
        m = leader_map(trio, timeout=5)
        holder["last"] = m
        return m if pred(m) else None

    try:
        return wait_for(check, timeout, interval, what)
    except HarnessError as e:
        last = holder.get("last")
        summary = None
        if last is not None:
            summary = {"epoch": last["epoch"], "nodes": last["nodes"],
                       "counts": counts(last)}
        raise HarnessError("%s; last map: %s" % (e, summary))


def wait_converged(trio, timeout=15.0):
    """Every member answers ping with the same term, leader, epoch, applied
    index and map digest (so the FSM contents match, not only their epochs);
    returns the pings."""
    last = {}

    def check():
        pings = trio.pings(0.5)
        last["p"] = pings
        if any(p is None or not p.get("ok") for p in pings.values()):
            return None
        keys = ("term", "leader", "epoch", "applied", "digest")
        vals = {k: {p.get(k) for p in pings.values()} for k in keys}
        if all(len(v) == 1 and None not in v for v in vals.values()):
            return pings
        return None

    try:
        return wait_for(check, timeout, 0.1, "members converged")
    except HarnessError as e:
        raise HarnessError("%s; last pings %r" % (e, last.get("p")))


def up_nodes(trio, fakes_list, timeout=10.0):
    """Wait until every fake node is `up` in the map."""
    ids = [f.id for f in fakes_list]
    return wait_map(trio, lambda m: all(node_state(m, i) == "up"
                                        for i in ids),
                    timeout, "nodes %r up" % ids)

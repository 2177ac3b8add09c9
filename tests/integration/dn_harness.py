"""Helpers for the data node integration tests (test_datanode.py).

Two kinds of server behind one interface: a standalone `datanode` and a
real `redis-server` (Debian's, the reference the engine must match), each
started on a fresh 127.0.0.1 port with its output in a log file, waited for
with a bounded PING loop, and stopped with SIGTERM. RawConn speaks RESP over
a plain socket, so tests can send malformed or half requests and compare
exact error lines, which redis-py would rewrite into exception classes.
Every wait is bounded by a deadline; nothing here loops forever.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

import redis

from narf_harness import PORTS, HarnessError, tls_wrap, with_secret

HOST = "127.0.0.1"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "ERROR: ThreadSanitizer")
MB = 1024 * 1024


# ---------------------------------------------------------------------------
# Raw RESP


class Err(str):
    """An error reply, without its leading '-' ("ERR syntax error")."""


class Closed(Exception):
    """The server closed the connection before a whole reply arrived."""


# RESP3's types (HELLO 3), each its own class so that a test compares wire
# types and not only contents: a RESP3 map is not equal to the RESP2 flat
# array of the same items, a set not to an array, `,3` not to `:3`, `#t`
# not to `:1`, a verbatim string not to a bulk, `_` not to RESP2's None.


class _Typed:
    """Equal only to a value of the same class (and contents)."""

    __hash__ = None

    def __eq__(self, other):
        return type(self) is type(other) and super().__eq__(other)

    def __ne__(self, other):
        return not self == other


class Map(_Typed, dict):
    """%n: a map (keys that are arrays become tuples, to be hashable)."""


class Set(_Typed, list):
    """~n: a set, in the order the server sent it."""


class Push(_Typed, list):
    """>n: an out-of-band push message."""


class Verbatim(_Typed, bytes):
    """=n: a verbatim string; the bytes are the text after `fmt:`."""

    def __new__(cls, data, fmt):
        v = super().__new__(cls, data)
        v.format = fmt
        return v

    def __eq__(self, other):
        return (type(other) is Verbatim and self.format == other.format and
                bytes(self) == bytes(other))

    def __repr__(self):
        return "Verbatim(%r, %r)" % (bytes(self), self.format)


class BigNum(_Typed, int):
    """(n: a big number."""

    def __repr__(self):
        return "BigNum(%d)" % self


class Double:
    """,text: a double; compared by its text, so the digits Redis chose
    ("1.1000000000000001", "inf") must match exactly; float() gives the
    value."""

    __hash__ = None

    def __init__(self, text):
        self.text = text

    def __float__(self):
        return float(self.text)

    def __eq__(self, other):
        return type(other) is Double and self.text == other.text

    def __ne__(self, other):
        return not self == other

    def __repr__(self):
        return "Double(%r)" % self.text


class Bool:
    """#t or #f."""

    __hash__ = None

    def __init__(self, value):
        self.value = value

    def __bool__(self):
        return self.value

    def __eq__(self, other):
        return type(other) is Bool and self.value == other.value

    def __ne__(self, other):
        return not self == other

    def __repr__(self):
        return "Bool(%r)" % self.value


class Null:
    """_: RESP3's null (RESP2's `$-1` and `*-1` read as None)."""

    __hash__ = None

    def __bool__(self):
        return False

    def __eq__(self, other):
        return type(other) is Null

    def __ne__(self, other):
        return not self == other

    def __repr__(self):
        return "NULL3"


NULL3 = Null()


def _hashable(v):
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    return v


def encode(*args):
    """A multibulk request from str/bytes/int arguments."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, int):
            a = str(a).encode()
        elif isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class ScanError(HarnessError):
    """A reply scan_replies cannot take; got, errors and pos describe the
    good replies before it."""

    def __init__(self, msg, got, errors, pos):
        super().__init__(msg)
        self.got, self.errors, self.pos = got, errors, pos


def scan_replies(buf, need):
    """The complete replies at the start of buf, at most need of them, when
    each is a simple string, an integer, a bulk string or an error (a load
    generator's replies): (count, [(index, Err)], bytes they take). A reply
    cut short is left for the next read; any other type, or a bad bulk
    length, is a ScanError (a HarnessError) that carries the same three
    for the replies before it.
    """
    pos, got, errors = 0, 0, []
    while got < need:
        e = buf.find(b"\r\n", pos)
        if e < 0:
            break
        t = buf[pos]
        if t == 36:  # $
            try:
                ln = int(buf[pos + 1:e])
            except ValueError:
                raise ScanError("bad bulk length in %r" % buf[pos:e][:200],
                                got, errors, pos)
            end = e + 2 + (ln + 2 if ln >= 0 else 0)
            if len(buf) < end:
                break
            pos = end
        elif t == 43 or t == 58:  # + :
            pos = e + 2
        elif t == 45:  # -
            errors.append((got, Err(buf[pos + 1:e].decode("utf-8",
                                                           "replace"))))
            pos = e + 2
        else:
            raise ScanError("bad reply type in %r" % buf[pos:pos + 200], got,
                            errors, pos)
        got += 1
    return got, errors, pos


class RawConn:
    """One RESP connection over a plain socket.

    read() returns str for +simple, Err for -error, int for :n, bytes for
    $bulk, None for $-1 / *-1 and lists for arrays; after HELLO 3 also
    NULL3 for _, Map for %, Set for ~, Double for `,`, Bool for #, BigNum
    for (, Verbatim for =, Push for >, and Err for a !blob error (an |
    attribute is read and kept in self.attributes, the reply after it
    returned). Closed on EOF. read_bytes() returns one reply's exact bytes.
    """

    attributes = None  # the last | attribute map read
    _rec = None  # a list of the bytes taken while read_bytes() records

    def __init__(self, port, timeout=5.0, host=HOST):
        self.port = port
        self.sock = tls_wrap(
            socket.create_connection((host, port), timeout=timeout), port)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        if time.monotonic() > deadline:
            raise socket.timeout("no whole reply from port %d" % self.port)
        try:
            chunk = self.sock.recv(1 << 16)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise Closed("port %d closed the connection (buffered %r)"
                         % (self.port, self.buf[:200]))
        self.buf += chunk
        if len(self.buf) > 256 * MB:
            raise HarnessError("reply over 256 MiB")

    def _take(self, n):
        data, self.buf = self.buf[:n], self.buf[n:]
        if self._rec is not None:
            self._rec.append(data)
        return data

    def _line(self, deadline):
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        return self._take(self.buf.index(b"\r\n") + 2)[:-2]

    def _blob(self, n, deadline):
        while len(self.buf) < n + 2:
            self._fill(deadline)
        data = self._take(n + 2)
        if data[n:] != b"\r\n":
            raise HarnessError("no CRLF after a %d-byte blob: %r"
                               % (n, data[-20:]))
        return data[:n]

    def _reply(self, deadline):
        line = self._line(deadline)
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode("utf-8", "replace")
        if t == b"-":
            return Err(rest.decode("utf-8", "replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            return self._blob(n, deadline)
        if t == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._reply(deadline) for _ in range(n)]
        # RESP3
        if t == b"_" and rest == b"":
            return NULL3
        if t == b"#" and rest in (b"t", b"f"):
            return Bool(rest == b"t")
        if t == b",":
            return Double(rest.decode())
        if t == b"(":
            return BigNum(int(rest))
        if t == b"!":
            return Err(self._blob(int(rest), deadline).decode("utf-8",
                                                              "replace"))
        if t == b"=":
            data = self._blob(int(rest), deadline)
            if data[3:4] != b":":
                raise HarnessError("verbatim string without fmt: %r"
                                   % data[:20])
            return Verbatim(data[4:], data[:3].decode())
        if t in (b"%", b"|"):
            m = Map()
            for _ in range(int(rest)):
                k = self._reply(deadline)
                m[_hashable(k)] = self._reply(deadline)
            if t == b"%":
                return m
            self.attributes = m
            return self._reply(deadline)
        if t == b"~":
            return Set(self._reply(deadline) for _ in range(int(rest)))
        if t == b">":
            return Push(self._reply(deadline) for _ in range(int(rest)))
        raise HarnessError("bad reply type in %r" % line[:200])

    def read(self, timeout=None):
        return self._reply(time.monotonic() + (timeout or self.timeout))

    def read_bytes(self, timeout=None):
        """One whole reply, as the exact bytes the server sent."""
        self._rec = []
        try:
            self.read(timeout)
            return b"".join(self._rec)
        finally:
            self._rec = None

    def cmd(self, *args, timeout=None):
        self.send(encode(*args))
        return self.read(timeout)

    def cmd_bytes(self, *args, timeout=None):
        """Send a request; its reply's exact bytes."""
        self.send(encode(*args))
        return self.read_bytes(timeout)

    def read_errors(self, n, timeout=None):
        """Reads n replies that are simple strings, integers, bulk strings
        or errors, and returns only the errors, as [(index, text)]: a load
        generator's reader, which builds no reply it does not look at
        (read() builds every one). On Closed or a timeout, self.partial
        is the number of replies read before it and self.partial_errors
        the errors among them; so on a reply of another type (a
        HarnessError), which stays at the front of self.buf."""
        deadline = time.monotonic() + (timeout or self.timeout)
        got, errors = 0, []
        try:
            while True:
                try:
                    k, errs, pos = scan_replies(self.buf, n - got)
                except ScanError as e:
                    errors += [(got + i, x) for i, x in e.errors]
                    got += e.got
                    self.buf = self.buf[e.pos:]
                    raise
                errors += [(got + i, e) for i, e in errs]
                got += k
                self.buf = self.buf[pos:]
                if got == n:
                    return errors
                self._fill(deadline)
        finally:
            self.partial = got
            self.partial_errors = errors

    def at_eof(self, timeout=2.0):
        """True when the server closes the connection within timeout (any
        bytes that arrive first are kept in buf)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True
            self.buf += chunk
        self.sock.settimeout(self.timeout)
        return False


# ---------------------------------------------------------------------------
# /proc


def proc_status(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmSize) in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise HarnessError("no %s in /proc/%d/status" % (field, pid))


# ---------------------------------------------------------------------------
# Servers


class Server:
    """A server process on a fresh port with its output in log_path."""

    kind = "?"

    def __init__(self, tmpdir, name, password=None, **opts):
        self.tmpdir = str(tmpdir)
        self.name = name
        self.port = PORTS.take(1)[0]
        self.password = password
        self.opts = opts
        self.log_path = os.path.join(self.tmpdir, name + ".log")
        self.proc = None
        self.env = dict(os.environ)
        # Set when the test stopped the server itself (so the fixture does
        # not complain that it is gone).
        self.stopped_by_test = False
        self.exit_status = None

    def argv(self):
        raise NotImplementedError

    def start(self, timeout=15.0):
        argv = self.argv()
        with open(self.log_path, "ab") as log:
            log.write(("=== harness: %s\n" % " ".join(
                repr(a) if a == "" else a for a in argv)).encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                close_fds=True, env=self.env, cwd=self.tmpdir)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError("%s exited with %s while starting:\n%s" % (
                    self.name, self.proc.returncode, self.log_tail(30)))
            try:
                with RawConn(self.port, timeout=1.0) as c:
                    rep = c.cmd("PING")
                    if rep == "PONG" or (isinstance(rep, Err) and
                                         rep.startswith("NOAUTH")):
                        return
                    last = rep
            except (OSError, Closed) as e:
                last = e
            time.sleep(0.02)
        raise HarnessError("%s not answering PING on %d within %.0fs "
                           "(last: %r)" % (self.name, self.port, timeout,
                                           last))

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss(self):
        return proc_status(self.pid, "VmRSS")

    def vmsize(self):
        return proc_status(self.pid, "VmSize")

    def stop(self, wait=10.0):
        """SIGTERM, then SIGKILL after `wait` s; returns the exit status
        (negative for a signal, as subprocess reports it)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                self.exit_status = "SIGKILLed after %.0fs without exiting " \
                    "on SIGTERM" % wait
                return self.exit_status
        self.exit_status = self.proc.returncode
        return self.exit_status

    def client(self, **kw):
        """A redis-py client (bytes replies)."""
        kw.setdefault("socket_timeout", 20)
        kw.setdefault("socket_connect_timeout", 5)
        if self.password is not None:
            kw.setdefault("password", self.password)
        return redis.Redis(host=HOST, port=self.port, **kw)

    def raw(self, timeout=5.0, auth=True):
        c = RawConn(self.port, timeout)
        if auth and self.password is not None:
            rep = c.cmd("AUTH", self.password)
            if rep != "OK":
                raise HarnessError("AUTH failed: %r" % rep)
        return c

    def cli(self, *args, input=None, timeout=60, cluster=False):
        """Run redis-cli against this server; returns CompletedProcess
        (text)."""
        argv = [REDIS_CLI, "-h", HOST, "-p", str(self.port)]
        if cluster:
            argv.append("-c")
        env = dict(os.environ)
        if self.password is not None:
            env["REDISCLI_AUTH"] = self.password
        return subprocess.run(argv + list(args), input=input,
                              capture_output=True, timeout=timeout, env=env)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def describe(self):
        state = "alive" if self.alive() else "exit %s" % (
            self.exit_status if self.exit_status is not None else
            (self.proc.returncode if self.proc else "-"))
        return "%s %s (port %d, pid %s, %s)" % (
            self.kind, self.name, self.port,
            self.proc.pid if self.proc else "-", state)


class DataNode(Server):
    """build/datanode/datanode --standalone with narf's flags.

    opts: max_memory, eviction, max_clients, max_key_size, max_value_size,
    max_multibulk, max_query_buffer, timeout, log_level, bind,
    protected_mode ("yes"/"no"), users, cluster_secret (True: the suite's
    --cluster-secret-file) and extra_args (a list of further flags). A
    password goes in a --requirepass-file (the data node takes secrets from
    files only; password_via is accepted and ignored).
    """

    kind = "narf"
    FLAGS = {"max_memory": "--max-memory", "eviction": "--eviction",
             "max_clients": "--max-clients", "max_key_size": "--max-key-size",
             "max_value_size": "--max-value-size",
             "max_multibulk": "--max-multibulk",
             "max_query_buffer": "--max-query-buffer",
             "timeout": "--timeout", "log_level": "--log-level",
             "bind": "--bind", "protected_mode": "--protected-mode"}

    def __init__(self, binary, tmpdir, name="narf", **opts):
        super().__init__(tmpdir, name, **opts)
        self.binary = binary
        self.password_file = None
        if self.password is not None:
            self.password_file = os.path.join(self.tmpdir, name + ".pass")
            with open(self.password_file, "w") as f:
                f.write(self.password + "\n")
            os.chmod(self.password_file, 0o600)
        # ASan: report, do not hide leaks behind a zero exit.
        self.env.setdefault("ASAN_OPTIONS", "abort_on_error=0")

    def argv(self):
        a = [self.binary, "--standalone", "--port", str(self.port)]
        opts = dict(self.opts)
        opts.setdefault("log_level", "info")
        for k, flag in self.FLAGS.items():
            if opts.get(k) is not None:
                a += [flag, str(opts[k])]
        if self.password_file:
            a += ["--requirepass-file", self.password_file]
        if opts.get("users"):
            a += ["--users-file", self.users_file(opts["users"])]
        if opts.get("cluster_secret"):
            a = with_secret(a)
        return a + list(opts.get("extra_args", ()))


    def users_file(self, users):
        """Write users [(name, perm, password)] as a users file: the hash
        made here, independently of cachecli hash-password, as
        docs/security.md defines it (SHA-256 of salt then password)."""
        import hashlib
        path = os.path.join(self.tmpdir, self.name + ".users")
        with open(path, "w") as f:
            f.write("# made by dn_harness\n")
            for name, perm, password in users:
                salt = os.urandom(16)
                digest = hashlib.sha256(salt + password.encode()).hexdigest()
                f.write("%s %s sha256$%s$%s\n" % (name, perm, salt.hex(),
                                                   digest))
        os.chmod(path, 0o600)
        return path


# A narf permission as Redis ACL rules (for the side-by-side tests).
REDIS_ACL = {"read": ["+@read", "+@connection"],
             "readwrite": ["+@all", "-@admin", "-flushall", "-flushdb"],
             "admin": ["+@all"]}


class RedisServer(Server):
    """Debian's redis-server, configured like a narf standalone node: no
    persistence, one database, allkeys-lru. With cluster=True it is a
    one-node Redis Cluster that owns every slot (the shape a standalone
    datanode describes in CLUSTER SLOTS)."""

    kind = "redis"
    FLAGS = {"max_memory": "--maxmemory", "eviction": "--maxmemory-policy",
             "max_clients": "--maxclients", "timeout": "--timeout",
             "max_value_size": "--proto-max-bulk-len",
             "max_query_buffer": "--client-query-buffer-limit",
             "protected_mode": "--protected-mode"}

    def __init__(self, tmpdir, name="redis", cluster=False, **opts):
        super().__init__(tmpdir, name, **opts)
        self.cluster = cluster
        # The default bus port (port + 10000) may lie in the kernel's
        # ephemeral range: take a checked one instead.
        self.bus_port = PORTS.take(1)[0] if cluster else None
        unknown = set(opts) - set(self.FLAGS) - {"log_level", "password_via",
                                                "password", "bind", "users"}
        if unknown:
            raise HarnessError("redis-server has no equivalent of %s"
                               % sorted(unknown))

    def argv(self):
        a = [REDIS_SERVER, "--port", str(self.port),
             "--bind", self.opts.get("bind", HOST),
             "--save", "", "--appendonly", "no", "--dir", self.tmpdir,
             "--logfile", "", "--daemonize", "no", "--loglevel", "notice"]
        if not self.cluster:
            a += ["--databases", "1"]
        opts = dict(self.opts)
        opts.setdefault("eviction", "allkeys-lru")
        for k, flag in self.FLAGS.items():
            if opts.get(k) is not None:
                a += [flag, str(opts[k])]
        if self.password is not None:
            a += ["--requirepass", self.password]
        for name, perm, password in self.opts.get("users") or ():
            a += ["--user", name, "on", ">" + password, "~*",
                  "&*"] + REDIS_ACL[perm]
        if self.opts.get("users") and self.password is None:
            # narf disables the default user when a users file has no
            # --requirepass-file beside it.
            a += ["--user", "default", "off"]
        if self.cluster:
            a += ["--cluster-enabled", "yes", "--cluster-announce-ip", HOST,
                  "--cluster-port", str(self.bus_port),
                  "--cluster-config-file",
                  os.path.join(self.tmpdir, self.name + "-nodes.conf")]
        return a

    def start(self, timeout=15.0):
        super().start(timeout)
        if self.cluster:
            with self.raw() as c:
                rep = c.cmd("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
                if rep != "OK":
                    raise HarnessError("ADDSLOTSRANGE: %r" % rep)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    info = c.cmd("CLUSTER", "INFO")
                    if b"cluster_state:ok" in info:
                        break
                    time.sleep(0.05)
                else:
                    raise HarnessError("one-node cluster never ok: %r"
                                       % info)
        return self


# ---------------------------------------------------------------------------
# Misc


def wait_until(pred, timeout, interval=0.02, what="condition"):
    """Poll pred() until it returns a true value; return it, or raise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise HarnessError("%s not reached within %.1fs (last: %r)"
                       % (what, timeout, last))


def crc16(data):
    """CRC16-CCITT (XMODEM), as Redis Cluster hashes keys."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key):
    """Redis Cluster's slot of a key, with {hashtag} rules."""
    if isinstance(key, str):
        key = key.encode()
    s = key.find(b"{")
    if s >= 0:
        e = key.find(b"}", s + 1)
        if e > s + 1:
            key = key[s + 1:e]
    return crc16(key) % 16384

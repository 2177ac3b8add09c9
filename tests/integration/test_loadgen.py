"""narf-loadgen, the rebalance benchmark's load (tests/bench/loadgen.c):
it must count what a real cluster answers, count failures when a node
stops answering, and live through a node that answers garbage (its slot
table and reply parsers get bad input here, since a real node never sends
it)."""

import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from dn_harness import SANITIZER_MARKS, RawConn
from narf_harness import HOST, PORTS

LINE = re.compile(r"^\d+ \d+ \d+ \d+ \d+ \d+ \d+ \d+$")


def loadgen(build_dir):
    path = os.path.join(build_dir, "tests", "narf-loadgen")
    assert os.access(path, os.X_OK), path
    return path


def clean(err):
    """No sanitizer report in the load generator's stderr."""
    assert not any(m in err for m in SANITIZER_MARKS), err
    return err


def run(build_dir, *args, timeout=30):
    r = subprocess.run([loadgen(build_dir)] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    clean(r.stderr)
    return r


def lines(out):
    rows = [list(map(int, x.split())) for x in out.splitlines()]
    assert rows and all(LINE.match(x) for x in out.splitlines()), out
    secs = [r[0] for r in rows]
    assert secs == list(range(secs[0], secs[0] + len(secs))), secs
    return rows


def test_counts_a_real_cluster_load(make_cluster, build_dir):
    """Every request answered is counted once, none fails, and the SETs
    land on the cluster with the loader's value format."""
    cl = make_cluster(nodes=3)
    r = run(build_dir, "--seed", cl.nodes[0].addr, "--keys", "2000",
            "--seconds", "2", "--pipeline", "8", "--write-ratio", "0.5")
    assert r.returncode == 0, r.stderr
    rows = lines(r.stdout)
    ok = sum(x[1] for x in rows)
    assert ok > 1000 and sum(x[2] for x in rows) == 0, (rows, r.stderr)
    # batches of 8; one cut short by the stop may have counted a part
    assert 0 <= ok - 8 * sum(x[4] for x in rows) < 8
    found = 0
    for n in cl.nodes:
        with RawConn(n.port) as c:
            for i in range(0, 2000, 50):
                v = c.cmd("GET", "key:%d" % i)
                if isinstance(v, bytes):
                    assert re.match(rb"^%d:\d+:x+$" % i, v) and len(v) == 32
                    found += 1
    assert found > 0


def test_counts_failures_of_a_stopped_node(make_cluster, build_dir):
    """A node that stops answering (SIGSTOP): its batches fail after
    --timeout, the others' go on."""
    cl = make_cluster(nodes=3)
    victim = cl.nodes[1]
    t0 = time.time()
    p = subprocess.Popen([loadgen(build_dir), "--seed",
                          cl.nodes[0].addr + "," + cl.nodes[2].addr,
                          "--keys", "2000", "--seconds", "20", "--t0",
                          "%.3f" % t0, "--timeout", "300ms", "--pipeline",
                          "4"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        time.sleep(1.0)
        os.kill(victim.proc.pid, signal.SIGSTOP)
        stopped = time.time() - t0
        time.sleep(2.5)
        resumed = time.time() - t0
    finally:
        os.kill(victim.proc.pid, signal.SIGCONT)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=10)
    assert p.returncode == 0, clean(err)
    rows = lines(out)
    assert sum(x[2] for x in rows) > 0, (rows, err)
    assert "no reply within --timeout" in err, err
    # The other nodes kept answering in a second wholly inside the stop.
    inside = [r for r in rows if r[0] >= stopped and r[0] + 1 <= resumed]
    assert inside and all(r[1] > 0 for r in inside), (stopped, resumed,
                                                      rows)


class FakeNode:
    """What a real node never sends, for the load generator's parsers and
    its -MOVED paths (a real cluster takes those only in a role change).
    With once: every connection's first read is answered with once(port),
    then closed. Else each whole request on a connection kept open:
    CLUSTER SLOTS with `table`, anything else with `answer`."""

    def __init__(self, once=None):
        self.once = once
        self.served = 0
        self.port = PORTS.take(1)[0]
        self.table = b"*0\r\n"
        self.answer = b"+OK\r\n"
        self.requests = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, self.port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stop = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self.conn, args=(c,), daemon=True).start()

    def conn(self, c):
        if self.once is not None:
            try:
                c.settimeout(1.0)
                c.recv(4096)
                c.sendall(self.once(self.port))
                self.served += 1
            except OSError:
                pass
            c.close()
            return
        buf = b""
        c.settimeout(0.2)
        while not self.stop:
            try:
                chunk = c.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            out = []
            while True:
                argv, buf = self.take(buf)
                if argv is None:
                    break
                self.requests += 1
                out.append(self.table if argv[0].upper() == b"CLUSTER"
                           else self.answer)
            try:
                c.sendall(b"".join(out))
            except OSError:
                break
        c.close()

    @staticmethod
    def take(buf):
        """One whole command off the front of buf, or (None, buf)."""
        try:
            e = buf.index(b"\r\n")
            n, pos, argv = int(buf[1:e]), e + 2, []
            for _ in range(n):
                e = buf.index(b"\r\n", pos)
                ln = int(buf[pos + 1:e])
                if len(buf) < e + 2 + ln + 2:
                    return None, buf
                argv.append(buf[e + 2:e + 2 + ln])
                pos = e + 2 + ln + 2
            return argv, buf[pos:]
        except ValueError:
            return None, buf

    def close(self):
        self.stop = True
        self.sock.close()


@pytest.mark.parametrize("reply", [
    b"*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0",  # truncated
    b"*1\r\n*3\r\n:0\r\n:99999\r\n*2\r\n$9\r\n127.0.0.1\r\n:1\r\n",  # range
    b"*1\r\n*2\r\n:0\r\n:16383\r\n",  # no primary
    b"*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$99999\r\n127.0.0.1\r\n:1\r\n",
    b"*999999999999\r\n",  # oversized
    b"HTTP/1.1 200 OK\r\n\r\n",  # not RESP
], ids=["truncated", "slot-range", "no-primary", "bulk-length",
        "oversized", "not-resp"])
def test_bad_slot_table_is_refused_and_the_load_waits(build_dir, reply):
    g = FakeNode(once=lambda port: reply)
    try:
        r = run(build_dir, "--seed", "%s:%d" % (HOST, g.port), "--seconds",
                "1", "--refresh", "100")
    finally:
        g.close()
    assert r.returncode == 0, r.stderr
    assert sum(x[1] + x[2] for x in lines(r.stdout)) == 0
    assert g.served >= 2  # it kept asking


def test_bad_replies_to_requests_fail_them(build_dir):
    """A node whose table is fine but whose replies are not RESP: every
    batch fails, with the reason, and the load goes on."""
    def reply(port):
        return (b"*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n"
                b":%d\r\n" % port + b"!garbage\r\n")
    g = FakeNode(once=reply)
    try:
        r = run(build_dir, "--seed", "%s:%d" % (HOST, g.port), "--seconds",
                "1", "--keys", "100", "--pipeline", "4")
    finally:
        g.close()
    assert r.returncode == 0, r.stderr
    rows = lines(r.stdout)
    assert sum(x[1] for x in rows) == 0 and sum(x[2] for x in rows) > 0
    assert "not RESP" in r.stderr or "closed by the node" in r.stderr, \
        r.stderr


def slots_on(port):
    return (b"*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:%d\r\n"
            % port)


@pytest.mark.parametrize("b_answers", ["ok", "moved"])
def test_moved_is_followed_once(build_dir, b_answers):
    """-MOVED sends the request to the node named, first in its next batch
    there, and it counts as answered when that node runs it; moved again,
    it fails (a cluster client following one redirect). Node A leads every
    slot by its table and answers -MOVED to B; B answers +OK, or -MOVED
    back to A."""
    a, b = FakeNode(), FakeNode()
    try:
        a.table = b.table = slots_on(a.port)
        a.answer = b"-MOVED 0 127.0.0.1:%d\r\n" % b.port
        if b_answers == "moved":
            b.answer = b"-MOVED 0 127.0.0.1:%d\r\n" % a.port
        r = run(build_dir, "--seed", "%s:%d" % (HOST, a.port), "--seconds",
                "1", "--keys", "100", "--pipeline", "4")
    finally:
        a.close()
        b.close()
    assert r.returncode == 0, r.stderr
    rows = lines(r.stdout)
    ok, failed, moved = (sum(x[i] for x in rows) for i in (1, 2, 3))
    assert moved > 0 and b.requests > 0, (rows, r.stderr)
    # Every answer B gave was to a moved request, and the stop may cut
    # off any number still queued for B (A keeps answering while B is
    # busy), so: answered at B <= moved.
    if b_answers == "ok":
        assert failed == 0 and 0 < ok <= moved, rows
    else:
        assert ok == 0 and 0 < failed <= moved, rows
        assert "-MOVED 0 127.0.0.1:%d" % a.port in r.stderr, r.stderr


def test_flags(build_dir):
    r = run(build_dir, "--help")
    assert r.returncode == 0 and "--seed" in r.stdout
    for args, msg in ((["--keys", "2000"], "--seed is required"),
                      (["--seed", "nope"], "--seed 'nope'"),
                      (["--seed", "127.0.0.1:1", "--pipeline", "0"],
                       "--pipeline '0'"),
                      (["--seed", "127.0.0.1:1", "--write-ratio", "2"],
                       "--write-ratio '2'"),
                      (["--seed", "127.0.0.1:1", "--bogus"], "unrecognized"),
                      (["--seed", "127.0.0.1:1", "extra"], "'extra'")):
        r = run(build_dir, *args)
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr)

"""scripts/cluster.sh, the command-line contract of DESIGN.md: start with N
nodes, status, kill-node, restart, pause/resume, add-node, kill-leader and
stop, driven as a user would, against the binaries of NARF_BUILD.

One cluster per module, started with --no-setup in a tmp dir on a free
base port of the worker's port range; each test leaves it with every
process running again, so the next one starts from a healthy cluster, and
the tests run in order on one pytest-xdist worker (xdist_group). Waits are
bounded; nothing is timed.
"""
import json
import os
import stat
import subprocess

import pytest

from conftest import SANITIZER_MARKS
from narf_harness import (PORTS, SECRET, HarnessError, call, role_key,
                          wait_for)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "cluster.sh")
# One cluster for the whole file (the cl fixture), its tests in order: on
# one xdist worker (scripts/test.sh runs -n N --dist loadgroup).
pytestmark = pytest.mark.xdist_group("cluster_script")

# Generous but bounded (the ASan build is 2-3x slower).
SCRIPT_TIMEOUT = 200.0
READY_WAIT = 90.0
NODES = 3


def free_base():
    """A base port P whose cluster ports (coordinators P+1..3 and
    P+101..103, data nodes P+201..P+210) are all bindable now, taken from
    this pytest worker's own port range (narf_harness.PortAllocator), so
    no other worker hands out one of them."""
    ports = [i for i in (1, 2, 3, 101, 102, 103)]
    ports += [200 + k for k in range(1, 11)]
    return PORTS.take_base(ports)


class Script:
    """Runs scripts/cluster.sh with --dir DIR against one build."""

    def __init__(self, build, tmp):
        self.dir = str(tmp)
        self.env = dict(os.environ, NARF_BUILD=build)
        self.cli = os.path.join(build, "cli", "cachecli")
        self.base = None

    def run(self, *args, dir_=True):
        argv = [SCRIPT] + list(args) + (["--dir", self.dir] if dir_ else [])
        p = subprocess.run(argv, env=self.env, capture_output=True,
                           text=True, timeout=SCRIPT_TIMEOUT)
        print("$ %s -> %d\n%s%s" % (" ".join(argv[1:]), p.returncode,
                                    p.stdout, p.stderr))
        return p

    def ok(self, *args):
        p = self.run(*args)
        assert p.returncode == 0, "cluster.sh %s failed: %s" % (
            " ".join(args), p.stderr)
        return p.stdout

    def coords(self):
        return ["127.0.0.1:%d" % (self.base + i) for i in (1, 2, 3)]

    def pid(self, name):
        with open(os.path.join(self.dir, "pids", name + ".pid")) as f:
            return int(f.read().strip())

    def log(self, name):
        return os.path.join(self.dir, "logs", name + ".log")

    def status_json(self):
        p = subprocess.run([self.cli, "--coord", ",".join(self.coords()),
                            "--timeout", "2s", "status", "--json"],
                           capture_output=True, text=True, timeout=30)
        return json.loads(p.stdout) if p.returncode == 0 else None

    def wait_healthy(self, up, what):
        """Until `up` data nodes are up, every slot is assigned with its
        copies in sync, and nothing moves."""
        def healthy():
            s = self.status_json()
            if s is None:
                return False
            n = sum(1 for x in s["nodes"] if x["state"] == "up")
            sl = s["slots"]
            return (n == up and sl["assigned"] == 16384 and
                    sl["moving"] == 0 and sl["under_replicated"] == 0 and
                    sl.get("syncing", 0) == 0)
        wait_for(healthy, READY_WAIT, interval=0.2, what=what)

    def leader(self):
        for a in self.coords():
            try:
                r = call(a, {"op": "ping"}, timeout=1.0)
            except (OSError, ValueError, HarnessError):
                continue
            if r.get("role") == "leader":
                return r["id"]
        return None


def proc_state(pid):
    """The one-letter state in /proc/PID/stat (T when stopped), or None
    when the process is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def gone(pid):
    return proc_state(pid) in (None, "Z", "X")


@pytest.fixture(scope="module")
def cl(build_dir, tmp_path_factory):
    s = Script(build_dir, tmp_path_factory.mktemp("cluster_sh"))
    for attempt in range(3):
        s.base = free_base()
        p = s.run("start", "--no-setup", "--nodes", str(NODES),
                  "--base-port", str(s.base))
        if p.returncode == 0 or "is in use" not in p.stderr:
            break
    assert p.returncode == 0, "start failed: %s" % p.stderr
    s.start_out = p.stdout
    # The cluster has a secret of its own (cluster.sh made it): our API
    # calls prove it.
    suite_secret = os.environ.get("NARF_SECRET_FILE")
    os.environ["NARF_SECRET_FILE"] = os.path.join(s.dir, "cluster.secret")
    try:
        yield s
    finally:
        if suite_secret is None:
            os.environ.pop("NARF_SECRET_FILE", None)
        else:
            os.environ["NARF_SECRET_FILE"] = suite_secret
    p = s.run("stop")
    if p.returncode != 0:
        print("stop at teardown failed: %s" % p.stderr)
    # Every process the script started logged to DIR/logs: none may hold a
    # sanitizer report (the suite also runs against an ASan build).
    logs = os.path.join(s.dir, "logs")
    bad = []
    for name in sorted(os.listdir(logs)):
        with open(os.path.join(logs, name), errors="replace") as f:
            text = f.read()
        bad += ["%s: %r" % (name, m) for m in SANITIZER_MARKS if m in text]
    assert not bad, "sanitizer reports in logs: %s" % ", ".join(bad)


def test_start_prints_coords_and_logs(cl):
    """start returns with a ready cluster and says where CACHE_COORD and
    every process's log are."""
    out = cl.start_out
    assert "CACHE_COORD=%s" % ",".join(cl.coords()) in out
    assert os.path.join(cl.dir, "logs") + "/" in out
    for name in ("c1", "c2", "c3") + tuple("n%d" % k
                                           for k in range(1, NODES + 1)):
        assert name + ".log" in out
        assert os.path.getsize(cl.log(name)) > 0
    cl.wait_healthy(NODES, "the started cluster healthy")
    # It made a secret of its own, readable by us alone, and a node key
    # for the data nodes; it says where the secret is.
    secret = os.path.join(cl.dir, "cluster.secret")
    assert "NARF_SECRET_FILE=%s" % secret in out
    for path in (secret, os.path.join(cl.dir, "node.key")):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    text = open(secret).read().strip()
    assert len(text) == 64 and text.encode() != SECRET
    assert open(os.path.join(cl.dir, "node.key")).read().strip() == \
        "node:" + role_key("node", text.encode()).hex()
    # Without it the coordinators answer nothing.
    env = dict(os.environ, NARF_SECRET_FILE="")
    p = subprocess.run([cl.cli, "--coord", ",".join(cl.coords()), "status"],
                       capture_output=True, text=True, timeout=30, env=env)
    assert p.returncode != 0 and "secret" in p.stderr, p.stderr
    # The cluster serves data through cachecli.
    coord = ",".join(cl.coords())
    p = subprocess.run([cl.cli, "--coord", coord, "set", "greeting", "hi"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([cl.cli, "--coord", coord, "get", "greeting"],
                       capture_output=True, text=True, timeout=30)
    assert (p.returncode, p.stdout.strip()) == (0, "hi")


def test_status_lists_processes_and_logs(cl):
    """status shows every process alive with its log file, one leader, and
    exits 0."""
    out = cl.ok("status")
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line[:2] in ("c1", "c2", "c3") or line.startswith("n")}
    for name in ["c1", "c2", "c3"] + ["n%d" % k for k in range(1, NODES + 1)]:
        assert name in rows, out
        assert rows[name][2] == "alive", rows[name]
        assert rows[name][-1] == cl.log(name)
    assert sum(1 for n in ("c1", "c2", "c3") if rows[n][3] == "leader") == 1
    assert "logs: %s/logs/" % cl.dir in out


def test_kill_node_then_restart(cl):
    """kill-node (by the map's node id) kills the process with SIGKILL;
    restart starts it again and it rejoins."""
    s = cl.status_json()
    addr = "127.0.0.1:%d" % (cl.base + 202)
    nid = [n["id"] for n in s["nodes"]
           if n["addr"] == addr and n["state"] == "up"][0]
    pid = cl.pid("n2")
    assert cl.ok("kill-node", str(nid)).strip() == "n2"
    wait_for(lambda: gone(pid), 10.0, what="pid %d gone after kill -9" % pid)
    assert "dead" in [r for r in cl.ok("status").splitlines()
                      if r.startswith("n2 ")][0]
    p = cl.run("kill-node", "n2")
    assert p.returncode == 1 and "not running" in p.stderr
    cl.ok("restart", "n2")
    assert not gone(cl.pid("n2"))
    cl.wait_healthy(NODES, "n2 back after restart")


def test_pause_resume_data_node(cl):
    """pause stops a data node (state T) without killing it; resume lets
    it run again, and the cluster heals."""
    pid = cl.pid("n1")
    assert cl.ok("pause", "n1").strip() == "n1"
    assert proc_state(pid) == "T"
    assert "paused" in [r for r in cl.ok("status").splitlines()
                        if r.startswith("n1 ")][0]
    # Paused twice is still paused.
    assert cl.ok("pause", "n1").strip() == "n1"
    assert cl.ok("resume", "n1").strip() == "n1"
    assert proc_state(pid) not in (None, "T", "Z")
    assert cl.pid("n1") == pid
    cl.wait_healthy(NODES, "the cluster healthy after n1's pause")


def test_pause_resume_coordinator(cl):
    """pause cN stops a coordinator; the others keep (or elect) a leader;
    resume brings it back to answering ping."""
    leader = cl.leader()
    follower = [i for i in (1, 2, 3) if i != leader][0]
    name = "c%d" % follower
    pid = cl.pid(name)
    assert cl.ok("pause", name).strip() == name
    assert proc_state(pid) == "T"
    wait_for(lambda: cl.leader() is not None, READY_WAIT,
             what="a leader while %s is paused" % name)
    assert cl.ok("resume", name).strip() == name
    assert proc_state(pid) not in (None, "T", "Z")

    def answers():
        try:
            return call(cl.coords()[follower - 1], {"op": "ping"},
                        timeout=1.0).get("ok")
        except (OSError, ValueError, HarnessError):
            return False
    wait_for(answers, READY_WAIT, what="%s answers ping again" % name)


def test_add_node(cl):
    """add-node starts one more data node, which joins and takes its
    share."""
    assert cl.ok("add-node").strip() == "n%d" % (NODES + 1)
    assert not gone(cl.pid("n%d" % (NODES + 1)))
    cl.wait_healthy(NODES + 1, "the added node up and the map balanced")
    s = cl.status_json()
    new = [n for n in s["nodes"]
           if n["addr"] == "127.0.0.1:%d" % (cl.base + 200 + NODES + 1)][0]
    assert new["state"] == "up" and new["primaries"] > 0


def test_kill_leader_then_restart(cl):
    """kill-leader kills the coordinator leader and prints its name; the
    others elect a new leader; restart brings the old one back."""
    leader = cl.leader()
    assert leader is not None
    pid = cl.pid("c%d" % leader)
    assert cl.ok("kill-leader").strip() == "c%d" % leader
    wait_for(lambda: gone(pid), 10.0, what="pid %d gone after kill -9" % pid)
    wait_for(lambda: cl.leader() not in (None, leader), READY_WAIT,
             what="a new leader")
    cl.ok("restart", "c%d" % leader)
    p = cl.run("restart", "c%d" % leader)
    assert p.returncode == 1 and "is running" in p.stderr
    cl.wait_healthy(NODES + 1, "the cluster healthy after the leader kill")


def test_usage_errors_exit_2(cl):
    """A bad subcommand, flag or missing id exits 2 with a one-line reason
    and starts or stops nothing."""
    cases = [
        (("frobnicate",), "unknown command 'frobnicate'"),
        (("status", "--frob"), "unknown option '--frob'"),
        (("pause",), "pause needs an id"),
        (("resume",), "resume needs an id"),
        (("kill-node",), "kill-node needs an id"),
        (("status", "--nodes", "2"), "go with start only"),
        (("stop", "extra"), "unexpected argument 'extra'"),
    ]
    for args, msg in cases:
        p = cl.run(*args)
        assert p.returncode == 2, (args, p.returncode)
        assert msg in p.stderr, (args, p.stderr)
    p = cl.run(dir_=False)
    assert p.returncode == 2 and "usage:" in p.stderr
    # A start on a running cluster's dir is refused.
    p = cl.run("start", "--no-setup")
    assert p.returncode == 1 and "already running" in p.stderr
    # Nothing was disturbed.
    assert cl.ok("status")


def test_stop(cl):
    """stop ends every process it started (a paused one too), and status
    then exits 1."""
    pids = [cl.pid(n) for n in ("c1", "c2", "c3")]
    pids += [cl.pid("n%d" % k) for k in range(1, NODES + 2)]
    cl.ok("pause", "n3")
    cl.ok("stop")
    for pid in pids:
        wait_for(lambda: gone(pid), 10.0, what="pid %d gone" % pid)
    assert not os.listdir(os.path.join(cl.dir, "pids"))
    p = cl.run("status")
    assert p.returncode == 1
    assert "no coordinator answers as leader" in p.stderr

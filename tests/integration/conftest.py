"""pytest fixtures for the coordinator integration suite.

Run: NARF_BUILD=/abs/build/dir /usr/bin/python3 -m pytest -q tests/integration

Without NARF_BUILD the suite is skipped; with NARF_BUILD set but no
coordinator binary in it, every test fails (a broken build must not pass as
"skipped"). Each test gets its own trio in its own tmp dir with fresh ports;
at the end the trio is stopped with SIGTERM (SIGKILL after 10 s), every
member still running must exit 0, and on failure the tails of the logs are
printed.

Parallel runs (pytest-xdist, as scripts/test.sh does): every worker hands
out ports from its own range (narf_harness.PortAllocator). A test that must
not share the machine with others (timing-sensitive, machine-wide such as
network namespaces or firewall rules, or one that measures) is marked
`@pytest.mark.serial` (a whole file: `pytestmark = pytest.mark.serial`);
scripts/test.sh runs those after the others in a second pytest without
xdist, one at a time:

  pytest -n 4 --dist loadgroup -m "not serial" tests/integration
  pytest -p no:xdist -m serial tests/integration

Tests that share a module-scoped fixture (one cluster for the file) carry
`pytest.mark.xdist_group(name)` so --dist loadgroup keeps them, in order,
on one worker.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from narf_harness import FakeNode, SyncingFake, Trio, secret_file  # noqa: E402

# cachecli and the scripts the tests run find the suite's cluster secret
# here (a path: the secret itself never goes in the environment).
os.environ["NARF_SECRET_FILE"] = secret_file()

# Lines in a coordinator log that fail the test whatever else happened.
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "ERROR: ThreadSanitizer")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "serial: must not run concurrently with other tests "
        "(timing-sensitive, machine-wide, or measuring): scripts/test.sh "
        "runs these alone, after the parallel run")
    config.addinivalue_line(
        "markers", "plain_only(why): a long scenario whose code paths "
        "shorter tests also run; the sanitizer run (NARF_ONLY_NARF_KIND=1) "
        "leaves it to the plain run, to stay within CI's time")
    if not config.pluginmanager.hasplugin("xdist"):
        # -p no:xdist (the serial run) or no pytest-xdist: its marker still
        # names a group, not a typo.
        config.addinivalue_line(
            "markers", "xdist_group(name): pytest-xdist --dist loadgroup "
            "runs the group's tests on one worker")


def only_narf_kind(config, items):
    """NARF_ONLY_NARF_KIND=1 (scripts/test.sh's sanitizer run): the tests
    that run against both a redis-server and a data node keep only their
    narf half. The redis half proves what Redis does; the plain run has
    proved that already, and the sanitizers have nothing to find in it.
    So do the tests marked plain_only: long scenarios (20-30 s under the
    sanitizers) whose code paths shorter tests of the same run cover; the
    plain run still runs them."""
    if os.environ.get("NARF_ONLY_NARF_KIND") != "1":
        return
    keep, drop = [], []
    for item in items:
        cs = getattr(item, "callspec", None)
        if cs is not None and cs.params.get("kind") == "redis" or \
                item.get_closest_marker("plain_only") is not None:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(tryfirst=True)  # before -m selects and xdist reads groups
def pytest_collection_modifyitems(config, items):
    """Under xdist (-n) the serial tests share one xdist_group, so with
    --dist loadgroup they never run concurrently with each other; only a
    run without xdist (-m serial, as scripts/test.sh does) runs them
    alone. Also only_narf_kind()."""
    only_narf_kind(config, items)
    if not hasattr(config, "workerinput"):  # not an xdist worker
        return
    for item in items:
        if item.get_closest_marker("serial") is not None and \
                item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group("serial"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session")
def build_dir():
    build = os.environ.get("NARF_BUILD")
    if not build:
        pytest.skip("NARF_BUILD is not set (NARF_BUILD=/abs/build/dir "
                    "/usr/bin/python3 -m pytest -q tests/integration)")
    coord = os.path.join(build, "coordinator", "coord")
    if not (os.path.isfile(coord) and os.access(coord, os.X_OK)):
        pytest.fail("NARF_BUILD=%s but %s is missing or not executable"
                    % (build, coord), pytrace=False)
    return os.path.abspath(build)


class TrioFactory:
    def __init__(self, build, tmp_path):
        self.build = build
        self.tmp_path = tmp_path
        self.trios = []

    def __call__(self, start=True, **kw):
        sub = self.tmp_path / ("trio%d" % len(self.trios))
        sub.mkdir()
        t = Trio(self.build, sub, **kw)
        self.trios.append(t)
        if start:
            t.start()
        return t


@pytest.fixture
def make_trio(build_dir, tmp_path, request):
    """Factory: make_trio(node_timeout_ms=..., ...) starts a trio."""
    f = TrioFactory(build_dir, tmp_path)
    yield f
    failed = any(getattr(request.node, "rep_" + w, None) is not None and
                 getattr(request.node, "rep_" + w).failed
                 for w in ("setup", "call"))
    problems = []
    for t in f.trios:
        # Members that died on their own, or that the test stopped with
        # SIGTERM and did not exit 0.
        for c in t.coords:
            if c.proc is None or c.proc.poll() is None or c.killed_by_test:
                continue
            if c.terminated_by_test:
                if c.proc.returncode != 0:
                    problems.append("coord %d: SIGTERM gave exit status %s "
                                    "(want 0)" % (c.id, c.proc.returncode))
            else:
                problems.append("coord %d exited by itself with status %s"
                                % (c.id, c.proc.returncode))
        codes = {}
        for c in t.coords:
            was_alive = c.alive()
            rc = c.terminate()
            if was_alive:
                codes[c.id] = rc
        for cid, rc in codes.items():
            if rc != 0:
                problems.append("coord %d: SIGTERM gave exit status %s "
                                "(want 0)" % (cid, rc))
        for c in t.coords:
            text = c.log_text()
            for mark in SANITIZER_MARKS:
                if mark in text:
                    problems.append("coord %d log contains %r" % (c.id, mark))
        if failed or problems:
            print("\n" + t.logs(60))
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def trio(make_trio):
    """Three coordinators (default election timeout, node timeout 1000 ms)."""
    return make_trio(node_timeout_ms=1000)


@pytest.fixture
def fakes():
    """Factory of fake data nodes that are all stopped at the end of the
    test. They sync new replicas and hand over moving slots at once
    (SyncingFake) unless sync=False: the leader moves a primary to a node,
    or drops the copy a new one replaces, only once the new copy is in the
    ISR, and a live primary only through its handoff."""
    made = []

    def make(trio, start=True, sync=True, **kw):
        f = SyncingFake(trio, **kw) if sync else FakeNode(trio, **kw)
        made.append(f)
        if start:
            f.start()
        return f

    yield make
    for f in made:
        f.stop()


@pytest.fixture
def make_cluster(make_trio, build_dir, tmp_path, request):
    """make_cluster(nodes=3, node_args={index: [flags]}) starts a trio and
    the data nodes and waits until the cluster is ready (every slot has a
    primary and its replica in the ISR), within the test module's
    READY_WAIT seconds (default 60). At the end every data node still
    running must exit 0 on SIGTERM and no log may hold a sanitizer
    report."""
    from cluster_harness import Cluster

    ready_wait = getattr(request.module, "READY_WAIT", 60.0)
    made = []

    def make(nodes=3, **kw):
        c = Cluster(make_trio, build_dir, tmp_path, nodes=nodes, **kw)
        made.append(c)
        c.start(timeout=ready_wait)
        return c

    yield make
    failed = any(getattr(request.node, "rep_" + w, None) is not None and
                 getattr(request.node, "rep_" + w).failed
                 for w in ("setup", "call"))
    problems = []
    for c in made:
        problems += c.stop()
        if failed or problems:
            print("\n" + c.logs(60))
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)

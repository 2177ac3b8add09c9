"""Fixtures shared by the data node test files: a server factory that
starts redis-server or narf's datanode side by side, and clients of them.
Imported by name into each test file (fixtures must be in its namespace)."""

import os
import random
import socket
import subprocess
import time

import pytest
import redis

from dn_harness import (HOST, MB, REDIS_SERVER, SANITIZER_MARKS,
                        Closed, DataNode, Err, RawConn, RedisServer, encode,
                        key_slot, wait_until)

KINDS = ["redis", "narf"]
OOM = "OOM command not allowed when used memory > 'maxmemory'."

# ---------------------------------------------------------------------------
# Fixtures


def datanode_binary():
    build = os.environ.get("NARF_BUILD")
    if not build:
        pytest.skip("NARF_BUILD is not set (NARF_BUILD=/abs/build/dir "
                    "/usr/bin/python3 -m pytest -q tests/integration)")
    path = os.path.join(os.path.abspath(build), "datanode", "datanode")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("NARF_BUILD=%s but %s is missing or not executable"
                    % (build, path), pytrace=False)
    return path


class Servers:
    """Starts servers of either kind for one test and remembers them."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.made = []

    def __call__(self, kind, **opts):
        name = "%s%d" % (kind, len(self.made))
        if kind == "narf":
            s = DataNode(datanode_binary(), self.tmp_path, name, **opts)
        else:
            if not os.access(REDIS_SERVER, os.X_OK):
                pytest.skip("redis-server is not installed")
            s = RedisServer(self.tmp_path, name, **opts)
        self.made.append(s)
        s.start()
        return s


@pytest.fixture
def make_server(tmp_path, request):
    """Factory: make_server("narf"|"redis", **opts) starts a server; at the
    end each is stopped with SIGTERM and must exit 0 with a clean log."""
    f = Servers(tmp_path)
    yield f
    failed = any(getattr(request.node, "rep_" + w, None) is not None and
                 getattr(request.node, "rep_" + w).failed
                 for w in ("setup", "call"))
    problems = []
    for s in f.made:
        if s.proc is None:
            continue
        was_alive = s.alive()
        if not was_alive and not s.stopped_by_test:
            problems.append("%s died during the test (exit status %s)"
                            % (s.describe(), s.proc.returncode))
        rc = s.stop()
        if was_alive and rc != 0:
            problems.append("%s: SIGTERM gave exit status %s (want 0)"
                            % (s.describe(), rc))
        text = s.log_text()
        for mark in SANITIZER_MARKS:
            if mark in text:
                problems.append("%s log contains %r" % (s.describe(), mark))
    if failed or problems:
        for s in f.made:
            print("\n----- %s: tail of %s -----\n%s" % (
                s.describe(), s.log_path, s.log_tail(60)))
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def srv(make_server, kind):
    """A default server of the parametrized kind."""
    return make_server(kind)


@pytest.fixture
def r(srv):
    """A redis-py client of srv."""
    c = srv.client()
    yield c
    c.close()


@pytest.fixture
def c(srv):
    """A raw RESP connection to srv (exact replies and error lines)."""
    conn = srv.raw()
    yield conn
    conn.close()


def near(value, want, slack):
    return want - slack <= value <= want



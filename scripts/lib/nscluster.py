"""A narf cluster with every process on a host of its own (netns.Net): the
coordinator trio and the data nodes of tests/integration (narf_harness.Trio,
cluster_harness.Cluster), started with `ip netns exec HOST` and bound to
their host's address instead of a port on 127.0.0.1.

Every host has an address of its own, so the ports are fixed: a
coordinator's Raft port 7101 and API port 7001, a data node's RESP port
7201. Everything else (leader lookups, readiness, kill -9, SIGSTOP,
restarts, logs, the teardown's exit-status and sanitizer checks) is the
integration harness's own; this file only says where each process lives.
The caller must be on the client host (Net.enter_client) to reach them.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))), "tests", "integration"))

from cluster_harness import SANITIZER_MARKS, Cluster, DataNode  # noqa: E402
from dn_harness import RawConn  # noqa: E402
from narf_harness import (TLS_PORT_OF, TLS_PORTS, Coord,  # noqa: E402
                          HarnessError, Trio, suite_tls_dir, tls_context,
                          tls_flags)

COORD_RAFT_PORT = 7101
COORD_API_PORT = 7001
DATANODE_PORT = 7201
DATANODE_TLS_PORT = 7202  # NARF_TLS=1: --tls-port, the registered one


def wait_port(proc, addr, name, timeout):
    """Until something listens at addr (host:port), while proc (a Coord or
    DataNode) runs; raises with its log tail otherwise."""
    host, port = addr.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise HarnessError("%s exited with %s:\n%s" % (
                name, proc.proc.returncode if proc.proc else "-",
                proc.log_tail()))
        try:
            socket.create_connection((host, int(port)), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise HarnessError("%s not listening on %s after %.1fs" % (
        name, addr, timeout))


class NsCoord(Coord):
    """A coordinator on host `host` of net."""

    def __init__(self, net, host, *args, **kw):
        super().__init__(*args, **kw)
        self.net, self.host = net, host

    def argv(self):
        return self.net.exec_argv(self.host) + super().argv()

    def wait_listening(self, timeout=10.0):
        wait_port(self, self.api, "coord %d" % self.id, timeout)


class NsTrio(Trio):
    """Three coordinators on hosts c1, c2, c3 of net; coord_args are
    extra flags for every member (e.g. --min-isr 2)."""

    def __init__(self, net, build, tmpdir, coord_args=(), log_level="info"):
        self.build = build
        self.tmpdir = str(tmpdir)
        self.node_timeout_ms = None
        hosts = ["c1", "c2", "c3"]
        raft = ["%s:%d" % (net.ip(h), COORD_RAFT_PORT) for h in hosts]
        api = ["%s:%d" % (net.ip(h), COORD_API_PORT) for h in hosts]
        self.members = ",".join("%d=%s/%s" % (i + 1, raft[i], api[i])
                                for i in range(3))
        extra = list(coord_args) + (["--log-level", log_level]
                                    if log_level else [])
        # NARF_TLS=1: TLS on the API and Raft ports (narf_harness)
        self.tls_dir = suite_tls_dir()
        if self.tls_dir is not None:
            extra += tls_flags(self.tls_dir)
            TLS_PORTS[COORD_API_PORT] = tls_context(self.tls_dir)
        self.coords = [
            NsCoord(net, hosts[i], build, i + 1, self.members,
                    os.path.join(self.tmpdir, "coord%d" % (i + 1)),
                    os.path.join(self.tmpdir, "c%d.log" % (i + 1)),
                    api[i], raft[i], extra)
            for i in range(3)]


class NsDataNode(DataNode):
    """A data node on host `host` of net, bound to the host's address. A
    restart is a new process on the same host and port: a new node to the
    cluster (a new boot id, a new node id). It runs with --protected-mode
    no: the test's clients talk from the client host's address, not from
    loopback, and the cluster has no client password (protected mode
    would answer them -DENIED)."""

    def __init__(self, net, host, build, tmpdir, coords, log_level="info"):
        super().__init__(build, tmpdir, coords, host, port=DATANODE_PORT,
                         log_level=log_level)
        self.net, self.host = net, host
        self.ip = net.ip(host)
        self.addr = "%s:%d" % (self.ip, self.port)
        if self.tls_dir is not None:  # NARF_TLS=1: fixed ports here too
            TLS_PORTS.pop(self.tls_port, None)
            self.tls_port = DATANODE_TLS_PORT
            self.addr = "%s:%d" % (self.ip, self.tls_port)
            TLS_PORTS[self.tls_port] = tls_context(self.tls_dir)
            TLS_PORT_OF[self.port] = self.tls_port

    def argv(self):
        return (self.net.exec_argv(self.host) + super().argv() +
                ["--bind", self.ip, "--protected-mode", "no"])

    def wait_listening(self, timeout=10.0):
        wait_port(self, self.addr, self.name, timeout)

    def raw(self, timeout=5.0):
        return RawConn(self.port, timeout=timeout, host=self.ip)


class NsCluster(Cluster):
    """The trio and `nodes` data nodes (hosts n1..nN) of net, with their
    logs and coordinator data under tmpdir."""

    def __init__(self, net, build, tmpdir, nodes=3, coord_args=(),
                 log_level="info"):
        os.makedirs(str(tmpdir), exist_ok=True)
        self.trio = NsTrio(net, build, tmpdir, coord_args, log_level)
        self.tls_dir = self.trio.tls_dir
        self.build = build
        self.tmpdir = str(tmpdir)
        self.nodes = [NsDataNode(net, "n%d" % (i + 1), build, tmpdir,
                                 self.trio.apis, log_level)
                      for i in range(nodes)]

    def procs(self):
        """{host name: Coord or DataNode}."""
        out = {c.host: c for c in self.trio.coords}
        out.update((d.host, d) for d in self.nodes)
        return out

    def start(self, timeout=40.0):
        self.trio.start()
        return super().start(timeout)

    def stop(self):
        """SIGTERM every process (data nodes first); the problems: an exit
        status other than 0 on SIGTERM, a process that died by itself, a
        sanitizer report in any log."""
        problems = super().stop()
        for c in self.trio.coords:
            if c.proc is not None and c.proc.poll() is not None and \
                    not c.killed_by_test and not c.terminated_by_test:
                problems.append("coord %d exited by itself with status %s"
                                % (c.id, c.proc.returncode))
        for cid, rc in self.trio.stop().items():
            c = self.trio[cid]
            if rc != 0 and c.terminated_by_test:
                problems.append("coord %d: SIGTERM gave exit status %s "
                                "(want 0)" % (cid, rc))
            text = c.log_text()
            for mark in SANITIZER_MARKS:
                if mark in text:
                    problems.append("coord %d log contains %r" % (cid, mark))
        return problems

    def kill_all(self):
        """SIGKILL every process at once (a round that never healed: the
        next one starts from a fresh cluster)."""
        for p in self.procs().values():
            if p.alive():
                p.proc.kill()
                p.proc.wait(timeout=10)

    def logs(self, n=40):
        return self.trio.logs(n) + "\n" + super().logs(n)

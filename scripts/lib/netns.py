"""Hosts of their own for the partition test: one network namespace per
process, wired to one bridge, with iptables cuts between them.

Layout of a run (every name starts with the run's prefix
narfnem-<pid>-<tag>-, so two runs never meet and a crashed run's leftovers
are recognised by their dead pid):

    PREFIX-sw      the switch: a bridge "br0" and one veth end per host
    PREFIX-c1 ...  a cluster host: "lo" and "eth0" (the other veth end)
                   with 10.213.X.<n>/24, X random per run
    PREFIX-cl      the client host: the test's own sockets

The root namespace is not touched: no interface, route or rule is added to
it. The test process itself talks from the client host: enter_client()
moves the calling thread into PREFIX-cl with setns(2), and the threads it
starts afterwards are born there too (a new thread inherits its creator's
namespaces); leave_client() moves it back. Processes are started with
`ip netns exec PREFIX-h BINARY ...`, which execs the binary in place, so
the pid Popen reports is the binary's own (SIGSTOP and SIGKILL reach it).

Cuts are iptables rules in the receiving host's INPUT chain (drop packets
from this peer), so a cut is silent, as a lost link is: a dropped SYN or
segment is retransmitted until the peer gives up, never refused at once
(an OUTPUT drop would fail the sender's send with EPERM at once). A cut in
both directions is a rule on each side. The client host is never cut, so
clients keep reaching a host the cluster has lost. heal() flushes every
rule.

Everything is removed by destroy(): the processes still inside a host
(the test's own, started by it), then the namespaces (deleting a namespace
deletes its veth ends, and the switch takes the bridge with it). Every
command runs under a timeout.
"""

import ctypes
import os
import random
import re
import signal
import subprocess
import time

PREFIX = "narfnem"
CLONE_NEWNET = 0x40000000
CMD_TIMEOUT = 20.0
IP = "ip"


class NetError(RuntimeError):
    """A namespace, link or rule command failed."""


def run(argv, input=None, timeout=CMD_TIMEOUT, check=True):
    """Run a command; its stdout. Raises NetError when it fails (check)."""
    try:
        p = subprocess.run(argv, input=input, capture_output=True,
                           text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NetError("%s: %s" % (" ".join(argv), e))
    if check and p.returncode != 0:
        raise NetError("%s: exit %d: %s" % (" ".join(argv), p.returncode,
                                            p.stderr.strip()))
    return p.stdout


def unavailable():
    """Why namespaces cannot be used here (a sentence), or None when they
    can: root, `ip netns` and iptables-restore are needed, and a probe
    namespace must be creatable (a container may forbid it)."""
    if os.geteuid() != 0:
        return "needs root (it creates network namespaces and iptables rules)"
    for tool in (IP, "iptables-restore", "iptables"):
        if not any(os.access(os.path.join(d, tool), os.X_OK)
                   for d in os.environ.get("PATH", "").split(":") +
                   ["/usr/sbin", "/sbin"]):
            return "%s is not installed (Debian: %s)" % (
                tool, "iproute2" if tool == IP else "iptables")
    probe = "%s-%d-probe" % (PREFIX, os.getpid())
    try:
        run([IP, "netns", "add", probe])
        try:
            run([IP, "netns", "exec", probe, "iptables", "-S", "INPUT"])
        finally:
            run([IP, "netns", "del", probe], check=False)
    except NetError as e:
        return "cannot use network namespaces here: %s" % e
    return None


def list_netns():
    out = run([IP, "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _kill_inside(ns):
    """SIGKILL every process in namespace ns (our own children: nothing
    else is ever started there), except this process itself."""
    pids = run([IP, "netns", "pids", ns], check=False).split()
    for p in pids:
        pid = int(p)
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


def clean_stale():
    """Remove the namespaces of earlier runs whose process is gone (a run
    killed before its cleanup); returns their names."""
    gone = []
    pat = re.compile(r"^%s-(\d+)-" % PREFIX)
    for ns in list_netns():
        m = pat.match(ns)
        if not m or _pid_alive(int(m.group(1))):
            continue
        _kill_inside(ns)
        run([IP, "netns", "del", ns], check=False)
        gone.append(ns)
    return gone


class Net:
    """The namespaces, bridge and addresses of one run; see the module
    doc. hosts: the cluster hosts' names (e.g. c1 c2 c3 n1 n2 n3), each
    at most 12 characters."""

    CLIENT = "cl"
    SWITCH = "sw"

    def __init__(self, hosts, rnd=None):
        rnd = rnd or random.Random()
        self.hosts = list(hosts)
        if self.CLIENT in self.hosts or self.SWITCH in self.hosts:
            raise ValueError("host names cl and sw are taken")
        if len(self.hosts) > 200:
            raise ValueError("at most 200 hosts")
        self.prefix = "%s-%d-%04x" % (PREFIX, os.getpid(),
                                      random.SystemRandom().getrandbits(16))
        self.subnet = rnd.randrange(1, 255)
        self.ips = {self.CLIENT: self._addr(2)}
        for i, h in enumerate(self.hosts):
            self.ips[h] = self._addr(10 + i)
        self.created = []      # namespaces made so far, to delete
        self.cut_hosts = set()  # hosts holding rules
        self.cuts = []         # (from, to) pairs dropped
        self._root_fd = None

    def _addr(self, n):
        return "10.213.%d.%d" % (self.subnet, n)

    def ns(self, host):
        return "%s-%s" % (self.prefix, host)

    def ip(self, host):
        return self.ips[host]

    def exec_argv(self, host):
        """The argv prefix that runs a command on host."""
        return [IP, "netns", "exec", self.ns(host)]

    # --- lifecycle

    def create(self):
        """Make the switch, the hosts and the client, and check that the
        client reaches every host (bounded). On failure, whatever was made
        is removed before the error is raised."""
        clean_stale()
        try:
            sw = self.ns(self.SWITCH)
            self._add_ns(sw)
            run([IP, "-n", sw, "link", "add", "br0", "type", "bridge"])
            run([IP, "-n", sw, "link", "set", "br0", "up"])
            for h in [self.CLIENT] + self.hosts:
                self._add_host(h)
        except BaseException:
            self.destroy()
            raise
        return self

    def _add_ns(self, ns):
        run([IP, "netns", "add", ns])
        self.created.append(ns)

    def _add_host(self, h):
        ns, sw = self.ns(h), self.ns(self.SWITCH)
        self._add_ns(ns)
        run([IP, "-n", sw, "link", "add", "v" + h, "type", "veth", "peer",
             "name", "eth0", "netns", ns])
        run([IP, "-n", sw, "link", "set", "v" + h, "master", "br0", "up"])
        run([IP, "-n", ns, "addr", "add", self.ips[h] + "/24", "dev",
             "eth0"])
        run([IP, "-n", ns, "link", "set", "lo", "up"])
        run([IP, "-n", ns, "link", "set", "eth0", "up"])

    def destroy(self):
        """Back to the root namespace, kill what runs inside, delete every
        namespace of this run (also ones a half-done create left)."""
        self.leave_client()
        names = set(self.created) | {n for n in list_netns()
                                     if n.startswith(self.prefix + "-")}
        for ns in sorted(names):
            _kill_inside(ns)
        for ns in sorted(names):
            run([IP, "netns", "del", ns], check=False)
        self.created = []
        self.cut_hosts = set()
        self.cuts = []

    # --- the client host

    def enter_client(self):
        """Move the calling thread (and the threads it starts from now on)
        into the client host."""
        libc = ctypes.CDLL(None, use_errno=True)
        if self._root_fd is None:
            self._root_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open("/run/netns/" + self.ns(self.CLIENT), os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise NetError("setns(%s): %s" % (
                    self.ns(self.CLIENT), os.strerror(ctypes.get_errno())))
        finally:
            os.close(fd)

    def leave_client(self):
        """Back to the namespace enter_client() was called from."""
        if self._root_fd is None:
            return
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(self._root_fd, CLONE_NEWNET) != 0:
            raise NetError("setns(root): %s" % os.strerror(ctypes.get_errno()))
        os.close(self._root_fd)
        self._root_fd = None

    # --- cuts

    def cut(self, frm, to, both=True):
        """Drop every packet from each host in frm to each host in to (and
        back, with both)."""
        self.cut_many([(frm, to, both)])

    def cut_many(self, cuts):
        """cut() for a list of (frm, to, both), applied to all hosts at
        once (one iptables-restore per host, in parallel), so a partition
        starts at about one moment."""
        rules = {}
        for frm, to, both in cuts:
            for a in frm:
                for b in to:
                    if a == b:
                        continue
                    pairs = [(a, b), (b, a)] if both else [(a, b)]
                    for src, dst in pairs:
                        rules.setdefault(dst, set()).add(src)
                        self.cuts.append((src, dst))
        procs = []
        for dst, srcs in sorted(rules.items()):
            text = "*filter\n%sCOMMIT\n" % "".join(
                "-A INPUT -s %s/32 -j DROP\n" % self.ips[s]
                for s in sorted(srcs))
            self.cut_hosts.add(dst)
            procs.append(self._spawn(dst, ["iptables-restore", "--noflush"],
                                     text))
        self._wait_all(procs)

    def heal(self):
        """Remove every cut."""
        procs = [self._spawn(h, ["iptables", "-F", "INPUT"])
                 for h in sorted(self.cut_hosts)]
        self._wait_all(procs)
        self.cut_hosts = set()
        self.cuts = []

    def rules(self, host):
        """The INPUT rules on host (iptables -S), for logs and tests."""
        return run(self.exec_argv(host) + ["iptables", "-S", "INPUT"])

    def _spawn(self, host, argv, text=None):
        p = subprocess.Popen(self.exec_argv(host) + argv,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        return p, text, host, argv

    def _wait_all(self, procs):
        deadline = time.monotonic() + CMD_TIMEOUT
        errors = []
        for p, text, host, argv in procs:
            try:
                _, err = p.communicate(text, timeout=max(
                    0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                errors.append("%s on %s: timed out" % (" ".join(argv), host))
                continue
            if p.returncode != 0:
                errors.append("%s on %s: exit %d: %s" % (
                    " ".join(argv), host, p.returncode, err.strip()))
        if errors:
            raise NetError("; ".join(errors))

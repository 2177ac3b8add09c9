"""scripts/cluster.sh start --tls: a throwaway CA and certificates in
DIR/tls, every coordinator and data node started with TLS, and the lines
that tell the user how to connect (cachecli, redis-cli, NARF_TLS_DIR).

The whole start runs only once the coordinator and the data node take
--tls-cluster (their TLS branches): until then the test that needs it
skips, and another checks that the script says so instead of starting a
cluster that cannot work.
"""
import os
import stat
import subprocess

import pytest
import redis

from narf_harness import PORTS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "cluster.sh")
SCRIPT_TIMEOUT = 200.0
NODES = 2


def has_tls_cluster(binary):
    r = subprocess.run([binary, "--help"], capture_output=True, text=True,
                       timeout=10)
    return "--tls-cluster" in r.stdout + r.stderr


def run(build, *args):
    env = dict(os.environ, NARF_BUILD=build)
    env.pop("NARF_TLS_DIR", None)
    p = subprocess.run([SCRIPT] + list(args), env=env, capture_output=True,
                       text=True, timeout=SCRIPT_TIMEOUT)
    print("$ cluster.sh %s -> %d\n%s%s" % (" ".join(args), p.returncode,
                                            p.stdout, p.stderr))
    return p


def free_base():
    offsets = [1, 2, 3, 101, 102, 103]
    offsets += [200 + k for k in range(1, NODES + 1)]
    offsets += [300 + k for k in range(1, NODES + 1)]
    return PORTS.take_base(offsets)


def test_tls_goes_with_start_only(build_dir, tmp_path):
    """--tls is a start option: elsewhere it is a usage error (exit 2)."""
    p = run(build_dir, "stop", "--tls", "--dir", str(tmp_path))
    assert p.returncode == 2, p
    assert "--tls" in p.stderr and "go with start only" in p.stderr, p


def test_start_tls_needs_a_tls_coordinator(build_dir, tmp_path):
    """With a coordinator that has no --tls-cluster, start --tls stops
    before starting anything and says why."""
    if has_tls_cluster(os.path.join(build_dir, "coordinator", "coord")):
        pytest.skip("coord has --tls-cluster: test_start_tls covers it")
    p = run(build_dir, "start", "--tls", "--no-setup", "--nodes", "0",
            "--base-port", str(free_base()), "--dir", str(tmp_path))
    assert p.returncode == 1, p
    assert "--tls-cluster" in p.stderr, p
    assert not os.listdir(os.path.join(str(tmp_path), "pids")) \
        if os.path.isdir(os.path.join(str(tmp_path), "pids")) else True


def test_start_tls(build_dir, tmp_path):
    """start --tls makes DIR/tls (keys mode 600), prints NARF_TLS_DIR and
    the cachecli and redis-cli lines; cachecli and redis-py reach the
    cluster over TLS with those files, and stop stops it."""
    for b in (os.path.join(build_dir, "coordinator", "coord"),
              os.path.join(build_dir, "datanode", "datanode")):
        if not has_tls_cluster(b):
            pytest.skip("%s has no --tls-cluster yet (its TLS branch)"
                        % os.path.basename(b))
    d = str(tmp_path)
    base = free_base()
    p = run(build_dir, "start", "--tls", "--no-setup", "--nodes",
            str(NODES), "--base-port", str(base), "--dir", d)
    try:
        assert p.returncode == 0, p
        tls = os.path.join(d, "tls")
        assert "NARF_TLS_DIR=%s\n" % tls in p.stdout, p
        assert "--tls --cacert %s/ca.crt --cert %s/client.crt --key " \
            "%s/client.key" % (tls, tls, tls) in p.stdout, p
        assert "redis-cli -c --tls" in p.stdout, p
        for f in ("ca.crt", "server.crt", "server.key", "client.crt",
                  "client.key"):
            assert os.path.isfile(os.path.join(tls, f)), f
        for f in ("server.key", "client.key", "ca.key"):
            mode = stat.S_IMODE(os.stat(os.path.join(tls, f)).st_mode)
            assert mode == 0o600, (f, oct(mode))
        cli = os.path.join(build_dir, "cli", "cachecli")
        coords = ",".join("127.0.0.1:%d" % (base + i) for i in (1, 2, 3))
        env = dict(os.environ, NARF_TLS_DIR=tls,
                   NARF_SECRET_FILE=os.path.join(d, "cluster.secret"))
        r = subprocess.run([cli, "--coord", coords, "set", "k", "v"],
                           env=env, capture_output=True, text=True,
                           timeout=60)
        assert (r.returncode, r.stdout) == (0, "OK\n"), r
        r = subprocess.run([cli, "--coord", coords, "--tls", "--cacert",
                            os.path.join(tls, "ca.crt"), "--cert",
                            os.path.join(tls, "client.crt"), "--key",
                            os.path.join(tls, "client.key"), "status"],
                           env=dict(env, NARF_TLS_DIR=""),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r
        # The map advertises TLS ports (P+300+k); redis-py over TLS.
        for k in range(1, NODES + 1):
            c = redis.Redis(host="127.0.0.1", port=base + 300 + k, ssl=True,
                            ssl_ca_certs=os.path.join(tls, "ca.crt"),
                            ssl_certfile=os.path.join(tls, "client.crt"),
                            ssl_keyfile=os.path.join(tls, "client.key"),
                            ssl_check_hostname=False, socket_timeout=10)
            assert c.ping()
            c.close()
        assert run(build_dir, "status", "--dir", d).returncode == 0
    finally:
        run(build_dir, "stop", "--dir", d)

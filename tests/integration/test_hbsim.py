"""narf-hbsim, the scale simulator of `scripts/bench.sh scale`
(tests/bench/hbsim.c): its fake data nodes speak the real protocol to a
real coordinator trio. No timing is asserted: the machine is shared."""

import json
import os
import subprocess

import pytest

from dn_harness import SANITIZER_MARKS
from narf_harness import secret_file


def hbsim(build_dir):
    path = os.path.join(build_dir, "tests", "narf-hbsim")
    assert os.access(path, os.X_OK), path
    return path


def run(build_dir, *args, timeout=60):
    r = subprocess.run([hbsim(build_dir)] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    assert not any(m in r.stderr for m in SANITIZER_MARKS), r.stderr
    return r


@pytest.mark.plain_only("narf-hbsim is a benchmark tool, not a product "
                        "binary; the coordinators' delta and failover "
                        "paths it drives run under the sanitizers in "
                        "test_cluster_join.py and test_cluster_faults.py")
def test_twenty_nodes_join_beat_and_one_falls_silent(trio, build_dir):
    """Twenty fake nodes authenticate with the node role, join, have their
    heartbeats answered and follow the map; the one that falls silent is
    marked down in the map the others hold. The silent phase ends once
    the map is quiet again, capped at 25 s (under the sanitizers on a
    loaded machine 9 s was once too few)."""
    pids = ",".join(str(c.pid()) for c in trio.coords)
    r = run(build_dir, "--coords", ",".join(trio.apis), "--pids", pids,
            "--secret-file", secret_file(), "--nodes", "20",
            "--scenario", "silent", "--phase-cap-s", "25",
            "--settle-s", "9", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["joined"] == 20, out
    join, silent = out["phases"]
    assert join["phase"] == "join" and silent["phase"] == "silent", out
    assert join["beats"] > 0 and silent["beats"] > 0, out
    assert join["maps"] > 0 and join["map_bytes"] > 0, out
    assert out["epoch"] > 0 and out["term"] > 0, out
    assert silent["detect_ms"] >= 0 and not silent["capped"], out
    # Protocol "delta" (the default): the nodes follow the map through
    # the entries in the replies (the failover's entries at least: at 20
    # nodes a big assign can be worth more than half the map, and comes
    # as "full"); every batch followed its node's epoch and the canonical
    # map took every entry.
    assert out["protocol"] == "delta", out
    assert silent["delta_replies"] > 0, out
    assert join["delta_errors"] == 0 and silent["delta_errors"] == 0, out
    # The human table came first: a header and one row per phase.
    rows = r.stdout.strip().splitlines()
    assert rows[0].split()[0] == "phase" and rows[1].startswith("join")


def test_bad_flags_are_refused(build_dir, tmp_path):
    """Missing or malformed flags get a clear error and status 2; --help
    prints the usage."""
    r = run(build_dir, "--help")
    assert r.returncode == 0 and "--nodes" in r.stdout
    r = run(build_dir, "--nodes", "20")
    assert r.returncode == 2 and "required" in r.stderr, r.stderr
    base = ["--coords", "127.0.0.1:1", "--secret-file", secret_file()]
    r = run(build_dir, *base, "--nodes", "0")
    assert r.returncode == 2 and "--nodes" in r.stderr, r.stderr
    r = run(build_dir, *base, "--nodes", "5", "--scenario", "region")
    assert r.returncode == 2 and "--scenario" in r.stderr, r.stderr
    r = run(build_dir, *base, "--nodes", "5", "--scenario", "zone")
    assert r.returncode == 2 and "--zones" in r.stderr, r.stderr
    r = run(build_dir, *base, "--nodes", "5", "--protocol", "diff")
    assert r.returncode == 2 and "--protocol" in r.stderr, r.stderr
    bad = tmp_path / "short.secret"
    bad.write_text("short\n")
    r = run(build_dir, "--coords", "127.0.0.1:1", "--secret-file",
            str(bad), "--nodes", "5")
    assert r.returncode == 2 and "secret" in r.stderr, r.stderr

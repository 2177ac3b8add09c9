"""Integration tests of the coordinator's settings and of what it refuses
(docs/protocol.md, docs/safety.md).

The `settings` request changing replication and the node timeout through
the log; ill-formed requests, out-of-range settings (min_isr, a node timeout
under twice the election timeout, among them) and unknown nodes refused with
the connection kept open; and the flags `coord` refuses at start (unsafe
timing, min ISR, on_lost). Real `coord` processes on 127.0.0.1; fake data
nodes through the `fakes` fixture (conftest.py). The rest of the trio's
behaviour is test_coord.py's.
"""

from narf_harness import (Conn, balanced, call_leader, copies_ok, leader_map,
                          node_state, up_nodes, wait_converged, wait_leader,
                          wait_map)


def test_ill_formed_requests_get_errors_and_keep_connection(trio, fakes):
    """Unknown ops, missing or ill-typed fields, out-of-range settings and
    unknown nodes get unknown_op/bad_request/unknown_node and the connection
    stays open; empty lines are ignored and pipelined requests are answered
    in order."""
    leader, _ = wait_leader(trio)
    node = fakes(trio)
    up_nodes(trio, [node])
    cases = [
        ({"op": "frobnicate"}, "unknown_op"),
        ({"op": ""}, "unknown_op"),
        ({}, "bad_request"),
        ({"op": 5}, "bad_request"),
        ({"op": "join", "boot_id": "b"}, "bad_request"),
        ({"op": "join", "addr": 42, "boot_id": "b"}, "bad_request"),
        ({"op": "join", "addr": None, "boot_id": "b"}, "bad_request"),
        ({"op": "join", "addr": "127.0.0.1:7"}, "bad_request"),
        ({"op": "join", "addr": "127.0.0.1:7", "boot_id": ""},
         "bad_request"),
        ({"op": "join", "addr": "127.0.0.1:7", "boot_id": "x" * 65},
         "bad_request"),
        ({"op": "join", "addr": "127.0.0.1:7", "boot_id": "a\nb"},
         "bad_request"),
        ({"op": "join", "addr": "127.0.0.1:7", "boot_id": 7},
         "bad_request"),
        ({"op": "heartbeat"}, "bad_request"),
        ({"op": "heartbeat", "node": "one", "boot_id": node.boot_id,
          "epoch": 0}, "bad_request"),
        ({"op": "heartbeat", "node": 999999, "boot_id": "x", "epoch": 0},
         "unknown_node"),
        ({"op": "heartbeat", "node": node.id, "boot_id": "other-boot",
          "epoch": 0}, "unknown_node"),
        ({"op": "leave"}, "bad_request"),
        ({"op": "leave", "node": 999999}, "unknown_node"),
        ({"op": "map", "epoch": "x"}, "bad_request"),
        ({"op": "settings", "replication": 0}, "bad_request"),
        ({"op": "settings", "replication": 6}, "bad_request"),
        ({"op": "settings", "replication": "2"}, "bad_request"),
        ({"op": "settings", "node_timeout_ms": 99}, "bad_request"),
        ({"op": "settings", "node_timeout_ms": 60001}, "bad_request"),
        ({"op": "settings", "ack": "maybe"}, "bad_request"),
        ({"op": "settings", "moves": 0}, "bad_request"),
        ({"op": "settings", "moves": 16385}, "bad_request"),
        ({"op": "settings", "moves": "8"}, "bad_request"),
        # Below twice the election timeout (300 ms): docs/safety.md.
        ({"op": "settings", "node_timeout_ms": 599}, "bad_request"),
        ({"op": "settings", "min_isr": 0}, "bad_request"),
        ({"op": "settings", "min_isr": 3}, "bad_request"),
        ({"op": "settings", "min_isr": 2, "replication": 1},
         "bad_request"),
        ({"op": "settings", "min_isr": "2"}, "bad_request"),
        ({"op": "leave", "node": 1, "if_room": "yes"}, "bad_request"),
    ]
    before = leader_map(trio)
    with Conn(leader.api, timeout=5) as c:
        for req, code in cases:
            rep = c.request(req)
            assert rep.get("ok") is False and rep.get("error") == code, (
                req, rep, code)
            # still open and in order
            assert c.request({"op": "ping"})["ok"] is True, req
        # Empty lines are ignored; pipelined requests answered in order.
        c.send_raw(b'\n\n{"op":"ping"}\n\n{"op":"frob"}\n{"op":"status"}\n')
        r1, r2, r3 = c.read(), c.read(), c.read()
        assert r1["ok"] and r1["role"] == "leader", r1
        assert r2["error"] == "unknown_op", r2
        assert r3["ok"] and "status" in r3, r3
        rep = c.request({"op": "settings"})
        assert rep["ok"] and rep["settings"]["replication"] == 2, rep
    after = leader_map(trio)
    bad = [n for n in after["nodes"] if n["addr"] == "127.0.0.1:7"]
    assert not bad, bad
    assert after["settings"] == before["settings"]
    assert node_state(after, node.id) == "up"


def test_settings_change_is_replicated_and_applied(trio, fakes):
    """settings changes replication and node timeout through the log: a
    third copy is added to every slot, and every member reports the new
    settings in the map."""
    wait_leader(trio)
    nodes = [fakes(trio) for _ in range(3)]
    ids = [f.id for f in nodes]
    wait_map(trio, lambda m: balanced(m, ids, 2), 60, "3 nodes balanced",
             interval=0.2)
    rep = call_leader(trio, {"op": "settings"})
    assert rep["ok"] and rep["settings"]["replication"] == 2, rep
    e0 = rep["epoch"]
    rep = call_leader(trio, {"op": "settings", "replication": 3,
                             "node_timeout_ms": 1200})
    assert rep["ok"] and rep["epoch"] > e0, rep
    assert rep["settings"]["replication"] == 3, rep
    assert rep["settings"]["node_timeout_ms"] == 1200, rep
    m = wait_map(trio, lambda m: balanced(m, ids, 3), 30,
                 "every slot on all 3 nodes", interval=0.2)
    copies_ok(m)
    assert m["settings"]["replication"] == 3
    assert m["settings"]["node_timeout_ms"] == 1200
    st = call_leader(trio, {"op": "status"})["status"]
    assert st["replication"] == 3, st
    pings = wait_converged(trio)
    assert len({p["epoch"] for p in pings.values()}) == 1


def test_removed_node_leaves_the_map_after_retention(trio, fakes):
    """removed_retention_ms: a node marked down, then removed by a leave,
    holds nothing; once the leader has seen it so for the retention it
    leaves the map and `status` (a node_forget entry), its id is not
    reused, and its heartbeats are refused as a removed node's are."""
    wait_leader(trio)
    rep = call_leader(trio, {"op": "settings", "removed_retention_ms": -1})
    assert rep.get("error") == "bad_request", rep
    rep = call_leader(trio, {"op": "settings", "removed_retention_ms": 300})
    assert rep["ok"] and rep["settings"]["removed_retention_ms"] == 300, rep
    keep, gone = fakes(trio), fakes(trio)
    up_nodes(trio, [keep, gone])
    gone.stop()
    wait_map(trio, lambda m: node_state(m, gone.id) == "down", 10,
             "silent node down", interval=0.1)
    rep = call_leader(trio, {"op": "leave", "node": gone.id})
    assert rep["ok"], rep
    m = wait_map(trio, lambda m: node_state(m, gone.id) is None, 10,
                 "removed node forgotten", interval=0.1)
    assert node_state(m, keep.id) == "up"
    assert m["next_node"] == gone.id + 1, m
    st = call_leader(trio, {"op": "status"})["status"]
    assert gone.id not in [n["id"] for n in st["nodes"]], st
    rep = call_leader(trio, {"op": "heartbeat", "node": gone.id,
                             "boot_id": gone.boot_id, "epoch": m["epoch"]})
    assert rep.get("error") == "unknown_node", rep
    pings = wait_converged(trio)
    assert len({p["epoch"] for p in pings.values()}) == 1


def test_unsafe_timing_flags_refused(build_dir, tmp_path):
    """coord refuses, with exit 2 and one line naming the rule, the settings
    that would break the safety argument (docs/safety.md): a node timeout
    under twice the election timeout or four heartbeat intervals, an
    election timeout under 200 ms, a min ISR above the copies."""
    import os
    import subprocess

    from narf_harness import HOST, PORTS
    coord = os.path.join(build_dir, "coordinator", "coord")
    p = PORTS.take(2)
    base = [coord, "--id", "1", "--data-dir", str(tmp_path / "c1"),
            "--members", "1=%s:%d/%s:%d" % (HOST, p[0], HOST, p[1])]
    cases = [
        (["--node-timeout", "500"], "election timeout"),
        (["--node-timeout", "900", "--election-timeout", "500"],
         "election timeout"),
        (["--election-timeout", "150"], "--election-timeout"),
        (["--min-isr", "3"], "--min-isr"),
        (["--min-isr", "2", "--replicas", "1"], "--min-isr"),
        (["--min-isr", "0"], "--min-isr"),
        (["--min-isr", "x"], "--min-isr"),
        (["--on-lost", "maybe"], "--on-lost"),
    ]
    for args, what in cases:
        out = subprocess.run(base + args, capture_output=True, text=True,
                             timeout=10, stdin=subprocess.DEVNULL)
        assert out.returncode == 2, (args, out.returncode, out.stderr)
        assert what in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) <= 2, out.stderr
    assert not os.path.exists(tmp_path / "c1")
    out = subprocess.run([coord, "--help"], capture_output=True, text=True,
                         timeout=10)
    assert out.returncode == 0 and "--min-isr" in out.stdout
    assert "--on-lost" in out.stdout

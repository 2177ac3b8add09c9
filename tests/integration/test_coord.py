"""Integration tests of the coordinator trio (docs/protocol.md is the contract).

Real `coord` processes on 127.0.0.1, killed for real; fake data nodes
(narf_harness.FakeNode, SyncingFake through the `fakes` fixture in
conftest.py) join and heartbeat like datanodes do. Every wait is a poll with
a deadline; measured times are printed (pytest -s shows them).

Covered here: election, joins and the map, slot assignment, ISR changes and
handoffs, leader failover, restarts, failure detection, redirects, bad
framing, status, leave, pause and SIGTERM, and snapshots. The settings
request, ill-formed and out-of-range requests, and the flags coord refuses
at start are test_coord_settings.py's.
"""

import json
import socket
import threading
import time
import uuid

from narf_harness import (NSLOTS, Conn, HarnessError, balanced, call,
                          call_leader, copies_ok, counts, expand_slots,
                          get_map, join, leader_map, moving_ranges,
                          node_by_id, node_state, unused_addr, up_nodes,
                          wait_converged, wait_for, wait_leader, wait_map)


def moving_slots(m):
    """Number of slots with a pending move in map m."""
    return sum(r["to"] - r["from"] + 1 for r in m["slots"] if r.get("move"))


def wait_stable(trio, quiet=0.6, timeout=20.0):
    """The leader's map once its epoch has not moved for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    m = leader_map(trio)
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        m2 = leader_map(trio)
        if m2["epoch"] != m["epoch"]:
            m, since = m2, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return m2
    raise HarnessError("map epoch still moving after %.1fs (at %d)" % (
        timeout, m["epoch"]))


# ---------------------------------------------------------------------------
# 1. election


def test_elects_exactly_one_leader(trio):
    """The trio elects exactly one leader and both followers report the same
    term and leader id (and the leader's API address)."""
    t0 = time.monotonic()
    leader, pings = wait_leader(trio, timeout=15)
    print("first election: leader %d after %.3fs" % (
        leader.id, time.monotonic() - t0))
    # Stays that way: a second look a little later agrees.
    time.sleep(0.5)
    pings = trio.pings()
    for cid, p in pings.items():
        assert p is not None and p["ok"] is True, pings
        assert p["id"] == cid, pings
    roles = sorted(p["role"] for p in pings.values())
    assert roles == ["follower", "follower", "leader"], pings
    assert len({p["term"] for p in pings.values()}) == 1, pings
    assert {p["leader"] for p in pings.values()} == {leader.id}, pings
    assert {p.get("leader_api") for p in pings.values()} == {leader.api}, \
        pings
    assert pings[leader.id]["role"] == "leader"


def test_first_map_is_initialised(make_trio):
    """The first map a new cluster's leader serves already holds the
    coordinators table and the command-line settings."""
    trio = make_trio(node_timeout_ms=1500, replicas=3)
    deadline = time.monotonic() + 15
    first = None
    while first is None and time.monotonic() < deadline:
        for c in trio.coords:
            try:
                rep = call(c.api, {"op": "map"}, 1.0)
            except (OSError, ValueError):
                continue
            if rep.get("ok"):
                first = rep
                break
    assert first is not None, "no member served a map within 15 s"
    m = first["map"]
    assert sorted(c["api"] for c in m["coordinators"]) == sorted(trio.apis), m
    assert m["settings"]["node_timeout_ms"] == 1500, m["settings"]
    assert m["settings"]["replication"] == 3, m["settings"]
    assert m["settings"]["moves"] == 1024, m["settings"]


# ---------------------------------------------------------------------------
# 2. join rules and map


def test_join_ids_retries_incarnations_and_map_epochs(trio):
    """join gives fresh ids, a retried join returns the same id, a new boot
    id on the same address gets a new id and marks the old one down, and map
    answers `current` for the current epoch."""
    wait_leader(trio)
    r1, addr, boot = join(trio)
    assert r1["ok"] is True and isinstance(r1["node"], int), r1
    assert r1["node"] > 0 and isinstance(r1["epoch"], int), r1

    again, _, _ = join(trio, addr, boot)
    assert again["ok"] is True and again["node"] == r1["node"], (r1, again)

    other, other_addr, _ = join(trio)
    assert other["ok"] and other["node"] != r1["node"], (r1, other)

    boot2 = uuid.uuid4().hex
    r2, _, _ = join(trio, addr, boot2)
    assert r2["ok"] and r2["node"] not in (r1["node"], other["node"]), r2
    assert r2["epoch"] > r1["epoch"], (r1, r2)

    rep = get_map(trio)
    m = rep["map"]
    assert rep["epoch"] == m["epoch"], rep
    ids = [n["id"] for n in m["nodes"]]
    assert len(ids) == len(set(ids)), m["nodes"]
    assert m["next_node"] > max(ids), m
    old = node_by_id(m, r1["node"])
    new = node_by_id(m, r2["node"])
    assert old is not None and old["state"] == "down", m["nodes"]
    assert old["addr"] == addr and old["boot_id"] == boot, old
    assert new["state"] == "joining", new
    assert new["addr"] == addr and new["boot_id"] == boot2, new
    assert node_by_id(m, other["node"])["addr"] == other_addr
    assert len(m["slots"]) >= 1 and m["settings"]["replication"] == 2, m
    expand_slots(m)  # ranges cover 0..16383

    # (test_first_map_is_initialised checks the very first map.)
    m = wait_map(trio, lambda m: len(m["coordinators"]) == 3, 5,
                 "coordinators table seeded")
    assert sorted(c["api"] for c in m["coordinators"]) == sorted(trio.apis)
    assert sorted(c["raft"] for c in m["coordinators"]) == sorted(
        c.raft for c in trio.coords)
    cur = call_leader(trio, {"op": "map", "epoch": m["epoch"]})
    assert cur == {"ok": True, "current": True, "epoch": m["epoch"]}, cur
    older = call_leader(trio, {"op": "map", "epoch": m["epoch"] - 1})
    assert older["ok"] and older.get("map") == m, older


# ---------------------------------------------------------------------------
# 3. slot assignment


def test_first_node_gets_every_slot_then_three_nodes_balance(trio, fakes):
    """A first node becomes up after its first heartbeat and then owns every
    slot; with three up nodes each leads 16384/3 (+-1) slots and every slot
    has one replica on another node (replication 2)."""
    wait_leader(trio)
    a = fakes(trio, start=False)
    a.join()
    m = leader_map(trio)
    assert node_state(m, a.id) == "joining", m["nodes"]
    t0 = time.monotonic()
    a.start()
    m = wait_map(trio, lambda m: node_state(m, a.id) == "up" and all(
        s[0] == a.id for s in expand_slots(m)), 15,
        "first node up and owning every slot")
    print("first node up with all 16384 slots after %.3fs" % (
        time.monotonic() - t0))
    assert all(s[1] == () for s in expand_slots(m)), \
        "one node cannot hold a replica of its own slot"
    copies_ok(m)

    b = fakes(trio)
    c = fakes(trio)
    ids = [a.id, b.id, c.id]
    t0 = time.monotonic()
    m = wait_map(trio, lambda m: balanced(m, ids, 2), 60, "3 nodes balanced",
                 interval=0.2)
    print("3 nodes balanced after %.3fs (epoch %d)" % (
        time.monotonic() - t0, m["epoch"]))
    # Primaries can be even while replicas still move (staged waves):
    # judge the layout once the map has stopped changing.
    m = wait_stable(trio)
    assert balanced(m, ids, 2), counts(m)
    copies_ok(m)
    cnt = counts(m)
    for i in ids:
        assert node_state(m, i) == "up"
        assert NSLOTS // 3 - 1 <= cnt[i][0] <= NSLOTS // 3 + 1, cnt
        # replicas are spread too (about 1/3 each)
        assert abs(cnt[i][1] - NSLOTS / 3) <= NSLOTS * 0.02, cnt

    st = call_leader(trio, {"op": "status"})["status"]
    cnt = counts(m)
    for n in st["nodes"]:
        if n["id"] in ids:
            assert [n["primaries"], n["replicas"]] == cnt[n["id"]], (n, cnt)
    assert st["slots"]["assigned"] == NSLOTS, st["slots"]
    # "under replicated" (fewer in-sync copies than the replication
    # factor) agrees with the map, whatever syncs are still under way.
    short = sum(1 for prim, reps, isr in expand_slots(m)
                if prim and 1 + len(isr) < 2)
    assert st["slots"]["under_replicated"] == short, (st["slots"], short)
    syncing = sum(1 for prim, reps, isr in expand_slots(m)
                  if prim and len(isr) < len(reps))
    assert st["slots"]["syncing"] == syncing, (st["slots"], syncing)


# ---------------------------------------------------------------------------
# 3b. ISR changes and staged moves


def leader_applied(trio):
    """How many map commands the leader's FSM applied (ping's `commands`),
    to see whether a request made a log entry (the log also carries the
    leader's barriers, which renew its proof that it leads)."""
    leader, _ = wait_leader(trio)
    return leader.ping()["commands"]


def test_isr_add_and_drop_and_staged_primary_moves(trio, fakes):
    """A second node first gets every slot as a replica outside the ISR and
    no primary; `isr add` puts it in the ISR of the listed slots (reply after
    the entry applied, with its epoch), and only then does the leader hand it
    primaries; `isr drop` takes it out of the ISR of every slot its primary
    leads; bad requests are refused without a log entry. New copies are
    bounded by the `moves` setting (slots syncing or moving at once)."""
    wait_leader(trio)
    a = fakes(trio, sync=False)
    wait_map(trio, lambda m: all(s == (a.id, (), ())
                                 for s in expand_slots(m)), 15,
             "first node owns every slot")
    b = fakes(trio, sync=False)
    # b syncs nothing (a fake): 1024 slots (the default `moves`) get b
    # outside their ISR, and the others wait.
    m = wait_map(trio, lambda m: sum(s == (a.id, (b.id,), ())
                                     for s in expand_slots(m)) == 1024, 15,
                 "1024 slots replicated to b outside the ISR")
    m = wait_stable(trio)
    slots = list(expand_slots(m))
    assert sum(s == (a.id, (b.id,), ()) for s in slots) == 1024, counts(m)
    assert sum(s == (a.id, (), ()) for s in slots) == NSLOTS - 1024, \
        counts(m)
    rep = call_leader(trio, {"op": "settings", "moves": NSLOTS})
    assert rep.get("ok") and rep["settings"]["moves"] == NSLOTS, rep
    m = wait_map(trio, lambda m: all(s == (a.id, (b.id,), ())
                                     for s in expand_slots(m)), 15,
                 "every slot replicated to b outside the ISR")
    # The planner wants half the primaries on b, but b has synced nothing:
    # the leader waits, the map stays as it is.
    m = wait_stable(trio)
    assert all(s == (a.id, (b.id,), ()) for s in expand_slots(m)), counts(m)
    e0 = m["epoch"]
    st = call_leader(trio, {"op": "status"})["status"]["slots"]
    assert st["under_replicated"] == NSLOTS and st["syncing"] == NSLOTS, st

    base = {"op": "isr", "node": a.id, "boot_id": a.boot_id, "peer": b.id}
    bad = [
        (dict(base, add=[[5, 1]]), "bad_request"),
        (dict(base, add=[[0, 16384]]), "bad_request"),
        (dict(base, add=[[-1, 3]]), "bad_request"),
        (dict(base, add=[[1]]), "bad_request"),
        (dict(base, add=[1, 2]), "bad_request"),
        (dict(base, add="0-9"), "bad_request"),
        (dict(base, add=[[0, 0]] * (NSLOTS + 1)), "bad_request"),
        (dict(base), "bad_request"),
        (dict(base, drop=False), "bad_request"),
        (dict(base, drop=True, add=[[0, 1]]), "bad_request"),
        (dict(base, peer=999999, drop=True), "bad_request"),
        (dict(base, peer=a.id, drop=True), "bad_request"),
        (dict(base, peer="2", drop=True), "bad_request"),
        ({k: v for k, v in base.items() if k != "peer"}, "bad_request"),
        ({k: v for k, v in base.items() if k != "boot_id"}, "bad_request"),
        (dict(base, boot_id="other-boot", drop=True), "unknown_node"),
        (dict(base, node=999999, drop=True), "unknown_node"),
    ]
    applied = leader_applied(trio)
    for req, code in bad:
        rep = call_leader(trio, req)
        assert rep.get("ok") is False and rep.get("error") == code, (
            req if len(str(req)) < 300 else str(req)[:300], rep)
    assert leader_applied(trio) == applied, "a bad isr request was logged"
    assert leader_map(trio)["epoch"] == e0

    # An empty add changes nothing and is answered at once.
    rep = call_leader(trio, dict(base, add=[]))
    assert rep == {"ok": True, "epoch": e0}, rep

    # Slots 0..99 and 200 now hold b in sync. a stays their primary (it is
    # live: the ones bound for b get a pending move, for a's handoff).
    rep = call_leader(trio, dict(base, add=[[0, 99], [200, 200], [50, 60]]))
    assert rep["ok"] is True and rep["epoch"] >= e0 + 1, rep
    m = wait_stable(trio)
    assert m["epoch"] >= rep["epoch"]
    for i, (prim, reps, isr) in enumerate(expand_slots(m)):
        listed = i < 100 or i == 200
        if not listed:
            # Not listed: untouched (b out of sync, so a keeps them).
            assert (prim, reps, isr) == (a.id, (b.id,), ()), (i, prim, reps,
                                                              isr)
        else:
            assert (prim, reps, isr) == (a.id, (b.id,), (b.id,)), (
                i, prim, reps, isr)
    assert moving_slots(m) > 0

    # Every slot in sync: the leader hands b its half of the primaries,
    # through a's handoffs (at most `moves`, 1024 by default, at once).
    rep = call_leader(trio, dict(base, add=[[0, NSLOTS - 1]]))
    assert rep["ok"] is True and rep["epoch"] > e0, rep

    def handed(m):
        ranges = moving_ranges(m, a.id)
        if ranges:
            call_leader(trio, {"op": "handoff", "node": a.id,
                               "boot_id": a.boot_id, "slots": ranges})
        return balanced(m, [a.id, b.id], 2) and not moving_slots(m)

    m = wait_map(trio, handed, 15, "primaries shared once b is in sync")
    m = wait_stable(trio)
    for prim, reps, isr in expand_slots(m):
        assert isr == reps, (prim, reps, isr)

    # a loses b: b leaves the ISR of every slot a leads, and only those.
    e1 = m["epoch"]
    rep = call_leader(trio, dict(base, drop=True))
    assert rep["ok"] is True and rep["epoch"] == e1 + 1, (rep, e1)
    m = wait_stable(trio)
    led = {a.id: 0, b.id: 0}
    for prim, reps, isr in expand_slots(m):
        led[prim] += 1
        assert isr == (() if prim == a.id else (a.id,)), (prim, reps, isr)
    assert led[a.id] > 0 and led[b.id] > 0, led
    st = call_leader(trio, {"op": "status"})["status"]
    assert st["slots"]["under_replicated"] == led[a.id], (st["slots"], led)
    assert st["slots"]["syncing"] == led[a.id], (st["slots"], led)
    # Dropping again changes no ISR, but is recorded on the node (an add
    # sent before it may still arrive and must be refused): a new epoch.
    applied = leader_applied(trio)
    rep = call_leader(trio, dict(base, drop=True))
    assert rep == {"ok": True, "epoch": m["epoch"] + 1}, (rep, m["epoch"])
    assert leader_applied(trio) == applied + 1
    m = leader_map(trio)
    assert [n.get("isr_dropped") for n in m["nodes"]
            if n["id"] == b.id] == [m["epoch"]], m["nodes"]
    # An add whose syncs began before that drop is refused as stale and
    # logs nothing that changes the map.
    rep = call_leader(trio, dict(base, add=[[0, 16383]],
                                 since=m["epoch"] - 1))
    assert rep.get("ok") is False and rep.get("error") == "stale_epoch", rep
    assert leader_map(trio)["epoch"] == m["epoch"]
    # A peer the map knows in any state may be dropped (a replica that was
    # just marked down): a's slots have no such replica, nothing changes.
    c, _, _ = join(trio)
    rep = call_leader(trio, dict(base, peer=c["node"], drop=True))
    assert rep["ok"] is True, rep
    # b reports the same about a for the slots b leads.
    rep = call_leader(trio, {"op": "isr", "node": b.id,
                             "boot_id": b.boot_id, "peer": a.id,
                             "drop": True})
    assert rep["ok"] is True, rep
    m = leader_map(trio)
    assert all(isr == () for _, _, isr in expand_slots(m))


def test_handoff_moves_primaries_between_live_nodes(trio, fakes):
    """A primary bound for a live node's in-sync replica is not replaced by
    the leader: the slot gets `move` (primary, copies and slot epoch as
    they were; at most 1024 slots at once), and a `handoff` from the
    primary (reply after the entry applied) makes the target primary with a
    new slot epoch and the old primary in the ISR; only matching slots
    change, a repeat changes nothing, bad requests cost no log entry, and
    an `isr drop` of the target clears its moves."""
    wait_leader(trio)
    a = fakes(trio, sync=False)
    wait_map(trio, lambda m: all(s == (a.id, (), ())
                                 for s in expand_slots(m)), 15,
             "first node owns every slot")
    # Every slot syncing at once (b is a fake that never syncs), then the
    # default bound of moves in flight for the handoffs.
    rep = call_leader(trio, {"op": "settings", "moves": NSLOTS})
    assert rep.get("ok"), rep
    b = fakes(trio, sync=False)
    wait_map(trio, lambda m: all(s == (a.id, (b.id,), ())
                                 for s in expand_slots(m)), 15,
             "every slot replicated to b outside the ISR")
    rep = call_leader(trio, {"op": "settings", "moves": 1024})
    assert rep.get("ok"), rep
    slot_epochs = {r["from"]: r["epoch"] for r in leader_map(trio)["slots"]}
    rep = call_leader(trio, {"op": "isr", "node": a.id, "boot_id": a.boot_id,
                             "peer": b.id, "add": [[0, NSLOTS - 1]]})
    assert rep["ok"] is True, rep
    m = wait_stable(trio)
    moving = moving_slots(m)
    assert 0 < moving <= 1024, moving
    st = call_leader(trio, {"op": "status"})["status"]["slots"]
    assert st["moving"] == moving, (st, moving)
    for r in m["slots"]:
        # Nothing but the move has changed: a leads, b in sync.
        assert (r["primary"], r["replicas"], r["isr"]) == (
            a.id, [b.id], [b.id]), r
        assert r.get("move") in (None, b.id), r
    assert all(slot_epochs.get(r["from"], r["epoch"]) == r["epoch"]
               for r in m["slots"] if r.get("move")), m["slots"][:4]

    base = {"op": "handoff", "node": a.id, "boot_id": a.boot_id}
    bad = [
        (dict(base, slots=[[5, 1]]), "bad_request"),
        (dict(base, slots=[[0, 16384]]), "bad_request"),
        (dict(base, slots=[[-1, 3]]), "bad_request"),
        (dict(base, slots=[[1]]), "bad_request"),
        (dict(base, slots=[1, 2]), "bad_request"),
        (dict(base, slots="0-9"), "bad_request"),
        (dict(base, slots=[[0, 0]] * (NSLOTS + 1)), "bad_request"),
        (dict(base), "bad_request"),
        ({k: v for k, v in base.items() if k != "boot_id"}, "bad_request"),
        (dict(base, node="1", slots=[[0, 1]]), "bad_request"),
        (dict(base, boot_id="other-boot", slots=[[0, 1]]), "unknown_node"),
        (dict(base, node=999999, slots=[[0, 1]]), "unknown_node"),
    ]
    applied = leader_applied(trio)
    for req, code in bad:
        rep = call_leader(trio, req)
        assert rep.get("ok") is False and rep.get("error") == code, (
            req if len(str(req)) < 300 else str(req)[:300], rep)
    assert leader_applied(trio) == applied, "a bad handoff was logged"
    assert leader_map(trio)["epoch"] == m["epoch"]
    rep = call_leader(trio, dict(base, slots=[]))
    assert rep == {"ok": True, "epoch": m["epoch"]}, rep

    # b leads none of the moving slots: logged, nothing changes.
    ranges = moving_ranges(m, a.id)
    rep = call_leader(trio, {"op": "handoff", "node": b.id,
                             "boot_id": b.boot_id, "slots": ranges})
    assert rep == {"ok": True, "epoch": m["epoch"]}, rep

    # a hands over the first moving range: b leads it from the reply's
    # epoch on, a in sync; the other moving slots wait.
    first = ranges[0]
    rep = call_leader(trio, dict(base, slots=[first, [first[0], first[0]]]))
    assert rep["ok"] is True and rep["epoch"] == m["epoch"] + 1, (rep, m)
    m2 = leader_map(trio)
    slots = expand_slots(m2)
    for i in range(first[0], first[1] + 1):
        assert slots[i] == (b.id, (a.id,), (a.id,)), (i, slots[i])
    for r in m2["slots"]:
        if r["from"] <= first[0] <= r["to"]:
            assert r["epoch"] == rep["epoch"] and "move" not in r, r
    # The same request again (once the leader has staged its next moves)
    # changes nothing.
    m = wait_stable(trio)
    rep = call_leader(trio, dict(base, slots=[first]))
    assert rep == {"ok": True, "epoch": m["epoch"]}, (rep, m["epoch"])

    # a loses b before handing over the rest: b leaves the ISR of a's
    # slots, and their moves end with it.
    assert moving_slots(m) > 0
    rep = call_leader(trio, {"op": "isr", "node": a.id, "boot_id": a.boot_id,
                             "peer": b.id, "drop": True})
    assert rep["ok"] is True, rep
    m = leader_map(trio)
    assert all(not r.get("move") for r in m["slots"]
               if r["primary"] == a.id), moving_ranges(m, a.id)


# ---------------------------------------------------------------------------
# 4. failover of the leader under load


def test_leader_kill9_under_joins_loses_nothing(trio, fakes):
    """After kill -9 of the leader under a stream of joins and heartbeats a
    new leader is elected, every acknowledged join is in its map, and the
    killed member restarts from its data dir and converges."""
    old, _ = wait_leader(trio)
    hb = [fakes(trio), fakes(trio)]
    wait_map(trio, lambda m: balanced(m, [f.id for f in hb], 2), 60,
             "2 nodes balanced", interval=0.2)

    acked = {}  # addr -> (node id, boot id, monotonic time of the ack)
    failures = []
    stop = threading.Event()

    def joiner():
        for i in range(2000):
            if stop.is_set():
                return
            # Addresses nobody listens on; the coordinator never dials them.
            addr = "127.0.0.1:%d" % (50000 + i)
            boot = uuid.uuid4().hex
            try:
                rep = call_leader(trio, {"op": "join", "addr": addr,
                                         "boot_id": boot}, timeout=15,
                                  call_timeout=1.0)
            except HarnessError as e:
                failures.append(str(e))
                continue
            if rep.get("ok"):
                acked[addr] = (rep["node"], boot, time.monotonic())
            else:
                failures.append(rep)
            time.sleep(0.005)

    th = threading.Thread(target=joiner, daemon=True)
    th.start()
    try:
        wait_for(lambda: len(acked) >= 30, 20, 0.02, "30 joins before kill")
        t_kill = time.monotonic()
        old.kill9()
        survivors = [c for c in trio.coords if c is not old]
        new, _ = wait_leader(trio, timeout=15, members=survivors)
        t_elected = time.monotonic() - t_kill
        wait_for(lambda: any(v[2] > t_kill for v in acked.values()), 15,
                 0.01, "a join committed after the kill")
        t_commit = min(v[2] for v in acked.values() if v[2] > t_kill) - t_kill
        n_at = len(acked)
        wait_for(lambda: len(acked) >= n_at + 30, 20, 0.02,
                 "30 joins after the kill")
    finally:
        stop.set()
        th.join(20)
    assert not th.is_alive()
    print("kill -9 leader %d: new leader %d elected after %.3fs; first join "
          "acknowledged after %.3fs; %d joins acknowledged" % (
              old.id, new.id, t_elected, t_commit, len(acked)))
    assert new is not old
    assert not failures, failures[:5]

    m = leader_map(trio)
    for addr, (nid, boot, _) in acked.items():
        n = node_by_id(m, nid)
        assert n is not None, "acknowledged join %s -> %d lost" % (addr, nid)
        assert n["addr"] == addr and n["boot_id"] == boot, n
        # joining, or down once unseen for a node timeout (never heartbeat)
        assert n["state"] in ("joining", "down"), n
    ids = [n["id"] for n in m["nodes"]]
    assert len(ids) == len(set(ids))
    assert len({v[0] for v in acked.values()}) == len(acked)

    # The heartbeating nodes survived the leader change. (Quiet for longer
    # than a node timeout: the new leader judges silent nodes only after
    # one.)
    m = wait_stable(trio, quiet=1.5)
    for f in hb:
        assert node_state(m, f.id) == "up", m["nodes"]
    assert balanced(m, [f.id for f in hb], 2)

    old.restart()
    old.wait_listening()
    t0 = time.monotonic()
    pings = wait_converged(trio, timeout=20)
    print("restarted member %d converged after %.3fs: %r" % (
        old.id, time.monotonic() - t0,
        {k: (p["role"], p["epoch"], p["applied"]) for k, p in pings.items()}))
    after = wait_stable(trio)
    assert after == m, "map changed across the restart of a follower"
    assert pings[old.id]["epoch"] == m["epoch"]


# ---------------------------------------------------------------------------
# 5. full restart


def test_kill9_all_three_and_restart_keeps_the_map(trio, fakes):
    """kill -9 of all three members and a restart from their data dirs elects
    a leader whose map equals the map before the kills, and heartbeating
    nodes stay up."""
    wait_leader(trio)
    nodes = [fakes(trio) for _ in range(3)]
    ids = [f.id for f in nodes]
    wait_map(trio, lambda m: balanced(m, ids, 2), 60, "3 nodes balanced",
             interval=0.2)
    before = wait_stable(trio)

    for c in trio.coords:
        c.kill9()
    t0 = time.monotonic()
    for c in trio.coords:
        c.restart()
    for c in trio.coords:
        c.wait_listening()
    leader, _ = wait_leader(trio, timeout=20)
    t_leader = time.monotonic() - t0
    after = leader_map(trio)
    print("full restart: leader %d after %.3fs, map served after %.3fs" % (
        leader.id, t_leader, time.monotonic() - t0))
    assert after["epoch"] == before["epoch"], (before["epoch"],
                                               after["epoch"])
    assert after == before, "map differs after restart:\n%s\n%s" % (
        json.dumps(before)[:2000], json.dumps(after)[:2000])

    # Past a node timeout of the new leader the nodes are still up.
    time.sleep(2.0)
    later = wait_stable(trio)
    assert later == before, "map moved after the restart: nodes %r" % (
        later["nodes"],)
    pings = wait_converged(trio)
    assert {p["epoch"] for p in pings.values()} == {before["epoch"]}


# ---------------------------------------------------------------------------
# 6. concurrent joins


def test_concurrent_joins_get_distinct_ids(trio):
    """Three nodes joining at the same moment get distinct ids, and three
    concurrent retries of one join all get the same id."""
    leader, _ = wait_leader(trio)
    call_leader(trio, {"op": "status"})  # leader ready

    def burst(reqs):
        barrier = threading.Barrier(len(reqs))
        out = [None] * len(reqs)

        def run(i):
            try:
                barrier.wait(5)
                out[i] = call_leader(trio, reqs[i], hint=leader.api)
            except Exception as e:  # reported through out
                out[i] = e

        ths = [threading.Thread(target=run, args=(i,)) for i in range(
            len(reqs))]
        for t in ths:
            t.start()
        for t in ths:
            t.join(30)
        return out

    reqs = [{"op": "join", "addr": unused_addr(),
             "boot_id": uuid.uuid4().hex} for _ in range(3)]
    out = burst(reqs)
    assert all(isinstance(r, dict) and r.get("ok") for r in out), out
    got = [r["node"] for r in out]
    assert len(set(got)) == 3, got
    m = leader_map(trio)
    for req, nid in zip(reqs, got):
        n = node_by_id(m, nid)
        assert n["addr"] == req["addr"] and n["boot_id"] == req["boot_id"]

    same = {"op": "join", "addr": unused_addr(), "boot_id": "same-boot"}
    out = burst([dict(same) for _ in range(3)])
    assert all(isinstance(r, dict) and r.get("ok") for r in out), out
    assert len({r["node"] for r in out}) == 1, out
    m = leader_map(trio)
    assert sum(1 for n in m["nodes"] if n["addr"] == same["addr"]) == 1


# ---------------------------------------------------------------------------
# 7. failure detection


def test_silent_node_marked_down_and_slots_promoted(make_trio, fakes):
    """A node that stops heartbeating is marked down within the node timeout
    (600 ms, plus slack), not before, and no slot keeps a copy on it: its
    primaries go to its in-sync replicas on the other up nodes."""
    trio = make_trio(node_timeout_ms=600)
    wait_leader(trio)
    nodes = [fakes(trio) for _ in range(3)]
    ids = [f.id for f in nodes]
    wait_map(trio, lambda m: balanced(m, ids, 2), 60, "3 nodes balanced",
             interval=0.2)
    before = wait_stable(trio)
    victim, rest = nodes[2], nodes[:2]
    old_slots = expand_slots(before)

    last = victim.stop()
    assert last is not None
    deadline = time.monotonic() + 5.0
    m = None
    while time.monotonic() < deadline:
        m = leader_map(trio)
        if node_state(m, victim.id) == "down":
            break
        time.sleep(0.02)
    detected = time.monotonic() - last
    assert m is not None and node_state(m, victim.id) == "down", \
        "node %d not down 5 s after its last heartbeat: %r" % (
            victim.id, m and m["nodes"])
    print("silent node %d marked down %.3fs after its last acknowledged "
          "heartbeat (node timeout 0.600s)" % (victim.id, detected))
    assert detected >= 0.6 - 0.1, "marked down before the node timeout"

    slots = expand_slots(m)
    for s, (prim, reps, isr) in enumerate(slots):
        assert prim != victim.id and victim.id not in reps, (s, prim, reps)
        assert victim.id not in isr, (s, isr)
    # Slots it led with an in-sync replica were promoted, not dropped.
    led = [s for s, v in enumerate(old_slots) if v[0] == victim.id]
    with_isr = [s for s in led if old_slots[s][2]]
    promoted = sum(1 for s in with_isr if slots[s][0] in old_slots[s][2])
    unassigned = sum(1 for s in with_isr if slots[s][0] == 0)
    print("victim led %d slots, %d with an ISR; %d now led by a former ISR "
          "replica, %d unassigned" % (len(led), len(with_isr), promoted,
                                      unassigned))
    assert unassigned == 0, "slots with an in-sync replica became unassigned"
    assert promoted >= 0.95 * len(with_isr)

    m = wait_map(trio, lambda m: balanced(m, [f.id for f in rest], 2), 60,
                 "2 survivors balanced", interval=0.2)
    copies_ok(m)
    for f in rest:
        assert node_state(m, f.id) == "up", m["nodes"]


# ---------------------------------------------------------------------------
# 8. redirects


FOLLOWER_REQUESTS = [
    {"op": "map"},
    {"op": "map", "epoch": 1},
    {"op": "join", "addr": "127.0.0.1:1", "boot_id": "x"},
    {"op": "status"},
    {"op": "heartbeat", "node": 1, "boot_id": "x", "epoch": 0},
    {"op": "leave", "node": 1},
    {"op": "settings"},
    {"op": "isr", "node": 1, "boot_id": "x", "peer": 2, "drop": True},
    {"op": "handoff", "node": 1, "boot_id": "x", "slots": [[0, 1]]},
]


def test_follower_redirects_to_leader_api_address(trio):
    """A follower answers map/join/status (and the other leader requests)
    with not_leader carrying the leader's API address."""
    leader, _ = wait_leader(trio)
    call_leader(trio, {"op": "status"})
    followers = [c for c in trio.coords if c is not leader]
    for f in followers:
        # The follower learns the leader's API address from the replicated
        # coordinators table; give it a moment after a fresh bootstrap.
        wait_for(lambda: call(f.api, {"op": "map"}).get("leader"), 5,
                 what="follower %d knows the leader" % f.id)
        for req in FOLLOWER_REQUESTS:
            rep = call(f.api, req)
            assert rep.get("ok") is False, (f.id, req, rep)
            assert rep.get("error") == "not_leader", (f.id, req, rep)
            assert rep.get("leader") == leader.api, (f.id, req, rep,
                                                     leader.api)
        p = f.ping()
        assert p["role"] == "follower" and p["leader_api"] == leader.api, p
    # Nothing was joined through a follower.
    m = leader_map(trio)
    assert not any(n["addr"] == "127.0.0.1:1" for n in m["nodes"]), m["nodes"]


# ---------------------------------------------------------------------------
# 9. bad framing


def _expect_error_and_close(api, payload, codes, chunked=False,
                            shut_wr=False, reply_optional=False):
    """Send payload on a new connection: the reply (if any) must be an error
    in codes and the server must close the connection."""
    with Conn(api, timeout=5) as c:
        try:
            if chunked:
                for i in range(0, len(payload), 64 << 10):
                    c.send_raw(payload[i:i + (64 << 10)])
            else:
                c.send_raw(payload)
            if shut_wr:
                c.sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close while we are still sending
        try:
            line = c.read_line(timeout=5)
        except ConnectionResetError:
            line = None
        if line is None:
            assert reply_optional, "no error reply to %r..." % payload[:60]
        else:
            rep = json.loads(line)
            assert rep.get("ok") is False, rep
            assert rep.get("error") in codes, (rep, codes, payload[:60])
        assert c.at_eof(3), "server kept the connection open after %r" % (
            payload[:60],)


def test_bad_framing_gets_error_and_close(trio):
    """Garbage, truncated, oversized, too deep, non-object and invalid UTF-8
    lines each get an error reply and a closed connection, and the members
    keep serving (ping everywhere, a committed join on the leader)."""
    leader, _ = wait_leader(trio)
    call_leader(trio, {"op": "status"})
    deep = b'{"a":' + b"[" * 100 + b"]" * 100 + b"}\n"
    at_limit = b'{"op":"ping","x":' + b"[" * 15 + b"]" * 15 + b"}\n"
    over_limit = b'{"op":"ping","x":' + b"[" * 16 + b"]" * 16 + b"}\n"
    big = b'{"op":"ping","pad":"' + b"a" * ((1 << 20) + (128 << 10))
    cases = [
        ("garbage", b"\x00\x01\x02 hello }{ garbage\n", ["bad_json"], {}),
        ("truncated+newline", b'{"op":"ping"\n', ["bad_json"], {}),
        ("truncated+close", b'{"op":"join","addr":"127.0.0.1:1',
         ["bad_json"], {"shut_wr": True, "reply_optional": True}),
        ("oversized", big, ["too_large"], {"chunked": True}),
        ("deep", deep, ["too_deep"], {}),
        ("over depth limit", over_limit, ["too_deep"], {}),
        ("array", b"[1,2]\n", ["bad_json"], {}),
        ("string", b'"op"\n', ["bad_json"], {}),
        ("number", b"42\n", ["bad_json"], {}),
        ("null", b"null\n", ["bad_json"], {}),
        ("invalid utf-8", b'{"op":"ping","x":"\xff\xfe\xc3"}\n',
         ["bad_json"], {}),
        ("nul byte", b'{"op":"ping"}\x00\n', ["bad_json"], {}),
        ("two objects", b'{"op":"ping"}{"op":"ping"}\n', ["bad_json"], {}),
    ]
    targets = [leader] + [c for c in trio.coords if c is not leader][:1]
    for target in targets:
        for name, payload, codes, kw in cases:
            try:
                _expect_error_and_close(target.api, payload, codes, **kw)
            except AssertionError as e:
                raise AssertionError("case %r on coord %d: %s" % (
                    name, target.id, e))
        # Depth 16 (the limit, the object counts as one) is accepted.
        with Conn(target.api) as c:
            c.send_raw(at_limit)
            rep = c.read()
            assert rep.get("ok") is True and "role" in rep, rep

    for c in trio.coords:
        assert c.alive(), "coord %d died" % c.id
        assert c.ping()["ok"] is True
    rep, _, _ = join(trio)
    assert rep["ok"] is True, rep


# ---------------------------------------------------------------------------
# 10. status


def test_status_contract_and_unreachable_follower(trio, fakes):
    """status has the documented fields and, once a follower is killed, shows
    that coordinator unreachable within a few seconds."""
    leader, pings = wait_leader(trio)
    n = fakes(trio)
    up_nodes(trio, [n])

    def coords_ok(st):
        return all(c["reachable"] for c in st["coordinators"])

    st = wait_for(lambda: (lambda s: s if coords_ok(s) else None)(
        call_leader(trio, {"op": "status"})["status"]), 5,
        what="all coordinators reachable")
    for k in ("leader", "term", "epoch", "replication", "coordinators",
              "nodes", "slots"):
        assert k in st, (k, st)
    assert st["leader"] == leader.id
    assert st["term"] == leader.ping()["term"]
    assert st["replication"] == 2
    assert st["epoch"] <= leader_map(trio)["epoch"]
    assert sorted(c["id"] for c in st["coordinators"]) == [1, 2, 3]
    for c in st["coordinators"]:
        member = trio[c["id"]]
        assert c["api"] == member.api and c["raft"] == member.raft, c
        want = "leader" if member is leader else "follower"
        assert c["role"] == want and c["reachable"] is True, c
    mine = [x for x in st["nodes"] if x["id"] == n.id]
    assert len(mine) == 1, st["nodes"]
    x = mine[0]
    assert x["addr"] == n.addr and x["state"] == "up", x
    assert x["primaries"] == NSLOTS and x["replicas"] == 0, x
    for k in ("keys", "used_memory"):
        assert k in x, (k, x)
    assert st["slots"]["assigned"] == NSLOTS, st["slots"]
    for k in ("moving", "under_replicated", "syncing", "lost"):
        assert isinstance(st["slots"].get(k), int), st["slots"]
    # One node holding every slot is balanced: no rebalance in progress.
    rb = st["rebalance"]
    assert (rb["remaining"], rb["total"]) == (0, 0), rb
    assert rb["balanced"] is True and rb["waiting_nodes"] == 0, rb
    assert rb["planning"] in (True, False), rb

    victim = [c for c in trio.coords if c is not leader][0]
    victim.kill9()
    t0 = time.monotonic()

    def victim_unreachable():
        st = call_leader(trio, {"op": "status"})["status"]
        e = [c for c in st["coordinators"] if c["id"] == victim.id][0]
        return st if e["reachable"] is False else None

    st = wait_for(victim_unreachable, 5, 0.05,
                  "killed follower shown unreachable")
    print("killed follower %d shown unreachable after %.3fs" % (
        victim.id, time.monotonic() - t0))
    e = [c for c in st["coordinators"] if c["id"] == victim.id][0]
    assert e["role"] == "unknown", e
    assert st["leader"] == leader.id


# ---------------------------------------------------------------------------
# 11. leave


def test_leave_moves_copies_away_then_removed(trio, fakes):
    """A leave puts the node in `leaving`, its copies move to the other up
    nodes, then it is `removed` (and its heartbeats are refused)."""
    wait_leader(trio)
    nodes = [fakes(trio) for _ in range(3)]
    ids = [f.id for f in nodes]
    wait_map(trio, lambda m: balanced(m, ids, 2), 60, "3 nodes balanced",
             interval=0.2)
    gone, rest = nodes[0], nodes[1:]
    t0 = time.monotonic()
    rep = call_leader(trio, {"op": "leave", "node": gone.id})
    assert rep["ok"] is True and isinstance(rep["epoch"], int), rep
    seen = []
    prev = None

    def removed():
        nonlocal prev
        m = leader_map(trio)
        st = node_state(m, gone.id)
        if not seen or seen[-1] != st:
            seen.append(st)
        copies_ok(m)
        c = counts(m).get(gone.id, [0, 0])
        held = c[0] + c[1]
        if st == "leaving" and prev is not None:
            assert held <= prev, "leaving node gained copies"
        prev = held
        return m if st == "removed" else None

    m = wait_for(removed, 60, 0.1, "left node removed")
    print("leave: states %r, removed after %.3fs" % (
        seen, time.monotonic() - t0))
    assert seen[0] in ("leaving", "removed") and seen[-1] == "removed", seen
    assert set(seen) <= {"leaving", "removed"}, seen
    for prim, reps, isr in expand_slots(m):
        assert prim != gone.id and gone.id not in reps
    m = wait_map(trio, lambda m: balanced(m, [f.id for f in rest], 2), 60,
                 "survivors balanced", interval=0.2)
    for f in rest:
        assert node_state(m, f.id) == "up"
    rep = call_leader(trio, {"op": "heartbeat", "node": gone.id,
                             "boot_id": gone.boot_id, "epoch": m["epoch"]})
    assert rep.get("error") == "unknown_node", rep
    rep = call_leader(trio, {"op": "leave", "node": gone.id})
    assert rep.get("error") == "unknown_node", rep


def test_leaving_sole_node_keeps_slots_until_a_target_exists(trio, fakes):
    """A leaving node with nowhere to move its copies stays `leaving` and
    keeps serving its slots; once another node is up they move and it is
    `removed`."""
    wait_leader(trio)
    a = fakes(trio)
    wait_map(trio, lambda m: all(s[0] == a.id for s in expand_slots(m)), 15,
             "single node owns every slot")
    rep = call_leader(trio, {"op": "leave", "node": a.id})
    assert rep["ok"] is True, rep
    m = leader_map(trio)
    assert node_state(m, a.id) == "leaving", m["nodes"]
    time.sleep(1.0)
    m = leader_map(trio)
    assert node_state(m, a.id) == "leaving", m["nodes"]
    assert all(s[0] == a.id for s in expand_slots(m)), \
        "a leaving node lost slots with no other node to take them"
    b = fakes(trio)
    m = wait_map(trio, lambda m: node_state(m, a.id) == "removed", 60,
                 "sole leaving node removed once another is up",
                 interval=0.2)
    assert all(s[0] == b.id for s in expand_slots(m)), counts(m)
    assert node_state(m, b.id) == "up"


# ---------------------------------------------------------------------------
# Extra: pause and clean stop


def test_paused_leader_is_replaced_and_rejoins_as_follower(trio, fakes):
    """A SIGSTOPped leader is replaced, and after SIGCONT it follows the new
    leader and catches up with the writes it missed."""
    old, _ = wait_leader(trio)
    n = fakes(trio)
    up_nodes(trio, [n])
    old.pause()
    try:
        t0 = time.monotonic()
        survivors = [c for c in trio.coords if c is not old]
        new, _ = wait_leader(trio, timeout=15, members=survivors)
        print("paused leader %d replaced by %d after %.3fs" % (
            old.id, new.id, time.monotonic() - t0))
        rep, _, _ = join(trio)
        assert rep["ok"], rep
    finally:
        old.resume()
    pings = wait_converged(trio, timeout=15)
    assert pings[old.id]["role"] == "follower", pings
    assert pings[old.id]["epoch"] >= rep["epoch"]
    m = wait_stable(trio)
    assert node_state(m, n.id) == "up", m["nodes"]


def test_sigterm_exits_zero_and_member_recovers(trio):
    """SIGTERM stops a member cleanly (exit 0) and it rejoins from its data
    dir with the writes it missed."""
    leader, _ = wait_leader(trio)
    rep, _, _ = join(trio)
    assert rep["ok"]
    t0 = time.monotonic()
    rc = leader.terminate(wait=10)
    print("SIGTERM of leader %d: exit %s after %.3fs" % (
        leader.id, rc, time.monotonic() - t0))
    assert rc == 0
    survivors = [c for c in trio.coords if c is not leader]
    wait_leader(trio, members=survivors)
    rep2, _, _ = join(trio)
    assert rep2["ok"] and rep2["node"] != rep["node"]
    leader.restart()
    leader.wait_listening()
    pings = wait_converged(trio)
    assert pings[leader.id]["epoch"] >= rep2["epoch"]


# ---------------------------------------------------------------------------
# Extra: snapshots


def _joins(trio, n, threads=4):
    """n joins over `threads` persistent connections to the leader; returns
    {addr: (id, boot)} of the acknowledged ones."""
    leader, _ = wait_leader(trio)
    acked = {}
    lock = threading.Lock()
    errors = []

    def run(k):
        conn = None
        try:
            for i in range(k, n, threads):
                addr = "127.0.0.1:%d" % (10000 + i)
                boot = "boot-%d" % i
                req = {"op": "join", "addr": addr, "boot_id": boot}
                end = time.monotonic() + 10
                while time.monotonic() < end:
                    if conn is None:
                        conn = Conn(leader.api, 5)
                    rep = conn.request(req)
                    if rep.get("error") in ("busy", "not_ready"):
                        time.sleep(0.02)
                        continue
                    break
                if not rep.get("ok"):
                    errors.append(rep)
                    return
                with lock:
                    acked[addr] = (rep["node"], boot)
        except (OSError, ValueError) as e:
            errors.append(repr(e))
        finally:
            if conn:
                conn.close()

    ths = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(120)
    assert not errors, errors[:5]
    return acked


def test_lagging_follower_catches_up_by_snapshot_and_full_restart(trio):
    """A follower that misses more entries than the log keeps (snapshot
    threshold 1024, trailing 256) catches up by snapshot, and a kill -9 of
    all three then restarts from snapshot plus log with the same map."""
    leader, _ = wait_leader(trio)
    lagger = [c for c in trio.coords if c is not leader][0]
    lagger.kill9()
    t0 = time.monotonic()
    acked = _joins(trio, 1500)
    print("1500 joins with one follower down in %.2fs" % (
        time.monotonic() - t0))
    assert len(acked) == 1500
    assert "snapshot" in leader.log_text(), "leader took no snapshot"
    before = leader_map(trio)
    for addr, (nid, boot) in acked.items():
        n = node_by_id(before, nid)
        assert n and n["addr"] == addr and n["boot_id"] == boot, (addr, n)

    lagger.restart()
    lagger.wait_listening()
    t0 = time.monotonic()
    pings = wait_converged(trio, timeout=20)
    print("lagging follower %d caught up after %.3fs (epoch %d; its log %s "
          "a snapshot restore)" % (
              lagger.id, time.monotonic() - t0, pings[lagger.id]["epoch"],
              "shows" if "restored snapshot" in lagger.log_text()
              else "does not show"))
    before = wait_stable(trio, quiet=1.5)

    for c in trio.coords:
        c.kill9()
    for c in trio.coords:
        c.restart()
    for c in trio.coords:
        c.wait_listening()
    wait_leader(trio, timeout=20)
    after = leader_map(trio)
    assert after == before, "map differs after restart from snapshots"
    wait_converged(trio, timeout=20)

"""Coordinator membership changes (docs/coordinators.md): `coord --join`
starts a member that never bootstraps, and `cachecli coord
add|remove|replace` brings the Raft configuration and the map's
coordinators table to a new trio, one change at a time.

Real `coord`, `datanode --join` and `cachecli` processes on 127.0.0.1,
killed with SIGKILL. The main scenario replaces every member of the trio
under a recorded write load (a dead follower, the live leader, a live
follower), then kills the new trio's leader: no write may fail, so the data
nodes, whose --join lists only name the original three, must have learned
the new addresses from the map. Times are printed, never asserted.
"""
import os
import shutil
import subprocess
import time

import pytest

import cluster_checks as checks
import cluster_harness as ch
from cluster_harness import Writers
from narf_harness import (HOST, PORTS, Coord, HarnessError, call,
                          call_leader, leader_map, wait_for, wait_leader,
                          with_secret)

READY_WAIT = 60.0
CLI_TIMEOUT = "30s"
NKEYS = 120
RATE = 300


class JoinCoord(Coord):
    """A `coord --join` member at fresh ports (or the given ones)."""

    def __init__(self, build, tmpdir, cid, join_apis, raft=None, api=None,
                 extra_args=()):
        ports = PORTS.take(2)
        raft = raft or "%s:%d" % (HOST, ports[0])
        api = api or "%s:%d" % (HOST, ports[1])
        super().__init__(build, cid, "", os.path.join(str(tmpdir),
                                                      "coord%d" % cid),
                         os.path.join(str(tmpdir), "coord%d.log" % cid),
                         api, raft, extra_args)
        self.join = ",".join(join_apis)

    def argv(self):
        return [self.binary, "--id", str(self.id), "--data-dir",
                self.data_dir, "--join", self.join, "--raft", self.raft,
                "--api", self.api, "--log-level", "debug"] + with_secret(
                    self.extra_args)


def cachecli(build, coords, *args, timeout=60):
    """Run cachecli; returns the CompletedProcess (text)."""
    argv = [os.path.join(build, "cli", "cachecli"), "--coord",
            ",".join(coords), "--timeout", CLI_TIMEOUT] + list(args)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    print("$ cachecli %s -> %d\n%s%s" % (" ".join(args), p.returncode,
                                         p.stdout, p.stderr))
    return p


def start_joiner(trio, build, tmpdir, cid, **kw):
    """Start `coord --join` (listing the trio's current members) and add it
    to trio.coords, so the fixture stops it and shows its log."""
    live = [c.api for c in trio.coords if c.alive()]
    j = JoinCoord(build, tmpdir, cid, live, **kw)
    j.start()
    j.wait_listening()
    trio.coords.append(j)
    return j


def table(trio):
    """The map's coordinators table as {id: (raft, api)}."""
    m = leader_map(trio)
    return {c["id"]: (c["raft"], c["api"]) for c in m["coordinators"]}


def wait_converged(members, timeout=20.0):
    """Every member answers ping with the same leader, term, epoch, applied
    index and map digest (the FSMs hold the same map); returns the pings."""
    last = {}

    def check():
        pings = {}
        for c in members:
            try:
                pings[c.id] = c.ping(0.5)
            except (OSError, ValueError):
                return None
        last["p"] = pings
        keys = ("leader", "term", "epoch", "applied", "digest")
        if all(len({p.get(k) for p in pings.values()}) == 1 and
               pings[members[0].id].get(k) is not None for k in keys):
            return pings
        return None

    try:
        return wait_for(check, timeout, 0.1, "members converged")
    except HarnessError as e:
        raise HarnessError("%s; last pings %r" % (e, last.get("p")))


def wait_stopped_by_itself(coord, timeout=15.0):
    """A removed member stops on its own once no leader talks to it; like
    a SIGTERM stop it must exit 0 (the fixture checks the status)."""
    wait_for(lambda: not coord.alive(), timeout, 0.1,
             "removed member %d stops by itself" % coord.id)
    coord.terminated_by_test = True
    assert coord.proc.returncode == 0, coord.proc.returncode


def steps(trio):
    """The leaders' membership steps ("members: ..." log lines of every
    member, in time order), without the timestamps."""
    lines = []
    for x in trio.coords:
        for line in x.log_text().splitlines():
            if " members: " in line:
                lines.append(line)
    return [line.split(" members: ", 1)[1] for line in sorted(lines)]


def first_index(lines, prefix):
    return next(i for i, line in enumerate(lines) if line.startswith(prefix))


def wait_unreachable(trio, cid, timeout=10.0):
    """Until the leader reports member cid unreachable (what an operator
    checks with `cachecli coord status` before replacing a dead one)."""
    def check():
        st = call_leader(trio, {"op": "coords"}, 3.0)
        e = next(x for x in st["coordinators"] if x["id"] == cid)
        return not e["reachable"]
    wait_for(check, timeout, 0.05, "member %d unreachable" % cid)


def replace(c, old, new, what):
    """cachecli coord replace old by the running joiner `new`; asserts it
    succeeds, prints the new id, and the table then lists new at its
    addresses and not old."""
    t0 = time.monotonic()
    p = cachecli(c.build, [x.api for x in c.trio.coords if x.alive()],
                 "coord", "replace", str(old.id), new.raft, new.api)
    assert p.returncode == 0, p.stderr
    assert "replaced by %d" % new.id in p.stdout, p.stdout
    assert "CACHE_COORD=" in p.stdout, p.stdout
    print("%s: replace took %.2fs" % (what, time.monotonic() - t0))
    t = table(c.trio)
    assert t.get(new.id) == (new.raft, new.api), t
    assert old.id not in t, t


@pytest.mark.plain_only("the member changes of the shorter tests here")
def test_replace_every_member_under_writes(make_cluster, tmp_path):
    """Under a recorded write load: replace a killed and wiped follower,
    then the live leader (leadership handed over first), then the last
    original member; each new member converges (same map digest), the map
    lists the new trio, removed members stop by themselves, and after a
    kill -9 of the new trio's leader a leader is elected among the rest.
    No write fails, no data node is marked down, nothing acknowledged is
    lost: the data nodes found the new coordinators through the map."""
    c = make_cluster(nodes=3)
    trio = c.trio
    build = c.build
    m0 = c.map()
    originals = list(trio.coords)
    w = Writers(c.seeds(), ["k:%d" % i for i in range(NKEYS)], m0,
                rate=RATE, max_seconds=240.0)
    w.start()
    w.wait_acks(100, timeout=20.0)

    # 1. A follower dies for good: kill -9, wipe, replace at new ports.
    lead = c.leader()
    dead = next(x for x in originals if x is not lead)
    dead.kill9()
    shutil.rmtree(dead.data_dir)
    j4 = start_joiner(trio, build, tmp_path, 4)
    wait_unreachable(trio, dead.id)
    replace(c, dead, j4, "dead follower %d -> 4" % dead.id)
    # Removed before the new one was added: 2 live voters of 2 meanwhile.
    s = steps(trio)
    assert first_index(s, "remove %d " % dead.id) < \
        first_index(s, "add 4 "), s
    live = [x for x in trio.coords if x.alive()]
    pings = wait_converged(live)
    assert pings[4]["member"] == "voter", pings[4]
    w.wait_acks(50, timeout=20.0)

    # 2. The leader itself is replaced: it hands leadership over first.
    lead = c.leader(members=live)
    j5 = start_joiner(trio, build, tmp_path, 5)
    replace(c, lead, j5, "leader %d -> 5" % lead.id)
    s = steps(trio)
    assert first_index(s, "hand leadership to ") < \
        first_index(s, "remove %d " % lead.id), s
    wait_stopped_by_itself(lead)
    live = [x for x in trio.coords if x.alive()]
    assert sorted(x.id for x in live) == sorted(
        {x.id for x in originals} - {dead.id, lead.id} | {4, 5})
    wait_converged(live)
    w.wait_acks(50, timeout=20.0)

    # 3. The last original member, alive: added-first, then removed.
    last = next(x for x in originals if x.alive())
    j6 = start_joiner(trio, build, tmp_path, 6)
    replace(c, last, j6, "live follower %d -> 6" % last.id)
    # A live member goes only once its successor votes.
    s = steps(trio)
    assert first_index(s, "promote 6 ") < \
        first_index(s, "remove %d " % last.id), s
    wait_stopped_by_itself(last)
    new_trio = [j4, j5, j6]
    wait_converged(new_trio)
    assert table(trio) == {j.id: (j.raft, j.api) for j in new_trio}
    # The data nodes' --join lists name only dead addresses now.
    assert not any(x.alive() for x in originals)
    w.wait_acks(50, timeout=20.0)

    # 4. kill -9 the new trio's leader: the other two elect one.
    lead = c.leader(members=new_trio)
    lead.kill9()
    rest = [j for j in new_trio if j is not lead]
    newlead, _ = wait_leader(trio, members=rest)
    assert newlead in rest
    time.sleep(2.0)  # past the new leader's node timeout wait and one more
    since = time.monotonic()
    w.wait_acks(100, timeout=20.0, since=since)
    recs = w.stop()
    print(checks.window_report(recs, {"all slots": set(range(ch.NSLOTS))})[0])
    assert not checks.first_errors(recs), \
        "writes failed: %r" % checks.first_errors(recs)
    m1 = c.map()
    assert [(n["id"], n["state"]) for n in m1["nodes"]] == \
        [(n["id"], n["state"]) for n in m0["nodes"]], m1["nodes"]
    for d in c.nodes:
        assert "coordinators from the map" in d.log_text(), d.name
    c.wait_ready(READY_WAIT, what="cluster stable after the replacements")
    values = checks.read_all(c.seeds(), sorted({a.key for a in recs}))
    problems = checks.check_history(recs, values)
    assert not problems, "acknowledged writes lost:\n" + "\n".join(
        problems[:20])


def test_removed_member_restarted_stops_and_joined_member_restarts(
        make_trio, tmp_path):
    """A member killed, then replaced, never saw its removal: started again
    with its old data dir, it asks the cluster, hears from the leader that
    it is no member, and stops by itself (exit 0). The member that joined
    restarts from its data dir after kill -9 and converges again; started
    with another Raft address on that dir, it refuses (the dir holds a
    member at another address) and exits 1. Then coord remove of the
    leader (handed over first) and coord add of a new member."""
    trio = make_trio(node_timeout_ms=1000)
    lead, _ = wait_leader(trio)
    dead = next(x for x in trio.coords if x is not lead)
    dead.kill9()
    j = start_joiner(trio, trio.build, tmp_path, 4)
    wait_unreachable(trio, dead.id)
    p = cachecli(trio.build, [x.api for x in trio.coords if x.alive()],
                 "coord", "replace", str(dead.id), j.raft, j.api)
    assert p.returncode == 0, p.stderr
    live = [x for x in trio.coords if x.alive()]
    wait_converged(live)
    dead.restart()
    wait_stopped_by_itself(dead)
    assert "confirms that this member (%d) was removed" % dead.id in \
        dead.log_text()
    wait_converged(live)

    j.kill9()
    good_raft = j.raft
    j.raft = "%s:%d" % (HOST, PORTS.take(1)[0])
    j.start()
    rc = j.proc.wait(15)
    assert rc == 1, rc
    assert "holds member 4 at %s" % good_raft in j.log_text()
    j.killed_by_test = True
    j.raft = good_raft
    j.start()
    j.wait_listening()
    wait_converged(live)
    # Entries still commit with the restarted member among the voters.
    rep = call_leader(trio, {"op": "settings", "replication": 3})
    assert rep.get("ok"), rep
    pings = wait_converged(live)
    assert pings[4]["member"] == "voter", pings[4]

    # coord remove of the leader (it hands over first), then coord add of
    # a new member: back to three.
    lead, _ = wait_leader(trio, members=live)
    p = cachecli(trio.build, [x.api for x in live], "coord", "remove",
                 str(lead.id))
    assert p.returncode == 0 and "removed" in p.stdout, p.stderr
    wait_stopped_by_itself(lead)
    live = [x for x in live if x is not lead]
    assert sorted(table(trio)) == sorted(x.id for x in live)
    j5 = start_joiner(trio, trio.build, tmp_path, 5)
    p = cachecli(trio.build, [x.api for x in live], "coord", "add", "5",
                 j5.raft, j5.api)
    assert p.returncode == 0 and "coordinator 5 added" in p.stdout, \
        p.stderr
    live.append(j5)
    wait_converged(live)
    assert table(trio) == {x.id: (x.raft, x.api) for x in live}


def test_usage_errors_change_in_flight_and_back_out(make_trio, tmp_path):
    """Bad arguments exit 2, an unknown id or a reused one exits 1 with a
    reason, an unreachable cluster exits 3; a new member whose id was used
    before refuses to start (exit 2). An add whose member never starts
    does not finish (exit 1, it goes on), blocks other changes
    (change_in_flight, exit 1), and is backed out with coord remove."""
    trio = make_trio(node_timeout_ms=1000)
    wait_leader(trio)
    b = trio.build
    apis = trio.apis
    free = ["%s:%d" % (HOST, p) for p in PORTS.take(4)]

    for args in (["coord"], ["coord", "frob"], ["coord", "remove"],
                 ["coord", "remove", "x"], ["coord", "remove", "0"],
                 ["coord", "add", "9", "127.0.0.1:1"],
                 ["coord", "add", "9", "nohost", free[1]],
                 ["coord", "replace", "1", free[0], "127.0.0.1:99999"]):
        p = cachecli(b, apis, *args)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert p.stderr.count("\n") <= 2 and "cachecli:" in p.stderr

    p = cachecli(b, apis, "coord", "remove", "99")
    assert p.returncode == 1 and "no coordinator 99" in p.stderr, p.stderr
    p = cachecli(b, apis, "coord", "add", "2", free[0], free[1])
    assert p.returncode == 1 and "already a member" in p.stderr, p.stderr
    p = cachecli(b, apis, "coord", "replace", "1", free[0], free[1])
    assert p.returncode == 1 and "start the new member" in p.stderr, \
        p.stderr
    p = cachecli(b, [free[2]], "--timeout", "1s", "coord", "status")
    assert p.returncode == 3, p.stderr

    # coord --join flag errors, and an id the cluster used before.
    coord = os.path.join(b, "coordinator", "coord")
    for args in (["--join", apis[0], "--id", "7", "--data-dir", "x"],
                 ["--join", apis[0], "--id", "7", "--data-dir", "x",
                  "--raft", free[0], "--api", free[0]],
                 ["--join", apis[0], "--members", "1=%s/%s" % (free[0],
                                                                free[1]),
                  "--id", "1", "--data-dir", "x"],
                 ["--join", "nowhere", "--id", "7", "--data-dir", "x",
                  "--raft", free[0], "--api", free[1]]):
        r = subprocess.run([coord] + args, capture_output=True, text=True,
                           timeout=10, cwd=str(tmp_path))
        assert r.returncode == 2, (args, r.returncode, r.stderr)
    reused = JoinCoord(b, tmp_path, 3, apis)
    reused.start()
    assert reused.proc.wait(15) == 2
    assert "coordinator 3 is" in reused.log_text(), reused.log_text()
    reused.killed_by_test = True

    # An add whose member is not running: accepted, never finishes.
    t0 = time.monotonic()
    p = cachecli(b, apis, "--timeout", "2s", "coord", "add", "7", free[0],
                 free[1])
    assert p.returncode == 1 and "not finished" in p.stderr, p.stderr
    print("unfinished add gave up after %.1fs" % (time.monotonic() - t0))
    st = call_leader(trio, {"op": "coords"})
    assert st["changing"] is True and st.get("step"), st
    j = JoinCoord(b, tmp_path, 8, apis)
    j.start()
    j.wait_listening()
    trio.coords.append(j)
    p = cachecli(b, apis, "coord", "replace", "1", j.raft, j.api)
    assert p.returncode == 1 and "change_in_flight" in p.stderr, p.stderr
    # Back out: 7 leaves the table, its spare entry the configuration.
    p = cachecli(b, apis, "coord", "remove", "7")
    assert p.returncode == 0, p.stderr
    st = call_leader(trio, {"op": "coords"})
    assert [x["id"] for x in st["coordinators"]] == [1, 2, 3], st
    assert st["leaving"] == [] and st["changing"] is False, st
    # 7 is used now: a member with that id is refused.
    rep = call_leader(trio, {"op": "coord_add", "id": 7, "raft": free[2],
                             "api": free[3]})
    assert rep.get("error") == "exists" and "never reused" in \
        rep["message"], rep
    # Followers redirect the membership ops like the other leader ops.
    lead, _ = wait_leader(trio, members=trio.coords[:3])
    for f in trio.coords[:3]:
        if f is lead:
            continue
        for op in ("coords", "coord_add", "coord_remove", "coord_replace"):
            rep = call(f.api, {"op": op})
            assert rep.get("error") == "not_leader", rep
            assert rep.get("leader") == lead.api, rep

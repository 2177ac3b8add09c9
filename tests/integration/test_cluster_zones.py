"""Failure domains (docs/scale-plan.md section 4): data nodes started with
`--zone`, a map that never keeps two copies of a slot in one zone while
there are at least as many zones as copies, and a zone lost at once: every
slot is re-replicated on the other zones, again without two copies in one,
and `status` reports the zones and its warnings.

Real `coord` and `datanode --join --zone` processes on 127.0.0.1: six
nodes in three zones (z1..z3, two each), replication 2.
"""
from narf_harness import call_leader, expand_slots, wait_for

READY_WAIT = 60.0
ZONES = ["z1", "z2", "z3"]


def zone_of_node(m):
    """{node id: zone} from the map (absent zone: its own, "n<id>")."""
    return {n["id"]: n.get("zone") or "n%d" % n["id"] for n in m["nodes"]}


def shared_slots(m):
    """Slots of map m with two copies in one zone."""
    zone = zone_of_node(m)
    bad = []
    for s, (prim, reps, _) in enumerate(expand_slots(m)):
        zs = [zone[i] for i in [prim] + list(reps) if i]
        if len(zs) != len(set(zs)):
            bad.append(s)
    return bad


def balanced(c):
    """The leader's status once it judges the map balanced, else None."""
    st = c.status(5.0)
    rb = st.get("rebalance", {})
    sl = st["slots"]
    if rb.get("balanced") and sl["under_replicated"] == 0 and \
            sl["syncing"] == 0 and sl["moving"] == 0:
        return st
    return None


def test_zone_lost_re_replicates_across_zones(make_cluster):
    """Six nodes in three zones, replication 2: once balanced, no slot
    keeps two copies in one zone, each zone holds a third of the copies,
    status lists the zones with no warning and zone_shared 0. Both nodes
    of z1 killed: every slot gets its second copy back, in z2 or z3 (one
    copy in each), and status says the same with z1 0 of 2 up."""
    c = make_cluster(
        nodes=6,
        node_args={i: ["--zone", ZONES[i % 3]] for i in range(6)})
    st = wait_for(lambda: balanced(c), READY_WAIT, 0.2, "balanced")
    m = c.map()
    assert {n["zone"] for n in m["nodes"]} == set(ZONES)
    assert shared_slots(m) == []
    assert [z["name"] for z in st["zones"]] == ZONES
    for z in st["zones"]:
        assert (z["nodes"], z["up"]) == (2, 2), st["zones"]
        assert abs(z["copies"] - 2 * 16384 // 3) <= 2, st["zones"]
        assert abs(z["primaries"] - 16384 // 3) <= 2, st["zones"]
    assert st["slots"]["zone_shared"] == 0
    assert st["warnings"] == []
    assert sorted(n["zone"] for n in st["nodes"]) == sorted(ZONES * 2)
    # A join with a zone that is not 1..63 printable characters, no
    # spaces, is refused before it reaches the log.
    rep = call_leader(c.trio, {"op": "join", "addr": "127.0.0.1:1",
                               "boot_id": "x", "zone": "a b"})
    assert rep.get("error") == "bad_request", rep
    assert "zone" in rep.get("message", ""), rep

    lost = [d for i, d in enumerate(c.nodes) if i % 3 == 0]
    for d in lost:
        d.kill9()

    def re_replicated():
        st = balanced(c)
        if st is None or sum(n["state"] == "up" for n in st["nodes"]) != 4:
            return None
        return st
    st = wait_for(re_replicated, READY_WAIT, 0.2,
                  "z1 lost, its copies re-replicated")
    m = c.map()
    assert shared_slots(m) == []
    zone = zone_of_node(m)
    for prim, reps, isr in expand_slots(m):
        assert len(reps) == 1 and list(isr) == list(reps)
        assert {zone[prim], zone[reps[0]]} <= {"z2", "z3"}
    by_name = {z["name"]: z for z in st["zones"]}
    assert (by_name["z1"]["up"], by_name["z1"]["copies"]) == (0, 0)
    assert by_name["z2"]["copies"] == by_name["z3"]["copies"] == 16384
    assert st["slots"]["zone_shared"] == 0
    assert st["warnings"] == []

"""The partition test's history checker (scripts/lib/history.py) on
synthetic histories: no servers, no clock. If it misjudged these, the
partition test's 0 lost / 0 stale / 0 phantom would mean nothing."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))), "scripts", "lib"))

from history import FAIL, INFO, OK, READ, WRITE, Loss, Op, check, \
    write_outage  # noqa: E402


def w(key, n, t0, t1, status=OK, client="w1"):
    return Op(WRITE, key, n, t0, t1, status, client)


def r(key, value, t0, t1, status=OK, final=False, client="r1"):
    return Op(READ, key, value, t0, t1, status, client, final)


def clean_history():
    return [
        w("a", 1, 0.0, 1.0), w("a", 2, 1.0, 2.0),
        w("a", 3, 2.0, 5.0, INFO),          # may or may not have landed
        r("a", 1, 0.5, 1.5),                # concurrent with write 1
        r("a", 2, 2.5, 2.6),
        r("a", 3, 3.0, 3.1),                # the indeterminate one landed
        r("a", 2, 3.2, 3.3),                # ... or not: 3 never acked
        w("b", 1, 0.0, 0.1, FAIL),
        r("b", None, 0.2, 0.3),             # a failed write need not show
        r("b", 1, 0.4, 0.5),                # ... but may
        r("c", None, 0.0, 0.1),             # never written: nil is right
        r("a", 3, 9.0, 9.1, final=True),
        r("b", None, 9.0, 9.1, final=True),
    ]


def test_clean_history_has_no_violation():
    # Concurrent, failed and indeterminate writes seen or not seen are all
    # allowed; nothing is reported.
    rep = check(clean_history())
    assert rep.ok(), [str(v) for v in rep.lost + rep.stale + rep.phantom]
    assert rep.counts() == {"lost": 0, "stale": 0, "phantom": 0,
                            "declared": 0, "after_loss": 0}


def test_lost_write_is_a_final_read_older_than_the_last_ack():
    # A final read of 1 after write 2 was acknowledged is one lost write,
    # reported once however many final reads show it; a key
    # written once before the faults and missing at the end is lost too.
    h = [w("a", 1, 0.0, 0.1), w("a", 2, 0.2, 0.3),
         r("a", 1, 5.0, 5.1, final=True), r("a", 1, 6.0, 6.1, final=True),
         w("once", 1, 0.0, 0.1), r("once", None, 5.0, 5.1, final=True)]
    rep = check(h)
    assert [(v.op.key, v.op.t0) for v in rep.lost] == [("a", 5.0),
                                                         ("once", 5.0)]
    assert not rep.stale and not rep.phantom


def test_a_loss_is_charged_once():
    # After the final read that shows write 2 lost, later reads of 1 are
    # neither stale nor lost again; a write acknowledged after it is owed
    # again (its loss is a second loss).
    h = [w("a", 1, 0.0, 0.1), w("a", 2, 0.2, 0.3),
         r("a", 1, 5.0, 5.1, final=True), r("a", 1, 6.0, 6.1),
         r("a", 1, 7.0, 7.1, final=True), w("a", 3, 8.0, 8.1),
         r("a", 1, 9.0, 9.1), r("a", 1, 10.0, 10.1, final=True)]
    rep = check(h)
    assert [v.op.t0 for v in rep.lost] == [5.0, 10.0]
    assert [v.op.t0 for v in rep.stale] == [9.0]


def test_stale_read_is_older_than_a_write_acked_before_it_began():
    # Write 2 was acknowledged at 1.0; a read sent at 1.5 that returns 1
    # is stale, as is a nil; a read sent at 0.9 (before the ack) is not.
    h = [w("a", 1, 0.0, 0.5), w("a", 2, 0.6, 1.0),
         r("a", 1, 0.9, 1.2), r("a", 1, 1.5, 1.6), r("a", None, 1.7, 1.8),
         r("a", 1, 2.0, 2.1, status=INFO)]  # unanswered: not judged
    rep = check(h)
    assert [v.op.t0 for v in rep.stale] == [1.5, 1.7]
    assert not rep.lost and not rep.phantom


def test_phantom_read_is_a_value_never_attempted():
    # 7 was never written to a, 2 was written only after the read ended,
    # and b"junk" is no value at all: three phantoms, nothing else.
    h = [w("a", 1, 0.0, 0.1), w("a", 2, 5.0, 5.1),
         r("a", 7, 1.0, 1.1), r("a", 2, 2.0, 2.1), r("a", "junk", 3.0, 3.1)]
    rep = check(h)
    assert [v.op.value for v in rep.phantom] == [7, 2, "junk"]
    assert not rep.lost and not rep.stale


def test_report_restricted_to_a_round():
    # only() keeps the violations whose read passes the filter.
    h = [w("a", 1, 0.0, 0.1), w("a", 2, 0.2, 0.3),
         Op(READ, "a", 1, 1.0, 1.1, OK, "r", False, 1),
         Op(READ, "a", 1, 2.0, 2.1, OK, "r", False, 2)]
    rep = check(h)
    assert len(rep.stale) == 2
    assert len(rep.only(lambda op: op.round == 2).stale) == 1


def slot_of(key):
    # The tests' keys name their slot: "a@1" is in slot 1.
    return int(key.split("@")[1])


def test_declared_loss_explains_reads_of_the_empty_slot():
    # Slot 1 was declared lost between 2.0 (faults began) and 3.0 (a map
    # showed it). Writes 1 and 2 of a@1 were acknowledged before it: a
    # nil after that, or write 4 (sent after the loss), is the empty
    # slot; the final read of 4 shows write 5 lost, acked after the loss
    # was declared: a loss nobody declared.
    h = [w("a@1", 1, 0.0, 0.5), w("a@1", 2, 1.0, 1.5),
         w("a@1", 3, 2.5, 2.9, INFO), w("a@1", 4, 3.5, 3.6),
         w("a@1", 5, 5.0, 5.1),
         r("a@1", None, 2.2, 2.4),          # after the loss began
         r("a@1", None, 3.2, 3.3),
         r("a@1", 4, 4.0, 4.1),
         r("a@1", 4, 9.0, 9.1, final=True)]
    rep = check(h, [Loss(1, 2.0, 3.0)], slot_of)
    assert [v.op.t0 for v in rep.after_loss] == [2.2, 3.2]
    assert not rep.stale and not rep.phantom and not rep.declared
    assert [v.op.t0 for v in rep.lost] == [9.0]


def test_declared_loss_counts_final_reads_apart():
    # The final nil of a key written before the loss is a declared loss;
    # a key of another slot missing at the end is still lost.
    h = [w("a@1", 1, 0.0, 0.5), w("b@2", 1, 0.0, 0.5),
         r("a@1", None, 9.0, 9.1, final=True),
         r("b@2", None, 9.0, 9.1, final=True)]
    rep = check(h, [Loss(1, 2.0, 3.0)], slot_of)
    assert [v.op.key for v in rep.declared] == ["a@1"]
    assert [v.op.key for v in rep.lost] == ["b@2"]
    assert not rep.ok()
    assert rep.counts()["declared"] == 1 and rep.counts()["lost"] == 1


def test_declared_loss_does_not_excuse_older_copies():
    # A read of write 1, written before the loss, while write 2 was
    # acknowledged: an older copy, not the empty slot, so stale. A nil
    # that misses a write acknowledged after the loss was declared is
    # stale too, and so is a nil read that ended before the faults.
    h = [w("a@1", 1, 0.0, 0.5), w("a@1", 2, 1.0, 1.5),
         w("a@1", 3, 4.0, 4.1),
         r("a@1", None, 1.6, 1.8),          # before the faults began
         r("a@1", 1, 3.2, 3.3),             # an older copy
         r("a@1", None, 4.5, 4.6)]          # misses write 3, acked at 4.1
    rep = check(h, [Loss(1, 2.0, 3.0)], slot_of)
    assert [v.op.t0 for v in rep.stale] == [1.6, 3.2, 4.5]
    assert not rep.after_loss


def test_write_outage_is_the_longest_gap_between_acks_of_a_group():
    # Group g1 is acked at 1, 2 and then 6 (a 4 s gap); g2 steadily; a
    # failed write does not end a gap, and the window's ends count.
    h = [w("a", 1, 0.9, 1.0), w("a", 2, 1.9, 2.0), w("a", 3, 2.0, 4.0, FAIL),
         w("a", 4, 5.9, 6.0), w("b", 1, 0.0, 0.5), w("b", 2, 3.0, 3.5),
         w("b", 3, 6.5, 7.0)]
    secs, name = write_outage(h, {"g1": {"a"}, "g2": {"b"}}, 0.0, 7.0)
    assert (round(secs, 3), name) == (4.0, "g1")
    secs, name = write_outage(h, {"g2": {"b"}}, 0.0, 10.0)
    assert (round(secs, 3), name) == (3.5, "g2")
    assert write_outage(h, {}, 0.0, 1.0) == (0.0, None)


def test_set_with_a_hole_is_stale_and_lost():
    # Element 2 was acknowledged before the reads began: a set without it
    # is stale however many later elements it holds (a hole in the middle,
    # not only a missing tail), and a final read without it is one lost
    # write, charged once.
    h = [w("s", 1, 0.0, 0.1), w("s", 2, 0.2, 0.3), w("s", 3, 0.4, 0.5),
         r("s", frozenset([1, 3]), 1.0, 1.1),
         r("s", frozenset([1, 2, 3]), 1.2, 1.3),
         r("s", frozenset([1, 3]), 5.0, 5.1, final=True),
         r("s", frozenset([1, 3]), 6.0, 6.1, final=True)]
    rep = check(h)
    assert [v.op.t0 for v in rep.stale] == [1.0]
    assert "lacks 2" in rep.stale[0].why
    assert [v.op.t0 for v in rep.lost] == [5.0]
    assert not rep.phantom


def test_list_with_a_hole_is_stale():
    # The same for a list: [1, 3] lacks the acknowledged 2.
    h = [w("l", 1, 0.0, 0.1), w("l", 2, 0.2, 0.3), w("l", 3, 0.4, 0.5),
         r("l", (1, 3), 1.0, 1.1), r("l", (1, 2, 3), 1.2, 1.3),
         r("l", (1, 2), 1.4, 1.5)]      # a missing tail too
    rep = check(h)
    assert [v.op.t0 for v in rep.stale] == [1.0, 1.4]
    assert not rep.lost and not rep.phantom


def test_indeterminate_and_failed_elements_may_be_absent_or_present():
    # Write 2 timed out and write 3 failed: a set or a list may hold
    # them or not, in the middle or at the end; elements acknowledged
    # only after the read was sent may be missing; an empty collection
    # before any acknowledgement is nil, which is fine.
    for coll in (frozenset, tuple):
        h = [w("c", 1, 0.0, 0.1), w("c", 2, 0.2, 1.2, INFO),
             w("c", 3, 1.3, 1.4, FAIL), w("c", 4, 1.5, 1.6),
             w("c", 5, 3.0, 3.5),
             r("c", coll(()), 0.0, 0.05),
             r("c", coll((1,)), 1.0, 1.1),
             r("c", coll((1, 4)), 2.0, 2.1),
             r("c", coll((1, 2, 4)), 2.2, 2.3),
             r("c", coll((1, 3, 4)), 2.4, 2.5),
             r("c", coll((1, 2, 3, 4)), 3.2, 3.6),  # 5 acked after t0
             r("c", coll((1, 4, 5)), 9.0, 9.1, final=True)]
        rep = check(h)
        assert rep.ok(), [str(v) for v in rep.violations()]


def test_collection_phantoms():
    # An element never written, one written only after the read ended, a
    # list out of order or with an element twice (a write applied twice
    # or after a later one), and a reply that is no collection of the
    # key's values (a str) are phantoms; nothing else is reported.
    h = [w("l", 1, 0.0, 0.1), w("l", 2, 0.2, 0.3), w("l", 3, 5.0, 5.1),
         w("s", 1, 0.0, 0.1),
         r("l", (1, 2, 7), 1.0, 1.1), r("l", (1, 2, 3), 2.0, 2.1),
         r("l", (2, 1), 3.0, 3.1), r("l", (1, 2, 2), 3.2, 3.3),
         r("s", frozenset([1, 9]), 1.0, 1.1),
         r("s", "WRONGTYPE Operation against a key", 1.2, 1.3)]
    rep = check(h)
    assert [(v.op.key, v.op.t0) for v in rep.phantom] == [
        ("l", 1.0), ("s", 1.0), ("s", 1.2), ("l", 2.0), ("l", 3.0),
        ("l", 3.2)]
    assert "2 before 1" in rep.phantom[4].why
    assert not rep.lost and not rep.stale
    # A phantom is not also stale, but its report says what it lacks (a
    # replica that got 2000 instead of 2).
    rep = check([w("s", 1, 0.0, 0.1), w("s", 2, 0.2, 0.3),
                 r("s", frozenset([1, 2000]), 1.0, 1.1)])
    assert rep.phantom[0].why.endswith("it also lacks 2")
    assert not rep.stale


def test_collection_after_a_declared_loss():
    # Slot 1 declared lost in [2.0, 3.0]: a set that lacks the elements
    # acknowledged before the loss, and holds only elements written after
    # the faults began, is the empty slot (after_loss, declared at the
    # end); one that still holds element 1 beside the hole is an older
    # copy, stale.
    h = [w("s@1", 1, 0.0, 0.5), w("s@1", 2, 1.0, 1.5),
         w("s@1", 3, 3.5, 3.6),
         r("s@1", frozenset(), 2.2, 2.4),
         r("s@1", frozenset([3]), 4.0, 4.1),
         r("s@1", frozenset([1, 3]), 4.2, 4.3),
         r("s@1", frozenset([3]), 9.0, 9.1, final=True)]
    rep = check(h, [Loss(1, 2.0, 3.0)], slot_of)
    assert [v.op.t0 for v in rep.after_loss] == [2.2, 4.0]
    assert [v.op.t0 for v in rep.stale] == [4.2]
    assert [v.op.t0 for v in rep.declared] == [9.0]
    assert not rep.lost and not rep.phantom

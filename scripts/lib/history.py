"""The history checker of the partition test (scripts/lib/nemesis.py): pure
functions over a recorded history, no sockets, no processes, no clock.

A history is a list of Op: every write and read a client attempted, with
the monotonic times it was sent (t0) and answered or given up on (t1), and
how it ended:

- "ok": a write answered OK, a read answered with a value (or nil);
- "fail": the request certainly did not run (no connection, -CLUSTERDOWN);
- "info": indeterminate (a timeout, a reset, an error reply the write may
  have run behind). A failed or indeterminate write may or may not be
  visible later; the checker never counts on either.

Each key has one writing client at a time, which writes 1, 2, 3, ... in
order, so a larger value is always a newer write. A write's value is that
integer, whatever the key's type. Most keys are registers (a string, a
hash field): a write replaces the value, and a read's value is an integer,
None for nil (no write visible: older than any), or a str for bytes that
are not one of the key's values at all. Some keys are collections, whose
writes add their integer as an element (SADD, ZADD, RPUSH); a read of one
gives every element at once:

- a frozenset of integers for a set (a set, or a sorted set whose every
  member has its own integer as score): the elements in no order;
- a tuple of integers for a list (RPUSH appends), in the list's order;
- an empty frozenset or tuple when the key holds nothing (nil);
- a str, as for a register, when the reply is not such a collection (an
  element that is no integer, a score that is not its member, a WRONGTYPE
  error).

What is counted (check()):

- lost: a final read (taken after every write of its key had ended) older
  than the last write of the key acknowledged before it, nil included: a
  key written once before the faults and missing at the end is a lost
  write. A loss is counted once: after the final read that shows it, the
  key is judged only against the writes acknowledged after that read.
- stale: any other read older than a write acknowledged before the read
  was sent (t1 of the write < t0 of the read).
- phantom: a read of a value no write of that key attempted before the
  read ended (or of bytes that are no value of the key).

A collection is judged element by element (check_elements()): it is lost
(a final read) or stale (any other) when it lacks an element whose write
was acknowledged before the read was sent, wherever in the collection it
belongs (a hole in the middle counts as much as a missing tail); it is
phantom when it holds an element no write attempted before the read ended,
or, for a list, when its elements are not strictly increasing (a write
applied twice, or after a later write: no run of the writes in the order
they were made leaves that list). A failed or indeterminate write's
element may be there or not. (A register that reads n is judged as if it
held the elements 1..n: the two rules agree.)

Declared losses. With one in-sync copy allowed (min-isr 1, on-lost
empty), a slot whose every in-sync copy fails starts over empty, and the
cluster says so: the slot's `born` epoch moves in the map and the
coordinator counts it lost (docs/safety.md). check() takes those losses
as Loss(slot, after, by): the cluster declared the slot lost at some time
in [after, by] (`after`: the faults began; `by`: a coordinator's map
first showed it). Given them, and slot_of(key):

- declared: a lost write of such a slot, acknowledged before `by`: the
  documented loss, counted apart from `lost` (which keeps the losses
  nobody declared);
- after_loss: a read that would be stale, of such a slot, that missed
  only writes acknowledged before `by`, ended after `after`, and saw
  nil or a value written after `after` (for a collection: only elements
  written after `after`): what the empty slot holds, not an older copy.
  A read of a value written before the loss is still stale, and so is
  one that missed a write acknowledged after `by`.

write_outage() measures availability instead: the longest time some group
of keys went without an acknowledged write.
"""

import collections

OK, FAIL, INFO = "ok", "fail", "info"
WRITE, READ = "write", "read"


class Op(collections.namedtuple(
        "Op", "kind key value t0 t1 status client final round")):
    """One attempted operation; see the module doc. `final` marks the reads
    taken after the writes ended (they decide lost writes); `round` tags
    the nemesis round the op belongs to, for per-round reports."""
    __slots__ = ()

    def __new__(cls, kind, key, value, t0, t1, status, client="",
                final=False, round=0):
        return super().__new__(cls, kind, key, value, t0, t1, status,
                               client, final, round)

    def __str__(self):
        return "%s %s %s=%s %s [%.3f..%.3f]%s%s" % (
            self.client or "-", self.kind, self.key, _brief(self.value),
            self.status, self.t0, self.t1, " final" if self.final else "",
            " round %d" % self.round if self.round else "")


def _brief(value):
    """A read's value for a report line: a collection of more than 8
    elements as its size and ends."""
    if isinstance(value, frozenset):
        value = tuple(sorted(value, key=lambda v: (
            not isinstance(v, int), v if isinstance(v, int) else str(v))))
        return "{%s}" % _brief(value)[1:-1] if len(value) <= 8 else \
            "{%d elements: %s..%s}" % (len(value), value[0], value[-1])
    if isinstance(value, tuple) and len(value) > 8:
        return "[%d elements: %s, %s, ..., %s, %s]" % (
            len(value), value[0], value[1], value[-2], value[-1])
    if isinstance(value, tuple):
        return "[%s]" % ", ".join(map(str, value))
    return repr(value)


class Loss(collections.namedtuple("Loss", "slot after by")):
    """The cluster declared `slot` lost at some time in [after, by]."""
    __slots__ = ()


class Violation(collections.namedtuple("Violation", "kind op why")):
    """kind is "lost", "stale", "phantom", "declared" or "after_loss" (the
    last two are not violations: see the module doc); op is the read that
    shows it."""
    __slots__ = ()

    def __str__(self):
        return "%s: %s: %s" % (self.kind, self.op, self.why)


class Report(collections.namedtuple(
        "Report", "lost stale phantom declared after_loss")):
    """Lists of Violation per kind. lost and declared hold one entry per
    loss (the first final read that shows it); the others one per read.
    Only lost, stale and phantom are violations."""
    __slots__ = ()

    def counts(self):
        return {"lost": len(self.lost), "stale": len(self.stale),
                "phantom": len(self.phantom),
                "declared": len(self.declared),
                "after_loss": len(self.after_loss)}

    def violations(self):
        return self.lost + self.stale + self.phantom

    def ok(self):
        return not (self.lost or self.stale or self.phantom)

    def only(self, pred):
        """The same report restricted to violations whose op satisfies
        pred (e.g. the ops of one round)."""
        return Report(*[[v for v in vs if pred(v.op)] for vs in self])


def _writes_by_key(history):
    """{key: (acked, attempts, ended)}: acked is [(t1, value)] of
    acknowledged writes sorted by t1; attempts is {value: earliest t0};
    ended is {value: latest t1}."""
    acked, attempts, ended = {}, {}, {}
    for op in history:
        if op.kind != WRITE:
            continue
        att = attempts.setdefault(op.key, {})
        if op.value not in att or op.t0 < att[op.value]:
            att[op.value] = op.t0
        end = ended.setdefault(op.key, {})
        end[op.value] = max(end.get(op.value, op.t1), op.t1)
        if op.status == OK:
            acked.setdefault(op.key, []).append((op.t1, op.value))
    for v in acked.values():
        v.sort()
    return {k: (acked.get(k, []), attempts[k], ended[k]) for k in attempts}


def _floor(acked, before, since=None):
    """The newest value among acknowledged writes answered before time
    `before` (and after `since`, when given) (0 when none): a later read
    must see it or a newer one."""
    best = 0
    for t1, value in acked:
        if t1 >= before:
            break
        if since is None or t1 > since:
            best = max(best, value)
    return best


def _missed_by(acked, seen, before, since=None):
    """When the last acknowledged write newer than `seen` among those
    answered before `before` (and after `since`) was answered: a read of
    `seen` missed every write acknowledged up to then."""
    last = None
    for t1, value in acked:
        if t1 >= before:
            break
        if (since is None or t1 > since) and value > seen:
            last = t1
    return last


def _declared(losses, op, missed_t1, ended, seen):
    """Is what op read (missing writes acknowledged up to missed_t1; seen:
    the values it holds, none for nil) the empty start of a slot the
    cluster declared lost? (module doc)"""
    for loss in losses:
        if missed_t1 < loss.by and op.t1 >= loss.after and all(
                ended.get(v, 0) >= loss.after for v in seen):
            return True
    return False


def is_collection(value):
    """Is a read's value a collection's elements (module doc)?"""
    return isinstance(value, (frozenset, tuple))


def _phantom_element(op, attempts):
    """Why a collection read is a phantom (module doc), or None."""
    value = op.value
    for v in value:
        if not isinstance(v, int) or isinstance(v, bool):
            return "%r is no value of %s" % (v, op.key)
        if v not in attempts or attempts[v] > op.t1:
            return "write %d of %s was never attempted%s" % (
                v, op.key, " before the read ended" if v in attempts
                else "")
    if isinstance(value, tuple):
        for a, b in zip(value, value[1:]):
            if a >= b:
                return "list %s has %d before %d: no run of the writes " \
                    "in their order leaves it" % (op.key, a, b)
    return None


def check_elements(op, acked, attempts, since=None):
    """A collection read judged on its own (module doc): (phantom why or
    None, [values acknowledged before op began, after `since`, that it
    lacks], when the last of those was acknowledged or None). acked and
    attempts are the key's, as in _writes_by_key."""
    present = frozenset(op.value)
    missing, last = [], None
    for t1, v in acked:
        if t1 >= op.t0:
            break
        if (since is None or t1 > since) and v not in present:
            missing.append(v)
            last = t1
    return _phantom_element(op, attempts), missing, last


def _shown(values):
    if len(values) > 6:
        return "%s, ... (%d)" % (", ".join(map(str, values[:5])),
                                 len(values))
    return ", ".join(map(str, values))


def check(history, losses=(), slot_of=None):
    """Every lost write, stale read and phantom read in history (a list of
    Op), and the losses and reads that declared losses (Loss; slot_of maps
    a key to its slot) explain; returns a Report. Only reads answered "ok"
    are judged."""
    writes = _writes_by_key(history)
    by_slot = {}
    for loss in losses:
        by_slot.setdefault(loss.slot, []).append(loss)
    lost, stale, phantom, declared, after_loss = [], [], [], [], []
    # A key whose loss a final read showed is charged once: the reads
    # after that one are judged only against the writes acknowledged
    # after it (else every later read of a lost key is one more "stale").
    lost_at = {}
    for op in sorted(history, key=lambda o: (o.t0, o.t1)):
        if op.kind != READ or op.status != OK:
            continue
        acked, attempts, ended = writes.get(op.key, ([], {}, {}))
        value = op.value
        if is_collection(value):
            _check_collection(op, acked, attempts, ended, lost_at,
                              by_slot.get(slot_of(op.key)) if by_slot
                              else None, lost, stale, phantom, declared,
                              after_loss)
            continue
        if value is not None and not isinstance(value, int):
            phantom.append(Violation("phantom", op, "%r is no value of %s"
                                     % (value, op.key)))
            continue
        if value is not None and (value not in attempts or
                                  attempts[value] > op.t1):
            phantom.append(Violation(
                "phantom", op, "write %d of %s was never attempted%s" % (
                    value, op.key, " before the read ended"
                    if value in attempts else "")))
            continue
        seen = value or 0
        since = lost_at.get(op.key)
        floor = _floor(acked, op.t0, since)
        if seen >= floor:
            continue
        slot_losses = by_slot.get(slot_of(op.key)) if by_slot else None
        excused = slot_losses and _declared(
            slot_losses, op, _missed_by(acked, seen, op.t0, since), ended,
            () if value is None else (value,))
        shown = "nil" if value is None else value
        if op.final:
            lost_at[op.key] = op.t1
            why = "final value %s, but write %d was acknowledged" % (
                shown, floor)
            if excused:
                declared.append(Violation("declared", op, why + " (its "
                                          "slot was declared lost)"))
            else:
                lost.append(Violation("lost", op, why))
            continue
        why = "read %s, but write %d was acknowledged before the read " \
            "began" % (shown, floor)
        if excused:
            after_loss.append(Violation("after_loss", op, why + " (its "
                                        "slot was declared lost)"))
        else:
            stale.append(Violation("stale", op, why))
    return Report(lost, stale, phantom, declared, after_loss)


def _check_collection(op, acked, attempts, ended, lost_at, slot_losses,
                      lost, stale, phantom, declared, after_loss):
    """check()'s judgement of one collection read (module doc); appends to
    the lists of check()."""
    why, missing, last = check_elements(op, acked, attempts,
                                        lost_at.get(op.key))
    if why:
        # A phantom is not judged stale or lost as well (as a register's
        # is not), but what it lacks helps to tell what went wrong.
        phantom.append(Violation("phantom", op, why + (
            "; it also lacks %s" % _shown(missing) if missing else "")))
        return
    if not missing:
        return
    excused = slot_losses and _declared(slot_losses, op, last, ended,
                                        op.value)
    what = "%s lacks %s" % ("list" if isinstance(op.value, tuple)
                            else "set", _shown(missing))
    if op.final:
        lost_at[op.key] = op.t1
        why = "final %s, acknowledged" % what
        if excused:
            declared.append(Violation("declared", op, why + " (its slot "
                                      "was declared lost)"))
        else:
            lost.append(Violation("lost", op, why))
        return
    why = "%s, acknowledged before the read began" % what
    if excused:
        after_loss.append(Violation("after_loss", op, why + " (its slot "
                                    "was declared lost)"))
    else:
        stale.append(Violation("stale", op, why))


def write_outage(history, groups, t_from, t_to):
    """The longest time, within [t_from, t_to], that a group of keys went
    without an acknowledged write: for each group ({name: set of keys}),
    the largest gap between t_from, the answer times (t1) of its
    acknowledged writes, and t_to. Returns (seconds, group name), or
    (0.0, None) when there are no groups. A group whose writer was held up
    by a hung request counts that wait too: it is what its clients saw."""
    key_group = {}
    for name, keys in groups.items():
        for k in keys:
            key_group[k] = name
    acks = {name: [] for name in groups}
    for op in history:
        if op.kind == WRITE and op.status == OK and op.key in key_group \
                and t_from <= op.t1 <= t_to:
            acks[key_group[op.key]].append(op.t1)
    worst, worst_name = 0.0, None
    for name, times in sorted(acks.items()):
        prev = t_from
        for t in sorted(times) + [t_to]:
            if t - prev > worst:
                worst, worst_name = t - prev, name
            prev = t
    return worst, worst_name

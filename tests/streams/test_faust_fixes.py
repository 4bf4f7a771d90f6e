"""The repairs of Faust's commit bookkeeping (streams/faust_fixes.py), on Faust's own Consumer
code with its state set by hand; the end-to-end proof is tests/integration/test_faults.py."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from streams import faust_fixes

TOPIC = "jobs.completed"


def consumer_state(committed: int | None, acked: list[int], gaps: list[tuple[int, int]] = ()) -> SimpleNamespace:
    tp = TP(TOPIC, 0)
    gap = defaultdict(IntervalTree)
    for begin, end in gaps:
        gap[tp].addi(begin, end)
    return SimpleNamespace(_committed_offset=defaultdict(lambda: None, {tp: committed} if committed is not None else {}),
                           _acked=defaultdict(list, {tp: list(acked)}), _acked_index=defaultdict(set, {tp: set(acked)}),
                           _gap=gap)


def new_offset(state: SimpleNamespace) -> int | None:
    faust_fixes.install()
    return Consumer._new_offset(state, TP(TOPIC, 0))


def test_commit_never_passes_an_unacknowledged_committed_offset() -> None:
    assert new_offset(consumer_state(10, [10, 11, 12])) == 13
    # Faust alone commits 13 here: the event at offset 10 was never acknowledged
    assert new_offset(consumer_state(10, [11, 12])) is None
    # a new partition (rewound to its earliest offset 0): nothing before 0 is acknowledged yet
    assert new_offset(consumer_state(0, [3, 4, 5])) is None
    assert new_offset(consumer_state(0, [0, 1, 2, 5])) == 3
    # a known gap in the log (offsets that do not exist) counts as acknowledged
    assert new_offset(consumer_state(10, [12, 13], gaps=[(10, 12)])) == 14


def test_hole_is_the_committed_offset_when_later_ones_are_acknowledged() -> None:
    tp = TP(TOPIC, 0)
    assert faust_fixes._hole(consumer_state(10, [11, 12]), tp) == 10
    assert faust_fixes._hole(consumer_state(10, [10, 11]), tp) is None
    assert faust_fixes._hole(consumer_state(10, []), tp) is None
    assert faust_fixes._hole(consumer_state(None, [3]), tp) is None


def test_an_ack_from_an_older_generation_never_counts_toward_a_commit() -> None:
    """A slow agent skips (and Faust acks) events fetched before a rebalance; had they counted,
    the new generation would commit records that agent never processed."""
    faust_fixes.install()
    tp = TP(TOPIC, 0)
    state = consumer_state(10, [])
    state.app = SimpleNamespace(consumer_generation_id=7, topics=SimpleNamespace(acks_enabled_for=lambda topic: True))
    state._unacked_messages = set()
    state._n_acked = 0
    state._waiting_for_ack = None

    class Message:  # hashable, like faust's
        def __init__(self, offset: int, generation: int) -> None:
            self.acked, self.tp, self.topic, self.offset, self.generation_id = False, tp, TOPIC, offset, generation

    message = Message

    stale = [message(o, 6) for o in (10, 11, 12)]
    assert not any(Consumer.ack(state, m) for m in stale)
    assert all(m.acked for m in stale) and list(state._acked[tp]) == []
    assert new_offset(state) is None  # nothing to commit: the re-read copies will be
    fresh = [message(o, 7) for o in (10, 11, 12)]
    assert all(Consumer.ack(state, m) for m in fresh)
    assert new_offset(state) == 13

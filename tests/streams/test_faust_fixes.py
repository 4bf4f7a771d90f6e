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


class FakeApp:
    def __init__(self, committed: dict[int, int]) -> None:
        self.consumer = SimpleNamespace(_committed_offset={TP(TOPIC, p): o for p, o in committed.items()})
        self.receivers = []
        self.on_partitions_assigned = SimpleNamespace(connect=self.receivers.append)


def test_contiguity_refuses_records_past_a_missing_one_until_it_is_redelivered() -> None:
    import asyncio

    app = FakeApp({0: 100, 1: 7})
    order = faust_fixes.Contiguity(app)
    assert order.allowed(TOPIC, [(0, 100), (0, 101), (1, 7)]) == {(0, 100), (0, 101), (1, 7)}
    # offset 102 of partition 0 never arrived: 103 and 104 wait; partition 1 goes on
    assert order.allowed(TOPIC, [(0, 103), (1, 8), (0, 104)]) == {(1, 8)}
    # the hole healer seeks back to the committed offset: duplicates and the missing record
    assert order.allowed(TOPIC, [(0, 101), (0, 102), (0, 103), (0, 104)]) == {(0, 101), (0, 102), (0, 103), (0, 104)}
    # a rebalance starts again from the committed offsets
    asyncio.run(app.receivers[0](app, {TP(TOPIC, 0)}))
    app.consumer._committed_offset[TP(TOPIC, 0)] = 105
    assert order.allowed(TOPIC, [(0, 106)]) == set()
    assert order.allowed(TOPIC, [(0, 105), (0, 106)]) == {(0, 105), (0, 106)}

"""The worker's commits come from the commit ledger (worker/delivery/overrides.py), driven through
Faust's own Consumer code with its state set by hand; the end-to-end proof is
tests/integration/test_faults.py and tests/integration/test_worker_restart.py."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from types import SimpleNamespace

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from sentinel.offsets import CommitLedger
from worker.delivery import overrides as faust_fixes
from worker.app import create_app, finished
from config.settings import Settings

TOPIC = "jobs.completed"
READERS = ("archive", "score", "tally")


def consumer_state(committed: int | None, acked: list[int], gaps: list[tuple[int, int]] = (),
                   ledger: CommitLedger | None = None) -> SimpleNamespace:
    tp = TP(TOPIC, 0)
    gap = defaultdict(IntervalTree)
    for begin, end in gaps:
        gap[tp].addi(begin, end)
    return SimpleNamespace(_committed_offset=defaultdict(lambda: None, {tp: committed} if committed is not None else {}),
                           _acked=defaultdict(list, {tp: list(acked)}), _acked_index=defaultdict(set, {tp: set(acked)}),
                           _gap=gap, app=SimpleNamespace(sentinel_ledger=ledger))


def new_offset(state: SimpleNamespace) -> int | None:
    faust_fixes.install()
    return Consumer._new_offset(state, TP(TOPIC, 0))


def ledger_from(start: int, finished_by: dict[str, range | list[int]]) -> CommitLedger:
    ledger = CommitLedger({TOPIC: READERS})
    ledger.reset({(TOPIC, 0): start})
    for reader, offsets in finished_by.items():
        for o in offsets:
            ledger.finish(reader, TOPIC, 0, o)
    return ledger


def test_the_commit_waits_for_every_reader_whatever_faust_acknowledged() -> None:
    # Faust counts 10..19 acknowledged (e.g. a failed take_events batch acked in its finally);
    # the score agent finished only 10..12
    ledger = ledger_from(10, {"archive": range(10, 20), "tally": range(10, 20), "score": [10, 11, 12, 15]})
    state = consumer_state(10, list(range(10, 20)), ledger=ledger)
    assert new_offset(state) == 13
    # Faust's own (unused) bookkeeping is trimmed below the commit, the rest kept
    assert state._acked[TP(TOPIC, 0)] == list(range(13, 20)) and state._acked_index[TP(TOPIC, 0)] == set(range(13, 20))
    # nothing finished by every reader: nothing to commit past the committed offset
    assert new_offset(consumer_state(10, [], ledger=ledger_from(10, {"archive": [10], "tally": [10]}))) == 10


def test_fausts_gaps_never_move_the_commit() -> None:
    """Faust records a "gap" wherever the offsets it delivers jump -- also where it dropped
    records after a rebalance -- and counted it acknowledged: 57-63 were committed unscored."""
    ledger = ledger_from(57, {"archive": range(57, 70), "tally": range(57, 70), "score": range(64, 70)})
    state = consumer_state(57, list(range(57, 70)), gaps=[(57, 64)], ledger=ledger)
    assert new_offset(state) == 57
    assert state._gap[TP(TOPIC, 0)]  # kept until passed
    for o in range(57, 64):  # the re-read copies
        ledger.finish("score", TOPIC, 0, o)
    assert new_offset(state) == 70
    assert not state._gap[TP(TOPIC, 0)]  # chopped below the commit: Faust's bookkeeping stays bounded


def test_topics_without_a_ledger_keep_fausts_commit() -> None:
    assert new_offset(consumer_state(10, [10, 11, 12])) == 13
    ledger = CommitLedger({"other.topic": ["x"]})
    assert new_offset(consumer_state(10, [10, 11, 12], ledger=ledger)) == 13


def test_every_agent_of_the_worker_is_a_reader_of_its_topics(tmp_path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    assert app.sentinel_ledger.readers == {
        "jobs.completed": ("archive", "score", "tally"),
        "jobs.scored": ("drift", "store_scores"),
        "alerts.quality": ("notify", "store_alerts"),
        "ratings.pairwise": ("store_ratings",),
    }


def test_a_batch_body_that_raised_finishes_nothing() -> None:
    ledger = ledger_from(0, {"archive": range(3), "tally": range(3)})
    app = SimpleNamespace(sentinel_ledger=ledger)
    events = [SimpleNamespace(message=SimpleNamespace(topic=TOPIC, partition=0, offset=o)) for o in range(3)]
    with pytest.raises(RuntimeError):
        with finished(app, "score", events):
            raise RuntimeError("the sink blew up")
    assert ledger.committable(TOPIC, 0) == 0
    for ev in events:  # the re-read copies
        with finished(app, "score", [ev]):
            pass
    assert ledger.committable(TOPIC, 0) == 3


class FakeConsumer:
    """What the healer reads of Faust's consumer: the log ends."""

    def __init__(self, end: int | None = None) -> None:
        self.end = end

    async def highwaters(self, tp):
        return {tp: self.end}


def due(healer: faust_fixes.HoleHealer, consumer: FakeConsumer, ledger: CommitLedger, now: float):
    return asyncio.run(healer.due(consumer, ledger, TP(TOPIC, 0), now))


def test_a_passed_over_record_is_re_read_at_the_second_sighting_then_backs_off() -> None:
    ledger = ledger_from(10, {"archive": range(10, 20), "tally": range(10, 20), "score": [10, 11, 12, 14, 15]})
    healer, consumer = faust_fixes.HoleHealer(interval_s=2.0, idle_s=20.0), FakeConsumer()
    assert due(healer, consumer, ledger, 0.0) is None  # first sighting: score may still be at it
    assert due(healer, consumer, ledger, 2.0) == (13, "not finished by score while it finished 14")
    assert due(healer, consumer, ledger, 4.0) is None  # backing off: 4 s, then 8 s
    assert due(healer, consumer, ledger, 6.0) is not None
    assert due(healer, consumer, ledger, 10.0) is None
    assert due(healer, consumer, ledger, 14.0) is not None
    ledger.finish("score", TOPIC, 0, 13)  # the re-read copy arrived: the position moves on
    assert due(healer, consumer, ledger, 16.0) is None and due(healer, consumer, ledger, 18.0) is None


def test_a_slow_reader_is_left_alone_until_it_has_not_moved_for_idle_s() -> None:
    ledger = ledger_from(10, {"archive": range(10, 20), "tally": range(10, 20), "score": [10, 11]})
    healer, consumer = faust_fixes.HoleHealer(interval_s=2.0, idle_s=20.0), FakeConsumer()
    assert due(healer, consumer, ledger, 0.0) is None
    assert due(healer, consumer, ledger, 10.0) is None
    ledger.finish("score", TOPIC, 0, 12)  # progress restarts the clock
    assert due(healer, consumer, ledger, 12.0) is None
    assert due(healer, consumer, ledger, 31.0) is None
    assert due(healer, consumer, ledger, 32.0) == (13, "not finished by score for 20s while others are past it")


def test_a_partition_nobody_reads_on_is_re_read_only_if_the_log_goes_on() -> None:
    ledger = ledger_from(10, {r: range(10, 20) for r in READERS})
    healer = faust_fixes.HoleHealer(interval_s=2.0, idle_s=20.0)
    caught_up = FakeConsumer(end=20)
    assert due(healer, caught_up, ledger, 0.0) is None
    assert due(healer, caught_up, ledger, 25.0) is None  # at the log end: nothing to read
    stalled = FakeConsumer(end=33)
    assert due(healer, stalled, ledger, 30.0) is None  # the clock restarted at the last check
    assert due(healer, stalled, ledger, 45.0) == (20, "no reader got past it for 20s (log end 33)")


def test_an_empty_fetch_is_followed_by_a_short_wait_a_full_one_is_not() -> None:
    """noida-db answers empty fetches at once: without the wait an idle worker spun a core."""
    calls = []

    async def fetch(self, assignment, node_id, request) -> bool:
        calls.append(request)
        return request == "data"

    wrapped = faust_fixes.waiting_after_empty(fetch, wait_s=0.05)
    fetcher = SimpleNamespace(_fetch_max_wait_ms=1500)

    async def timed(request: str) -> tuple[bool, float]:
        began = time.monotonic()
        got = await wrapped(fetcher, None, 1, request)
        return got, time.monotonic() - began

    got, took = asyncio.run(timed("empty"))
    assert got is False and 0.045 <= took < 0.5
    got, took = asyncio.run(timed("data"))
    assert got is True and took < 0.03
    fetcher._fetch_max_wait_ms = 10  # never longer than the consumer's own max wait
    got, took = asyncio.run(timed("empty"))
    assert took < 0.04 and calls == ["empty", "data", "empty"]


def test_a_cancelled_wait_ends_the_fetch_quietly() -> None:
    async def fetch(self, assignment, node_id, request) -> bool:
        return False

    async def cancel_midway() -> bool:
        task = asyncio.ensure_future(faust_fixes.waiting_after_empty(fetch, wait_s=5.0)(
            SimpleNamespace(_fetch_max_wait_ms=1500), None, 1, None))
        await asyncio.sleep(0.01)
        task.cancel()
        return await task

    assert asyncio.run(cancel_midway()) is False

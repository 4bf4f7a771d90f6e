"""The Faust/aiokafka overrides (worker/delivery/overrides.py): commits from the ledger, driven
through Faust's own Consumer code with its state set by hand; the shape check; the empty-fetch
wait. End-to-end proof: tests/integration/test_faults.py and test_worker_restart.py."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import defaultdict
from types import SimpleNamespace

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from sentinel.offsets import CommitLedger
from worker.delivery import overrides
from worker_fakes import ledger_from, protocol_with

TOPIC = "jobs.completed"


def consumer_state(committed: int | None, acked: list[int], gaps: list[tuple[int, int]] = (),
                   ledger: CommitLedger | None = None) -> SimpleNamespace:
    tp = TP(TOPIC, 0)
    gap = defaultdict(IntervalTree)
    for begin, end in gaps:
        gap[tp].addi(begin, end)
    app = SimpleNamespace()
    overrides.attach(app, protocol_with(ledger))
    return SimpleNamespace(_committed_offset=defaultdict(lambda: None, {tp: committed} if committed is not None else {}),
                           _acked=defaultdict(list, {tp: list(acked)}), _acked_index=defaultdict(set, {tp: set(acked)}),
                           _gap=gap, app=app)


def new_offset(state: SimpleNamespace) -> int | None:
    overrides.install()
    return Consumer._new_offset(state, TP(TOPIC, 0))


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


def test_an_empty_fetch_is_followed_by_a_short_wait_a_full_one_is_not() -> None:
    """noida-db answers empty fetches at once: without the wait an idle worker spun a core."""
    calls = []

    async def fetch(self, assignment, node_id, request) -> bool:
        calls.append(request)
        return request == "data"

    wrapped = overrides.waiting_after_empty(fetch, wait_s=0.05)
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
        task = asyncio.ensure_future(overrides.waiting_after_empty(fetch, wait_s=5.0)(
            SimpleNamespace(_fetch_max_wait_ms=1500), None, 1, None))
        await asyncio.sleep(0.01)
        task.cancel()
        return await task

    assert asyncio.run(cancel_midway()) is False


def test_the_shapes_patched_are_checked_at_start() -> None:
    overrides.check_shape()  # the installed faust-streaming/aiokafka: every patched name as expected


def test_a_changed_faust_is_refused_with_the_version_named(monkeypatch) -> None:
    import faust.transport.consumer as consumer_mod

    monkeypatch.delattr(consumer_mod.Consumer, "_new_offset")
    with pytest.raises(overrides.FaustShapeError, match=r"faust-streaming [0-9.]+.*Consumer\._new_offset is missing"):
        overrides.check_shape()


def test_a_consumer_without_the_private_state_read_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(overrides, "_CONSUMER_CHECKED", False)
    with pytest.raises(overrides.FaustShapeError, match="_committed_offset"):
        overrides.check_consumer(SimpleNamespace(_acked={}, _acked_index={}, _gap={}, _paused_partitions=set(), app=None))


def test_a_sync_group_answer_with_no_assignment_bytes_means_join_again() -> None:
    """noida-db once answered a follower's SyncGroup with zero bytes (two workers starting under
    load, bench/scale_out.py): aiokafka's decode of them raises, its coordinator routine died, and
    the worker stayed up without partitions while the group kept rebalancing around it. An
    encoded assignment, even one with no partitions, is never empty, so zero bytes mean "no
    answer yet": the patched join returns None, which aiokafka retries after its backoff."""
    from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance
    from aiokafka.coordinator.protocol import ConsumerProtocol, ConsumerProtocolMemberAssignment

    with pytest.raises(ValueError):  # what killed the coordinator routine
        ConsumerProtocol.ASSIGNMENT.decode(b"")
    no_partitions = ConsumerProtocolMemberAssignment(0, [], b"").encode()
    assert len(no_partitions) > 0 and ConsumerProtocol.ASSIGNMENT.decode(no_partitions).assignment == []

    answers = [("roundrobin", b""), ("roundrobin", no_partitions), None, ("roundrobin", b"\x00\x01")]

    async def join(self) -> tuple[str, bytes] | None:
        return answers.pop(0)

    wrapped = overrides.retrying_empty_assignment(join)
    rebalance = SimpleNamespace(group_id="g")
    got = [asyncio.run(wrapped(rebalance)) for _ in range(4)]
    assert got == [None, ("roundrobin", no_partitions), None, ("roundrobin", b"\x00\x01")]
    overrides.install()
    assert CoordinatorGroupRebalance.perform_group_join.__wrapped__ is not None


class Waits:
    """The state mode's ``wait_first`` reads: a service's stopped and crashed events."""

    def __init__(self) -> None:
        self._stopped, self._crashed = asyncio.Event(), asyncio.Event()
        self.loop = asyncio.get_running_loop()


def wait_first():
    overrides.install()
    return Consumer.wait_first


def test_a_hand_over_that_does_not_wait_wins_at_once_and_the_others_never_start() -> None:
    async def main():
        service, started = Waits(), []

        async def hand_over():
            return "put"

        async def flow_stopped():
            started.append("flow")
            await asyncio.sleep(10)

        loop = asyncio.get_running_loop()
        tasks_before = len(asyncio.all_tasks(loop))
        first, other = hand_over(), flow_stopped()
        result = await wait_first()(service, first, other)
        assert len(asyncio.all_tasks(loop)) == tasks_before  # no task made, none left behind
        return result, started, first, other

    result, started, first, other = asyncio.run(main())
    assert (result.done, result.results, result.stopped) == ([first], ["put"], False)
    assert started == [] and inspect.getcoroutinestate(other) == inspect.CORO_CLOSED  # closed unstarted


def test_a_hand_over_that_waits_races_the_others_as_mode_does() -> None:
    async def main():
        service, log = Waits(), []
        queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        queue.put_nowait("full")
        flow = asyncio.Event()

        async def hand_over(item):
            try:
                await queue.put(item)
                log.append(f"put {item}")
                return item
            finally:
                log.append(f"left {item}")

        # room appears while it waits: its rest runs in a task, and it wins with its value
        asyncio.get_running_loop().call_later(0.01, queue.get_nowait)
        won = await wait_first()(service, hand_over("a"), flow.wait())
        # no room: the flow stops first; the hand-over is cancelled inside its await (its finally runs)
        asyncio.get_running_loop().call_later(0.01, flow.set)
        lost = await wait_first()(service, hand_over("b"), flow.wait())
        await asyncio.sleep(0.01)
        return won, lost, log, list(queue._queue)

    won, lost, log, queued = asyncio.run(main())
    assert won.results == ["a"] and not won.stopped
    assert lost.results == [True] and not lost.stopped  # the flow's wait() won
    assert log == ["put a", "left a", "left b"] and queued == ["a"]


def test_an_error_in_the_first_step_is_raised_and_a_stopped_service_answers_stopped() -> None:
    async def main():
        service = Waits()

        async def broken():
            raise ValueError("bad record")

        async def never():
            await asyncio.sleep(10)

        other = never()
        with pytest.raises(ValueError, match="bad record"):
            await wait_first()(service, broken(), other)
        assert inspect.getcoroutinestate(other) == inspect.CORO_CLOSED
        service._stopped.set()

        async def fine():
            return 1

        return await wait_first()(service, fine(), never())

    assert asyncio.run(main()).stopped



def test_another_task_may_await_the_future_a_hand_over_waits_on() -> None:
    """Between the first step and the task that finishes the hand-over, the future it waits on
    must not stay flagged as awaited: asyncio refuses a second await of a flagged future."""
    async def main():
        service, loop = Waits(), asyncio.get_running_loop()
        shared = loop.create_future()
        flow = asyncio.Event()

        async def hand_over():
            return await shared

        racing = asyncio.ensure_future(wait_first()(service, hand_over(), flow.wait()))
        await asyncio.sleep(0)  # the race has stepped the hand-over; its rest has not run yet
        loop.call_later(0.01, shared.set_result, "record")
        mine = await shared  # refused with "await wasn't used with future" while still flagged
        return mine, await racing

    mine, result = asyncio.run(main())
    assert mine == "record" and result.results == ["record"] and not result.stopped


def test_a_topic_gets_a_started_producer_without_a_loop_turn_and_waits_for_one_not_started() -> None:
    """Faust's ``Topic._get_producer`` (a stampede per record) let the producer's sender run
    after every record sent; patched, a started producer is returned at once."""
    overrides.install()
    from faust.topics import Topic

    class Producer:
        def __init__(self, started: bool) -> None:
            self.started = started

    async def run(started: bool) -> tuple[int, int]:
        starts = []

        async def maybe_start_producer():  # what Faust's does: it yields to the loop
            starts.append(1)
            await asyncio.sleep(0)
            return app.producer

        app = SimpleNamespace(producer=Producer(started), in_transaction=False, maybe_start_producer=maybe_start_producer)
        topic = SimpleNamespace(app=app)
        turns = 0

        async def count() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        counter = asyncio.ensure_future(count())
        await asyncio.sleep(0)
        turns = 0
        for _ in range(10):
            assert await Topic._get_producer(topic) is app.producer
        counter.cancel()
        return turns, len(starts)

    assert asyncio.run(run(True)) == (0, 0)
    turns, starts = asyncio.run(run(False))
    assert starts == 10 and turns >= 10

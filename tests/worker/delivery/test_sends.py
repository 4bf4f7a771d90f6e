"""worker/delivery/sends.py. send_delivered: a batch is acked only after the broker acknowledged each output; failed
sends (refused outright, or failed delivery futures) are sent again."""

from __future__ import annotations

import asyncio

import pytest
from types import SimpleNamespace

from worker.delivery.sends import OneBehind, Outgoing, send_delivered
from worker.metrics import WorkerMetrics


class FlakyTopic:
    """Fails the first attempts of each message in the ways a producer can fail."""

    def __init__(self, refuse: set[bytes], fail_delivery: set[bytes]) -> None:
        self.refuse, self.fail_delivery = set(refuse), set(fail_delivery)
        self.delivered: list[bytes] = []
        self.attempts = 0

    def get_topic_name(self) -> str:
        return "t"

    async def send(self, *, key, value, headers, force):
        assert force
        self.attempts += 1
        if key in self.refuse:
            self.refuse.discard(key)
            raise ConnectionError("producer refused")
        fut = asyncio.get_running_loop().create_future()
        if key in self.fail_delivery:
            self.fail_delivery.discard(key)
            fut.set_exception(TimeoutError("batch expired"))
        else:
            self.delivered.append(key)
            fut.set_result(("t", 0, len(self.delivered)))
        return fut


def test_every_message_is_delivered_once_failures_are_resent(monkeypatch) -> None:
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    runtime = SimpleNamespace(metrics=WorkerMetrics())
    topic = FlakyTopic(refuse={b"a", b"c"}, fail_delivery={b"b"})
    keys = [b"a", b"b", b"c", b"d"]
    asyncio.run(send_delivered(topic, [Outgoing(k, k * 2) for k in keys], "test", runtime.metrics.send_retries.inc))
    assert sorted(topic.delivered) == keys  # each acknowledged exactly once
    assert topic.attempts == len(keys) + 3  # the three failed ones, sent again
    assert runtime.metrics.summary()["send_retries"] == 1  # one retry round


def test_nothing_to_send_sends_nothing() -> None:
    runtime = SimpleNamespace(metrics=WorkerMetrics())
    topic = FlakyTopic(set(), set())
    asyncio.run(send_delivered(topic, [], "test", runtime.metrics.send_retries.inc))
    assert topic.attempts == 0


_real_sleep = asyncio.sleep


async def _no_sleep(delay: float, *args) -> None:
    await _real_sleep(0)


# -- OneBehind ------------------------------------------------------------



def test_stages_overlap_the_next_batch_but_keep_their_order() -> None:
    log: list[str] = []

    async def stage(n: int, delay: float) -> None:
        log.append(f"start {n}")
        await asyncio.sleep(delay)
        log.append(f"end {n}")

    async def agent() -> None:
        behind = OneBehind()
        for n, delay in enumerate((0.05, 0.0, 0.02)):
            log.append(f"input {n}")  # the next batch's input work, while the last stage runs
            await behind.push(stage(n, delay))
        await behind.drain()

    asyncio.run(agent())
    assert log.index("input 1") < log.index("end 0")  # batch 1's input work overlapped stage 0
    assert log.index("input 2") < log.index("end 1")
    # whatever the scheduling, a stage never starts before the previous one ended
    for n in (1, 2):
        assert log.index(f"start {n}") > log.index(f"end {n - 1}")


def test_a_failed_stage_raises_at_the_next_push_and_the_next_stage_never_runs() -> None:
    ran: list[int] = []

    async def stage(n: int) -> None:
        ran.append(n)
        if n == 0:
            raise RuntimeError("sink down")

    async def agent() -> None:
        behind = OneBehind()
        await behind.push(stage(0))
        await asyncio.sleep(0)  # stage 0 runs and fails in the background
        second = stage(1)
        with pytest.raises(RuntimeError, match="sink down"):
            await behind.push(second)
        assert second.cr_frame is None  # closed, never started: nothing of batch 1 is reported
        await behind.drain()  # nothing left

    asyncio.run(agent())
    assert ran == [0]


def test_cancel_stops_the_stage_in_flight() -> None:
    finished: list[int] = []

    async def stage() -> None:
        await asyncio.sleep(10)
        finished.append(1)

    async def agent() -> None:
        behind = OneBehind()
        await behind.push(stage())
        await asyncio.sleep(0)
        task = behind._task
        behind.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(agent())
    assert finished == []


def test_cancel_logs_a_stage_that_failed_unseen(caplog) -> None:
    async def stage() -> None:
        raise RuntimeError("insert refused")

    async def agent() -> None:
        behind = OneBehind()
        await behind.push(stage())
        await asyncio.sleep(0.01)  # the stage has failed; nobody awaited it
        behind.cancel()

    with caplog.at_level("ERROR", logger="worker.delivery.sends"):
        asyncio.run(agent())
    assert "insert refused" in caplog.text

"""worker/delivery/sends.py. send_delivered: a batch is acked only after the broker acknowledged each output; failed
sends (refused outright, or failed delivery futures) are sent again."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from types import SimpleNamespace

from worker.delivery.sends import Merging, OneBehind, Outgoing, send_delivered
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


class Deliveries:
    """A Merging deliver that records each delivery and runs only when released."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.done: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail_at = fail_at

    async def __call__(self, batches: list[str]) -> None:
        await self.release.wait()
        if self.fail_at is not None and len(self.done) == self.fail_at:
            raise RuntimeError("sink down")
        self.done.append(batches)


def test_batches_that_wait_for_a_delivery_go_out_together_in_order() -> None:
    async def run() -> list[list[str]]:
        d = Deliveries()
        out: Merging[str] = Merging(d, max_events=100, max_bytes=1 << 20)
        await out.push("a", 10, 100)  # starts at once, held in the sink
        await asyncio.sleep(0)
        await out.push("b", 10, 100)
        await out.push("c", 10, 100)
        d.release.set()
        await out.drain()
        return d.done

    assert asyncio.run(run()) == [["a"], ["b", "c"]]


def test_a_full_queue_makes_push_wait_and_the_size_caps_hold() -> None:
    async def run() -> tuple[list[list[str]], bool]:
        d = Deliveries()
        out: Merging[str] = Merging(d, max_events=25, max_bytes=250)
        await out.push("a", 10, 10)
        await asyncio.sleep(0)
        await out.push("b", 10, 10)
        await out.push("c", 10, 10)  # 20 records wait: a third batch of 10 would exceed 25
        third = asyncio.ensure_future(out.push("d", 10, 10))
        await asyncio.sleep(0.05)
        waited = not third.done()
        d.release.set()
        await third
        await out.push("e", 1, 300)  # over the byte cap alone: still goes (one batch can always wait)
        await out.drain()
        return d.done, waited

    done, waited = asyncio.run(run())
    assert waited
    assert done == [["a"], ["b", "c"], ["d"], ["e"]]


def test_under_a_backlog_a_delivery_lingers_for_the_next_batch_but_not_past_linger_s() -> None:
    async def run(more: bool) -> tuple[list[list[str]], float]:
        d = Deliveries()
        d.release.set()
        out: Merging[str] = Merging(d, max_events=100, max_bytes=1 << 20, linger_s=0.3)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for name in "abc":
            await out.push(name, 10, 10, more=more)
            await asyncio.sleep(0.02)  # batches 20 ms apart: well inside linger_s
        while len([b for bs in d.done for b in bs]) < 3:
            await asyncio.sleep(0.01)
        took = loop.time() - start
        await out.drain()
        return d.done, took

    merged, took = asyncio.run(run(more=True))
    assert merged == [["a"], ["b", "c"]]  # the first push has no gap yet; then b waits for c
    assert 0.3 <= took < 1.0  # c's delivery waited linger_s for a fourth batch that never came
    alone, took = asyncio.run(run(more=False))
    assert alone == [["a"], ["b"], ["c"]] and took < 0.3


def test_a_failed_delivery_drops_the_queue_and_raises_at_the_next_push() -> None:
    async def run() -> list[list[str]]:
        d = Deliveries(fail_at=0)
        out: Merging[str] = Merging(d, max_events=100, max_bytes=1 << 20)
        await out.push("a", 10, 10)
        await asyncio.sleep(0)
        await out.push("b", 10, 10)
        d.release.set()
        await asyncio.sleep(0.01)
        with pytest.raises(RuntimeError, match="sink down"):
            await out.push("c", 10, 10)
        with pytest.raises(RuntimeError, match="sink down"):
            await out.drain()
        return d.done

    assert asyncio.run(run()) == []  # neither b (queued) nor c (refused) was delivered


def test_only_batches_that_may_go_together_share_a_delivery() -> None:
    async def run() -> list[list[str]]:
        d = Deliveries()
        out: Merging[str] = Merging(d, max_events=100, max_bytes=1 << 20, together=lambda a, b: a[0] == b[0])
        await out.push("a1", 1, 1)  # held in the sink
        await asyncio.sleep(0)
        for name in ("a2", "a3", "b1", "b2", "a4"):  # b: read after a seek, apart from the a's before it
            await out.push(name, 1, 1)
        d.release.set()
        await out.drain()
        return d.done

    assert asyncio.run(run()) == [["a1"], ["a2", "a3"], ["b1", "b2"], ["a4"]]


class RecordingProducer:
    """Faust's producer as ProducerTopic sees it: ``send`` returns a delivery future."""

    def __init__(self) -> None:
        self.sent: list[tuple] = []

    async def send(self, topic, key, value, *, partition, timestamp, headers):
        self.sent.append((topic, key, value, partition, dict(headers or {})))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result((topic, 0, len(self.sent)))
        return fut


def test_producer_topic_serializes_as_the_topic_and_starts_the_producer_once(monkeypatch) -> None:
    import faust

    from contracts.codec import AvroCodec
    from worker import codecs
    from worker.delivery.sends import ProducerTopic

    app = faust.App("sends-test", broker="kafka://127.0.0.1:1", store="memory://")
    producer, starts = RecordingProducer(), []

    async def maybe_start_producer():  # Faust's yields to the event loop on every call
        starts.append(1)
        await asyncio.sleep(0)
        return producer

    monkeypatch.setattr(app, "maybe_start_producer", maybe_start_producer)
    topic = ProducerTopic(app.topic("jobs.scored", key_serializer="raw",
                                    value_serializer=codecs.codec_name("JobScored")))
    values = [{"job_id": f"job-{i}", "scorer_version": "v", "model_id": "m", "niche": "n",
               "scored_at": datetime(2026, 1, 5, tzinfo=timezone.utc), "clip_prompt_score": float(i),
               "clip_reference_score": None, "embedding": [0.5] * 4, "flags": []} for i in range(5)]
    messages = [Outgoing(f"m|n{i}".encode(), v, {"reason": b"r"} if i == 0 else None) for i, v in enumerate(values)]
    asyncio.run(send_delivered(topic, messages, "scores"))

    assert len(starts) == 1
    codec = AvroCodec("JobScored")  # the bytes the topic's codec writes, recomputed
    assert [(t, k, v, p) for t, k, v, p, _ in producer.sent] == [
        ("jobs.scored", m.key, codec.encode(m.value), None) for m in messages]
    assert [h for *_, h in producer.sent] == [{"reason": b"r"}] + [{}] * 4
    assert topic.get_topic_name() == "jobs.scored"

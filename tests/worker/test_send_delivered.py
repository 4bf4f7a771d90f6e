"""send_delivered: a batch is acked only after the broker acknowledged each output; failed
sends (refused outright, or failed delivery futures) are sent again."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from worker.app import Outgoing, send_delivered
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
    asyncio.run(send_delivered(runtime, topic, [Outgoing(k, k * 2) for k in keys], "test"))
    assert sorted(topic.delivered) == keys  # each acknowledged exactly once
    assert topic.attempts == len(keys) + 3  # the three failed ones, sent again
    assert runtime.metrics.summary()["send_retries"] == 1  # one retry round


def test_nothing_to_send_sends_nothing() -> None:
    runtime = SimpleNamespace(metrics=WorkerMetrics())
    topic = FlakyTopic(set(), set())
    asyncio.run(send_delivered(runtime, topic, [], "test"))
    assert topic.attempts == 0


_real_sleep = asyncio.sleep


async def _no_sleep(delay: float, *args) -> None:
    await _real_sleep(0)

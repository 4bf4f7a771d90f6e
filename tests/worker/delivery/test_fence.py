"""The fence: a batch whose partitions moved to another worker stops writing (its retry loop
ends with Fenced instead of storing after the new owner), and a simple agent drops it
unfinished rather than crashing."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from faust.types import TP

from worker.agents.base import BatchAgent
from worker.delivery.commit import CommitProtocol
from worker.delivery.retry import Fenced
from worker.delivery.sends import write_until_stored


class Consumer:
    def __init__(self, held: set[TP]) -> None:
        self.held = held

    def assignment(self) -> set[TP]:
        return set(self.held)


def protocol_holding(*held: TP) -> tuple[CommitProtocol, Consumer]:
    protocol, consumer = CommitProtocol(), Consumer(set(held))
    protocol.app = SimpleNamespace(consumer=consumer)
    return protocol, consumer


def test_the_fence_passes_while_every_partition_is_held() -> None:
    protocol, consumer = protocol_holding(TP("t", 0), TP("t", 1), TP("u", 2))
    protocol.fence("t", {0, 1})()
    consumer.held.discard(TP("t", 1))
    with pytest.raises(Fenced, match=r"t partitions \[1\] moved"):
        protocol.fence("t", {0, 1})()
    protocol.fence("t", {0})()
    CommitProtocol().fence("t", {5})()  # no app yet (unit tests): never fenced


def test_a_write_retried_across_a_rebalance_stops_instead_of_landing_late() -> None:
    protocol, consumer = protocol_holding(TP("t", 0))
    attempts = []

    def write() -> None:  # the store is down: every attempt fails
        attempts.append(1)
        if len(attempts) == 2:
            consumer.held.clear()  # the partition is revoked while the write is being retried
        raise ConnectionError("store down")

    with ThreadPoolExecutor(1) as pool, pytest.raises(Fenced):
        asyncio.run(asyncio.wait_for(write_until_stored(pool, write, "rows", fence=protocol.fence("t", {0})), 10))
    assert len(attempts) == 2  # no attempt after the revoke


def test_a_simple_agent_drops_a_fenced_batch_unfinished_and_goes_on() -> None:
    protocol, consumer = protocol_holding(TP("t", 0))
    finished = []
    protocol.finished = lambda name, events: _Recorder(finished, events)

    class Agent(BatchAgent):
        topic = "t"

        async def handle(self, events):
            self.fence(events)()

    class Stream:
        async def take_events(self, n, within):
            yield [SimpleNamespace(message=SimpleNamespace(partition=0, offset=1))]
            while not finished:  # batch 1 is handled while batch 2 is read: revoke after it
                await asyncio.sleep(0.001)
            consumer.held.clear()
            yield [SimpleNamespace(message=SimpleNamespace(partition=0, offset=2))]

    asyncio.run(Agent(None, protocol, 10, 0.1)(Stream()))
    assert finished == [1]  # offset 2 was fenced: not finished, and the agent did not crash


class _Recorder:
    def __init__(self, out: list, events: list) -> None:
        self.out, self.events = out, events

    def __enter__(self) -> set:
        return set()

    def __exit__(self, exc_type, *rest) -> bool:
        if exc_type is None:
            self.out += [ev.message.offset for ev in self.events]
        return False

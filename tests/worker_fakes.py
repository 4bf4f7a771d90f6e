"""What Faust and the warehouse look like to an agent, for driving agents without a broker:
weak-referenceable events, a stream of batches, topics that acknowledge at once, a recording
warehouse."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pyarrow as pa

from contracts.topics import JOBS_COMPLETED


class Event:
    """What Faust hands an agent (weak-referenceable, like faust's Event)."""

    def __init__(self, value: bytes, partition: int, offset: int, topic: str = JOBS_COMPLETED, key: Any = b"k") -> None:
        self.value, self.key = value, key
        self.message = SimpleNamespace(topic=topic, partition=partition, offset=offset)


class Stream:
    def __init__(self, batches): self.batches = batches

    async def take_events(self, n, within):
        for batch in self.batches:
            yield batch


class Topic:
    def __init__(self): self.sent = []

    async def send(self, *, key, value, headers, force):
        self.sent.append((key, value, headers))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class Warehouse:
    def __init__(self): self.inserts: list[tuple[str, pa.Table]] = []

    def insert(self, table, rows, token): self.inserts.append((table, rows))

    def query(self, sql, params):  # stored_copies: nothing stored yet
        return pa.table({"job_id": pa.array([], pa.string()), "source_partition": pa.array([], pa.uint32()),
                         "source_offset": pa.array([], pa.uint64()), "content_hash": pa.array([], pa.string())})


class Moments:
    def __init__(self): self.applied = []

    def apply(self, version, items, committed): self.applied.extend(items)

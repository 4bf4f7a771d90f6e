"""Publish JobCompleted events to Kafka as Avro single-object records (key = job id)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer

from contracts.codec import AvroCodec
from contracts.topics import JOBS_COMPLETED as TOPIC


class JobPublisher:
    """acks=all, idempotent producer (the embedded noida-db and Apache Kafka support it),
    with bounded in-flight sends so a slow broker applies back-pressure to the node."""

    def __init__(self, bootstrap_servers: str, *, topic: str = TOPIC, max_in_flight: int = 64,
                 max_request_size: int = 4 * 1024 * 1024, idempotent: bool = True) -> None:
        self.topic = topic
        self.codec = AvroCodec("JobCompleted")
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            enable_idempotence=idempotent,
            max_request_size=max_request_size,
            linger_ms=5,
        )
        self._slots = asyncio.Semaphore(max_in_flight)
        self._pending: set[asyncio.Future] = set()

    async def start(self) -> None:
        try:
            await self.producer.start()
        except BaseException:  # an unreachable broker: close the client instead of leaking it
            await self.producer.stop()
            raise

    async def publish(self, event: dict[str, Any]) -> None:
        await self._slots.acquire()
        try:
            fut = await self.producer.send(self.topic, self.codec.encode(event), key=event["job_id"].encode())
        except BaseException:
            self._slots.release()
            raise
        self._pending.add(fut)
        fut.add_done_callback(lambda f: (self._pending.discard(f), self._slots.release()))

    async def flush(self) -> None:
        """Wait until every published event is acknowledged (raises the first send error)."""
        if self._pending:
            await asyncio.gather(*list(self._pending))

    async def stop(self) -> None:
        try:
            await self.flush()
        finally:
            await self.producer.stop()

    async def __aenter__(self) -> "JobPublisher":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

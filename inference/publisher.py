"""Publish JobCompleted events to Kafka as Avro single-object records (key = job id)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from contracts.codec import AvroCodec
from contracts.topics import JOBS_COMPLETED as TOPIC

log = logging.getLogger(__name__)


class JobPublisher:
    """acks=all, idempotent producer (the embedded noida-db and Apache Kafka support it; a broker
    that refuses one, such as tansu, gets a plain producer and a warning: a retried send may then
    repeat a record, which the worker skips as a duplicate), with bounded in-flight sends so a
    slow broker applies back-pressure to the node."""

    def __init__(self, bootstrap_servers: str, *, topic: str = TOPIC, max_in_flight: int = 64,
                 max_request_size: int = 4 * 1024 * 1024, idempotent: bool = True) -> None:
        self.topic = topic
        self.codec = AvroCodec("JobCompleted")
        self._options = dict(bootstrap_servers=bootstrap_servers, acks="all", max_request_size=max_request_size,
                             linger_ms=5)
        self.idempotent = idempotent
        self.producer = AIOKafkaProducer(enable_idempotence=idempotent, **self._options)
        self._slots = asyncio.Semaphore(max_in_flight)
        self._pending: set[asyncio.Future] = set()

    async def start(self) -> None:
        try:
            await self.producer.start()
        except KafkaError as exc:
            await self.producer.stop()
            if not self.idempotent or not _refused_idempotence(exc):
                raise
            log.warning("the broker refused an idempotent producer (%s): publishing without idempotence", exc)
            self.idempotent = False
            self.producer = AIOKafkaProducer(enable_idempotence=False, **self._options)
            await self.start()
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


def _refused_idempotence(exc: KafkaError) -> bool:
    """tansu answers InitProducerId with an unknown error (-1); a broker without the API says so."""
    return type(exc).__name__ in ("UnknownError", "UnsupportedVersionError", "ClusterAuthorizationFailedError")

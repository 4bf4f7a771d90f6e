"""Dead-letter topics: list what was rejected and why, and send records back once fixed.

Every input topic ``T`` has ``T.dlq``; each record keeps the original key and bytes, and its
headers say why (error_class, reason, message) and where it came from (source topic,
partition, offset) and when. Replaying re-publishes the original bytes to the source topic;
sinks are idempotent by job id, so replaying a record twice stores it once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @property
    def reason(self) -> str:
        return self.headers.get("reason", "")

    def summary(self) -> dict[str, Any]:
        return {"dlq_offset": self.offset, "key": (self.key or b"").decode(errors="replace"), **self.headers,
                "bytes": len(self.value)}


async def read_dead_letters(bootstrap: str, topic: str, *, timeout_s: float = 5.0) -> list[DeadLetter]:
    """Everything currently in ``topic`` (from the beginning, no consumer group)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    out: list[DeadLetter] = []
    try:
        await consumer.start()  # inside: a broker that cannot be reached still closes the consumer
        partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or [])]
        end = await consumer.end_offsets(partitions) if partitions else {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            positions = {tp: await consumer.position(tp) for tp in end}
            if end and all(positions[tp] >= off for tp, off in end.items()):
                break
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    out.append(DeadLetter(r.topic, r.partition, r.offset, r.key, r.value,
                                          {k: v.decode(errors="replace") for k, v in (r.headers or [])}))
    finally:
        await consumer.stop()
    return sorted(out, key=lambda d: (d.partition, d.offset))


async def replay_dead_letters(bootstrap: str, letters: list[DeadLetter]) -> int:
    """Re-publish the original bytes to each record's source topic."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        for letter in letters:
            source = letter.headers.get("source_topic") or letter.topic.removesuffix(".dlq")
            await producer.send_and_wait(source, letter.value, key=letter.key,
                                         headers=[("replayed_from", f"{letter.topic}@{letter.offset}".encode())])
    finally:
        await producer.stop()
    return len(letters)

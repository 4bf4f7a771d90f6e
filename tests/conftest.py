"""Shared fixtures: synthetic JobCompleted events and the real embedded stack.

Integration tests run the real embedded Kafka-protocol broker (noida-db), a real Faust worker
process and chDB — never mocks of them.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

MODELS = [  # model_id, provider, gpu_type, api cost
    ("flux-dev", "self_hosted", "A100-80GB", None),
    ("sdxl-lightning", "self_hosted", "L4", None),
    ("proprietary-a", "api", "none", 0.04),
]
NICHES = ["headshot", "product", "portrait"]
BASE_TIME = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def image_bytes(seed: int, fmt: str = "WEBP", size: int = 64) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = (rng.random((size, size, 3)) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def make_event(i: int, *, seed: int = 0, model: int | None = None, niche: int | None = None) -> dict[str, Any]:
    """A valid JobCompleted record with plausible, random-but-deterministic timings."""
    rng = random.Random(seed * 1_000_003 + i)
    model_id, provider, gpu_type, api_cost = MODELS[i % len(MODELS) if model is None else model]
    requested = BASE_TIME + timedelta(seconds=i * 7)
    queue_ms = rng.randint(0, 400)
    cold = rng.random() < 0.05
    cold_ms = rng.randint(2000, 9000) if cold else 0
    infer_ms = rng.randint(800, 4000)
    encode_ms = rng.randint(5, 40)
    started = requested + timedelta(milliseconds=queue_ms)
    completed = started + timedelta(milliseconds=cold_ms + infer_ms)
    delivered = completed + timedelta(milliseconds=encode_ms + rng.randint(1, 30))
    return {
        "job_id": f"job-{seed}-{i:06d}",
        "model_id": model_id,
        "model_version": "2026.1",
        "provider": provider,
        "niche": NICHES[(i // len(MODELS)) % len(NICHES) if niche is None else niche],
        "prompt": f"a photo number {i} of something nice",
        "seed": i,
        "reference_image": image_bytes(10_000 + i) if i % 5 == 0 else None,
        "image": image_bytes(i),
        "media_type": "image/webp",
        "requested_at": requested,
        "started_at": started,
        "completed_at": completed,
        "delivered_at": delivered,
        "cold_start": cold,
        "cold_start_ms": float(cold_ms),
        "inference_ms": float(infer_ms),
        "encode_ms": float(encode_ms),
        "gpu_type": gpu_type,
        "gpu_seconds": (cold_ms + infer_ms) / 1000.0 if provider != "api" else 0.0,
        "api_cost_usd": api_cost,
        "node_id": f"node-{i % 2}",
    }


async def _publish_raw(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in items]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def publish_events(bootstrap: str, events: list[dict[str, Any]]) -> None:
    """Publish with the product's own publisher (Avro single-object encoding)."""
    from inference.publisher import JobPublisher

    async def main() -> None:
        async with JobPublisher(bootstrap) as publisher:
            for event in events:
                await publisher.publish(event)

    asyncio.run(main())


def publish_raw(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    asyncio.run(_publish_raw(bootstrap, topic, items))


async def _consume_all(bootstrap: str, topic: str, expect: int, timeout: float) -> list[Any]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out


def consume_all(bootstrap: str, topic: str, expect: int, timeout: float = 60.0) -> list[Any]:
    return asyncio.run(_consume_all(bootstrap, topic, expect, timeout))


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5,
             diagnose: Callable[[], str] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    extra = f"\n--- diagnosis ---\n{diagnose()}" if diagnose else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r}){extra}")


def migrated_store(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Any]:
    """A fresh embedded chDB store, migrated as the worker does, closed afterwards (for a
    module-scoped ``store`` fixture: ``yield from migrated_store(tmp_path_factory, "name")``)."""
    from warehouse.client import ClickHouseWarehouse, migrate

    warehouse = ClickHouseWarehouse(f"chdb://{tmp_path_factory.mktemp(name) / 'chdb'}")
    migrate(warehouse)
    try:
        yield warehouse
    finally:
        warehouse.close()


def running_stack(tmp_path_factory: pytest.TempPathFactory, **overrides: Any) -> Iterator[Any]:
    """Broker + worker + chDB on free ports (settings ``overrides`` on top), stopped afterwards."""
    from config.settings import load_settings
    from devstack.stack import EmbeddedStack

    data_dir: Path = tmp_path_factory.mktemp("stack")
    settings = load_settings(env={}, **{"data_dir": data_dir, "partitions": 4, "score_batch_wait_s": 0.2,
                                        "sink_batch_wait_s": 0.3, "app_id": f"sentinel-test-{os.getpid()}",
                                        **overrides})
    stack = EmbeddedStack(settings).start()
    try:
        yield stack
    finally:
        stack.stop()
        assert stack.broker.is_running() is False


@pytest.fixture(scope="module")
def embedded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Broker + worker + chDB for one test module, on free ports, stopped afterwards."""
    yield from running_stack(tmp_path_factory)

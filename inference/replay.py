"""Replay production traffic from a trace.

Two modes:

* **as recorded**: every trace row becomes a JobCompleted event with the trace's own timings,
  GPU-seconds and API costs. The image is a cheap seeded placeholder by default
  (inference/seeded_images.py: thousands of rows per second), or one generated from the row's
  seed by the model's pipeline (inference/pipeline_images.py: a few rows per second); models
  the registry cannot run then get a deterministic tiny stand-in pipeline, listed in a warning.
* **live**: jobs go to a pool of inference nodes at the trace's arrival times (compressed by a
  speed-up factor) or at a fixed rate, and the nodes measure real timings. It doubles as the
  latency-under-load test: the result reports achieved throughput and p95 latency.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

import numpy as np

from inference.publisher import JobPublisher
from inference.trace_files import TraceError
from inference.trace_row import TraceRow

if TYPE_CHECKING:  # inference.node imports torch and diffusers; a seeded replay needs neither
    from inference.guarded import GuardedNode
    from inference.node import InferenceNode
    from inference.registry import ModelSpec

log = logging.getLogger(__name__)


class Renderer(Protocol):
    """Turns a trace row into (image bytes, media type), deterministically from its seed."""

    in_thread: bool  # slow enough to run off the event loop
    stand_ins: Any  # models rendered by something other than their own pipeline

    def render(self, row: TraceRow) -> tuple[bytes, str]: ...


@dataclass
class ReplayResult:
    published: int = 0
    rejected: list[TraceError] = field(default_factory=list)
    stand_ins: list[str] = field(default_factory=list)
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.published / self.seconds if self.seconds else 0.0

    @property
    def p95_latency_ms(self) -> float | None:
        return float(np.percentile(self.latencies_ms, 95)) if self.latencies_ms else None


async def replay_as_recorded(rows: Sequence[TraceRow], renderer: Renderer, publisher: JobPublisher, *,
                             node_id: str = "replay", on_published: Callable[[dict], None] | None = None) -> ReplayResult:
    loop = asyncio.get_running_loop()
    result = ReplayResult()
    t0 = time.perf_counter()
    for row in rows:
        if renderer.in_thread:
            image, media_type = await loop.run_in_executor(None, renderer.render, row)
        else:
            image, media_type = renderer.render(row)
        reference = Path(row.reference_image).read_bytes() if row.reference_image else None
        event = row.to_job_completed(image, media_type, node_id, reference)
        await publisher.publish(event)
        result.published += 1
        if on_published is not None:
            on_published(event)
    await publisher.flush()
    result.seconds = time.perf_counter() - t0
    result.stand_ins = sorted(renderer.stand_ins)
    if result.stand_ins:
        log.warning("the registry cannot run %s: replayed with deterministic tiny stand-in pipelines "
                    "(images are placeholders; timings and costs are the trace's)", result.stand_ins)
    return result


def live_rejects(rows: Sequence[TraceRow], registry: dict[str, ModelSpec]) -> tuple[list[TraceRow], list[TraceError]]:
    """In live mode a job needs a model the nodes can run; others are rejected by line."""
    keep, bad = [], []
    for line, row in enumerate(rows, start=1):
        if row.model in registry:
            keep.append(row)
        else:
            bad.append(TraceError(row.line or line, row.job_id,
                                  f"model {row.model!r} is not in the model registry (live mode runs real pipelines)"))
    return keep, bad


async def replay_live(rows: Sequence[TraceRow], nodes: Sequence[InferenceNode | GuardedNode], publisher: JobPublisher, *,
                      speedup: float = 1.0, rate: float | None = None,
                      on_published: Callable[[dict], None] | None = None) -> ReplayResult:
    """Submit jobs at trace arrival times / ``speedup`` (or at ``rate`` jobs/s); ``len(nodes)``
    nodes work the queue concurrently and measure queue wait, cold start, inference, encode."""
    if not rows:
        return ReplayResult()
    from inference.node import JobRequest

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[JobRequest | None] = asyncio.Queue()
    result = ReplayResult()
    first = rows[0].requested_at

    async def work(node: InferenceNode | GuardedNode) -> None:
        while (request := await queue.get()) is not None:
            for event in await loop.run_in_executor(None, node.run_attempts, request):  # guarded: 1..N
                await publisher.publish(event)
                result.published += 1
                if event.get("delivered") is not False:  # latency of what reached the customer
                    result.latencies_ms.append((event["delivered_at"] - event["requested_at"]).total_seconds() * 1000)
                if on_published is not None:
                    on_published(event)

    workers = [asyncio.create_task(work(node)) for node in nodes]
    t0 = time.perf_counter()
    for i, row in enumerate(rows):
        due = i / rate if rate else (row.requested_at - first).total_seconds() / speedup
        delay = due - (time.perf_counter() - t0)
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(JobRequest(row.job_id, row.model, row.niche, row.prompt, row.seed,
                                    datetime.now(timezone.utc),
                                    Path(row.reference_image).read_bytes() if row.reference_image else None))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    await publisher.flush()
    result.seconds = time.perf_counter() - t0
    return result

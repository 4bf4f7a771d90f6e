"""Drive an inference node: take job requests, run them off the event loop, publish results."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Callable, Iterable

from inference.guarded import GuardedNode
from inference.node import InferenceNode, JobRequest
from inference.publisher import JobPublisher


async def serve(node: InferenceNode | GuardedNode, publisher: JobPublisher,
                jobs: Iterable[tuple[str, str, str, str, int]],
                on_published: Callable[[dict], None] | None = None) -> int:
    """Run each (job_id, model_id, niche, prompt, seed) on ``node`` and publish its events
    (one per attempt; the count returned is of events).

    A job is "requested" when the node takes it from the queue; generation runs in a thread
    so the producer keeps delivering while the next image is generated.
    """
    loop = asyncio.get_running_loop()
    count = 0
    for job_id, model_id, niche, prompt, seed in jobs:
        request = JobRequest(job_id, model_id, niche, prompt, seed, datetime.now(timezone.utc))
        # one event per attempt: a guarded node (inference/guarded.py) also publishes discarded ones
        for event in await loop.run_in_executor(None, node.run_attempts, request):
            await publisher.publish(event)
            count += 1
            if on_published is not None:
                on_published(event)
    await publisher.flush()
    return count

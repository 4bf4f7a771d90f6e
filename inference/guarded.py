"""Guard mode on a node: judge each output before delivery, regenerate a failing one.

``GuardedNode.run_attempts`` runs attempt 1 with the request's seed, asks the guard for a
verdict, and on a fail discards the image and generates again with a new seed, up to
``max_attempts``. Every attempt becomes an event (its own job id, the request id, the attempt
number, the verdict, delivered or not), so the GPU-seconds of discarded attempts are in the log.

Timestamps: every attempt keeps the customer's ``requested_at``; an attempt's ``delivered_at``
is when its verdict came back (delivery for the kept one, discard time for the others). So the
delivered attempt's requested -> delivered latency includes the earlier attempts and every
verdict call. If all attempts fail, the last one is ``delivered = false`` too: the request is
failed (no image reaches the customer) and counted as such in the report. If the guard gives no
verdict (timeout, refused, error status), the current image is delivered unguarded
(``guard_passed`` null, ``guard_error`` says why): an outage never loses a job.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from typing import Any

from inference.attempts import attempt_job_id, attempt_seed
from inference.guard_client import GuardClient, Verdict
from inference.node import InferenceNode, JobRequest


class GuardedNode:
    """An ``InferenceNode`` behind a guard; same ``run_attempts`` interface (runner, replay)."""

    def __init__(self, node: InferenceNode, client: GuardClient, max_attempts: int = 3) -> None:
        if max_attempts < 1:
            raise ValueError(f"--max-attempts must be at least 1, got {max_attempts}")
        self.node = node
        self.client = client
        self.max_attempts = max_attempts
        self.unguarded = 0  # events delivered without a verdict (guard outage)
        self.failed_requests = 0  # requests whose every attempt failed

    @property
    def node_id(self) -> str:
        return self.node.node_id

    def run_attempts(self, request: JobRequest) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        spec = self.node.models.get(request.model_id)
        size = spec.size if spec is not None else 0
        for attempt in range(1, self.max_attempts + 1):
            sub = dataclasses.replace(request, job_id=attempt_job_id(request.job_id, attempt),
                                      seed=attempt_seed(request.seed, attempt))
            event = self.node.run(sub)
            t_ready = time.perf_counter()
            verdict = self.client.verdict(event, size, size)
            event["delivered_at"] = event["delivered_at"] + timedelta(seconds=time.perf_counter() - t_ready)
            keep = verdict.passed is not False
            _annotate(event, request.job_id, attempt, verdict, delivered=keep)
            events.append(event)
            if verdict.error is not None:
                self.unguarded += 1
            if keep:
                return events
        self.failed_requests += 1
        return events


def _annotate(event: dict[str, Any], request_id: str, attempt: int, verdict: Verdict, *, delivered: bool) -> None:
    event.update({
        "request_id": request_id, "attempt": attempt, "delivered": delivered,
        "guard_passed": verdict.passed, "guard_score": verdict.score,
        "guard_failed_checks": list(verdict.failed_checks) if verdict.error is None else None,
        "guard_checks": list(verdict.checks) if verdict.error is None else None,
        "guard_rubric_version": verdict.rubric_version, "guard_scorer_version": verdict.scorer_version,
        "guard_ms": verdict.ms, "guard_error": verdict.error,
    })

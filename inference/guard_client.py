"""The inference side of guard mode: ask ``sentinel guard`` for a verdict on one output.

``POST {url}/v1/verdicts`` with ``Authorization: Bearer <token>`` (the token from env
``SENTINEL_GUARD_TOKEN``) and the output image (base64), prompt, niche, model, requested size
and optional reference photo. The answer is a ``Verdict``; a guard that does not answer in
``timeout_s`` (or refuses the connection, or answers with an error status) gives a ``Verdict``
with ``error`` set and ``passed`` None: the node then delivers the image unguarded and the
event says why (``guard_error``), so an outage never loses a job and is counted in the report.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

TOKEN_ENV = "SENTINEL_GUARD_TOKEN"


@dataclass(frozen=True)
class Verdict:
    passed: bool | None
    score: float | None = None
    failed_checks: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    rubric_version: str | None = None
    scorer_version: str | None = None
    ms: float = 0.0
    error: str | None = None  # set when the guard gave no verdict


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _check(raw: dict[str, Any]) -> dict[str, Any]:
    """One check as the JobCompleted ``GuardCheck`` record (non-numeric values become null)."""
    return {"name": str(raw.get("name", "")), "value": _number(raw.get("value")),
            "threshold": _number(raw.get("threshold")), "passed": bool(raw.get("passed")),
            "reason": str(raw.get("reason") or "")}


def parse_verdict(body: dict[str, Any], ms: float) -> Verdict:
    checks = [_check(c) for c in body.get("checks") or [] if isinstance(c, dict)]
    failed = body.get("failed_checks")
    if not isinstance(failed, list):
        failed = [c["name"] for c in checks if not c["passed"]]
    if not isinstance(body.get("passed"), bool):
        raise ValueError("verdict without a boolean 'passed'")
    return Verdict(passed=body["passed"], score=_number(body.get("score")), failed_checks=[str(n) for n in failed],
                   checks=checks, rubric_version=body.get("rubric_version"),
                   scorer_version=body.get("scorer_version"), ms=ms)


class GuardClient:
    """A synchronous client (the node calls it from its generation thread), one connection pool."""

    def __init__(self, url: str, token: str, *, timeout_s: float = 5.0, transport: Any = None) -> None:
        self.url = url.rstrip("/") + "/v1/verdicts"
        self._http = httpx.Client(timeout=timeout_s, transport=transport,
                                  headers={"Authorization": f"Bearer {token}"})

    def verdict(self, event: dict[str, Any], width: int, height: int) -> Verdict:
        payload = {
            "image": base64.b64encode(event["image"]).decode(),
            "media_type": event["media_type"], "prompt": event["prompt"], "niche": event["niche"],
            "model_id": event["model_id"], "width": width, "height": height,
            "reference_image": (base64.b64encode(event["reference_image"]).decode()
                                if event.get("reference_image") else None),
            "job_id": event["job_id"],
        }
        t0 = time.perf_counter()
        try:
            response = self._http.post(self.url, json=payload)
            ms = (time.perf_counter() - t0) * 1000.0
            if response.status_code != 200:
                return Verdict(None, ms=ms, error=f"HTTP {response.status_code}: {response.text[:200]}")
            return parse_verdict(response.json(), ms)
        except (httpx.HTTPError, ValueError) as exc:  # timeout, refused, bad JSON
            return Verdict(None, ms=(time.perf_counter() - t0) * 1000.0, error=f"{type(exc).__name__}: {exc}"[:300])

    def close(self) -> None:
        self._http.close()

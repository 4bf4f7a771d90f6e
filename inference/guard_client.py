"""The inference side of guard mode: ask ``sentinel guard`` for a verdict on one output.

``POST {url}/v1/verdicts`` (``contracts.verdict``: the request and verdict types both sides
share) with ``Authorization: Bearer <token>`` (env ``SENTINEL_GUARD_TOKEN``; omitted when
empty). The outcome is a ``Verdict`` here:

* 200: the service's verdict (passed, score, every check, failed check names, versions).
* 4xx naming a rubric ``check`` (e.g. bytes that do not decode as an image): the output is
  refused, i.e. a failed attempt with that check failed.
* anything else (no answer within ``timeout_s``, refused connection, 5xx, another 4xx, a body
  that is no verdict): ``passed`` None and ``error`` set. The node then delivers the image
  unguarded and the event says why (``guard_error``): an outage never loses a job, and the
  report counts such attempts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from contracts.verdict import TOKEN_ENV, VERDICTS_PATH, ApiError, RequestError, VerdictRequest
from contracts.verdict import Verdict as ApiVerdict

__all__ = ["TOKEN_ENV", "GuardClient", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    passed: bool | None
    score: float | None = None
    failed_checks: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)  # JobCompleted GuardCheck records
    rubric_version: str | None = None
    scorer_version: str | None = None
    ms: float = 0.0
    error: str | None = None  # set when the guard gave no verdict


def _from_api(v: ApiVerdict, ms: float) -> Verdict:
    checks = [{"name": c.name, "value": c.value, "threshold": c.threshold, "passed": c.passed, "reason": c.reason}
              for c in v.checks]
    return Verdict(v.passed, v.score, list(v.failed_checks), checks, v.rubric_version, v.scorer_version, ms)


def _refused(err: ApiError, ms: float) -> Verdict:
    """A 4xx that names a rubric check: the output itself was refused (a failed attempt)."""
    assert err.check is not None
    return Verdict(False, 0.0, [err.check], [{"name": err.check, "value": None, "threshold": None, "passed": False,
                                              "reason": f"refused: {err.error}"[:500]}], ms=ms)


class GuardClient:
    """A synchronous client (the node calls it from its generation thread), one connection pool."""

    def __init__(self, url: str, token: str, *, timeout_s: float = 5.0, transport: Any = None) -> None:
        self.url = url.rstrip("/") + VERDICTS_PATH
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(timeout=timeout_s, transport=transport, headers=headers)

    def verdict(self, event: dict[str, Any], width: int, height: int) -> Verdict:
        request = VerdictRequest.for_image(
            event["image"], media_type=event["media_type"], prompt=event["prompt"], niche=event["niche"],
            model_id=event["model_id"], width=width, height=height,
            reference_image=event.get("reference_image") or None, job_id=event["job_id"])
        t0 = time.perf_counter()
        try:
            response = self._http.post(self.url, json=request.to_json())
            ms = (time.perf_counter() - t0) * 1000.0
            if response.status_code == 200:
                return _from_api(ApiVerdict.from_json(response.content), ms)
            if 400 <= response.status_code < 500:
                err = _api_error(response.content)
                if err is not None and err.check:
                    return _refused(err, ms)
            return Verdict(None, ms=ms, error=f"HTTP {response.status_code}: {response.text[:200]}")
        except (httpx.HTTPError, RequestError) as exc:  # timeout, refused, a body that is no verdict
            return Verdict(None, ms=(time.perf_counter() - t0) * 1000.0, error=f"{type(exc).__name__}: {exc}"[:300])

    def close(self) -> None:
        self._http.close()


def _api_error(body: bytes) -> ApiError | None:
    try:
        return ApiError.from_json(body)
    except RequestError:
        return None

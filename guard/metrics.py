"""Prometheus metrics of one Guard process (its own registry, served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from contracts.verdict import CHECK_NAMES, Verdict

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_KEYS = {name: key for key, name in CHECK_NAMES.items()}


class GuardMetrics:
    def __init__(self, max_batch: int) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.verdicts = Counter("sentinel_guard_verdicts_total", "Verdicts given, by result", ["result"], registry=r)
        self.checks = Counter("sentinel_guard_checks_total", "Rubric check results, by check and result",
                              ["check", "result"], registry=r)
        self.rejected = Counter("sentinel_guard_rejected_total", "Requests refused (4xx/5xx), by status and field",
                                ["status", "field"], registry=r)
        self.latency = Histogram("sentinel_guard_verdict_seconds", "Time from request received to verdict sent",
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10), registry=r)
        sizes = sorted({1, 2, 4, 8, 16, 32, 64, 128, max_batch})
        self.batch_size = Histogram("sentinel_guard_batch_size", "Requests per encoder call",
                                    buckets=[float(s) for s in sizes], registry=r)
        self.encode_seconds = Histogram("sentinel_guard_encode_seconds", "Seconds per encoder call",
                                        buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10), registry=r)

    def verdict(self, v: Verdict, seconds: float) -> None:
        self.verdicts.labels("pass" if v.passed else "fail").inc()
        for check in v.checks:
            self.checks.labels(_KEYS.get(check.name, check.name), "pass" if check.passed else "fail").inc()
        self.latency.observe(seconds)

    def batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.encode_seconds.observe(seconds)

    def refused(self, status: int, field: str | None) -> None:
        self.rejected.labels(str(status), field or "").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

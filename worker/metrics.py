"""Prometheus metrics of one worker (its own registry, exposed at ``/metrics``).

Counters are bumped by the agents; latency gauges are computed at scrape time from the live
sketch table, so a scrape always sees the current p95 without a background job.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class LiveLatencyCollector(Collector):
    """p50/p95/p99 end-to-end latency and cost per image per model x niche over the last hour."""

    def __init__(self, snapshot: Callable[[], Mapping[tuple[str, str], Mapping[str, float | None]]]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[GaugeMetricFamily]:
        latency = GaugeMetricFamily("sentinel_latency_ms", "End-to-end latency quantile over the last hour",
                                    labels=["model", "niche", "quantile"])
        cost = GaugeMetricFamily("sentinel_cost_per_image_usd", "Mean cost per image over the last hour",
                                 labels=["model", "niche"])
        for (model, niche), stats in sorted(self.snapshot().items()):
            for q in ("50", "95", "99"):
                value = stats.get(f"e2e_p{q}_ms")
                if value is not None:
                    latency.add_metric([model, niche, f"0.{q}"], value)
            if stats.get("jobs"):
                cost.add_metric([model, niche], stats["cost_per_image_usd"])
        yield latency
        yield cost


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.consumed = Counter("sentinel_events_consumed", "JobCompleted events consumed by the scorer", registry=r)
        self.scored = Counter("sentinel_events_scored", "Jobs scored and emitted to jobs.scored", registry=r)
        self.dead_letters = Counter("sentinel_dead_letters", "Records sent to a dead-letter topic",
                                    ["topic", "reason"], registry=r)
        self.rows_stored = Counter("sentinel_rows_stored", "Rows stored in ClickHouse", ["table"], registry=r)
        self.sink_retries = Counter("sentinel_sink_retries", "Failed ClickHouse writes that were retried", registry=r)
        self.send_retries = Counter("sentinel_send_retries", "Kafka sends that failed and were sent again", registry=r)
        self.duplicates = Counter("sentinel_duplicates_skipped",
                                  "Re-published jobs (a known job id, same content) skipped by every agent", registry=r)
        self.webhook = Counter("sentinel_alert_webhooks", "Alert webhook deliveries", ["outcome"], registry=r)
        self.scoring_lag = Gauge("sentinel_scoring_lag_seconds",
                                 "Delivered-to-scored delay of the newest scored job", registry=r)
        self.started_at = time.time()

    def watch_latency(self, snapshot: Callable[[], Mapping[tuple[str, str], Mapping[str, float | None]]]) -> None:
        self.registry.register(LiveLatencyCollector(snapshot))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def summary(self) -> dict[str, float]:
        def total(counter: Counter) -> float:
            return sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total"))

        return {
            "consumed": total(self.consumed),
            "scored": total(self.scored),
            "dead_lettered": total(self.dead_letters),
            "rows_stored": total(self.rows_stored),
            "sink_retries": total(self.sink_retries),
            "send_retries": total(self.send_retries),
            "duplicates_skipped": total(self.duplicates),
            "scoring_lag_seconds": next(s.value for m in self.scoring_lag.collect() for s in m.samples),
            "uptime_seconds": time.time() - self.started_at,
        }

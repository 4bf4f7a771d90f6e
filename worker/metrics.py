"""Prometheus metrics of one worker (its own registry, exposed at ``/metrics``).

Counters are bumped by the agents; latency gauges are computed at scrape time from the live
sketch table, so a scrape always sees the current p95 without a background job. Three lags,
each answering one question:

    sentinel_consumer_lag_records{worker,topic,partition}  how far behind the log is this worker?
        (log end offset minus committed offset, per input partition it holds; read per scrape)
    sentinel_processing_lag_seconds                 how long does a record wait inside it?
        (from the jobs agent receiving a batch to the batch finished; set per batch)
    sentinel_event_time_lag_seconds                 how old are the events it scores?
        (now minus the newest ``delivered_at``: huge when replaying an old trace; not a health signal)

and ``sentinel_assigned_partitions{worker,topic}``: how many partitions of each input topic this
worker holds (worker/membership.py), so several workers sharing a group can be told apart;
``sentinel_topic_partitions{worker,topic}`` is how many the topic has (their difference, summed
over workers, is the partitions nobody holds).
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class LiveLatencyCollector(Collector):
    """p50/p95/p99 end-to-end latency, cost per (delivered) image and guard verdicts per model x
    niche over the last hour."""

    def __init__(self, snapshot: Callable[[], Mapping[tuple[str, str], Mapping[str, float | None]]]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[GaugeMetricFamily]:
        latency = GaugeMetricFamily("sentinel_latency_ms", "End-to-end latency quantile over the last hour",
                                    labels=["model", "niche", "quantile"])
        cost = GaugeMetricFamily("sentinel_cost_per_image_usd", "Mean cost per image over the last hour",
                                 labels=["model", "niche"])
        passed = GaugeMetricFamily("sentinel_guard_pass_rate", "Guard verdicts that passed, over the last hour",
                                   labels=["model", "niche"])
        failed = GaugeMetricFamily("sentinel_guard_failed_checks", "Guarded attempts that failed each check, "
                                   "over the last hour", labels=["model", "niche", "check"])
        for (model, niche), stats in sorted(self.snapshot().items()):
            for q in ("50", "95", "99"):
                value = stats.get(f"e2e_p{q}_ms")
                if value is not None:
                    latency.add_metric([model, niche, f"0.{q}"], value)
            if stats.get("jobs") and stats.get("cost_per_image_usd") is not None:  # None: nothing delivered
                cost.add_metric([model, niche], stats["cost_per_image_usd"])
            if stats.get("guard_pass_rate") is not None:
                passed.add_metric([model, niche], stats["guard_pass_rate"])
            for check, n in (stats.get("failed_by_check") or {}).items():
                failed.add_metric([model, niche, check], n)
        yield from (latency, cost, passed, failed)


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
        self.feed_pauses = Counter("sentinel_feed_pauses", "Partitions taken out of the fetch because their "
                                   "agent's feed was 80% full (fetched again at 40%)", ["topic"], registry=r)
        self.send_retries = Counter("sentinel_send_retries", "Kafka sends that failed and were sent again", registry=r)
        self.duplicates = Counter("sentinel_duplicates_skipped",
                                  "Re-published jobs (a known job id, same content) skipped by every agent", registry=r)
        self.webhook = Counter("sentinel_alert_webhooks", "Alert webhook deliveries", ["outcome"], registry=r)
        self.consumer_lag = Gauge("sentinel_consumer_lag_records",
                                  "Records between the committed offset and the log end, per input partition "
                                  "this worker holds (read at scrape time)", ["worker", "topic", "partition"],
                                  registry=r)
        self.assigned = Gauge("sentinel_assigned_partitions", "Partitions of each input topic this worker holds "
                              "(read at scrape time)", ["worker", "topic"], registry=r)
        self.topic_partitions = Gauge("sentinel_topic_partitions", "Partitions of each input topic, as this worker's "
                                      "consumer metadata has them", ["worker", "topic"], registry=r)
        self.processing_lag = Gauge("sentinel_processing_lag_seconds",
                                    "Seconds from the jobs agent receiving its latest finished batch to finishing it "
                                    "(outputs acknowledged and stored)", registry=r)
        self.event_time_lag = Gauge("sentinel_event_time_lag_seconds",
                                    "Now minus delivered_at of the newest scored job (event time: large when "
                                    "replaying an old trace)", registry=r)
        self.started_at = time.time()

    def watch_latency(self, snapshot: Callable[[], Mapping[tuple[str, str], Mapping[str, float | None]]]) -> None:
        self.registry.register(LiveLatencyCollector(snapshot))

    def set_membership(self, worker: str, partitions: Mapping[str, Iterable[int]],
                       lags: Mapping[tuple[str, int], int] | None,
                       topic_partitions: Mapping[str, int | None] | None = None) -> None:
        """Replace the partitions held per input topic, every partition's consumer lag (None:
        unknown, no lag series) and the topics' partition counts (None: unknown, no series);
        series of revoked partitions disappear."""
        self.assigned.clear()
        for topic, held in sorted(partitions.items()):
            self.assigned.labels(worker, topic).set(len(list(held)))
        self.topic_partitions.clear()
        for topic, n in sorted((topic_partitions or {}).items()):
            if n is not None:
                self.topic_partitions.labels(worker, topic).set(n)
        self.consumer_lag.clear()
        for (topic, partition), records in sorted((lags or {}).items()):
            self.consumer_lag.labels(worker, topic, str(partition)).set(records)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def summary(self) -> dict[str, float]:
        def total(metric: Counter | Gauge) -> float:  # over labels; a counter's _created is no value
            return sum(s.value for m in metric.collect() for s in m.samples if not s.name.endswith("_created"))

        return {
            "consumed": total(self.consumed),
            "scored": total(self.scored),
            "dead_lettered": total(self.dead_letters),
            "rows_stored": total(self.rows_stored),
            "sink_retries": total(self.sink_retries),
            "send_retries": total(self.send_retries),
            "duplicates_skipped": total(self.duplicates),
            "consumer_lag_records": total(self.consumer_lag),
            "processing_lag_seconds": total(self.processing_lag),
            "event_time_lag_seconds": total(self.event_time_lag),
            "uptime_seconds": time.time() - self.started_at,
        }

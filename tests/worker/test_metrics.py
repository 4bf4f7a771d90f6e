"""The worker's lag metrics computed without a broker: consumer lag from a fake consumer's log
ends and committed offsets, read back through prometheus_client's own text parser."""

from __future__ import annotations

import asyncio

from faust.types import TP
from prometheus_client.parser import text_string_to_metric_families

from worker.membership import consumer_lag, read_consumer_lag
from worker.metrics import WorkerMetrics


class Consumer:
    def __init__(self, ends: dict, committed: dict, fail: Exception | None = None) -> None:
        self.ends = ends
        self._committed_offset = committed
        self.fail = fail
        self.asked: list = []

    def assignment(self) -> set:
        return set(self.ends)

    async def highwaters(self, *tps):
        self.asked.append(set(tps))
        if self.fail is not None:
            raise self.fail
        return {tp: self.ends[tp] for tp in tps}


def samples(metrics: WorkerMetrics) -> dict:
    text = metrics.exposition().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_consumer_lag_is_log_end_minus_committed_never_negative() -> None:
    a, b, c, d = TP("t", 0), TP("t", 1), TP("t", 2), TP("u", 0)
    lags = consumer_lag({a: 120, b: 7, c: 5, d: None}, {a: 100, b: 7, c: 9, d: 3})
    assert lags == {("t", 0): 20, ("t", 1): 0, ("t", 2): 0}  # d: no known end
    assert consumer_lag({a: 10}, {}) == {}  # not sought yet: unknown, not 10


def test_read_consumer_lag_asks_only_for_input_partitions() -> None:
    jobs0, jobs1, changelog = TP("jobs.completed", 0), TP("jobs.completed", 1), TP("app-live-changelog", 0)
    consumer = Consumer({jobs0: 50, jobs1: 3, changelog: 999}, {jobs0: 42, jobs1: None, changelog: 0})
    lags = asyncio.run(read_consumer_lag(consumer, lambda topic: topic == "jobs.completed"))
    assert lags == {("jobs.completed", 0): 8}
    assert consumer.asked == [{jobs0, jobs1}]


def test_unreachable_broker_gives_no_series_instead_of_stale_ones() -> None:
    jobs0 = TP("jobs.completed", 0)
    metrics = WorkerMetrics()
    metrics.set_membership("w1", {"jobs.completed": [0, 1]}, {("jobs.completed", 0): 5, ("jobs.completed", 1): 2})
    assert samples(metrics)[("sentinel_consumer_lag_records",
                             (("partition", "0"), ("topic", "jobs.completed"), ("worker", "w1")))] == 5
    failing = Consumer({jobs0: 9}, {jobs0: 1}, fail=ConnectionError("broker down"))
    metrics.set_membership("w1", {"jobs.completed": [0]}, asyncio.run(read_consumer_lag(failing, lambda topic: True)))
    assert not [k for k in samples(metrics) if k[0] == "sentinel_consumer_lag_records"]


def test_revoked_partitions_disappear_and_summary_sums_them() -> None:
    metrics = WorkerMetrics()
    metrics.set_membership("w1", {"jobs.completed": [0, 1], "jobs.scored": [2]},
                           {("jobs.completed", 0): 5, ("jobs.completed", 1): 2})
    metrics.set_membership("w1", {"jobs.completed": [1], "jobs.scored": []}, {("jobs.completed", 1): 4})
    found = samples(metrics)
    lags = {dict(k[1])["partition"]: v for k, v in found.items() if k[0] == "sentinel_consumer_lag_records"}
    assert lags == {"1": 4}
    held = {dict(k[1])["topic"]: v for k, v in found.items() if k[0] == "sentinel_assigned_partitions"}
    assert held == {"jobs.completed": 1, "jobs.scored": 0}
    assert metrics.summary()["consumer_lag_records"] == 4
    assert not [k for k in found if k[0] == "sentinel_topic_partitions"]  # counts unknown: no series
    metrics.set_membership("w1", {"jobs.completed": [1]}, {}, {"jobs.completed": 4, "jobs.scored": None})
    counts = {k[1]: v for k, v in samples(metrics).items() if k[0] == "sentinel_topic_partitions"}
    assert counts == {(("topic", "jobs.completed"), ("worker", "w1")): 4}


def test_lags_are_exported_under_names_that_say_what_they_measure() -> None:
    metrics = WorkerMetrics()
    metrics.processing_lag.set(0.25)
    metrics.event_time_lag.set(251 * 86400)
    found = samples(metrics)
    assert found[("sentinel_processing_lag_seconds", ())] == 0.25
    assert found[("sentinel_event_time_lag_seconds", ())] == 251 * 86400
    assert not [k for k in found if k[0] == "sentinel_scoring_lag_seconds"]

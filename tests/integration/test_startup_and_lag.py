"""A fresh stack (issue 17): the first job of every partition is scored within seconds, with
no idle re-read, and Prometheus-format scraping of /metrics shows the consumer lag of every
input partition at 0 once the worker has caught up."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from datetime import datetime, timezone

import pytest
from conftest import make_event, wait_for

from contracts.topics import ALERTS, JOBS_COMPLETED, JOBS_SCORED, RATINGS

pytestmark = pytest.mark.integration

N = 20
PARTITIONS = 4
# Jobs go out every 0.25 s from 19 s after the worker is ready: across the moment its hole
# healer has seen each partition unmoved for idle_s (20 s). Before the fix that moment re-read
# a partition whose newest record was being scored ("no reader got past it for 20s").
FIRST_AT_S, EVERY_S = 19.0, 0.25


async def _publish_on_schedule(bootstrap: str, ready: float) -> dict[str, float]:
    from inference.publisher import JobPublisher

    sent: dict[str, float] = {}
    async with JobPublisher(bootstrap) as publisher:
        for i in range(N):
            await asyncio.sleep(max(0.0, ready + FIRST_AT_S + i * EVERY_S - time.monotonic()))
            event = make_event(i, seed=17)  # seed 17: the job ids cover all four partitions
            await publisher.publish(event)
            sent[event["job_id"]] = time.time()
        await publisher.flush()
    return sent


@pytest.fixture(scope="module")
def published(embedded_stack):
    from warehouse.client import open_reader

    ready = time.monotonic()  # the fixture's stack has just answered /sentinel/ready/
    sent = asyncio.run(_publish_on_schedule(embedded_stack.broker.bootstrap, ready))
    reader = open_reader(embedded_stack.settings.dsn)
    wait_for(lambda: reader.query("SELECT uniqExact(job_id) AS n FROM sentinel.scores").to_pylist()[0]["n"] >= N,
             60, f"{N} jobs scored")
    return sent, reader


def test_first_job_of_every_partition_is_scored_within_seconds(published, embedded_stack):
    sent, reader = published
    rows = reader.query(
        "SELECT j.source_partition AS partition, j.source_offset AS offset, j.job_id AS job_id, "
        "min(s.ingested_at) AS scored FROM sentinel.jobs AS j FINAL "
        "INNER JOIN sentinel.scores AS s ON s.job_id = j.job_id "
        "GROUP BY partition, offset, job_id ORDER BY partition, offset").to_pylist()
    first = {}
    for row in rows:
        first.setdefault(row["partition"], row)
    assert sorted(first) == list(range(PARTITIONS))
    for partition, row in first.items():
        scored = row["scored"].replace(tzinfo=timezone.utc) if row["scored"].tzinfo is None else row["scored"]
        waited = (scored - datetime.fromtimestamp(sent[row["job_id"]], timezone.utc)).total_seconds()
        assert waited < 10, f"partition {partition}: its first job waited {waited:.1f}s to be scored"
    log = embedded_stack.worker.log_tail(n=10_000_000)
    assert "no reader got past it" not in log and "re-reading from it" not in log, \
        [line for line in log.splitlines() if "re-read" in line]


def _scrape(url: str) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {(s.labels["topic"], s.labels["partition"]): s.value
            for family in text_string_to_metric_families(text) if family.name == "sentinel_consumer_lag_records"
            for s in family.samples}


async def _committed_and_ends(bootstrap: str, group: str, tps: list[tuple[str, int]]) -> tuple[dict, dict]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t, p in tps]
        ends = await consumer.end_offsets(parts)
        committed = {(tp.topic, tp.partition): await consumer.committed(tp) for tp in parts}
        return committed, {(tp.topic, tp.partition): end for tp, end in ends.items()}
    finally:
        await consumer.stop()


def test_prometheus_scrape_shows_consumer_lag_at_zero_once_caught_up(published, embedded_stack):
    url = f"{embedded_stack.worker.url}/metrics"
    every_input = {(t, str(p)) for t in (JOBS_COMPLETED, JOBS_SCORED, RATINGS) for p in range(PARTITIONS)}
    every_input.add((ALERTS, "0"))
    lags = wait_for(lambda: (lambda got: got if set(got) == every_input and not any(got.values()) else None)(
        _scrape(url)), 30, "consumer lag 0 on every input partition", diagnose=lambda: repr(_scrape(url)))
    assert set(lags) == every_input
    # an independent client agrees: the group committed up to the log end, which moved
    committed, ends = asyncio.run(_committed_and_ends(
        embedded_stack.broker.bootstrap, embedded_stack.settings.app_id,
        [(JOBS_COMPLETED, p) for p in range(PARTITIONS)]))
    assert committed == ends and sum(ends.values()) == N

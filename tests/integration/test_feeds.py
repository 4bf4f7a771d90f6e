"""Feeds on a real broker: with tiny feeds, a burst of records makes every partition fill its
feed past 80% again and again, so the consumer takes partitions out of the fetch and puts them
back (Faust's own pause and resume) while the jobs are archived and tallied. Checked: every
published job stored exactly once, the live tallies equal a count of the events, the worker
counted the pauses, and its log holds no crash."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter

import pytest
from conftest import make_event, publish_events, running_stack, wait_for

from warehouse.client import open_reader

N = 600
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from running_stack(tmp_path_factory, score_enabled=False, feed_max_records=16)


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def test_tiny_feeds_pause_and_resume_partitions_and_lose_nothing(stack):
    events = [make_event(i, seed=41) for i in range(N)]
    publish_events(stack.broker.bootstrap, events)
    reader = open_reader(stack.settings.dsn)

    def stored():
        rows = reader.query("SELECT count() AS n, uniqExact(job_id) AS ids FROM sentinel.jobs").to_pylist()[0]
        return rows if rows["n"] >= N else None

    got = wait_for(stored, 180, f"{N} jobs stored")
    assert got == {"n": N, "ids": N}
    want = Counter((e["model_id"], e["niche"]) for e in events)

    def tallied():
        with urllib.request.urlopen(f"{stack.worker.url}/sentinel/live/?window=all", timeout=10) as resp:
            rows = json.loads(resp.read())["rows"]
        return {(r["model"], r["niche"]): r["jobs"] for r in rows} == dict(want)

    wait_for(tallied, 60, "live tallies equal to the events")
    assert metric(stack.worker.url, "sentinel_feed_pauses_total") > 0
    log = stack.worker.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "Crashed reason" not in log

"""Per-worker partitions and lag on the real embedded stack with two workers and the store role
(issue 21): each worker registers itself; the two hold disjoint shares of every input topic and
each /metrics carries its own under its worker label; the lag of every input partition, taken
from the worker holding it, equals what the broker says (log end minus the group's committed
offset, read with aiokafka) while ClickHouse is down and nothing can be committed, and returns
to 0 once it is back; the live page's Workers table lists both, marks a frozen (SIGSTOP) one
"unreachable" with its partitions "unheld", and a clean stop withdraws the registry entry."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from typing import Any, Iterator

import pytest
from conftest import make_event, publish_events, wait_for
from http_fakes import serve

from contracts.topics import ALERTS, JOBS_COMPLETED, JOBS_SCORED, RATINGS

pytestmark = pytest.mark.integration

N = 24
PARTITIONS = 4
SHARED = (JOBS_COMPLETED, JOBS_SCORED, RATINGS)  # alerts.quality has one partition: one worker holds it
INPUTS = [(t, p) for t in SHARED for p in range(PARTITIONS)] + [(ALERTS, 0)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from config.settings import load_settings
    from devstack.stack import EmbeddedStack

    settings = load_settings(env={}, data_dir=tmp_path_factory.mktemp("stack"), partitions=PARTITIONS,
                             score_batch_wait_s=0.2, sink_batch_wait_s=0.3, app_id=f"sentinel-test-{os.getpid()}")
    running = EmbeddedStack(settings, workers=2).start()  # two workers: the store role owns chDB
    try:
        yield running
    finally:
        running.stop()


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def doc(worker: Any) -> dict[str, Any]:
    return json.loads(get(f"{worker.url}/sentinel/worker/"))


def scrape(worker: Any) -> dict[str, dict]:
    """The per-worker series of one worker's /metrics, with its worker label checked."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict] = {"lag": {}, "assigned": {}}
    for family in text_string_to_metric_families(get(f"{worker.url}/metrics").decode()):
        for s in family.samples:
            if family.name in ("sentinel_consumer_lag_records", "sentinel_assigned_partitions"):
                assert s.labels["worker"] == worker.settings.worker_id, s
            if family.name == "sentinel_consumer_lag_records":
                out["lag"][(s.labels["topic"], int(s.labels["partition"]))] = s.value
            elif family.name == "sentinel_assigned_partitions":
                out["assigned"][s.labels["topic"]] = s.value
    return out


def group_lag(stack: Any) -> dict[tuple[str, int], float]:
    """Every worker's lag series together; a partition reported by two workers fails the test."""
    out: dict[tuple[str, int], float] = {}
    for worker in stack.workers:
        lag = scrape(worker)["lag"]
        assert not set(lag) & set(out), f"a partition's lag reported twice: {sorted(set(lag) & set(out))}"
        out.update(lag)
    return out


async def _broker_offsets(bootstrap: str, group: str) -> tuple[dict, dict]:
    """(committed, log end) of every input partition, asked by a client of our own."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t, p in INPUTS]
        ends = await consumer.end_offsets(parts)
        committed = {(tp.topic, tp.partition): await consumer.committed(tp) for tp in parts}
        return committed, {(tp.topic, tp.partition): end for tp, end in ends.items()}
    finally:
        await consumer.stop()


def broker_offsets(stack: Any) -> tuple[dict, dict]:
    return asyncio.run(_broker_offsets(stack.broker.bootstrap, stack.settings.app_id))


def broker_lag(stack: Any) -> dict[tuple[str, int], int]:
    committed, ends = broker_offsets(stack)
    return {tp: ends[tp] - (committed[tp] or 0) for tp in INPUTS}


def split(stack: Any) -> tuple[dict, dict] | None:
    """The two workers' documents once they hold disjoint, covering, non-empty shares."""
    a, b = doc(stack.workers[0]), doc(stack.workers[1])
    for topic in SHARED:
        mine, theirs = set(a["partitions"][topic]), set(b["partitions"][topic])
        if mine & theirs or mine | theirs != set(range(PARTITIONS)) or not mine or not theirs:
            return None
    return (a, b) if a["lag"] is not None and b["lag"] is not None else None


def test_every_worker_registers_itself(stack):
    from worker.membership import registered_workers

    for worker in stack.workers:
        entry = json.loads((stack.settings.data_dir / "workers" / f"{worker.settings.worker_id}.json").read_text())
        assert (entry["worker_id"], entry["url"], entry["pid"]) == (worker.settings.worker_id, worker.url,
                                                                    worker.proc.pid)
    assert [e.worker_id for e in registered_workers(stack.settings.data_dir)] == ["worker-1", "worker-2"]


def test_workers_split_every_input_topic_and_each_metrics_shows_its_share(stack):
    a, b = wait_for(lambda: split(stack), 60, "the two workers to split every input topic",
                    diagnose=lambda: f"{doc(stack.workers[0])}\n{doc(stack.workers[1])}")
    for worker, mine in zip(stack.workers, (a, b)):
        series = wait_for(lambda: (lambda m: m if set(m["lag"]) == {(t, p) for t, ps in mine["partitions"].items()
                                                                     for p in ps} else None)(scrape(worker)),
                          30, "a lag series for exactly the partitions it holds", diagnose=lambda: repr(scrape(worker)))
        assert series["assigned"] == {t: len(ps) for t, ps in mine["partitions"].items()}
        assert mine["topic_partitions"] == {JOBS_COMPLETED: PARTITIONS, JOBS_SCORED: PARTITIONS,
                                            RATINGS: PARTITIONS, ALERTS: 1}
    assert sorted(a["partitions"][ALERTS] + b["partitions"][ALERTS]) == [0]


def test_lag_per_partition_matches_the_broker_then_returns_to_zero(stack):
    _, ends_before = broker_offsets(stack)
    switch = stack.settings.faults_dir / "clickhouse_down"  # nothing can be stored, so nothing committed
    switch.parent.mkdir(parents=True, exist_ok=True)
    switch.touch()
    try:
        publish_events(stack.broker.bootstrap, [make_event(i, seed=17) for i in range(N)])

        def agree() -> dict | None:
            ours, theirs = group_lag(stack), broker_lag(stack)
            return ours if ours == theirs and sum(ours[(JOBS_COMPLETED, p)] for p in range(PARTITIONS)) == N else None

        held = wait_for(agree, 30, "the workers' lag to equal the broker's",
                        diagnose=lambda: f"{group_lag(stack)} vs {broker_lag(stack)}")
        _, ends = broker_offsets(stack)
        assert [held[(JOBS_COMPLETED, p)] for p in range(PARTITIONS)] == \
            [ends[(JOBS_COMPLETED, p)] - ends_before[(JOBS_COMPLETED, p)] for p in range(PARTITIONS)]
    finally:
        switch.unlink(missing_ok=True)
    lags = wait_for(lambda: (lambda g: g if set(g) == set(INPUTS) and not any(g.values()) else None)(group_lag(stack)),
                    45, "lag 0 on every input partition", diagnose=lambda: repr(group_lag(stack)))
    assert set(lags) == set(INPUTS)
    committed, ends = broker_offsets(stack)
    # the group committed up to the log end (an empty partition has nothing to commit)
    assert {tp: committed[tp] or 0 for tp in INPUTS} == ends
    assert all(committed[tp] is not None or ends[tp] == 0 for tp in INPUTS)
    assert sum(ends[(JOBS_COMPLETED, p)] for p in range(PARTITIONS)) == N
    docs = [doc(w) for w in stack.workers]
    assert [d["lag_total"] for d in docs] == [0, 0]
    assert sum(d["consumed"] for d in docs) >= N


def table(worker: Any) -> dict[str, Any]:
    return json.loads(get(f"{worker.url}/sentinel/workers/"))


def test_workers_page_lists_every_worker_and_marks_the_unreachable(stack):
    from worker.membership import announce, withdraw

    first, second = stack.workers
    data_dir = stack.settings.data_dir
    peer, peer_url = serve({"worker_id": "worker-9", "pid": os.getpid(), "partitions": {JOBS_COMPLETED: []},
                      "lag": {JOBS_COMPLETED: {}}, "lag_total": 0, "consumed": 0, "scored": 0}, path=None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        silent = f"http://127.0.0.1:{s.getsockname()[1]}"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    announce(data_dir, "worker-9", peer_url)
    announce(data_dir, "worker-silent", silent)
    announce(data_dir, "worker-gone", peer_url, pid=gone.pid)
    try:
        got = table(first)
    finally:
        withdraw(data_dir, "worker-9")
        withdraw(data_dir, "worker-silent")
        (data_dir / "workers" / "worker-gone.json").unlink()
        peer.shutdown()
        peer.server_close()
    rows = {r["worker_id"]: r for r in got["workers"]}
    assert {w: r["status"] for w, r in rows.items()} == {"worker-1": "ok", "worker-2": "ok", "worker-9": "ok",
                                                         "worker-silent": "unreachable"}  # worker-gone skipped
    assert rows["worker-1"]["self"] is True and "self" not in rows["worker-2"]
    theirs = doc(second)["partitions"]
    assert rows["worker-2"]["partitions"] == theirs and rows["worker-2"]["pid"] == second.proc.pid
    assert got["partitions"][JOBS_COMPLETED] == list(range(PARTITIONS))
    assert got["unheld"] == {t: [] for t in (*SHARED, ALERTS)}
    os.kill(second.proc.pid, signal.SIGSTOP)  # alive, but answers nobody
    try:
        frozen = table(first)
    finally:
        os.kill(second.proc.pid, signal.SIGCONT)
    rows = {r["worker_id"]: r for r in frozen["workers"]}
    assert rows["worker-2"]["status"] == "unreachable" and "timed out" in rows["worker-2"]["reason"]
    assert rows["worker-1"]["status"] == "ok" and (frozen["answered"], frozen["unreachable"]) == (1, 1)
    assert frozen["unheld"][JOBS_COMPLETED] == sorted(theirs[JOBS_COMPLETED])
    page = get(f"{first.url}/sentinel/dashboard/").decode()
    assert "<h2>Workers</h2>" in page and "../workers/" in page


def test_a_clean_stop_withdraws_the_entry(stack):
    first, second = stack.workers
    entry = stack.settings.data_dir / "workers" / "worker-2.json"
    assert entry.exists()
    second.stop()
    assert not entry.exists()
    after = table(first)
    assert [r["worker_id"] for r in after["workers"]] == ["worker-1"]
    # whatever the group did with worker-2's share yet, the table accounts for every partition
    held_now = set(after["workers"][0]["partitions"][JOBS_COMPLETED])
    assert after["unheld"][JOBS_COMPLETED] == sorted(set(range(PARTITIONS)) - held_now)

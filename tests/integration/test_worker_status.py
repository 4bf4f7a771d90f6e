"""Per-worker partitions and lag on the real embedded stack (issue 21): the worker registers
itself, /metrics carries its partitions and per-partition lag under its worker label, the lag
equals what the broker says (log end minus the group's committed offset, read with aiokafka)
while ClickHouse is down and nothing can be committed, and returns to 0 once it is back; the
live page's Workers table lists real peers and marks the unreachable; a clean stop withdraws
the registry entry."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import make_event, publish_events, wait_for

from contracts.topics import ALERTS, JOBS_COMPLETED, JOBS_SCORED, RATINGS

pytestmark = pytest.mark.integration

N = 24
PARTITIONS = 4
INPUTS = [(t, p) for t in (JOBS_COMPLETED, JOBS_SCORED, RATINGS) for p in range(PARTITIONS)] + [(ALERTS, 0)]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def scrape(stack: Any) -> dict[str, dict[tuple, float]]:
    """{metric: {labels: value}} of the two per-worker series, with the worker label checked."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[tuple, float]] = {"lag": {}, "assigned": {}}
    for family in text_string_to_metric_families(get(f"{stack.worker.url}/metrics").decode()):
        for s in family.samples:
            if family.name == "sentinel_consumer_lag_records":
                assert s.labels["worker"] == stack.settings.worker_id
                out["lag"][(s.labels["topic"], int(s.labels["partition"]))] = s.value
            elif family.name == "sentinel_assigned_partitions":
                assert s.labels["worker"] == stack.settings.worker_id
                out["assigned"][s.labels["topic"]] = s.value
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


def test_worker_registers_itself(embedded_stack):
    entry = json.loads((embedded_stack.settings.data_dir / "workers" / "worker-1.json").read_text())
    assert (entry["worker_id"], entry["url"], entry["pid"]) == ("worker-1", embedded_stack.worker.url,
                                                                embedded_stack.worker.proc.pid)


def test_lag_per_partition_matches_the_broker_then_returns_to_zero(embedded_stack):
    stack = embedded_stack
    first = wait_for(lambda: (lambda m: m if set(m["lag"]) == set(INPUTS) else None)(scrape(stack)), 30,
                     "a lag series for every input partition", diagnose=lambda: repr(scrape(stack)))
    assert first["assigned"] == {JOBS_COMPLETED: 4, JOBS_SCORED: 4, RATINGS: 4, ALERTS: 1}
    _, ends_before = broker_offsets(stack)
    switch = stack.settings.faults_dir / "clickhouse_down"  # nothing can be stored, so nothing committed
    switch.parent.mkdir(parents=True, exist_ok=True)
    switch.touch()
    try:
        publish_events(stack.broker.bootstrap, [make_event(i, seed=17) for i in range(N)])

        def agree() -> dict | None:
            ours, theirs = scrape(stack)["lag"], broker_lag(stack)
            return ours if ours == theirs and sum(ours[(JOBS_COMPLETED, p)] for p in range(PARTITIONS)) == N else None

        held = wait_for(agree, 30, "the worker's lag to equal the broker's",
                        diagnose=lambda: f"{scrape(stack)} vs {broker_lag(stack)}")
        _, ends = broker_offsets(stack)
        assert [held[(JOBS_COMPLETED, p)] for p in range(PARTITIONS)] == \
            [ends[(JOBS_COMPLETED, p)] - ends_before[(JOBS_COMPLETED, p)] for p in range(PARTITIONS)]
        doc = json.loads(get(f"{stack.worker.url}/sentinel/worker/"))
        assert doc["lag_total"] >= N and doc["partitions"][JOBS_COMPLETED] == list(range(PARTITIONS))
    finally:
        switch.unlink(missing_ok=True)
    wait_for(lambda: (lambda m: set(m["lag"]) == set(INPUTS) and not any(m["lag"].values()))(scrape(stack)), 45,
             "lag 0 on every input partition", diagnose=lambda: repr(scrape(stack)))
    committed, ends = broker_offsets(stack)
    # the group committed up to the log end (an empty partition has nothing to commit)
    assert {tp: committed[tp] or 0 for tp in INPUTS} == ends and all(committed[tp] is not None or ends[tp] == 0
                                                                     for tp in INPUTS)
    assert sum(ends[(JOBS_COMPLETED, p)] for p in range(PARTITIONS)) == N
    doc = json.loads(get(f"{stack.worker.url}/sentinel/worker/"))
    assert doc["worker_id"] == "worker-1" and doc["pid"] == stack.worker.proc.pid and doc["lag_total"] == 0
    assert {t: sorted(ps) for t, ps in doc["partitions"].items()} == \
        {JOBS_COMPLETED: [0, 1, 2, 3], JOBS_SCORED: [0, 1, 2, 3], RATINGS: [0, 1, 2, 3], ALERTS: [0]}
    assert doc["consumed"] >= N


def fake_peer(doc: dict[str, Any]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def test_workers_page_lists_live_peers_and_marks_the_unreachable(embedded_stack):
    from worker.membership import announce, withdraw

    data_dir = embedded_stack.settings.data_dir
    peer = fake_peer({"worker_id": "worker-9", "pid": os.getpid(), "partitions": {JOBS_COMPLETED: []},
                      "lag": {JOBS_COMPLETED: {}}, "lag_total": 0, "consumed": 0, "scored": 0})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        silent = f"http://127.0.0.1:{s.getsockname()[1]}"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    announce(data_dir, "worker-9", f"http://127.0.0.1:{peer.server_address[1]}")
    announce(data_dir, "worker-silent", silent)
    announce(data_dir, "worker-gone", f"http://127.0.0.1:{peer.server_address[1]}", pid=gone.pid)
    try:
        table = json.loads(get(f"{embedded_stack.worker.url}/sentinel/workers/"))
    finally:
        withdraw(data_dir, "worker-9")
        withdraw(data_dir, "worker-silent")
        (data_dir / "workers" / "worker-gone.json").unlink()
        peer.shutdown()
        peer.server_close()
    rows = {r["worker_id"]: r for r in table["workers"]}
    assert set(rows) == {"worker-1", "worker-9", "worker-silent"}
    assert rows["worker-1"]["status"] == "ok" and rows["worker-1"]["self"] is True
    assert rows["worker-9"]["status"] == "ok" and rows["worker-silent"]["status"] == "unreachable"
    assert table["partitions"][JOBS_COMPLETED] == [0, 1, 2, 3]
    assert (table["answered"], table["unreachable"]) == (2, 1)
    page = get(f"{embedded_stack.worker.url}/sentinel/dashboard/").decode()
    assert "<h2>Workers</h2>" in page and "../workers/" in page


def held_partitions(url: str) -> dict[str, Any]:
    return json.loads(get(f"{url}/sentinel/worker/"))


def test_two_workers_share_the_partitions_and_list_each_other(embedded_stack, tmp_path_factory):
    """A second worker joins the group (its own data dir: one chDB per process until the store
    role lands) and is registered beside the first: the two hold disjoint shares of every input
    topic, each /metrics shows its own, the first's lost partitions leave its /metrics, and the
    Workers table lists both; frozen (SIGSTOP) it is "unreachable" and its partitions "unheld";
    stopped, it is no longer listed."""
    from devstack.broker_probes import free_port
    from devstack.stack import WorkerProcess
    from worker.membership import announce

    stack = embedded_stack
    data_dir = tmp_path_factory.mktemp("worker2")
    second = WorkerProcess(stack.settings.with_(data_dir=data_dir, worker_id="worker-2", web_port=free_port()),
                           data_dir / "logs" / "worker.log").start()
    try:
        def split() -> tuple[dict, dict] | None:
            a, b = held_partitions(stack.worker.url), held_partitions(second.url)
            for topic in (JOBS_COMPLETED, JOBS_SCORED, RATINGS):
                mine, theirs = set(a["partitions"][topic]), set(b["partitions"][topic])
                if mine & theirs or mine | theirs != set(range(PARTITIONS)) or not mine or not theirs:
                    return None
            return (a, b) if a["lag"] is not None and b["lag"] is not None else None

        a, b = wait_for(split, 60, "the two workers to split every input topic",
                        diagnose=lambda: f"{held_partitions(stack.worker.url)}\n{held_partitions(second.url)}")
        first = scrape(stack)
        for topic in (JOBS_COMPLETED, JOBS_SCORED, RATINGS):
            assert first["assigned"][topic] == len(a["partitions"][topic])
            assert {p for t, p in first["lag"] if t == topic} <= set(a["partitions"][topic])  # revoked: gone
        announce(stack.settings.data_dir, "worker-2", second.url, pid=second.proc.pid)
        table = json.loads(get(f"{stack.worker.url}/sentinel/workers/"))
        rows = {r["worker_id"]: r for r in table["workers"]}
        assert {w: r["status"] for w, r in rows.items()} == {"worker-1": "ok", "worker-2": "ok"}
        assert rows["worker-2"]["partitions"][JOBS_COMPLETED] == b["partitions"][JOBS_COMPLETED]
        assert table["partitions"][JOBS_COMPLETED] == list(range(PARTITIONS))
        assert table["unheld"] == {JOBS_COMPLETED: [], JOBS_SCORED: [], RATINGS: [], ALERTS: []}
        os.kill(second.proc.pid, signal.SIGSTOP)  # alive, but answers nobody
        try:
            frozen = json.loads(get(f"{stack.worker.url}/sentinel/workers/"))
        finally:
            os.kill(second.proc.pid, signal.SIGCONT)
        rows = {r["worker_id"]: r for r in frozen["workers"]}
        assert rows["worker-2"]["status"] == "unreachable" and "timed out" in rows["worker-2"]["reason"]
        assert rows["worker-1"]["status"] == "ok"
        assert frozen["unheld"][JOBS_COMPLETED] == sorted(b["partitions"][JOBS_COMPLETED])
    finally:
        second.stop()
    after = json.loads(get(f"{stack.worker.url}/sentinel/workers/"))
    assert [r["worker_id"] for r in after["workers"]] == ["worker-1"]  # worker-2's process is gone: skipped
    # (the embedded broker does not hand a stopped static member's partitions back: they show as unheld)
    held_now = set(after["workers"][0]["partitions"][JOBS_COMPLETED])
    assert after["unheld"][JOBS_COMPLETED] == sorted(set(range(PARTITIONS)) - held_now)


def test_a_clean_stop_withdraws_the_entry(embedded_stack):
    entry = embedded_stack.settings.data_dir / "workers" / "worker-1.json"
    assert entry.exists()
    embedded_stack.worker.stop()
    assert not entry.exists()

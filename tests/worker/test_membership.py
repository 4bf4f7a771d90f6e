"""Partitions held and their lag, without a broker (a fake consumer holding random offsets), and
the worker registry on disk: atomic entries, dead and zombie processes skipped."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from faust.types import TP

from worker import membership
from worker.membership import (INPUT_TOPICS, Membership, announce, entry_path, pid_alive, read_membership,
                               registered_workers, withdraw, worker_document)


class Consumer:
    def __init__(self, ends: dict, committed: dict, fail: Exception | None = None, started: bool = True,
                 counts: dict | None = None) -> None:
        self.ends, self._committed_offset, self.fail, self.started = ends, committed, fail, started
        self.counts = counts or {}
        self._thread = self  # Faust's consumer thread, holding the aiokafka consumer

    def _ensure_consumer(self) -> "Consumer":
        if not self.started:
            raise RuntimeError("consumer thread not yet started")
        return self

    def partitions_for_topic(self, topic: str) -> set | None:  # aiokafka: None without metadata
        return set(range(self.counts[topic])) if topic in self.counts else None

    def assignment(self) -> set:
        if not self.started:
            raise RuntimeError("consumer not started")
        return set(self.ends)

    async def highwaters(self, *tps):
        if self.fail is not None:
            raise self.fail
        return {tp: self.ends[tp] for tp in tps}


def is_input(topic: str) -> bool:
    return topic in INPUT_TOPICS


def test_partitions_and_lag_per_input_topic_match_a_recomputation() -> None:
    rng = np.random.default_rng(21)
    held = [TP("jobs.completed", 0), TP("jobs.completed", 2), TP("jobs.scored", 1), TP("ratings.pairwise", 3)]
    ends = rng.integers(0, 1000, len(held))
    committed = ends - rng.integers(-5, 300, len(held))  # a few committed past the end: lag 0, never negative
    changelog = TP("sentinel-live_stats-changelog", 0)
    consumer = Consumer({**dict(zip(held, ends.tolist())), changelog: 10_000},
                        {**dict(zip(held, committed.tolist())), changelog: 0},
                        counts={"jobs.completed": 4, "jobs.scored": 4, "ratings.pairwise": 4, "alerts.quality": 1})
    got = asyncio.run(read_membership(consumer, is_input))
    assert got.partitions == {"jobs.completed": [0, 2], "jobs.scored": [1], "ratings.pairwise": [3],
                              "alerts.quality": []}
    expected = np.maximum(ends - committed, 0)
    assert got.flat_lag() == {(tp.topic, tp.partition): int(n) for tp, n in zip(held, expected)}
    assert got.total_lag() == int(expected.sum())
    assert got.lag["alerts.quality"] == {}
    assert got.topic_partitions == {"jobs.completed": 4, "jobs.scored": 4, "ratings.pairwise": 4, "alerts.quality": 1}


def test_a_partition_not_sought_yet_is_held_but_has_no_lag() -> None:
    a, b = TP("jobs.completed", 0), TP("jobs.completed", 1)
    got = asyncio.run(read_membership(Consumer({a: 40, b: 7}, {a: 30}), is_input))
    assert got.partitions["jobs.completed"] == [0, 1]
    assert got.lag["jobs.completed"] == {0: 10}


def test_unknown_when_the_consumer_cannot_tell() -> None:
    a = TP("jobs.completed", 0)
    down = asyncio.run(read_membership(Consumer({a: 4}, {a: 1}, fail=ConnectionError("broker down")), is_input))
    assert down.partitions["jobs.completed"] == [0] and down.lag is None and down.total_lag() is None
    idle = asyncio.run(read_membership(Consumer({a: 4}, {a: 1}, started=False), is_input))
    assert idle == Membership({t: [] for t in INPUT_TOPICS}, None, {t: None for t in INPUT_TOPICS})
    # a worker that reads only some topics (a scoring role) lists only those
    jobs_only = asyncio.run(read_membership(Consumer({a: 4}, {a: 1}), lambda t: t == "jobs.completed"))
    assert jobs_only.partitions == {"jobs.completed": [0]} and jobs_only.lag == {"jobs.completed": {0: 3}}


def test_worker_document_is_json_with_string_partition_keys() -> None:
    held = Membership({"jobs.completed": [0, 3], "jobs.scored": []}, {"jobs.completed": {0: 4, 3: 9}, "jobs.scored": {}},
                      {"jobs.completed": 4, "jobs.scored": None})
    doc = json.loads(json.dumps(worker_document("w-a", "http://127.0.0.1:1", held, {"consumed": 12.0, "scored": 11.0},
                                                pid=77)))
    assert doc == {"worker_id": "w-a", "url": "http://127.0.0.1:1", "pid": 77,
                   "partitions": {"jobs.completed": [0, 3], "jobs.scored": []},
                   "lag": {"jobs.completed": {"0": 4, "3": 9}, "jobs.scored": {}}, "lag_total": 13,
                   "topic_partitions": {"jobs.completed": 4, "jobs.scored": None},
                   "consumed": 12.0, "scored": 11.0, "dead_lettered": 0}


# -- the registry ----------------------------------------------------------------------------

def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_announce_lists_live_workers_and_skips_dead_ones(tmp_path) -> None:
    announce(tmp_path, "worker-2", "http://127.0.0.1:6067")
    announce(tmp_path, "worker-1", "http://127.0.0.1:6066")
    announce(tmp_path, "worker-gone", "http://127.0.0.1:6068", pid=dead_pid())
    (tmp_path / "workers" / "half.json").write_text('{"worker_id": "x", "url"')  # unreadable: skipped
    entry = json.loads(entry_path(tmp_path, "worker-gone").read_text())
    elsewhere = {**entry, "worker_id": "remote", "host": "another-host"}  # pid not checkable there
    entry_path(tmp_path, "remote").write_text(json.dumps(elsewhere))
    found = registered_workers(tmp_path)
    assert [(e.worker_id, e.url, e.pid) for e in found] == [
        ("remote", "http://127.0.0.1:6068", entry["pid"]),
        ("worker-1", "http://127.0.0.1:6066", os.getpid()),
        ("worker-2", "http://127.0.0.1:6067", os.getpid())]
    assert not list((tmp_path / "workers").glob("*.tmp")) and not list((tmp_path / "workers").glob(".*"))


def test_withdraw_removes_only_its_own_entry(tmp_path) -> None:
    announce(tmp_path, "worker-1", "http://127.0.0.1:6066", pid=os.getpid() + 1_000_000)  # a newer process's entry
    withdraw(tmp_path, "worker-1")
    assert entry_path(tmp_path, "worker-1").exists()
    announce(tmp_path, "worker-1", "http://127.0.0.1:6066")
    withdraw(tmp_path, "worker-1")
    assert not entry_path(tmp_path, "worker-1").exists()
    withdraw(tmp_path, "worker-1")  # nothing there: no error


def test_worker_ids_never_escape_the_registry(tmp_path) -> None:
    path = announce(tmp_path, "../../etc/w 1", "http://127.0.0.1:1")
    assert path.parent == tmp_path / "workers" and path.name == ".._.._etc_w_1.json"
    assert [e.worker_id for e in registered_workers(tmp_path)] == ["../../etc/w 1"]


def test_a_reader_never_sees_half_an_entry(tmp_path) -> None:
    announce(tmp_path, "w", "http://127.0.0.1:1")
    path, stop, bad = entry_path(tmp_path, "w"), threading.Event(), []

    def read() -> None:
        while not stop.is_set():
            try:
                json.loads(path.read_text())
            except (ValueError, FileNotFoundError) as exc:
                bad.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(400):
            announce(tmp_path, "w", f"http://127.0.0.1:{i}/" + "x" * 5000)
    finally:
        stop.set()
        reader.join()
    assert bad == []


def test_a_failed_write_keeps_the_previous_entry(tmp_path, monkeypatch) -> None:
    announce(tmp_path, "w", "http://127.0.0.1:1")

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(membership.os, "replace", broken)
    with pytest.raises(OSError):
        announce(tmp_path, "w", "http://127.0.0.1:2")
    assert json.loads(entry_path(tmp_path, "w").read_text())["url"] == "http://127.0.0.1:1"
    assert sorted(p.name for p in (tmp_path / "workers").iterdir()) == ["w.json"]


def test_a_killed_process_not_reaped_yet_counts_as_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_alive(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(proc.pid) and time.monotonic() < deadline:
            pass
        assert not pid_alive(proc.pid)  # a zombie until waited for
    finally:
        proc.kill()
        proc.wait()
    assert not pid_alive(proc.pid) and not pid_alive(0)

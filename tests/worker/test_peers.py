"""The Workers table against real little HTTP peers (stdlib http.server threads): a peer that
answers, one too slow, one refusing connections, one answering as another worker, one failing
with a 500, one answering a JSON list and one whose process is gone. The event loop keeps running while peers are asked."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import numpy as np
import pytest

from worker.membership import Membership, announce, registered_workers, worker_document
from worker.peers import gather_workers

from http_fakes import serve

SLOW_S = 3.0
TIMEOUT_S = 0.5


def peer_doc(worker_id: str, partitions: dict[str, list[int]], lag: dict[str, dict[int, int]] | None,
             counts: dict[str, int | None] | None = None) -> dict[str, Any]:
    return worker_document(worker_id, "unused", Membership(partitions, lag, counts or {}),
                           {"consumed": 5, "scored": 4}, pid=1)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def peers(tmp_path) -> Iterator[dict[str, Any]]:
    docs = {
        "w-b": peer_doc("w-b", {"jobs.completed": [1, 3], "jobs.scored": [1]},
                        {"jobs.completed": {1: 7, 3: 0}, "jobs.scored": {1: 2}}),
        "w-c": peer_doc("w-c", {"jobs.completed": [2], "jobs.scored": [2, 3]},
                        {"jobs.completed": {2: 5}, "jobs.scored": {2: 0, 3: 1}}),
    }
    servers = [serve(docs["w-b"]), serve(docs["w-c"]), serve(peer_doc("w-slow", {}, {}), delay_s=SLOW_S),
               serve(peer_doc("someone-else", {}, {})), serve({"error": "boom"}, status=500), serve([1, 2])]
    urls = {"w-b": servers[0][1], "w-c": servers[1][1], "w-slow": servers[2][1], "w-moved": servers[3][1],
            "w-broken": servers[4][1], "w-list": servers[5][1], "w-refused": closed_port_url()}
    for worker_id, url in urls.items():
        announce(tmp_path, worker_id, url)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    announce(tmp_path, "w-dead", servers[0][1], pid=gone.pid)  # answers, but its process is gone: skipped
    try:
        yield {"dir": tmp_path, "docs": docs, "urls": urls}
    finally:
        for server, _ in servers:
            server.shutdown()
            server.server_close()


def test_workers_table_lists_every_live_peer_and_marks_the_unreachable(peers) -> None:
    own = peer_doc("w-a", {"jobs.completed": [0], "jobs.scored": [0], "ratings.pairwise": []},
                   {"jobs.completed": {0: 3}, "jobs.scored": {0: 0}},
                   {"jobs.completed": 4, "jobs.scored": 4, "ratings.pairwise": 2})
    ticks = 0

    async def main() -> tuple[dict[str, Any], float]:
        nonlocal ticks
        entries = registered_workers(peers["dir"])

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            table = await gather_workers(own, entries, pool, timeout_s=TIMEOUT_S)
        took = time.monotonic() - started
        tick_task.cancel()
        return table, took

    table, took = asyncio.run(main())
    rows = {r["worker_id"]: r for r in table["workers"]}
    assert [r["worker_id"] for r in table["workers"]] == sorted(rows)
    assert set(rows) == {"w-a", "w-b", "w-c", "w-slow", "w-moved", "w-broken", "w-list", "w-refused"}  # no w-dead
    assert {w for w, r in rows.items() if r["status"] == "ok"} == {"w-a", "w-b", "w-c"}
    assert rows["w-a"].get("self") is True
    for worker_id in ("w-b", "w-c"):
        assert rows[worker_id]["partitions"] == peers["docs"][worker_id]["partitions"]
        assert rows[worker_id]["url"] == peers["urls"][worker_id]  # the registry's URL, the one asked
    assert "timed out" in rows["w-slow"]["reason"]
    assert "someone-else" in rows["w-moved"]["reason"]
    assert "500" in rows["w-broken"]["reason"]
    assert "not a JSON object" in rows["w-list"]["reason"]
    assert "refused" in rows["w-refused"]["reason"].lower()
    # what they add up to, recomputed here from the documents served
    answered = [own, peers["docs"]["w-b"], peers["docs"]["w-c"]]
    expected: dict[str, list[int]] = {}
    for doc in answered:
        for topic, parts in doc["partitions"].items():
            expected[topic] = sorted(expected.get(topic, []) + parts)
    assert table["partitions"] == expected == {"jobs.completed": [0, 1, 2, 3], "jobs.scored": [0, 1, 2, 3],
                                               "ratings.pairwise": []}
    assert table["unheld"] == {"jobs.completed": [], "jobs.scored": [], "ratings.pairwise": [0, 1]}
    assert table["lag_total"] == sum(n for doc in answered for lags in doc["lag"].values() for n in lags.values()) == 18
    assert (table["answered"], table["unreachable"]) == (3, 5)
    # peers are asked in parallel with a short timeout, and the loop kept running meanwhile
    assert took < SLOW_S - 0.5, f"the slow peer held the table for {took:.1f}s"
    assert ticks >= 5


def test_a_peer_that_cannot_tell_its_lag_makes_the_total_unknown(peers) -> None:
    own = worker_document("w-a", "x", Membership({"jobs.completed": [0]}, None, {"jobs.completed": 4}), {},
                          pid=os.getpid())
    entries = [e for e in registered_workers(peers["dir"]) if e.worker_id == "w-b"]

    async def main() -> dict[str, Any]:
        with ThreadPoolExecutor(2) as pool:
            return await gather_workers(own, entries, pool, timeout_s=TIMEOUT_S)

    table = asyncio.run(main())
    assert table["lag_total"] is None and table["answered"] == 2
    assert table["partitions"]["jobs.completed"] == [0, 1, 3]
    assert table["unheld"] == {"jobs.completed": [2]}  # w-b reports no count: own's 4 stands


def test_group_live_states_merge_every_answering_peer_and_name_the_silent_ones() -> None:
    from sentinel.buckets import live_snapshot
    from sentinel.latency import PARTS, LiveStats
    from worker.membership import WorkerEntry
    from worker.peers import gather_sketches

    def state(partition: int, offsets: range, ms: float) -> dict[str, Any]:
        stats = LiveStats()
        for o in offsets:
            stats.update(partition=partition, offset=o, parts_ms={p: ms + o for p in PARTS}, gpu_seconds=1.0, cost_usd=0.01)
        return {"bucket_s": 3600, "stats": stats.to_dict()}

    sketches = {"m|n|0|1": state(1, range(3), 100.0), "m|n|0|2": state(2, range(5), 200.0)}

    server, url = serve(sketches, path="/sentinel/sketches/")
    try:
        peers = [WorkerEntry("w-me", closed_port_url(), os.getpid(), "h"),  # itself: never asked
                 WorkerEntry("w-peer", url, os.getpid(), "h"),
                 WorkerEntry("w-gone", closed_port_url(), os.getpid(), "h")]
        with ThreadPoolExecutor(2) as pool:
            items, missing = asyncio.run(gather_sketches("w-me", peers, pool, timeout_s=TIMEOUT_S))
    finally:
        server.shutdown()
    assert missing == ["w-gone"]
    own = ("m|n|0|0", state(0, range(2), 50.0))
    merged = live_snapshot([own, *items], float("-inf"))[("m", "n")].compute()
    assert merged["jobs"] == 2 + 3 + 5
    assert merged["cost_usd"] == pytest.approx(0.01 * 10)
    # p50 over the 10 end-to-end latencies the three states hold, computed here
    want = np.percentile([50.0, 51.0, 100.0, 101.0, 102.0, 200.0, 201.0, 202.0, 203.0, 204.0], 50)
    assert merged["e2e_p50_ms"] == pytest.approx(want, rel=0.05)

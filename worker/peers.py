"""The live page's Workers table: every registered worker's ``/sentinel/worker/``, side by side.

Each peer is asked over HTTP with a short timeout, in threads (the event loop never waits on a
peer); a peer that does not answer, answers garbage or answers as another worker is a row with
status "unreachable" and the reason, never an error page. This worker's own row comes from its
own state, not over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from concurrent.futures import Executor
from typing import Any, Iterable

from worker.membership import WorkerEntry

PEER_TIMEOUT_S = 1.0


def fetch_peer(entry: WorkerEntry, timeout_s: float = PEER_TIMEOUT_S) -> dict[str, Any]:
    """The row of one peer (blocking: run it in a thread)."""
    base = {"worker_id": entry.worker_id, "url": entry.url, "pid": entry.pid}
    try:
        with urllib.request.urlopen(f"{entry.url.rstrip('/')}/sentinel/worker/", timeout=timeout_s) as response:
            doc = json.loads(response.read())
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except Exception as exc:  # refused, timed out, HTTP error, not JSON: the row says so
        return {**base, "status": "unreachable", "reason": f"{type(exc).__name__}: {exc}"}
    if doc.get("worker_id") != entry.worker_id:
        return {**base, "status": "unreachable",
                "reason": f"{entry.url} answers as worker {doc.get('worker_id')!r}"}
    return {**doc, **base, "status": "ok"}  # the URL and pid asked, as registered


async def gather_workers(own: dict[str, Any], peers: Iterable[WorkerEntry], pool: Executor,
                         timeout_s: float = PEER_TIMEOUT_S) -> dict[str, Any]:
    """The Workers table: this worker's document plus one row per other registered worker,
    fetched in parallel on ``pool``, and what they add up to."""
    loop = asyncio.get_running_loop()
    others = [e for e in peers if e.worker_id != own["worker_id"]]
    fetched = await asyncio.gather(*(loop.run_in_executor(pool, fetch_peer, e, timeout_s) for e in others))
    rows = sorted([{**own, "status": "ok", "self": True}, *fetched], key=lambda r: r["worker_id"])
    return {"generated_at": time.time(), "workers": rows, **summarize(rows)}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Across the workers that answered: partitions held per topic (sorted, a partition listed by
    two workers appears twice: a rebalance in flight), the partitions none of them holds (the
    topic's partition count as their consumers' metadata has it), the total lag (None if one of
    them could not tell) and how many answered."""
    answered = [r for r in rows if r.get("status") == "ok"]
    held: dict[str, list[int]] = {}
    for row in answered:
        for topic, parts in (row.get("partitions") or {}).items():
            held.setdefault(topic, []).extend(parts)
    lags = [r.get("lag_total") for r in answered]
    counts: dict[str, int] = {}
    for row in answered:
        for topic, n in (row.get("topic_partitions") or {}).items():
            if isinstance(n, int):
                counts[topic] = max(n, counts.get(topic, 0))
    return {
        "partitions": {topic: sorted(parts) for topic, parts in sorted(held.items())},
        # partitions no answering worker holds: nobody's lag covers them (an unreachable worker
        # may hold them, or the group has not reassigned them yet)
        "unheld": {topic: sorted(set(range(n)) - set(held.get(topic, ()))) for topic, n in sorted(counts.items())},
        "lag_total": None if any(n is None for n in lags) else sum(lags),
        "answered": len(answered), "unreachable": len(rows) - len(answered),
    }


def fetch_sketches(entry: WorkerEntry, timeout_s: float = PEER_TIMEOUT_S) -> dict[str, Any] | None:
    """A peer's live states of the partitions it holds (``/sentinel/sketches/``); None: no answer."""
    try:
        with urllib.request.urlopen(f"{entry.url.rstrip('/')}/sentinel/sketches/", timeout=timeout_s) as response:
            doc = json.loads(response.read())
    except Exception:  # noqa: BLE001 - an unreachable peer is reported by the caller as missing
        return None
    return doc if isinstance(doc, dict) else None


async def gather_sketches(own_id: str, peers: Iterable[WorkerEntry], pool: Executor,
                          timeout_s: float = PEER_TIMEOUT_S) -> tuple[list[tuple[str, Any]], list[str]]:
    """Every other registered worker's live states (key, value), and the ids that did not answer."""
    loop = asyncio.get_running_loop()
    others = [e for e in peers if e.worker_id != own_id]
    docs = await asyncio.gather(*(loop.run_in_executor(pool, fetch_sketches, e, timeout_s) for e in others))
    items = [item for doc in docs if doc is not None for item in doc.items()]
    return items, sorted(e.worker_id for e, doc in zip(others, docs) if doc is None)

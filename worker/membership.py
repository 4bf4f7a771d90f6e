"""Which input partitions this worker holds, how far behind each is, and the worker registry.

With several workers in one consumer group each holds a share of the input partitions; this
module answers "who holds what, and how far behind is it" for /metrics, ``/sentinel/worker/``
and the live page's Workers table.

Lag of a partition = its log end offset (highwater, asked from the broker: one ListOffsets
request for all held partitions) minus the consumer's *committed* offset (the commit protocol's
position, read through worker/delivery/overrides.py), never below 0. A partition with no
committed offset yet is sought to its earliest offset by the override, which then stands as its
committed offset; before that first seek the lag is unknown and the partition is left out of
``lag`` (it still shows in ``partitions``).

The registry: each worker writes ``<data_dir>/workers/<worker_id>.json`` ({worker_id, url, pid,
host}) at start (atomic replace) and removes it on a clean stop (:func:`announce`,
:func:`withdraw`, called by worker/main.py). Readers (:func:`registered_workers`) skip entries
whose process is gone on this host; a worker on another host, or one that lives but does not
answer, is judged by its web answer (worker/peers.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from contracts.topics import ALERTS, JOBS_COMPLETED, JOBS_SCORED, RATINGS
from worker.delivery import overrides

log = logging.getLogger(__name__)

INPUT_TOPICS = (JOBS_COMPLETED, JOBS_SCORED, RATINGS, ALERTS)
REGISTRY_DIR = "workers"


# -- partitions and lag ----------------------------------------------------------------------

def consumer_lag(ends: Mapping[Any, int | None], committed: Mapping[Any, int | None]) -> dict[tuple[str, int], int]:
    """Records behind the log end per partition: log end offset minus committed offset (never
    below 0). A partition with no known end or committed offset (not sought yet) is left out."""
    out = {}
    for tp, end in ends.items():
        at = committed.get(tp)
        if end is not None and at is not None:
            out[(tp.topic, tp.partition)] = max(0, end - at)
    return out


async def read_consumer_lag(consumer: Any, tracks: Callable[[str], bool],
                            timeout_s: float = 5.0) -> dict[tuple[str, int], int] | None:
    """The consumer lag of every assigned partition of a topic ``tracks`` accepts (the input
    topics); None when the consumer cannot tell now (not started, rebalancing, broker unreachable)."""
    held = await read_membership(consumer, tracks, timeout_s)
    return held.flat_lag()


@dataclass(frozen=True)
class Membership:
    """What one worker holds now: partitions per input topic, the lag of each (None: unknown),
    and how many partitions each topic has (the consumer's cluster metadata; None: not known yet)."""

    partitions: dict[str, list[int]]
    lag: dict[str, dict[int, int]] | None
    topic_partitions: dict[str, int | None] = field(default_factory=dict)

    def flat_lag(self) -> dict[tuple[str, int], int] | None:
        if self.lag is None:
            return None
        return {(topic, p): n for topic, lags in self.lag.items() for p, n in lags.items()}

    def total_lag(self) -> int | None:
        return None if self.lag is None else sum(n for lags in self.lag.values() for n in lags.values())


def _assigned(consumer: Any, tracks: Callable[[str], bool]) -> list[Any] | None:
    try:
        return sorted((tp for tp in consumer.assignment() if tracks(tp.topic)), key=lambda tp: (tp.topic, tp.partition))
    except Exception as exc:  # not started yet: nothing is held
        log.debug("assignment unknown: %s: %s", type(exc).__name__, exc)
        return None


async def read_membership(consumer: Any, tracks: Callable[[str], bool], timeout_s: float = 5.0) -> Membership:
    """The partitions ``consumer`` holds of each input topic ``tracks`` accepts (every such topic
    present, [] when none) and their lags, from one read of the assignment."""
    topics = [t for t in INPUT_TOPICS if tracks(t)]
    tps = _assigned(consumer, tracks)
    partitions: dict[str, list[int]] = {t: [] for t in topics}
    for tp in tps or ():
        partitions.setdefault(tp.topic, []).append(tp.partition)
    counts = {t: _topic_partitions(consumer, t) for t in partitions}
    if tps is None:
        return Membership(partitions, None, counts)
    if not tps:
        return Membership(partitions, {t: {} for t in partitions}, counts)
    try:
        ends = await asyncio.wait_for(consumer.highwaters(*tps), timeout_s)
    except Exception as exc:  # a scrape must answer; the lags are left out instead
        log.debug("consumer lag unknown: %s: %s", type(exc).__name__, exc)
        return Membership(partitions, None, counts)
    flat = consumer_lag(ends, {tp: overrides.committed_offset(consumer, tp) for tp in tps})
    lag: dict[str, dict[int, int]] = {t: {} for t in partitions}
    for (topic, p), n in sorted(flat.items()):
        lag[topic][p] = n
    return Membership(partitions, lag, counts)


def _topic_partitions(consumer: Any, topic: str) -> int | None:
    try:
        n = overrides.topic_partition_count(consumer, topic)
    except Exception:  # not started: unknown
        return None
    return n if isinstance(n, int) else None


def worker_document(worker_id: str, url: str, held: Membership, counters: Mapping[str, float],
                    pid: int | None = None) -> dict[str, Any]:
    """The JSON of ``/sentinel/worker/`` (lag keys are partition numbers as strings, as JSON has it)."""
    return {
        "worker_id": worker_id, "url": url, "pid": os.getpid() if pid is None else pid,
        "partitions": held.partitions,
        "lag": None if held.lag is None else {t: {str(p): n for p, n in lags.items()} for t, lags in held.lag.items()},
        "lag_total": held.total_lag(), "topic_partitions": held.topic_partitions,
        "consumed": counters.get("consumed", 0), "scored": counters.get("scored", 0),
        "dead_lettered": counters.get("dead_lettered", 0),
    }


# -- the registry ----------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkerEntry:
    worker_id: str
    url: str
    pid: int
    host: str


def registry_dir(data_dir: Path) -> Path:
    return Path(data_dir) / REGISTRY_DIR


def entry_path(data_dir: Path, worker_id: str) -> Path:
    """``<data_dir>/workers/<worker_id>.json``; characters other than letters, digits, ``._-``
    become ``_`` (a worker id is no path)."""
    return registry_dir(data_dir) / f"{re.sub(r'[^A-Za-z0-9._-]', '_', worker_id)}.json"


def announce(data_dir: Path, worker_id: str, url: str, pid: int | None = None) -> Path:
    """Register this worker: the entry is written to a temporary file and renamed over the old
    one, so a reader sees the old entry or the new one, never half of one."""
    entry = WorkerEntry(worker_id, url, os.getpid() if pid is None else pid, socket.gethostname())
    path = entry_path(data_dir, worker_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{entry.pid}.tmp")
    try:
        tmp.write_text(json.dumps(asdict(entry)))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def withdraw(data_dir: Path, worker_id: str, pid: int | None = None) -> None:
    """Remove the entry if this process (``pid``) wrote it: a newer worker's entry stays."""
    path = entry_path(data_dir, worker_id)
    entry = _read(path)
    if entry is not None and entry.pid == (os.getpid() if pid is None else pid):
        path.unlink(missing_ok=True)


def registered_workers(data_dir: Path) -> list[WorkerEntry]:
    """Every registered worker whose process may live, by worker id: an entry of this host whose
    pid is gone (or a zombie) is skipped; unreadable files are skipped."""
    folder = registry_dir(data_dir)
    here = socket.gethostname()
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        entry = _read(path)
        if entry is not None and (entry.host != here or pid_alive(entry.pid)):
            out.append(entry)
    return sorted(out, key=lambda e: e.worker_id)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet still answers kill(0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _read(path: Path) -> WorkerEntry | None:
    try:
        data = json.loads(path.read_text())
        return WorkerEntry(str(data["worker_id"]), str(data["url"]), int(data["pid"]), str(data.get("host", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None

"""What Faust and the warehouse look like to an agent, for driving agents without a broker:
weak-referenceable events, a stream of batches, topics that acknowledge at once, a recording
warehouse."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa

from contracts.topics import JOBS_COMPLETED
from sentinel.offsets import CommitLedger
from worker.delivery.commit import CommitProtocol


class Event:
    """What Faust hands an agent (weak-referenceable, like faust's Event)."""

    def __init__(self, value: bytes, partition: int, offset: int, topic: str = JOBS_COMPLETED, key: Any = b"k") -> None:
        self.value, self.key = value, key
        self.message = SimpleNamespace(topic=topic, partition=partition, offset=offset)


class Stream:
    def __init__(self, batches): self.batches = batches

    async def take_events(self, n, within):
        for batch in self.batches:
            yield batch


class Topic:
    def __init__(self): self.sent = []

    async def send(self, *, key, value, headers, force):
        self.sent.append((key, value, headers))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class Warehouse:
    """Records every insert (no dedup: a second insert is a second copy, as a re-read batch with
    another token is in ClickHouse) and answers the worker's two lookups from what was inserted:
    ``stored_copies`` (the earliest row per job id) and ``stored_scores``. ``down``: that many
    calls fail first (an outage)."""

    def __init__(self):
        self.inserts: list[tuple[str, pa.Table]] = []
        self.queries: list[str] = []
        self.down = 0

    def _outage(self):
        if self.down:
            self.down -= 1
            raise ConnectionError("ClickHouse is down")

    def insert(self, table, rows, token):
        self._outage()
        self.inserts.append((table, rows))

    def rows(self, table: str) -> list[dict]:
        return [r for t, rows in self.inserts if t == table for r in rows.to_pylist()]

    def query(self, sql, params):
        import sql as sql_files

        self._outage()
        self.queries.append(sql)
        if sql == sql_files.report("stored_scores"):
            ids, versions = set(params["job_ids"]), set(params["scorer_versions"])
            keys = sorted({(r["job_id"], r["scorer_version"]) for r in self.rows("sentinel.scores")
                           if r["job_id"] in ids and r["scorer_version"] in versions})
            return pa.table({"job_id": [k[0] for k in keys], "scorer_version": [k[1] for k in keys]},
                            schema=pa.schema([("job_id", pa.string()), ("scorer_version", pa.string())]))
        assert sql == sql_files.report("stored_copies"), sql
        first: dict[str, dict] = {}
        for r in self.rows("sentinel.jobs"):
            if r["job_id"] in params["job_ids"]:
                first.setdefault(r["job_id"], r)
        rows = list(first.values())
        return pa.table({"job_id": pa.array([r["job_id"] for r in rows], pa.string()),
                         "source_partition": pa.array([r["source_partition"] for r in rows], pa.uint32()),
                         "source_offset": pa.array([r["source_offset"] for r in rows], pa.uint64()),
                         "content_hash": pa.array([r["content_hash"] for r in rows], pa.string())})


class Moments:
    def __init__(self): self.applied = []

    def apply(self, version, items, committed): self.applied.extend(items)


def ledger_for(topic: str, readers: Sequence[str], starts: Mapping[int, int] | None = None) -> CommitLedger:
    """A commit ledger of ``readers`` on ``topic``, started at ``starts`` (partition -> offset; default 0@0)."""
    ledger = CommitLedger({topic: list(readers)})
    ledger.reset({(topic, p): o for p, o in (starts or {0: 0}).items()})
    return ledger


def protocol_with(ledger: CommitLedger | None) -> CommitProtocol:
    protocol = CommitProtocol()
    protocol.ledger = ledger
    return protocol


def ledger_from(start: int, finished_by: Mapping[str, Iterable[int]], topic: str = JOBS_COMPLETED,
                readers: Sequence[str] = ("archive", "score", "tally")) -> CommitLedger:
    """Partition 0 started at ``start``, with each reader's finished offsets."""
    ledger = ledger_for(topic, readers, {0: start})
    for reader, offsets in finished_by.items():
        for o in offsets:
            ledger.finish(reader, topic, 0, o)
    return ledger

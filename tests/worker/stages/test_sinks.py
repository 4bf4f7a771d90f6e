"""The archive (worker/stages/sinks.py ArchiveStage) with the gate's stored offsets
(worker/stages/gate.py StoredOffsets): every kept job's rows inserted once, whatever the batch
boundaries of a re-read, across a crash between insert and commit, and across a partition that
went to another worker and came back.

The warehouse is the recording fake of tests/worker_fakes.py: it keeps every insert (a second
insert is a second copy, as in ClickHouse with another dedup token) and answers the gate's
``stored_copies`` lookup from them. Counts are taken from its rows, by job id.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from conftest import make_event
from worker.delivery.retry import NotRetried
from worker.metrics import WorkerMetrics
from worker.stages.gate import OK, Gate, stored_copies
from worker.stages.sinks import ArchiveStage
from worker.stages.triage import Accepted
from worker_fakes import Warehouse

EVENTS = [make_event(i, seed=3) for i in range(12)]


class Worker:
    """One worker process: its gate (judging partition 0 in log order from ``start``) and its archive."""

    def __init__(self, warehouse: Warehouse, max_jobs: int = 200_000, start: int = 0) -> None:
        self.rt = SimpleNamespace(warehouse=warehouse, metrics=WorkerMetrics(), sink_pool=ThreadPoolExecutor(1))
        self.gate = Gate(lambda ids: stored_copies(warehouse, ids), max_jobs=max_jobs)
        self.gate.restart({0: start})
        self.archive = ArchiveStage(self.rt, self.gate.stored)

    def judge(self, offsets: range) -> list[Accepted]:
        verdicts = self.gate.judge([(0, o, EVENTS[o]) for o in offsets])
        assert [v.kind for v in verdicts] == [OK] * len(offsets)  # re-delivered first copies are themselves
        return [Accepted(EVENTS[o], 0, o) for o in offsets]

    def process(self, *batches: range) -> None:
        for offsets in batches:
            asyncio.run(self.archive(self.judge(offsets)))


def stored_per_job(warehouse: Warehouse, table: str = "sentinel.jobs") -> Counter:
    return Counter(r["job_id"] for r in warehouse.rows(table))


ONCE = Counter({e["job_id"]: 1 for e in EVENTS})


def test_re_reads_with_other_batch_boundaries_insert_nothing_again() -> None:
    wh = Warehouse()
    w = Worker(wh)
    w.process(range(0, 5), range(5, 12))
    lookups = len(wh.queries)
    w.process(range(3, 9), range(0, 12), range(11, 12))  # the hole healer, a rebalance: cut differently
    assert stored_per_job(wh) == ONCE
    assert stored_per_job(wh, "sentinel.job_images") == ONCE
    assert len(wh.queries) == lookups == 2  # re-reads answered from memory: no lookup
    assert w.rt.metrics.summary()["sink_retries"] == 0


def test_a_crash_after_the_insert_and_before_the_commit_skips_the_stored_rows() -> None:
    wh = Warehouse()
    Worker(wh).process(range(0, 8))  # stored, then SIGKILL: nothing committed
    w = Worker(wh)  # the restarted process: empty memories, reads from the committed offset 0
    w.process(range(0, 3), range(3, 12))
    assert stored_per_job(wh) == ONCE
    assert [r["source_offset"] for r in wh.rows("sentinel.jobs")] == list(range(12))


def test_a_crash_before_the_insert_inserts_once_and_an_outage_is_waited_out() -> None:
    wh = Warehouse()
    Worker(wh).judge(range(0, 6))  # judged, never stored
    w = Worker(wh)
    kept = w.judge(range(0, 6))
    wh.down = 1  # the insert fails once: retried with the same rows
    asyncio.run(w.archive(kept))
    w.process(range(4, 12))
    assert stored_per_job(wh) == ONCE
    assert w.rt.metrics.summary()["sink_retries"] == 1


def test_a_partition_back_from_another_worker_is_looked_up_again() -> None:
    """Worker a judged 0..5 (verdicts cached) but lost the partition before storing them; worker b
    stored them without committing; the partition comes back to a, which re-reads from the
    committed offset: its cached verdicts say nothing about what b stored, so the archive looks
    them up (waiting out an outage) and skips them."""
    wh = Warehouse()
    a, b = Worker(wh), Worker(wh)
    kept = a.judge(range(0, 6))
    b.process(range(0, 6))
    a.gate.restart({0: 0})  # assigned again: seek to the committed offset
    wh.down = 1  # the archive's lookup fails once
    asyncio.run(a.archive(kept))
    a.process(range(6, 12))
    assert stored_per_job(wh) == ONCE
    assert a.rt.metrics.summary()["sink_retries"] == 1


def test_offsets_forgotten_by_the_bounded_memory_are_looked_up() -> None:
    wh = Warehouse()
    w = Worker(wh, max_jobs=4)
    w.process(range(0, 6), range(6, 12))
    before = len(wh.queries)
    w.process(range(0, 12))
    assert stored_per_job(wh) == ONCE
    assert len(wh.queries) == before + 1  # one batched lookup for the 8 offsets no longer in memory
    assert len(w.gate.stored._stored) <= 4


@pytest.mark.parametrize("cut", [1, 5, 12])
def test_without_stored_offsets_the_archive_inserts_every_kept_job(cut: int) -> None:
    """``stored=None`` (no gate): every call inserts (the old behaviour, kept for tools)."""
    wh = Warehouse()
    rt = SimpleNamespace(warehouse=wh, metrics=WorkerMetrics(), sink_pool=ThreadPoolExecutor(1))
    archive = ArchiveStage(rt)
    kept = [Accepted(EVENTS[o], 0, o) for o in range(cut)]
    asyncio.run(archive(kept))
    asyncio.run(archive(kept))
    assert sum(stored_per_job(wh).values()) == 2 * cut


def test_a_lookup_that_started_before_a_restart_notes_nothing_absent() -> None:
    """The partitions moved while the gate's lookup ran (a rebalance on the event loop, the lookup
    in the gate's thread): its "not stored" may be stale, so the archive asks again."""
    wh = Warehouse()
    w = Worker(wh)
    calls = []

    def lookup_during_a_rebalance(ids):
        calls.append(ids)
        if len(calls) == 1:
            w.gate.restart({0: 0})
            Worker(wh).process(range(0, 3))  # meanwhile another worker stores 0..2
        return stored_copies(wh, ids)

    w.gate.lookup = w.gate.stored.lookup = lookup_during_a_rebalance
    kept = w.judge(range(0, 6))
    asyncio.run(w.archive(kept))
    assert len(calls) == 2  # the gate's lookup, then the archive's
    assert stored_per_job(wh) == Counter({e["job_id"]: 1 for e in EVENTS[:6]})


def test_rows_that_cannot_be_built_fail_the_batch_at_once_instead_of_retrying() -> None:
    """An outage is waited out; a row the code cannot build would fail every retry the same way."""
    w = Worker(Warehouse())
    kept = w.judge(range(0, 3))
    kept[1] = Accepted({**EVENTS[1], "gpu_seconds": "not a number"}, 0, 1)
    with pytest.raises(NotRetried, match="building rows failed") as caught:
        asyncio.run(asyncio.wait_for(w.archive(kept), 10))
    assert caught.value.__cause__ is not None
    assert stored_per_job(w.rt.warehouse) == Counter() and w.rt.metrics.summary()["sink_retries"] == 0

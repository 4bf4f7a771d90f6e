"""warehouse/journal.py on a real chDB store: an insert torn by a kill (the base table stored,
some rollup views not) is completed when the store is opened again, with nothing doubled;
an insert that returned leaves no entry, one that failed stays for the next open."""

from __future__ import annotations

import pyarrow as pa
import pytest

from conftest import make_event
from warehouse import rows as row_builders
from warehouse.client import ClickHouseWarehouse, migrate
from warehouse.journal import InsertJournal

N = 40


def _one(w: ClickHouseWarehouse, sql: str) -> dict:
    return w.query(sql).to_pylist()[0]


def _rollups(w: ClickHouseWarehouse) -> dict:
    hourly = _one(w, "SELECT sum(j) AS jobs, sum(g) AS gpu FROM (SELECT uniqExactMerge(jobs) AS j, "
                     "sumMerge(gpu_seconds) AS g FROM sentinel.jobs_hourly GROUP BY hour, model_id, niche, provider, gpu_type)")
    return {"jobs": _one(w, "SELECT count() AS n FROM sentinel.jobs")["n"],
            "hourly_jobs": hourly["jobs"], "hourly_gpu": hourly["gpu"],
            "report_jobs": _one(w, "SELECT count() AS n FROM sentinel.report_jobs")["n"],
            "report_hourly": _one(w, "SELECT sum(attempts) AS n FROM sentinel.report_jobs_hourly")["n"]}


def test_a_torn_insert_is_completed_when_the_store_is_opened_again(tmp_path) -> None:
    events = [make_event(i) for i in range(N)]
    table = row_builders.job_rows([(e, 0, i) for i, e in enumerate(events)])
    path = tmp_path / "chdb"
    w = ClickHouseWarehouse(f"chdb://{path}")
    try:
        migrate(w)
        # the state a kill leaves mid-insert: the jobs part and some view targets written, two not
        w.command("DETACH TABLE sentinel.jobs_hourly_mv")
        w.command("DETACH TABLE sentinel.report_jobs_mv")
        w.journal.begin("sentinel.jobs", table, "tok-torn")
        w.writer.insert_arrow("sentinel.jobs", table, settings={"insert_deduplication_token": "tok-torn"})
        w.command("ATTACH TABLE sentinel.jobs_hourly_mv")
        w.command("ATTACH TABLE sentinel.report_jobs_mv")
        torn = _rollups(w)
        assert torn["jobs"] == N and torn["report_hourly"] == N  # stored before the "kill"
        assert not torn["hourly_jobs"] and torn["report_jobs"] == 0  # missed
    finally:
        w.close()

    w = ClickHouseWarehouse(f"chdb://{path}")  # the owner starts again
    try:
        migrate(w)
        got = _rollups(w)
    finally:
        w.close()
    gpu = sum(e["gpu_seconds"] for e in events)
    assert got == {"jobs": N, "hourly_jobs": N, "hourly_gpu": pytest.approx(gpu, rel=1e-12), "report_jobs": N,
                   "report_hourly": N}  # the missed views filled, the stored ones not doubled
    assert InsertJournal(w.journal.root).pending() == []


def test_only_a_kill_leaves_an_entry_and_a_replay_that_fails_is_set_aside(tmp_path) -> None:
    w = ClickHouseWarehouse(f"chdb://{tmp_path / 'chdb'}")
    try:
        w.command("CREATE DATABASE IF NOT EXISTS sentinel ENGINE = Atomic")
        w.command("CREATE TABLE sentinel.t (x UInt8) ENGINE = MergeTree ORDER BY x "
                  "SETTINGS non_replicated_deduplication_window = 100")
        rows = pa.table({"x": pa.array([1, 2, 3], pa.uint8())})
        w.insert("sentinel.t", rows, "tok-1")
        w.insert("sentinel.t", rows)  # no token: nothing a replay could deduplicate, so no entry
        with pytest.raises(Exception):
            w.insert("sentinel.missing", rows, "tok-2")  # raised: the caller retries it, no entry
        assert w.journal.pending() == []
        # what kills leave: an insert begun and never returned, one into a table since dropped,
        # and a half-written entry (killed inside begin(): that insert never started)
        w.journal.begin("sentinel.t", rows, "tok-3")
        w.journal.begin("sentinel.gone", rows, "tok-4")
        (w.journal.root / "half-written.tmp").write_bytes(b"\x00")
        [(_, table, kept, token), _] = sorted(w.journal.pending(), key=lambda e: e[3])
        assert (table, token) == ("sentinel.t", "tok-3") and kept.equals(rows)
        assert w.replay_torn_inserts() == 1  # the start goes on past the one that fails
        assert w.query("SELECT sum(x) AS s FROM sentinel.t").column("s").to_pylist() == [18]  # 6 x 3 inserts
        assert w.replay_torn_inserts() == 0  # replayed once; tok-3 again would be dropped anyway
        assert sorted(p.suffix for p in w.journal.root.iterdir()) == [".failed"]
    finally:
        w.close()


class _Recording(InsertJournal):
    def __init__(self, root) -> None:
        super().__init__(root)
        self.begun: list[str] = []

    def begin(self, table: str, rows: pa.Table, token: str):
        self.begun.append(table)
        return super().begin(table, rows, token)


def test_only_inserts_that_feed_views_are_journaled(tmp_path) -> None:
    """A part on its own is atomic: a table without materialized views needs no journal (the
    copy to a file cost about a sixth of a 63 MB moment-state insert). A view created later
    (any command) makes its source journaled from then on."""
    w = ClickHouseWarehouse(f"chdb://{tmp_path / 'chdb'}")
    try:
        w.command("CREATE DATABASE IF NOT EXISTS sentinel ENGINE = Atomic")
        w.command("CREATE TABLE sentinel.t (x UInt8) ENGINE = MergeTree ORDER BY x")
        w.command("CREATE TABLE sentinel.v (x UInt8) ENGINE = MergeTree ORDER BY x")
        w.journal = _Recording(w.journal.root)
        rows = pa.table({"x": pa.array([1, 2, 3], pa.uint8())})
        w.insert("sentinel.t", rows, "tok-1")
        assert w.journal.begun == []
        w.command("CREATE MATERIALIZED VIEW sentinel.t_mv TO sentinel.v AS SELECT x FROM sentinel.t")
        w.insert("sentinel.t", rows, "tok-2")
        w.insert("sentinel.v", rows, "tok-3")
        assert w.journal.begun == ["sentinel.t"]
        assert w.query("SELECT sum(x) AS s FROM sentinel.v").column("s").to_pylist() == [12]
        assert w.journal.pending() == []
    finally:
        w.close()

"""warehouse/journal.py and warehouse/repair.py on a real chDB store: an insert a kill cut short
(the base table stored and some rollup views not, or a block id logged without its rows) is
completed when the store is opened again, with nothing doubled, and the worker's own retry
afterwards changes nothing; an insert that returned leaves no entry, one that failed stays for
the next open, one that cannot be mended is set aside and the store still opens."""

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
        w.insert("sentinel.jobs", table, "tok-torn")  # the worker's retry of the insert it never saw return
        again = _rollups(w)
    finally:
        w.close()
    gpu = sum(e["gpu_seconds"] for e in events)
    want = {"jobs": N, "hourly_jobs": N, "hourly_gpu": pytest.approx(gpu, rel=1e-12), "report_jobs": N,
            "report_hourly": N}
    assert got == want and again == want  # the missed views filled, the stored ones not doubled
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


def test_a_block_id_logged_without_its_rows_is_mended(tmp_path) -> None:
    """The state a kill between ClickHouse's deduplication log and the part's rename leaves:
    the token is taken as stored, the rows are not there (made here with lightweight DELETEs,
    which keep the deduplication memory, in the base table and in one view's target). Inserting
    again with the token is dropped; the repair finds the base rows by key and rebuilds the
    views, and the worker's own retry with the token afterwards still changes nothing."""
    events = [make_event(i) for i in range(N)]
    table = row_builders.job_rows([(e, 0, i) for i, e in enumerate(events)])
    lost = [e["job_id"] for e in events[:5]]
    path = tmp_path / "chdb"
    w = ClickHouseWarehouse(f"chdb://{path}")
    try:
        migrate(w)
        w.insert("sentinel.jobs", table, "tok-orphan")
        w.command("DELETE FROM sentinel.jobs_hourly WHERE true")
        w.command("DELETE FROM sentinel.jobs WHERE job_id IN {ids:Array(String)}", {"ids": lost})
        w.insert("sentinel.jobs", table, "tok-orphan")  # again with the token (all a replay did before): dropped
        w.journal.begin("sentinel.jobs", table, "tok-orphan")  # the insert the kill cut short
        short = _rollups(w)
        assert short["jobs"] == N - len(lost) and not short["hourly_jobs"]
    finally:
        w.close()

    w = ClickHouseWarehouse(f"chdb://{path}")
    try:
        migrate(w)
        got = _rollups(w)
        w.insert("sentinel.jobs", table, "tok-orphan")  # the worker's retry reaches every table again
        again = _rollups(w)
        ids = w.query("SELECT job_id FROM sentinel.jobs ORDER BY job_id").column("job_id").to_pylist()
    finally:
        w.close()
    gpu = sum(e["gpu_seconds"] for e in events)
    want = {"jobs": N, "hourly_jobs": N, "hourly_gpu": pytest.approx(gpu, rel=1e-12), "report_jobs": N,
            "report_hourly": N}
    assert got == want and again == want
    assert ids == sorted(e["job_id"] for e in events)  # each job once
    assert InsertJournal(w.journal.root).pending() == []


def test_a_table_without_views_is_mended_by_key_and_version(tmp_path) -> None:
    """A moment-state-like table (ReplacingMergeTree(version), a LowCardinality and a DateTime
    in the key): the journaled rows the store lacks go in again, among them a later version of
    a stored key; the one it holds does not go in twice."""
    w = ClickHouseWarehouse(f"chdb://{tmp_path / 'chdb'}")
    try:
        w.command("CREATE DATABASE IF NOT EXISTS sentinel ENGINE = Atomic")
        w.command("CREATE TABLE sentinel.m (model LowCardinality(String), bucket DateTime('UTC'), v UInt64, x Float64) "
                  "ENGINE = ReplacingMergeTree(v) ORDER BY (model, bucket) SETTINGS non_replicated_deduplication_window = 100")
        t0 = pa.array([1_790_000_000, 1_790_000_300, 1_790_000_000], pa.int64()).cast(pa.timestamp("s"))  # naive
        rows = pa.table({"model": ["a", "a", "b"], "bucket": t0, "v": pa.array([7, 7, 3], pa.uint64()),
                         "x": [1.0, 2.0, 3.0]})
        w.insert("sentinel.m", pa.table({"model": ["b"], "bucket": t0.slice(2), "v": pa.array([2], pa.uint64()),
                                         "x": [0.5]}))  # (b, t) at an older version
        w.insert("sentinel.m", rows, "tok-m")
        w.command("DELETE FROM sentinel.m WHERE x >= 2")  # the block id stays, two of its rows gone
        w.journal.begin("sentinel.m", rows, "tok-m")
        assert w.replay_torn_inserts() == 1
        got = w.query("SELECT model, toUnixTimestamp(bucket) AS t, v, x FROM sentinel.m ORDER BY model, t, v").to_pylist()
    finally:
        w.close()
    assert [tuple(r.values()) for r in got] == [("a", 1_790_000_000, 7, 1.0), ("a", 1_790_000_300, 7, 2.0),
                                                ("b", 1_790_000_000, 2, 0.5), ("b", 1_790_000_000, 3, 3.0)]


def test_insert_missing_compares_the_whole_sorting_key(tmp_path) -> None:
    from warehouse.repair import insert_missing

    w = ClickHouseWarehouse(f"chdb://{tmp_path / 'chdb'}")
    try:
        w.command("CREATE DATABASE IF NOT EXISTS sentinel ENGINE = Atomic")
        w.command("CREATE TABLE sentinel.k (a String, b String, x UInt8) ENGINE = MergeTree ORDER BY (a, b)")
        w.insert("sentinel.k", pa.table({"a": ["j1", "j1", "j2"], "b": ["v1", "v2", "v1"], "x": pa.array([1, 2, 3], pa.uint8())}))
        rows = pa.table({"a": ["j1", "j1", "j2", "j3"], "b": ["v1", "v3", "v1", "v1"], "x": pa.array([1, 2, 3, 4], pa.uint8())})
        assert insert_missing(w, "sentinel.k", rows) == 2
        got = w.query("SELECT a, b, x FROM sentinel.k ORDER BY a, b").to_pylist()
        tables = w.query("SELECT name FROM system.tables WHERE database = 'sentinel'").column("name").to_pylist()
    finally:
        w.close()
    assert [tuple(r.values()) for r in got] == [("j1", "v1", 1), ("j1", "v2", 2), ("j1", "v3", 2), ("j2", "v1", 3),
                                                ("j3", "v1", 4)]
    assert tables == ["k"]  # the staging table is gone


def test_a_moment_state_rewritten_under_the_same_version_is_mended(tmp_path) -> None:
    """A late record changes a moment state's sums and keeps its key and last_offset: the
    stored older state must not pass for the journaled one."""
    w = ClickHouseWarehouse(f"chdb://{tmp_path / 'chdb'}")
    try:
        w.command("CREATE DATABASE IF NOT EXISTS sentinel ENGINE = Atomic")
        w.command("CREATE TABLE sentinel.s (k String, v UInt64, n UInt32, total Array(Float64), g Nullable(Float64)) "
                  "ENGINE = ReplacingMergeTree(v) ORDER BY k SETTINGS non_replicated_deduplication_window = 100")
        older = pa.table({"k": ["K"], "v": pa.array([100], pa.uint64()), "n": pa.array([3], pa.uint32()),
                          "total": [[1.0, 2.0]], "g": pa.array([None], pa.float64())})
        newer = pa.table({"k": ["K"], "v": pa.array([100], pa.uint64()), "n": pa.array([4], pa.uint32()),
                          "total": [[1.5, 2.0]], "g": pa.array([None], pa.float64())})
        w.insert("sentinel.s", older, "tok-old")
        w.insert("sentinel.s", newer, "tok-new")
        w.command("DELETE FROM sentinel.s WHERE n = 4")  # tok-new's id kept, its row gone
        w.journal.begin("sentinel.s", newer, "tok-new")
        w.journal.begin("sentinel.s", older, "tok-old")  # stored, NULL and all: not inserted twice
        assert w.replay_torn_inserts() == 2
        got = w.query("SELECT n, total FROM sentinel.s ORDER BY n").to_pylist()
        final = w.query("SELECT n FROM sentinel.s FINAL").column("n").to_pylist()
    finally:
        w.close()
    assert got == [{"n": 3, "total": [1.0, 2.0]}, {"n": 4, "total": [1.5, 2.0]}]
    assert final == [4]  # the last insert of a version wins under FINAL


def test_what_cannot_be_mended_is_set_aside_and_the_store_opens(tmp_path) -> None:
    """Rows without their table's first key column, and a table whose view target another view
    writes too (a rebuild would delete that view's rows): both set aside, nothing fatal."""
    w = ClickHouseWarehouse(f"chdb://{tmp_path / 'chdb'}")
    try:
        w.command("CREATE DATABASE IF NOT EXISTS sentinel ENGINE = Atomic")
        w.command("CREATE TABLE sentinel.a (k String, x UInt8) ENGINE = MergeTree ORDER BY k")
        w.command("CREATE TABLE sentinel.b (k String, x UInt8) ENGINE = MergeTree ORDER BY k")
        w.command("CREATE TABLE sentinel.t (x UInt8) ENGINE = MergeTree ORDER BY x")
        w.command("CREATE MATERIALIZED VIEW sentinel.a_mv TO sentinel.t AS SELECT x FROM sentinel.a")
        w.command("CREATE MATERIALIZED VIEW sentinel.b_mv TO sentinel.t AS SELECT x FROM sentinel.b")
        rows = pa.table({"k": ["j1"], "x": pa.array([7], pa.uint8())})
        w.insert("sentinel.b", rows)
        w.journal.begin("sentinel.a", rows, "tok-a")  # t is fed by a_mv and b_mv: no rebuild
        w.journal.begin("sentinel.b", rows.select(["x"]), "tok-b")  # no k: cannot be compared
        assert w.replay_torn_inserts() == 0
        kept = sorted(p.suffix for p in w.journal.root.iterdir())
        t = w.query("SELECT x FROM sentinel.t ORDER BY x").column("x").to_pylist()
        tables = w.query("SELECT name FROM system.tables WHERE database = 'sentinel' ORDER BY name").column("name")
    finally:
        w.close()
    assert kept == [".failed", ".failed"]
    assert t == [7, 7, 7]  # b's row, a's replayed row, b's replayed row (inserted before the check): nothing deleted
    assert tables.to_pylist() == ["a", "a_mv", "b", "b_mv", "t"]  # no staging table left


def test_repair_slots_take_plain_column_names_only() -> None:
    import sql as sql_files

    [statement] = sql_files.template("unstage")
    assert "{database:Identifier}" in statement
    with pytest.raises(ValueError):
        sql_files.template("count_missing", columns=["a`; DROP TABLE x; --"], first=["a"])
    with pytest.raises(ValueError):
        sql_files.template("count_missing", columns=[], first=["a"])
    with pytest.raises(KeyError):
        sql_files.template("count_missing", columns=["a"])
    [count] = sql_files.template("count_missing", columns=["a", "b"], first=["a"])
    assert "cityHash64(tuple(`a`, `b`))" in count and "WHERE `a` IN" in count


def test_a_journaled_insert_is_read_from_the_journal_file_once(tmp_path) -> None:
    """chDB reads the journal's Arrow file (templates/insert_file.sql): the rows arrive as
    inserted (a quote in the store's path included), and the same token again is dropped."""
    store = tmp_path / "it's a store"
    w = ClickHouseWarehouse(f"chdb://{store}")
    try:
        w.command("CREATE DATABASE IF NOT EXISTS sentinel ENGINE = Atomic")
        w.command("CREATE TABLE sentinel.f (k String, t DateTime64(3, 'UTC'), v Array(Float64), n Nullable(UInt32)) "
                  "ENGINE = MergeTree ORDER BY k SETTINGS non_replicated_deduplication_window = 100")
        rows = pa.table({"k": ["a", "b"], "t": pa.array([1_790_000_000_123, 1_790_000_000_456], pa.timestamp("ms", "UTC")),
                         "v": [[0.1, 0.2], []], "n": pa.array([None, 7], pa.uint32())})
        w.insert("sentinel.f", rows, "tok-f")
        w.insert("sentinel.f", rows, "tok-f")
        got = w.query("SELECT k, toUnixTimestamp64Milli(t) AS t, v, n FROM sentinel.f ORDER BY k").to_pylist()
    finally:
        w.close()
    assert got == [{"k": "a", "t": 1_790_000_000_123, "v": [0.1, 0.2], "n": None},
                   {"k": "b", "t": 1_790_000_000_456, "v": [], "n": 7}]


def test_several_entries_of_two_tables_rebuild_each_view_once(tmp_path, caplog) -> None:
    """Two torn job batches and a torn score batch, each leaving its block id without rows in a
    rollup: one repair fills both, rebuilds each view once, and the retries change nothing."""
    import logging
    from datetime import timedelta

    events = [make_event(i) for i in range(2 * N)]
    batches = [row_builders.job_rows([(e, 0, i) for i, e in enumerate(events[:N])]),
               row_builders.job_rows([(e, 0, N + i) for i, e in enumerate(events[N:])])]
    scores = row_builders.score_rows([
        {"job_id": e["job_id"], "scorer_version": "v1", "model_id": e["model_id"], "niche": e["niche"],
         "scored_at": e["delivered_at"] + timedelta(milliseconds=5), "clip_prompt_score": 20.0 + i / 8,
         "clip_reference_score": None, "embedding": [0.0], "flags": [], "requested_at": e["requested_at"]}
        for i, e in enumerate(events)])
    entries = [("sentinel.jobs", batches[0], "tok-j1"), ("sentinel.jobs", batches[1], "tok-j2"),
               ("sentinel.scores", scores, "tok-s")]
    path = tmp_path / "chdb"
    w = ClickHouseWarehouse(f"chdb://{path}")
    try:
        migrate(w)
        for table, rows, token in entries:
            w.insert(table, rows, token)
        w.command("DELETE FROM sentinel.jobs_hourly WHERE true")
        w.command("DELETE FROM sentinel.report_scores_hourly WHERE true")
        for table, rows, token in entries:
            w.journal.begin(table, rows, token)
    finally:
        w.close()

    def score_cells(w: ClickHouseWarehouse) -> dict:
        return _one(w, "SELECT sum(scores) AS scores, sum(clip_sum) AS clip FROM sentinel.report_scores_hourly")

    w = ClickHouseWarehouse(f"chdb://{path}")
    try:
        with caplog.at_level(logging.WARNING, logger="warehouse.repair"):
            migrate(w)
        got = (_rollups(w), score_cells(w))
        for table, rows, token in entries:
            w.insert(table, rows, token)
        again = (_rollups(w), score_cells(w))
    finally:
        w.close()
    want_clip = sum(20.0 + i / 8 for i in range(2 * N))
    assert got[0]["hourly_jobs"] == 2 * N and got[0]["jobs"] == 2 * N and got[0]["report_hourly"] == 2 * N
    assert got[1] == {"scores": 2 * N, "clip": pytest.approx(want_clip, rel=1e-12)}
    assert again[0] == got[0] and again[1] == got[1]
    rebuilt = [r.getMessage().split(" after ")[0] for r in caplog.records if r.getMessage().startswith("rebuilt")]
    assert len(rebuilt) == len(set(rebuilt)) and any("from sentinel.scores" in m for m in rebuilt)

"""Migrations and insert idempotence on a real embedded chDB store.

chDB allows one data path per process at a time, so every test here shares ONE
module-scoped store, and the fixture closes it before other modules open theirs.
"""

from __future__ import annotations

import re

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import sql as sql_files
from warehouse.rows import JOBS_SCHEMA, job_rows
from warehouse.client import ClickHouseWarehouse, migrate

UTC = timezone.utc
T0 = datetime(2026, 2, 3, 10, 0, 0, 250000, tzinfo=UTC)


def job(i: int, **overrides) -> dict:
    requested = T0 + timedelta(seconds=i)
    e = {
        "job_id": f"job-{i:04d}",
        "model_id": "flux-dev",
        "model_version": "2026.1",
        "provider": "self_hosted",
        "niche": "headshot",
        "prompt": f"prompt {i}",
        "seed": i,
        "reference_image": b"ref" if i % 2 else None,
        "image": b"\x00" * (100 + i),
        "media_type": "image/webp",
        "requested_at": requested,
        "started_at": requested + timedelta(milliseconds=10),
        "completed_at": requested + timedelta(milliseconds=1_510),
        "delivered_at": requested + timedelta(milliseconds=1_537),
        "cold_start": False,
        "cold_start_ms": 0.0,
        "inference_ms": 1500.0,
        "encode_ms": None,
        "gpu_type": "L4",
        "gpu_seconds": 1.5 + i,
        "api_cost_usd": None,
        "node_id": "node-0",
    }
    e.update(overrides)
    return e


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    path: Path = tmp_path_factory.mktemp("chdb_migrations") / "ch"
    warehouse = ClickHouseWarehouse(f"chdb://{path}")
    try:
        yield warehouse
    finally:
        warehouse.close()
    # Everything on this path is closed: the process can open another chDB path now.
    other = ClickHouseWarehouse(f"chdb://{path.parent / 'after_close'}")
    try:
        assert other.query("SELECT 41 + 1 AS n").column("n").to_pylist() == [42]
    finally:
        other.close()


@pytest.fixture(scope="module")
def migrated(store: ClickHouseWarehouse) -> dict:
    """Run migrate() twice on the fresh store (once for the whole module)."""
    first = migrate(store)
    tables_after_first = _tables(store)
    second = migrate(store)
    return {"first": first, "second": second, "tables_after_first": tables_after_first}


def _tables(w: ClickHouseWarehouse) -> list[str]:
    return sorted(w.query("SELECT name FROM system.tables WHERE database = 'sentinel'").column("name").to_pylist())


def _count(w: ClickHouseWarehouse, where: str = "", final: bool = False) -> int:
    text = f"SELECT count() AS n FROM sentinel.jobs{' FINAL' if final else ''} {where}"
    return w.query(text).column("n").to_pylist()[0]


def test_fresh_store_applies_every_migration_once(store, migrated) -> None:
    expected = [m.version for m in sql_files.migrations()]
    assert expected[0] == 1 and expected == sorted(expected)
    assert migrated["first"] == expected
    assert migrated["second"] == []
    ledger = store.query("SELECT version, name FROM sentinel.schema_migrations FINAL ORDER BY version").to_pylist()
    assert ledger == [{"version": m.version, "name": m.name} for m in sql_files.migrations()]
    assert store.query("SELECT count() AS n FROM sentinel.schema_migrations").column("n").to_pylist() == [len(expected)]


def test_second_migrate_leaves_tables_unchanged(store, migrated) -> None:
    ddl = "".join(p.read_text() for p in sorted((Path(sql_files.__file__).parent).rglob("*.sql")))
    declared = sorted(set(re.findall(r"CREATE (?:TABLE|MATERIALIZED VIEW|VIEW) IF NOT EXISTS sentinel\.(\w+)", ddl)))
    assert "jobs" in declared and "scores" in declared
    assert migrated["tables_after_first"] == declared
    assert _tables(store) == migrated["tables_after_first"]
    assert migrate(store) == []
    assert _tables(store) == migrated["tables_after_first"]


def test_job_rows_land_with_the_values_sent(store, migrated) -> None:
    events = [job(100), job(101, encode_ms=7.5, api_cost_usd=None, seed=None)]
    rows = job_rows([(events[0], 2, 40), (events[1], 3, 41)])
    assert rows.schema == JOBS_SCHEMA
    store.insert("sentinel.jobs", rows, "test-values")
    got = store.query(
        "SELECT job_id, seed, has_reference, requested_at, delivered_at, latency_ms, encode_ms, image_bytes, "
        "source_partition, source_offset FROM sentinel.jobs FINAL WHERE job_id IN ('job-0100', 'job-0101') "
        "ORDER BY job_id").to_pylist()
    assert [r["job_id"] for r in got] == ["job-0100", "job-0101"]
    assert [r["seed"] for r in got] == [100, None]
    assert [r["has_reference"] for r in got] == [False, True]
    assert [r["latency_ms"] for r in got] == [pytest.approx(1537.0, abs=1e-6)] * 2
    assert [r["encode_ms"] for r in got] == [None, 7.5]
    assert [r["image_bytes"] for r in got] == [200, 201]
    assert [(r["source_partition"], r["source_offset"]) for r in got] == [(2, 40), (3, 41)]
    for r, e in zip(got, events):
        assert r["requested_at"] == e["requested_at"]  # ms precision, UTC
        assert r["delivered_at"] == e["delivered_at"]


def test_same_batch_same_token_is_stored_once(store, migrated) -> None:
    rows = job_rows([(job(i), 0, i) for i in range(5)])
    where = "WHERE job_id IN ('job-0000','job-0001','job-0002','job-0003','job-0004')"
    store.insert("sentinel.jobs", rows, "batch-0-4")
    store.insert("sentinel.jobs", rows, "batch-0-4")  # a retried insert
    assert _count(store, where) == 5  # without FINAL: deduplicated at insert time
    assert _count(store, where, final=True) == 5


def test_redelivered_event_collapses_under_final(store, migrated) -> None:
    first = job(200)
    store.insert("sentinel.jobs", job_rows([(first, 1, 7)]), "redeliver-a")
    store.insert("sentinel.jobs", job_rows([(first, 1, 9)]), "redeliver-b")  # same job, replayed later
    where = "WHERE job_id = 'job-0200'"
    assert _count(store, where) == 2  # two batches stored ...
    assert _count(store, where, final=True) == 1  # ... one job


def test_reader_session_is_read_only(store, migrated) -> None:
    with pytest.raises(Exception, match="(?i)readonly"):
        store.query("CREATE TABLE sentinel.sneaky (a UInt8) ENGINE = Memory")
    rows = job_rows([(job(300), 0, 1)])
    with pytest.raises(Exception, match="(?i)readonly"):
        store.query("INSERT INTO sentinel.jobs (job_id) VALUES ('job-0300')")
    # The failed attempts changed nothing, and the session stays usable and still read-only.
    assert "sneaky" not in _tables(store)
    assert _count(store, "WHERE job_id = 'job-0300'") == 0
    # A query cannot lift the session's readonly=1 with its own SETTINGS clause.
    with pytest.raises(Exception, match="(?i)readonly"):
        store.query("SELECT 1 AS a SETTINGS readonly = 0")
    with pytest.raises(Exception, match="(?i)readonly"):
        store.query("CREATE TABLE sentinel.sneaky (a UInt8) ENGINE = Memory SETTINGS readonly = 0")
    with pytest.raises(Exception, match="(?i)readonly"):
        store.query("DROP TABLE sentinel.jobs")
    assert "jobs" in _tables(store)
    store.insert("sentinel.jobs", rows, "reader-test")  # the writer session still writes
    assert _count(store, "WHERE job_id = 'job-0300'") == 1

"""The warehouse client on a real chDB store: a refused query leaves nothing behind for the
next one, several statements in one text are refused before they run, a lookup does not wait
for a write, and a reader pointed at no store says where it looked."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from warehouse.client import ClickHouseWarehouse, WarehouseError, open_reader


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    path: Path = tmp_path_factory.mktemp("client") / "chdb"
    writer = ClickHouseWarehouse(f"chdb://{path}")
    writer.command("CREATE DATABASE IF NOT EXISTS sentinel ENGINE = Atomic")
    writer.command("CREATE TABLE IF NOT EXISTS sentinel.jobs (x UInt8) ENGINE = MergeTree ORDER BY x")
    writer.insert("sentinel.jobs", pa.table({"x": pa.array([7], pa.uint8())}))
    try:
        yield writer
    finally:
        writer.close()


def test_a_refused_statement_does_not_poison_the_next_query(store: ClickHouseWarehouse) -> None:
    # chDB ran "SELECT 1" before refusing the DROP and kept its output for the next query
    for _ in range(3):
        with pytest.raises(Exception, match="readonly"):
            store.query("SELECT 1; DROP TABLE sentinel.jobs")
        assert store.query("SELECT x FROM sentinel.jobs").to_pylist() == [{"x": 7}]


@pytest.mark.parametrize("text", ["SELECT 1; DROP TABLE sentinel.jobs", "SELECT 1; SELECT 2"])
def test_several_statements_are_refused_before_they_run(store: ClickHouseWarehouse, text: str) -> None:
    with pytest.raises(WarehouseError, match="one statement per query"):
        store.check_single_statement(text)
    assert store.query("SELECT count() AS n FROM sentinel.jobs").to_pylist() == [{"n": 1}]


@pytest.mark.parametrize("text", ["SELECT 'a;b' AS s", "SELECT 1;", "SELECT {n:UInt8} AS n", "SELEC broken"])
def test_one_statement_passes_the_check(store: ClickHouseWarehouse, text: str) -> None:
    store.check_single_statement(text)  # a syntax error is left to the query itself


def test_a_reader_without_a_store_names_the_path_and_creates_nothing(tmp_path) -> None:
    path = tmp_path / ".sentinel" / "chdb"
    with pytest.raises(WarehouseError, match=rf"no Sentinel store at {path}: set SENTINEL_DATA_DIR"):
        open_reader(f"chdb://{path}")
    assert not path.exists()


def test_a_query_does_not_wait_for_a_write_in_progress(store: ClickHouseWarehouse) -> None:
    """The reader and the writer are separate chDB handles under separate locks: while one
    thread writes (its lock held here), another thread's lookup is answered, and the write that
    follows is seen by the next read."""
    import threading

    answered = threading.Event()

    def lookup() -> None:
        store.query("SELECT count() AS n FROM sentinel.jobs")
        answered.set()

    with store._write_lock:  # an insert in progress
        reader = threading.Thread(target=lookup, daemon=True)
        reader.start()
        assert answered.wait(30), "the lookup waited for the write lock"
    before = store.query("SELECT count() AS n FROM sentinel.jobs").column("n")[0].as_py()
    store.insert("sentinel.jobs", pa.table({"x": pa.array([8], pa.uint8())}))
    assert store.query("SELECT count() AS n FROM sentinel.jobs").column("n")[0].as_py() == before + 1

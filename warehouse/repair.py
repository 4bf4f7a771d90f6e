"""What inserting a torn insert again with its token cannot mend, mended when the store opens.

ClickHouse writes an insert's block id to a table's deduplication log (flushed) before it
renames the part into place. A process killed between the two leaves the id without the rows,
and every later insert of that block with the same token is dropped as a duplicate: measured
with repeated SIGKILLs of a process inserting job batches, 1 replayed torn insert in about 30
left ``sentinel.jobs_hourly`` one batch short while ``sentinel.jobs`` held it. So after the
journal's inserts go in again (warehouse/journal.py, warehouse/client.py ``migrate``):

- the journaled rows are staged in a Memory table, and those the table lacks (no stored row
  equal over the journaled columns) go in again with deduplication off;
- every materialized view the table feeds is rebuilt from its whole source: the target's rows
  are deleted (a lightweight DELETE keeps the target's deduplication memory, so a worker's own
  retry with the token is still dropped there) and the view's SELECT is inserted again. This
  reads the whole source once per view, at the first start after a kill of the store's owner
  mid-insert; it is logged with its time.

The entries leave the journal only after both, so a kill during a repair repeats it. An entry
or a table that cannot be mended (its table gone or changed, a view this cannot rebuild) is set
aside with an error in the log, for a person: the store still starts.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pyarrow as pa

import sql as sql_files
from warehouse.journal import Entry, InsertJournal

log = logging.getLogger(__name__)

NO_DEDUP = {"insert_deduplicate": 0}


def feeds_views(warehouse: Any, table: str) -> bool:
    """Whether inserts into ``table`` run materialized views."""
    database, name = sql_files.split_name(table)
    rows = warehouse.query(sql_files.report("table_views"), {"database": database, "table": name})
    return any(len(v) for v in rows.column("views").to_pylist())


def insert_missing(warehouse: Any, table: str, rows: pa.Table) -> int:
    """Insert again, deduplication off, the journaled ``rows`` that ``table`` lacks (compared
    whole over their columns, in ClickHouse, so both sides have the stored types; a NULL is a
    value there); returns how many."""
    database, name = sql_files.split_name(table)
    [first] = warehouse.query(sql_files.report("sorting_key"), {"database": database, "table": name}).column(
        "first_key").to_pylist()
    if first not in rows.column_names:
        raise ValueError(f"the journaled rows lack {table}'s first sorting-key column {first!r}")
    slots = {"columns": rows.column_names, "first": [first]}
    params = {"database": database, "table": name, "staging": f"_replay_{name}"}
    try:
        for statement in sql_files.template("stage", **slots):
            warehouse.command(statement, params)
        warehouse.insert_as_is(f"{database}.{params['staging']}", rows, {})
        [count] = sql_files.template("count_missing", **slots)
        lacking = warehouse.query(count, params).column("_repair_missing")[0].as_py()
        if lacking:
            log.warning("%s lacks %d of %d rows of an insert its deduplication log took as stored; "
                        "inserting them again", table, lacking, rows.num_rows)
            [insert] = sql_files.template("insert_missing", **slots)
            warehouse.command(insert, params, settings=NO_DEDUP)
    finally:
        [drop] = sql_files.template("unstage")
        warehouse.command(drop, params)
    return lacking


def rebuild_views(warehouse: Any, table: str) -> list[str]:
    """Rebuild the targets of the materialized views ``table`` feeds from ``table``; returns them.
    Refused (raised, before anything is deleted): a view without a TO table, a target that
    another view writes to as well (the DELETE would take that view's rows), a target that
    feeds views itself (rebuilding it would run those again)."""
    database, name = sql_files.split_name(table)
    views = warehouse.query(sql_files.report("view_definitions"), {"database": database, "table": name}).to_pylist()
    for view in views:
        if not view["target"]:
            raise RuntimeError(f"materialized view {view['view']} has no TO table; cannot rebuild it")
        if view["feeders"] != 1:
            raise RuntimeError(f"{view['target']} is written by {view['feeders']} views; cannot rebuild it from {table}")
        if feeds_views(warehouse, view["target"]):
            raise RuntimeError(f"{view['target']} (the target of {view['view']}) feeds views itself; cannot rebuild it")
    for view in views:
        started = time.perf_counter()
        target_database, target_name = sql_files.split_name(view["target"])
        for statement in sql_files.template("rebuild_view", columns=list(view["columns"]), select=view["select_query"]):
            warehouse.command(statement, {"database": target_database, "target": target_name}, settings=NO_DEDUP)
        log.warning("rebuilt %s from %s (view %s) after a torn insert in %.1f s", view["target"], table, view["view"],
                    time.perf_counter() - started)
    return [view["target"] for view in views]


def replay(warehouse: Any, journal: InsertJournal) -> int:
    """Insert every journaled insert again with its token, then mend what the token cannot
    (above); returns how many were mended."""
    by_table: dict[str, list[Entry]] = {}
    for entry in journal.pending():
        path, table, rows, token = entry
        log.warning("inserting %d rows into %s again (token %s): a process stopped during that insert",
                    rows.num_rows, table, token[:12])
        try:
            warehouse.insert_as_is(table, rows, {"insert_deduplication_token": token})
            insert_missing(warehouse, table, rows)
        except Exception as exc:
            log.error("could not insert %s again (%s); kept as %s", table, exc, journal.set_aside(path))
            continue
        by_table.setdefault(table, []).append(entry)
    mended = 0
    for table, entries in sorted(by_table.items()):
        try:
            rebuild_views(warehouse, table)
        except Exception as exc:
            kept = [journal.set_aside(path) for path, *_ in entries]
            log.error("could not rebuild the views fed by %s (%s); their rollups may miss rows of the "
                      "inserts kept as %s", table, exc, kept)
            continue
        for path, *_ in entries:
            journal.done(path)
        mended += len(entries)
    return mended

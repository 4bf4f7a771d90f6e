"""What inserting a torn insert again with its token cannot mend, mended when the store opens.

ClickHouse writes an insert's block id to a table's deduplication log (flushed) before it
renames the part into place. A process killed between the two leaves the id without the rows,
and every later insert of that block with the same token is dropped as a duplicate: measured
with repeated SIGKILLs of a process inserting job batches, 1 replayed torn insert in about 30
left ``sentinel.jobs_hourly`` one batch short while ``sentinel.jobs`` held it. So after the
journal's inserts go in again (warehouse/journal.py, warehouse/client.py ``migrate``):

- the journaled rows are staged in a Memory table, and those the table lacks by sorting key (and
  a ReplacingMergeTree's version column) go in again with deduplication off;
- every materialized view the table feeds is rebuilt from its whole source: the target's rows
  are deleted (a lightweight DELETE keeps the target's deduplication memory, so a worker's own
  retry with the token is still dropped there) and the view's SELECT is inserted again.

The entries leave the journal only after both, so a kill during a repair repeats it.
"""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa

import sql as sql_files
from warehouse.journal import InsertJournal

log = logging.getLogger(__name__)

NO_DEDUP = {"insert_deduplicate": 0}


def _split(table: str) -> tuple[str, str]:
    database, _, name = table.rpartition(".")
    return database or sql_files.DATABASE, name


def insert_missing(warehouse: Any, table: str, rows: pa.Table) -> int:
    """Insert again, deduplication off, the journaled ``rows`` that ``table`` lacks (compared
    by sorting key and version column, in ClickHouse, so each side has the stored types);
    returns how many."""
    database, name = _split(table)
    [key] = warehouse.query(sql_files.report("sorting_key"), {"database": database, "table": name}).to_pylist()
    columns = [c.strip() for c in key["sorting_key"].split(",")] + ([key["version"]] if key["version"] else [])
    slots = {"key": columns, "first": columns[:1], "columns": rows.column_names}
    params = {"database": database, "table": name, "staging": f"_replay_{name}"}
    for statement in sql_files.repair("stage", **slots):
        warehouse.command(statement, params)
    warehouse.insert_as_is(f"{database}.{params['staging']}", rows, {})
    [count] = sql_files.repair("count_missing", **slots)
    lacking = warehouse.query(count, params).column("n")[0].as_py()
    if lacking:
        log.warning("%s lacks %d of %d rows of an insert its deduplication log took as stored; "
                    "inserting them again", table, lacking, rows.num_rows)
    for statement in sql_files.repair("insert_missing", **slots):
        warehouse.command(statement, params, settings=NO_DEDUP)
    return lacking


def rebuild_views(warehouse: Any, table: str) -> list[str]:
    """Rebuild the targets of the materialized views ``table`` feeds from ``table``; returns them.
    A target that feeds views itself is refused: rebuilding it would run those twice."""
    database, name = _split(table)
    views = warehouse.query(sql_files.report("view_definitions"), {"database": database, "table": name})
    targets = []
    for view in views.to_pylist():
        target = view["target"]
        if not target:
            raise RuntimeError(f"materialized view {view['view']} has no TO table; cannot rebuild it")
        if warehouse.feeds_views(target):
            raise RuntimeError(f"{target} (the target of {view['view']}) feeds views itself; cannot rebuild it")
        log.warning("rebuilding %s from %s (view %s) after a torn insert", target, table, view["view"])
        target_database, target_name = _split(target)
        for statement in sql_files.repair("rebuild_view", columns=list(view["columns"]), select=view["select_query"]):
            warehouse.command(statement, {"database": target_database, "target": target_name}, settings=NO_DEDUP)
        targets.append(target)
    return targets


def replay(warehouse: Any, journal: InsertJournal) -> int:
    """Insert every journaled insert again with its token, then mend what the token cannot
    (above); returns how many. An entry that cannot go in again (its table gone or changed) is
    set aside for a person, never fatal; the others leave the journal once all are mended."""
    mended, tables = [], set()
    for entry, table, rows, token in journal.pending():
        log.warning("inserting %d rows into %s again (token %s): a process stopped during that insert",
                    rows.num_rows, table, token[:12])
        try:
            warehouse.insert_as_is(table, rows, {"insert_deduplication_token": token})
            insert_missing(warehouse, table, rows)
        except Exception as exc:
            log.error("could not insert %s again (%s); kept as %s", table, exc, journal.set_aside(entry))
            continue
        mended.append(entry)
        tables.add(table)
    for table in sorted(tables):
        rebuild_views(warehouse, table)
    for entry in mended:
        journal.done(entry)
    return len(mended)

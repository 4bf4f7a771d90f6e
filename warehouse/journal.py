"""Inserts a kill may have torn, inserted once more when the store is opened again.

An INSERT into embedded chDB writes the table's part and then each materialized view's; a
process killed in between leaves the rows without some of their rollup rows, and the worker's
insert-once rule never sends those rows again. So the process that owns an embedded store puts
every insert that carries a dedup token and feeds materialized views into this journal first
(an Arrow IPC file; a table without views needs none: its parts are atomic, and whatever a kill
cut short is written again when the batch is read again -- the archive writes ``sentinel.jobs``
last, so images and guard checks are re-inserted until a job's row exists, and moment states
are rewritten whole from the offsets they hold) and takes
it out once the insert returned or raised (the caller retries a failed insert with its token;
only a kill leaves an entry). Opening the store (``warehouse.client.migrate``) inserts what
is left once more, with the same token: the base table and every view target that stored the
block drop it (each has its own ``non_replicated_deduplication_window``), the targets that
missed it store it (tests/warehouse/test_journal.py tears an insert and checks the repair).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Callable

import pyarrow as pa

log = logging.getLogger(__name__)

Entry = tuple[Path, str, pa.Table, str]  # (file, table, rows, dedup token)


class InsertJournal:
    def __init__(self, root: Path) -> None:
        self.root = root  # created at the first insert: a reader creates nothing

    def begin(self, table: str, rows: pa.Table, token: str) -> Path:
        """Record an insert about to run; the same table and token share one file (a retry)."""
        self.root.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha1(table.encode() + b"\0" + token.encode()).hexdigest()[:20]
        path = self.root / f"{key}.arrow"
        tmp = path.with_suffix(".tmp")
        schema = rows.schema.with_metadata({b"table": table.encode(), b"token": token.encode()})
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            writer.write_table(rows.replace_schema_metadata(schema.metadata))
        os.replace(tmp, path)  # a kill while writing leaves only a .tmp: that insert never started
        return path

    def done(self, entry: Path) -> None:
        entry.unlink(missing_ok=True)

    def set_aside(self, entry: Path) -> Path:
        """An entry that cannot be inserted again (its table gone or changed): out of the way."""
        failed = entry.with_suffix(".failed")
        os.replace(entry, failed)
        return failed

    def pending(self) -> list[Entry]:
        """The inserts begun and not known to be done, oldest first."""
        if not self.root.is_dir():
            return []
        for stale in self.root.glob("*.tmp"):
            stale.unlink(missing_ok=True)
        out = []
        for path in sorted(self.root.glob("*.arrow"), key=lambda p: p.stat().st_mtime):
            with pa.OSFile(str(path), "rb") as source:  # read into memory: the file goes once replayed
                rows = pa.ipc.open_file(source).read_all()
            meta = rows.schema.metadata or {}
            out.append((path, meta[b"table"].decode(), rows.replace_schema_metadata(None), meta[b"token"].decode()))
        return out

    def replay(self, insert: Callable[[str, pa.Table, str], None]) -> int:
        """``insert(table, rows, token)`` each pending entry (stored where it was missed, dropped
        where stored); returns how many went in. One that fails is set aside, never fatal."""
        replayed = 0
        for entry, table, rows, token in self.pending():
            log.warning("inserting %d rows into %s again (token %s): a process stopped during that insert",
                        rows.num_rows, table, token[:12])
            try:
                insert(table, rows, token)
            except Exception as exc:  # its table gone or changed: kept for a person to look at
                log.error("could not insert %s again (%s); kept as %s", table, exc, self.set_aside(entry))
                continue
            self.done(entry)
            replayed += 1
        return replayed

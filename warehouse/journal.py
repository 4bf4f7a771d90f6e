"""Inserts a kill may have cut short, inserted once more when the store is opened again.

A kill can leave an insert into embedded chDB half done in two ways: between a table's part and
its materialized views' parts (the rows without some rollup rows), and between the block id
that ClickHouse writes to a table's deduplication log and the part it renames into place (the
id without the rows: every later insert of the block with its token is dropped). Neither is
mended by the worker: its insert-once rule, or its retry with the same token, never brings the
rows. So the process that owns an embedded store puts every insert that carries a dedup token
into this journal first (an Arrow IPC file) and takes it out once the insert returned or raised
(the caller retries a failed insert with its token; only a kill leaves an entry). Opening the
store (``warehouse.client.migrate``) inserts what is left once more with the same token, then
mends what the token cannot (warehouse/repair.py): rows the table lacks by key go in again, and
the views the table feeds are rebuilt. tests/warehouse/test_journal.py leaves both states and
checks the repair.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
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

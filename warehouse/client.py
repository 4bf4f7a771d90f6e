"""ClickHouse access for every process: the worker writes, the CLI reads.

The same code talks to a ClickHouse server over HTTP and to embedded chDB (``chdb://``)
through clickhouse-connect. chDB allows one process per data path, so the worker that owns an
embedded store writes an owner file beside it (pid, web URL, token); while that worker lives,
other processes (``sentinel sql``, ``sentinel report``) send read-only queries to the worker,
which runs them with ``readonly=1`` and answers in Arrow IPC. With several workers, the owner
is the store role (``sentinel store``, warehouse/store_server.py), which also takes the
workers' inserts. The caller cannot tell the difference: both paths return a ``pyarrow.Table``.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import threading
import urllib.error
import urllib.request
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import pyarrow as pa

import sql as sql_files
from warehouse import repair
from warehouse.journal import InsertJournal
from warehouse.owner import Owner, live_owner

log = logging.getLogger(__name__)

READONLY = {"readonly": 1}


class WarehouseError(RuntimeError):
    pass


class Warehouse(Protocol):
    def query(self, text: str, parameters: Mapping[str, Any] | None = None) -> pa.Table: ...

    def close(self) -> None: ...


class ClickHouseWarehouse:
    """clickhouse-connect clients for one DSN (HTTP server or chDB).

    Reads go through their own session created with ``readonly=1``, which no query can lift;
    writes use a second session. (A per-query ``readonly`` setting is not an option on chDB:
    the session cannot switch it back off afterwards.) Each session is used under its own lock,
    so a lookup does not wait for an insert: chDB runs two handles' statements at once (an
    insert on the writer took 8 ms during a 1.6 s query on the reader), and the worker's gate
    looks up duplicates while the sink thread inserts the batches before.
    """

    def __init__(self, dsn: str, *, outage_switch: Path | None = None) -> None:
        self.dsn = dsn
        # Chaos switch (fault injection): while this file exists every query, command and
        # insert fails as if ClickHouse were down. One stat() per call; the worker passes
        # <data_dir>/faults/clickhouse_down, other processes pass nothing.
        self.outage_switch = outage_switch
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        # embedded: inserts with a dedup token are journaled until they return (warehouse/journal.py)
        self.journal: InsertJournal | None = None
        if dsn.startswith("chdb://"):
            path = Path(dsn[len("chdb://") :])
            path.mkdir(parents=True, exist_ok=True)
            self.journal = InsertJournal(path.parent / f"{path.name}.inserts")
        self.reader = self._connect(READONLY)
        self._writer = None

    def _connect(self, settings: Mapping[str, Any] | None):
        import clickhouse_connect

        try:
            return clickhouse_connect.get_client(dsn=self.dsn, settings=dict(settings or {}))
        except Exception as exc:  # the driver raises several types; all mean "cannot open"
            raise WarehouseError(f"cannot open ClickHouse at {redact(self.dsn)}: {exc}") from exc

    @property
    def writer(self):
        if self._writer is None:
            self._writer = self._connect(None)
        return self._writer

    def _check_outage(self) -> None:
        if self.outage_switch is not None and self.outage_switch.exists():
            raise WarehouseError(f"injected outage: chaos switch {self.outage_switch} exists")

    def query(self, text: str, parameters: Mapping[str, Any] | None = None) -> pa.Table:
        self._check_outage()
        with self._read_lock:
            try:
                return self.reader.query_arrow(text, parameters=dict(parameters or {}))
            except Exception:
                self._reopen_reader()
                raise

    def _reopen_reader(self) -> None:
        """A fresh read session after a failed query. chDB runs every statement of a
        multi-statement text; when a later one fails, the output of the earlier ones stays in the
        session and would be prepended to the next query's result (measured: "1\\n" before the
        Arrow stream, so the next query failed with "Invalid IPC stream")."""
        try:
            self.reader.close()
        finally:
            self.reader = self._connect(READONLY)

    def check_single_statement(self, text: str) -> None:
        """Refuse a text of several statements with ClickHouse's own parser, before running it."""
        try:
            self.query("SELECT formatQuery({text:String})", {"text": text})
        except Exception as exc:
            if "Multi-statements are not allowed" in str(exc):
                raise WarehouseError("one statement per query: the text holds several (separated by ';')") from None
            # any other parse error is reported by running the query itself

    def command(self, text: str, parameters: Mapping[str, Any] | None = None,
                settings: Mapping[str, Any] | None = None) -> None:
        self._check_outage()
        with self._write_lock:
            self.writer.command(text, parameters=dict(parameters or {}), settings=dict(settings or {}))

    def insert(self, table: str, rows: pa.Table, dedup_token: str | None = None) -> None:
        self._check_outage()
        settings = {"insert_deduplication_token": dedup_token} if dedup_token else None
        with self._write_lock:
            if self.journal is None or dedup_token is None:
                self.writer.insert_arrow(table, rows, settings=settings)
                return
            entry = self.journal.begin(table, rows, dedup_token)
            try:  # chDB reads the journal's file: the block is written once
                database, name = sql_files.split_name(table)
                [statement] = sql_files.template("insert_file", columns=rows.column_names, path=sql_files.literal(str(entry)))
                self.writer.command(statement, parameters={"database": database, "table": name}, settings=settings)
            finally:  # returned or raised (the caller retries with the token): only a kill leaves it
                self.journal.done(entry)

    def replay_torn_inserts(self) -> int:
        """Insert once more the journaled inserts a kill may have cut short, and mend what that
        cannot (warehouse/repair.py); returns how many."""
        return repair.replay(self, self.journal) if self.journal is not None else 0

    def insert_as_is(self, table: str, rows: pa.Table, settings: Mapping[str, Any]) -> None:
        """An insert with the given settings and no journal (the journal's own replay)."""
        with self._write_lock:
            self.writer.insert_arrow(table, rows, settings=dict(settings))

    def close(self) -> None:
        with self._read_lock, self._write_lock:
            for client in (self.reader, self._writer):
                if client is not None:
                    client.close()


class RemoteWarehouse:
    """The warehouse through the process that owns it (the store role, or a lone worker owning
    an embedded path): queries, inserts and commands over HTTP (warehouse/store_server.py).

    ``resolve()`` names the owner (URL and token); it is asked again after a failed connection
    or a refused token, so a restarted owner (another port, or a lone worker's new token) is
    found without a restart here. Every failure is a ``WarehouseError``, which the worker's write and lookup loops
    treat as an outage: back off and retry (worker/delivery/retry.py).
    """

    def __init__(self, resolve: Callable[[], "Owner | None"], timeout: float = 300.0) -> None:
        self._resolve = resolve
        self._owner: Owner | None = None
        self.timeout = timeout

    @classmethod
    def of_store(cls, chdb_path: Path, timeout: float = 300.0) -> "RemoteWarehouse":
        """Through the store role of ``chdb_path`` only (a lone worker's view serves no inserts)."""
        def store() -> Owner | None:
            owner = live_owner(chdb_path)
            if owner is not None and owner.role != "store":
                raise WarehouseError(f"{chdb_path} is owned by a lone worker (pid {owner.pid}), not a store role: "
                                     "stop it and start `sentinel store` (or `sentinel up --workers N`)")
            return owner
        return cls(store, timeout)

    def _post(self, path: str, body: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> bytes:
        owner = self._owner or self._resolve()
        if owner is None:
            raise WarehouseError("the store is not running (no live owner of the embedded warehouse)")
        self._owner = owner
        request = urllib.request.Request(
            f"{owner.url.rstrip('/')}{path}", data=body, method="POST",
            headers={"Content-Type": content_type, "Authorization": f"Bearer {owner.token}", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                self._owner = None  # a restarted owner may have a new token
            raise WarehouseError(f"the store answered {exc.code}: {_error_text(exc.read())}") from exc
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, http.client.HTTPException) as exc:
            self._owner = None  # a restarted owner may listen elsewhere; an answer cut off by its death
            raise WarehouseError(f"the process owning the warehouse is unreachable at {owner.url}: {exc}") from exc

    def query(self, text: str, parameters: Mapping[str, Any] | None = None) -> pa.Table:
        payload = self._post("/sentinel/query/", _statement_json(text, parameters), "application/json")
        try:
            return pa.ipc.open_stream(payload).read_all()
        except (pa.ArrowInvalid, OSError) as exc:
            raise WarehouseError(f"the store's answer is not an Arrow stream: {exc}") from exc

    def check_single_statement(self, text: str) -> None:
        """The owner checks it (the worker's query view refuses several statements)."""

    def command(self, text: str, parameters: Mapping[str, Any] | None = None) -> None:
        raise WarehouseError("commands are not served over HTTP: migrations and DDL run in the store itself")

    def insert(self, table: str, rows: pa.Table, dedup_token: str | None = None) -> None:
        headers = {"X-Dedup-Token": dedup_token} if dedup_token else {}
        self._post(f"/sentinel/insert/?table={urllib.parse.quote(table)}", arrow_to_ipc(rows),
                   "application/vnd.apache.arrow.stream", headers)

    def close(self) -> None:
        pass


def _error_text(body: bytes) -> str:
    """The ``error`` of the store's JSON answer (the whole body when it is not that)."""
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace")


def _statement_json(text: str, parameters: Mapping[str, Any] | None) -> bytes:
    return json.dumps({"sql": text, "parameters": encode_parameters(parameters)}, default=_plain).encode()


def _plain(value: Any) -> Any:
    """numpy scalars as their Python value; anything else JSON lacks as text."""
    return value.item() if hasattr(value, "item") else str(value)


def encode_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Query parameters as JSON; datetimes as UTC text without an offset, which a DateTime or
    DateTime64 parameter parses (``YYYY-MM-DD hh:mm:ss[.ffffff]``)."""
    def encode(value: Any) -> Any:
        if isinstance(value, datetime):
            if value.tzinfo is not None:
                value = value.astimezone(timezone.utc).replace(tzinfo=None)
            return value.isoformat(sep=" ")
        if isinstance(value, (list, tuple, set)):
            return [encode(v) for v in value]
        return value
    return {k: encode(v) for k, v in (parameters or {}).items()}


def arrow_to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


WHERE_TO_POINT = ("set SENTINEL_DATA_DIR to the data dir that holds the store (`make demo` keeps its own in "
                  ".sentinel/demo), or SENTINEL_CLICKHOUSE_DSN to a ClickHouse server")


def open_reader(dsn: str) -> Warehouse:
    """A read-only warehouse: direct, or through the live worker that owns the chDB path.

    An embedded path without a Sentinel store is a ``WarehouseError`` naming the path, not an
    empty store created on the way (which only fails later with UNKNOWN_DATABASE)."""
    if not dsn.startswith("chdb://"):
        return ClickHouseWarehouse(dsn)
    path = Path(dsn[len("chdb://") :])
    owner = live_owner(path)
    if owner is not None and owner.pid != os.getpid():
        return RemoteWarehouse(lambda: live_owner(path))
    if not path.is_dir():
        raise WarehouseError(f"no Sentinel store at {path}: {WHERE_TO_POINT}")
    reader = ClickHouseWarehouse(dsn)
    if not reader.query("SELECT count() AS n FROM system.databases WHERE name = 'sentinel'").column("n")[0].as_py():
        reader.close()
        raise WarehouseError(f"no Sentinel store at {path} (no sentinel database): {WHERE_TO_POINT}")
    return reader


def migrate(warehouse: ClickHouseWarehouse) -> list[int]:
    """Apply pending migrations in order; returns the versions applied (empty: no-op).

    The bootstrap and the SQL functions are (re)applied every time, before the migrations; after
    them, the inserts a killed owner left in its journal go in again (warehouse/journal.py)."""
    for statement in [*sql_files.bootstrap(), *sql_files.functions()]:
        warehouse.command(statement)
    applied = set(warehouse.query(sql_files.report("applied_migrations")).column("version").to_pylist())
    done = []
    for migration in sql_files.migrations():
        if migration.version in applied:
            continue
        for statement in migration.statements:
            warehouse.command(statement)
        warehouse.insert(
            "sentinel.schema_migrations",
            pa.table({"version": pa.array([migration.version], pa.uint32()), "name": [migration.name]}),
        )
        log.info("applied migration %04d_%s", migration.version, migration.name)
        done.append(migration.version)
    warehouse.replay_torn_inserts()  # the schema is current: inserts a kill cut short go in again
    return done


def redact(dsn: str) -> str:
    """A DSN without its password, for messages and logs."""
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return dsn

"""The store role's HTTP face: the one process that opens the warehouse serves it to the others.

chDB allows one process per data path, so with several workers on an embedded store exactly one
process (``sentinel store``) opens it and every worker reads and writes through it
(:class:`warehouse.client.RemoteWarehouse`), as the CLI already reads through its owner.

    GET  /healthz              {"ok": true, "role": "store"} (no token)
    POST /sentinel/query/      {"sql", "parameters"} -> Arrow IPC stream (read-only session)
    POST /sentinel/insert/     ?table=<one of the tables workers write>, header X-Dedup-Token,
                               body Arrow IPC stream

Every POST needs ``Authorization: Bearer <token>`` (the owner file's token), checked before the
body is read. No DDL or DML beyond those inserts is served: migrations run in the store itself.
Answers: 401 bad token, 400 a request the store cannot parse (named in the JSON error), 404
unknown path, 411/413 a body without a length or over the limit, 422 a statement ClickHouse
refused, 503 the warehouse itself failed (callers back off and retry). Every error closes the
connection. Requests run in threads (30 s socket timeout); the warehouse serialises its
sessions under its own lock. ``serve_data=False`` (a store in front of a ClickHouse server,
which every process reaches directly) answers only /healthz.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa

from warehouse.client import ClickHouseWarehouse, WarehouseError, arrow_to_ipc

log = logging.getLogger(__name__)

ARROW_STREAM = "application/vnd.apache.arrow.stream"
# what workers write (worker/stages/sinks.py, worker/agents/*.py); nothing else is insertable
WORKER_TABLES = frozenset(f"sentinel.{t}" for t in ("jobs", "job_images", "guard_checks", "scores", "feature_moments",
                                                    "feature_moment_tail", "ratings", "alerts"))
MAX_BODY = 1024 * 1024 * 1024  # a sink batch of inline images (500 x 0.9 MB at most) with room to spare


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class StoreServer:
    """Serves ``warehouse`` on ``host:port`` (port 0: a free one) until :meth:`shutdown`."""

    def __init__(self, warehouse: ClickHouseWarehouse, token: str, host: str = "127.0.0.1", port: int = 0,
                 serve_data: bool = True) -> None:
        self.warehouse = warehouse
        self.token = token
        self.serve_data = serve_data
        handler = type("StoreHandler", (_Handler,), {"store": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="store-http", daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- the operations, on parsed requests ---------------------------------------------
    def query(self, body: dict[str, Any]) -> bytes:
        sql, params = _statement(body)
        try:  # ClickHouse's parser refuses a text of several statements before any runs
            self.warehouse.check_single_statement(sql)
        except WarehouseError as exc:
            raise BadRequest(400 if "one statement per query" in str(exc) else 503, str(exc)) from None
        return arrow_to_ipc(_refused_as_422(lambda: self.warehouse.query(sql, params)))

    def insert(self, table: str, dedup_token: str | None, payload: bytes) -> None:
        if table not in WORKER_TABLES:
            raise BadRequest(400, f"table: {table!r} is not one the workers write ({', '.join(sorted(WORKER_TABLES))})")
        try:
            rows = pa.ipc.open_stream(payload).read_all()
        except (pa.ArrowInvalid, OSError) as exc:
            raise BadRequest(400, f"body: not an Arrow IPC stream ({exc})") from None
        _refused_as_422(lambda: self.warehouse.insert(table, rows, dedup_token or None))

    def authorized(self, header: str) -> bool:
        return bool(self.token) and hmac.compare_digest(header.encode(), f"Bearer {self.token}".encode())


def _statement(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    sql, params = body.get("sql"), body.get("parameters") or {}
    if not isinstance(sql, str) or not sql.strip():
        raise BadRequest(400, "sql: a non-empty string is required")
    if not isinstance(params, dict):
        raise BadRequest(400, "parameters: an object is required")
    return sql, params


def _refused_as_422(call: Callable[[], Any]) -> Any:
    """A statement ClickHouse refuses is the caller's (422); an unavailable store is ours (503)."""
    try:
        return call()
    except WarehouseError as exc:  # the chaos switch, or the store could not be opened
        raise BadRequest(503, str(exc)) from None
    except Exception as exc:  # the database's own message, for the caller
        text = f"{type(exc).__name__}: {exc}"
        raise BadRequest(503 if _unavailable(text) else 422, text) from None


def _unavailable(text: str) -> bool:
    return any(s in text for s in ("Connection refused", "Timeout", "TOO_MANY_SIMULTANEOUS_QUERIES", "MEMORY_LIMIT"))


class _Handler(BaseHTTPRequestHandler):
    store: StoreServer
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that stalls mid-request loses its connection, not a thread forever

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        log.debug("store %s", format % args)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if urlsplit(self.path).path.rstrip("/") == "/healthz":
            self._answer(200, json.dumps({"ok": True, "role": "store"}).encode())
        else:
            self._error(404, f"no such path: {self.path}")

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        url = urlsplit(self.path)
        try:
            if not self.store.serve_data:
                raise BadRequest(404, "this store serves no data: connect to the ClickHouse server")
            if not self.store.authorized(self.headers.get("Authorization", "")):
                raise BadRequest(401, "missing or wrong token")
            payload = self._body()
            path = url.path.rstrip("/")
            if path == "/sentinel/query":
                self._answer(200, self.store.query(_json(payload)), ARROW_STREAM)
            elif path == "/sentinel/insert":
                table = (parse_qs(url.query).get("table") or [""])[0]
                self.store.insert(table, self.headers.get("X-Dedup-Token"), payload)
                self._answer(200, b'{"ok": true}')
            else:
                raise BadRequest(404, f"no such path: {url.path}")
        except BadRequest as exc:
            self._error(exc.status, str(exc))

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise BadRequest(411, "Transfer-Encoding is not accepted: send a Content-Length")
        raw = self.headers.get("Content-Length") or "0"
        if not raw.isdigit():
            raise BadRequest(400, f"Content-Length: {raw!r} is not a byte count")
        length = int(raw)
        if length > MAX_BODY:
            raise BadRequest(413, f"body: {length} bytes is over the {MAX_BODY}-byte limit")
        return self.rfile.read(length)

    def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. a killed worker)
            self.close_connection = True

    def _error(self, status: int, message: str) -> None:
        self.close_connection = True  # an unread or unparsed body must never become the next request
        self._answer(status, json.dumps({"error": message, "status": HTTPStatus(status).phrase}).encode())


def _json(payload: bytes) -> dict[str, Any]:
    try:
        body = json.loads(payload or b"null")
    except ValueError as exc:
        raise BadRequest(400, f"body: not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "body: a JSON object is required")
    return body

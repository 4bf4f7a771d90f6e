"""The store role's HTTP face on a real chDB store, through the client the workers use: inserts
with a dedup token land once, parameters (datetimes, arrays) bind as they do directly, bad
requests get a 4xx naming the problem, an outage is a 503, and a restarted store (new port, new
token) is found again through the resolver."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from warehouse.client import ClickHouseWarehouse, RemoteWarehouse, WarehouseError
from warehouse.owner import Owner
from warehouse.store_server import StoreServer


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory):
    path: Path = tmp_path_factory.mktemp("store") / "chdb"
    warehouse = ClickHouseWarehouse(f"chdb://{path}", outage_switch=path.parent / "down")
    warehouse.command("CREATE DATABASE IF NOT EXISTS sentinel ENGINE = Atomic")
    warehouse.command("CREATE TABLE IF NOT EXISTS sentinel.alerts (id UInt32, at DateTime64(3, 'UTC'), name String) "
                      "ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 100")
    try:
        yield warehouse
    finally:
        warehouse.close()


@pytest.fixture()
def served(local):
    server = StoreServer(local, token="secret-1")
    server.start_in_thread()
    owner = [Owner(1, server.url, "secret-1", "store")]
    remote = RemoteWarehouse(lambda: owner[0], timeout=10)
    local.command("TRUNCATE TABLE sentinel.alerts")
    try:
        yield server, remote, owner
    finally:
        server.shutdown()


def rows(ids: list[int]) -> pa.Table:
    at = [datetime(2026, 1, 1, 0, 0, i, tzinfo=timezone.utc) for i in ids]
    return pa.table({"id": pa.array(ids, pa.uint32()), "at": pa.array(at, pa.timestamp("ms", tz="UTC")),
                     "name": [f"n{i}" for i in ids]})


def post(url: str, body: bytes, token: str = "secret-1") -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_inserts_land_once_per_dedup_token_and_read_back_as_directly(served, local) -> None:
    _, remote, _ = served
    remote.insert("sentinel.alerts", rows([1, 2, 3]), "token-a")
    remote.insert("sentinel.alerts", rows([1, 2, 3]), "token-a")  # a retried write: dropped by ClickHouse
    remote.insert("sentinel.alerts", rows([4]), "token-b")
    assert local.query("SELECT count() AS n FROM sentinel.alerts").to_pylist() == [{"n": 4}]
    sql = "SELECT id, name FROM sentinel.alerts WHERE at >= {since:DateTime64(3)} AND id IN {ids:Array(UInt32)} ORDER BY id"
    params = {"since": datetime(2026, 1, 1, 0, 0, 2, tzinfo=timezone.utc), "ids": [1, 2, 4]}
    assert remote.query(sql, params).to_pylist() == local.query(sql, params).to_pylist() == [
        {"id": 2, "name": "n2"}, {"id": 4, "name": "n4"}]
    with pytest.raises(WarehouseError, match="not served over HTTP"):
        remote.command("ALTER TABLE sentinel.alerts DELETE WHERE id = {id:UInt32}", {"id": 4})


def test_reads_are_read_only(served) -> None:
    _, remote, _ = served
    with pytest.raises(WarehouseError, match="422"):
        remote.query("INSERT INTO sentinel.alerts (id) VALUES (9)")


@pytest.mark.parametrize("path, body, token, status, says", [
    ("/sentinel/query/", b'{"sql": "SELECT 1"}', "wrong", 401, "token"),
    ("/sentinel/query/", b"not json", "secret-1", 400, "body: not JSON"),
    ("/sentinel/query/", b'{"sql": ""}', "secret-1", 400, "sql: a non-empty string"),
    ("/sentinel/query/", b'{"sql": "SELECT 1", "parameters": [1]}', "secret-1", 400, "parameters: an object"),
    ("/sentinel/query/", b'{"sql": "SELEC broken"}', "secret-1", 422, "Syntax error"),
    ("/sentinel/query/", b'{"sql": "SELECT 1; DROP TABLE sentinel.alerts"}', "secret-1", 400, "one statement per query"),
    ("/sentinel/insert/?table=system.users", b"", "secret-1", 400, "not one the workers write"),
    ("/sentinel/insert/?table=sentinel.schema_migrations", b"", "secret-1", 400, "not one the workers write"),
    ("/sentinel/command/", b'{"sql": "DROP TABLE sentinel.alerts"}', "secret-1", 404, "no such path"),
    ("/sentinel/insert/?table=sentinel.alerts", b"not arrow", "secret-1", 400, "not an Arrow IPC stream"),
    ("/sentinel/nothing/", b"{}", "secret-1", 404, "no such path"),
])
def test_bad_requests_get_a_4xx_naming_the_problem(served, path, body, token, status, says) -> None:
    server, _, _ = served
    code, answer = post(server.url + path, body, token)
    assert code == status and says in answer["error"], answer


def test_an_outage_is_a_503_and_clears(served, local) -> None:
    server, remote, _ = served
    local.outage_switch.touch()
    try:
        code, answer = post(server.url + "/sentinel/query/", b'{"sql": "SELECT 1 AS x"}')
        assert code == 503 and "injected outage" in answer["error"]
        with pytest.raises(WarehouseError, match="503"):
            remote.insert("sentinel.alerts", rows([5]), "token-c")
    finally:
        local.outage_switch.unlink()
    remote.insert("sentinel.alerts", rows([5]), "token-c")
    assert remote.query("SELECT count() AS n FROM sentinel.alerts").to_pylist() == [{"n": 1}]


def test_a_restarted_store_is_found_again(served, local) -> None:
    server, remote, owner = served
    assert remote.query("SELECT 1 AS x").to_pylist() == [{"x": 1}]
    server.shutdown()
    with pytest.raises(WarehouseError, match="unreachable"):
        remote.query("SELECT 1 AS x")
    again = StoreServer(local, token="secret-2")  # another port, another token
    again.start_in_thread()
    try:
        owner[0] = Owner(2, again.url, "secret-2", "store")
        assert remote.query("SELECT 2 AS x").to_pylist() == [{"x": 2}]
    finally:
        again.shutdown()


def test_no_token_configured_refuses_everything(local) -> None:
    server = StoreServer(local, token="")
    server.start_in_thread()
    try:
        code, answer = post(server.url + "/sentinel/query/", b'{"sql": "SELECT 1"}', token="")
        assert code == 401
        with urllib.request.urlopen(server.url + "/healthz", timeout=5) as response:
            assert json.loads(response.read()) == {"ok": True, "role": "store"}
    finally:
        server.shutdown()


def raw(url: str, request: bytes) -> bytes:
    """One raw HTTP exchange (what urllib will not send); the whole answer until the server closes."""
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("headers, says", [
    (b"Content-Length: abc\r\n", b"is not a byte count"),
    (b"Content-Length: -1\r\n", b"is not a byte count"),
    (b"Transfer-Encoding: chunked\r\n", b"Transfer-Encoding is not accepted"),
])
def test_a_body_without_a_plain_length_is_refused_and_the_connection_closed(served, headers, says) -> None:
    server, _, _ = served
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"  # must never be answered as a request
    answer = raw(server.url, b"POST /sentinel/query/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret-1\r\n"
                             + headers + b"\r\n" + smuggled)
    assert says in answer and answer.count(b"HTTP/1.1 ") == 1, answer


def test_the_token_is_checked_before_the_body_is_read(served) -> None:
    server, _, _ = served
    # announces a gigabyte-sized body it never sends: refused at once, not after a read
    answer = raw(server.url, b"POST /sentinel/insert/?table=sentinel.alerts HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Length: 100000000\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 401") and b"missing or wrong token" in answer


def test_a_store_in_front_of_a_server_serves_no_data(local) -> None:
    server = StoreServer(local, token="secret-1", serve_data=False)
    server.start_in_thread()
    try:
        code, answer = post(server.url + "/sentinel/query/", b'{"sql": "SELECT 1"}')
        assert code == 404 and "connect to the ClickHouse server" in answer["error"]
    finally:
        server.shutdown()


def test_workers_of_a_store_refuse_a_lone_worker_as_owner(tmp_path) -> None:
    from warehouse.owner import claim

    path = tmp_path / "chdb"
    claim(path, "http://127.0.0.1:9", role="worker")
    with pytest.raises(WarehouseError, match="owned by a lone worker"):
        RemoteWarehouse.of_store(path).insert("sentinel.alerts", rows([1]), "t")

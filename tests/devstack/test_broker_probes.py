"""Readiness probes against small local servers: a port that listens is not yet a Kafka broker."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from typing import Callable, Iterator

import pytest

from devstack.broker_probes import api_versions_ok, free_port, metadata_ok, port_accepts, port_bindable

HOST = "127.0.0.1"
Handler = Callable[[socket.socket], None]


@pytest.fixture
def server() -> Iterator[Callable[[Handler], int]]:
    """Starts a one-connection TCP server that runs ``handle(conn)``; returns its port."""
    listeners: list[socket.socket] = []

    def start(handle: Handler) -> int:
        sock = socket.create_server((HOST, 0))
        listeners.append(sock)

        def serve() -> None:
            with contextlib.suppress(OSError):
                conn, _ = sock.accept()
                with conn:
                    handle(conn)

        threading.Thread(target=serve, daemon=True).start()
        return sock.getsockname()[1]

    yield start
    for sock in listeners:
        sock.close()


def _answer_api_versions(correlation_id: int | None = None, requests: list[bytes] | None = None) -> Handler:
    """A handler that reads one request and answers like ApiVersions v0 (one API listed)."""

    def handle(conn: socket.socket) -> None:
        (size,) = struct.unpack(">i", conn.recv(4))
        request = conn.recv(size)
        if requests is not None:
            requests.append(request)
        got_id = struct.unpack(">i", request[4:8])[0] if correlation_id is None else correlation_id
        payload = struct.pack(">ihi", got_id, 0, 1) + struct.pack(">hhh", 18, 0, 3)
        conn.sendall(struct.pack(">i", len(payload)) + payload)

    return handle


def test_free_port_is_bindable_and_not_listening() -> None:
    port = free_port(HOST)
    assert port_bindable(HOST, port) and not port_accepts(HOST, port)


def test_a_listener_accepts_and_blocks_binding(server) -> None:
    port = server(lambda conn: None)
    assert port_accepts(HOST, port)
    assert not port_bindable(HOST, port)


def test_api_versions_needs_a_matching_kafka_answer(server) -> None:
    requests: list[bytes] = []
    assert api_versions_ok(HOST, server(_answer_api_versions(requests=requests)))
    assert struct.unpack(">hh", requests[0][:4]) == (18, 0)  # ApiVersions, v0
    assert not api_versions_ok(HOST, server(_answer_api_versions(correlation_id=7)))  # not our request's answer
    assert not api_versions_ok(HOST, server(lambda conn: None))  # accepts, then hangs up
    assert not api_versions_ok(HOST, free_port(HOST), timeout=0.2)  # nothing there


def test_metadata_probe_reports_failure_instead_of_raising() -> None:
    ok, detail = metadata_ok(f"{HOST}:{free_port(HOST)}", timeout=1.0)
    assert not ok and detail

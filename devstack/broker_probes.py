"""Is a Kafka-protocol broker there and ready? Free and bindable ports, and two readiness probes.

A listening socket is not enough to call a broker ready, so :func:`api_versions_ok` sends a raw
ApiVersions request (no client library needed) and :func:`metadata_ok` fetches cluster metadata
with aiokafka, the client Faust itself uses.
"""

from __future__ import annotations

import socket
import struct
import threading


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now.

    The OS picks it (bind to port 0), so parallel test runs do not collide on
    a fixed port. There is a small window in which another process may take
    it; ``EmbeddedBroker.start`` retries with a new port in that case.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_bindable(host: str, port: int) -> bool:
    """Whether a new listener could bind ``host:port`` (as a restarted broker would).

    ``SO_REUSEADDR`` is set like servers do, so sockets left in TIME_WAIT by
    the previous broker do not count as "in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return bytes(buf)


def api_versions_ok(host: str, port: int, timeout: float = 1.0) -> bool:
    """Send a raw ApiVersions v0 request and check the broker answers it.

    A listening socket is not enough: a broker can accept connections before
    its Kafka protocol handler is ready. ApiVersions v0 is the one request
    every Kafka-protocol broker must answer, and it needs no client library.
    """
    correlation_id = 0x5E5E
    client_id = b"embedded-broker-probe"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            payload = _recv_exact(sock, size)
    except (OSError, ConnectionError, struct.error):
        return False
    if len(payload) < 10:
        return False
    got_id, error_code, n_apis = struct.unpack(">ihi", payload[:10])
    return got_id == correlation_id and error_code == 0 and n_apis > 0


def metadata_ok(bootstrap: str, timeout: float) -> tuple[bool, str]:
    """Fetch cluster metadata with aiokafka, the client Faust itself uses.

    Runs in a private thread with its own event loop so ``EmbeddedBroker.start``
    also works when called from async code (pytest-asyncio, a Faust app).
    """
    result: list[tuple[bool, str]] = []

    def probe() -> None:
        import asyncio

        from aiokafka import AIOKafkaClient

        async def fetch() -> tuple[bool, str]:
            client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
            try:
                await asyncio.wait_for(client.bootstrap(), timeout)
                brokers = client.cluster.brokers()
                if not brokers:
                    return False, "metadata listed no brokers"
                return True, ", ".join(f"{b.host}:{b.port}" for b in brokers)
            finally:
                await client.close()

        try:
            result.append(asyncio.run(fetch()))
        except Exception as exc:  # any failure just means "not ready yet"
            result.append((False, f"{type(exc).__name__}: {exc}"))

    thread = threading.Thread(target=probe, name="broker-metadata-probe", daemon=True)
    thread.start()
    thread.join(timeout + 5)
    return result[0] if result else (False, "metadata probe timed out")


"""The stack's ports without starting it: free ports by default, the configured ones for
`sentinel up` (0 = free), and a taken configured port refused up front naming its setting."""

from __future__ import annotations

import socket

import pytest

from config.settings import load_settings
from devstack.stack import EmbeddedStack, PortTaken, StackError, broker_address


def test_broker_address_reads_the_first_url() -> None:
    assert broker_address("kafka://127.0.0.1:9092") == ("127.0.0.1", 9092)
    assert broker_address("kafka://localhost:19092,kafka://other:9092") == ("localhost", 19092)
    with pytest.raises(StackError, match="names no port"):
        broker_address("kafka://localhost")


def test_free_ports_by_default_configured_ones_for_up(tmp_path) -> None:
    settings = load_settings(env={}, data_dir=tmp_path, broker_url="kafka://127.0.0.1:19093", web_port=16067)
    free = EmbeddedStack(settings).settings
    assert free.broker_url != "kafka://127.0.0.1:19093" and free.web_port != 16067
    configured = EmbeddedStack(settings, configured_ports=True).settings
    assert (configured.broker_url, configured.web_port) == ("kafka://127.0.0.1:19093", 16067)
    zero = EmbeddedStack(settings.with_(broker_url="kafka://127.0.0.1:0", web_port=0), configured_ports=True)
    assert zero.broker.port > 0 and zero.settings.web_port > 0


@pytest.mark.parametrize("taken", ["SENTINEL_BROKER_URL", "SENTINEL_WEB_PORT"])
def test_a_taken_configured_port_is_refused_before_anything_starts(tmp_path, taken: str) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        ports = {"broker_url": "kafka://127.0.0.1:0", "web_port": 0}
        ports.update({"broker_url": f"kafka://127.0.0.1:{port}"} if taken == "SENTINEL_BROKER_URL" else {"web_port": port})
        stack = EmbeddedStack(load_settings(env={}, data_dir=tmp_path, **ports), configured_ports=True)
        with pytest.raises(PortTaken, match=rf"127\.0\.0\.1:{port} \({taken}\) is already in use.*port 0"):
            stack.start()
        assert not stack.broker.is_running()

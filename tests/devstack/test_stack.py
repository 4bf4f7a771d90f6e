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


def test_a_tansu_stack_refuses_a_store_built_on_an_earlier_broker(tmp_path) -> None:
    (tmp_path / "chdb" / "store").mkdir(parents=True)
    stack = EmbeddedStack(load_settings(env={}, data_dir=tmp_path), broker_kind="tansu", workers=2)
    with pytest.raises(StackError, match="tansu keeps no data across restarts"):
        stack.start()
    assert not stack.broker.is_running()


def test_several_workers_get_their_own_ids_ports_and_the_store(tmp_path) -> None:
    stack = EmbeddedStack(load_settings(env={}, data_dir=tmp_path), broker_kind="tansu", workers=3)
    ids = [w.settings.worker_id for w in stack.workers]
    ports = {w.settings.web_port for w in stack.workers} | {stack.settings.store_port}
    assert ids == ["worker-1", "worker-2", "worker-3"] and len(ports) == 4
    assert stack.store is not None and all(w.settings.use_store for w in stack.workers)
    assert not any(w.settings.static_membership for w in stack.workers)  # tansu: docs/scale-out.md
    assert EmbeddedStack(load_settings(env={}, data_dir=tmp_path)).store is None  # one worker owns the store

"""EmbeddedBroker's lifecycle around stand-in binaries: errors name the log, nothing is left running."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from devstack.broker import BROKER_KINDS, BrokerError, EmbeddedBroker
from devstack.process_group import group_members


@pytest.fixture
def fake_noida(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Points NOIDA_DB_BIN at a shell script with the given start behaviour; `stop` always succeeds."""

    def install(start: str) -> Path:
        script = tmp_path / "fake-noida-db"
        script.write_text(f'#!/bin/sh\nif [ "$1" = stop ]; then exit 0; fi\n{start}\n')
        script.chmod(0o755)
        monkeypatch.setenv("NOIDA_DB_BIN", str(script))
        return script

    return install


def test_kinds_and_addresses() -> None:
    assert BROKER_KINDS == ("noida", "tansu")
    with pytest.raises(ValueError, match="unknown broker kind"):
        EmbeddedBroker(kind="redpanda")
    broker = EmbeddedBroker(port=9099)
    assert broker.bootstrap == "127.0.0.1:9099" and broker.url == "kafka://127.0.0.1:9099"
    assert repr(broker) == "<EmbeddedBroker noida 127.0.0.1:9099 stopped>" and broker.pid is None


def test_command_uses_the_data_dir_only_for_noida(fake_noida, tmp_path: Path, monkeypatch) -> None:
    script = fake_noida("exit 0")
    broker = EmbeddedBroker(port=9099, data_dir=tmp_path / "data")
    assert broker.command()[:4] == [str(script), "start", "--data-dir", str(tmp_path / "data")]
    monkeypatch.setattr("devstack.broker_kinds.locate_tansu", lambda: ["tansu"])
    tansu = EmbeddedBroker(kind="tansu")
    assert tansu.command()[0] == "tansu" and tansu._data_dir is None  # no temporary dir made for it


def test_a_broker_that_exits_at_start_raises_with_its_log_and_keeps_it(fake_noida) -> None:
    fake_noida("echo 'no licence for this port' >&2; exit 3")
    broker = EmbeddedBroker()
    with pytest.raises(BrokerError, match="exited with code 3") as err:
        broker.start(timeout=10)
    assert "no licence for this port" in str(err.value) and str(broker.log_path) in str(err.value)
    assert broker.log_path.is_file() and not broker.is_running()  # kept so the log can be read
    data_dir = broker.data_dir
    broker.stop()
    assert not data_dir.exists()  # a temporary dir goes with stop()


def test_a_broker_never_ready_is_stopped_with_its_whole_group(fake_noida, tmp_path: Path) -> None:
    pid_file = tmp_path / "pgid"
    fake_noida(f"echo $$ > {pid_file}; sleep 30 & exec sleep 30")
    broker = EmbeddedBroker()
    with pytest.raises(BrokerError, match=r"not ready .*\(port not open\)"):
        broker.start(timeout=1.0)
    assert broker.pid is None and not broker.is_running()
    assert group_members(int(pid_file.read_text())) == []  # the background sleep too
    broker.stop()


def test_a_port_in_use_is_refused(fake_noida) -> None:
    fake_noida("exec sleep 30")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(BrokerError, match="already in use"):
            EmbeddedBroker(port=port).start(timeout=5)

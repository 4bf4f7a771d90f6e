"""Where each broker is found and the command lines that start and stop it (nothing is started)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from devstack import broker_kinds
from devstack.broker_kinds import BrokerError, locate_noida, noida_command, stop_noida_service, tansu_command


def test_noida_override_must_be_executable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOIDA_DB_BIN", "/bin/true")
    assert locate_noida() == ["/bin/true"]
    not_executable = tmp_path / "noida-db"
    not_executable.write_text("")
    monkeypatch.setenv("NOIDA_DB_BIN", str(not_executable))
    with pytest.raises(BrokerError, match="NOIDA_DB_BIN"):
        locate_noida()


def test_noida_serves_only_kafka_on_the_port_with_its_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOIDA_DB_BIN", "/bin/true")
    assert noida_command("127.0.0.1", 9093, Path("/data")) == [
        "/bin/true", "start", "--data-dir", "/data", "--host", "127.0.0.1", "--only", "kafka", "--kafka-port", "9093"]


def test_tansu_listens_and_advertises_the_same_address_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker_kinds, "locate_tansu", lambda: ["tansu"])
    assert tansu_command("127.0.0.1", 9094) == [
        "tansu", "broker", "--listener-url", "tcp://127.0.0.1:9094", "--advertised-listener-url",
        "tcp://127.0.0.1:9094", "--storage-engine", "memory://tansu/"]


def test_a_failed_noida_stop_only_warns(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                        tmp_path: Path) -> None:
    caplog.set_level(logging.WARNING, logger="devstack.broker_kinds")
    monkeypatch.setenv("NOIDA_DB_BIN", "/bin/false")
    stop_noida_service(tmp_path, timeout=5.0)
    monkeypatch.setenv("NOIDA_DB_BIN", str(tmp_path / "missing"))
    stop_noida_service(tmp_path, timeout=5.0)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("noida-db stop kafka exited with 1")
    assert "is not an executable file" in messages[1] and messages[1].endswith("falling back to SIGTERM")

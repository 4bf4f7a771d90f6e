"""The commands' shared wiring: time parsing, settings errors, finding a running stack, broker
errors in one line, the registry path, table output."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest
import typer

from cli.common import broker_errors, parse_time, print_table, registry_path, settings_from
from config.settings import PROJECT_ROOT, Settings
from devstack.discovery import StackInfo, announce

DEFAULT = datetime(2000, 1, 1, tzinfo=timezone.utc)


def test_parse_time_defaults_to_utc_and_keeps_an_offset() -> None:
    assert parse_time(None, DEFAULT) is DEFAULT
    assert parse_time("", DEFAULT) is DEFAULT
    assert parse_time("2026-01-01", DEFAULT) == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_time("2026-01-01T12:00:00+02:00", DEFAULT).utcoffset() == timedelta(hours=2)


def test_parse_time_rejects_what_is_not_iso() -> None:
    with pytest.raises(typer.BadParameter, match="not an ISO-8601 time"):
        parse_time("yesterday", DEFAULT)


def test_settings_from_exits_2_on_a_configuration_error(tmp_path, capsys) -> None:
    with pytest.raises(typer.Exit) as exc:
        settings_from(tmp_path / "missing.toml")
    assert exc.value.exit_code == 2
    assert "configuration error" in capsys.readouterr().err


def test_settings_from_applies_overrides(tmp_path) -> None:
    assert settings_from(None, data_dir=tmp_path, pricing_file=None).data_dir == tmp_path


UP = StackInfo("kafka://127.0.0.1:19092", "http://127.0.0.1:16066", os.getpid())


def test_a_running_stack_gives_the_broker_when_none_is_configured(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("SENTINEL_BROKER_URL", raising=False)
    monkeypatch.delenv("SENTINEL_CONFIG", raising=False)
    assert settings_from(None, find_stack=True, data_dir=tmp_path).broker_url == "kafka://127.0.0.1:9092"
    announce(tmp_path, UP)
    assert settings_from(None, find_stack=True, data_dir=tmp_path).broker_url == UP.broker_url
    assert settings_from(None, data_dir=tmp_path).broker_url == "kafka://127.0.0.1:9092"  # only when asked


def test_a_configured_broker_wins_over_a_running_stack(tmp_path, monkeypatch) -> None:
    announce(tmp_path, UP)
    config = tmp_path / "c.toml"
    config.write_text('broker_url = "kafka://10.0.0.1:9092"\n')
    monkeypatch.delenv("SENTINEL_BROKER_URL", raising=False)
    assert settings_from(config, find_stack=True, data_dir=tmp_path).broker_url == "kafka://10.0.0.1:9092"
    monkeypatch.setenv("SENTINEL_BROKER_URL", "kafka://127.0.0.1:9092")
    assert settings_from(None, find_stack=True, data_dir=tmp_path).broker_url == "kafka://127.0.0.1:9092"


def test_a_broker_error_is_one_line_naming_the_url(capsys) -> None:
    from aiokafka.errors import KafkaConnectionError

    with pytest.raises(typer.Exit) as exc:
        with broker_errors(Settings(broker_url="kafka://127.0.0.1:1")):
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)] " + "x" * 200)
    err = capsys.readouterr().err
    assert exc.value.exit_code == 1
    assert err.count("\n") == 1 and "kafka://127.0.0.1:1" in err and "Traceback" not in err


def test_registry_path_flag_then_setting_then_models_toml(tmp_path) -> None:
    flag = tmp_path / "flag.toml"
    assert registry_path(Settings(model_registry="conf.toml"), flag) == flag
    assert registry_path(Settings(model_registry="conf.toml")) == Path("conf.toml")
    assert registry_path(Settings()) == PROJECT_ROOT / "models.toml"


def test_print_table_as_json_and_csv(capsys) -> None:
    table = pa.table({"model": ["a", "b"], "jobs": [1, 2]})
    print_table(table, "json")
    assert json.loads(capsys.readouterr().out) == [{"model": "a", "jobs": 1}, {"model": "b", "jobs": 2}]
    print_table(table, "csv")
    assert capsys.readouterr().out.splitlines() == ['"model","jobs"', '"a",1', '"b",2']

"""The report's output formats without a warehouse: JSON to a file, an unknown format exits 2."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import typer

from cli.query import _emit_report


def test_json_report_goes_to_the_output_file(tmp_path, capsys) -> None:
    out = tmp_path / "r.json"
    _emit_report({"models": [{"model": "m", "jobs": 3}]}, "json", out)
    assert json.loads(out.read_text()) == {"models": [{"model": "m", "jobs": 3}]}
    assert capsys.readouterr().out == ""


def test_unknown_format_exits_2_naming_the_formats(capsys) -> None:
    with pytest.raises(typer.Exit) as exc:
        _emit_report({}, "yaml", None)
    assert exc.value.exit_code == 2
    assert "unknown format 'yaml'" in capsys.readouterr().err


def test_report_of_an_unknown_scorer_version_fails_naming_the_stored_ones(monkeypatch) -> None:
    import pyarrow as pa
    from typer.testing import CliRunner

    import warehouse.client
    from cli.main import app

    class Store:
        def query(self, text, parameters=None):
            assert "FROM sentinel.scores" in text  # the check comes before any report query
            return pa.table({"scorer_version": ["v2/clip"], "jobs": [5], "latest": [datetime(2026, 5, 2)]})

    monkeypatch.setattr(warehouse.client, "open_reader", lambda dsn: Store())
    result = CliRunner().invoke(app, ["report", "--scorer-version", "v1/clip"])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "report failed: no scores stored under scorer version 'v1/clip'" in text
    assert "v2/clip (5 jobs, latest 2026-05-02 00:00 UTC)" in text

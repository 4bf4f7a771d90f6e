"""The report's output formats without a warehouse: JSON to a file, an unknown format exits 2."""

from __future__ import annotations

import json

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

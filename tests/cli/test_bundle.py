"""`sentinel bundle verify` on a directory that is not a bundle: exit 2 with one line, no store opened."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cli.main import app


def test_verify_of_a_directory_without_manifest_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bundle", "verify", str(tmp_path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert "not a bundle" in result.output and "no manifest" in result.output


def test_export_takes_a_quarter_or_a_window_not_both(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bundle", "export", "--quarter", "2026Q1", "--from", "2026-01-01",
                                      str(tmp_path / "b")], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "not both" in result.output
    assert not (tmp_path / "b").exists()

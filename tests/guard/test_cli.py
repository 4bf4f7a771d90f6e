"""`sentinel guard` refuses a bad rubric before loading a model or binding a port."""

from __future__ import annotations

from typer.testing import CliRunner

from cli.main import app


def test_a_missing_or_invalid_rubric_exits_2(tmp_path) -> None:
    result = CliRunner().invoke(app, ["guard", "--rubric", str(tmp_path / "none.toml")], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "does not exist" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text('version = "x"\n[defaults]\nclip_min = "high"\n')
    result = CliRunner().invoke(app, ["guard", "--rubric", str(bad)], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "clip_min" in result.output

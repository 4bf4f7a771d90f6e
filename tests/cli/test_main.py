"""Every command answers --help, and its help names what the README promises."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app

COMMANDS = [[], ["demo"], ["up"], ["worker"], ["node"], ["report"], ["sql"], ["alerts"], ["replay"],
            ["trace", "generate"], ["dlq", "list"], ["dlq", "replay"], ["db", "migrate"], ["reference", "build"],
            ["reference", "list"], ["ratings", "import"], ["ratings", "list"], ["ratings", "url"], ["rescore"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "sentinel")
def test_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_cost_commands_take_pricing() -> None:
    for command in (["report"], ["worker"], ["up"], ["demo"]):
        assert "--pricing" in CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output


def test_trace_generate_writes_a_trace(tmp_path) -> None:
    from inference.trace import load_trace

    out = tmp_path / "t.jsonl"
    result = CliRunner().invoke(app, ["trace", "generate", str(out), "--jobs", "500", "--seed", "4"])
    assert result.exit_code == 0, result.output
    rows, errors = load_trace(out)
    assert len(rows) == 500 and errors == []

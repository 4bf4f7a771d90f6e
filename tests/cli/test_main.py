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


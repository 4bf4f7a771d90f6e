"""Every command answers --help, its help names what the README promises, and neither importing
the app nor asking it for help loads the heavy stacks (torch, Faust, the ClickHouse drivers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

COMMANDS = [[], ["demo"], ["up"], ["worker"], ["node"], ["guard"], ["report"], ["sql"], ["alerts"], ["replay"],
            ["trace", "generate"], ["dlq", "list"], ["dlq", "replay"], ["db", "migrate"], ["reference", "build"],
            ["reference", "list"], ["ratings", "import"], ["ratings", "list"], ["ratings", "url"], ["rescore"],
            ["bundle"], ["bundle", "export"], ["bundle", "verify"], ["import"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "sentinel")
def test_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_cost_commands_take_pricing() -> None:
    for command in (["report"], ["worker"], ["up"], ["demo"]):
        assert "--pricing" in CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output


HEAVY = ["torch", "open_clip", "faust", "chdb", "clickhouse_connect", "fastapi", "uvicorn"]
# "--import-only": import cli.main and stop; else run the app on argv as `sentinel` would
PROBE = f"""
import json, sys
import cli.main
if sys.argv[1:] != ["--import-only"]:
    try:
        cli.main.app(sys.argv[1:], prog_name="sentinel")
    except SystemExit:
        pass
print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""


@pytest.mark.parametrize("argv", [["--import-only"], ["--help"], ["sql", "--help"], ["dlq", "list", "--help"],
                                  ["bundle", "--help"], ["bundle", "verify", "--help"]],
                         ids=lambda a: " ".join(a))
def test_help_loads_no_heavy_module(argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []

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
    import warehouse.owner
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


def test_report_snapshot_is_refused_while_a_worker_owns_the_embedded_store(monkeypatch, tmp_path) -> None:
    """The worker takes snapshots itself; the CLI may not write into a store a worker owns."""
    from typer.testing import CliRunner

    import cli.query
    import reports.report
    import warehouse.client
    from cli.main import app

    monkeypatch.setenv("SENTINEL_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(warehouse.client, "open_reader", lambda dsn: object())
    monkeypatch.setattr(reports.report, "benchmark", lambda *a, **k: {"models": [], "niches": []})
    monkeypatch.setattr(warehouse.owner, "live_owner", lambda path: warehouse.owner.Owner(1, "http://w", "t"))
    monkeypatch.setattr(cli.query, "_emit_report", lambda *a: None)
    result = CliRunner().invoke(app, ["report", "--snapshot", "-f", "json"])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "snapshot not stored: a running worker owns this embedded store" in text


def test_report_snapshot_runs_on_a_real_store(tmp_path) -> None:
    """The CLI wiring of `sentinel report --snapshot`, twice, on a real (migrated, empty) chDB
    store: it says what it stored and the store stays readable (the rows themselves against the
    report: tests/reports/test_snapshots.py)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "SENTINEL_DATA_DIR": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True,
                              timeout=300)

    assert run("db", "migrate").returncode == 0
    for _ in range(2):
        done = run("report", "--snapshot", "--from", "2026-01-01", "--to", "2026-01-02", "-f", "json",
                   "-o", str(tmp_path / "r.json"))
        assert done.returncode == 0, done.stderr
        assert "stored 0 snapshot rows for 2026-01-01T00:00:00+00:00" in " ".join(done.stderr.split())
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["trend"] == [] and data["models"] == []
    count = run("sql", "SELECT count() AS n FROM sentinel.benchmark_snapshots", "-f", "json")
    assert count.returncode == 0 and json.loads(count.stdout)[0]["n"] == 0

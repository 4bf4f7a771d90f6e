"""Traffic commands without a broker: a generated trace loads back whole; dead letters filter by reason."""

from __future__ import annotations

from types import SimpleNamespace

from typer.testing import CliRunner

from cli import traffic
from cli.main import app
from config.settings import Settings


def test_trace_generate_writes_a_trace(tmp_path) -> None:
    from inference.trace import load_trace

    out = tmp_path / "t.jsonl"
    result = CliRunner().invoke(app, ["trace", "generate", str(out), "--jobs", "500", "--seed", "4"])
    assert result.exit_code == 0, result.output
    rows, errors = load_trace(out)
    assert len(rows) == 500 and errors == []


def test_dead_letters_keep_only_the_reason_asked_for(monkeypatch) -> None:
    import worker.dlq

    letters = [SimpleNamespace(reason=r, offset=i) for i, r in enumerate(["schema", "pricing", "schema"])]
    asked = []

    async def read(bootstrap: str, topic: str) -> list:
        asked.append((bootstrap, topic))
        return letters

    monkeypatch.setattr(worker.dlq, "read_dead_letters", read)
    settings = Settings(broker_url="kafka://h:1")
    assert [d.offset for d in traffic._dead_letters(settings, "t.dlq", "schema")] == [0, 2]
    assert [d.offset for d in traffic._dead_letters(settings, "t.dlq", None)] == [0, 1, 2]
    assert asked == [("h:1", "t.dlq")] * 2

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


class ListPublisher:
    """JobPublisher's interface without a broker: events land in ``published``."""

    published: list[dict] = []

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers

    async def __aenter__(self) -> "ListPublisher":
        return self

    async def __aexit__(self, *exc) -> None:
        pass

    async def publish(self, event: dict) -> None:
        self.published.append(event)

    async def flush(self) -> None:
        pass


def _replay(monkeypatch, tmp_path, rows, *args: str, env: dict | None = None):
    import inference.publisher
    from inference.trace import write_trace

    monkeypatch.setattr(inference.publisher, "JobPublisher", ListPublisher)
    ListPublisher.published = []
    trace = tmp_path / "t.jsonl"
    write_trace(rows, trace)
    result = CliRunner().invoke(app, ["replay", str(trace), *args], env=env)
    return result, ListPublisher.published


def test_replay_as_recorded_publishes_seeded_images_by_default(monkeypatch, tmp_path) -> None:
    from inference.trace import generate_trace

    rows = generate_trace(30, seed=5)
    result, published = _replay(monkeypatch, tmp_path, rows)
    assert result.exit_code == 0, result.output
    assert "published 30 jobs" in result.output and "stand-in" not in result.output
    assert [e["job_id"] for e in published] == [r.job_id for r in rows]
    assert {e["media_type"] for e in published} == {"image/png"}
    bad, _ = _replay(monkeypatch, tmp_path, rows, "--render", "gpu")
    assert bad.exit_code != 0 and "--render must be one of seeded, pipelines" in bad.output


def test_replay_names_models_and_niches_the_worker_will_refuse_before_publishing(monkeypatch, tmp_path) -> None:
    import dataclasses

    from inference.trace import generate_trace

    rows = [dataclasses.replace(r, model="house-xl") if i < 3 else r for i, r in enumerate(generate_trace(10, seed=6))]
    rows[5] = dataclasses.replace(rows[5], niche="wedding")
    result, published = _replay(monkeypatch, tmp_path, rows)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps long lines
    assert "dead-letter 3 jobs as unknown_model: 'house-xl' (3 jobs)" in text
    assert "SENTINEL_KNOWN_MODELS=house-xl" in text and "SENTINEL_KNOWN_NICHES=wedding" in text
    assert text.index("unknown_niche") < text.index("published 10 jobs") and len(published) == 10
    accepted, _ = _replay(monkeypatch, tmp_path, rows,
                          env={"SENTINEL_KNOWN_MODELS": "house-xl", "SENTINEL_KNOWN_NICHES": "wedding"})
    assert accepted.exit_code == 0 and "dead-letter" not in accepted.output


def test_dlq_replay_warns_when_the_catalog_will_refuse_the_letters_again(monkeypatch) -> None:
    import worker.dlq
    from conftest import make_event

    from contracts.codec import AvroCodec

    codec = AvroCodec("JobCompleted")
    refused = {**make_event(1), "model_id": "house-xl"}
    letters = [SimpleNamespace(reason="unknown_model", value=codec.encode(refused), offset=0),
               SimpleNamespace(reason="unknown_model", value=b"not avro", offset=1),
               SimpleNamespace(reason="corrupt_image", value=codec.encode({**make_event(2), "model_id": "other"}),
                               offset=2)]
    sent = []

    async def read(bootstrap: str, topic: str) -> list:
        return letters

    async def replay(bootstrap: str, chosen: list) -> int:
        sent.extend(chosen)
        return len(chosen)

    monkeypatch.setattr(worker.dlq, "read_dead_letters", read)
    monkeypatch.setattr(worker.dlq, "replay_dead_letters", replay)
    result = CliRunner().invoke(app, ["dlq", "replay"])
    text = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "dead-letter 1 job as unknown_model: 'house-xl' (1 job)" in text and "'other'" not in text
    assert "SENTINEL_KNOWN_MODELS=house-xl" in text and sent == letters


def test_guard_flags_need_live_mode_and_valid_values(tmp_path) -> None:
    trace = tmp_path / "t.jsonl"
    CliRunner().invoke(app, ["trace", "generate", str(trace), "--jobs", "3"])
    result = CliRunner().invoke(app, ["replay", str(trace), "--guard", "http://127.0.0.1:1"])
    assert result.exit_code == 2 and "need --live" in result.output
    result = CliRunner().invoke(app, ["node", "-m", "tiny-sd", "--plant-bad", "1.5"])
    assert result.exit_code == 2 and "within 0..1" in result.output

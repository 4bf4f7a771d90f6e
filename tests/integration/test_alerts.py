"""Quality-drift alerts end to end: scored traffic with a planted drop -> one incident that
fires and resolves -> alerts.quality (Avro) -> ClickHouse -> `sentinel alerts` and a webhook.
A failing webhook never holds up scoring."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
from conftest import consume_all, make_event, publish_events, publish_raw, wait_for

import sql as sql_files
from contracts.codec import AvroCodec
from warehouse.client import open_reader

pytestmark = pytest.mark.integration


class Receiver:
    """A local Slack-style webhook receiver that can be told to fail."""

    def __init__(self) -> None:
        self.payloads: list[dict] = []
        self.attempts = 0
        self.fail = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                receiver.attempts += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.payloads.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/B000/secret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def alert_stack(tmp_path_factory, receiver):
    from config.settings import load_settings
    from devstack.stack import EmbeddedStack

    settings = load_settings(env={}, data_dir=tmp_path_factory.mktemp("alerts"), partitions=2,
                             score_batch_wait_s=0.2, sink_batch_wait_s=0.3, app_id=f"sentinel-alerts-{os.getpid()}",
                             alert_webhook_url=receiver.url, alert_webhook_timeout_s=2.0, alert_webhook_attempts=2)
    stack = EmbeddedStack(settings).start()
    yield stack
    stack.stop()


def scored_events(model: str, niche: str, values: np.ndarray, start: datetime,
                  version: str) -> list[tuple[bytes, bytes]]:
    """JobScored records as the live scorer would emit them, with planted CLIP values."""
    codec = AvroCodec("JobScored")
    out = []
    for i, v in enumerate(values):
        record = {"job_id": f"{model}-{niche}-{i:06d}", "scorer_version": version, "model_id": model, "niche": niche,
                  "scored_at": start + timedelta(seconds=i), "clip_prompt_score": float(v),
                  "clip_reference_score": None, "embedding": [0.0] * 4, "flags": []}
        out.append((f"{model}|{niche}".encode(), codec.encode(record)))
    return out


def test_planted_drop_fires_once_and_resolves(alert_stack, receiver):
    rng = np.random.default_rng(11)
    baseline = rng.normal(28.0, 3.5, 1000)
    dropped = rng.normal(28.0 * 0.9, 3.5, 800)
    recovered = rng.normal(28.0, 3.5, 1200)
    t0 = datetime(2026, 2, 1, tzinfo=timezone.utc)
    publish_raw(alert_stack.broker.bootstrap, "jobs.scored",
                scored_events("flux-dev", "headshot", np.concatenate([baseline, dropped, recovered]), t0,
                              alert_stack.settings.scorer_version))
    # a stationary model x niche alongside: must stay quiet
    publish_raw(alert_stack.broker.bootstrap, "jobs.scored",
                scored_events("sdxl-lightning", "product", rng.normal(30.0, 3.5, 3000), t0,
                              alert_stack.settings.scorer_version))

    reader = open_reader(alert_stack.settings.dsn)
    query = sql_files.report("alerts")
    params = {"start": "1970-01-01 00:00:00.000", "end": "2200-01-01 00:00:00.000", "only_open": 0}
    wait_for(lambda: [r for r in reader.query(query, params).to_pylist() if r["status"] == "resolved"], 180,
                    "a resolved incident")
    incidents = reader.query(query, params).to_pylist()
    assert len(incidents) == 1, incidents
    incident = incidents[0]
    assert (incident["model"], incident["niche"], incident["metric"]) == ("flux-dev", "headshot", "clip_prompt_score")
    fired_after = (incident["fired_at"] - t0).total_seconds() - 1000  # sample index of firing - change point
    assert 0 <= fired_after <= 200
    assert incident["resolved_at"] > incident["fired_at"]
    assert incident["baseline"] == pytest.approx(28.0, abs=1.0)

    # the same incident on the Avro topic: one firing, one resolved, same alert id
    records = consume_all(alert_stack.broker.bootstrap, "alerts.quality", expect=2)
    alerts = [AvroCodec("QualityAlert").decode(r.value) for r in records]
    assert sorted(a["state"] for a in alerts) == ["firing", "resolved"]
    assert {a["alert_id"] for a in alerts} == {incident["alert_id"]}

    # and at the webhook, Slack-compatible
    wait_for(lambda: len(receiver.payloads) >= 2, 60, "two webhook deliveries")
    texts = [p["text"] for p in receiver.payloads]
    assert any("firing" in t and "flux-dev" in t for t in texts)
    assert any("resolved" in t for t in texts)
    assert all("attachments" in p for p in receiver.payloads)

    env = {**os.environ, **alert_stack.settings.to_env()}
    out = subprocess.run([sys.executable, "-m", "cli.main", "alerts", "--format", "json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert [a["alert_id"] for a in listed] == [incident["alert_id"]] and listed[0]["status"] == "resolved"


def test_failing_webhook_never_blocks_scoring(alert_stack, receiver):
    receiver.fail = True
    before = receiver.attempts
    rng = np.random.default_rng(5)
    t0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
    values = np.concatenate([rng.normal(28.0, 3.5, 600), rng.normal(22.0, 3.5, 300)])
    publish_raw(alert_stack.broker.bootstrap, "jobs.scored", scored_events("proprietary-a", "portrait", values, t0,
                                                                               alert_stack.settings.scorer_version))
    events = [make_event(i, seed=42) for i in range(60)]
    publish_events(alert_stack.broker.bootstrap, events)

    reader = open_reader(alert_stack.settings.dsn)
    ids = {e["job_id"] for e in events}

    def scored() -> bool:
        got = reader.query("SELECT job_id FROM sentinel.scores FINAL")
        return ids <= set(got.column("job_id").to_pylist())

    wait_for(scored, 120, "jobs scored while the webhook fails")
    wait_for(lambda: receiver.attempts > before, 60, "the webhook to be tried")
    params = {"start": "1970-01-01 00:00:00.000", "end": "2200-01-01 00:00:00.000", "only_open": 1}
    open_incidents = wait_for(lambda: reader.query(sql_files.report("alerts"), params).to_pylist(), 60,
                              "the incident stored although its webhook failed")
    assert [i["model"] for i in open_incidents] == ["proprietary-a"]
    # the webhook URL is a secret from the environment: failed deliveries never log it
    def logged_failure() -> str | None:
        text = alert_stack.worker.log_path.read_text(errors="replace")
        return text if "webhook attempt" in text else None

    worker_log = wait_for(logged_failure, 60, "a failed webhook delivery logged")
    assert "/hooks/T000/B000/secret" not in worker_log

"""The alerts agent (worker/agents/alerts.py): stored first, then posted to the webhook one
batch behind; a batch counts as finished only once its alerts were posted or given up on."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from types import SimpleNamespace

from contracts.codec import AvroCodec
from contracts.topics import ALERTS
from worker.agents import alerts as alerts_mod
from worker.agents.alerts import AlertsAgent
from worker.metrics import WorkerMetrics
from worker.stages.dead_letters import DeadLetters
from worker_fakes import ledger_for, protocol_with, Event, Stream, Topic, Warehouse

CODEC = AvroCodec("QualityAlert")


def alert(i: int) -> dict:
    return {"alert_id": f"a-{i}", "model_id": "flux-dev", "niche": "headshot", "metric": "clip_prompt_score",
            "window": "cusum", "baseline": 30.0, "current": 5.0, "samples": 20, "state": "firing",
            "detector": "cusum", "at": datetime(2026, 1, 5, tzinfo=timezone.utc)}


def test_alerts_are_stored_then_posted_and_only_then_finished(monkeypatch) -> None:
    posted, stored_when_posted = [], []
    rt = SimpleNamespace(warehouse=Warehouse(), metrics=WorkerMetrics(), sink_pool=ThreadPoolExecutor(1),
                         settings=SimpleNamespace(alert_webhook_url="http://hook.invalid/x", alert_webhook_timeout_s=1,
                                                  alert_webhook_attempts=1))

    async def fake_post(session, url, value, **kwargs):
        posted.append(value["alert_id"])
        stored_when_posted.append(sum(r.num_rows for _, r in rt.warehouse.inserts))
        return value["alert_id"] != "a-2"  # one receiver failure: counted, not retried forever

    monkeypatch.setattr(alerts_mod, "post_alert", fake_post)
    protocol = protocol_with(ledger_for(ALERTS, ["alerts"]))
    agent = AlertsAgent(rt, DeadLetters(Topic(), ALERTS, rt.metrics), protocol, 0.1)
    events = [Event(CODEC.encode(alert(i)), 0, i, topic=ALERTS) for i in range(4)]
    asyncio.run(agent(Stream([events[:2], events[2:]])))
    assert posted == ["a-0", "a-1", "a-2", "a-3"]
    assert stored_when_posted[0] >= 2 and stored_when_posted[2] >= 4  # each batch stored before its posts
    assert protocol.committable(ALERTS, 0) == 4
    webhook = {s.labels["outcome"]: s.value for m in rt.metrics.webhook.collect() for s in m.samples
               if s.name.endswith("_total")}
    assert webhook == {"delivered": 3.0, "failed": 1.0}

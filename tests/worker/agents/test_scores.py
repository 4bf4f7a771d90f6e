"""The scores agent (worker/agents/scores.py) without a broker: stored once, a drop in CLIP
fires one alert (sent before the detectors are written), garbage dead-lettered."""

from __future__ import annotations

import asyncio
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from contracts.codec import AvroCodec
from contracts.topics import JOBS_SCORED
from sentinel.drift import DriftConfig
from worker.agents.scores import ScoresAgent
from worker.metrics import WorkerMetrics
from worker.stages.dead_letters import DeadLetters
from worker.stages.drift import DriftStage
from worker_fakes import ledger_for, protocol_with, Event, Stream, Topic, Warehouse

CODEC = AvroCodec("JobScored")
T0 = datetime(2026, 1, 5, tzinfo=timezone.utc)


def score(i: int, clip: float, version: str = "v-test") -> dict:
    return {"job_id": f"job-{i}", "scorer_version": version, "model_id": "flux-dev", "niche": "headshot",
            "scored_at": T0 + timedelta(seconds=i), "clip_prompt_score": clip, "clip_reference_score": None,
            "embedding": [0.0] * 4, "flags": []}


def test_scores_are_stored_once_and_a_drop_fires_one_alert() -> None:
    rt = SimpleNamespace(warehouse=Warehouse(), metrics=WorkerMetrics(), sink_pool=ThreadPoolExecutor(1))
    alerts, dlq, table = Topic(), Topic(), {}
    protocol = protocol_with(ledger_for(JOBS_SCORED, ["scores"]))
    config = DriftConfig(baseline_n=50, min_n=5)
    agent = ScoresAgent(rt, DriftStage(table, config, "v-test"), DeadLetters(dlq, JOBS_SCORED, rt.metrics), alerts,
                        protocol, 100, 0.1)
    values = [score(i, 30.0 + (i % 3) * 0.1) for i in range(100)] + [score(i, 5.0) for i in range(100, 160)]
    values += [score(999, 5.0, version="v-other")]  # another scorer version never moves the detectors
    events = [Event(CODEC.encode(v), 0, i, topic=JOBS_SCORED) for i, v in enumerate(values)]
    events.append(Event(b"garbage", 0, len(values), topic=JOBS_SCORED))
    asyncio.run(agent(Stream([events[i:i + 40] for i in range(0, len(events), 40)])))

    stored = [j for t, rows in rt.warehouse.inserts for j in rows.column("job_id").to_pylist()]
    assert sorted(stored) == sorted(v["job_id"] for v in values)
    fired = [v for _, v, _ in alerts.sent]
    assert len(fired) == 1 and fired[0]["state"] == "firing" and fired[0]["current"] < 10
    assert [h["reason"] for _, _, h in dlq.sent] == [b"not_avro_single_object"]
    assert list(table) == ["flux-dev|headshot|clip_prompt_score"]
    assert protocol.committable(JOBS_SCORED, 0) == len(events)


def scores_agent(warehouse: Warehouse) -> tuple[ScoresAgent, SimpleNamespace]:
    rt = SimpleNamespace(warehouse=warehouse, metrics=WorkerMetrics(), sink_pool=ThreadPoolExecutor(1))
    agent = ScoresAgent(rt, DriftStage({}, DriftConfig(baseline_n=50, min_n=5), "v-test"),
                        DeadLetters(Topic(), JOBS_SCORED, rt.metrics), Topic(),
                        protocol_with(ledger_for(JOBS_SCORED, ["scores"])), 100, 0.1)
    return agent, rt


def test_a_re_sent_or_re_read_score_is_stored_once() -> None:
    """The jobs agent sends a JobScored again when it re-processes a job; this agent re-reads
    after a crash in other batches: each (job id, scorer version) inserted once (the fake
    warehouse keeps every insert, as ClickHouse does for another dedup token)."""
    wh = Warehouse()
    values = [score(i, 30.0) for i in range(30)] + [score(3, 31.0, version="v-other")]  # another version: its own row
    resent = [score(i, 30.0) for i in range(5, 25)] + [score(26, 30.0)] * 2  # twice within one batch too
    log = values + resent
    events = [Event(CODEC.encode(v), 0, i, topic=JOBS_SCORED) for i, v in enumerate(log)]
    agent, rt = scores_agent(wh)
    asyncio.run(agent(Stream([events[:10], events[10:20], events[20:]])))
    lookups = len(wh.queries)
    asyncio.run(agent(Stream([events[31:40]])))  # a re-read inside the process: answered from memory
    assert len(wh.queries) == lookups
    agent, rt = scores_agent(wh)  # restarted, nothing committed: reads everything again, cut by 7
    wh.down = 1  # the first lookup fails: retried
    asyncio.run(agent(Stream([events[i:i + 7] for i in range(0, len(events), 7)])))

    stored = Counter((r["job_id"], r["scorer_version"]) for r in wh.rows("sentinel.scores"))
    assert stored == Counter({(v["job_id"], v["scorer_version"]): 1 for v in values})
    assert rt.metrics.summary()["sink_retries"] == 1

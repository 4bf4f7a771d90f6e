"""What every fault test checks: a ledger of what was published and the exactness checks
against it (tests/integration/test_faults.py, tests/integration/test_scale_out.py).

The ledger holds the first copy of every job id (what must be stored, exactly once) and the
source offset of every record that must be dead-lettered (with its reason). The checks:

* ``sentinel.jobs FINAL`` holds exactly the ledger's job ids, one row each, with the first
  copy's content (its content hash); ``sentinel.scores FINAL`` one score per job;
* and without FINAL too: every job and score row was *inserted* once (what the materialized-view
  rollups count), and the rollups' sums equal the ledger's (``check_inserted_once``);
* the report's jobs, p50/p95 latency and cost per image per model equal numpy over the ledger;
* the live tallies equal an exact recomputation: no job counted twice;
* ``jobs.completed.dlq`` holds exactly the expected source offsets, each with its reason;
* the FID moment states hold every first copy exactly once.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

import numpy as np
import pytest
from conftest import image_bytes, make_event, wait_for

from contracts.codec import AvroCodec, content_hash
from worker.dlq import read_dead_letters

TOPIC = "jobs.completed"
PRICES = {"A100-80GB": 1.89, "L4": 0.80}  # pricing.toml, written out by hand
CODEC = AvroCodec("JobCompleted")


@dataclass
class Ledger:
    first: dict[str, dict] = field(default_factory=dict)  # job id -> the copy that must be stored
    dead: dict[tuple[int, int], str] = field(default_factory=dict)  # source (partition, offset) -> reason


def small(event: dict, salt: int) -> dict:
    """The same event with 16x16 images: fast to publish, decode and score."""
    out = dict(event, image=image_bytes(salt, size=16))
    if out["reference_image"] is not None:
        out["reference_image"] = image_bytes(salt + 7_777_777, size=16)
    return out


def jobs(seed: int, n: int) -> list[dict]:
    return [small(make_event(i, seed=seed), seed * 1_000_000 + i) for i in range(n)]


def record(event: dict, writer: AvroCodec = CODEC) -> tuple[bytes, bytes]:
    return event["job_id"].encode(), writer.encode(event)


async def _send(bootstrap: str, items: list[tuple[bytes | None, bytes]], chunk: int, pause: float,
                idempotent: bool) -> list[tuple[int, int]]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=idempotent,
                                max_request_size=4 * 1024 * 1024, linger_ms=5)
    await producer.start()
    try:
        where = []
        for start in range(0, len(items), chunk):
            futures = [await producer.send(TOPIC, value, key=key) for key, value in items[start:start + chunk]]
            where += [(md.partition, md.offset) for md in await asyncio.gather(*futures)]
            if pause:
                await asyncio.sleep(pause)
        return where
    finally:
        await producer.stop()


def send(bootstrap: str, items: list[tuple[bytes | None, bytes]], chunk: int = 200, pause: float = 0.0,
         idempotent: bool = True) -> list[tuple[int, int]]:
    """Publish raw records (key, value); returns each one's (partition, offset)."""
    return asyncio.run(_send(bootstrap, items, chunk, pause, idempotent))


async def _offsets(bootstrap: str, group: str, partitions: int) -> tuple[dict[int, int], dict[int, int]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(partitions)]
        committed = {tp.partition: (await consumer.committed(tp)) or 0 for tp in tps}
        ends = {tp.partition: off for tp, off in (await consumer.end_offsets(tps)).items()}
        return committed, ends
    finally:
        await consumer.stop()


def offsets(stack) -> tuple[dict[int, int], dict[int, int]]:
    """The worker group's committed offsets and the log end offsets of jobs.completed."""
    return asyncio.run(_offsets(stack.broker.bootstrap, stack.settings.app_id, stack.settings.partitions))


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def reader(stack):
    from warehouse.client import open_reader

    return open_reader(stack.settings.dsn)


def cost(e: dict) -> float:
    if e["provider"] == "api":
        return e["api_cost_usd"] + 0.002
    return e["gpu_seconds"] * PRICES[e["gpu_type"]] / 3600 * 1.15 + 0.002


def latency(e: dict) -> float:
    return (e["delivered_at"] - e["requested_at"]) / timedelta(milliseconds=1)


def dead_letters(stack) -> dict[tuple[int, int], set[str]]:
    letters = asyncio.run(read_dead_letters(stack.broker.bootstrap, f"{TOPIC}.dlq"))
    out: dict[tuple[int, int], set[str]] = defaultdict(set)
    for d in letters:
        assert d.headers["source_topic"] == TOPIC
        out[(int(d.headers["source_partition"]), int(d.headers["source_offset"]))].add(d.reason)
    return out


def check_moments_exact(stack, ledger: Ledger) -> None:
    """FID moment states (offset-idempotent, stored by the score agent): every first copy once
    (a run before the per-batch offset dedup showed groups one image over: Faust had handed
    the score agent a record twice in one batch)."""
    r = reader(stack)
    first = ledger.first
    want_n = defaultdict(int)
    for e in first.values():
        want_n[(e["model_id"], e["niche"])] += 1

    def moments() -> dict:  # stored states plus the tail rows no state holds (migration 0014)
        rows = r.query("SELECT model_id, niche, sum(n) AS n FROM (SELECT model_id, niche, n FROM "
                       "sentinel.feature_moments FINAL WHERE scorer_version = {v:String} UNION ALL "
                       "SELECT model_id, niche, toUInt64(1) AS n FROM sentinel.feature_moment_tail_unheld "
                       "WHERE scorer_version = {v:String}) GROUP BY model_id, niche",
                       {"v": stack.settings.scorer_version}).to_pylist()
        return {(x["model_id"], x["niche"]): x["n"] for x in rows}

    def states_short() -> str:  # which states miss which stored jobs' offsets
        jobs = r.query("SELECT model_id, niche, toUnixTimestamp(toStartOfInterval(requested_at, INTERVAL {b:UInt32} SECOND)) "
                       "AS bucket, source_partition AS p, groupArray(source_offset) AS offsets FROM sentinel.jobs FINAL "
                       "GROUP BY model_id, niche, bucket, p", {"b": stack.settings.moments_bucket_s}).to_pylist()
        states = r.query("SELECT model_id, niche, toUnixTimestamp(bucket) AS bucket, source_partition AS p, n, "
                         "last_offset, complete_below, applied_offsets FROM sentinel.feature_moments FINAL "
                         "WHERE scorer_version = {v:String}", {"v": stack.settings.scorer_version}).to_pylist()
        tail = r.query("SELECT model_id, niche, toUnixTimestamp(bucket) AS bucket, source_partition AS p, "
                       "groupArray(source_offset) AS tail FROM sentinel.feature_moment_tail_unheld "
                       "WHERE scorer_version = {v:String} GROUP BY model_id, niche, bucket, p",
                       {"v": stack.settings.scorer_version}).to_pylist()
        have = {(x["model_id"], x["niche"], x["bucket"], x["p"]): x for x in states}
        for x in tail:
            have.setdefault((x["model_id"], x["niche"], x["bucket"], x["p"]), {"n": 0})["tail"] = sorted(x["tail"])
        out = []
        for j in jobs:
            st = have.get((j["model_id"], j["niche"], j["bucket"], j["p"]))
            if st is None or st["n"] + len(st.get("tail", [])) != len(j["offsets"]):
                out.append(f"{j['model_id']}|{j['niche']}|{j['bucket']}|{j['p']}: want {sorted(j['offsets'])} got {st}")
        return "\n".join(out[:10])

    wait_for(lambda: moments() == dict(want_n), 60, "FID moments to hold every first copy exactly once",
             diagnose=lambda: f"got {moments()}\nwant {dict(want_n)}\n{states_short()}\n"
                              f"{stack.worker.log_tail(3000)}")


def check_inserted_once(r: Any, ledger: Ledger) -> None:
    """Rows counted as inserted, not as collapsed by FINAL: a re-processed job inserted again
    (a re-read batch cut differently gets another dedup token) hides under FINAL but is counted
    by every materialized-view rollup (0006 hourly rollups; 0012 report rollups when present)."""
    first = ledger.first
    n = len(first)

    def one(sql: str) -> dict:
        return r.query(sql).to_pylist()[0]

    inserted = {"jobs": one("SELECT count() AS n FROM sentinel.jobs")["n"],
                "scores": one("SELECT count() AS n FROM sentinel.scores")["n"]}
    assert inserted == {"jobs": n, "scores": n}, f"rows inserted (no FINAL) {inserted}, ledger {n} jobs"
    # 0006: jobs is a uniqExact state (exact even over a second copy); the sums are not
    hourly = one("SELECT sum(jobs) AS jobs, sum(gpu) AS gpu, sum(api) AS api FROM (SELECT uniqExactMerge(jobs) AS jobs, "
                 "sumMerge(gpu_seconds) AS gpu, sumMerge(api_cost_usd) AS api FROM sentinel.jobs_hourly "
                 "GROUP BY hour, model_id, niche, provider, gpu_type)")
    assert hourly["jobs"] == n, f"jobs_hourly jobs {hourly}, ledger {n}"
    assert hourly["gpu"] == pytest.approx(sum(e["gpu_seconds"] for e in first.values()), rel=1e-9), "jobs_hourly GPU-s"
    assert hourly["api"] == pytest.approx(sum(e["api_cost_usd"] or 0.0 for e in first.values()), rel=1e-9), \
        "jobs_hourly API cost"
    tables = {t["name"] for t in r.query("SELECT name FROM system.tables WHERE database = 'sentinel'").to_pylist()}
    if "report_jobs_hourly" in tables:  # 0012: SummingMergeTree counts, one per inserted row
        got = one("SELECT sum(attempts) AS n FROM sentinel.report_jobs_hourly")["n"]
        assert got == n, f"report_jobs_hourly attempts {got}, ledger {n}"
    if "report_scores_hourly" in tables:
        got = one("SELECT sum(scores) AS n FROM sentinel.report_scores_hourly")["n"]
        assert got == n, f"report_scores_hourly scores {got}, ledger {n}"


def check_exactly_once(stack, ledger: Ledger, live_rows: Callable[[Any], dict[str, dict]]) -> None:
    """Everything in the ledger stored once, reported and tallied exactly (``live_rows(stack)``:
    the live tallies per "model|niche"); the DLQ exact."""
    from reports import report as reports
    from warehouse.window import Window

    r = reader(stack)
    first = ledger.first
    stored = r.query("SELECT job_id, content_hash, gpu_seconds, prompt FROM sentinel.jobs FINAL").to_pylist()
    assert len(stored) == len(first), "jobs FINAL count"
    by_id = {row["job_id"]: row for row in stored}
    assert set(by_id) == set(first), "stored job ids"
    wrong = [j for j, row in by_id.items() if row["content_hash"] != content_hash(first[j])]
    assert not wrong, f"stored copies that are not the first copy: {wrong[:5]}"
    scored = r.query("SELECT job_id, count() AS n FROM sentinel.scores FINAL GROUP BY job_id").to_pylist()
    assert {s["job_id"] for s in scored} == set(first) and all(s["n"] == 1 for s in scored)
    check_inserted_once(r, ledger)

    # the report (FINAL views) against numpy over the first copies
    data = reports.benchmark(r, stack.settings.pricing(), Window())
    models = {m["model"]: m for m in data["models"]}
    per_model: dict[str, list[dict]] = defaultdict(list)
    for e in first.values():
        per_model[e["model_id"]].append(e)
    assert set(models) == set(per_model)
    for model, events in per_model.items():
        lat = np.array([latency(e) for e in events])
        assert models[model]["jobs"] == len(events), model
        assert models[model]["p95_latency_ms"] == pytest.approx(np.percentile(lat, 95), rel=1e-12), model
        assert models[model]["p50_latency_ms"] == pytest.approx(np.percentile(lat, 50), rel=1e-12), model
        assert models[model]["cost_per_image_usd"] == pytest.approx(np.mean([cost(e) for e in events]), rel=1e-9), model

    # live tallies: exact (a re-published job counted twice would show here)
    want: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "cost_usd": 0.0, "gpu_seconds": 0.0})
    for e in first.values():
        t = want[f"{e['model_id']}|{e['niche']}"]
        t["jobs"] += 1
        t["cost_usd"] += cost(e)
        t["gpu_seconds"] += e["gpu_seconds"]
    got = live_rows(stack)
    assert set(got) == set(want)
    for key, w in want.items():
        assert got[key]["jobs"] == w["jobs"], key
        assert got[key]["cost_usd"] == pytest.approx(w["cost_usd"], rel=1e-9), key
        assert got[key]["gpu_seconds"] == pytest.approx(w["gpu_seconds"], rel=1e-9), key

    # dead letters: exactly the expected source records (a crash may send one twice), each
    # with its reason, and no good record among them
    letters = dead_letters(stack)
    assert set(letters) == set(ledger.dead), f"unexpected {set(letters) - set(ledger.dead)}, " \
                                             f"missing {set(ledger.dead) - set(letters)}"
    assert {k: sorted(v) for k, v in letters.items()} == {k: [v] for k, v in ledger.dead.items()}
    check_moments_exact(stack, ledger)

"""The Faust app: thin agents around the scoring core and the ClickHouse sink.

Data flow (each agent decodes, batches, calls the core, emits):

    jobs.completed --score-->    jobs.scored ----store_scores--> sentinel.scores
                   --archive-->  sentinel.jobs, sentinel.job_images
                   --tally-->    table job_tallies (changelog-backed, offset-idempotent)
    anything undecodable/invalid --score--> jobs.completed.dlq (headers say why)

Delivery is at-least-once: Faust acks a ``take_events`` batch only after the loop body
returns, and flushes the producer before committing offsets. Sinks therefore retry until
ClickHouse accepts a batch (never raising out of the loop, which would ack it), and every
write is idempotent (ReplacingMergeTree + dedup tokens; tallies skip applied offsets).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import faust
from faust.types import EventT

from schemas.codec import DecodeError
from sentinel.cost import Pricing
from sentinel.scoring import BatchScorer, ScoreInput
from sentinel.tally import JobTally
from sentinel.validation import InvalidEvent, check_job, decode_image
from streams import codecs, rows
from streams.config import Settings
from streams.warehouse import ClickHouseWarehouse, arrow_to_ipc

log = logging.getLogger(__name__)

JOBS_COMPLETED = "jobs.completed"
JOBS_SCORED = "jobs.scored"


def dlq_name(topic: str) -> str:
    return f"{topic}.dlq"


@dataclass
class Counters:
    consumed: int = 0
    scored: int = 0
    dead_lettered: int = 0
    stored_jobs: int = 0
    stored_scores: int = 0
    sink_retries: int = 0
    started_at: float = field(default_factory=time.time)


@dataclass
class Runtime:
    """What the agents need that is not Kafka: opened once per worker process."""

    settings: Settings
    warehouse: ClickHouseWarehouse
    scorer: BatchScorer
    pricing: Pricing
    token: str = ""
    score_pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "score"))
    sink_pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "sink"))
    counters: Counters = field(default_factory=Counters)

    def close(self) -> None:
        self.score_pool.shutdown(wait=True)
        self.sink_pool.shutdown(wait=True)
        self.warehouse.close()


# -- core calls the agents share ----------------------------------------------------------

@dataclass(frozen=True)
class Accepted:
    event: dict[str, Any]
    partition: int
    offset: int


@dataclass(frozen=True)
class Rejected:
    raw: bytes
    key: bytes | None
    partition: int
    offset: int
    error: str
    reason: str
    detail: str


def triage(runtime: Runtime, events: Sequence[EventT]) -> tuple[list[Accepted], list[Rejected]]:
    """Decode and check a batch of raw JobCompleted messages."""
    accepted, rejected = [], []
    for ev in events:
        msg = ev.message
        try:
            event = codecs.decode("JobCompleted", ev.value)
            check_job(event, max_image_bytes=runtime.settings.max_image_bytes)
            if event["provider"] != "api" and event["gpu_type"] not in runtime.pricing.gpu_usd_per_hour:
                raise InvalidEvent("unpriced_gpu_type", f"{event['gpu_type']!r} is not in the pricing file")
            accepted.append(Accepted(event, msg.partition, msg.offset))
        except (DecodeError, InvalidEvent) as exc:
            rejected.append(Rejected(ev.value, ev.key, msg.partition, msg.offset, type(exc).__name__, exc.reason, exc.detail))
    return accepted, rejected


def score_batch(runtime: Runtime, accepted: Sequence[Accepted]) -> tuple[list[dict], list[tuple[Accepted, InvalidEvent]]]:
    """Decode images and score (runs in the score executor, never on the event loop)."""
    inputs, kept, bad = [], [], []
    for item in accepted:
        e = item.event
        try:
            image = decode_image(e["image"], e["media_type"])
            reference = decode_image(e["reference_image"]) if e.get("reference_image") else None
        except InvalidEvent as exc:
            bad.append((item, exc))
            continue
        inputs.append(ScoreInput(e["job_id"], e["prompt"], image, reference))
        kept.append(item)
    scores = runtime.scorer.score(inputs)
    now = datetime.now(timezone.utc)
    version = runtime.settings.scorer_version
    out = [
        {
            "job_id": s.job_id,
            "scorer_version": version,
            "model_id": item.event["model_id"],
            "niche": item.event["niche"],
            "scored_at": now,
            "clip_prompt_score": s.clip_prompt_score,
            "clip_reference_score": s.clip_reference_score,
            "embedding": s.embedding.tolist(),
            "flags": [],
        }
        for s, item in zip(scores, kept)
    ]
    return out, bad


def dedup_token(table: str, items: Sequence[tuple[int, int]]) -> str:
    """Same source offsets -> same token, so a retried batch is a no-op insert."""
    h = hashlib.sha1(table.encode())
    for partition, offset in items:
        h.update(f"{partition}:{offset},".encode())
    return h.hexdigest()


async def write_until_stored(runtime: Runtime, write: Callable[[], None], what: str) -> None:
    """Retry a sink write with capped exponential backoff until it succeeds.

    Raising here would end the agent's ``take_events`` loop, which acks the batch: offsets
    would be committed for rows never stored. So a sink waits out an unavailable warehouse.
    """
    delay = 0.2
    loop = asyncio.get_running_loop()
    while True:
        try:
            await loop.run_in_executor(runtime.sink_pool, write)
            return
        except Exception as exc:  # any driver error: the batch is retried as a whole
            runtime.counters.sink_retries += 1
            log.warning("storing %s failed (%s: %s); retrying in %.1fs", what, type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def tally_key(event: dict[str, Any], partition: int) -> str:
    return f"{event['model_id']}|{event['niche']}|{partition}"


# -- the app ------------------------------------------------------------------------------

def create_app(settings: Settings, runtime: Runtime | None = None) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        datadir=str(settings.data_dir / "faust"),
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        # Fast, predictable group joins on a local broker (PLATFORM notes).
        broker_session_timeout=6,
        broker_rebalance_timeout=6,
        broker_heartbeat_interval=1,
        broker_commit_interval=1.0,
        # noida-db never evicts a SIGKILLed member from its group (measured: no assignment
        # for a new member after 60 s); static membership lets the restarted worker replace it.
        consumer_group_instance_id=f"{settings.app_id}-{settings.worker_id}",
        producer_max_request_size=4 * 1024 * 1024,
        table_standby_replicas=0,
    )

    jobs_in = app.topic(JOBS_COMPLETED, key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
    scored_out = app.topic(JOBS_SCORED, key_serializer="raw", value_serializer=codecs.codec_name("JobScored"),
                           partitions=settings.partitions)
    scored_in = app.topic(JOBS_SCORED, key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
    dlq = app.topic(dlq_name(JOBS_COMPLETED), key_serializer="raw", value_serializer="raw", partitions=1)
    scored_dlq = app.topic(dlq_name(JOBS_SCORED), key_serializer="raw", value_serializer="raw", partitions=1)
    tallies = app.Table("job_tallies", default=None, partitions=settings.partitions,
                        schema=faust.Schema(key_serializer="json", value_serializer="json"))

    app.sentinel_runtime = runtime  # type: ignore[attr-defined]

    def rt() -> Runtime:
        if runtime is None:
            raise RuntimeError("this app was created without a Runtime (CLI-side instance)")
        return runtime

    async def dead_letter(topic: faust.TopicT, source: str, bad: Rejected) -> None:
        rt().counters.dead_lettered += 1
        log.warning("dead-letter %s[%d]@%d: %s %s", source, bad.partition, bad.offset, bad.reason, bad.detail)
        await topic.send(key=bad.key, value=bad.raw, force=True, headers={
            "error_class": bad.error.encode(),
            "reason": bad.reason.encode(),
            "message": bad.detail[:1000].encode(),
            "source_topic": source.encode(),
            "source_partition": str(bad.partition).encode(),
            "source_offset": str(bad.offset).encode(),
            "time": datetime.now(timezone.utc).isoformat().encode(),
        })

    @app.agent(jobs_in, name="score")
    async def score(stream: faust.StreamT) -> None:
        r = rt()
        loop = asyncio.get_running_loop()
        async for events in stream.take_events(settings.score_batch_size, within=settings.score_batch_wait_s):
            r.counters.consumed += len(events)
            accepted, rejected = triage(r, events)
            for bad in rejected:
                await dead_letter(dlq, JOBS_COMPLETED, bad)
            scored, bad_images = await loop.run_in_executor(r.score_pool, score_batch, r, accepted)
            for item, exc in bad_images:
                raw = next(ev for ev in events if ev.message.offset == item.offset and ev.message.partition == item.partition)
                await dead_letter(dlq, JOBS_COMPLETED, Rejected(raw.value, raw.key, item.partition, item.offset,
                                                                type(exc).__name__, exc.reason, exc.detail))
            for value in scored:
                await scored_out.send(key=value["job_id"].encode(), value=value, force=True)
            r.counters.scored += len(scored)

    @app.agent(jobs_in, name="archive")
    async def archive(stream: faust.StreamT) -> None:
        r = rt()
        async for events in stream.take_events(settings.sink_batch_size, within=settings.sink_batch_wait_s):
            accepted, _ = triage(r, events)  # the score agent dead-letters the rest
            # Corrupt images are rejected by the scorer; keep the archive to the same set.
            good = [a for a in accepted if _image_ok(a.event)]
            if not good:
                continue
            keys = [(a.partition, a.offset) for a in good]
            jobs = rows.job_rows([(a.event, a.partition, a.offset) for a in good])
            images = rows.image_rows([a.event for a in good])

            def write() -> None:
                r.warehouse.insert("sentinel.job_images", images, dedup_token("job_images", keys))
                r.warehouse.insert("sentinel.jobs", jobs, dedup_token("jobs", keys))

            await write_until_stored(r, write, f"{len(good)} jobs")
            r.counters.stored_jobs += len(good)

    @app.agent(scored_in, name="store_scores")
    async def store_scores(stream: faust.StreamT) -> None:
        r = rt()
        async for events in stream.take_events(settings.sink_batch_size, within=settings.sink_batch_wait_s):
            decoded, keys = [], []
            for ev in events:
                try:
                    decoded.append(codecs.decode("JobScored", ev.value))
                    keys.append((ev.message.partition, ev.message.offset))
                except DecodeError as exc:
                    await dead_letter(scored_dlq, JOBS_SCORED, Rejected(
                        ev.value, ev.key, ev.message.partition, ev.message.offset, type(exc).__name__, exc.reason, exc.detail))
            if not decoded:
                continue
            table = rows.score_rows(decoded)
            await write_until_stored(r, lambda: r.warehouse.insert("sentinel.scores", table, dedup_token("scores", keys)),
                                     f"{len(decoded)} scores")
            r.counters.stored_scores += len(decoded)

    @app.agent(jobs_in, name="tally")
    async def tally(stream: faust.StreamT) -> None:
        # One event at a time, not take_events: Faust writes a table's changelog to the
        # partition of the *current* event, which must be the event being applied.
        r = rt()
        async for ev in stream.events():
            accepted, _ = triage(r, [ev])
            if not accepted or not _image_ok(accepted[0].event):
                continue
            a = accepted[0]
            e = a.event
            key = tally_key(e, a.partition)
            state = JobTally.from_dict(tallies.get(key))
            cost = r.pricing.job_cost(provider=e["provider"], gpu_type=e["gpu_type"],
                                      gpu_seconds=e["gpu_seconds"], api_cost_usd=e.get("api_cost_usd"))
            if state.update(partition=a.partition, offset=a.offset, gpu_seconds=e["gpu_seconds"], cost_usd=cost):
                tallies[key] = state.to_dict()

    # -- web views (bound to localhost by default) ------------------------------------------

    @app.page("/sentinel/ready/")
    async def ready(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        # Ready = this worker holds partitions of the input topic and is not rebalancing.
        assigned = [tp for tp in app.consumer.assignment() if tp.topic == JOBS_COMPLETED]
        ok = bool(assigned) and not app.rebalancing
        return web.json({"ready": ok, "partitions": sorted(tp.partition for tp in assigned),
                         "scorer_version": settings.scorer_version}, status=200 if ok else 503)

    @app.page("/sentinel/stats/")
    async def stats(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.json(rt().counters.__dict__)

    @app.page("/sentinel/tallies/")
    async def tallies_view(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        merged: dict[str, JobTally] = {}
        for key, value in tallies.items():
            model, niche, _ = key.rsplit("|", 2)
            name = f"{model}|{niche}"
            merged[name] = merged.get(name, JobTally()).merge(JobTally.from_dict(value))
        return web.json({k: {**v.compute(), "applied": v.to_dict()["applied"]} for k, v in sorted(merged.items())})

    @app.page("/sentinel/query/")
    class Query(faust.web.View):
        async def post(self, request: faust.web.Request) -> faust.web.Response:
            r = rt()
            if request.headers.get("Authorization", "") != f"Bearer {r.token}" or not r.token:
                return self.error(401, "missing or wrong token")
            body = await request.json()
            loop = asyncio.get_running_loop()
            try:
                table = await loop.run_in_executor(
                    r.sink_pool, lambda: r.warehouse.query(body["sql"], body.get("parameters") or {}))
            except Exception as exc:  # report the database's own message to the caller
                return self.error(400, f"{type(exc).__name__}: {exc}")
            return self.bytes(arrow_to_ipc(table), content_type="application/vnd.apache.arrow.stream")

    return app


def _image_ok(event: dict[str, Any]) -> bool:
    try:
        decode_image(event["image"], event["media_type"])
        if event.get("reference_image"):
            decode_image(event["reference_image"])
        return True
    except InvalidEvent:
        return False

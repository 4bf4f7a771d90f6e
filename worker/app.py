"""The Faust app: thin agents around the scoring core and the ClickHouse sink.

Data flow (each agent decodes, batches, calls the core, emits):

    jobs.completed --score-->    jobs.scored ----store_scores--> sentinel.scores
                   --archive-->  sentinel.jobs, sentinel.job_images
                   --tally-->    table live_stats: per model|niche|bucket|partition tallies and
                                 latency t-digests (changelog-backed, offset-idempotent)
    anything undecodable/invalid --score--> jobs.completed.dlq (headers say why)

Delivery is at-least-once: each agent reports the records it finished (``finished``: after its
outputs were acknowledged or stored), a partition is committed only up to the first record
some agent of its topic has not finished (the commit ledger, worker/delivery/overrides.py), and Faust
flushes the producer (table changelogs) before committing. Sinks retry until ClickHouse
accepts a batch, and every write is idempotent (ReplacingMergeTree + dedup tokens; tallies and
moments skip applied offsets).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping, Sequence

import aiohttp
import faust
from faust.streams import _current_event
from faust.types import EventT

from contracts.codec import content_hash
from contracts.errors import DecodeError
from sentinel.cost import Pricing
from sentinel.drift import CusumDriftDetector, DriftConfig
from sentinel.scoring import BatchScorer, ScoreInput
from sentinel.latency import LiveStats, latency_parts
from sentinel.validation import check_job, decode_image
from contracts.errors import InvalidEvent
from worker import codecs
from worker.delivery import overrides as faust_fixes
from warehouse import rows
from config.settings import Settings
from worker.gate import BAD, CONFLICT, OK, Catalog, Gate, stored_copies
from worker.metrics import WorkerMetrics
from warehouse.moments import MomentInput, MomentStates, rows_token
from worker.ratings import register_ratings
from worker.views import register_views
from warehouse.client import ClickHouseWarehouse
from worker.webhook import post_alert

log = logging.getLogger(__name__)

JOBS_COMPLETED = "jobs.completed"
JOBS_SCORED = "jobs.scored"
ALERTS = "alerts.quality"
DRIFT_METRIC = "clip_prompt_score"
SEND_TIMEOUT_S = 30.0  # producer request timeout: a send not acknowledged by then has failed


def dlq_name(topic: str) -> str:
    return f"{topic}.dlq"


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
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    drift_config: DriftConfig = field(default_factory=DriftConfig)
    moments: MomentStates | None = None
    catalog: Catalog | None = None  # known models and niches (None: any)
    gate_pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "gate"))

    def __post_init__(self) -> None:
        if self.moments is None:
            self.moments = MomentStates(self.warehouse, self.settings.moments_bucket_s)

    def close(self) -> None:
        self.score_pool.shutdown(wait=True)
        self.gate_pool.shutdown(wait=True)
        self.sink_pool.shutdown(wait=True)
        self.warehouse.close()


# -- core calls the agents share ----------------------------------------------------------

@dataclass
class Accepted:
    """A decoded, checked JobCompleted record. Shared by the agents (``Triaged``): read-only."""

    event: dict[str, Any]
    partition: int
    offset: int
    _digest: str | None = field(default=None, repr=False, compare=False)

    def content_hash(self) -> str:
        """``contracts.codec.content_hash`` of the event, computed once."""
        if self._digest is None:
            self._digest = content_hash(self.event)
        return self._digest


@dataclass(frozen=True)
class Rejected:
    raw: bytes
    key: bytes | None
    partition: int
    offset: int
    error: str
    reason: str
    detail: str


class Triaged:
    """``triage`` results per source offset, shared by the agents that read the topic, so each
    record is decoded and checked once instead of once per agent.

    An entry goes once ``readers()`` agents have taken it (the first decodes it); a reader far
    behind the others, or a record read again after a seek, finds it gone and decodes the
    record again: the same result, since a log record never changes. Bounded by entries and by
    the records' bytes (images), oldest out first.
    """

    def __init__(self, readers: Callable[[], int], *, max_items: int = 4096,
                 max_bytes: int = 64 * 1024 * 1024) -> None:
        self.readers = readers
        self._readers: int | None = None
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0
        # (partition, offset) -> [result, takes left, bytes]
        self._entries: OrderedDict[tuple[int, int], list[Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, key: tuple[int, int]) -> Accepted | Rejected | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        entry[1] -= 1
        if entry[1] <= 0:
            del self._entries[key]
            self.size -= entry[2]
        return entry[0]

    def put(self, key: tuple[int, int], result: Accepted | Rejected, nbytes: int) -> None:
        if self._readers is None:  # asked once, at the first record: the agents are final by then
            self._readers = self.readers()
        left = self._readers - 1  # this reader has it already
        if left <= 0 or nbytes > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= old[2]
        self._entries[key] = [result, left, nbytes]
        self.size += nbytes
        while self._entries and (len(self._entries) > self.max_items or self.size > self.max_bytes):
            _, dropped = self._entries.popitem(last=False)
            self.size -= dropped[2]

    def clear(self) -> None:
        self._entries.clear()
        self.size = 0


def triage(runtime: Runtime, events: Sequence[EventT],
           shared: Triaged | None = None) -> tuple[list[Accepted], list[Rejected]]:
    """Decode and check a batch of raw JobCompleted messages, each source offset once (a batch
    can hold a record twice when Faust re-fetches after a seek). With ``shared``, a record
    another agent triaged already is not decoded again."""
    accepted, rejected = [], []
    seen: set[tuple[int, int]] = set()
    for ev in events:
        msg = ev.message
        key = (msg.partition, msg.offset)
        if key in seen:
            continue
        seen.add(key)
        result = shared.take(key) if shared is not None else None
        if result is None:
            result = _triage_one(runtime, ev, msg.partition, msg.offset)
            if shared is not None:
                shared.put(key, result, len(ev.value or b""))
        (accepted if isinstance(result, Accepted) else rejected).append(result)
    return accepted, rejected


def _triage_one(runtime: Runtime, ev: EventT, partition: int, offset: int) -> Accepted | Rejected:
    try:
        event = codecs.decode("JobCompleted", ev.value)
        check_job(event, max_image_bytes=runtime.settings.max_image_bytes)
        if event["provider"] != "api" and event["gpu_type"] not in runtime.pricing.gpu_usd_per_hour:
            raise InvalidEvent("unpriced_gpu_type", f"{event['gpu_type']!r} is not in the pricing file")
        if runtime.catalog is not None:
            runtime.catalog.check(event)
        return Accepted(event, partition, offset)
    except (DecodeError, InvalidEvent) as exc:
        return Rejected(ev.value, ev.key, partition, offset, type(exc).__name__, exc.reason, exc.detail)


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

    Raising here would end the agent's loop and restart it (the batch is read again, but only
    after a rebalance or a re-read); waiting keeps the order and the batch. So a sink waits out
    an unavailable warehouse.
    """
    delay = 0.2
    loop = asyncio.get_running_loop()
    while True:
        try:
            await loop.run_in_executor(runtime.sink_pool, write)
            return
        except Exception as exc:  # any driver error: the batch is retried as a whole
            runtime.metrics.sink_retries.inc()
            log.warning("storing %s failed (%s: %s); retrying in %.1fs", what, type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


@contextlib.contextmanager
def finished(app: faust.App, agent: str, events: Sequence[EventT]) -> Iterator[set[tuple[int, int]]]:
    """Around an agent's work on ``events``: once the body returns, ``agent`` has finished them
    and the commit may pass them (worker/delivery/overrides.py, the commit ledger) -- except the
    (partition, offset)s the body put into the set it was given (records it deferred). A body
    that raised or was cancelled reports nothing, so its records stay uncommitted and are read
    again -- whatever Faust acknowledges (``take_events`` acks a batch in a ``finally``)."""
    unfinished: set[tuple[int, int]] = set()
    yield unfinished
    ledger = getattr(app, "sentinel_ledger", None)
    if ledger is not None:
        for ev in events:
            msg = ev.message
            if (msg.partition, msg.offset) not in unfinished:
                ledger.finish(agent, msg.topic, msg.partition, msg.offset)


class OneBehind:
    """An agent's output stage, one batch behind: the agent hands batch N's outputs (sends,
    sink writes, each batch's ``finished`` inside) to a task and goes on with batch N+1's
    input stage (the gate, scoring) while they complete, so the score executor and the sink
    work at the same time. At most one batch in flight, so outputs keep the log order; a
    failed stage raises in the agent at its next ``push`` or at ``drain``, like an inline one."""

    def __init__(self) -> None:
        self._task: asyncio.Future | None = None

    async def push(self, stage: Any) -> None:
        """Wait for the previous batch's stage, then start ``stage`` (a coroutine)."""
        try:
            await self.drain()
        except BaseException:
            stage.close()  # never started: its batch reports nothing and is read again
            raise
        self._task = asyncio.ensure_future(stage)

    async def drain(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await task

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None


class TableStates:
    """Decoded states of a Faust table's values (tally, drift detectors), so an agent does not
    decode a key's value for every batch. A cached state is used only while the table still
    holds the very value object it was written as: a changelog recovery or another writer
    replaces the object, and the state is decoded again."""

    def __init__(self, table: Any, decode: Callable[[Any], Any]) -> None:
        self.table = table
        self.decode = decode  # stored value (None: no value) -> state
        self._cache: dict[Any, tuple[Any, Any]] = {}

    def get(self, key: Any) -> Any:
        stored = self.table.get(key)
        cached = self._cache.get(key)
        if cached is not None and stored is not None and cached[0] is stored:
            return cached[1]
        return self.decode(stored)

    def put(self, key: Any, state: Any, value: Any) -> None:
        """Write ``value`` (``state`` encoded) to the table and remember ``state`` for it."""
        self.table[key] = value
        self._cache[key] = (value, state)

    def forget(self, key: Any = None) -> None:
        """Drop one key's state, or all (states may be half-updated after a failed batch)."""
        if key is None:
            self._cache.clear()
        else:
            self._cache.pop(key, None)


@dataclass(frozen=True)
class Outgoing:
    key: bytes | None
    value: Any
    headers: dict[str, bytes] | None = None


def _outcome(fut: Any) -> Any:
    """A delivery future's result, its exception, or a TimeoutError while still pending."""
    if not fut.done():
        return TimeoutError(f"no broker acknowledgement within {2 * SEND_TIMEOUT_S:.0f}s")
    if fut.cancelled():
        return asyncio.CancelledError()
    return fut.exception() or fut.result()


async def send_delivered(runtime: Runtime, topic: faust.TopicT, messages: Sequence[Outgoing], what: str) -> None:
    """Send ``messages`` and return once the broker has acknowledged every one of them.

    Faust flushes its producer before committing, but a send that *failed* (a broker restart,
    a leader change, a metadata timeout) leaves nothing to flush and the offset is committed
    anyway: an output silently lost. So every delivery is awaited and failed ones are sent
    again with capped backoff (a resend can duplicate an output; consumers are idempotent).
    """
    pending = list(messages)
    delay = 0.2
    while pending:
        results: list[Any] = []
        for m in pending:
            try:
                results.append(await topic.send(key=m.key, value=m.value, headers=m.headers, force=True))
            except Exception as exc:  # the producer refused it outright
                results.append(exc)
        waiting = [r for r in results if not isinstance(r, BaseException)]
        if waiting:  # a backstop: expired batches fail on their own after SEND_TIMEOUT_S
            await asyncio.wait([asyncio.ensure_future(r) for r in waiting], timeout=2 * SEND_TIMEOUT_S)
        settled = [r if isinstance(r, BaseException) else _outcome(r) for r in results]
        failed = [(m, r) for m, r in zip(pending, settled) if isinstance(r, BaseException)]
        if not failed:
            return
        runtime.metrics.send_retries.inc()
        exc = failed[0][1]
        log.warning("sending %d of %d %s failed (%s: %s); retrying in %.1fs", len(failed), len(pending), what,
                    type(exc).__name__, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)
        pending = [m for m, _ in failed]


def bucket_start(ts: datetime, bucket_s: int) -> int:
    """Epoch seconds of the start of the event-time bucket holding ``ts``."""
    epoch = int(ts.timestamp())
    return epoch - epoch % bucket_s


def live_key(event: dict[str, Any], partition: int, bucket_s: int) -> str:
    """model|niche|bucket|partition: one source partition per key keeps offsets meaningful."""
    return f"{event['model_id']}|{event['niche']}|{bucket_start(event['requested_at'], bucket_s)}|{partition}"


def parse_live_key(key: str) -> tuple[str, str, int, int]:
    model, niche, bucket, partition = key.rsplit("|", 3)
    return model, niche, int(bucket), int(partition)


def live_snapshot(items: Any, since_epoch_s: float) -> dict[tuple[str, str], LiveStats]:
    """Merge the live stats of every bucket that ends after ``since_epoch_s``, per model x niche."""
    merged: dict[tuple[str, str], LiveStats] = {}
    for key, value in items:
        model, niche, bucket, _ = parse_live_key(key)
        if bucket + value.get("bucket_s", 0) <= since_epoch_s:
            continue
        state = LiveStats.from_dict(value["stats"])
        merged[(model, niche)] = merged[(model, niche)].merge(state) if (model, niche) in merged else state
    return merged


# -- the app ------------------------------------------------------------------------------

def create_app(settings: Settings, runtime: Runtime | None = None) -> faust.App:
    faust_fixes.install()  # event-losing Faust behaviour, repaired (worker/delivery/overrides.py)
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
        # a partition without a committed offset is read from its start, never from its end
        # (Faust's default too; explicit because losing the head of a new log is silent)
        consumer_auto_offset_reset="earliest",
        # Do not wait for in-flight events on a rebalance or stop: commit what is finished and let
        # the rest be redelivered (sinks and tallies are idempotent). Waiting deadlocked the
        # worker after a broker restart: the revoke waited for events that the conductor could
        # only deliver once the (suspended) flow resumed (reproduced, tests/integration/test_faults.py).
        stream_wait_empty=False,
        producer_max_request_size=4 * 1024 * 1024,
        # Faust's default (1200 s) lets a produce batch stuck across a broker restart hold a
        # delivery (and the flush before every commit) for 20 minutes; expired batches fail
        # their futures, and send_delivered sends them again.
        producer_request_timeout=SEND_TIMEOUT_S,
        table_standby_replicas=0,
    )

    jobs_in = app.topic(JOBS_COMPLETED, key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
    scored_out = app.topic(JOBS_SCORED, key_serializer="raw", value_serializer=codecs.codec_name("JobScored"),
                           partitions=settings.partitions)
    scored_in = app.topic(JOBS_SCORED, key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
    dlq = app.topic(dlq_name(JOBS_COMPLETED), key_serializer="raw", value_serializer="raw", partitions=1)
    scored_dlq = app.topic(dlq_name(JOBS_SCORED), key_serializer="raw", value_serializer="raw", partitions=1)
    alerts_out = app.topic(ALERTS, key_serializer="raw", value_serializer=codecs.codec_name("QualityAlert"),
                           partitions=1)
    alerts_in = app.topic(ALERTS, key_serializer="raw", value_serializer="raw", partitions=1)
    alerts_dlq = app.topic(dlq_name(ALERTS), key_serializer="raw", value_serializer="raw", partitions=1)
    drift_state = app.Table("drift_detectors", default=None, partitions=settings.partitions,
                            schema=faust.Schema(key_serializer="json", value_serializer="json"))
    live = app.Table("live_stats", default=None, partitions=settings.partitions,
                     schema=faust.Schema(key_serializer="json", value_serializer="json"))

    app.sentinel_runtime = runtime  # type: ignore[attr-defined]
    app.sentinel_live = live  # type: ignore[attr-defined]
    # a record Faust failed to hand to every agent is re-read, not skipped (worker/delivery/overrides.py)
    faust_fixes.install_hole_healer(app)

    def rt() -> Runtime:
        if runtime is None:
            raise RuntimeError("this app was created without a Runtime (CLI-side instance)")
        return runtime

    # score, archive and tally must keep the same set of jobs: one verdict per source offset
    # (image decodes, duplicate job ids), computed once, shared (worker/gate.py)
    gate = None if runtime is None else Gate(
        lambda ids: stored_copies(runtime.warehouse, ids), executor=runtime.gate_pool,
        on_duplicate=runtime.metrics.duplicates.inc, on_retry=runtime.metrics.sink_retries.inc)

    # each jobs.completed record decoded and checked once for all the agents that read it
    triaged = Triaged(lambda: sum(JOBS_COMPLETED in getattr(a.channel, "topics", ()) for a in app.agents.values()))
    app.sentinel_triaged = triaged  # type: ignore[attr-defined]

    def committed_offset(partition: int) -> int | None:
        """jobs.completed's committed offset for ``partition`` in this consumer (None: unknown)."""
        from faust.types import TP

        consumer = app.consumer
        return consumer._committed_offset.get(TP(JOBS_COMPLETED, partition)) if consumer is not None else None

    if gate is not None:  # at every seek to the committed offsets: judge in log order from there
        app.sentinel_on_reset = [lambda starts: gate.restart(  # type: ignore[attr-defined]
            {p: o for (topic, p), o in starts.items() if topic == JOBS_COMPLETED})]
    reread_asked: dict[int, tuple[int, float]] = {}  # partition -> (offset, when) of the last re-read

    async def reread_deferred(partition: int, count: int) -> None:
        """Read ``partition`` again from the offset the gate waits for (at most every 5 s per
        offset): the deferred records come back after it, in order."""
        from faust.types import TP

        offset = gate.next_offset(partition) if gate is not None else None
        last = reread_asked.get(partition)
        now = asyncio.get_running_loop().time()
        if offset is None or (last is not None and last[0] == offset and now - last[1] < 5.0):
            return
        reread_asked[partition] = (offset, now)
        log.warning("%s[%d]: %d records deferred past offset %d, not judged yet; re-reading from it",
                    JOBS_COMPLETED, partition, count, offset)
        await app.consumer.seek(TP(JOBS_COMPLETED, partition), offset)

    async def screen(events: Sequence[EventT], unfinished: set[tuple[int, int]]) -> tuple[list[Accepted], list[Rejected]]:
        """triage + the gate: the jobs to process, and the records to dead-letter (duplicates
        of stored jobs are in neither); records the gate deferred go into ``unfinished``."""
        accepted, rejected = triage(rt(), events, triaged)
        if gate is None or not accepted:
            if gate is not None and rejected:  # judged too: the gate keeps each partition in log order
                await gate.screen([(b.partition, b.offset, None) for b in rejected])
            return accepted, rejected
        verdicts = await gate.screen([(a.partition, a.offset, a.event, a.content_hash()) for a in accepted]
                                     + [(b.partition, b.offset, None) for b in rejected])
        raw = {(ev.message.partition, ev.message.offset): ev for ev in events}
        kept = []
        deferred: dict[int, int] = {}
        for a, verdict in zip(accepted, verdicts):
            if verdict is None:
                unfinished.add((a.partition, a.offset))
                deferred[a.partition] = deferred.get(a.partition, 0) + 1
            elif verdict.kind == OK:
                kept.append(a)
            elif verdict.kind in (BAD, CONFLICT):
                ev = raw[(a.partition, a.offset)]
                rejected.append(Rejected(ev.value, ev.key, a.partition, a.offset, "InvalidEvent", verdict.reason,
                                         verdict.detail))
        for partition, count in deferred.items():
            await reread_deferred(partition, count)
        return kept, rejected

    def dead_letter_message(source: str, bad: Rejected) -> Outgoing:
        rt().metrics.dead_letters.labels(source, bad.reason).inc()
        log.warning("dead-letter %s[%d]@%d: %s %s", source, bad.partition, bad.offset, bad.reason, bad.detail)
        return Outgoing(bad.key, bad.raw, {
            "error_class": bad.error.encode(),
            "reason": bad.reason.encode(),
            "message": bad.detail[:1000].encode(),
            "source_topic": source.encode(),
            "source_partition": str(bad.partition).encode(),
            "source_offset": str(bad.offset).encode(),
            "time": datetime.now(timezone.utc).isoformat().encode(),
        })

    async def dead_letter(topic: faust.TopicT, source: str, bad: Rejected) -> None:
        """Dead-letter one record; returns once the broker has acknowledged it."""
        await send_delivered(rt(), topic, [dead_letter_message(source, bad)], f"dead letter to {topic.get_topic_name()}")

    async def store_moments(r: Runtime, kept: Sequence[Accepted], scored: Sequence[dict]) -> None:
        # FID moments per model x niche x bucket x source partition, offset-idempotent; stored
        # before the batch counts as finished (see warehouse/moments.py)
        items = [MomentInput(a.event["model_id"], a.event["niche"], a.event["requested_at"], a.partition, a.offset,
                             value["embedding"]) for a, value in zip(kept, scored)]
        loop = asyncio.get_running_loop()
        changed = await loop.run_in_executor(r.sink_pool, r.moments.apply, settings.scorer_version, items,
                                             committed_offset)
        if changed is not None:
            token = rows_token(changed)
            await write_until_stored(r, lambda: r.warehouse.insert("sentinel.feature_moments", changed, token),
                                     f"{changed.num_rows} moment states")

    @app.on_partitions_revoked.connect
    async def _forget_cached_states(sender: Any, revoked: Any = None, **kwargs: Any) -> None:
        tallies.forget()
        detectors.forget()
        triaged.clear()
        if runtime is not None and runtime.moments is not None:
            runtime.moments.forget()

    @app.agent(jobs_in, name="score")
    async def score(stream: faust.StreamT) -> None:
        r = rt()
        loop = asyncio.get_running_loop()
        outputs = OneBehind()  # batch N is sent and stored while batch N+1 is scored
        try:
            async for events in stream.take_events(settings.score_batch_size, within=settings.score_batch_wait_s):
                r.metrics.consumed.inc(len(events))
                deferred: set[tuple[int, int]] = set()
                accepted, rejected = await screen(events, deferred)
                scored, bad_images = await loop.run_in_executor(r.score_pool, score_batch, r, accepted)
                await outputs.push(deliver_scores(r, events, deferred, accepted, rejected, scored, bad_images))
            await outputs.drain()
        finally:
            outputs.cancel()

    async def deliver_scores(r: Runtime, events: Sequence[EventT], deferred: set[tuple[int, int]],
                             accepted: list[Accepted], rejected: list[Rejected], scored: list[dict],
                             bad_images: list[tuple[Accepted, InvalidEvent]]) -> None:
        with finished(app, "score", events) as unfinished:
            unfinished |= deferred
            for item, exc in bad_images:
                raw = next(ev for ev in events if ev.message.offset == item.offset and ev.message.partition == item.partition)
                rejected.append(Rejected(raw.value, raw.key, item.partition, item.offset, type(exc).__name__,
                                         exc.reason, exc.detail))
            # every output acknowledged by the broker before the batch counts as finished (never a
            # committed offset for a dead letter or a score still in a producer buffer)
            await send_delivered(r, dlq, [dead_letter_message(JOBS_COMPLETED, bad) for bad in rejected],
                                 "dead letters")
            # keyed by model|niche: one partition sees all of a model x niche, in order, which
            # is what the drift detectors need
            await send_delivered(r, scored_out, [Outgoing(f"{v['model_id']}|{v['niche']}".encode(), v)
                                                 for v in scored], "scores")
            if scored:
                bad_ids = {id(item) for item, _ in bad_images}
                await store_moments(r, [a for a in accepted if id(a) not in bad_ids], scored)
            r.metrics.scored.inc(len(scored))
            if accepted and scored:
                newest = max(a.event["delivered_at"] for a in accepted)
                r.metrics.scoring_lag.set((datetime.now(timezone.utc) - newest).total_seconds())

    @app.agent(jobs_in, name="archive")
    async def archive(stream: faust.StreamT) -> None:
        r = rt()
        outputs = OneBehind()  # batch N is inserted while batch N+1 is screened and made into rows
        try:
            async for events in stream.take_events(settings.sink_batch_size, within=settings.sink_batch_wait_s):
                deferred: set[tuple[int, int]] = set()
                good, _ = await screen(events, deferred)  # the score agent dead-letters the rest
                keys = [(a.partition, a.offset) for a in good]
                jobs = rows.job_rows([(a.event, a.partition, a.offset, a.content_hash()) for a in good]) if good else None
                images = rows.image_rows([a.event for a in good]) if good else None
                await outputs.push(store_jobs(r, events, deferred, keys, jobs, images))
            await outputs.drain()
        finally:
            outputs.cancel()

    async def store_jobs(r: Runtime, events: Sequence[EventT], deferred: set[tuple[int, int]],
                         keys: list[tuple[int, int]], jobs: Any, images: Any) -> None:
        with finished(app, "archive", events) as unfinished:
            unfinished |= deferred
            if not keys:
                return

            def write() -> None:
                r.warehouse.insert("sentinel.job_images", images, dedup_token("job_images", keys))
                r.warehouse.insert("sentinel.jobs", jobs, dedup_token("jobs", keys))

            await write_until_stored(r, write, f"{len(keys)} jobs")
            r.metrics.rows_stored.labels("jobs").inc(len(keys))

    async def store_batch(events: Sequence[EventT], record: str, source: str, dlq_topic: faust.TopicT,
                          table: str, to_rows: Callable[[list[dict]], Any]) -> None:
        """Decode a batch of our own Avro records (dead-lettering any that fail) and store it."""
        r = rt()
        decoded, keys = [], []
        for ev in events:
            try:
                decoded.append(codecs.decode(record, ev.value))
                keys.append((ev.message.partition, ev.message.offset))
            except DecodeError as exc:
                await dead_letter(dlq_topic, source, Rejected(
                    ev.value, ev.key, ev.message.partition, ev.message.offset, type(exc).__name__, exc.reason, exc.detail))
        if not decoded:
            return
        arrow = to_rows(decoded)
        await write_until_stored(r, lambda: r.warehouse.insert(f"sentinel.{table}", arrow, dedup_token(table, keys)),
                                 f"{len(decoded)} {table}")
        r.metrics.rows_stored.labels(table).inc(len(decoded))

    @app.agent(scored_in, name="store_scores")
    async def store_scores(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.sink_batch_size, within=settings.sink_batch_wait_s):
            with finished(app, "store_scores", events):
                await store_batch(events, "JobScored", JOBS_SCORED, scored_dlq, "scores", rows.score_rows)

    newest_bucket: dict[int, int] = {}
    tallies = TableStates(live, lambda stored: LiveStats.from_dict(stored["stats"] if stored else None))

    @app.agent(jobs_in, name="tally")
    async def tally(stream: faust.StreamT) -> None:
        # One gate call and one table write per key per batch (the digests of a busy key are
        # tens of KB; writing them per event made the changelog the bottleneck). Faust writes a
        # table's changelog to the partition of the *current* event, and a key holds one source
        # partition, so each key is written with its own last event made current.
        r = rt()
        async for events in stream.take_events(settings.sink_batch_size, within=settings.score_batch_wait_s):
            with finished(app, "tally", events) as unfinished:
                good, _ = await screen(events, unfinished)
                raw = {(ev.message.partition, ev.message.offset): ev for ev in events}
                try:
                    _apply_tallies(r, good, raw)
                except BaseException:
                    tallies.forget()  # states may be half-updated in memory: decode from the table again
                    raise

    def _apply_tallies(r: Runtime, batch: Sequence[Accepted], raw: Mapping[tuple[int, int], EventT]) -> None:
        bucket_s = settings.live_bucket_s
        changed: dict[str, tuple[LiveStats, EventT]] = {}
        expire: dict[int, tuple[int, EventT]] = {}
        for a in batch:
            e = a.event
            key = live_key(e, a.partition, bucket_s)
            state = changed[key][0] if key in changed else tallies.get(key)
            cost = r.pricing.job_cost(provider=e["provider"], gpu_type=e["gpu_type"],
                                      gpu_seconds=e["gpu_seconds"], api_cost_usd=e.get("api_cost_usd"))
            if state.update(partition=a.partition, offset=a.offset, parts_ms=latency_parts(e),
                            gpu_seconds=e["gpu_seconds"], cost_usd=cost):
                changed[key] = (state, raw[(a.partition, a.offset)])
            bucket = bucket_start(e["requested_at"], bucket_s)
            if bucket > newest_bucket.get(a.partition, -1):
                newest_bucket[a.partition] = bucket
                expire[a.partition] = (bucket, raw[(a.partition, a.offset)])
        for key, (state, ev) in changed.items():
            state.tally.settle(ev.message.partition, committed_offset(ev.message.partition))
            _make_current(ev)
            tallies.put(key, state, {"bucket_s": bucket_s, "stats": state.to_dict()})
        for partition, (bucket, ev) in expire.items():
            _make_current(ev)
            for key in _expire(live, partition, bucket - settings.live_retention_s):
                tallies.forget(key)

    detectors = TableStates(drift_state, lambda stored: CusumDriftDetector.from_dict(stored, config=rt().drift_config)
                            if stored else None)

    @app.agent(scored_in, name="drift")
    async def drift(stream: faust.StreamT) -> None:
        # One table write per detector per batch (a changelog record per score was most of the
        # agent's cost). jobs.scored is keyed by model|niche, so each detector is fed in order
        # from one partition, and its changelog goes to that partition (its last event made
        # current, as in tally).
        r = rt()
        async for events in stream.take_events(settings.sink_batch_size, within=settings.score_batch_wait_s):
            with finished(app, "drift", events):
                try:
                    await _apply_drift(r, events)
                except BaseException:
                    detectors.forget()  # detectors may be half-updated in memory: decode from the table again
                    raise

    async def _apply_drift(r: Runtime, events: Sequence[EventT]) -> None:
        changed: dict[str, tuple[CusumDriftDetector, EventT]] = {}
        alerts: list[dict[str, Any]] = []
        for ev in events:
            try:
                value = codecs.decode("JobScored", ev.value)
            except DecodeError:
                continue  # store_scores dead-letters it
            if value["scorer_version"] != settings.scorer_version:
                continue  # rescoring under another version never moves the live detectors
            key = f"{value['model_id']}|{value['niche']}|{DRIFT_METRIC}"
            detector = changed[key][0] if key in changed else detectors.get(key)
            if detector is None:  # the first score of this model x niche
                detector = CusumDriftDetector(value["model_id"], value["niche"], DRIFT_METRIC, r.drift_config)
            transition = detector.update(value[DRIFT_METRIC], value["scored_at"].timestamp(),
                                         partition=ev.message.partition, offset=ev.message.offset)
            changed[key] = (detector, ev)
            if transition is not None:
                alert = transition.to_alert()
                log.warning("quality drift %s: %s/%s %s %.2f vs baseline %.2f", alert["state"], alert["model_id"],
                            alert["niche"], alert["metric"], alert["current"], alert["baseline"])
                alerts.append(alert)
        # the alerts acknowledged before the batch counts as finished (in the order they fired)
        await send_delivered(r, alerts_out, [Outgoing(a["alert_id"].encode(), a) for a in alerts], "alerts")
        for key, (detector, ev) in changed.items():
            _make_current(ev)
            detectors.put(key, detector, detector.to_dict())

    @app.agent(alerts_in, name="store_alerts")
    async def store_alerts(stream: faust.StreamT) -> None:
        async for events in stream.take_events(100, within=settings.sink_batch_wait_s):
            with finished(app, "store_alerts", events):
                await store_batch(events, "QualityAlert", ALERTS, alerts_dlq, "alerts", rows.alert_rows)

    @app.agent(alerts_in, name="notify")
    async def notify(stream: faust.StreamT) -> None:
        # Its own agent: a slow or dead webhook delays only notifications, never scoring or
        # storage. Each alert gets bounded attempts; a give-up is counted and logged.
        r = rt()
        session: aiohttp.ClientSession | None = None
        try:
            async for ev in stream.events():
                with finished(app, "notify", [ev]):
                    if not settings.alert_webhook_url:
                        continue
                    try:
                        alert = codecs.decode("QualityAlert", ev.value)
                    except DecodeError:
                        continue
                    session = session or aiohttp.ClientSession()
                    ok = await post_alert(session, settings.alert_webhook_url, alert,
                                          timeout_s=settings.alert_webhook_timeout_s,
                                          attempts=settings.alert_webhook_attempts)
                    r.metrics.webhook.labels("delivered" if ok else "failed").inc()
        finally:
            if session is not None:
                await session.close()

    register_views(app, settings, rt, live)
    register_ratings(app, settings, rt, dead_letter)
    faust_fixes.install_ledger(app)  # after every agent: the commit waits for each of them
    return app


def _make_current(event: EventT) -> None:
    """Make ``event`` Faust's current event in this task, as ``Stream.events()`` does per event
    (faust-streaming 0.15: the ``faust.streams._current_event`` context variable), so table
    writes go to its partition's changelog. Only the context variable: the stream's own
    ``current_event`` attribute is ``take_events``' bookkeeping and must not be touched."""
    _current_event.set(weakref.ref(event))


def _expire(live: Any, partition: int, before_epoch_s: int) -> list[str]:
    """Drop this partition's buckets older than the retention (called from the tally agent,
    whose current event is from ``partition``, so the tombstones go to the right changelog
    partition)."""
    old = [k for k in list(live.keys())
           if parse_live_key(k)[3] == partition and parse_live_key(k)[2] < before_epoch_s]
    for key in old:
        del live[key]
    return old

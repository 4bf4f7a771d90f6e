"""The Faust app: topics, tables and one agent per input topic, wired to the stages.

    jobs.completed   --jobs-->     jobs.scored, sentinel.jobs + job_images, live_stats table,
                                   FID moments; jobs.completed.dlq
    jobs.scored      --scores-->   sentinel.scores, drift detectors -> alerts.quality
    alerts.quality   --alerts-->   sentinel.alerts, webhook
    ratings.pairwise --ratings-->  sentinel.ratings

Delivery is at-least-once, made exact by idempotent sinks and offset-idempotent states; the
commit protocol (worker/delivery/commit.py) commits only what every agent finished.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
from faust.types import TP

from config.settings import Settings
from contracts.topics import ALERTS, JOBS_COMPLETED, JOBS_SCORED, RATINGS, dlq_name
from objects.store import ObjectStore
from worker import codecs
from worker.agents.alerts import AlertsAgent
from worker.agents.jobs import JobsAgent, JobStages, ScoreSlices
from worker.agents.ratings import RatingsAgent
from worker.agents.scores import ScoresAgent
from worker.delivery import overrides
from worker.delivery.commit import CommitProtocol, run_hole_healer
from worker.delivery.sends import SEND_TIMEOUT_S, ProducerTopic
from worker.ratings import register_rating_page
from worker.runtime import Runtime
from worker.stages.dead_letters import DeadLetters
from worker.stages.drift import DriftStage
from worker.stages.fid_drift import FidDriftStage, ReferenceCache
from worker.stages.gate import Gate, stored_copies
from worker.stages.screen import Rereads, Screen
from worker.stages.scoring import ScoreStage
from worker.stages.sinks import ArchiveStage, MomentsStage
from worker.stages.tally import TallyStage
from worker.stages.triage import Triage
from worker.views import register_views
from warehouse.moment_reads import bucket_moments
from warehouse.references import extractor_id, load_references

log = logging.getLogger(__name__)


def make_app(settings: Settings) -> faust.App:
    """The Faust app with the settings every worker shares (fast joins on a local broker,
    static membership, earliest offsets, bounded produce timeouts)."""
    extra: dict[str, Any] = {}
    if settings.producer_max_batch_size > 0:
        extra["producer_max_batch_size"] = settings.producer_max_batch_size
    if settings.static_membership:
        # noida-db never evicts a SIGKILLed member; static membership lets the restarted worker replace it
        extra["consumer_group_instance_id"] = f"{settings.app_id}-{settings.worker_id}"
    return faust.App(
        settings.app_id, broker=settings.broker_url, store="memory://",
        datadir=str(settings.data_dir / "faust" / settings.worker_id),
        autodiscover=False, topic_partitions=settings.partitions, topic_replication_factor=1,
        web_enabled=True, web_bind=settings.web_host, web_host=settings.web_host, web_port=settings.web_port,
        # fast, predictable group joins on a local broker (PLATFORM notes)
        broker_session_timeout=6, broker_rebalance_timeout=6, broker_heartbeat_interval=1,
        broker_commit_interval=1.0,
        # a partition without a committed offset is read from its start (losing a log's head is silent)
        consumer_auto_offset_reset="earliest",
        # never wait for in-flight events on a rebalance or stop: waiting deadlocked the worker
        # after a broker restart; unfinished records are read again (docs/delivery.md)
        stream_wait_empty=False,
        producer_max_request_size=4 * 1024 * 1024,
        # how long a produce batch waits for more records (aiokafka's linger_ms)
        producer_linger=settings.producer_linger_s,
        # a produce batch stuck across a broker restart fails after this, and is sent again
        producer_request_timeout=SEND_TIMEOUT_S,
        table_standby_replicas=0,
        **extra,
    )


class Topics:
    """The app's topics: raw bytes in, Avro out (worker/codecs.py)."""

    def __init__(self, app: faust.App, partitions: int) -> None:
        def topic(name: str, record: str | None = None, n: int = partitions) -> Any:
            value = codecs.codec_name(record) if record else "raw"
            return app.topic(name, key_serializer="raw", value_serializer=value, partitions=n)

        def out(name: str, record: str | None = None, n: int = partitions) -> ProducerTopic:
            return ProducerTopic(topic(name, record, n))

        self.jobs_in = topic(JOBS_COMPLETED)
        self.scored_in, self.scored_out = topic(JOBS_SCORED), out(JOBS_SCORED, "JobScored")
        self.alerts_in, self.alerts_out = topic(ALERTS, n=1), out(ALERTS, "QualityAlert", n=1)
        self.ratings_in, self.ratings_out = topic(RATINGS), out(RATINGS, "PairwiseRating")
        self.dlq = {name: out(dlq_name(name), n=1) for name in (JOBS_COMPLETED, JOBS_SCORED, ALERTS, RATINGS)}


def create_app(settings: Settings, runtime: Runtime | None = None) -> faust.App:
    """The worker's app; without a runtime (the CLI side) only topics and tables are declared."""
    overrides.install()  # checks faust's shape first: a clear error on an unexpected version
    app = make_app(settings)
    topics = Topics(app, settings.partitions)
    json_schema = faust.Schema(key_serializer="json", value_serializer="json")
    live = app.Table("live_stats", default=None, partitions=settings.partitions, schema=json_schema)
    detectors = app.Table("drift_detectors", default=None, partitions=settings.partitions, schema=json_schema)
    if runtime is None:
        return app
    protocol = CommitProtocol()
    run_hole_healer(app, protocol)
    wire_agents(app, settings, runtime, topics, protocol, live, detectors)
    register_views(app, settings, lambda: runtime, live, protocol.tracks)
    register_snapshot_timer(app, settings, runtime)
    register_rating_page(app, lambda: runtime, topics.ratings_out)
    protocol.seal(app)  # after every agent: the commit waits for each of them
    return app


def wire_agents(app: faust.App, settings: Settings, rt: Runtime, topics: Topics, protocol: CommitProtocol,
                live: Any, detectors: Any) -> None:
    def committed(partition: int) -> int | None:
        return overrides.committed_offset(app.consumer, TP(JOBS_COMPLETED, partition))

    async def seek(partition: int, offset: int) -> None:
        await app.consumer.seek(TP(JOBS_COMPLETED, partition), offset)

    objects = ObjectStore(settings.object_store_root)  # images by reference (claim check)
    gate = Gate(lambda ids: stored_copies(rt.warehouse, ids), executor=rt.gate_pool,
                on_duplicate=rt.metrics.duplicates.inc, on_retry=rt.metrics.sink_retries.inc, objects=objects)
    protocol.on_restart.append(lambda starts: gate.restart(
        {p: o for (topic, p), o in starts.items() if topic == JOBS_COMPLETED}))
    stages = JobStages(
        screen=Screen(Triage(rt.pricing, settings.max_image_bytes, rt.catalog), gate, Rereads(gate, seek)),
        score=ScoreStage(rt.scorer, settings.scorer_version, objects) if settings.score_enabled else None,
        letters=DeadLetters(topics.dlq[JOBS_COMPLETED], JOBS_COMPLETED, rt.metrics),
        scores_out=topics.scored_out,
        moments=MomentsStage(rt, settings.scorer_version, committed),
        archive=ArchiveStage(rt, gate.stored),
        tally=TallyStage(live, rt.pricing, settings.live_bucket_s, settings.live_retention_s, committed))
    drift = DriftStage(detectors, rt.drift_config, settings.scorer_version)
    fid_drift = fid_drift_stage(settings, rt, detectors)
    # one sink batch bounds a jobs batch (inserts, changelog writes); the scorer encodes it in
    # chunks of score_batch_size (ClipSpec.batch_size), a slow scorer in slices of score_slice_s
    batch_size = settings.sink_batch_size
    slices = ScoreSlices(settings.score_slice_s if settings.score_enabled else 0.0, settings.score_batch_size)
    agents = {
        "jobs": (topics.jobs_in, JobsAgent(rt, stages, protocol, batch_size, settings.score_batch_wait_s, slices,
                                             settings.sink_merge_events)),
        "scores": (topics.scored_in, ScoresAgent(rt, drift, DeadLetters(topics.dlq[JOBS_SCORED], JOBS_SCORED, rt.metrics),
                                                 topics.alerts_out, protocol, settings.sink_batch_size,
                                                 settings.score_batch_wait_s, fid_drift)),
        "alerts": (topics.alerts_in, AlertsAgent(rt, DeadLetters(topics.dlq[ALERTS], ALERTS, rt.metrics), protocol,
                                                 settings.sink_batch_wait_s)),
        "ratings": (topics.ratings_in, RatingsAgent(rt, DeadLetters(topics.dlq[RATINGS], RATINGS, rt.metrics),
                                                    protocol, settings.sink_batch_size, settings.sink_batch_wait_s)),
    }
    for name, (channel, agent) in agents.items():
        topic = channel.get_topic_name()
        feed = protocol.feed(app, topic, settings.feed_max_records, rt.metrics.feed_pauses.labels(topic).inc)
        app.agent(channel, name=name)(feed.actor(agent))

    @app.on_partitions_revoked.connect
    async def _forget_cached_states(sender: Any, revoked: Any = None, **kwargs: Any) -> None:
        stages.tally.forget()
        drift.forget()
        if fid_drift is not None:
            fid_drift.forget()
        if rt.moments is not None:
            rt.moments.forget()


def fid_drift_stage(settings: Settings, rt: Runtime, detectors: Any) -> FidDriftStage | None:
    """FID drift trackers in the detectors table, fed the stored moments (None: turned off)."""
    if not (settings.fid_drift_enabled and settings.score_enabled):
        return None
    extractor = extractor_id(settings.scorer_version)
    refs = ReferenceCache(lambda: {niche: r.moments for niche, r in load_references(rt.warehouse, extractor).items()})
    return FidDriftStage(detectors, settings.fid_drift_config(), settings.scorer_version,
                         lambda *args: bucket_moments(rt.warehouse, *args), refs)


def register_snapshot_timer(app: faust.App, settings: Settings, rt: Runtime) -> None:
    """Every ``snapshot_interval_s``: the runtime's benchmark snapshots, in a thread of their own
    (a report takes seconds on a large store: the sink thread must not wait for it); a failure is
    logged and the next tick tries again; windows taken twice replace each other."""
    if rt.snapshot is None or settings.snapshot_interval_s <= 0:
        return
    take = rt.snapshot
    pool = ThreadPoolExecutor(1, "snapshots")

    @app.timer(settings.snapshot_interval_s)
    async def benchmark_snapshots() -> None:
        try:
            rows = await asyncio.get_running_loop().run_in_executor(pool, take)
            log.info("benchmark snapshots: %d rows", rows)
        except Exception as exc:  # the warehouse may be down: the next tick retries
            log.warning("benchmark snapshots failed (%s: %s)", type(exc).__name__, exc)

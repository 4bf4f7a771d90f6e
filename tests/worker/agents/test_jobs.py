"""The jobs agent (worker/agents/jobs.py) driven without a broker: a batch stream in, every
output checked against an independent recomputation (the scorer on freshly decoded images,
counts and sums of the events), each image decoded once, and the commit ledger moved only by
finished batches."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from conftest import make_event
from config.settings import load_settings
from contracts.codec import AvroCodec
from contracts.topics import JOBS_COMPLETED
from sentinel.buckets import live_key
from sentinel.clip import ClipExtractor, ClipSpec
from sentinel.latency import LiveStats
from sentinel.scoring import BatchScorer, ScoreInput
from worker.agents.jobs import JobsAgent, JobStages, ScoreSlices
from worker.metrics import WorkerMetrics
from worker.stages import gate as gate_mod
from worker.stages import scoring as scoring_mod
from worker.stages.dead_letters import DeadLetters
from worker.stages.gate import Gate, stored_copies
from worker.stages.screen import Screen
from worker.stages.scoring import ScoreStage
from worker.stages.sinks import ArchiveStage, MomentsStage
from worker.stages.tally import TallyStage
from worker.stages.triage import Triage
from worker_fakes import ledger_for, protocol_with, Event, Moments, Stream, Topic, Warehouse

CODEC = AvroCodec("JobCompleted")


@pytest.fixture(scope="module")
def scorer() -> BatchScorer:
    return BatchScorer(ClipExtractor(ClipSpec(seed=0, threads=1)))


def build(tmp_path, scorer):
    from concurrent.futures import ThreadPoolExecutor

    settings = load_settings(env={}, data_dir=tmp_path)
    rt = SimpleNamespace(warehouse=Warehouse(), moments=Moments(), metrics=WorkerMetrics(),
                         score_pool=ThreadPoolExecutor(1), sink_pool=ThreadPoolExecutor(1))
    topics = SimpleNamespace(scores=Topic(), dlq=Topic())
    live: dict = {}
    protocol = protocol_with(ledger_for(JOBS_COMPLETED, ["jobs"], {0: 0, 1: 0}))
    gate = Gate(lambda ids: stored_copies(rt.warehouse, ids))
    gate.restart({0: 0, 1: 0})
    stages = JobStages(
        screen=Screen(Triage(settings.pricing(), settings.max_image_bytes), gate),
        score=ScoreStage(scorer, "v-test"), letters=DeadLetters(topics.dlq, JOBS_COMPLETED, rt.metrics),
        scores_out=topics.scores, moments=MomentsStage(rt, "v-test", lambda p: None), archive=ArchiveStage(rt, gate.stored),
        tally=TallyStage(live, settings.pricing(), settings.live_bucket_s, settings.live_retention_s, lambda p: None))
    return settings, rt, topics, live, protocol, JobsAgent(rt, stages, protocol, 32, 0.1)


def test_a_batch_is_scored_stored_tallied_and_dead_lettered_once(tmp_path, scorer, monkeypatch) -> None:
    decodes = Counter()
    for mod in (gate_mod, scoring_mod):
        real = mod.decode_image
        monkeypatch.setattr(mod, "decode_image", lambda data, media=None, real=real: decodes.update([data]) or real(data, media))
    settings, rt, topics, live, protocol, agent = build(tmp_path, scorer)
    events = [make_event(i) for i in range(12)]
    raw = [Event(CODEC.encode(e), i % 2, i // 2) for i, e in enumerate(events)]
    garbage = Event(b"not avro", 0, 6)
    asyncio.run(agent(Stream([raw[:7], raw[7:] + [garbage]])))

    # each image (and reference image) decoded exactly once, by the gate; the scorer reused it
    images = [e["image"] for e in events] + [e["reference_image"] for e in events if e["reference_image"]]
    assert sorted(decodes.values()) == [1] * len(images) and set(decodes) == set(images)
    # scores: the scorer applied to freshly decoded pixels, one per job, keyed model|niche
    sent = {v["job_id"]: (k, v) for k, v, _ in topics.scores.sent}
    assert sorted(sent) == sorted(e["job_id"] for e in events)

    def rgb(data):
        return Image.open(io.BytesIO(data)).convert("RGB")

    expected = scorer.score([ScoreInput(e["job_id"], e["prompt"], rgb(e["image"]),
                                        rgb(e["reference_image"]) if e["reference_image"] else None) for e in events])
    for s, e in zip(expected, events):
        key, value = sent[e["job_id"]]
        assert key == f"{e['model_id']}|{e['niche']}".encode()
        assert value["clip_prompt_score"] == pytest.approx(s.clip_prompt_score, abs=1e-5)
        assert (value["clip_reference_score"] is None) == (s.clip_reference_score is None)
        np.testing.assert_allclose(value["embedding"], s.embedding, atol=1e-5)
    # the garbage record dead-lettered with its reason, nothing else
    assert [h["reason"] for _, _, h in topics.dlq.sent] == [b"not_avro_single_object"]
    # jobs and images stored once each; FID moments fed every scored embedding
    stored = [r for t, rows in rt.warehouse.inserts if t == "sentinel.jobs" for r in rows.column("job_id").to_pylist()]
    assert sorted(stored) == sorted(e["job_id"] for e in events)
    assert sorted(i.offset for i in rt.moments.applied) == sorted(o for o in range(6) for _ in range(2))
    # tallies: jobs and GPU-seconds per key, recomputed from the events
    want_jobs, want_gpu = Counter(), Counter()
    for i, e in enumerate(events):
        key = live_key(e, i % 2, settings.live_bucket_s)
        want_jobs[key] += 1
        want_gpu[key] += e["gpu_seconds"]
    got = {k: LiveStats.from_dict(v["stats"]).tally.compute() for k, v in live.items()}
    assert {k: v["jobs"] for k, v in got.items()} == dict(want_jobs)
    for key, value in got.items():
        assert value["gpu_seconds"] == pytest.approx(want_gpu[key])
    # every record finished: the commit moves past all of them
    assert protocol.committable(JOBS_COMPLETED, 0) == 7 and protocol.committable(JOBS_COMPLETED, 1) == 6


def test_a_re_read_is_scored_and_tallied_again_but_stored_once(tmp_path, scorer) -> None:
    """A re-read (the hole healer, a rebalance) cut at other offsets: the jobs are scored and sent
    again (the scores agent skips stored pairs), tallied once (offset-idempotent), inserted once."""
    settings, rt, topics, live, protocol, agent = build(tmp_path, scorer)
    # deliveries one batch at a time: batches that wait together go out merged, and a merged
    # delivery sends a re-read record once (its first copy), so the counts below would depend
    # on how fast the output step ran (seen failing on a loaded machine)
    agent.merge_events = 1
    events = [make_event(i) for i in range(12)]
    raw = [Event(CODEC.encode(e), i % 2, i // 2) for i, e in enumerate(events)]
    asyncio.run(agent(Stream([raw[:5], raw[5:], raw[2:9], raw[:12]])))

    for table in ("sentinel.jobs", "sentinel.job_images"):
        stored = Counter(r["job_id"] for r in rt.warehouse.rows(table))
        assert stored == Counter(e["job_id"] for e in events), table
    sent = Counter(v["job_id"] for _, v, _ in topics.scores.sent)
    # every job in the first pass and the last, jobs 2..8 once more in between
    assert sent == Counter({e["job_id"]: 2 + (2 <= i < 9) for i, e in enumerate(events)})
    want = Counter(live_key(e, i % 2, settings.live_bucket_s) for i, e in enumerate(events))
    got = {k: LiveStats.from_dict(v["stats"]).tally.compute()["jobs"] for k, v in live.items()}
    assert got == dict(want)


def test_a_failed_output_stage_finishes_nothing(tmp_path, scorer) -> None:
    settings, rt, topics, live, protocol, agent = build(tmp_path, scorer)

    def broken(table, rows, token):
        raise RuntimeError("disk full")

    rt.warehouse.insert = broken

    async def bounded():
        with pytest.raises(asyncio.TimeoutError):  # the sink retries forever: it never gives up the batch
            await asyncio.wait_for(agent(Stream([[Event(CODEC.encode(make_event(0)), 0, 0)]])), 2.0)

    asyncio.run(bounded())
    assert protocol.committable(JOBS_COMPLETED, 0) == 0
    assert rt.metrics.summary()["sink_retries"] >= 1
    assert rt.metrics.summary()["processing_lag_seconds"] == 0  # nothing finished, nothing measured


def test_processing_lag_runs_from_batch_received_to_finished_event_time_lag_apart(tmp_path, scorer,
                                                                                 monkeypatch) -> None:
    from datetime import datetime, timezone

    from worker.agents import jobs as jobs_mod

    settings, rt, topics, live, protocol, agent = build(tmp_path, scorer)
    ticks = iter([100.0, 103.5])  # received, finished: the agent's only two monotonic reads per batch
    monkeypatch.setattr(jobs_mod, "time", SimpleNamespace(monotonic=lambda: next(ticks), perf_counter=time.perf_counter))
    events = [make_event(i) for i in range(3)]
    before = datetime.now(timezone.utc)
    asyncio.run(agent(Stream([[Event(CODEC.encode(e), 0, i) for i, e in enumerate(events)]])))
    after = datetime.now(timezone.utc)
    summary = rt.metrics.summary()
    assert summary["processing_lag_seconds"] == 3.5
    newest = max(e["delivered_at"] for e in events)  # the test events are from January 2026
    assert (before - newest).total_seconds() <= summary["event_time_lag_seconds"] <= (after - newest).total_seconds()


def test_the_next_batch_is_screened_while_one_is_scored_and_outputs_keep_log_order(tmp_path, scorer) -> None:
    settings, rt, topics, live, protocol, agent = build(tmp_path, scorer)
    events = [make_event(i) for i in range(9)]
    raw = [Event(CODEC.encode(e), 0, i) for i, e in enumerate(events)]
    screened_batches = []
    second_screened = threading.Event()
    overlapped = []
    real_screen, real_score = agent.stages.screen, agent.stages.score

    async def screen(batch):
        out = await real_screen(batch)
        screened_batches.append([ev.message.offset for ev in batch])
        if len(screened_batches) == 2:
            second_screened.set()
        return out

    def score(kept, pixels):  # the first batch's scoring waits until the second batch is screened
        if not overlapped:
            overlapped.append(second_screened.wait(10))
        return real_score(kept, pixels)

    agent.stages.screen, agent.stages.score = screen, score
    asyncio.run(agent(Stream([raw[:3], raw[3:6], raw[6:]])))
    assert overlapped == [True]
    assert screened_batches == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert [v["job_id"] for _, v, _ in topics.scores.sent] == [e["job_id"] for e in events]
    stored = [r for t, rows in rt.warehouse.inserts if t == "sentinel.jobs" for r in rows.column("job_id").to_pylist()]
    assert stored == [e["job_id"] for e in events]
    assert protocol.committable(JOBS_COMPLETED, 0) == 9


def test_the_next_batch_is_read_while_one_is_screened(tmp_path, scorer) -> None:
    """Faust fills the next batch only while the agent waits in take_events: the stream is asked
    for batch 2 before batch 1's screen ends, and screens still run one at a time, in order."""
    settings, rt, topics, live, protocol, agent = build(tmp_path, scorer)
    events = [make_event(i) for i in range(6)]
    raw = [Event(CODEC.encode(e), 0, i) for i, e in enumerate(events)]
    log = []
    real_screen = agent.stages.screen

    async def screen(batch):
        log.append(("screen", batch[0].message.offset))
        await asyncio.sleep(0.05)
        out = await real_screen(batch)
        log.append(("screened", batch[0].message.offset))
        return out

    class Reading(Stream):
        async def take_events(self, n, within):
            for batch in self.batches:
                log.append(("read", batch[0].message.offset))
                yield batch

    agent.stages.screen = screen
    asyncio.run(agent(Reading([raw[:3], raw[3:]])))
    assert log.index(("read", 3)) < log.index(("screened", 0)) < log.index(("screen", 3))
    stored = [r for t, rows in rt.warehouse.inserts if t == "sentinel.jobs" for r in rows.column("job_id").to_pylist()]
    assert stored == [e["job_id"] for e in events]
    assert protocol.committable(JOBS_COMPLETED, 0) == 6


def test_score_slices_follow_the_measured_rate_and_keep_each_offset_once() -> None:
    events = [Event(b"x", i % 2, i // 2) for i in range(10)]
    slices = ScoreSlices(target_s=1.0, floor=3)
    assert slices.cut(events + events[:2]) == [events]  # no rate measured yet: the whole batch, once
    slices.observe(4, 2.0)  # 0.5 s per job: 2 per second, below the floor
    assert [len(s) for s in slices.cut(events)] == [3, 3, 3, 1]
    assert [ev for s in slices.cut(events) for ev in s] == events  # log order kept
    slices.observe(1000, 1.0)  # a moving average: 0.3 * 0.001 + 0.7 * 0.5
    assert slices.per_job_s == pytest.approx(0.3 * 0.001 + 0.7 * 0.5)
    for _ in range(30):
        slices.observe(1000, 1.0)
    assert slices.size() == pytest.approx(1000, rel=0.05) and slices.cut(events) == [events]
    assert ScoreSlices(0.0, 3).cut(events) == [events]  # 0: never cut


def test_a_slow_scorer_gets_slices_each_finished_and_stored_on_its_own(tmp_path, scorer) -> None:
    settings, rt, topics, live, protocol, agent = build(tmp_path, scorer)
    agent.slices = ScoreSlices(target_s=3.0, floor=3)
    agent.slices.per_job_s = 1.0  # as if measured: 3 jobs per slice
    real_score = agent.stages.score
    # slices further apart than the output step lingers (batch_wait_s 0.1): none waits for the next
    agent.stages.score = lambda kept, pixels: time.sleep(0.25) or real_score(kept, pixels)
    events = [make_event(i) for i in range(9)]
    asyncio.run(agent(Stream([[Event(CODEC.encode(e), 0, i) for i, e in enumerate(events)]])))
    inserts = [rows.column("job_id").to_pylist() for t, rows in rt.warehouse.inserts if t == "sentinel.jobs"]
    assert inserts == [[e["job_id"] for e in events[i:i + 3]] for i in (0, 3, 6)]
    assert [v["job_id"] for _, v, _ in topics.scores.sent] == [e["job_id"] for e in events]
    assert protocol.committable(JOBS_COMPLETED, 0) == 9
    assert agent.slices.per_job_s < 1.0  # the tiny CLIP's measured rate replaced the primed one


def test_a_backlog_goes_out_merged_one_insert_per_table_up_to_the_cap(tmp_path, scorer) -> None:
    settings, rt, topics, live, protocol, agent = build(tmp_path, scorer)
    events = [make_event(i) for i in range(12)]
    raw = [Event(CODEC.encode(e), 0, i) for i, e in enumerate(events)]
    agent.backlog = lambda batch: True  # the log holds more after every batch
    agent.merge_events = 6
    asyncio.run(agent(Stream([raw[i:i + 3] for i in (0, 3, 6, 9)])))
    inserts = [rows.column("job_id").to_pylist() for t, rows in rt.warehouse.inserts if t == "sentinel.jobs"]
    ids = [e["job_id"] for e in events]
    # the first batch goes at once (no pace measured yet); then two merge up to the cap of 6
    assert inserts == [ids[:3], ids[3:9], ids[9:]]
    assert [v["job_id"] for _, v, _ in topics.scores.sent] == ids
    assert protocol.committable(JOBS_COMPLETED, 0) == 12
    # the tally counts each job once, as if the batches had gone one by one
    assert sum(LiveStats.from_dict(v["stats"]).tally.jobs for v in live.values()) == 12


def test_a_re_read_copy_merged_with_its_first_copy_goes_out_once(tmp_path, scorer) -> None:
    settings, rt, topics, live, protocol, agent = build(tmp_path, scorer)
    events = [make_event(i) for i in range(6)]
    raw = [Event(CODEC.encode(e), 0, i) for i, e in enumerate(events)]
    agent.backlog = lambda batch: True
    # offsets 3-5 come again (a seek re-read them) while their first copies wait to go out
    again = [Event(CODEC.encode(e), 0, i + 3) for i, e in enumerate(events[3:])]
    asyncio.run(agent(Stream([raw[:3], raw[3:], again])))
    ids = [e["job_id"] for e in events]
    stored = [r for t, rows in rt.warehouse.inserts if t == "sentinel.jobs" for r in rows.column("job_id").to_pylist()]
    assert stored == ids  # once each, in log order
    assert [v["job_id"] for _, v, _ in topics.scores.sent] == ids
    assert protocol.committable(JOBS_COMPLETED, 0) == 6
    assert sum(LiveStats.from_dict(v["stats"]).tally.jobs for v in live.values()) == 6


def test_merging_a_deferred_record_with_its_judged_copy_counts_it_judged() -> None:
    from worker.agents.jobs import Output
    from worker.stages.screen import Screened
    from worker.stages.triage import Accepted

    def accepted(offset):
        return Accepted(event={"job_id": f"j{offset}"}, partition=0, offset=offset)

    ev = {o: Event(b"x", 0, o) for o in range(3)}
    first = Output([ev[0], ev[1]], Screened(kept=[accepted(0)], deferred={(0, 1)}), [{"s": 0}], [], 2.0, 1)
    later = Output([ev[1], ev[2]], Screened(kept=[accepted(1)], deferred={(0, 2)}), [{"s": 1}], [], 1.0, 1)
    merged = Output.merge([first, later])
    assert [(a.offset) for a in merged.screened.kept] == [0, 1] and merged.scored == [{"s": 0}, {"s": 1}]
    assert merged.screened.deferred == {(0, 2)}  # (0, 1) was judged by the later copy: finished with it
    assert [e.message.offset for e in merged.events] == [0, 1, 2] and merged.received == 1.0

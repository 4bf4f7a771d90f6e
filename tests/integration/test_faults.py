"""Faults and bad input: nothing lost, nothing doubled, nothing stalled (issue 8).

One real embedded stack (noida-db broker, Faust worker process, chDB) for the module; the tests
run in order and share a ledger of what was published: the first copy of every job id (what
must be stored, exactly once) and the source offset of every record that must be dead-lettered
(with its reason). After each fault the whole ledger is checked again:

* ``sentinel.jobs FINAL`` holds exactly the ledger's job ids, one row each, with the first
  copy's content (its content hash); ``sentinel.scores FINAL`` one score per job;
* the report's jobs, p50/p95 latency and cost per image per model equal numpy over the ledger;
* the live tallies (``/sentinel/live``) equal an exact recomputation: no job counted twice,
  re-published duplicates included;
* ``jobs.completed.dlq`` holds exactly the expected source offsets, each with its reason.

Faults: SIGKILL of the worker at seeded random points during a 2,000-job publish (4 kills, one
right after a restart, before the new worker's first commit); a broker restart mid-stream
(noida-db keeps its log on disk); ClickHouse unavailable for 30 s (the chaos switch
``<data_dir>/faults/clickhouse_down``) with a check that no offset of an unstored job is
committed meanwhile; bad records of every kind among good ones; schema evolution with a real
worker on each schema version; and secrets that never reach the worker log.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_event, wait_for
from PIL import Image

import contracts.codec as codec
from contracts.codec import AvroCodec
from worker.dlq import read_dead_letters
from devstack.broker import free_port
from exactness import Ledger, check_exactly_once, dead_letters, get_json, jobs, offsets, reader, record, send, small

pytestmark = pytest.mark.integration

HOOK_SECRET = "T0FAULTS/B0FAULTS/xoxb-s3cr3t-webhook-token"
MAX_IMAGE_BYTES = 20_000


def live_rows(stack) -> dict[str, dict]:
    rows = get_json(f"{stack.worker.url}/sentinel/live/?window=all")["rows"]
    return {f"{r['model']}|{r['niche']}": r for r in rows}


def changelog_matches_table(stack) -> bool:
    """The live_stats changelog (what a restarted worker recovers) says what the table says."""
    records = asyncio.run(read_dead_letters(stack.broker.bootstrap, f"{stack.settings.app_id}-live_stats-changelog"))
    logged: dict[str, Any] = {}
    for c in records:
        logged[json.loads(c.key)] = json.loads(c.value) if c.value else None
    return {k: v for k, v in logged.items() if v is not None} == get_json(f"{stack.worker.url}/sentinel/sketches/")


def consumed(stack) -> float:
    """Events the current worker process has consumed (its own counter, reset by a restart)."""
    try:
        return get_json(f"{stack.worker.url}/sentinel/stats/")["consumed"]
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return -1


def tallied(stack) -> int:
    try:
        return sum(r["jobs"] for r in live_rows(stack).values())
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return -1  # the worker is restarting


def wait_until_done(stack, ledger: Ledger, timeout: float = 300) -> None:
    n = len(ledger.first)
    wait_for(lambda: tallied(stack) >= n, timeout, f"{n} jobs tallied",
             diagnose=lambda: f"tallied {tallied(stack)}\n{stack.worker.log_tail(6000)}")
    r = reader(stack)
    wait_for(lambda: r.query("SELECT (SELECT count() FROM sentinel.jobs FINAL) AS jobs, "
                             "(SELECT count() FROM sentinel.scores FINAL) AS scores").to_pylist()[0] == {"jobs": n, "scores": n},
             timeout, f"{n} jobs stored and scored", diagnose=lambda: progress(stack, r))
    wait_for(lambda: set(dead_letters(stack)) >= set(ledger.dead), 60, "the expected dead letters",
             diagnose=lambda: f"missing {set(ledger.dead) - set(dead_letters(stack))}")


def progress(stack, r) -> str:
    """What a stuck wait shows: counts, the worker's counters, offsets, the log tail."""
    counts = r.query("SELECT (SELECT count() FROM sentinel.jobs FINAL) AS jobs, "
                     "(SELECT count() FROM sentinel.scores FINAL) AS scores, "
                     "(SELECT count() FROM sentinel.scores) AS score_rows").to_pylist()[0]
    try:
        stats = get_json(f"{stack.worker.url}/sentinel/stats/")
    except Exception as exc:  # noqa: BLE001 - a diagnosis must not raise
        stats = repr(exc)
    try:
        committed, ends = offsets(stack)
    except Exception as exc:  # noqa: BLE001
        committed, ends = repr(exc), None
    return f"{counts}\nstats {stats}\ncommitted {committed}\nends {ends}\n{stack.worker.log_tail(6000)}"


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    from config.settings import load_settings
    from devstack.stack import EmbeddedStack

    settings = load_settings(env={}, data_dir=tmp_path_factory.mktemp("faults"), partitions=4, score_batch_wait_s=0.2,
                             sink_batch_wait_s=0.3, app_id=f"sentinel-faults-{os.getpid()}",
                             max_image_bytes=MAX_IMAGE_BYTES,
                             alert_webhook_url=f"http://127.0.0.1:{free_port()}/hooks/{HOOK_SECRET}")
    stack = EmbeddedStack(settings).start()
    try:
        yield stack
    finally:
        stack.stop()


def test_sigkill_at_random_points_loses_and_doubles_nothing(stack, ledger):
    rng = random.Random(8)
    events = jobs(81, 2000)
    stream: list[tuple[str, dict]] = []
    for i, e in enumerate(events):
        stream.append(("first", e))
        if i > 10 and rng.random() < 0.015:  # an at-least-once producer re-sends an earlier job
            stream.append(("duplicate", events[rng.randrange(max(0, i - 400), i)]))
        if i > 10 and rng.random() < 0.006:  # another producer re-uses an earlier job id
            old = events[rng.randrange(max(0, i - 400), i)]
            stream.append(("conflict", {**old, "gpu_seconds": old["gpu_seconds"] + 1.5, "node_id": "rogue"}))
    assert sum(k == "duplicate" for k, _ in stream) >= 20 and sum(k == "conflict" for k, _ in stream) >= 5

    published: list[tuple[int, int]] = []
    failure: list[BaseException] = []

    def publish() -> None:  # ~20 s of steady traffic while the worker is being killed
        try:
            published.extend(send(stack.broker.bootstrap, [record(e) for _, e in stream], chunk=30, pause=0.3))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failure.append(exc)

    publisher = threading.Thread(target=publish, name="publisher")
    publisher.start()
    for step in ("first-commit", "right-after-restart", "progress", "progress"):
        if step == "first-commit":  # a fresh group: the worker's first events, before its first commit
            wait_for(lambda: tallied(stack) > 0, 120, "the first events tallied", interval=0.05)
            time.sleep(rng.uniform(0.0, 0.3))
        elif step == "right-after-restart":  # the restarted worker has committed nothing yet
            time.sleep(rng.uniform(0.1, 0.9))
        else:  # mid-stream: this worker has consumed a few hundred events (and committed some)
            work = rng.randint(200, 600)
            wait_for(lambda: consumed(stack) >= work, 240, f"{work} events consumed before a kill", interval=0.1,
                     diagnose=stack.worker.log_tail)
            time.sleep(rng.uniform(0.0, 0.6))
        stack.restart_worker(kill=True)
    publisher.join(300)
    assert not failure, failure
    assert len(published) == len(stream)

    for (kind, e), where in zip(stream, published):
        if kind == "first":
            ledger.first[e["job_id"]] = e
        elif kind == "conflict":
            ledger.dead[where] = "duplicate_job_id_conflict"
    wait_until_done(stack, ledger)
    check_exactly_once(stack, ledger, live_rows)

    # scores of a sample equal a direct CLIP recomputation of the stored first copies
    from sentinel.clip import ClipExtractor

    sample = rng.sample(events, 64)
    extractor = ClipExtractor(stack.settings.clip_spec)
    img = extractor.encode_images([Image.open(io.BytesIO(e["image"])) for e in sample]).astype(np.float64)
    txt = extractor.encode_texts([e["prompt"] for e in sample]).astype(np.float64)
    want = 100 * np.maximum(np.einsum("ij,ij->i", img, txt), 0)
    rows = reader(stack).query("SELECT job_id, clip_prompt_score FROM sentinel.scores FINAL").to_pylist()
    got = {row["job_id"]: row["clip_prompt_score"] for row in rows}
    np.testing.assert_allclose([got[e["job_id"]] for e in sample], want, atol=1e-4)

    # tallies were written one event at a time to the changelog partition of their source
    changelog = asyncio.run(read_dead_letters(stack.broker.bootstrap, f"{stack.settings.app_id}-live_stats-changelog"))
    assert changelog
    misplaced = [(c.partition, c.key) for c in changelog if int(json.loads(c.key).rsplit("|", 1)[1]) != c.partition]
    assert not misplaced, misplaced[:5]
    wait_for(lambda: changelog_matches_table(stack), 30, "the changelog to hold the table's state")


def test_broker_restart_mid_stream(stack, ledger):
    events = jobs(82, 400)
    before = len(ledger.first)
    first_half = send(stack.broker.bootstrap, [record(e) for e in events[:200]])
    assert len(first_half) == 200
    for e in events:
        ledger.first[e["job_id"]] = e
    wait_for(lambda: tallied(stack) >= before + 40, 120, "progress before the broker restart", interval=0.1)
    stack.broker.stop()  # SIGTERM; noida-db keeps its log, offsets and changelogs on disk
    time.sleep(1.0)
    stack.broker.start()
    rest = [record(e) for e in events[200:]] + [record(events[5]), record(events[250])]  # + two re-sends
    conflict = {**events[7], "prompt": "a different job under a re-used id"}
    where = send(stack.broker.bootstrap, rest + [record(conflict)])
    ledger.dead[where[-1]] = "duplicate_job_id_conflict"
    assert stack.worker.proc.poll() is None, "the worker survived the broker restart"
    wait_until_done(stack, ledger)
    check_exactly_once(stack, ledger, live_rows)
    # nothing the broker acknowledged was lost: a restarted worker would recover these tallies
    wait_for(lambda: changelog_matches_table(stack), 30, "the changelog to hold the table's state")


def test_clickhouse_outage_commits_nothing_unstored_then_catches_up(stack, ledger):
    wait_until_done(stack, ledger)
    switch = stack.settings.faults_dir / "clickhouse_down"
    switch.parent.mkdir(parents=True, exist_ok=True)
    _, ends_before = offsets(stack)
    retries_before = get_json(f"{stack.worker.url}/sentinel/stats/")["sink_retries"]
    switch.touch()
    try:
        events = jobs(83, 300)
        where = send(stack.broker.bootstrap, [record(e) for e in events] + [record(events[3])]
                     + [record({**events[4], "seed": 123456})])
        for e in events:
            ledger.first[e["job_id"]] = e
        ledger.dead[where[-1]] = "duplicate_job_id_conflict"
        outage_end = time.monotonic() + 30
        while time.monotonic() < outage_end:
            committed, _ = offsets(stack)
            ahead = {p: (committed[p], ends_before[p]) for p in committed if committed[p] > ends_before[p]}
            assert not ahead, f"offsets committed for jobs that could not be stored: {ahead}"
            stats = get_json(f"{stack.worker.url}/sentinel/stats/")  # the worker stays responsive
            time.sleep(1.0)
        assert stats["sink_retries"] >= retries_before + 3, "the worker retried with backoff"
        assert stack.worker.proc.poll() is None
    finally:
        switch.unlink(missing_ok=True)
    wait_until_done(stack, ledger)
    check_exactly_once(stack, ledger, live_rows)
    wait_for(lambda: offsets(stack)[0] == offsets(stack)[1], 30, "every offset committed after the outage")


def test_bad_records_among_good_ones(stack, ledger):
    good = jobs(84, 60)
    truncated = record(good[0])[1]
    oversize = io.BytesIO()
    Image.fromarray((np.random.default_rng(3).random((120, 120, 3)) * 255).astype("uint8")).save(oversize, format="PNG")
    assert len(oversize.getvalue()) > MAX_IMAGE_BYTES
    base = small(make_event(900, seed=85), 85_900)
    bad = [  # (key, value, reason)
        (b"random", os.urandom(300), "not_avro_single_object"),
        (b"truncated", truncated[: len(truncated) // 2], "corrupt_avro_body"),
        (b"unknown-fp", b"\xc3\x01" + os.urandom(8) + truncated[10:], "unknown_schema_fingerprint"),
        (*record({**base, "job_id": "bad-image"} | {"image": b"RIFF\x00\x00not-a-webp"}), "corrupt_image"),
        (*record({**base, "job_id": "oversize", "image": oversize.getvalue(), "media_type": "image/png"}), "image_too_large"),
        (*record({**base, "job_id": "nan", "gpu_seconds": float("nan")}), "bad_number"),
        (*record({**base, "job_id": "negative", "inference_ms": -5.0}), "bad_number"),
        (*record({**base, "job_id": "model?", "model_id": "not-a-model"}), "unknown_model"),
        (*record({**base, "job_id": "niche?", "niche": "weddings"}), "unknown_niche"),
        (*record({**good[3], "prompt": "same id, other job"}), "duplicate_job_id_conflict"),
    ]
    items: list[tuple[bytes | None, bytes]] = []
    reasons: list[str | None] = []
    for i, e in enumerate(good):
        items.append(record(e))
        reasons.append(None)
        if i % 5 == 4 and bad:
            key, value, reason = bad.pop(0)
            items.append((key, value))
            reasons.append(reason)
    items.append(record(good[10]))  # identical re-send: skipped, not dead-lettered
    reasons.append(None)
    assert not bad
    skipped_before = get_json(f"{stack.worker.url}/sentinel/stats/")["duplicates_skipped"]
    where = send(stack.broker.bootstrap, items)
    for e in good:
        ledger.first[e["job_id"]] = e
    for w, reason in zip(where, reasons):
        if reason is not None:
            ledger.dead[w] = reason
    wait_until_done(stack, ledger, timeout=120)  # never stalls
    check_exactly_once(stack, ledger, live_rows)
    assert get_json(f"{stack.worker.url}/sentinel/stats/")["duplicates_skipped"] == skipped_before + 1


def _schema_dir(path: Path, current: dict, history: dict) -> Path:
    path.mkdir()
    for avsc in codec.SCHEMA_DIR.glob("*.avsc"):
        shutil.copy(avsc, path / avsc.name)
    (path / "job_completed.avsc").write_text(json.dumps(current))
    (path / "history").mkdir()
    (path / "history" / "job_completed.other.avsc").write_text(json.dumps(history))
    return path


def test_schema_evolution_with_real_workers(stack, ledger, tmp_path):
    v1 = json.loads((codec.SCHEMA_DIR / "job_completed.avsc").read_text())
    v2 = json.loads(json.dumps(v1))
    v2["fields"].append({"name": "region", "type": ["null", "string"], "default": None})
    v2_writer = AvroCodec("JobCompleted", writer=codec._load(_schema_dir(tmp_path / "v2", v2, v1) / "job_completed.avsc"))
    v1_worker_dir = _schema_dir(tmp_path / "v1", v1, v2)  # v1 reader; v2 deployed as a known writer

    # a v1 worker reads events a v2 producer wrote (the added field is dropped)
    stack.settings = stack.settings.with_(schema_dir=str(v1_worker_dir))
    stack.restart_worker()
    newer = jobs(86, 40)
    send(stack.broker.bootstrap, [record({**e, "region": "eu-west"}, writer=v2_writer) for e in newer])
    for e in newer:
        ledger.first[e["job_id"]] = e
    wait_until_done(stack, ledger, timeout=120)

    # a v2 worker reads events a v1 producer wrote (the added field takes its default)
    stack.settings = stack.settings.with_(schema_dir=str(tmp_path / "v2"))
    stack.restart_worker()
    older = jobs(87, 40)
    send(stack.broker.bootstrap, [record(e) for e in older])
    for e in older:
        ledger.first[e["job_id"]] = e
    wait_until_done(stack, ledger, timeout=120)
    check_exactly_once(stack, ledger, live_rows)
    stored = reader(stack).query("SELECT job_id, requested_at, delivered_at, prompt, model_id, niche, gpu_seconds "
                                 "FROM sentinel.jobs FINAL").to_pylist()
    by_id = {row["job_id"]: row for row in stored}
    for e in newer + older:
        row = by_id[e["job_id"]]
        assert (row["requested_at"], row["delivered_at"], row["prompt"], row["model_id"], row["niche"]) == \
               (e["requested_at"], e["delivered_at"], e["prompt"], e["model_id"], e["niche"])
        assert row["gpu_seconds"] == pytest.approx(e["gpu_seconds"], abs=1e-12)


def test_secrets_never_logged_and_query_view_needs_its_token(stack, tmp_path):
    # the webhook URL (a secret from the environment) is nowhere in the worker's log
    worker_log = stack.worker.log_path.read_text(errors="replace")
    assert "Worker ready" in worker_log
    assert HOOK_SECRET not in worker_log and "xoxb-s3cr3t" not in worker_log

    # a ClickHouse password from the environment stays out of everything a failing worker prints
    password = "pw-" + os.urandom(6).hex()
    env = {**os.environ, **stack.settings.to_env(), "SENTINEL_DATA_DIR": str(tmp_path),
           "SENTINEL_CLICKHOUSE_DSN": f"http://sentinel:{password}@127.0.0.1:{free_port()}",
           "SENTINEL_WEB_PORT": str(free_port()), "HF_HUB_OFFLINE": "1", "COLUMNS": "1000"}  # no line wrapping
    out = subprocess.run([sys.executable, "-m", "cli.main", "worker"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0
    assert "sentinel:***@127.0.0.1" in out.stdout + out.stderr  # it says which DSN failed, redacted
    assert password not in out.stdout + out.stderr

    # the query view answers only with the owner file's bearer token
    from warehouse.owner import live_owner

    owner = live_owner(stack.settings.chdb_path)
    assert owner is not None
    url = f"{stack.worker.url}/sentinel/query/"
    body = json.dumps({"sql": "SELECT count() AS n FROM sentinel.jobs FINAL"}).encode()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": owner.token}):
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(request, timeout=10)
        assert exc.value.code == 401
    request = urllib.request.Request(url, data=body, method="POST", headers={"Authorization": f"Bearer {owner.token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200 and response.read()

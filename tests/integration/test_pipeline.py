"""End to end on real components: publish -> broker -> Faust worker -> chDB -> report."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import timedelta

import numpy as np
import pytest
from conftest import consume_all, make_event, publish_events, publish_raw, wait_for
from PIL import Image

import sql as sql_files
from contracts.codec import AvroCodec
from sentinel.clip import ClipExtractor
from reports import report as reports
from reports.quality import UnknownScorerVersion
from warehouse.window import Window
from warehouse.client import RemoteWarehouse, open_reader

N = 90
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def published(embedded_stack):
    events = [make_event(i) for i in range(N)]
    codec = AvroCodec("JobCompleted")
    good_record = codec.encode(make_event(9999))
    corrupt_image = dict(make_event(9998), image=b"RIFF\x00\x00not-a-webp")
    bad = [
        (b"bad-1", os.urandom(300)),                         # random bytes
        (b"bad-2", good_record[: len(good_record) // 2]),     # truncated Avro
        (b"bad-3", codec.encode(corrupt_image)),              # valid Avro, corrupt image
        (b"bad-4", codec.encode(dict(make_event(9997), gpu_seconds=float("nan")))),
    ]
    publish_events(embedded_stack.broker.bootstrap, events[: N // 2])
    publish_raw(embedded_stack.broker.bootstrap, "jobs.completed", bad)
    publish_events(embedded_stack.broker.bootstrap, events[N // 2 :])
    reader = open_reader(embedded_stack.settings.dsn)
    assert isinstance(reader, RemoteWarehouse), "the worker owns chDB; reads must go through it"

    def done():
        row = reader.query(sql_files.report("progress")).to_pylist()[0]
        return row if row["jobs"] >= N and row["scored"] >= N else None

    wait_for(done, 180, f"{N} jobs stored and scored")
    return events, bad, reader


def test_stored_jobs_equal_published(published):
    events, _, reader = published
    stored = reader.query("SELECT * FROM sentinel.jobs FINAL ORDER BY job_id").to_pylist()
    assert len(stored) == N
    by_id = {row["job_id"]: row for row in stored}
    assert set(by_id) == {e["job_id"] for e in events}
    for e in events:
        row = by_id[e["job_id"]]
        for field in ("model_id", "model_version", "provider", "niche", "prompt", "seed", "gpu_type", "node_id",
                      "cold_start"):
            assert row[field] == e[field], field
        for field in ("requested_at", "started_at", "completed_at", "delivered_at"):
            assert row[field] == e[field], field
        assert row["gpu_seconds"] == pytest.approx(e["gpu_seconds"], abs=1e-12)
        assert row["latency_ms"] == (e["delivered_at"] - e["requested_at"]) / timedelta(milliseconds=1)
        assert row["has_reference"] == (e["reference_image"] is not None)
        assert (row["api_cost_usd"] is None) == (e["api_cost_usd"] is None)
    images = reader.query("SELECT job_id, hex(image) AS image FROM sentinel.job_images FINAL").to_pylist()
    assert {r["job_id"]: r["image"] for r in images} == {e["job_id"]: e["image"].hex().upper() for e in events}


def test_scores_equal_direct_clip(published, embedded_stack):
    events, _, reader = published
    rows = reader.query("SELECT job_id, scorer_version, clip_prompt_score, clip_reference_score, embedding "
                        "FROM sentinel.scores FINAL").to_pylist()
    assert len(rows) == N and len({r["job_id"] for r in rows}) == N
    assert {r["scorer_version"] for r in rows} == {embedded_stack.settings.scorer_version}
    extractor = ClipExtractor(embedded_stack.settings.clip_spec)
    by_id = {r["job_id"]: r for r in rows}
    sample = events[:12]
    img = extractor.encode_images([Image.open(io.BytesIO(e["image"])) for e in sample])
    txt = extractor.encode_texts([e["prompt"] for e in sample])
    # independent recomputation: numpy cosine of the same towers
    cos = np.einsum("ij,ij->i", img.astype(np.float64), txt.astype(np.float64))
    expected = 100 * np.maximum(cos, 0)
    got = np.array([by_id[e["job_id"]]["clip_prompt_score"] for e in sample])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    for e, emb in zip(sample, img):
        np.testing.assert_allclose(np.array(by_id[e["job_id"]]["embedding"]), emb, atol=1e-5)
        if e["reference_image"] is not None:
            ref = extractor.encode_images([Image.open(io.BytesIO(e["reference_image"]))])[0]
            assert by_id[e["job_id"]]["clip_reference_score"] == pytest.approx(float(np.dot(emb, ref)), abs=1e-4)
        else:
            assert by_id[e["job_id"]]["clip_reference_score"] is None


def test_bad_records_are_dead_lettered_with_reasons(published, embedded_stack):
    _, bad, _ = published
    records = consume_all(embedded_stack.broker.bootstrap, "jobs.completed.dlq", expect=len(bad))
    assert len(records) == len(bad)
    reasons = {r.key: dict(r.headers)["reason"].decode() for r in records}
    assert reasons == {b"bad-1": "not_avro_single_object", b"bad-2": "corrupt_avro_body",
                       b"bad-3": "corrupt_image", b"bad-4": "bad_number"}
    for r in records:
        headers = dict(r.headers)
        assert headers["source_topic"] == b"jobs.completed"
        assert int(headers["source_offset"]) >= 0
        assert {"error_class", "message", "source_partition", "time"} <= set(headers)
        assert r.value == dict(bad)[r.key], "the original bytes are kept for replay"


def test_report_matches_numpy(published, embedded_stack):
    events, _, reader = published
    pricing = embedded_stack.settings.pricing()
    data = reports.benchmark(reader, pricing, Window())
    models = {m["model"]: m for m in data["models"]}
    assert set(models) == {e["model_id"] for e in events}
    for model_id, row in models.items():
        mine = [e for e in events if e["model_id"] == model_id]
        lat = np.array([(e["delivered_at"] - e["requested_at"]) / timedelta(milliseconds=1) for e in mine])
        assert row["jobs"] == len(mine)
        assert row["p95_latency_ms"] == pytest.approx(np.percentile(lat, 95), rel=1e-12)
        assert row["p50_latency_ms"] == pytest.approx(np.percentile(lat, 50), rel=1e-12)
        costs = []
        for e in mine:
            if e["provider"] == "api":
                costs.append(e["api_cost_usd"] + 0.002)
            else:
                per_hour = {"A100-80GB": 1.89, "L4": 0.80}[e["gpu_type"]]
                costs.append(e["gpu_seconds"] * per_hour / 3600 * 1.15 + 0.002)
        assert row["cost_per_image_usd"] == pytest.approx(np.mean(costs), rel=1e-9)
    niches = {(n["model"], n["niche"]) for n in data["niches"]}
    assert niches == {(e["model_id"], e["niche"]) for e in events}


def test_sql_cli_works_while_worker_runs(published, embedded_stack):
    env = {**os.environ, **embedded_stack.settings.to_env()}
    out = subprocess.run([sys.executable, "-m", "cli.main", "sql", "SELECT count() AS n FROM sentinel.jobs FINAL",
                          "--format", "json"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"n": N}]
    hostile = subprocess.run([sys.executable, "-m", "cli.main", "sql", "DROP TABLE sentinel.jobs"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert hostile.returncode == 1 and "readonly" in hostile.stderr.lower()


def _get(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.headers.get("Content-Type", ""), response.read()


def test_live_view_matches_exact_recomputation(published, embedded_stack):
    events, _, _ = published
    _, body = _get(f"{embedded_stack.worker.url}/sentinel/live/?window=all")
    rows = {(r["model"], r["niche"]): r for r in json.loads(body)["rows"]}
    assert set(rows) == {(e["model_id"], e["niche"]) for e in events}
    for (model, niche), row in rows.items():
        mine = [e for e in events if (e["model_id"], e["niche"]) == (model, niche)]
        lat = np.array([(e["delivered_at"] - e["requested_at"]) / timedelta(milliseconds=1) for e in mine])
        assert row["jobs"] == row["images"] == len(mine)
        for q in (50, 95, 99):
            assert row[f"e2e_p{q}_ms"] == pytest.approx(np.percentile(lat, q), rel=0.005)
        queue = np.array([(e["started_at"] - e["requested_at"]) / timedelta(milliseconds=1) for e in mine])
        assert row["queue_p95_ms"] == pytest.approx(np.percentile(queue, 95), rel=0.005)
        # independent of sentinel.cost: the pricing.toml numbers written out by hand
        cost = sum(e["api_cost_usd"] + 0.002 if e["provider"] == "api" else
                   e["gpu_seconds"] * {"A100-80GB": 1.89, "L4": 0.80}[e["gpu_type"]] / 3600 * 1.15 + 0.002
                   for e in mine)
        assert row["cost_usd"] == pytest.approx(cost, rel=1e-9)
        assert row["gpu_seconds"] == pytest.approx(sum(e["gpu_seconds"] for e in mine), rel=1e-9)
    with pytest.raises(urllib.error.HTTPError):
        _get(f"{embedded_stack.worker.url}/sentinel/live/?window=forever")


def test_metrics_endpoint_is_valid_prometheus(published, embedded_stack):
    from prometheus_client.parser import text_string_to_metric_families

    url = f"{embedded_stack.worker.url}/metrics"
    if shutil.which("curl"):
        out = subprocess.run(["curl", "-sf", url], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0
        text = out.stdout
    else:
        text = _get(url)[1].decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("sentinel_events_scored_total", ())] >= N
    dead = {dict(k[1])["reason"]: v for k, v in samples.items() if k[0] == "sentinel_dead_letters_total"}
    assert dead == {"not_avro_single_object": 1, "corrupt_avro_body": 1, "corrupt_image": 1, "bad_number": 1}
    assert samples[("sentinel_rows_stored_total", (("table", "jobs"),))] >= N
    assert ("sentinel_event_time_lag_seconds", ()) in samples and ("sentinel_processing_lag_seconds", ()) in samples
    assert families["sentinel_latency_ms"].type == "gauge"
    content_type, _ = _get(url)
    assert content_type.startswith("text/plain")


def test_dashboard_page_served(embedded_stack):
    content_type, body = _get(f"{embedded_stack.worker.url}/sentinel/dashboard/")
    assert content_type.startswith("text/html") and b"../live/?window=" in body


def test_dlq_cli_lists_and_replays(published, embedded_stack):
    env = {**os.environ, **embedded_stack.settings.to_env()}
    cli = [sys.executable, "-m", "cli.main", "dlq"]
    out = subprocess.run(cli + ["list", "--format", "json"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert sorted(d["reason"] for d in listed) == sorted(
        ["not_avro_single_object", "corrupt_avro_body", "corrupt_image", "bad_number"])
    assert all(d["source_topic"] == "jobs.completed" for d in listed)
    one = subprocess.run(cli + ["replay", "--reason", "corrupt_image"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert one.returncode == 0 and "replayed 1 records" in one.stderr
    # still bad: it comes back to the DLQ once more, and nothing else changes
    wait_for(lambda: len(consume_all(embedded_stack.broker.bootstrap, "jobs.completed.dlq", expect=5, timeout=5)) == 5,
             60, "the replayed record dead-lettered again")
    reader = open_reader(embedded_stack.settings.dsn)
    assert reader.query("SELECT count() AS n FROM sentinel.jobs FINAL").to_pylist() == [{"n": N}]


def test_hostile_report_parameters_are_only_data(published, embedded_stack):
    _, _, reader = published
    pricing = embedded_stack.settings.pricing()
    hostile = "x' OR '1'='1"  # bound as a parameter, it is just a scorer version nobody has
    with pytest.raises(UnknownScorerVersion, match=re.escape(repr(hostile))):  # refused by name, as data
        reports.benchmark(reader, pricing, Window(), scorer_version=hostile)
    rows = reader.query(sql_files.report("benchmark"), {**Window().params(), **reports.pricing_params(pricing),
                                                         "scorer_version": hostile}).to_pylist()
    assert sum(r["jobs"] for r in rows if r["niche"] == "*") == N  # the query binds it: every job counted
    assert all(r["clip"] is None or np.isnan(r["clip"]) for r in rows)  # no score under that version
    env = {**os.environ, **embedded_stack.settings.to_env(), "COLUMNS": "300"}
    out = subprocess.run([sys.executable, "-m", "cli.main", "report", "--from", "2026-01-01'; DROP TABLE sentinel.jobs; --"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "not an ISO-8601 time" in out.stderr
    assert reader.query("SELECT count() AS n FROM sentinel.jobs FINAL").to_pylist() == [{"n": N}]


@pytest.mark.parametrize("fmt", ["json", "csv", "markdown", "html"])
def test_report_cli_formats(published, embedded_stack, fmt, tmp_path):
    env = {**os.environ, **embedded_stack.settings.to_env()}
    target = tmp_path / f"report.{fmt}"
    out = subprocess.run([sys.executable, "-m", "cli.main", "report", "--format", fmt, "--output", str(target)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = target.read_text()
    if fmt == "json":
        data = json.loads(text)
        assert {"window", "models", "niches", "pricing"} <= set(data)
        assert sum(m["jobs"] for m in data["models"]) == N
    elif fmt == "csv":
        import csv

        rows = list(csv.DictReader(text.splitlines()))
        assert sum(int(r["jobs"]) for r in rows if r["niche"] == "*") == N
    else:
        assert "flux-dev" in text and "p95" in text

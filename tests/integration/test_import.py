"""`sentinel import` on the real stack: 2,000 historical jobs whose images are real PNG and JPEG
files (a few noisy 1024x1024 ones above 1 MB, a few missing or corrupt), imported through the
CLI into the embedded broker, scored by the Faust worker, stored in chDB.

Checked against the files themselves: every good image is stored byte-identical (SHA-256 of the
file vs SHA-256 computed by ClickHouse on the stored bytes, or of the object in the store),
large ones travel by reference (the published events are read back from the topic), bad rows
are refused by line number or dead-lettered with a reason, CLIP scores equal the tiny CLIP run
here directly on the file bytes, and a second import of the same file adds nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from conftest import consume_all, make_event, publish_events, running_stack, wait_for
from history_fixtures import good, image_file
from PIL import Image

import sql as sql_files
from contracts.codec import AvroCodec
from objects.store import ObjectStore
from sentinel.clip import ClipExtractor
from warehouse.client import open_reader

pytestmark = pytest.mark.integration

N = 2_000
LARGE = {7: "PNG", 400: "PNG", 901: "PNG", 1500: "PNG", 1777: "JPEG"}  # 1024x1024 noise: > 1 MB each
LARGE_REFERENCE = 50  # this row's reference photo is a 1024x1024 PNG: by reference too
MISSING = {13, 999, 1998}  # lines whose image file does not exist
CORRUPT = {21: "png", 1234: "jpg"}  # truncated PNG, random bytes named .jpg
BAD_FIELDS = {55}  # provider "on-prem"
MISSING_REFERENCE = {60}
UNKNOWN_MODEL = {77}  # imports fine; the worker's catalog dead-letters it
REFUSED = MISSING | set(CORRUPT) | BAD_FIELDS | MISSING_REFERENCE
MODELS = [("flux-dev", "self-hosted", "A100-80GB"), ("sdxl-lightning", "self-hosted", "L4"),
          ("proprietary-a", "api", None)]


def _ms(i: int, offset: int) -> str:
    return f"2026-02-{1 + i // 100:02d}T{(i // 10) % 24:02d}:{i % 10:02d}:{offset // 1000:02d}.{offset % 1000:03d}Z"


def _row(i: int, folder) -> dict:
    model, provider, gpu = MODELS[i % 3]
    fmt = LARGE.get(i) or ("JPEG" if i % 2 else "PNG")
    ext = "jpg" if fmt == "JPEG" else "png"
    changes = {"job_id": f"hist-{i:04d}", "model": model, "provider": provider, "gpu_type": gpu,
               "niche": ("headshot", "product", "portrait")[(i // 3) % 3], "prompt": f"a delivered image number {i}",
               "requested_at": _ms(i, 0), "started_at": _ms(i, 120), "completed_at": _ms(i, 2400),
               "delivered_at": _ms(i, 2450), "image": f"out/{i}.{ext}",
               "gpu_seconds": 2.28 if provider != "api" else None, "api_cost_usd": 0.04 if provider == "api" else None}
    if i % 2 == 0:
        changes["seed"] = i
    if i not in MISSING:
        image_file(folder / "out" / f"{i}.{ext}", fmt, 1024 if i in LARGE else 24, i)
    if i % 25 == 0 or i == LARGE_REFERENCE or i in MISSING_REFERENCE:
        changes["reference_image"] = f"refs/{i}.jpg" if i != LARGE_REFERENCE else (folder / "refs" / "big.png").as_uri()
        if i not in MISSING_REFERENCE:
            image_file(folder / "refs" / f"{i}.jpg", "JPEG", 24, 50_000 + i)
    if i in CORRUPT:
        path = folder / "out" / f"{i}.{ext}"
        path.write_bytes(path.read_bytes()[:-30] if CORRUPT[i] == "png" else os.urandom(500))
    if i in BAD_FIELDS:
        changes["provider"] = "on-prem"
    if i in UNKNOWN_MODEL:
        changes["model"] = "no-such-model"
    return good(i, **changes)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from running_stack(tmp_path_factory)


def _import(stack, history, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **stack.settings.to_env()}
    out = subprocess.run([sys.executable, "-m", "cli.main", "import", str(history), *extra], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def imported(stack, tmp_path_factory):
    folder = tmp_path_factory.mktemp("history")
    image_file(folder / "refs" / "big.png", "PNG", 1024, 424242)
    rows = [_row(i, folder) for i in range(1, N + 1)]
    history = folder / "history.jsonl"
    history.write_text("".join(json.dumps(r) + "\n" for r in rows))
    first = _import(stack, history)
    second = _import(stack, history)  # at once: before the worker has stored the first
    # two claim checks that cannot be honoured, published as a node would: dead letters
    store = ObjectStore(stack.settings.object_store_root)
    gone = hashlib.sha256(b"never stored").hexdigest()
    swapped = store.put(image_file(folder / "x.png", "PNG", 24, 7))
    (folder / "y.png").write_bytes(b"")
    open(store.path_for(swapped.sha256), "wb").write(image_file(folder / "y.png", "PNG", 24, 8))  # another image
    publish_events(stack.broker.bootstrap, [
        dict(make_event(1, seed=77), image=b"", image_ref={"uri": store.uri_for(gone), "size": 9, "sha256": gone},
             reference_image=None),
        dict(make_event(2, seed=77), image=b"", image_ref=swapped.to_record(), reference_image=None)])
    good_ids = {f"hist-{i:04d}" for i in range(1, N + 1)} - {f"hist-{i:04d}" for i in REFUSED | UNKNOWN_MODEL}
    reader = open_reader(stack.settings.dsn)

    def done():
        row = reader.query(sql_files.report("progress")).to_pylist()[0]
        return row if row["jobs"] >= len(good_ids) and row["scored"] >= len(good_ids) else None

    wait_for(done, 300, f"{len(good_ids)} imported jobs stored and scored", diagnose=stack.worker.log_tail)
    return folder, rows, good_ids, first, second, reader


def test_bad_rows_are_refused_by_line_and_the_rest_published(imported):
    folder, rows, good_ids, first, second, _ = imported
    refused = {int(m[1]): m[2] for m in re.finditer(r"refused line (\d+) \(hist-\d+\): (.*)", first.stderr)}
    assert sorted(refused) == sorted(REFUSED)
    for i in MISSING:
        assert refused[i] == f"image not found: {rows[i - 1]['image']}"
    assert all("corrupt_image" in refused[i] for i in CORRUPT)
    assert "provider 'on-prem'" in refused[55] and refused[60] == "reference image not found: refs/60.jpg"
    assert f"published {N - len(REFUSED):,} jobs ({len(LARGE) + 1} with images by reference)" in first.stderr
    assert f"refused {len(REFUSED)} rows" in first.stderr
    assert "warning:" in first.stderr and "'no-such-model'" in first.stderr  # told before publishing
    assert "published 0 jobs" in second.stderr and f"skipped {N - len(REFUSED):,} already imported" in second.stderr


def test_large_images_travel_by_reference_and_small_ones_inline(imported, stack):
    folder, rows, good_ids, *_ = imported
    records = consume_all(stack.broker.bootstrap, "jobs.completed", expect=N - len(REFUSED) + 2, timeout=60)
    codec = AvroCodec("JobCompleted")
    events = {e["job_id"]: e for e in (codec.decode(r.value) for r in records) if e["job_id"].startswith("hist-")}
    assert len(events) == N - len(REFUSED) == len(records) - 2  # the second import published nothing
    for i in range(1, N + 1):
        event = events.get(f"hist-{i:04d}")
        if i in REFUSED:
            assert event is None
            continue
        data = (folder / rows[i - 1]["image"]).read_bytes()
        if i in LARGE:
            assert len(data) > 1_000_000 and event["image"] == b""
            assert event["image_ref"]["sha256"] == hashlib.sha256(data).hexdigest()
            assert event["image_ref"]["size"] == len(data)
        else:
            assert event["image"] == data and event["image_ref"] is None
    big_ref = events[f"hist-{LARGE_REFERENCE:04d}"]
    assert big_ref["reference_image"] is None
    assert big_ref["reference_image_ref"]["sha256"] == hashlib.sha256((folder / "refs" / "big.png").read_bytes()).hexdigest()
    assert max(len(r.value) for r in records) < 1_000_000  # every message fits Kafka's default limit


def test_every_good_image_is_stored_byte_identical(imported, stack):
    folder, rows, good_ids, _, _, reader = imported
    stored = {r["job_id"]: r for r in reader.query(
        "SELECT j.job_id AS job_id, j.image_sha256 AS image_sha256, j.image_uri AS image_uri, "
        "j.image_bytes AS image_bytes, j.has_reference AS has_reference, lower(hex(SHA256(i.image))) AS stored_sha256 "
        "FROM sentinel.jobs AS j FINAL INNER JOIN sentinel.job_images AS i FINAL ON i.job_id = j.job_id").to_pylist()}
    assert set(stored) == good_ids
    for job_id in good_ids:
        i = int(job_id.split("-")[1])
        data = (folder / rows[i - 1]["image"]).read_bytes()
        digest, row = hashlib.sha256(data).hexdigest(), stored[job_id]
        assert row["image_sha256"] == digest and row["image_bytes"] == len(data), job_id
        if i in LARGE:
            assert row["image_uri"].startswith("file://") and row["stored_sha256"] == hashlib.sha256(b"").hexdigest()
            assert hashlib.sha256(open(row["image_uri"][len("file://"):], "rb").read()).hexdigest() == digest
        else:
            assert row["image_uri"] == "" and row["stored_sha256"] == digest, job_id
        assert row["has_reference"] == ("reference_image" in rows[i - 1])
    # what the rating page reads for one image (sql/reports/job_image.sql): the URI when by reference
    for i in (7, 8):
        got = reader.query(sql_files.report("job_image"), {"job_id": f"hist-{i:04d}"})
        uri = got.column("image_uri")[0].as_py()
        assert (uri != "") == (i in LARGE)
        if i in LARGE:
            assert got.column("image").cast(pa.binary())[0].as_py() == b"" and uri == stored[f"hist-{i:04d}"]["image_uri"]
            data = ObjectStore(stack.settings.object_store_root).fetch_uri(uri)
            assert data == (folder / rows[i - 1]["image"]).read_bytes()


def test_scores_equal_tiny_clip_on_the_files(imported, stack):
    folder, rows, good_ids, _, _, reader = imported
    scores = {r["job_id"]: r for r in reader.query(
        "SELECT job_id, clip_prompt_score, clip_reference_score FROM sentinel.scores FINAL").to_pylist()}
    assert set(scores) == good_ids
    ids = sorted(good_ids)
    picked = [rows[int(j.split("-")[1]) - 1] for j in ids]
    extractor = ClipExtractor(stack.settings.clip_spec)
    img = extractor.encode_images([Image.open(io.BytesIO((folder / r["image"]).read_bytes())) for r in picked])
    txt = extractor.encode_texts([r["prompt"] for r in picked])
    cos = np.einsum("ij,ij->i", img.astype(np.float64), txt.astype(np.float64))
    np.testing.assert_allclose([scores[j]["clip_prompt_score"] for j in ids], 100 * np.maximum(cos, 0), atol=1e-4)
    with_ref = [(j, r, e) for j, r, e in zip(ids, picked, img) if "reference_image" in r]
    assert len(with_ref) >= 70
    refs = [r["reference_image"] for _, r, _ in with_ref]
    ref_emb = extractor.encode_images([Image.open(folder / "refs" / "big.png") if ref.startswith("file://")
                                       else Image.open(folder / ref) for ref in refs])
    for (job_id, _, emb), ref in zip(with_ref, ref_emb):
        assert scores[job_id]["clip_reference_score"] == pytest.approx(float(np.dot(emb, ref)), abs=1e-4), job_id


def test_unusable_rows_and_claim_checks_are_dead_lettered_with_reasons(imported, stack):
    records = consume_all(stack.broker.bootstrap, "jobs.completed.dlq", expect=3, timeout=60)
    reasons = sorted(dict(r.headers)["reason"].decode() for r in records)
    assert reasons == ["image_digest_mismatch", "image_object_missing", "unknown_model"]
    assert {r.key for r in records if dict(r.headers)["reason"] == b"unknown_model"} == {b"hist-0077"}


def test_a_re_import_adds_nothing_and_the_warehouse_alone_is_enough(imported, stack, tmp_path):
    folder, _, good_ids, _, _, reader = imported
    third = _import(stack, folder / "history.jsonl", "--ledger", str(tmp_path / "fresh-ledger.jsonl"))
    # without the ledger, the warehouse says what is stored; the row the worker dead-lettered
    # (unknown model) is not stored, so it is the one published again
    assert "published 1 jobs" in third.stderr and f"{len(good_ids):,} in the warehouse" in third.stderr
    assert reader.query("SELECT count() AS n FROM sentinel.jobs FINAL").column("n").to_pylist() == [len(good_ids)]


def test_rescore_fetches_the_images_kept_by_reference(imported, stack):
    """Last here (it stops the worker, which owns the embedded store): `sentinel rescore` of the
    first day (jobs 1-99: job 7's image and job 50's reference photo are kept by reference)
    fetches them from the object store and gets the stream's scores."""
    _, _, good_ids, _, _, reader = imported
    stream = {r["job_id"]: r for r in reader.query(
        "SELECT job_id, clip_prompt_score, clip_reference_score FROM sentinel.scores FINAL").to_pylist()}
    day_one = {j for j in good_ids if int(j.split("-")[1]) < 100}
    stack.worker.stop()
    env = {**os.environ, **stack.settings.to_env()}
    done = subprocess.run([sys.executable, "-m", "cli.main", "rescore", "--scorer-version", "v-again",
                           "--from", "2026-02-01T00:00:00Z", "--to", "2026-02-02T00:00:00Z"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"rescored {len(day_one)} jobs as v-again/" in done.stderr and "(0 skipped)" in done.stderr
    direct = open_reader(stack.settings.dsn)
    again = {r["job_id"]: r for r in direct.query(
        "SELECT job_id, clip_prompt_score, clip_reference_score FROM sentinel.scores FINAL WHERE startsWith(scorer_version, 'v-again/')"
    ).to_pylist()}
    direct.close()
    assert set(again) == day_one and {"hist-0007", f"hist-{LARGE_REFERENCE:04d}"} <= day_one
    for job_id in day_one:
        assert again[job_id]["clip_prompt_score"] == pytest.approx(stream[job_id]["clip_prompt_score"], abs=1e-4)
    assert again["hist-0050"]["clip_reference_score"] == \
        pytest.approx(stream["hist-0050"]["clip_reference_score"], abs=1e-4)

"""Rescoring: score stored jobs again with the current scorer, under a new scorer version.

Reads the archived images (``sentinel.jobs`` + ``sentinel.job_images``) page by page, scores
them with ``sentinel.scoring.BatchScorer`` exactly as the stream does, and writes

* score rows under the new version (``sentinel.scores``; the ReplacingMergeTree key is
  (job_id, scorer_version), so history under other versions stays, and a rerun replaces
  rather than duplicates);
* FID moment states under the new version, one per model × niche × bucket × source
  partition, each holding every stored job of that key with ``last_offset`` = its highest
  source offset — the same state the stream would have built. The window is widened to whole
  buckets so no state is partial, and states are written once at the end (a rerun writes the
  same states again; ReplacingMergeTree keeps one).

Reports pick the version with ``--scorer-version`` (default: the newest per job for CLIP, the
newest version with moments for FID/CMMD).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np
import pyarrow as pa

import sql as sql_files
from sentinel.fid import FeatureMoments
from sentinel.offsets import AppliedOffsets
from sentinel.scoring import BatchScorer, ScoreInput
from sentinel.validation import decode_image
from contracts.errors import InvalidEvent
from objects.store import ObjectStore
from warehouse import rows
from sentinel.buckets import bucket_start
from warehouse.moments import MomentKey, MomentState, rows_token, state_rows

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class RescoreResult:
    version: str
    scored: int
    skipped: list[tuple[str, str]]  # (job_id, reason): images the scorer rejects
    states: int
    window: tuple[datetime, datetime]


def _fmt(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def rescore(warehouse: Any, scorer: BatchScorer, version: str, start: datetime, end: datetime, *,
            bucket_s: int = 3600, page: int = 256, progress: Callable[[int], None] | None = None,
            objects: ObjectStore | None = None) -> RescoreResult:
    """``objects``: where images kept by reference are fetched from (None: such jobs are skipped)."""
    start = datetime.fromtimestamp(bucket_start(max(start, EPOCH), bucket_s), timezone.utc)
    end_epoch = int(min(end, datetime(2200, 1, 1, tzinfo=timezone.utc)).timestamp())
    if end_epoch % bucket_s:
        end_epoch += bucket_s - end_epoch % bucket_s
    end = datetime.fromtimestamp(end_epoch, timezone.utc)
    states: dict[MomentKey, MomentState] = {}
    skipped: list[tuple[str, str]] = []
    scored, after = 0, ""
    while True:
        table = warehouse.query(sql_files.report("rescore_jobs"), {
            "start": _fmt(start), "end": _fmt(end), "after": after, "limit": page})
        for name in ("image", "reference_image"):  # String columns hold bytes: read them as binary
            table = table.set_column(table.schema.get_field_index(name), name, table.column(name).cast(pa.binary()))
        batch = table.to_pylist()
        if not batch:
            break
        after = batch[-1]["job_id"]
        inputs, kept = [], []
        for job in batch:
            try:
                image, reference = _pixels(job, objects)
            except InvalidEvent as exc:
                skipped.append((job["job_id"], exc.reason))
                continue
            inputs.append(ScoreInput(job["job_id"], job["prompt"], image, reference))
            kept.append(job)
        scores = scorer.score(inputs)
        now = datetime.now(timezone.utc)
        out = [{"job_id": s.job_id, "scorer_version": version, "model_id": job["model_id"], "niche": job["niche"],
                "scored_at": now, "clip_prompt_score": s.clip_prompt_score,
                "clip_reference_score": s.clip_reference_score, "embedding": s.embedding.tolist(), "flags": ["rescored"],
                "requested_at": job["requested_at"]}
               for s, job in zip(scores, kept)]
        if out:
            warehouse.insert("sentinel.scores", rows.score_rows(out))
        for s, job in zip(scores, kept):
            requested = job["requested_at"]
            if requested.tzinfo is None:
                requested = requested.replace(tzinfo=timezone.utc)
            key = MomentKey(version, job["model_id"], job["niche"], bucket_start(requested, bucket_s),
                            int(job["source_partition"]))
            state = states.setdefault(key, MomentState(-1, FeatureMoments()))
            state.moments.update(np.asarray(s.embedding, np.float64))
            state.last_offset = max(state.last_offset, int(job["source_offset"]))
        scored += len(out)
        if progress:
            progress(len(batch))
    if states:
        for state in states.values():  # built whole from the stored jobs: no offset list to keep
            state.held = AppliedOffsets(state.last_offset + 1)
        table = state_rows(sorted(states.items()))
        warehouse.insert("sentinel.feature_moments", table, rows_token(table))
    return RescoreResult(version, scored, skipped, len(states), (start, end))


def _pixels(job: dict[str, Any], objects: ObjectStore | None) -> tuple[Any, Any]:
    """A stored job's image and reference image, decoded; fetched (digest checked) when kept by
    reference."""
    data, reference = job["image"], job["reference_image"]
    for name, uri in (("image", job.get("image_uri")), ("reference_image", job.get("reference_uri"))):
        if not uri:
            continue
        if objects is None:
            raise InvalidEvent(f"{name}_ref_unsupported", "kept by reference and no object store given")
        if name == "image":
            data = objects.fetch_uri(uri, name)
        else:
            reference = objects.fetch_uri(uri, name)
    return decode_image(data, job["media_type"]), decode_image(reference) if reference else None

"""Third stage: CLIP scores and embeddings of the kept jobs, from the pixels the gate decoded
(each image decoded once). Blocking: runs in the score thread, never on the event loop."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from contracts.errors import InvalidEvent
from objects.claims import image_bytes
from objects.store import ObjectStore
from sentinel.scoring import BatchScorer, ScoreInput
from sentinel.validation import decode_image
from worker.stages.gate import Pixels
from worker.stages.triage import Accepted


class ScoreStage:
    def __init__(self, scorer: BatchScorer, scorer_version: str, objects: ObjectStore | None = None) -> None:
        self.scorer = scorer
        self.scorer_version = scorer_version
        self.objects = objects  # images by reference (only for jobs the gate judged earlier)

    def __call__(self, kept: Sequence[Accepted], pixels: Mapping[tuple[int, int], Pixels] | None = None
                 ) -> tuple[list[dict[str, Any]], list[tuple[Accepted, InvalidEvent]]]:
        """JobScored records of the jobs that could be scored, and the jobs whose image did not
        decode (only when no pixels were handed in for them)."""
        inputs, scored_items, bad = [], [], []
        for item in kept:
            try:
                image, reference = _pixels(item, pixels, self.objects)
            except InvalidEvent as exc:
                bad.append((item, exc))
                continue
            inputs.append(ScoreInput(item.event["job_id"], item.event["prompt"], image, reference))
            scored_items.append(item)
        scores = self.scorer.score(inputs)
        now = datetime.now(timezone.utc)
        return [{
            "job_id": s.job_id,
            "scorer_version": self.scorer_version,
            "model_id": item.event["model_id"],
            "niche": item.event["niche"],
            "scored_at": now,
            "clip_prompt_score": s.clip_prompt_score,
            "clip_reference_score": s.clip_reference_score,
            "embedding": s.embedding.tolist(),
            "flags": [],
            "requested_at": item.event["requested_at"],
        } for s, item in zip(scores, scored_items)], bad


def _pixels(item: Accepted, pixels: Mapping[tuple[int, int], Pixels] | None, objects: ObjectStore | None) -> Pixels:
    found = pixels.get((item.partition, item.offset)) if pixels else None
    if found is not None:
        return found
    e = item.event  # judged earlier (a cached verdict): decode here (fetched first when by reference)
    data, reference = image_bytes(e, objects)
    return decode_image(data, e["media_type"]), decode_image(reference) if reference else None

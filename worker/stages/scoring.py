"""Third stage: CLIP scores and embeddings of the kept jobs, from the pixels the gate decoded
(each image decoded once). Blocking: runs in the score thread, never on the event loop."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from contracts.errors import InvalidEvent
from sentinel.scoring import BatchScorer, ScoreInput
from sentinel.validation import decode_image
from worker.stages.gate import Pixels
from worker.stages.triage import Accepted


class ScoreStage:
    def __init__(self, scorer: BatchScorer, scorer_version: str) -> None:
        self.scorer = scorer
        self.scorer_version = scorer_version

    def __call__(self, kept: Sequence[Accepted], pixels: Mapping[tuple[int, int], Pixels] | None = None
                 ) -> tuple[list[dict[str, Any]], list[tuple[Accepted, InvalidEvent]]]:
        """JobScored records of the jobs that could be scored, and the jobs whose image did not
        decode (only when no pixels were handed in for them)."""
        inputs, scored_items, bad = [], [], []
        for item in kept:
            try:
                image, reference = _pixels(item, pixels)
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


def _pixels(item: Accepted, pixels: Mapping[tuple[int, int], Pixels] | None) -> Pixels:
    found = pixels.get((item.partition, item.offset)) if pixels else None
    if found is not None:
        return found
    e = item.event  # judged earlier (a cached verdict): decode here
    return (decode_image(e["image"], e["media_type"]),
            decode_image(e["reference_image"]) if e.get("reference_image") else None)

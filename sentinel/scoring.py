"""Score a batch of completed jobs: CLIP prompt alignment, reference alignment, embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from sentinel.clip import ClipExtractor, clip_score, reference_alignment


@dataclass(frozen=True)
class ScoreInput:
    job_id: str
    prompt: str
    image: Image.Image
    reference: Image.Image | None = None


@dataclass(frozen=True)
class Score:
    job_id: str
    clip_prompt_score: float
    clip_reference_score: float | None
    embedding: np.ndarray


class BatchScorer:
    """One forward pass per tower per batch; safe to call from an executor thread."""

    def __init__(self, extractor: ClipExtractor) -> None:
        self.extractor = extractor

    def score(self, items: Sequence[ScoreInput]) -> list[Score]:
        if not items:
            return []
        image_emb = self.extractor.encode_images([it.image for it in items])
        text_emb = self.extractor.encode_texts([it.prompt for it in items])
        prompt_scores = clip_score(image_emb, text_emb)
        with_ref = [i for i, it in enumerate(items) if it.reference is not None]
        ref_scores: dict[int, float] = {}
        if with_ref:
            ref_emb = self.extractor.encode_images([items[i].reference for i in with_ref])
            for i, s in zip(with_ref, reference_alignment(image_emb[with_ref], ref_emb)):
                ref_scores[i] = float(s)
        return [
            Score(it.job_id, float(prompt_scores[i]), ref_scores.get(i), image_emb[i])
            for i, it in enumerate(items)
        ]

"""Score a batch of completed jobs: CLIP prompt alignment, reference alignment, embeddings."""

from __future__ import annotations

from concurrent.futures import Executor
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
    """One forward pass per tower per batch; safe to call from an executor thread.

    With ``towers`` (an executor of one thread of its own), the text tower and the reference
    images run there while the calling thread runs the image tower: torch releases the GIL inside
    its ops, so on CPU the two towers use two cores (ViT-B-32, 1 torch thread each: 0.94 instead
    of 0.72 of the raw image encoder, measured in process). The results are the same either way.
    """

    def __init__(self, extractor: ClipExtractor, towers: Executor | None = None) -> None:
        self.extractor = extractor
        self.towers = towers

    def score(self, items: Sequence[ScoreInput]) -> list[Score]:
        if not items:
            return []
        with_ref = [i for i, it in enumerate(items) if it.reference is not None]
        images = [it.image for it in items]
        prompts = [it.prompt for it in items]
        references = [items[i].reference for i in with_ref]
        if self.towers is None:
            image_emb = self.extractor.encode_images(images)
            text_emb, ref_emb = self._side(prompts, references)
        else:
            side = self.towers.submit(self._side, prompts, references)
            image_emb = self.extractor.encode_images(images)
            text_emb, ref_emb = side.result()
        prompt_scores = clip_score(image_emb, text_emb)
        ref_scores: dict[int, float] = {}
        if with_ref:
            for i, s in zip(with_ref, reference_alignment(image_emb[with_ref], ref_emb)):
                ref_scores[i] = float(s)
        return [
            Score(it.job_id, float(prompt_scores[i]), ref_scores.get(i), image_emb[i])
            for i, it in enumerate(items)
        ]

    def _side(self, prompts: list[str], references: list[Image.Image]) -> tuple[np.ndarray, np.ndarray | None]:
        """The text tower on the prompts and the image tower on the reference images."""
        text_emb = self.extractor.encode_texts(prompts)
        return text_emb, self.extractor.encode_images(references) if references else None

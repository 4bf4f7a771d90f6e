"""The work of one verdict, split where the encoder batch goes: ``prepare`` (decode and the
weight-free checks; one request, any thread), ``encode`` (CLIP for a batch of prepared requests;
the encoder thread only), ``finish`` (the rubric's verdict). Blocking code, never on the event loop."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from contracts.verdict import CHECK_NAMES, RequestError, Verdict, VerdictRequest
from sentinel.image_checks import Decoded, ImageRejected, RecentDigests, decode_output
from sentinel.rubric import ImageFacts, Rubric, verdict, weight_free_checks
from sentinel.scoring import BatchScorer, Score, ScoreInput

DEFAULT_MAX_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class Prepared:
    request: VerdictRequest
    decoded: Decoded
    reference: Decoded | None
    facts: ImageFacts

    def score_input(self) -> ScoreInput:
        ref = self.reference.image if self.reference is not None else None
        return ScoreInput(self.request.job_id or "", self.request.prompt, self.decoded.image, ref)


class Judge:
    """Rubric + scorer + the recent-output memory of the repeat check (owned here, one per process)."""

    def __init__(self, rubric: Rubric, scorer: BatchScorer, scorer_version: str, *,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_models: int = 1024) -> None:
        self.rubric = rubric
        self.scorer = scorer
        self.scorer_version = scorer_version
        self.max_pixels = max_pixels
        self.recent = RecentDigests(rubric.repeat_window, max_models)

    def parse(self, body: bytes) -> VerdictRequest:
        try:
            data: Any = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RequestError(f"body is not JSON: {type(exc).__name__}: {str(exc)[:200]}", None, 400) from exc
        request = VerdictRequest.from_json(data)
        if request.width * request.height > self.max_pixels:
            raise RequestError(f"requested {request.width}x{request.height} is more than the {self.max_pixels} "
                               "pixels this service judges", "width", 413)
        return request

    def prepare(self, body: bytes) -> Prepared:
        """Parse, decode both images (refusing oversize ones from their headers), run the
        weight-free checks. Raises RequestError for anything that is not a judgeable request."""
        request = self.parse(body)
        decoded = self._decode(request.image_bytes(), "image")
        ref_bytes = request.reference_bytes()
        reference = self._decode(ref_bytes, "reference_image") if ref_bytes is not None else None
        facts = weight_free_checks(self.rubric.for_niche(request.niche), decoded, media_type=request.media_type,
                                   width=request.width, height=request.height, model_id=request.model_id,
                                   recent=self.recent)
        return Prepared(request, decoded, reference, facts)

    def _decode(self, data: bytes, field: str) -> Decoded:
        try:
            return decode_output(data, max_pixels=self.max_pixels)
        except ImageRejected as exc:
            check = CHECK_NAMES["decodes"] if field == "image" else None
            raise RequestError(exc.detail, field, 413 if exc.too_large else 422, check) from exc

    def encode(self, batch: Sequence[Prepared]) -> list[Score]:
        """CLIP prompt (and reference) scores of a batch: one encoder pass per tower."""
        return self.scorer.score([p.score_input() for p in batch])

    def finish(self, prepared: Prepared, score: Score) -> Verdict:
        req = prepared.request
        return verdict(self.rubric, req.niche, prepared.facts, clip_prompt_score=score.clip_prompt_score,
                       clip_reference_score=score.clip_reference_score, scorer_version=self.scorer_version,
                       job_id=req.job_id)

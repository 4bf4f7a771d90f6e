"""An inference node: runs diffusers pipelines for job requests and measures honest timings.

Per job it records requested / started / completed / delivered timestamps (UTC, ms), whether
the model had to be loaded first (cold start, and how long that took), inference and encode
time, and GPU-seconds (wall time the accelerator was held x GPUs; on CPU nodes the same
accounting with gpu_type "cpu"). The result is a JobCompleted record ready to publish.
"""

from __future__ import annotations

import io
import logging
import math
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from PIL import Image

from inference.attempts import UNGUARDED
from inference.planted import PlantBad, planted_image
from inference.registry import ModelSpec
from objects.claims import claim_large
from objects.store import ObjectStore
from inference.tiny_pipelines import ensure_tiny_pipeline, generate, load_pipeline

log = logging.getLogger(__name__)

SIMULATED_API_CLASS = "sd"  # the stand-in pipeline that draws a simulated API's images
FORMATS = {"webp": ("WEBP", "image/webp"), "png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg")}


class ImageTooLarge(ValueError):
    """An output above the inline limit on a node without an object store."""


@dataclass(frozen=True)
class JobRequest:
    job_id: str
    model_id: str
    niche: str
    prompt: str
    seed: int
    requested_at: datetime
    reference_image: bytes | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _Clock:
    """Wall-clock timestamps of one job from one monotonic clock, anchored once: the parts
    (queue, cold start, inference, encode, delivery) then add up to the end-to-end latency by
    construction. Reading the wall clock again after each perf_counter reading let a thread
    switch between the two land in one part and be missing from another (a -4.7 ms delivery
    under load)."""

    def __init__(self) -> None:
        self._wall, self._perf = _now(), time.perf_counter()

    def wall(self) -> datetime:
        return self._wall

    @property
    def perf(self) -> float:
        return self._perf

    def at(self, perf: float) -> datetime:
        return self._wall + timedelta(seconds=perf - self._perf)


def encode_image(image: Image.Image, fmt: str = "webp", quality: int = 90) -> tuple[bytes, str]:
    try:
        pil_format, media_type = FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown image format {fmt!r}; use one of {sorted(FORMATS)}") from None
    buf = io.BytesIO()
    options = {"quality": quality} if pil_format in ("WEBP", "JPEG") else {}
    image.save(buf, format=pil_format, **options)
    return buf.getvalue(), media_type


class InferenceNode:
    def __init__(self, models: dict[str, ModelSpec], *, node_id: str, cache_dir: Path,
                 image_format: str = "webp", max_image_bytes: int = 900_000, gpus: int = 1,
                 objects: ObjectStore | None = None, plant: PlantBad | None = None) -> None:
        self.models = models
        self.node_id = node_id
        self.cache_dir = cache_dir
        self.image_format = image_format
        self.max_image_bytes = max_image_bytes
        self.gpus = gpus
        # outputs (and reference photos) above max_image_bytes go here and travel by reference;
        # without a store such an output is refused (ImageTooLarge)
        self.objects = objects
        self._pipelines: dict[str, Any] = {}
        self.plant = plant  # tests and demo: sometimes emit a bad image (inference/planted.py)
        self._last_data: dict[str, bytes] = {}  # model id -> its latest output (planted repeats)

    def _pipeline(self, spec: ModelSpec) -> tuple[Any, bool, float]:
        """The loaded pipeline, whether this call was a cold start, and its load time (ms)."""
        if spec.model_id in self._pipelines:
            return self._pipelines[spec.model_id], False, 0.0
        t0 = time.perf_counter()
        kind = SIMULATED_API_CLASS if spec.is_api else spec.pipeline_class
        path = Path(spec.path) if spec.path else ensure_tiny_pipeline(kind, self.cache_dir, spec.seed)
        pipe = load_pipeline(path, kind)
        self._pipelines[spec.model_id] = pipe
        return pipe, True, (time.perf_counter() - t0) * 1000.0

    def run_attempts(self, request: JobRequest) -> list[dict[str, Any]]:
        """Every event of one request: a single attempt here (guard mode: inference/guarded.py)."""
        return [self.run(request)]

    def run(self, request: JobRequest) -> dict[str, Any]:
        try:
            spec = self.models[request.model_id]
        except KeyError:
            raise KeyError(f"model {request.model_id!r} is not in this node's registry ({sorted(self.models)})") from None
        if spec.is_api:
            return self._run_api(spec, request)
        clock = _Clock()
        started_at, t_start = clock.wall(), clock.perf
        pipe, cold, cold_ms = self._pipeline(spec)
        t_infer = time.perf_counter()
        image = generate(pipe, request.prompt, seed=request.seed, size=spec.size, steps=spec.steps)
        planted = self.plant.kind(request.seed) if self.plant else None
        if planted:
            image = planted_image(planted, image)
        t_done = time.perf_counter()
        completed_at = clock.at(t_done)
        data, media_type = encode_image(image, self.image_format)
        if planted == "repeated" and spec.model_id in self._last_data:
            data = self._last_data[spec.model_id]  # a stuck model: its previous output again
        self._last_data[spec.model_id] = data
        t_encoded = time.perf_counter()
        ref = self._store_large(request, data)
        delivered_at = clock.at(time.perf_counter())
        return self._event(spec, request, data, media_type, started_at, completed_at, delivered_at, cold, cold_ms,
                           (t_done - t_infer) * 1000.0, (t_encoded - t_done) * 1000.0,
                           gpu_seconds=(t_done - t_start) * self.gpus, ref=ref)

    def _run_api(self, spec: ModelSpec, request: JobRequest) -> dict[str, Any]:
        """A provider API call, SIMULATED: a seeded lognormal provider latency, and an image
        from a tiny stand-in pipeline. What is recorded is what a real API node records: the
        provider's latency and the per-image price, no GPU-seconds, no cold start."""
        clock = _Clock()
        started_at, t_start = clock.wall(), clock.perf
        pipe, _, _ = self._pipeline(spec)
        image = generate(pipe, request.prompt, seed=request.seed, size=spec.size, steps=spec.steps)
        rng = random.Random(request.seed)
        provider_ms = rng.lognormvariate(math.log(spec.latency_ms_median), spec.latency_sigma)
        remaining = provider_ms / 1000.0 - (time.perf_counter() - t_start)
        if remaining > 0:
            time.sleep(remaining)
        t_done = time.perf_counter()
        completed_at = clock.at(t_done)
        data, media_type = encode_image(image, self.image_format)
        t_encoded = time.perf_counter()
        ref = self._store_large(request, data)
        event = self._event(spec, request, data, media_type, started_at, completed_at, clock.at(time.perf_counter()),
                            False, 0.0,
                            (t_done - t_start) * 1000.0, (t_encoded - t_done) * 1000.0, gpu_seconds=0.0, ref=ref)
        event["api_cost_usd"] = spec.api_cost_usd
        return event

    def _store_large(self, request: JobRequest, data: bytes) -> dict[str, Any] | None:
        """The claim-check reference of an output above the inline limit (stored before the
        delivery time is taken: storing it is part of delivering it); None when it fits."""
        if len(data) <= self.max_image_bytes:
            return None
        if self.objects is None:
            raise ImageTooLarge(f"job {request.job_id}: encoded image is {len(data)} bytes, "
                                f"over the inline limit of {self.max_image_bytes} and this node has no object store")
        return self.objects.put(data).to_record()

    def _event(self, spec: ModelSpec, request: JobRequest, data: bytes, media_type: str, started_at: datetime,
               completed_at: datetime, delivered_at: datetime, cold: bool, cold_ms: float, inference_ms: float,
               encode_ms: float, *, gpu_seconds: float, ref: dict[str, Any] | None = None) -> dict[str, Any]:
        event = {
            "job_id": request.job_id,
            "model_id": spec.model_id,
            "model_version": spec.version,
            "provider": spec.provider,
            "niche": request.niche,
            "prompt": request.prompt,
            "seed": request.seed,
            "reference_image": request.reference_image,
            "image": b"" if ref else data,
            "media_type": media_type,
            "requested_at": request.requested_at,
            "started_at": started_at,
            "completed_at": completed_at,
            "delivered_at": delivered_at,
            "cold_start": cold,
            "cold_start_ms": cold_ms,
            "inference_ms": inference_ms,
            "encode_ms": encode_ms,
            "gpu_type": spec.gpu_type,
            "gpu_seconds": gpu_seconds,
            "api_cost_usd": None,
            "node_id": self.node_id,
            "image_ref": ref,
            **UNGUARDED,
        }
        if self.objects is not None:  # a large customer photo travels by reference too
            claim_large(event, self.objects, self.max_image_bytes)
        return event

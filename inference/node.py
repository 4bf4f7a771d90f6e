"""An inference node: runs diffusers pipelines for job requests and measures honest timings.

Per job it records requested / started / completed / delivered timestamps (UTC, ms), whether
the model had to be loaded first (cold start, and how long that took), inference and encode
time, and GPU-seconds (wall time the accelerator was held x GPUs; on CPU nodes the same
accounting with gpu_type "cpu"). The result is a JobCompleted record ready to publish.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image

from inference.registry import ModelSpec
from inference.tiny_pipelines import ensure_tiny_pipeline, generate, load_pipeline

log = logging.getLogger(__name__)

FORMATS = {"webp": ("WEBP", "image/webp"), "png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg")}


class ImageTooLarge(ValueError):
    pass


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
                 image_format: str = "webp", max_image_bytes: int = 900_000, gpus: int = 1) -> None:
        self.models = models
        self.node_id = node_id
        self.cache_dir = cache_dir
        self.image_format = image_format
        self.max_image_bytes = max_image_bytes
        self.gpus = gpus
        self._pipelines: dict[str, Any] = {}

    def _pipeline(self, spec: ModelSpec) -> tuple[Any, bool, float]:
        """The loaded pipeline, whether this call was a cold start, and its load time (ms)."""
        if spec.model_id in self._pipelines:
            return self._pipelines[spec.model_id], False, 0.0
        t0 = time.perf_counter()
        path = Path(spec.path) if spec.path else ensure_tiny_pipeline(spec.pipeline_class, self.cache_dir, spec.seed)
        pipe = load_pipeline(path, spec.pipeline_class)
        self._pipelines[spec.model_id] = pipe
        return pipe, True, (time.perf_counter() - t0) * 1000.0

    def run(self, request: JobRequest) -> dict[str, Any]:
        try:
            spec = self.models[request.model_id]
        except KeyError:
            raise KeyError(f"model {request.model_id!r} is not in this node's registry ({sorted(self.models)})") from None
        started_at = _now()
        t_start = time.perf_counter()
        pipe, cold, cold_ms = self._pipeline(spec)
        t_infer = time.perf_counter()
        image = generate(pipe, request.prompt, seed=request.seed, size=spec.size, steps=spec.steps)
        t_done = time.perf_counter()
        completed_at = _now()
        data, media_type = encode_image(image, self.image_format)
        t_encoded = time.perf_counter()
        if len(data) > self.max_image_bytes:
            raise ImageTooLarge(f"job {request.job_id}: encoded image is {len(data)} bytes, "
                                f"over the inline limit of {self.max_image_bytes}")
        delivered_at = _now()
        return {
            "job_id": request.job_id,
            "model_id": spec.model_id,
            "model_version": spec.version,
            "provider": spec.provider,
            "niche": request.niche,
            "prompt": request.prompt,
            "seed": request.seed,
            "reference_image": request.reference_image,
            "image": data,
            "media_type": media_type,
            "requested_at": request.requested_at,
            "started_at": started_at,
            "completed_at": completed_at,
            "delivered_at": delivered_at,
            "cold_start": cold,
            "cold_start_ms": cold_ms,
            "inference_ms": (t_done - t_infer) * 1000.0,
            "encode_ms": (t_encoded - t_done) * 1000.0,
            "gpu_type": spec.gpu_type,
            "gpu_seconds": (t_done - t_start) * self.gpus,
            "api_cost_usd": None,
            "node_id": self.node_id,
        }

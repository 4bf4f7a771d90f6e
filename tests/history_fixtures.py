"""Rows and image files for the `sentinel import` tests (unit and integration)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def good(i: int, **changes) -> dict:
    """A valid history row (trace fields + image path); ``...`` as a value removes that field."""
    row = {"job_id": f"h-{i}", "model": "flux-dev", "model_version": "2026.1", "provider": "self-hosted",
           "niche": "headshot", "prompt": f"prompt {i}", "requested_at": "2026-02-01T10:00:00.000Z",
           "started_at": "2026-02-01T10:00:00.250Z", "completed_at": "2026-02-01T10:00:03.000Z",
           "delivered_at": "2026-02-01T10:00:03.100Z", "cold_start": False, "cold_start_ms": 0.0,
           "gpu_type": "A100-80GB", "gpu_seconds": 2.75, "api_cost_usd": None, "image": f"images/{i}.png"}
    row.update(changes)
    return {k: v for k, v in row.items() if v is not ...}


def image_file(path: Path, fmt: str, size: int, seed: int) -> bytes:
    """Write a noisy ``size`` x ``size`` image (noise does not compress: at 1024 x 1024 a PNG is
    ~3 MB, a JPEG at quality 95 ~1.2 MB)."""
    pixels = (np.random.default_rng(seed).random((size, size, 3)) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()

"""Shared by the Guard tests: requests built from hand-made images, an app on the tiny CLIP."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image

from config.rubric import load_rubric
from config.settings import Settings
from guard.app import GuardConfig, create_app
from guard.judge import Judge

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def image_bytes(seed: int, size: tuple[int, int] = (64, 64), fmt: str = "PNG", blank: int | None = None) -> bytes:
    w, h = size
    pixels = (np.full((h, w, 3), blank, np.uint8) if blank is not None
              else np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()


def body(seed: int = 0, **changes: Any) -> dict[str, Any]:
    out = {"image": base64.b64encode(image_bytes(seed)).decode(), "media_type": "image/png",
           "prompt": "corporate headshot of a woman", "niche": "headshot", "model_id": f"model-{seed}",
           "width": 64, "height": 64, "job_id": f"job-{seed}"}
    out.update(changes)
    return out


def make_app(scorer, **config: Any):
    settings = Settings()
    cfg = GuardConfig(**{"token": TOKEN, **config})
    judge = Judge(load_rubric(), scorer, settings.scorer_version, max_pixels=cfg.max_pixels)
    return create_app(cfg, judge), judge


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose data is a few bytes (a bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")

"""Cheap placeholder images for replayed trace rows: one small PNG per (model, seed).

Replaying a trace as recorded keeps the trace's timings and costs; the image only has to be a
valid, deterministic picture the worker can decode and score. Running a diffusion pipeline per
row caps a replay at a few jobs per second, far below the rate a worker must be load-tested at,
so by default each row gets a diagonal gradient between two colours drawn from a hash of its
model and seed: the same row always gets the same bytes (a few hundred), different rows differ.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

import numpy as np

from inference.trace_row import TraceRow

MEDIA_TYPE = "image/png"
DEFAULT_SIZE = 32


def _ramp(size: int) -> np.ndarray:
    """0 at the top-left corner, 1 at the bottom-right, shape (size, size, 1)."""
    steps = np.arange(size)
    return (np.add.outer(steps, steps) / max(2 * size - 2, 1))[:, :, None]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(pixels: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of ``pixels`` (height, width, 3), every row unfiltered.

    Written out here because for an image this small PIL's save machinery costs about three
    times the whole encode (measured: ~100 vs ~350 us per 32x32 image on a busy 2-core machine).
    """
    height, width, _ = pixels.shape
    rows = np.zeros((height, 1 + 3 * width), np.uint8)  # a leading 0 per row: filter type None
    rows[:, 1:] = pixels.reshape(height, 3 * width)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, truecolour, no interlace
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes()))
            + _chunk(b"IEND", b""))


def seeded_image(model: str, seed: int, size: int = DEFAULT_SIZE) -> bytes:
    """PNG bytes of a ``size`` x ``size`` gradient whose two end colours come from (model, seed)."""
    return SeededImages(size).image(model, seed)


class SeededImages:
    """Renders trace rows as seeded gradients; nothing to load, so it runs on the caller's thread."""

    in_thread = False  # microseconds per row: a thread hand-off would cost more than the work
    stand_ins: frozenset[str] = frozenset()  # every model is rendered the same way, none stands in

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError(f"image size must be at least 1, got {size}")
        self.size = size
        self._ramp = _ramp(size)

    def image(self, model: str, seed: int) -> bytes:
        digest = hashlib.blake2b(f"{model}\x00{seed}".encode(), digest_size=6).digest()
        ends = np.frombuffer(digest, np.uint8).astype(np.float32)
        return png((ends[:3] + (ends[3:] - ends[:3]) * self._ramp).round().astype(np.uint8))

    def render(self, row: TraceRow) -> tuple[bytes, str]:
        """(image bytes, media type) for one trace row."""
        return self.image(row.model, row.seed), MEDIA_TYPE

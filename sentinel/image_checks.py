"""The Guard rubric's weight-free image checks: pure functions of decoded pixels and numbers.

Each check returns a ``contracts.verdict.Check`` (a name a person understands, the measured
value, the threshold, pass/fail and a reason). Nothing here reads files, the environment or the
network; the recent-output memory of the repeat check is an object the caller owns and passes in.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from contracts.verdict import CHECK_NAMES, Check
from sentinel.validation import as_rgb

FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
# ITU-R BT.601 luma weights: the "brightness" the blank and clipping checks look at
LUMA32 = np.array([0.299, 0.587, 0.114], np.float32)
CLIP_HIGH = 250  # a pixel whose every channel is at least this is blown out (white)
CLIP_LOW = 5  # ... at most this, crushed (black)


class ImageRejected(ValueError):
    """Bytes that cannot be judged: not an image (``too_large`` False) or more pixels than the
    limit (``too_large`` True; refused from the header, before any pixel is decoded)."""

    def __init__(self, detail: str, *, too_large: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.too_large = too_large


@dataclass(frozen=True)
class Decoded:
    image: Image.Image  # RGB, fully loaded
    format: str  # what the bytes are (PNG, JPEG, WEBP, ...)
    digest: str  # sha256 of the bytes as sent


def decode_output(data: bytes, *, max_pixels: int) -> Decoded:
    """Open ``data``, refuse it from its header when it claims more than ``max_pixels`` (a
    decompression bomb never reaches the decoder), then decode the first frame to RGB."""
    digest = hashlib.sha256(data).hexdigest()
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"image header claims too many pixels: {exc}", too_large=True) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageRejected(f"not a decodable image: {type(exc).__name__}: {exc}"[:300]) from exc
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRejected(f"{width}x{height} = {width * height} pixels, above the limit of {max_pixels}",
                            too_large=True)
    if width < 1 or height < 1:
        raise ImageRejected(f"image has no pixels ({width}x{height})")
    fmt = image.format or "?"
    try:
        image.load()
        rgb = image.convert("RGB")
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ImageRejected(f"image data is corrupt: {type(exc).__name__}: {exc}"[:300]) from exc
    return Decoded(rgb, fmt, digest)


@dataclass(frozen=True)
class PixelStats:
    """Brightness spread (std of BT.601 luma, 0-255) and the fraction of pixels clipped to
    white (all channels >= CLIP_HIGH) or black (all channels <= CLIP_LOW)."""

    luma_std: float
    clipped_fraction: float

    @classmethod
    def of(cls, image: Image.Image) -> "PixelStats":
        rgb = np.asarray(as_rgb(image))
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        luma = LUMA32[0] * r + LUMA32[1] * g + LUMA32[2] * b  # float32, one pass per channel
        white = (r >= CLIP_HIGH) & (g >= CLIP_HIGH) & (b >= CLIP_HIGH)
        black = (r <= CLIP_LOW) & (g <= CLIP_LOW) & (b <= CLIP_LOW)
        return cls(float(luma.std(dtype=np.float64)), float(np.count_nonzero(white | black)) / luma.size)


def check_decodes(fmt: str, media_type: str) -> Check:
    """The bytes decoded (undecodable bytes never reach a verdict: the service refuses them) and
    are what their media type says."""
    expected = FORMATS.get(media_type)
    if fmt == expected:
        return Check(CHECK_NAMES["decodes"], None, None, True, f"decoded as {fmt}, as labelled")
    return Check(CHECK_NAMES["decodes"], None, None, False, f"labelled {media_type} but the bytes are {fmt}")


def check_resolution(width: int, height: int, want_w: int, want_h: int, tolerance: float) -> Check:
    """Value: the larger relative error of the two sides, |w - W| / W and |h - H| / H."""
    error = max(abs(width - want_w) / want_w, abs(height - want_h) / want_h)
    ok = error <= tolerance
    reason = f"{width}x{height}, asked {want_w}x{want_h}"
    return Check(CHECK_NAMES["resolution"], error, tolerance, ok,
                 reason + ("" if ok else f": off by {error:.1%} (allowed {tolerance:.1%})"))


def check_aspect(width: int, height: int, want_w: int, want_h: int, tolerance: float) -> Check:
    """Value: the relative aspect-ratio error |(w/h) / (W/H) - 1|."""
    error = abs((width / height) / (want_w / want_h) - 1.0)
    ok = error <= tolerance
    return Check(CHECK_NAMES["aspect"], error, tolerance, ok,
                 f"aspect {width / height:.3f}, asked {want_w / want_h:.3f}"
                 + ("" if ok else f": off by {error:.1%} (allowed {tolerance:.1%})"))


def check_not_blank(stats: PixelStats, min_std: float) -> Check:
    ok = stats.luma_std >= min_std
    return Check(CHECK_NAMES["blank"], stats.luma_std, min_std, ok,
                 f"brightness spread {stats.luma_std:.2f} (std of 0-255 luma)"
                 + ("" if ok else f" below {min_std:g}: blank or near-uniform"))


def check_not_clipped(stats: PixelStats, max_fraction: float) -> Check:
    ok = stats.clipped_fraction <= max_fraction
    return Check(CHECK_NAMES["clipped"], stats.clipped_fraction, max_fraction, ok,
                 f"{stats.clipped_fraction:.1%} of pixels blown to white or crushed to black"
                 + ("" if ok else f", above {max_fraction:.0%}"))


def check_not_repeat(earlier: int, max_repeats: int, window: int) -> Check:
    """``earlier``: how many of the model's last ``window`` outputs had the same sha256."""
    ok = earlier <= max_repeats
    return Check(CHECK_NAMES["repeat"], float(earlier), float(max_repeats), ok,
                 f"same bytes as {earlier} of this model's last {window} outputs"
                 + ("" if ok else ": the model may be stuck"))


def check_prompt(score: float, minimum: float) -> Check:
    """``score``: CLIPScore, 100 * max(cos(image, prompt), 0)."""
    ok = score >= minimum
    return Check(CHECK_NAMES["prompt"], score, minimum, ok,
                 f"CLIP prompt score {score:.2f}" + (f" >= {minimum:g}" if ok else f" below the minimum {minimum:g}"))


def check_reference(cosine: float, minimum: float) -> Check:
    """``cosine``: image-image cosine of the output and the reference photo's CLIP embeddings."""
    ok = cosine >= minimum
    return Check(CHECK_NAMES["reference"], cosine, minimum, ok,
                 f"CLIP cosine to the reference {cosine:.3f}"
                 + (f" >= {minimum:g}" if ok else f" below the minimum {minimum:g}"))


class RecentDigests:
    """The last ``window`` output digests of each of at most ``max_models`` models (least
    recently seen model forgotten first): bounded memory for the repeat check. Thread-safe."""

    def __init__(self, window: int = 64, max_models: int = 1024) -> None:
        if window < 1 or max_models < 1:
            raise ValueError("window and max_models must be at least 1")
        self.window = window
        self.max_models = max_models
        self._models: OrderedDict[str, tuple[deque[str], Counter[str]]] = OrderedDict()
        self._lock = threading.Lock()

    def observe(self, model_id: str, digest: str) -> int:
        """How many of the model's remembered outputs had ``digest``; then remember this one."""
        with self._lock:
            entry = self._models.get(model_id)
            if entry is None:
                entry = self._models[model_id] = (deque(), Counter())
                while len(self._models) > self.max_models:
                    self._models.popitem(last=False)
            else:
                self._models.move_to_end(model_id)
            order, counts = entry
            earlier = counts[digest]
            order.append(digest)
            counts[digest] += 1
            if len(order) > self.window:
                gone = order.popleft()
                counts[gone] -= 1
                if not counts[gone]:
                    del counts[gone]
            return earlier

    def __len__(self) -> int:
        with self._lock:
            return sum(len(order) for order, _ in self._models.values())

"""Guard's weight-free checks on hand-built images, each value recomputed here independently."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from contracts.verdict import CHECK_NAMES
from guard_helpers import png_header_only
from sentinel.image_checks import (ImageRejected, PixelStats, RecentDigests, check_aspect, check_decodes,
                                   check_not_blank, check_not_clipped, check_not_repeat, check_prompt,
                                   check_reference, check_resolution, decode_output)


def encode(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()


def luma_std_by_hand(rgb: np.ndarray) -> float:
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return float(np.sqrt(((y - y.mean()) ** 2).mean()))


def clipped_by_hand(rgb: np.ndarray) -> float:
    n = 0
    for row in rgb:
        for px in row:
            n += all(c >= 250 for c in px) or all(c <= 5 for c in px)
    return n / (rgb.shape[0] * rgb.shape[1])


def test_decode_returns_rgb_format_and_digest() -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    data = encode(pixels)
    decoded = decode_output(data, max_pixels=10_000)
    assert decoded.format == "PNG" and decoded.image.size == (30, 20)
    assert np.array_equal(np.asarray(decoded.image), pixels)
    assert decoded.digest == hashlib.sha256(data).hexdigest()


def test_a_bomb_is_refused_from_its_header() -> None:
    with pytest.raises(ImageRejected) as caught:
        decode_output(png_header_only(60_000, 60_000), max_pixels=4096 * 4096)
    assert caught.value.too_large and "pixels" in caught.value.detail  # PIL's own bomb limit
    with pytest.raises(ImageRejected) as caught:
        decode_output(png_header_only(5000, 5000), max_pixels=4096 * 4096)
    assert caught.value.too_large and "5000x5000" in caught.value.detail  # ours, below PIL's
    with pytest.raises(ImageRejected) as caught:  # just over the configured limit
        decode_output(png_header_only(101, 100), max_pixels=100 * 100)
    assert caught.value.too_large


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 30,
                                  png_header_only(64, 64)])  # header fine, pixel data missing
def test_undecodable_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(ImageRejected) as caught:
        decode_output(data, max_pixels=4096 * 4096)
    assert not caught.value.too_large


def test_truncated_png_is_refused() -> None:
    data = encode(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    with pytest.raises(ImageRejected):
        decode_output(data[: len(data) // 2], max_pixels=1 << 20)


def test_decodes_check_compares_format_with_label() -> None:
    assert check_decodes("PNG", "image/png").passed
    assert check_decodes("JPEG", "image/jpeg").passed
    bad = check_decodes("JPEG", "image/png")
    assert not bad.passed and bad.name == CHECK_NAMES["decodes"] and "JPEG" in bad.reason


@pytest.mark.parametrize("w, h, W, H, tol", [(64, 64, 64, 64, 0.0), (64, 48, 64, 64, 0.0), (60, 64, 64, 64, 0.1),
                                             (1024, 512, 512, 512, 0.5), (33, 17, 32, 16, 0.05)])
def test_resolution_and_aspect_values(w, h, W, H, tol) -> None:
    res = check_resolution(w, h, W, H, tol)
    expected = max(abs(w - W) / W, abs(h - H) / H)
    assert res.value == pytest.approx(expected) and res.threshold == tol and res.passed == (expected <= tol)
    aspect = check_aspect(w, h, W, H, tol)
    expected = abs((w * H) / (h * W) - 1)
    assert aspect.value == pytest.approx(expected) and aspect.passed == (expected <= tol + 1e-12)


def test_pixel_stats_match_a_recomputation() -> None:
    rng = np.random.default_rng(3)
    images = [
        rng.integers(0, 256, (16, 24, 3), dtype=np.uint8),  # noise
        np.full((16, 16, 3), 128, np.uint8),  # uniform grey
        np.clip(128 + rng.normal(0, 1.5, (16, 16, 3)), 0, 255).astype(np.uint8),  # near-uniform
        np.where(rng.random((16, 16, 1)) < 0.7, 255, rng.integers(0, 256, (16, 16, 3))).astype(np.uint8),  # blown
        np.where(rng.random((16, 16, 1)) < 0.3, 0, 200).repeat(3, axis=2).astype(np.uint8),  # crushed blacks
    ]
    for pixels in images:
        stats = PixelStats.of(Image.fromarray(pixels))
        assert stats.luma_std == pytest.approx(luma_std_by_hand(pixels), abs=1e-3)
        assert stats.clipped_fraction == pytest.approx(clipped_by_hand(pixels))


def test_blank_and_clipped_checks_on_planted_images() -> None:
    noise = PixelStats.of(Image.fromarray(np.random.default_rng(4).integers(0, 256, (32, 32, 3), dtype=np.uint8)))
    blank = PixelStats.of(Image.fromarray(np.full((32, 32, 3), 255, np.uint8)))
    assert check_not_blank(noise, 4.0).passed and check_not_clipped(noise, 0.5).passed
    assert not check_not_blank(blank, 4.0).passed and blank.luma_std == 0.0
    clipped = check_not_clipped(blank, 0.5)
    assert not clipped.passed and clipped.value == 1.0 and clipped.threshold == 0.5


def test_clip_checks_compare_with_minimum() -> None:
    assert check_prompt(25.0, 20.0).passed and not check_prompt(19.9, 20.0).passed
    assert check_reference(0.8, 0.8).passed and not check_reference(0.79, 0.8).passed


def test_recent_digests_count_repeats_within_the_window() -> None:
    recent = RecentDigests(window=3, max_models=2)
    seen = [recent.observe("m", d) for d in ["a", "b", "a", "c", "d", "a", "a"]]
    # by hand: the count of the digest among the previous (up to) 3 outputs of "m"
    history: list[str] = []
    expected = []
    for d in ["a", "b", "a", "c", "d", "a", "a"]:
        expected.append(history[-3:].count(d))
        history.append(d)
    assert seen == expected
    assert recent.observe("other", "a") == 0  # per model
    recent.observe("third", "x")  # a third model evicts the least recently seen ("m")
    assert recent.observe("m", "a") == 0
    assert len(recent) <= 3 * 2
    check = check_not_repeat(2, 0, 3)
    assert not check.passed and check.value == 2.0 and "stuck" in check.reason


def test_recent_digests_memory_is_bounded() -> None:
    recent = RecentDigests(window=8, max_models=4)
    for i in range(10_000):
        recent.observe(f"model-{i % 50}", f"digest-{i}")
    assert len(recent) <= 8 * 4

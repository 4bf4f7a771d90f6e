"""Semantic checks of JobCompleted events and image decoding."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from PIL import Image

from sentinel.validation import check_job, decode_image, latency_ms
from contracts.errors import InvalidEvent

UTC = timezone.utc
T0 = datetime(2026, 1, 5, 9, 0, 0, 17000, tzinfo=UTC)
LIMIT = 10_000


def _image_bytes(fmt: str, size: int = 16, seed: int = 0, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray((rng.random((size, size, 3)) * 255).astype("uint8")).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def event(**overrides) -> dict:
    e = {
        "job_id": "job-1",
        "model_id": "flux-dev",
        "model_version": "2026.1",
        "provider": "self_hosted",
        "niche": "headshot",
        "prompt": "a portrait",
        "seed": 1,
        "reference_image": None,
        "image": _image_bytes("WEBP"),
        "media_type": "image/webp",
        "requested_at": T0,
        "started_at": T0 + timedelta(milliseconds=120),
        "completed_at": T0 + timedelta(milliseconds=2_620),
        "delivered_at": T0 + timedelta(milliseconds=2_651),
        "cold_start": False,
        "cold_start_ms": 0.0,
        "inference_ms": 2500.0,
        "encode_ms": 20.0,
        "gpu_type": "A100-80GB",
        "gpu_seconds": 2.5,
        "api_cost_usd": None,
        "node_id": "node-0",
    }
    e.update(overrides)
    return e


def _reason(**overrides) -> str:
    with pytest.raises(InvalidEvent) as info:
        check_job(event(**overrides), max_image_bytes=LIMIT)
    return info.value.reason


def test_valid_events_pass() -> None:
    check_job(event(), max_image_bytes=LIMIT)
    check_job(event(provider="api", gpu_type="none", gpu_seconds=0.0, api_cost_usd=0.04), max_image_bytes=LIMIT)
    same = T0  # equal timestamps are in order
    check_job(event(started_at=same, completed_at=same, delivered_at=same), max_image_bytes=LIMIT)


@pytest.mark.parametrize("overrides", [
    {"started_at": T0 - timedelta(milliseconds=1)},
    {"completed_at": T0 + timedelta(milliseconds=100)},  # before started_at (T0 + 120 ms)
    {"delivered_at": T0 + timedelta(milliseconds=2_619)},
    {"requested_at": T0 + timedelta(hours=1)},
])
def test_timings_out_of_order(overrides: dict) -> None:
    assert _reason(**overrides) == "timings_out_of_order"


@pytest.mark.parametrize("name", ["cold_start_ms", "gpu_seconds", "inference_ms", "encode_ms", "api_cost_usd"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.5])
def test_bad_number(name: str, value: float) -> None:
    assert _reason(**{name: value}) == "bad_number"


def test_negative_gpu_seconds_detail_names_the_field() -> None:
    with pytest.raises(InvalidEvent) as info:
        check_job(event(gpu_seconds=-1.0), max_image_bytes=LIMIT)
    assert info.value.reason == "bad_number" and "gpu_seconds" in info.value.detail


def test_missing_api_cost() -> None:
    assert _reason(provider="api", gpu_type="none", gpu_seconds=0.0, api_cost_usd=None) == "missing_api_cost"


@pytest.mark.parametrize("media_type", ["image/gif", "image/jpg", "IMAGE/PNG", ""])
def test_unsupported_media_type(media_type: str) -> None:
    assert _reason(media_type=media_type) == "unsupported_media_type"


def test_image_size_limit_is_inclusive() -> None:
    check_job(event(image=b"x" * LIMIT), max_image_bytes=LIMIT)
    assert _reason(image=b"x" * (LIMIT + 1)) == "image_too_large"


def test_missing_ids() -> None:
    assert _reason(job_id="") == "missing_job_id"
    assert _reason(niche="") == "missing_field"


@pytest.mark.parametrize("fmt,media_type", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_decode_image_ok(fmt: str, media_type: str) -> None:
    img = decode_image(_image_bytes(fmt, size=20), media_type)
    assert img.mode == "RGB" and img.size == (20, 20)


def test_decode_image_converts_to_rgb_and_keeps_pixels() -> None:
    rng = np.random.default_rng(3)
    pixels = (rng.random((9, 7, 3)) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(pixels).convert("RGBA").save(buf, format="PNG")
    img = decode_image(buf.getvalue(), "image/png")
    assert img.mode == "RGB"
    assert np.array_equal(np.asarray(img), pixels)  # PNG is lossless
    assert decode_image(_image_bytes("PNG", mode="L")).mode == "RGB"


@pytest.mark.parametrize("data", [
    b"",
    b"definitely not an image",
    _image_bytes("PNG", size=32)[:60],  # truncated PNG
    _image_bytes("JPEG", size=32)[:100],  # truncated JPEG
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
])
def test_decode_image_corrupt(data: bytes) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_image(data, "image/png")
    assert info.value.reason == "corrupt_image"


@pytest.mark.parametrize("fmt,label", [("PNG", "image/webp"), ("JPEG", "image/png"), ("WEBP", "image/jpeg")])
def test_decode_image_media_type_mismatch(fmt: str, label: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_image(_image_bytes(fmt), label)
    assert info.value.reason == "media_type_mismatch"


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [9_000, 20_000])
def test_decode_image_decompression_bomb_is_an_invalid_event(side: int) -> None:
    # A ~70-byte PNG claiming side x side pixels: rejected before allocating, never a crash.
    with pytest.raises(InvalidEvent) as info:
        decode_image(_png_header_only(side, side), "image/png")
    assert info.value.reason == "image_too_large"


def test_latency_ms() -> None:
    e = event(requested_at=datetime(2026, 1, 5, 23, 59, 59, 999000, tzinfo=UTC),
              delivered_at=datetime(2026, 1, 6, 0, 0, 3, 1000, tzinfo=UTC))
    assert latency_ms(e) == 3002.0  # exact: whole milliseconds
    e = event()
    expected = (e["delivered_at"] - e["requested_at"]) / timedelta(milliseconds=1)
    assert expected == 2651.0
    assert latency_ms(e) == expected
    # Aware datetimes in other zones are the same instants.
    plus5 = timezone(timedelta(hours=5))
    e = event(requested_at=T0.astimezone(plus5), delivered_at=T0 + timedelta(seconds=90))
    assert latency_ms(e) == 90_000.0

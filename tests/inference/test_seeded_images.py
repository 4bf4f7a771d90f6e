"""Seeded placeholder images: deterministic per (model, seed), small, and decodable by the worker."""

from __future__ import annotations

import numpy as np
import pytest

from inference.seeded_images import DEFAULT_SIZE, MEDIA_TYPE, SeededImages, seeded_image
from inference.trace_generator import generate_trace
from sentinel.validation import decode_image


def test_same_model_and_seed_same_bytes_else_different() -> None:
    images = SeededImages()
    assert images.image("flux-dev", 7) == seeded_image("flux-dev", 7)
    others = {images.image("flux-dev", seed) for seed in range(200)} | {images.image("sdxl-turbo", 7)}
    assert len(others) == 201


def test_a_small_png_the_worker_decodes_as_a_gradient() -> None:
    data = seeded_image("proprietary-a", 12345)
    assert len(data) < 1_000
    pixels = np.asarray(decode_image(data, MEDIA_TYPE), dtype=int)
    assert pixels.shape == (DEFAULT_SIZE, DEFAULT_SIZE, 3)
    diagonal = [pixels[i, i] for i in range(DEFAULT_SIZE)]
    assert not np.array_equal(diagonal[0], diagonal[-1])  # two end colours: not a flat square
    assert np.array_equal(pixels[0, 1], pixels[1, 0])  # constant along anti-diagonals


def test_render_a_trace_row_and_sizes() -> None:
    row = generate_trace(1, seed=2)[0]
    image, media_type = SeededImages(8).render(row)
    assert media_type == MEDIA_TYPE and decode_image(image).size == (8, 8)
    assert image == seeded_image(row.model, row.seed, 8)
    assert decode_image(seeded_image("m", 1, 1)).size == (1, 1)
    with pytest.raises(ValueError, match="at least 1"):
        SeededImages(0)


def test_png_round_trips_any_pixels_through_pil() -> None:
    import io

    from PIL import Image

    from inference.seeded_images import png

    for shape in ((1, 1, 3), (3, 5, 3), (32, 32, 3)):
        pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
        image = Image.open(io.BytesIO(png(pixels)))
        assert image.format == "PNG" and image.mode == "RGB"
        assert np.array_equal(np.asarray(image), pixels)

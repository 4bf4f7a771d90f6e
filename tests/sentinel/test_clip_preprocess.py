"""sentinel/clip.py: a batch's pixels (the PIL steps per image, to-tensor and normalize once for
the batch) equal open_clip's transform applied image by image, as torchvision computes it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sentinel.clip import TINY_ARCH, ClipExtractor, ClipSpec


def images(seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    out = []
    for i, (w, h) in enumerate([(64, 64), (80, 48), (33, 97), (200, 120), (64, 64)]):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        out.append(image.convert(["RGB", "RGBA", "L", "RGB", "P"][i]))  # modes the scorer may be handed
    return out


@pytest.fixture(scope="module")
def extractor() -> ClipExtractor:
    return ClipExtractor(ClipSpec(arch=TINY_ARCH, batch_size=8))  # one chunk: the same batch as below


def test_batch_pixels_equal_the_transform_image_by_image(extractor: ClipExtractor) -> None:
    assert extractor._stages is not None  # open_clip's transform has the shape the batch path takes
    for seed in range(3):
        batch = images(seed)
        expected = torch.stack([extractor.preprocess(im.convert("RGB")) for im in batch])
        got = extractor._pixels(batch)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert torch.equal(got, expected)


def test_embeddings_equal_the_model_on_the_transformed_images(extractor: ClipExtractor) -> None:
    batch = images(7)
    with torch.inference_mode():
        features = extractor.model.encode_image(torch.stack([extractor.preprocess(im.convert("RGB")) for im in batch]))
    expected = torch.nn.functional.normalize(features.float(), dim=-1).numpy()
    np.testing.assert_array_equal(extractor.encode_images(batch), expected)


def test_a_transform_of_another_shape_runs_image_by_image(extractor: ClipExtractor, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(extractor, "_stages", None)
    monkeypatch.setattr(extractor, "preprocess", lambda im: calls.append(im.size) or torch.zeros(3, 2, 2))
    assert extractor._pixels(images(1)).shape == (5, 3, 2, 2) and len(calls) == 5

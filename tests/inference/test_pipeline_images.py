"""Pipeline-made replay images: the registry's pipeline, or a deterministic stand-in that is named."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import dataclasses  # noqa: E402

from config.settings import PROJECT_ROOT  # noqa: E402
from inference.pipeline_images import PipelineImages  # noqa: E402
from inference.registry import load_registry  # noqa: E402
from inference.trace_generator import generate_trace  # noqa: E402
from sentinel.validation import decode_image  # noqa: E402


def test_models_outside_the_registry_get_a_named_deterministic_stand_in(tmp_path) -> None:
    row = generate_trace(1, seed=6)[0]
    images = PipelineImages(load_registry(PROJECT_ROOT / "models.toml"), tmp_path, size=32, steps=1)
    image, media_type = images.render(row)
    assert images.stand_ins == {row.model}
    assert decode_image(image, media_type).size == (32, 32)
    assert images.render(row)[0] == image
    assert images.render(dataclasses.replace(row, seed=row.seed + 1))[0] != image

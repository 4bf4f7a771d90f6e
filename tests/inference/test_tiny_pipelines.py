"""Tiny offline pipelines: determinism, caching and seeded weights."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from inference.tiny_pipelines import (  # noqa: E402
    PIPELINE_CLASSES,
    build_tiny_pipeline,
    ensure_tiny_pipeline,
    generate,
    load_pipeline,
)

KINDS = ("sd", "sdxl", "flux")
PROMPT = "a photo of a red car on the beach at night"


def _pixels(pipe, seed: int) -> np.ndarray:
    image = generate(pipe, PROMPT, seed=seed, size=64, steps=2)
    assert image.size == (64, 64)
    assert image.mode == "RGB"
    return np.asarray(image)


def _weight_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*.safetensors"))
    }


@pytest.mark.parametrize("kind", KINDS)
def test_generation_is_deterministic(kind: str, tmp_path: Path) -> None:
    path = ensure_tiny_pipeline(kind, tmp_path)
    assert path == tmp_path / f"tiny-{kind}-s0"
    pipe = load_pipeline(path)
    assert type(pipe) is PIPELINE_CLASSES[kind]

    first, again, other = _pixels(pipe, 1), _pixels(pipe, 1), _pixels(pipe, 2)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.std() > 0  # not a blank image


@pytest.mark.parametrize("kind", KINDS)
def test_ensure_does_not_rebuild(kind: str, tmp_path: Path) -> None:
    path = ensure_tiny_pipeline(kind, tmp_path)
    index = path / "model_index.json"
    mtime = index.stat().st_mtime_ns

    assert ensure_tiny_pipeline(kind, tmp_path) == path
    assert index.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp dirs left
    assert type(load_pipeline(path, kind)) is PIPELINE_CLASSES[kind]


def test_ensure_keeps_a_concurrently_built_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inference.tiny_pipelines as tiny

    real_build = tiny.build_tiny_pipeline

    def racing_build(kind: str, out_dir: Path, seed: int = 0) -> Path:
        real_build(kind, tmp_path / f"tiny-{kind}-s{seed}", seed)  # the other process wins
        return real_build(kind, out_dir, seed)

    monkeypatch.setattr(tiny, "build_tiny_pipeline", racing_build)
    path = ensure_tiny_pipeline("sd", tmp_path)
    assert (path / "model_index.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_gives_same_weights(kind: str, tmp_path: Path) -> None:
    a = _weight_files(build_tiny_pipeline(kind, tmp_path / "a", seed=3))
    b = _weight_files(build_tiny_pipeline(kind, tmp_path / "b", seed=3))
    c = _weight_files(build_tiny_pipeline(kind, tmp_path / "c", seed=4))
    assert a and a == b
    assert a != c


def test_unknown_kind_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown pipeline kind"):
        build_tiny_pipeline("dalle", tmp_path)


def test_loading_prints_no_third_party_noise(tmp_path: Path, capfd) -> None:
    path = ensure_tiny_pipeline("sd", tmp_path)
    capfd.readouterr()
    load_pipeline(path)
    out, err = capfd.readouterr()
    assert "accelerate" not in out + err and "Loading pipeline components" not in out + err

"""CLIP scores recomputed with a model built directly through open_clip (not ClipExtractor)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import threading  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import open_clip  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from sentinel.clip import TINY_ARCH, ClipExtractor, ClipSpec, clip_score, cpu_threads, reference_alignment  # noqa: E402
from sentinel.scoring import BatchScorer, ScoreInput  # noqa: E402

PROMPTS = ["a red car on a beach", "a portrait of a woman, studio light", "a bowl of fruit", "", "x" * 400]


def _image(seed: int, size: int = 64, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.fromarray((rng.random((size, size, 3)) * 255).astype("uint8"))
    return img.convert(mode)


IMAGES = [_image(1), _image(2, size=80), _image(3, mode="L"), _image(4, size=48), _image(5, mode="RGBA")]


@pytest.fixture(scope="module")
def extractor() -> ClipExtractor:
    return ClipExtractor(ClipSpec())


@pytest.fixture(scope="module")
def direct():
    """The same architecture and seed, built straight from open_clip."""
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(TINY_ARCH, pretrained=None)
    model.eval()
    tokenizer = open_clip.get_tokenizer(TINY_ARCH)
    return model, preprocess, tokenizer


def _direct_image_features(direct, images) -> torch.Tensor:
    model, preprocess, _ = direct
    with torch.no_grad():
        return model.encode_image(torch.stack([preprocess(im.convert("RGB")) for im in images])).double()


def _direct_text_features(direct, texts) -> torch.Tensor:
    model, _, tokenizer = direct
    with torch.no_grad():
        return model.encode_text(tokenizer(list(texts))).double()


def test_clip_score_equals_direct_open_clip_cosine(extractor, direct) -> None:
    img_f = _direct_image_features(direct, IMAGES)
    txt_f = _direct_text_features(direct, PROMPTS)
    expected = 100.0 * torch.clamp(F.cosine_similarity(img_f, txt_f, dim=-1), min=0.0)
    got = clip_score(extractor.encode_images(IMAGES), extractor.encode_texts(PROMPTS))
    assert got.shape == (len(IMAGES),)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-6)


def test_clip_score_clamps_negative_cosines_to_zero() -> None:
    a = np.array([[1.0, 0.0], [0.6, 0.8], [1.0, 0.0]], np.float32)
    b = np.array([[-1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], np.float32)
    np.testing.assert_allclose(clip_score(a, b), [0.0, 100.0 * 0.96, 0.0], rtol=1e-6)
    np.testing.assert_allclose(reference_alignment(a, b), [-1.0, 0.96, 0.0], rtol=1e-6)


def test_embeddings_are_l2_normalized_float32(extractor) -> None:
    img = extractor.encode_images(IMAGES)
    txt = extractor.encode_texts(PROMPTS)
    for emb, n in ((img, len(IMAGES)), (txt, len(PROMPTS))):
        assert emb.dtype == np.float32
        assert emb.shape == (n, extractor.embed_dim) == (n, 64)
        np.testing.assert_allclose(np.linalg.norm(emb.astype(np.float64), axis=1), 1.0, atol=1e-6)


def test_empty_inputs_give_empty_embeddings(extractor) -> None:
    assert extractor.encode_images([]).shape == (0, 64)
    assert extractor.encode_texts([]).shape == (0, 64)


def test_two_extractors_are_identical_and_leave_global_rng_alone(extractor) -> None:
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    other = ClipExtractor(ClipSpec())
    assert torch.equal(torch.rand(4), expected)  # seeding the weights forked the RNG
    assert np.array_equal(other.encode_images(IMAGES), extractor.encode_images(IMAGES))
    assert np.array_equal(other.encode_texts(PROMPTS), extractor.encode_texts(PROMPTS))


def test_another_seed_gives_other_weights(extractor) -> None:
    other = ClipExtractor(ClipSpec(seed=1))
    assert not np.allclose(other.encode_images(IMAGES[:2]), extractor.encode_images(IMAGES[:2]), atol=1e-3)


def test_checkpoint_reproduces_the_saved_model(direct, tmp_path: Path) -> None:
    model, _, _ = direct
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    # seed=7 would give different weights: the embeddings must come from the checkpoint.
    loaded = ClipExtractor(ClipSpec(checkpoint=str(path), seed=7))
    assert loaded.spec.version == f"{TINY_ARCH}:w.pt"
    img_f = F.normalize(_direct_image_features(direct, IMAGES), dim=-1).numpy()
    txt_f = F.normalize(_direct_text_features(direct, PROMPTS), dim=-1).numpy()
    np.testing.assert_allclose(loaded.encode_images(IMAGES), img_f, rtol=0, atol=1e-6)
    np.testing.assert_allclose(loaded.encode_texts(PROMPTS), txt_f, rtol=0, atol=1e-6)


def test_batching_does_not_change_results(extractor) -> None:
    small = ClipExtractor(ClipSpec(batch_size=2))
    np.testing.assert_allclose(small.encode_images(IMAGES), extractor.encode_images(IMAGES), atol=1e-6)
    np.testing.assert_allclose(small.encode_texts(PROMPTS), extractor.encode_texts(PROMPTS), atol=1e-6)


@pytest.mark.parametrize("towers", [False, True], ids=["one-thread", "towers-in-two-threads"])
def test_batch_scorer_matches_direct_computation(extractor, direct, towers) -> None:
    refs = {0: _image(100), 3: _image(101, size=90), 4: IMAGES[4]}  # item 4: its own image as reference
    items = [ScoreInput(f"job-{i}", PROMPTS[i], IMAGES[i], refs.get(i)) for i in range(len(IMAGES))]
    side_threads: list[int] = []
    with ThreadPoolExecutor(1, initializer=lambda: side_threads.append(threading.get_ident())) as pool:
        scores = BatchScorer(extractor, pool if towers else None).score(items)
    assert len(side_threads) == (1 if towers else 0)  # the text tower ran in the second thread, or nowhere else
    assert [s.job_id for s in scores] == [it.job_id for it in items]

    img_f = _direct_image_features(direct, IMAGES)
    txt_f = _direct_text_features(direct, PROMPTS)
    prompt_expected = (100.0 * torch.clamp(F.cosine_similarity(img_f, txt_f, dim=-1), min=0.0)).numpy()
    for i, s in enumerate(scores):
        assert s.clip_prompt_score == pytest.approx(prompt_expected[i], rel=1e-5, abs=1e-6)
        np.testing.assert_allclose(s.embedding, F.normalize(img_f[i], dim=-1).numpy(), atol=1e-6)
        if i in refs:
            ref_f = _direct_image_features(direct, [refs[i]])[0]
            expected = F.cosine_similarity(img_f[i], ref_f, dim=0).item()
            assert s.clip_reference_score == pytest.approx(expected, rel=1e-5, abs=1e-6)
        else:
            assert s.clip_reference_score is None
    assert scores[4].clip_reference_score == pytest.approx(1.0, abs=1e-6)
    assert BatchScorer(extractor).score([]) == []


def test_cpu_threads_takes_the_request_else_leaves_a_core_free(monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # the environment is config's to read, not the core's
    assert cpu_threads(3) == 3
    assert cpu_threads(0) == max(1, len(os.sched_getaffinity(0)) - 1)


def test_extractor_applies_the_spec_threads() -> None:
    before = torch.get_num_threads()
    try:
        ClipExtractor(ClipSpec(threads=3))
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)

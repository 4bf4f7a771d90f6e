"""The text tower on a token prefix (ClipExtractor.encode_tokens) equals open_clip's full-context
encode_text: the causal mask and EOT pooling make the padding after the last EOT irrelevant."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sentinel.clip import ClipExtractor, ClipSpec  # noqa: E402

PROMPTS = [
    "",
    "x",
    "a red car on a beach",
    "a portrait of a woman, studio light, 85mm, shallow depth of field, soft rim light",
    "Produktfoto: Kaffeetasse auf Holztisch — hell, minimalistisch; ÄÖÜ ß 日本語のテキスト 🙂",
    "headshot " * 30,  # longer than the context: truncated by the tokenizer, EOT at position 76
    "a photo number 12345 of something nice",
    "  leading and trailing spaces  ",
]


@pytest.fixture(scope="module")
def extractor() -> ClipExtractor:
    return ClipExtractor(ClipSpec(batch_size=4))


def _full_and_prefix(extractor: ClipExtractor, texts: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    tokens = extractor.tokenizer(texts)
    with torch.inference_mode():
        full = extractor.model.encode_text(tokens).double().numpy()
        prefix = extractor.encode_tokens(tokens).double().numpy()
    return full, prefix, int(tokens.argmax(dim=-1).max()) + 1


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("texts", [PROMPTS[:3], PROMPTS[2:4], PROMPTS[4:5], PROMPTS[6:], PROMPTS, [PROMPTS[5]]])
def test_prefix_equals_full_context(extractor: ClipExtractor, texts: list[str]) -> None:
    full, prefix, _ = _full_and_prefix(extractor, texts)
    # embeddings (what is stored and scored): equal to 1e-6; raw features: float32 rounding of
    # matmuls of another shape (measured: ~1e-6 relative)
    np.testing.assert_allclose(_unit(prefix), _unit(full), rtol=0, atol=1e-6)
    np.testing.assert_allclose(prefix, full, rtol=1e-5, atol=1e-6)


def test_short_batches_really_run_on_a_prefix(extractor: ClipExtractor) -> None:
    _, _, length = _full_and_prefix(extractor, PROMPTS[:3])
    assert length < extractor.model.context_length  # the shortcut applies, not the fallback
    assert extractor._prefix_ok


def test_encode_texts_normalized_equals_full_context(extractor: ClipExtractor) -> None:
    got = extractor.encode_texts(PROMPTS)  # batches of 4, each with its own prefix length
    tokens = extractor.tokenizer(PROMPTS)
    with torch.inference_mode():
        want = torch.nn.functional.normalize(extractor.model.encode_text(tokens).float(), dim=-1).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    # a prompt's embedding does not depend on what else is in its batch
    alone = np.concatenate([extractor.encode_texts([p]) for p in PROMPTS])
    np.testing.assert_allclose(alone, got, rtol=0, atol=1e-6)


def test_truncate_false_is_open_clip_itself(extractor: ClipExtractor) -> None:
    tokens = extractor.tokenizer(PROMPTS[:3])
    with torch.inference_mode():
        assert torch.equal(extractor.encode_tokens(tokens, truncate=False), extractor.model.encode_text(tokens))

"""Tiny offline tokenizers: the CLIP one agrees with open_clip, the T5 one is word-level."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import open_clip  # noqa: E402
import pytest  # noqa: E402
from transformers import CLIPTokenizer  # noqa: E402

from inference.tiny_pipelines import ensure_tiny_pipeline  # noqa: E402
from inference.tiny_tokenizers import CLIP_VOCAB_SIZE, T5_WORDS, t5_tokenizer  # noqa: E402


@pytest.mark.parametrize(
    "prompt",
    ["a photo of a cat and a dog on the beach", "A red car in the city at night, blue sky"],
)
def test_clip_tokenizer_matches_open_clip(prompt: str, tmp_path: Path) -> None:
    tokenizer = CLIPTokenizer.from_pretrained(ensure_tiny_pipeline("sd", tmp_path) / "tokenizer")
    assert len(tokenizer) == CLIP_VOCAB_SIZE

    ours = tokenizer(prompt).input_ids
    reference = open_clip.get_tokenizer("ViT-B-32")(prompt)[0].tolist()
    reference = reference[: reference.index(max(reference)) + 1]  # cut padding after <end>

    # Word tokens share ids; only <start>/<end> move, as the vocab is truncated.
    assert ours[1:-1] == reference[1:-1]
    assert max(ours[1:-1]) < CLIP_VOCAB_SIZE - 2
    assert (ours[0], ours[-1]) == (tokenizer.bos_token_id, tokenizer.eos_token_id)


def test_t5_tokenizer_is_word_level_with_eos_and_unk() -> None:
    tokenizer = t5_tokenizer()
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert 26 + 3 < len(tokenizer) <= T5_WORDS + 3  # letters, common words, specials
    ids = tokenizer("A photo of a Zyxwvut").input_ids
    assert ids[-1] == 1 and ids[-2] == 2  # </s> closes; an unknown word is <unk>
    assert ids[0] == ids[3] == tokenizer("a").input_ids[0]  # lower-cased, word by word
    assert 2 not in ids[:-2]

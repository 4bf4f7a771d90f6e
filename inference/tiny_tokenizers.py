"""Tokenizers for the tiny pipelines, built offline from the BPE file open_clip ships.

* The CLIP tokenizer's ``vocab.json``/``merges.txt`` are derived from open_clip's BPE file,
  truncated to the first ``CLIP_MERGES`` merges, so token ids agree with ``open_clip`` for words
  inside that vocab.
* Flux's T5 tokenizer is a small word-level ``tokenizers`` model wrapped as a ``T5TokenizerFast``.
"""

from __future__ import annotations

import gzip
import json
from importlib.resources import files
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import CLIPTokenizer, T5TokenizerFast

#: Number of open_clip BPE merges kept; common English words are merged well
#: within this rank, so their ids match open_clip's tokenizer.
CLIP_MERGES = 4096
#: 256 byte tokens + 256 end-of-word byte tokens + merges + <start>/<end>.
CLIP_VOCAB_SIZE = 512 + CLIP_MERGES + 2
CLIP_MAX_LENGTH = 77
T5_WORDS = 1024  # letters + whole words from the CLIP vocab for the T5 tokenizer
T5_MAX_LENGTH = 512

_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP reversible byte -> printable unicode mapping."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _open_clip_merges(n: int = CLIP_MERGES) -> list[str]:
    """The first ``n`` merges of open_clip's bundled BPE file (header dropped)."""
    bpe = files("open_clip").joinpath("bpe_simple_vocab_16e6.txt.gz")
    with bpe.open("rb") as fh:
        lines = gzip.decompress(fh.read()).decode("utf-8").split("\n")
    return lines[1 : n + 1]


def _clip_vocab(merges: list[str]) -> dict[str, int]:
    """Vocab laid out exactly like open_clip's: bytes, bytes</w>, merges, specials."""
    byte_tokens = list(_bytes_to_unicode().values())
    tokens = byte_tokens + [t + "</w>" for t in byte_tokens]
    tokens += ["".join(m.split()) for m in merges]
    tokens += [_BOS, _EOS]
    return {tok: i for i, tok in enumerate(tokens)}


def clip_tokenizer(work_dir: Path, pad_token: str = _EOS) -> CLIPTokenizer:
    """open_clip's vocab cut to ``CLIP_MERGES`` merges; its files are written to ``work_dir``."""
    merges = _open_clip_merges()
    vocab = _clip_vocab(merges)
    assert len(vocab) == CLIP_VOCAB_SIZE, "duplicate tokens in truncated CLIP vocab"
    vocab_file, merges_file = work_dir / "vocab.json", work_dir / "merges.txt"
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    # CLIPTokenizer skips the first line of merges.txt as a version header.
    merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return CLIPTokenizer(
        str(vocab_file),
        str(merges_file),
        pad_token=pad_token,
        model_max_length=CLIP_MAX_LENGTH,
    )


def t5_tokenizer() -> T5TokenizerFast:
    """Word-level T5-style tokenizer: <pad>=0, </s>=1, <unk>=2, then common words."""
    words = list("abcdefghijklmnopqrstuvwxyz")  # single letters are bytes, not merges
    for merge in _open_clip_merges():
        word = "".join(merge.split())
        if word.endswith("</w>") and word[:-4].isalpha():
            words.append(word[:-4])
            if len(words) == T5_WORDS:
                break
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in words:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    return T5TokenizerFast(
        tokenizer_object=backend,
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_ids=0,
        additional_special_tokens=[],
        model_max_length=T5_MAX_LENGTH,
    )

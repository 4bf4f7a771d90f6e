"""CLIP feature extractor and CLIP alignment scores (the CLIPScore convention).

One open_clip model serves prompt alignment, reference alignment and (later) FID/CMMD
features. Architecture and weights are configurable: a named open_clip architecture plus a
local checkpoint path, or — when no weights exist on the machine — a tiny registered
architecture with seeded random weights, so that the same image always gets the same score.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import open_clip
import torch
from PIL import Image

TINY_ARCH = "sentinel-tiny-clip"
_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
open_clip.add_model_config(_CONFIG_DIR)


@dataclass(frozen=True)
class ClipSpec:
    """Which model scores: ``arch`` (open_clip name) and ``checkpoint`` (a local file) or a seed."""

    arch: str = TINY_ARCH
    checkpoint: str | None = None
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 64

    @property
    def version(self) -> str:
        """A short identity of the weights, part of the scorer version string."""
        weights = Path(self.checkpoint).name if self.checkpoint else f"seed{self.seed}"
        return f"{self.arch}:{weights}"


@contextlib.contextmanager
def _seeded(seed: int):
    # Fork the RNG so seeding for weights never disturbs the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class ClipExtractor:
    """Batched, device-aware open_clip image/text towers returning L2-normalized embeddings."""

    def __init__(self, spec: ClipSpec) -> None:
        self.spec = spec
        with _seeded(spec.seed):
            model, _, preprocess = open_clip.create_model_and_transforms(
                spec.arch, pretrained=spec.checkpoint, device=spec.device
            )
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(spec.arch)
        self.embed_dim = int(model.text_projection.shape[1]) if hasattr(model, "text_projection") else None

    @property
    def device(self) -> torch.device:
        return torch.device(self.spec.device)

    @torch.inference_mode()
    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        out = []
        for start in range(0, len(images), self.spec.batch_size):
            chunk = images[start : start + self.spec.batch_size]
            pixels = torch.stack([self.preprocess(im.convert("RGB")) for im in chunk]).to(self.device)
            out.append(torch.nn.functional.normalize(self.model.encode_image(pixels).float(), dim=-1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.embed_dim or 0), np.float32)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), self.spec.batch_size):
            tokens = self.tokenizer(list(texts[start : start + self.spec.batch_size])).to(self.device)
            out.append(torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.embed_dim or 0), np.float32)

    def state_dict(self) -> dict:
        return self.model.state_dict()


def clip_score(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """CLIPScore convention: 100 * max(cos, 0), row-wise on normalized embeddings."""
    cos = np.sum(image_emb.astype(np.float64) * text_emb.astype(np.float64), axis=-1)
    return 100.0 * np.maximum(cos, 0.0)


def reference_alignment(image_emb: np.ndarray, reference_emb: np.ndarray) -> np.ndarray:
    """Image–image cosine between an output and the customer's reference photo."""
    return np.sum(image_emb.astype(np.float64) * reference_emb.astype(np.float64), axis=-1)

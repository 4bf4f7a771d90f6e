"""CLIP feature extractor and CLIP alignment scores (the CLIPScore convention).

One open_clip model serves prompt alignment, reference alignment and (later) FID/CMMD
features. Architecture and weights are configurable: a named open_clip architecture plus a
local checkpoint path, or — when no weights exist on the machine — a tiny registered
architecture with seeded random weights, so that the same image always gets the same score.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import open_clip
import torch
from open_clip.transformer import text_global_pool
from PIL import Image
from torchvision.transforms import Compose, Normalize, ToTensor  # open_clip's MaybeToTensor is one

from sentinel.clip_spec import TINY_ARCH, ClipSpec
from sentinel.validation import as_rgb

__all__ = ["TINY_ARCH", "ClipSpec", "ClipExtractor", "cpu_cores", "cpu_threads", "clip_score", "reference_alignment"]

_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
open_clip.add_model_config(_CONFIG_DIR)


@contextlib.contextmanager
def _seeded(seed: int):
    # Fork the RNG so seeding for weights never disturbs the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def cpu_threads(requested: int = 0) -> int:
    """Intra-op threads for CPU inference: ``requested`` if > 0, else all cores this process may
    use but one (at least one). The caller resolves any environment setting into ``requested``
    (config/settings.py: ``torch_threads``, or ``OMP_NUM_THREADS``).

    The spare core is for the worker's event loop and Kafka consumer thread. torch's default (one
    thread per core) lets OpenMP threads spin against them: measured on a shared 2-core machine,
    the tiny CLIP encoded 2-10x fewer images/s with 2 threads than with 1 (bench/scoring.py).
    """
    if requested > 0:
        return requested
    return max(1, cpu_cores() - 1)


def cpu_cores() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class ClipExtractor:
    """Batched, device-aware open_clip image/text towers returning L2-normalized embeddings."""

    def __init__(self, spec: ClipSpec) -> None:
        self.spec = spec
        if torch.device(spec.device).type == "cpu":
            torch.set_num_threads(cpu_threads(spec.threads))
        with _seeded(spec.seed):
            model, _, preprocess = open_clip.create_model_and_transforms(
                spec.arch, pretrained=spec.checkpoint, device=spec.device
            )
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(spec.arch)
        self.embed_dim = int(model.text_projection.shape[1]) if hasattr(model, "text_projection") else None
        self._prefix_ok = _prefix_safe(self.model)
        self._stages = _split_transform(preprocess)
        # a GPU host's cores resize while the GPU encodes (created here: two threads encode at once)
        self._pool = (ThreadPoolExecutor(min(8, cpu_cores()), thread_name_prefix="preprocess")
                      if self.device.type == "cuda" else None)

    @property
    def image_tower_params(self) -> int:
        """Parameters of the image tower (how heavy one image's encoding is)."""
        visual = getattr(self.model, "visual", self.model)
        return sum(p.numel() for p in visual.parameters())

    @property
    def device(self) -> torch.device:
        return torch.device(self.spec.device)

    @torch.inference_mode()
    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        out = []
        for start in range(0, len(images), self.spec.batch_size):
            chunk = images[start : start + self.spec.batch_size]
            pixels = self._pixels(chunk)
            out.append(torch.nn.functional.normalize(self.model.encode_image(pixels).float(), dim=-1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.embed_dim or 0), np.float32)

    def _pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """The model's input for ``images``: open_clip's transform, its per-image PIL part (resize,
        crop, mode) image by image, to-tensor and normalize once for the batch, on the model's
        device (uint8 goes over, a quarter of the bytes). Equal to the transform applied image by
        image (tests/sentinel/test_clip_preprocess.py); a transform of another shape runs so. On a
        GPU the PIL part runs in a thread pool (Pillow resizes without the GIL): on an H200 the
        per-image preprocessing held ViT-B-32 at 0.044 of its tower (bench/results/scoring_cuda.md)."""
        if self._stages is None:
            return torch.stack([self.preprocess(as_rgb(im)) for im in images]).to(self.device)
        pil_stage, norm = self._stages
        rgb = [as_rgb(im) for im in images]
        if self._pool is not None and len(rgb) > 1:
            shaped = list(self._pool.map(pil_stage, rgb))
        else:
            shaped = [pil_stage(im) for im in rgb]
        batch = torch.from_numpy(np.stack([np.asarray(im, dtype=np.uint8) for im in shaped])).to(self.device)
        # channels first in uint8 (the layout the transform gives, for the tower's kernels), then in place
        x = batch.permute(0, 3, 1, 2).contiguous().to(torch.get_default_dtype()).div_(255)
        mean = torch.as_tensor(norm.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.as_tensor(norm.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return x.sub_(mean).div_(std)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), self.spec.batch_size):
            tokens = self.tokenizer(list(texts[start : start + self.spec.batch_size])).to(self.device)
            out.append(torch.nn.functional.normalize(self.encode_tokens(tokens).float(), dim=-1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.embed_dim or 0), np.float32)

    def encode_tokens(self, tokens: torch.Tensor, *, truncate: bool = True) -> torch.Tensor:
        """The text tower on a padded token batch; unnormalized features.

        Prompts are short (a dozen tokens) but tokenized to the full context (77). In open_clip's
        ``CLIP`` text tower every position attends only to earlier ones (causal mask) and the
        feature is read at one position per row (the EOT token: ``argmax`` or ``eos`` pooling),
        so the positions after the last row's EOT cannot change any result: the tower runs on
        the shortest prefix holding every row's pooled position (same weights, positional
        embedding and mask sliced to that length). Equal to ``model.encode_text`` on the full
        context up to float rounding (tests/sentinel/test_clip_truncation.py); other text
        towers (no causal mask, other pooling, CustomTextCLIP) always run in full.
        """
        model = self.model
        if not truncate or not self._prefix_ok:
            return model.encode_text(tokens)
        if model.text_pool_type == "argmax":
            pooled_at = tokens.argmax(dim=-1)
        else:
            pooled_at = (tokens == model.text_eos_id).int().argmax(dim=-1)
        length = int(pooled_at.max()) + 1
        if length >= tokens.shape[1]:
            return model.encode_text(tokens)
        tokens = tokens[:, :length]
        cast_dtype = model.transformer.get_cast_dtype()
        x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
        x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
        x = model.ln_final(x)
        x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
        projection = model.text_projection
        if projection is not None:
            x = projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection
        return x

    def state_dict(self) -> dict:
        return self.model.state_dict()


def _split_transform(preprocess: object) -> tuple[Callable[[Image.Image], Image.Image], Normalize] | None:
    """open_clip's ``Compose([... PIL steps, (Maybe)ToTensor, Normalize])`` as (the PIL steps,
    the Normalize); None for a transform of another shape."""
    steps = list(getattr(preprocess, "transforms", ()))
    if len(steps) < 2 or not isinstance(steps[-2], ToTensor) or type(steps[-1]) is not Normalize:
        return None
    return Compose(steps[:-2]), steps[-1]


def _prefix_safe(model: torch.nn.Module) -> bool:
    """Whether ``ClipExtractor.encode_tokens`` may run ``model``'s text tower on a prefix."""
    mask = getattr(model, "attn_mask", None)
    return (type(model) is open_clip.CLIP and mask is not None and mask.dim() == 2
            and getattr(model, "text_pool_type", None) in ("argmax", "eos")
            and model.positional_embedding.dim() == 2 and not model.transformer.grad_checkpointing
            and bool(torch.isneginf(mask[0, 1:]).all()) and bool((mask.tril() == 0).all()))


def clip_score(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """CLIPScore convention: 100 * max(cos, 0), row-wise on normalized embeddings."""
    cos = np.sum(image_emb.astype(np.float64) * text_emb.astype(np.float64), axis=-1)
    return 100.0 * np.maximum(cos, 0.0)


def reference_alignment(image_emb: np.ndarray, reference_emb: np.ndarray) -> np.ndarray:
    """Image–image cosine between an output and the customer's reference photo."""
    return np.sum(image_emb.astype(np.float64) * reference_emb.astype(np.float64), axis=-1)

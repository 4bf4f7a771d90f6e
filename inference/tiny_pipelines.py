"""Tiny, offline, deterministic stand-ins for real diffusion pipelines.

The inference nodes run Stable Diffusion, SDXL and Flux through diffusers. Real weights are
gigabytes and need a model hub or a GPU; neither is available in CI or on a developer laptop.
This module builds pipelines of the *same classes* (``StableDiffusionPipeline``,
``StableDiffusionXLPipeline``, ``FluxPipeline``) from tiny configs with seeded random weights
(tokenizers from inference/tiny_tokenizers.py, no network) and saves them with
``save_pretrained``. The very same ``load_pipeline`` / ``generate`` code then runs against a
tiny directory here and a real one on a GPU box. The same ``seed`` always yields the same
weights, so two builds produce byte-identical images for the same prompt and generation seed.
"""

from __future__ import annotations

import json
import contextlib
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

from inference.tiny_tokenizers import CLIP_MAX_LENGTH, CLIP_VOCAB_SIZE, T5_WORDS, clip_tokenizer, t5_tokenizer

logger = logging.getLogger(__name__)

PIPELINE_CLASSES: dict[str, type[DiffusionPipeline]] = {
    "sd": StableDiffusionPipeline,
    "sdxl": StableDiffusionXLPipeline,
    "flux": FluxPipeline,
}
HIDDEN = 32  # width of every text encoder and of the cross-attention


# --------------------------------------------------------------------------- #
# Models
# --------------------------------------------------------------------------- #
def _clip_text_config(projection_dim: int = HIDDEN) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        projection_dim=projection_dim,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=CLIP_MAX_LENGTH,
        bos_token_id=CLIP_VOCAB_SIZE - 2,
        eos_token_id=CLIP_VOCAB_SIZE - 1,
        pad_token_id=CLIP_VOCAB_SIZE - 1,
        hidden_act="quick_gelu",
    )


def _vae(latent_channels: int, **config: Any) -> AutoencoderKL:
    """Four blocks => downscale factor 8, like the real VAEs."""
    return AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=4,
        sample_size=64,
        **config,
    )


def _unet(cross_attention_dim: int, **config: Any) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        norm_num_groups=8,
        attention_head_dim=4,
        cross_attention_dim=cross_attention_dim,
        **config,
    )


def _sd_scheduler() -> EulerDiscreteScheduler:
    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )


def _seeded(seed: int, factory: Callable[[], Any]) -> Any:
    """Construct one component right after re-seeding, so each is reproducible alone.

    The global RNG state is restored afterwards, so building has no side effects.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def _build_sd(seed: int, work_dir: Path) -> DiffusionPipeline:
    return StableDiffusionPipeline(
        vae=_seeded(seed, lambda: _vae(4, scaling_factor=0.18215)),
        text_encoder=_seeded(seed, lambda: CLIPTextModel(_clip_text_config())),
        tokenizer=clip_tokenizer(work_dir),
        unet=_seeded(seed, lambda: _unet(HIDDEN)),
        scheduler=_sd_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _build_sdxl(seed: int, work_dir: Path) -> DiffusionPipeline:
    time_embed_dim = 8
    unet = _seeded(
        seed,
        lambda: _unet(
            2 * HIDDEN,  # SDXL concatenates both encoders' hidden states
            addition_embed_type="text_time",
            addition_time_embed_dim=time_embed_dim,
            # 6 micro-conditioning ids + pooled text embedding of text_encoder_2
            projection_class_embeddings_input_dim=6 * time_embed_dim + HIDDEN,
            use_linear_projection=True,
        ),
    )
    return StableDiffusionXLPipeline(
        vae=_seeded(seed, lambda: _vae(4, scaling_factor=0.13025)),
        text_encoder=_seeded(seed, lambda: CLIPTextModel(_clip_text_config())),
        text_encoder_2=_seeded(
            seed, lambda: CLIPTextModelWithProjection(_clip_text_config(HIDDEN))
        ),
        tokenizer=clip_tokenizer(work_dir),
        tokenizer_2=clip_tokenizer(work_dir, pad_token="!"),
        unet=unet,
        scheduler=_sd_scheduler(),
        force_zeros_for_empty_prompt=True,
    )


def _build_flux(seed: int, work_dir: Path) -> DiffusionPipeline:
    latent_channels = 4
    t5_config = T5Config(
        vocab_size=T5_WORDS + 3,
        d_model=HIDDEN,
        d_kv=16,
        d_ff=2 * HIDDEN,
        num_layers=2,
        num_heads=2,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
    )
    return FluxPipeline(
        vae=_seeded(
            seed,
            lambda: _vae(
                latent_channels,
                scaling_factor=0.3611,
                shift_factor=0.1159,
                use_quant_conv=False,
                use_post_quant_conv=False,
            ),
        ),
        text_encoder=_seeded(seed, lambda: CLIPTextModel(_clip_text_config())),
        tokenizer=clip_tokenizer(work_dir),
        text_encoder_2=_seeded(seed, lambda: T5EncoderModel(t5_config)),
        tokenizer_2=t5_tokenizer(),
        transformer=_seeded(
            seed,
            lambda: FluxTransformer2DModel(
                patch_size=1,
                in_channels=4 * latent_channels,  # latents are packed 2x2
                num_layers=1,
                num_single_layers=1,
                attention_head_dim=16,
                num_attention_heads=2,
                joint_attention_dim=HIDDEN,  # T5 d_model
                pooled_projection_dim=HIDDEN,  # CLIP pooled output
                guidance_embeds=True,
                axes_dims_rope=(4, 6, 6),
            ),
        ),
        scheduler=FlowMatchEulerDiscreteScheduler(
            shift=3.0,
            use_dynamic_shifting=True,
            base_shift=0.5,
            max_shift=1.15,
            base_image_seq_len=256,
            max_image_seq_len=4096,
        ),
    )


_BUILDERS: dict[str, Callable[[int, Path], DiffusionPipeline]] = {
    "sd": _build_sd,
    "sdxl": _build_sdxl,
    "flux": _build_flux,
}


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #
def build_tiny_pipeline(kind: str, out_dir: Path, seed: int = 0) -> Path:
    """Build a tiny ``kind`` pipeline with seeded random weights into ``out_dir``."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown pipeline kind {kind!r}; expected one of {sorted(_BUILDERS)}")
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="tiny-tok-") as work:
        pipe = _BUILDERS[kind](seed, Path(work))
        pipe.save_pretrained(out_dir)
    logger.info("built tiny %s pipeline (seed %d) in %s", kind, seed, out_dir)
    return out_dir


# Building seeds torch's global RNG and loading goes through diffusers/transformers' global
# meta-device init: neither is thread-safe, and nodes load pipelines from executor threads.
_BUILD_AND_LOAD = threading.RLock()


def ensure_tiny_pipeline(kind: str, cache_dir: Path, seed: int = 0) -> Path:
    """Return ``cache_dir/tiny-{kind}-s{seed}``, building it first if it is missing.

    The pipeline is built in a sibling temp dir and renamed into place, so a
    crash never leaves a partial pipeline and a concurrent builder simply loses
    the race and discards its copy.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / f"tiny-{kind}-s{seed}"
    if target.is_dir():
        return target
    with _BUILD_AND_LOAD:
        return _build_into(kind, cache_dir, target, seed)


def _build_into(kind: str, cache_dir: Path, target: Path, seed: int) -> Path:
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache_dir))
    try:
        build_tiny_pipeline(kind, tmp, seed)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
            logger.info("%s was built concurrently; keeping the existing copy", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextlib.contextmanager
def _quiet_diffusers() -> Iterator[None]:
    """No "Loading pipeline components" progress bars on the node's output while loading."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()
    try:
        yield
    finally:
        diffusers_logging.enable_progress_bar()


def load_pipeline(path: Path, kind: str | None = None) -> DiffusionPipeline:
    """Load a local pipeline dir (tiny or real) in float32 on CPU, quietly.

    ``kind`` picks the pipeline class explicitly; otherwise ``model_index.json``
    decides. A safety checker, if the pipeline has one, is not loaded.
    """
    path = Path(path)
    cls = PIPELINE_CLASSES[kind] if kind is not None else DiffusionPipeline
    kwargs: dict[str, Any] = {}
    model_index = json.loads((path / "model_index.json").read_text())
    if "safety_checker" in model_index:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    # low_cpu_mem_usage needs accelerate (not a dependency): asking for it only printed a warning
    with _BUILD_AND_LOAD, _quiet_diffusers():
        pipe = cls.from_pretrained(
            path, local_files_only=True, torch_dtype=torch.float32, low_cpu_mem_usage=False, **kwargs
        )
        pipe.to("cpu")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(
    pipe: DiffusionPipeline, prompt: str, seed: int, size: int = 64, steps: int = 4
) -> Image.Image:
    """Generate one ``size`` x ``size`` image; same prompt and seed => same pixels."""
    kwargs: dict[str, Any] = {}
    if isinstance(pipe, FluxPipeline):
        # Guidance-distilled (dev-style) transformers take an embedded guidance
        # scale; schnell-style ones must run with none.
        kwargs["guidance_scale"] = 3.5 if pipe.transformer.config.guidance_embeds else 0.0
    result = pipe(
        prompt=prompt,
        height=size,
        width=size,
        num_inference_steps=steps,
        generator=torch.Generator(device="cpu").manual_seed(seed),
        output_type="pil",
        **kwargs,
    )
    return result.images[0]

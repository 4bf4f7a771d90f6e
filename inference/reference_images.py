"""Stand-in reference photos for the demo: SYNTHETIC, not real photographs.

A real deployment builds each niche's reference set from real images of that niche
(`sentinel reference build NICHE DIR`). The demo has none, so it renders a small set per niche
with a tiny offline "reference camera" pipeline (seeded random weights, a seed no demo model
uses) from the niche's prompts. FID/CMMD against it prove the pipeline end to end; they say
nothing about image quality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from inference.tiny_pipelines import ensure_tiny_pipeline, generate, load_pipeline
from inference.traffic import NICHE_PROMPTS

REFERENCE_KIND = "sd"
REFERENCE_WEIGHT_SEED = 101  # the registry's tiny models use seeds 1-4


def generate_reference_images(out_dir: Path, niche: str, n: int, cache_dir: Path, *, size: int = 64,
                              steps: int = 4, progress: Callable[[int], None] | None = None) -> list[Path]:
    """Render ``n`` PNGs for ``niche`` into ``out_dir`` (deterministic); returns their paths."""
    pipe = load_pipeline(ensure_tiny_pipeline(REFERENCE_KIND, cache_dir, REFERENCE_WEIGHT_SEED), REFERENCE_KIND)
    prompts = NICHE_PROMPTS.get(niche, [f"a photo for {niche}"])
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = out_dir / f"{niche}-{i:03d}.png"
        generate(pipe, prompts[i % len(prompts)], seed=50_000 + i, size=size, steps=steps).save(path)
        paths.append(path)
        if progress:
            progress(1)
    return paths

"""Which CLIP model scores, as plain data: importing it costs no torch, so configuration and the
CLI can name a model without loading one (sentinel/clip.py builds the extractor from it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TINY_ARCH = "sentinel-tiny-clip"


@dataclass(frozen=True)
class ClipSpec:
    """Which model scores: ``arch`` (open_clip name) and ``checkpoint`` (a local file) or a seed."""

    arch: str = TINY_ARCH
    checkpoint: str | None = None
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 64
    # torch intra-op threads on CPU; 0 = automatic (see sentinel.clip.cpu_threads). Applied when
    # an extractor is built; torch's setting is process-wide.
    threads: int = 0

    @property
    def version(self) -> str:
        """A short identity of the weights, part of the scorer version string."""
        weights = Path(self.checkpoint).name if self.checkpoint else f"seed{self.seed}"
        return f"{self.arch}:{weights}"

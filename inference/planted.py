"""Planted bad outputs: a node that sometimes emits a blank, wrong-size or repeated image, for
tests and the demo of guard mode (``sentinel node --plant-bad RATE``).

Which job goes bad, and how, is a pure function of the job's image seed, so a run is
reproducible: the same seed always plants the same kind (or none). The kinds are what the
guard's weight-free checks catch: ``blank`` (a uniform grey image), ``wrong_size`` (half the
requested width: wrong resolution and aspect ratio) and ``repeated`` (the model's previous
output on this node, byte for byte: a stuck model).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image

KINDS = ("blank", "wrong_size", "repeated")
_SALT = 0x5EED_BAD


@dataclass(frozen=True)
class PlantBad:
    rate: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"--plant-bad rate must be within 0..1, got {self.rate}")

    def kind(self, seed: int) -> str | None:
        """The planted kind for an image seed, or None (a normal output)."""
        if self.rate <= 0.0:
            return None
        rng = random.Random(seed ^ _SALT)
        if rng.random() >= self.rate:
            return None
        return KINDS[rng.randrange(len(KINDS))]


def planted_image(kind: str, image: Image.Image) -> Image.Image:
    """The bad version of ``image`` for the pixel kinds (``repeated`` is planted on the bytes)."""
    if kind == "blank":
        return Image.new("RGB", image.size, (128, 128, 128))
    if kind == "wrong_size":
        return image.resize((max(1, image.width // 2), image.height))
    return image

"""Demo job traffic: prompts per niche, deterministic from a seed."""

from __future__ import annotations

import random
import uuid
from typing import Iterator, Sequence

NICHE_PROMPTS = {
    "headshot": [
        "corporate headshot of a woman in a navy blazer, soft studio light",
        "professional headshot of a man with glasses, grey backdrop",
        "linkedin portrait of a smiling engineer, shallow depth of field",
    ],
    "product": [
        "product photo of a ceramic coffee mug on a marble table",
        "studio shot of running shoes on a white background",
        "a glass perfume bottle with soft reflections, e-commerce photo",
    ],
    "portrait": [
        "creative portrait of a dancer in golden hour light",
        "moody portrait of an old fisherman, film grain",
        "watercolor style portrait of a girl with a red scarf",
    ],
}
NICHES = tuple(NICHE_PROMPTS)


def demo_jobs(model_ids: Sequence[str], n: int, *, seed: int = 0, niches: Sequence[str] = NICHES,
              namespace: str = "demo") -> Iterator[tuple[str, str, str, str, int]]:
    """Yield (job_id, model_id, niche, prompt, image_seed), cycling models and niches evenly."""
    rng = random.Random(seed)
    for i in range(n):
        model_id = model_ids[i % len(model_ids)]
        niche = niches[(i // len(model_ids)) % len(niches)]
        prompt = rng.choice(NICHE_PROMPTS.get(niche, [f"an image for {niche}"]))
        job_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sentinel/{namespace}/{seed}/{i}"))
        yield job_id, model_id, niche, prompt, rng.randrange(2**31)

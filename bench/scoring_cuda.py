"""The scorer on a CUDA device: how much of the GPU encoder's rate the CPU work around it keeps.

Run where a GPU is (it needs only torch, open_clip, Pillow and numpy: no broker, no chDB). On one
model and batch size (``ClipSpec(arch=--arch, batch_size=--batch, device="cuda")``, seeded random
weights: the real model's compute, meaningless scores), on ``--images`` generated photos of
``--size`` px stored as WebP, 1 in 5 with a reference image as in the demo:

1. **tower**: ``model.encode_image`` on a batch already on the GPU (its input size, float32): the GPU alone.
2. **raw encoder**: ``ClipExtractor.encode_images`` on decoded PIL images (what bench/scoring.py
   calls the raw encoder: the PIL part of the preprocessing on the CPU, in a thread pool on a GPU
   host, then to-tensor and normalize for the batch on the GPU, then the tower); and next to it
   **per-image transform**, the way it was before: open_clip's whole transform image by image on
   the CPU, the float batch copied over, the tower.
3. **scorer**: ``BatchScorer.score`` on the same decoded images (+ the text tower, the reference
   images, the scores), with its towers thread as the worker builds it.
4. **decode + scorer**: WebP decode (``sentinel.validation.decode_image``) of image and reference,
   then 3: what the worker's gate and score threads do per event.

Each is timed ``--repeats`` times after a warm-up (CUDA synchronized); medians are reported, and
the ratio of each to the tower. Usage::

    python bench/scoring_cuda.py [--arch ViT-B-32] [--batch 64] [--images 512] [--size 512] [--out DIR]

Writes ``scoring_cuda.json`` and ``.md`` into ``--out`` (default bench/results).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from sentinel.clip import ClipExtractor, ClipSpec  # noqa: E402
from sentinel.scoring import BatchScorer, ScoreInput  # noqa: E402
from sentinel.validation import decode_image  # noqa: E402


def photo(i: int, size: int) -> bytes:
    """A deterministic photo-like image (smooth gradients plus noise) as WebP bytes."""
    rng = np.random.default_rng(i)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * x + i), np.cos(5 * y - i), np.sin(4 * (x + y))], axis=-1) * 80 + 128
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "WEBP", quality=90)
    return out.getvalue()


def ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def timed(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> list[float]:
    fn()  # warm-up: kernels chosen, caches filled
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda", help="cuda (the point); cpu only to try the script out")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("no CUDA device: this bench measures the scorer on a GPU", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    n = args.images
    images = [photo(i, args.size) for i in range(n)]
    refs = {i: photo(100_000 + i, args.size) for i in range(0, n, 5)}
    decoded = [decode_image(b, "image/webp") for b in images]
    decoded_refs = {i: decode_image(b, "image/webp") for i, b in refs.items()}
    prompts = [f"a studio photo number {i} of a product on a white table" for i in range(n)]
    ex = ClipExtractor(ClipSpec(arch=args.arch, batch_size=args.batch, device=args.device))
    scorer = BatchScorer(ex, ThreadPoolExecutor(1, thread_name_prefix="towers"))
    side = ex.model.visual.image_size  # the tower's input (224 px for ViT-B-32)
    batch = torch.randn(args.batch, 3, *((side, side) if isinstance(side, int) else side), device=args.device)

    @torch.inference_mode()
    def tower() -> None:
        for _ in range(0, n, args.batch):
            ex.model.encode_image(batch)

    def inputs(pixels: list[Any], ref_pixels: dict[int, Any]) -> list[ScoreInput]:
        return [ScoreInput(f"job-{i}", prompts[i], pixels[i], ref_pixels.get(i)) for i in range(n)]

    def decode_and_score() -> None:
        pixels = [decode_image(b, "image/webp") for b in images]
        scorer.score(inputs(pixels, {i: decode_image(b, "image/webp") for i, b in refs.items()}))

    @torch.inference_mode()
    def per_image_transform() -> None:
        for start in range(0, n, args.batch):
            chunk = decoded[start:start + args.batch]
            ex.model.encode_image(torch.stack([ex.preprocess(im) for im in chunk]).to(args.device))

    steps = {
        "tower (GPU only)": lambda: tower(),
        "per-image transform + tower (before)": per_image_transform,
        "raw encoder (PIL steps in threads, tensor steps batched on the device + tower)": lambda: ex.encode_images(decoded),
        "scorer (+ text tower, references, scores)": lambda: scorer.score(inputs(decoded, decoded_refs)),
        "decode + scorer (the worker's gate + score work)": decode_and_score,
    }
    rows, first = [], None
    for name, fn in steps.items():
        rate = n / statistics.median(timed(fn, args.repeats, torch.cuda.synchronize if cuda else lambda: None))
        rows.append({"step": name, "per_s": rate, "ratio_to_tower": rate / first if first else None})
        first = first or rate
        print(f"{name}: {rate:,.0f}/s", flush=True)
    doc = {"bench": "scoring_cuda", "arch": args.arch, "batch": args.batch, "images": n, "size": args.size,
           "repeats": args.repeats, "device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
           "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "rows": rows,
           "runtime_s": time.perf_counter() - t0}
    lines = [f"### Scorer on {doc['device']}: {args.arch} (random weights), batch {args.batch}, "
             f"{n} WebP photos of {args.size} px (1 in 5 with a reference)", "",
             "| step | images (events) / s | ratio to the tower |", "|---|---:|---:|"]
    lines += [f"| {r['step']} | {r['per_s']:,.0f} | {ratio(r['ratio_to_tower'])} |" for r in rows]
    lines += ["", f"torch {doc['torch']}, {doc['cpu_threads']} CPU threads of {doc['cpu_count']} cores; "
              f"medians of {args.repeats} timed passes after a warm-up; took {doc['runtime_s']:.0f} s."]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scoring_cuda.json").write_text(json.dumps(doc, indent=2))
    (args.out / "scoring_cuda.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Guard verdict service: latency and throughput vs concurrent clients, micro-batching on vs off,
against the raw batched encoder of the same model.

For each model (the tiny CLIP and ViT-B-32 with random weights, open_clip ``pretrained=None``)
and each mode (micro-batching on: ``--max-batch 32 --max-wait-ms 5``; off: ``--max-batch 1``) a
real ``sentinel guard`` process is started (uvicorn, its own process); asyncio httpx clients in
this process send verdict requests (PNG outputs of ``--size`` px, distinct bytes, a prompt each)
with 1, 8 and 32 concurrent clients. Per level: verdicts/s (requests / wall time), p50/p95
client-side latency, and the mean encoder batch size (from the server's ``/metrics``).

The raw batched encoder is ``BatchScorer.score`` (the scorer Guard calls: image tower + text
tower + scores) on the same images pre-decoded, batches of 32, in this process with the same
torch thread setting as the server; it runs once before between and after each model's guard runs
and the mean is the reference (the machine may be shared: back-to-back measurements). The printed ratio at 32 clients is guard verdicts/s over raw
images/s (target >= 0.8).

Usage::

    python bench/guard.py [--quick] [--models tiny,vit-b-32] [--size 128]

Writes ``bench/results/guard.json`` and ``guard.md`` (``--quick``: ``guard_quick.*``).
(This file shadows the ``guard`` package inside the bench process; it never imports it: the
service runs in its own process.)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import re
import statistics
import time
from typing import Any

import numpy as np

from _common import REPO, loadavg, log, machine_info, machine_line, write_results

MODELS = {"tiny": "sentinel-tiny-clip", "vit-b-32": "ViT-B-32"}
MODES = {"on": ["--max-batch", "32", "--max-wait-ms", "5"], "off": ["--max-batch", "1"]}
CLIENTS = (1, 8, 32)
TOKEN = "bench-token"
PROMPTS = ["corporate headshot of a woman in a navy blazer, soft studio light",
           "product photo of a ceramic coffee mug on a marble table",
           "moody portrait of an old fisherman, film grain"]


def png(seed: int, size: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # smooth-ish content: realistic PNG sizes
    img = Image.fromarray(base).resize((size, size), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def bodies(n: int, size: int) -> list[bytes]:
    import json

    return [json.dumps({"image": base64.b64encode(png(i, size)).decode(), "media_type": "image/png",
                        "prompt": PROMPTS[i % 3], "niche": ("headshot", "product", "portrait")[i % 3],
                        "model_id": f"bench-{i % 4}", "width": size, "height": size, "job_id": f"b{i}"}).encode()
            for i in range(n)]


def model_env(arch: str) -> dict[str, str]:
    return {**os.environ, "SENTINEL_CLIP_ARCH": arch, "SENTINEL_CLIP_CHECKPOINT": "", "SENTINEL_SCORE_BATCH_SIZE": "32",
            "SENTINEL_GUARD_TOKEN": TOKEN, "SENTINEL_LOG_LEVEL": "warning", "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


class Server:
    def __init__(self, arch: str, mode: str) -> None:
        from devstack.guard_process import GuardProcess

        self.process = GuardProcess(model_env(arch), MODES[mode], cwd=REPO).start()
        self.url = self.process.wait_ready(300)

    def batch_stats(self) -> tuple[float, float]:
        import httpx

        text = httpx.get(self.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
        def value(name: str) -> float:
            m = re.search(rf"^{name} (\S+)$", text, re.M)
            return float(m.group(1)) if m else 0.0
        return value("sentinel_guard_batch_size_sum"), value("sentinel_guard_batch_size_count")

    def stop(self) -> None:
        self.process.stop()


async def load(url: str, payloads: list[bytes], clients: int) -> dict[str, Any]:
    """``clients`` concurrent loops sending ``payloads`` (each once) as fast as answers come.
    aiohttp, not httpx: the client shares the machine's cores with the server, so it should be cheap."""
    import aiohttp

    latencies: list[float] = []
    queue = list(reversed(payloads))
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession) -> None:
        while queue:
            body = queue.pop()
            t0 = time.perf_counter()
            async with session.post(url + "/v1/verdicts", data=body, headers=headers) as resp:
                text = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"verdict failed: {resp.status} {text[:300]!r}")
            latencies.append(time.perf_counter() - t0)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        wall = time.perf_counter() - t0
    ms = np.array(latencies) * 1000
    return {"verdicts_s": len(payloads) / wall, "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "n": len(payloads), "wall_s": wall}


def raw_encoder(arch: str, size: int, batches: int) -> float:
    """Images/s of ``BatchScorer.score`` on pre-decoded images, batches of 32 (median of batches)."""
    from PIL import Image

    from config.settings import load_settings
    from sentinel.clip import ClipExtractor
    from sentinel.scoring import BatchScorer, ScoreInput

    settings = load_settings(env=model_env(arch))
    scorer = _SCORERS.get(arch) or _SCORERS.setdefault(arch, BatchScorer(ClipExtractor(settings.clip_spec)))
    items = [ScoreInput(str(i), PROMPTS[i % 3], Image.open(io.BytesIO(png(10_000 + i, size))).convert("RGB"))
             for i in range(32)]
    scorer.score(items)  # warm-up
    rates = []
    for _ in range(batches):
        t0 = time.perf_counter()
        scorer.score(items)
        rates.append(32 / (time.perf_counter() - t0))
    return statistics.median(rates)


_SCORERS: dict[str, Any] = {}


def bench_model(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Both servers (batching on and off) up at once, levels interleaved (on, off at 1 client, then
    at 8, then at 32), a raw-encoder measurement before each level and after the last: each guard
    number has raw numbers measured right beside it on a machine whose load moves."""
    arch = MODELS[name]
    n = args.requests[name]
    payloads = bodies(n * len(CLIENTS) * len(MODES) + 64, args.size)
    servers = {mode: Server(arch, mode) for mode in MODES}
    raw: list[float] = []
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    try:
        for server in servers.values():
            asyncio.run(load(server.url, payloads[-64:][: max(8, n // 4)], 8))  # warm-up
        chunks = iter(range(0, n * len(CLIENTS) * len(MODES), n))
        for clients in CLIENTS:
            raw.append(raw_encoder(arch, args.size, args.raw_batches[name]))
            log(f"{name}: raw BatchScorer.score {raw[-1]:.1f} img/s")
            for mode, server in servers.items():
                start = next(chunks)
                s0, c0 = server.batch_stats()
                row = asyncio.run(load(server.url, payloads[start:start + n], clients))
                s1, c1 = server.batch_stats()
                row.update(clients=clients, mean_batch=(s1 - s0) / max(c1 - c0, 1), encoder_calls=c1 - c0)
                runs[mode].append(row)
                log(f"{name} batching {mode} x{clients}: {row['verdicts_s']:.1f}/s p50 {row['p50_ms']:.0f} ms "
                    f"p95 {row['p95_ms']:.0f} ms, mean batch {row['mean_batch']:.1f}")
    finally:
        for server in servers.values():
            server.stop()
    raw.append(raw_encoder(arch, args.size, args.raw_batches[name]))
    log(f"{name}: raw BatchScorer.score {raw[-1]:.1f} img/s")
    for rows in runs.values():
        for i, row in enumerate(rows):  # the raw rate beside this level: mean of before and after
            row["raw_img_s"] = (raw[i] + raw[i + 1]) / 2
            row["ratio_to_raw"] = row["verdicts_s"] / row["raw_img_s"]
    at32 = {mode: rows[-1]["ratio_to_raw"] for mode, rows in runs.items()}
    return {"arch": arch, "raw_img_s": raw, "raw_ref_img_s": statistics.mean(raw), "runs": runs, "ratio_at_32": at32}


def markdown(doc: dict[str, Any]) -> str:
    lines = [f"### Guard verdict service ({'quick' if doc['quick'] else 'full'} run, {doc['size']} px PNG outputs, "
             f"CPU)", "",
             "| model | micro-batching | clients | verdicts/s | p50 ms | p95 ms | mean encoder batch | ratio to raw |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, res in doc["models"].items():
        for mode, rows in res["runs"].items():
            for row in rows:
                lines.append(f"| {res['arch']} | {mode} | {row['clients']} | {row['verdicts_s']:.1f} | "
                             f"{row['p50_ms']:.0f} | {row['p95_ms']:.0f} | {row['mean_batch']:.1f} | "
                             f"{row['ratio_to_raw']:.2f} (raw {row['raw_img_s']:.1f}/s) |")
        lines.append(f"| {res['arch']} | raw `BatchScorer.score`, batch 32 | - | "
                     f"{res['raw_ref_img_s']:.1f} (mean of {', '.join(f'{r:.1f}' for r in res['raw_img_s'])}) "
                     "| | | 32 | 1.00 |")
    lines.append("")
    for name, res in doc["models"].items():
        r = res["ratio_at_32"]
        lines.append(f"- {res['arch']}, 32 clients: guard / raw encoder = **{r['on']:.2f}** with micro-batching, "
                     f"{r['off']:.2f} without (target >= 0.8).")
    lines += ["", machine_line(doc)]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests per level (a busy machine)")
    ap.add_argument("--models", default="tiny,vit-b-32")
    ap.add_argument("--size", type=int, default=128, help="output image side in pixels")
    args = ap.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.requests = {"tiny": 256 if args.quick else 640, "vit-b-32": 128 if args.quick else 256}
    args.raw_batches = {"tiny": 20 if args.quick else 60, "vit-b-32": 3 if args.quick else 6}
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    doc: dict[str, Any] = {"machine": machine_info(), "loadavg_start": loadavg(), "quick": args.quick,
                           "size": args.size, "clients": list(CLIENTS), "modes": MODES, "models": {}}
    for name in args.models:
        doc["models"][name] = bench_model(name, args)
    doc["loadavg_end"] = loadavg()
    text = markdown(doc)
    print(text)
    path = write_results("guard_quick" if args.quick else "guard", doc, text)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()

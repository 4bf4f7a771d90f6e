"""A synthetic benchmark report (the dict reports.report.benchmark returns), for renderer tests."""

from __future__ import annotations


def row(model: str, niche: str | None, composite: float, cost: float, p95: float) -> dict:
    row = {"model": model, "provider": "api" if model == "api-x" else "self_hosted", "jobs": 30, "fid": 0.1,
           "cmmd": 0.5, "clip": 20.0, "human": 50.0, "composite": composite, "p50_latency_ms": p95 / 3,
           "p95_latency_ms": p95, "cost_per_image_usd": cost, "composite_missing": [],
           "composite_ci": [composite - 1.04, composite + 1.26], "cost_per_image_usd_ci": [cost * 0.9, cost * 1.1],
           "p95_latency_ms_ci": [p95 * 0.8, p95 * 1.3], "clip_ci": [19.0, 21.0], "ci_jobs": 30}
    if niche is not None:
        row["niche"] = niche
    return row


def synthetic_report() -> dict:
    models = [row("api-x", None, 21.74, 0.042, 2386.0), row("flux<&>", None, 18.44, 0.002005, 759.0),
              row("sd", None, 15.09, 0.002008, 2993.0)]
    niches = [row(m["model"], n, m["composite"] + k, m["cost_per_image_usd"], m["p95_latency_ms"])
              for m in models for k, n in enumerate(["headshot", "product"])]
    levels = [i / 100 for i in range(101)]
    return {
        "window": {"from": "1970-01-01T00:00:00+00:00", "to": "2200-01-01T00:00:00+00:00", "all_time": True},
        "scorer_version": "latest per job",
        "quality": {"weights": {"fid": 0.4, "clip": 0.3, "human": 0.3}, "clip_range": {"floor": 0, "ceiling": 100},
                    "references": {}, "human": {}},
        "weights": {"fid": 0.4, "clip": 0.3, "human": 0.3},
        "pricing": {"platform_fee_usd_per_image": 0.002, "orchestration_overhead": 0.15, "gpu_usd_per_hour": {"L4": 0.8}},
        "intervals": {"method": "percentile bootstrap", "level": 0.95, "resamples": 1000, "seed": 0,
                      "max_jobs_per_group": 10000, "enabled": True},
        "models": models,
        "niches": niches,
        "latency_quantiles": {"levels": levels,
                              "models": {m["model"]: [40.0 * (1 + 100 * p**3) * (k + 1) for p in levels]
                                         for k, m in enumerate(models)}},
    }

"""The models of generated traffic: who serves which niches, how fast, at what price.

A catalog of eight image models (six self-hosted on priced GPU types, two API-priced) with
their share of jobs, niche mix, latency and cold-start behaviour; the generator draws from it and
the gate accepts its models.
"""

from __future__ import annotations

from dataclasses import dataclass

from inference.trace_row import PROVIDER_API, PROVIDER_SELF_HOSTED


@dataclass(frozen=True)
class TraceModel:
    """How one model behaves in generated traffic."""

    model: str
    version: str
    provider: str
    gpu_type: str  # "" for API models; self-hosted ones must be priced in pricing.toml
    share: float  # fraction of all jobs
    niche_mix: tuple[float, float, float]  # headshot, product, portrait
    inference_median_s: float  # lognormal median of generation time
    inference_sigma: float  # lognormal sigma (log-space)
    api_cost_usd: float | None = None
    slow_call_prob: float = 0.0  # API retries / provider hiccups: the heavier tail
    cold_start_median_s: float = 10.0
    # Idle time at which a cold start becomes likely (1 - 1/e of COLD_AFTER_IDLE_MAX): the
    # autoscaler drains idle replicas, popular models keep one warm for longer.
    idle_scale_s: float = 3600.0


NICHES = ("headshot", "product", "portrait")
TRACE_MODELS: tuple[TraceModel, ...] = (
    TraceModel("flux-dev", "2026.1", PROVIDER_SELF_HOSTED, "H100-80GB", 0.16, (0.25, 0.45, 0.30), 5.0, 0.10,
               cold_start_median_s=14.0, idle_scale_s=4 * 3600.0),
    TraceModel("flux-schnell", "2026.1", PROVIDER_SELF_HOSTED, "A100-80GB", 0.18, (0.30, 0.45, 0.25), 1.0, 0.20,
               cold_start_median_s=11.0, idle_scale_s=4 * 3600.0),
    TraceModel("sdxl-lightning", "2025.12", PROVIDER_SELF_HOSTED, "L4", 0.14, (0.35, 0.40, 0.25), 0.9, 0.20,
               cold_start_median_s=8.0, idle_scale_s=2 * 3600.0),
    TraceModel("sdxl-turbo", "2025.11", PROVIDER_SELF_HOSTED, "L4", 0.10, (0.20, 0.60, 0.20), 0.7, 0.20,
               cold_start_median_s=7.0, idle_scale_s=2 * 3600.0),
    TraceModel("sd15-headshot-lora", "2026.2", PROVIDER_SELF_HOSTED, "A100-80GB", 0.12, (0.92, 0.0, 0.08), 1.8, 0.15,
               cold_start_median_s=6.0),
    TraceModel("realvis-xl", "5.0", PROVIDER_SELF_HOSTED, "A100-80GB", 0.08, (0.15, 0.25, 0.60), 3.0, 0.15,
               cold_start_median_s=9.0),
    TraceModel("proprietary-a", "2026-01", PROVIDER_API, "", 0.12, (0.40, 0.30, 0.30), 4.8, 0.30,
               api_cost_usd=0.040, slow_call_prob=0.03),
    TraceModel("proprietary-b", "v3", PROVIDER_API, "", 0.10, (0.30, 0.40, 0.30), 4.0, 0.35,
               api_cost_usd=0.025, slow_call_prob=0.03),
)

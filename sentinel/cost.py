"""Cost per image: GPU compute + orchestration overhead + platform fee, or the API price.

    self-hosted = gpu_seconds * gpu_usd_per_hour[gpu_type] / 3600 * (1 + orchestration_overhead)
                  + platform_fee_usd_per_image
    api         = api_cost_usd + platform_fee_usd_per_image

Prices come from a pricing file parsed at the edge; this module only does the arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping


def _price_ok(value: float) -> bool:
    return math.isfinite(value) and value >= 0


class PricingError(ValueError):
    """A pricing table that cannot price the traffic (unknown GPU type, bad numbers)."""


@dataclass(frozen=True)
class Pricing:
    platform_fee_usd_per_image: float = 0.002
    orchestration_overhead: float = 0.15
    gpu_usd_per_hour: Mapping[str, float] = field(default_factory=lambda: {"cpu": 0.05})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "Pricing":
        known = {"platform_fee_usd_per_image", "orchestration_overhead", "gpu_usd_per_hour"}
        unknown = set(data) - known
        if unknown:
            raise PricingError(f"unknown pricing keys {sorted(unknown)}; expected {sorted(known)}")
        pricing = cls(
            platform_fee_usd_per_image=float(data.get("platform_fee_usd_per_image", 0.0)),
            orchestration_overhead=float(data.get("orchestration_overhead", 0.0)),
            gpu_usd_per_hour={str(k): float(v) for k, v in dict(data.get("gpu_usd_per_hour", {})).items()},
        )
        for name in ("platform_fee_usd_per_image", "orchestration_overhead"):
            if not _price_ok(getattr(pricing, name)):
                raise PricingError(f"{name} must be a finite number >= 0")
        bad = [k for k, v in pricing.gpu_usd_per_hour.items() if not _price_ok(v)]
        if bad:
            raise PricingError(f"GPU prices must be finite numbers >= 0; bad: {bad}")
        return pricing

    def require_gpu_types(self, gpu_types: set[str] | list[str]) -> None:
        """Fail loudly, listing every GPU type the table cannot price (never a silent zero)."""
        missing = sorted(set(gpu_types) - set(self.gpu_usd_per_hour))
        if missing:
            raise PricingError(
                f"no price for GPU type(s) {missing}; add them under [gpu_usd_per_hour] "
                f"(known: {sorted(self.gpu_usd_per_hour)})"
            )

    def job_cost(self, *, provider: str, gpu_type: str, gpu_seconds: float, api_cost_usd: float | None) -> float:
        if provider == "api":
            if api_cost_usd is None:
                raise PricingError("an API-priced job needs api_cost_usd")
            return api_cost_usd + self.platform_fee_usd_per_image
        try:
            per_hour = self.gpu_usd_per_hour[gpu_type]
        except KeyError:
            self.require_gpu_types({gpu_type})
            raise
        compute = gpu_seconds * per_hour / 3600.0
        return compute * (1.0 + self.orchestration_overhead) + self.platform_fee_usd_per_image

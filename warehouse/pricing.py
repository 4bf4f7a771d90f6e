"""Write the pricing in force to ``sentinel.pricing`` (for dashboards; see 0007_pricing.sql)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from sentinel.cost import Pricing

SCHEMA = pa.schema([
    ("gpu_type", pa.string()),
    ("usd_per_hour", pa.float64()),
    ("orchestration_overhead", pa.float64()),
    ("platform_fee_usd_per_image", pa.float64()),
    ("updated_at", pa.timestamp("ms", tz="UTC")),
])


def pricing_rows(pricing: Pricing, now: datetime | None = None) -> pa.Table:
    now = now or datetime.now(timezone.utc)
    types = ["", *sorted(pricing.gpu_usd_per_hour)]  # "": no GPU type, carries overhead and fee (API-only traffic)
    return pa.table({
        "gpu_type": types,
        "usd_per_hour": [0.0 if t == "" else pricing.gpu_usd_per_hour[t] for t in types],
        "orchestration_overhead": [pricing.orchestration_overhead] * len(types),
        "platform_fee_usd_per_image": [pricing.platform_fee_usd_per_image] * len(types),
        "updated_at": [now] * len(types),
    }, schema=SCHEMA)


def publish_pricing(warehouse: Any, pricing: Pricing) -> None:
    warehouse.insert("sentinel.pricing", pricing_rows(pricing))

"""A worker refuses to start when the event log holds GPU types the pricing file cannot price."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from sentinel.cost import PricingError
from config.settings import load_settings
from warehouse.rows import job_rows
from warehouse.client import ClickHouseWarehouse, migrate
from worker.main import open_runtime


def test_unpriced_gpu_type_in_history_fails_at_startup(tmp_path) -> None:
    t = datetime(2026, 1, 5, tzinfo=timezone.utc)
    event = {"job_id": "j1", "model_id": "m", "model_version": "1", "provider": "self_hosted", "niche": "headshot",
             "prompt": "p", "seed": 1, "reference_image": None, "image": b"x", "media_type": "image/webp",
             "requested_at": t, "started_at": t, "completed_at": t, "delivered_at": t, "cold_start": False,
             "cold_start_ms": 0.0, "inference_ms": 1.0, "encode_ms": 1.0, "gpu_type": "B200", "gpu_seconds": 2.0,
             "api_cost_usd": None, "node_id": "n"}
    settings = load_settings(env={}, data_dir=tmp_path)
    warehouse = ClickHouseWarehouse(settings.dsn)
    try:
        migrate(warehouse)
        warehouse.insert("sentinel.jobs", job_rows([(event, 0, 0)]))
    finally:
        warehouse.close()
    with pytest.raises(PricingError, match="B200"):
        open_runtime(settings)
    priced = tmp_path / "pricing.toml"
    priced.write_text('platform_fee_usd_per_image = 0.001\norchestration_overhead = 0.1\n'
                      '[gpu_usd_per_hour]\n"B200" = 5.0\n')
    runtime = open_runtime(settings.with_(pricing_file=priced))
    runtime.close()

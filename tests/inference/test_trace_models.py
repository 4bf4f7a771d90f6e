"""The catalog of generated traffic: every self-hosted model is priced, API models are priced per call."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from inference.trace_models import NICHES, TRACE_MODELS

ROOT = Path(__file__).resolve().parents[2]


def test_self_hosted_models_are_priced_by_gpu_type():
    prices = tomllib.loads((ROOT / "pricing.toml").read_text())["gpu_usd_per_hour"]
    assert {m.gpu_type for m in TRACE_MODELS if m.provider == "self-hosted"} <= set(prices)


def test_catalog_shares_and_providers():
    assert len({m.model for m in TRACE_MODELS}) == len(TRACE_MODELS) == 8
    assert sum(m.share for m in TRACE_MODELS) == pytest.approx(1.0)
    assert all(len(m.niche_mix) == len(NICHES) and sum(m.niche_mix) > 0 for m in TRACE_MODELS)
    api = [m for m in TRACE_MODELS if m.provider == "api"]
    assert len(api) == 2 and all(m.gpu_type == "" and m.api_cost_usd for m in api)

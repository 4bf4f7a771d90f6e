"""Cost per image against the README formula, written out by hand."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from sentinel.cost import Pricing, PricingError

PRICING_TOML = Path(__file__).resolve().parents[2] / "pricing.toml"


def pricing() -> Pricing:
    return Pricing.from_mapping({
        "platform_fee_usd_per_image": 0.002,
        "orchestration_overhead": 0.15,
        "gpu_usd_per_hour": {"A100-80GB": 1.89, "L4": 0.80, "cpu": 0.05},
    })


def test_self_hosted_job_cost() -> None:
    # 12.5 s at 1.89 $/h = 0.0065625 $ compute; x1.15 = 0.007546875; + 0.002 fee
    expected = 12.5 * 1.89 / 3600 * 1.15 + 0.002
    assert expected == pytest.approx(0.009546875, abs=1e-15)
    got = pricing().job_cost(provider="self_hosted", gpu_type="A100-80GB", gpu_seconds=12.5, api_cost_usd=None)
    assert got == pytest.approx(0.009546875, rel=1e-12)


def test_zero_gpu_seconds_costs_the_fee() -> None:
    got = pricing().job_cost(provider="self_hosted", gpu_type="L4", gpu_seconds=0.0, api_cost_usd=None)
    assert got == pytest.approx(0.002, rel=1e-12)


def test_api_job_cost_ignores_gpu_fields() -> None:
    got = pricing().job_cost(provider="api", gpu_type="none", gpu_seconds=99.0, api_cost_usd=0.04)
    assert got == pytest.approx(0.042, rel=1e-12)


def test_api_job_without_price_is_an_error() -> None:
    with pytest.raises(PricingError, match="api_cost_usd"):
        pricing().job_cost(provider="api", gpu_type="none", gpu_seconds=0.0, api_cost_usd=None)


def test_unknown_gpu_type_is_named_in_the_error() -> None:
    with pytest.raises(PricingError) as info:
        pricing().job_cost(provider="self_hosted", gpu_type="B200", gpu_seconds=1.0, api_cost_usd=None)
    assert "B200" in str(info.value)
    with pytest.raises(PricingError) as info:
        pricing().require_gpu_types(["L4", "TPU-v5", "B200", "cpu"])
    message = str(info.value)
    assert "B200" in message and "TPU-v5" in message
    assert "['B200', 'TPU-v5']" in message  # every missing type, and only those
    pricing().require_gpu_types({"L4", "cpu"})  # all priced: no error


def test_from_mapping_rejects_unknown_keys() -> None:
    with pytest.raises(PricingError, match="platform_fee_per_image"):
        Pricing.from_mapping({"platform_fee_per_image": 0.002})


@pytest.mark.parametrize("data,needle", [
    ({"platform_fee_usd_per_image": -0.001}, ">= 0"),
    ({"orchestration_overhead": -0.1}, ">= 0"),
    ({"gpu_usd_per_hour": {"L4": 0.8, "H100-80GB": -2.99}}, "H100-80GB"),
])
def test_from_mapping_rejects_negative_prices(data: dict, needle: str) -> None:
    with pytest.raises(PricingError, match=needle):
        Pricing.from_mapping(data)


def test_repo_pricing_file() -> None:
    data = tomllib.loads(PRICING_TOML.read_text())
    p = Pricing.from_mapping(data)
    assert p.platform_fee_usd_per_image == data["platform_fee_usd_per_image"]
    assert p.orchestration_overhead == data["orchestration_overhead"]
    assert dict(p.gpu_usd_per_hour) == data["gpu_usd_per_hour"]
    assert "cpu" in p.gpu_usd_per_hour
    for gpu, per_hour in data["gpu_usd_per_hour"].items():
        expected = 12.5 * per_hour / 3600.0 * (1.0 + data["orchestration_overhead"]) + data["platform_fee_usd_per_image"]
        got = p.job_cost(provider="self_hosted", gpu_type=gpu, gpu_seconds=12.5, api_cost_usd=None)
        assert math.isclose(got, expected, rel_tol=1e-12), gpu

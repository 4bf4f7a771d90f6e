"""The model registry: a TOML file naming each model a node can serve (no code to add one)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from inference.tiny_pipelines import PIPELINE_CLASSES

PROVIDERS = ("self_hosted", "api")
API_CLASS = "api"  # a priced provider API, simulated here (see inference/node.py)


class RegistryError(ValueError):
    pass


@dataclass(frozen=True)
class ModelSpec:
    model_id: str
    pipeline_class: str  # sd | sdxl | flux
    version: str
    path: str = ""  # local diffusers dir with real weights; "" = tiny offline pipeline
    seed: int = 0  # weights seed of the tiny pipeline
    steps: int = 4
    size: int = 64
    provider: str = "self_hosted"
    gpu_type: str = "cpu"
    # API-priced models (class = "api"): price per image and the provider's latency
    api_cost_usd: float | None = None
    latency_ms_median: float = 800.0
    latency_sigma: float = 0.3

    @property
    def is_api(self) -> bool:
        return self.pipeline_class == API_CLASS


def load_registry(path: Path) -> dict[str, ModelSpec]:
    if not path.exists():
        raise RegistryError(f"model registry {path} does not exist")
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    models = {}
    for model_id, entry in data.get("models", {}).items():
        entry = dict(entry)
        kind = entry.pop("class", None)
        if kind not in PIPELINE_CLASSES and kind != API_CLASS:
            raise RegistryError(f"{path}: model {model_id!r} has class {kind!r}; "
                                f"expected one of {sorted(PIPELINE_CLASSES) + [API_CLASS]}")
        if kind == API_CLASS:
            entry.setdefault("provider", "api")
            entry.setdefault("gpu_type", "")
        try:
            spec = ModelSpec(model_id=model_id, pipeline_class=kind, **entry)
        except TypeError as exc:
            raise RegistryError(f"{path}: model {model_id!r}: {exc}") from exc
        if spec.provider not in PROVIDERS:
            raise RegistryError(f"{path}: model {model_id!r}: provider must be one of {PROVIDERS}")
        if spec.is_api and (spec.api_cost_usd is None or spec.api_cost_usd < 0 or spec.provider != "api"):
            raise RegistryError(f"{path}: API model {model_id!r} needs provider = \"api\" and api_cost_usd >= 0")
        models[model_id] = spec
    if not models:
        raise RegistryError(f"{path} defines no [models.<id>] entries")
    return models

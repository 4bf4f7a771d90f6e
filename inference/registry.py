"""The model registry: a TOML file naming each model a node can serve (no code to add one)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from inference.tiny_pipelines import PIPELINE_CLASSES

PROVIDERS = ("self_hosted", "api")


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


def load_registry(path: Path) -> dict[str, ModelSpec]:
    if not path.exists():
        raise RegistryError(f"model registry {path} does not exist")
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    models = {}
    for model_id, entry in data.get("models", {}).items():
        entry = dict(entry)
        kind = entry.pop("class", None)
        if kind not in PIPELINE_CLASSES:
            raise RegistryError(f"{path}: model {model_id!r} has class {kind!r}; expected one of {sorted(PIPELINE_CLASSES)}")
        try:
            spec = ModelSpec(model_id=model_id, pipeline_class=kind, **entry)
        except TypeError as exc:
            raise RegistryError(f"{path}: model {model_id!r}: {exc}") from exc
        if spec.provider not in PROVIDERS:
            raise RegistryError(f"{path}: model {model_id!r}: provider must be one of {PROVIDERS}")
        models[model_id] = spec
    if not models:
        raise RegistryError(f"{path} defines no [models.<id>] entries")
    return models

"""Trace-row images made by diffusion pipelines: the model's own when the registry has it, else a
deterministic tiny stand-in. A few rows per second; ``sentinel replay --render pipelines``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable

from inference.node import SIMULATED_API_CLASS, encode_image
from inference.registry import ModelSpec
from inference.tiny_pipelines import ensure_tiny_pipeline, generate, load_pipeline
from inference.trace_row import TraceRow

DEFAULT_CLASS = "sd"


class PipelineImages:
    """Images for trace rows: the model's own pipeline when the registry has it, else a
    deterministic stand-in (a tiny pipeline of ``DEFAULT_CLASS`` seeded by the model name).
    A few rows per second: for replays that need pipeline-made pixels, not for load."""

    in_thread = True

    def __init__(self, registry: dict[str, ModelSpec], cache_dir: Path, *, size: int | None = None,
                 steps: int | None = None, image_format: str = "webp") -> None:
        self.registry = registry
        self.cache_dir = cache_dir
        self.size = size
        self.steps = steps
        self.image_format = image_format
        self.stand_ins: set[str] = set()
        self._pipelines: dict[str, tuple[Any, int, int]] = {}

    def load(self, models: Iterable[str]) -> None:
        """Build and load these models' pipelines now rather than at their first row."""
        for model in models:
            self._pipeline(model)

    def _pipeline(self, model: str) -> tuple[Any, int, int]:
        if model not in self._pipelines:
            spec = self.registry.get(model)
            if spec is not None:
                kind = SIMULATED_API_CLASS if spec.is_api else spec.pipeline_class
                path = Path(spec.path) if spec.path else ensure_tiny_pipeline(kind, self.cache_dir, spec.seed)
                pipe = load_pipeline(path, kind)
                size, steps = spec.size, spec.steps
            else:
                seed = int.from_bytes(hashlib.sha256(model.encode()).digest()[:4], "little") % 1000
                pipe = load_pipeline(ensure_tiny_pipeline(DEFAULT_CLASS, self.cache_dir, seed), DEFAULT_CLASS)
                size, steps = 64, 4
                self.stand_ins.add(model)
            self._pipelines[model] = (pipe, self.size or size, self.steps or steps)
        return self._pipelines[model]

    def render(self, row: TraceRow) -> tuple[bytes, str]:
        pipe, size, steps = self._pipeline(row.model)
        return encode_image(generate(pipe, row.prompt, seed=row.seed, size=size, steps=steps), self.image_format)

"""The worker's catalog as plain values, and the rows a replay can tell it will refuse."""

from __future__ import annotations

import dataclasses

from config.settings import PROJECT_ROOT
from inference.catalog import KnownIds, known_ids, parse_ids, refusals, row_jobs
from inference.trace_generator import generate_trace
from inference.trace_models import TRACE_MODELS

REGISTRY = PROJECT_ROOT / "models.toml"


def test_known_ids_built_in_extended_and_wildcard(tmp_path) -> None:
    known = known_ids(REGISTRY)
    assert {"tiny-sd", "sim-api-provider"} | {m.model for m in TRACE_MODELS} <= known.models
    assert known.niches == {"headshot", "product", "portrait"}
    extended = known_ids(REGISTRY, " gpt-image-9, ,other", "wedding")
    assert extended.models == known.models | {"gpt-image-9", "other"} and "wedding" in extended.niches
    assert known_ids(tmp_path / "absent.toml", "*", "*") == KnownIds(None, None)  # '*': registry not read
    assert parse_ids("a, b,,a ") == {"a", "b"}


def test_refusals_count_rows_and_name_the_setting_that_accepts_them() -> None:
    rows = generate_trace(50, seed=8)
    known = known_ids(REGISTRY)
    assert not refusals(row_jobs(rows), known) and refusals(row_jobs(rows), known).messages() == []
    renamed = [dataclasses.replace(r, model="house-xl") if i % 5 == 0 else r for i, r in enumerate(rows)]
    renamed[1] = dataclasses.replace(renamed[1], niche="wedding")
    found = refusals(row_jobs(renamed), known)
    assert found.models == {"house-xl": 10} and found.niches == {"wedding": 1}
    models, niches = found.messages()
    assert "10 jobs as unknown_model" in models and "SENTINEL_KNOWN_MODELS=house-xl" in models
    assert "1 job as unknown_niche" in niches and "SENTINEL_KNOWN_NICHES=wedding" in niches
    assert not refusals(row_jobs(renamed), KnownIds(None, None))

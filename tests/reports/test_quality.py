"""Scorer versions on a real chDB store: a report may name only a version with stored scores."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from reports.quality import UnknownScorerVersion, require_scorer_version
from reports.report import benchmark
from sentinel.cost import Pricing
from warehouse.client import ClickHouseWarehouse, migrate
from warehouse.rows import score_rows

T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    warehouse = ClickHouseWarehouse(f"chdb://{tmp_path_factory.mktemp('scorer_versions') / 'chdb'}")
    migrate(warehouse)
    try:
        yield warehouse
    finally:
        warehouse.close()


def _scores(version: str, jobs: int, at: datetime) -> list[dict]:
    return [{"job_id": f"j{i}", "scorer_version": version, "model_id": "m", "niche": "headshot", "scored_at": at,
             "clip_prompt_score": 0.3, "clip_reference_score": None, "embedding": [0.0], "flags": []}
            for i in range(jobs)]


def test_unknown_scorer_version_names_the_stored_ones(store) -> None:
    with pytest.raises(UnknownScorerVersion, match="'v9/clip'; no scores are stored yet"):
        require_scorer_version(store, "v9/clip")
    store.insert("sentinel.scores", score_rows(_scores("v1/clip", 3, T0)))
    store.insert("sentinel.scores", score_rows(_scores("v2/clip", 2, T0 + timedelta(days=1))))
    require_scorer_version(store, "v1/clip")
    require_scorer_version(store, "")
    with pytest.raises(UnknownScorerVersion) as exc:
        benchmark(store, Pricing(), scorer_version="v3/clip")
    assert "stored versions, newest first: v2/clip (2 jobs, latest 2026-05-02 00:00 UTC); v1/clip (3 jobs" in str(exc.value)

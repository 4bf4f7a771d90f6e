"""The worker's two "already stored?" lookups on a real chDB store: ``stored_copies.sql`` (the
gate and the archive) and ``stored_scores.sql`` (the scores agent), against the rows inserted
here, including a second copy of a row (what the lookups exist to prevent, inserted by hand)."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from conftest import make_event, migrated_store
from warehouse.client import ClickHouseWarehouse
from warehouse.rows import job_rows, score_rows
from worker.agents.scores import StoredScores
from worker.stages.gate import StoredCopy, StoredOffsets, stored_copies
from contracts.codec import content_hash


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    yield from migrated_store(tmp_path_factory, "lookups")


def score(job_id: str, version: str) -> dict:
    return {"job_id": job_id, "scorer_version": version, "model_id": "m", "niche": "n",
            "scored_at": datetime(2026, 1, 5, tzinfo=timezone.utc), "clip_prompt_score": 1.0,
            "clip_reference_score": None, "embedding": [0.0], "flags": []}


def test_stored_copies_and_offsets_see_the_stored_rows(store: ClickHouseWarehouse) -> None:
    events = [make_event(i, seed=8) for i in range(6)]
    store.insert("sentinel.jobs", job_rows([(e, 1, 10 + i) for i, e in enumerate(events[:4])]), "lookups-a")
    store.insert("sentinel.jobs", job_rows([(events[0], 1, 10)]), "lookups-b")  # a second copy of one row
    ids = [e["job_id"] for e in events]
    assert stored_copies(store, ids) == {e["job_id"]: StoredCopy(1, 10 + i, content_hash(e))
                                         for i, e in enumerate(events[:4])}
    offsets = StoredOffsets(lambda job_ids: stored_copies(store, job_ids))
    # 1@12 is stored from that offset; 1@99 holds a job stored from another offset; 1@14, 1@15 none
    items = [(1, 10, ids[0]), (1, 12, ids[2]), (1, 99, ids[3]), (1, 14, ids[4]), (1, 15, ids[5])]
    assert offsets.stored(items) == {(1, 10), (1, 12)}


def test_stored_scores_are_the_pairs_stored_in_either_version(store: ClickHouseWarehouse) -> None:
    store.insert("sentinel.scores", score_rows([score("s-1", "v1"), score("s-2", "v1"), score("s-2", "v2"),
                                                score("s-3", "v3")]), "lookups-s")
    lookup = StoredScores(SimpleNamespace(warehouse=store))
    pairs = [("s-1", "v1"), ("s-1", "v2"), ("s-2", "v2"), ("s-3", "v1"), ("s-4", "v1")]
    assert lookup.stored(pairs) == {("s-1", "v1"), ("s-2", "v2")}  # s-3 is stored in v3 only
    lookup.add([("s-4", "v1")])  # inserted by this process: known without asking
    assert lookup.stored([("s-4", "v1")]) == {("s-4", "v1")}

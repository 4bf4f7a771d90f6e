"""Reading FID moments as states + unheld tail rows on a real chDB store, while a worker
rewrites states between the reader's two queries."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import numpy as np
import pytest
from conftest import migrated_store

import sql as sql_files

from warehouse.client import ClickHouseWarehouse
from warehouse.moment_reads import MomentsChanging, bucket_moments, consistent_read, window_moments
from warehouse.moments import MomentInput, MomentStates
from warehouse.window import Window

T0 = datetime(2026, 4, 6, 10, 0, tzinfo=timezone.utc)
D = 6


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    yield from migrated_store(tmp_path_factory, "moment_reads")


class Racing:
    """The store, but ``hook`` runs once right after the first query whose text holds ``after``
    (a worker writing between a reader's states query and its tail query)."""

    def __init__(self, store: ClickHouseWarehouse, after: str, hook: Callable[[], None]) -> None:
        self.store, self.after, self.hook = store, after, hook

    def query(self, text: str, parameters: Any = None) -> Any:
        out = self.store.query(text, parameters)
        if self.hook is not None and self.after in text:
            hook, self.hook = self.hook, None
            hook()
        return out


def _inputs(n: int, seed: int, first_offset: int = 0) -> list[MomentInput]:
    """One model x niche, one partition, all in one hour: a single key."""
    rng = np.random.default_rng(seed)
    return [MomentInput("m1", "headshot", T0 + timedelta(seconds=k), 0, first_offset + k,
                        rng.normal(size=D).tolist()) for k in range(n)]


def _check(m: Any, items: list[MomentInput]) -> None:
    x = np.asarray([i.embedding for i in items], np.float64)
    assert m.n == len(x)
    np.testing.assert_allclose(m.sum, x.sum(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.sum_outer, x.T @ x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reader", ["window", "fid_drift"])
def test_a_state_rewritten_between_the_two_queries_is_read_again(store: ClickHouseWarehouse, reader: str) -> None:
    """3 images in the tail, then -- after the reader's states query, before its tail query --
    the worker stores 1 more and rewrites the key's state (compact_every 4), which now holds all
    4: read once, the old (empty) state plus the view's tail (none unheld) would count 0."""
    version = f"v-race-{reader}/tiny:seed0"
    items = _inputs(4, seed=7)
    writer = MomentStates(store, 3600, compact_every=4)
    writer.apply(version, items[:3]).write(store)

    def compact() -> None:
        writes = writer.apply(version, items[3:])
        assert writes.states is not None
        writes.write(store)

    racing = Racing(store, "feature_sum_outer_upper", compact)
    if reader == "window":
        got = window_moments(racing, version, Window().params())
        assert list(got) == [("m1", "headshot")]
        _check(got[("m1", "headshot")], items)
    else:
        start = int(T0.timestamp())
        got = bucket_moments(racing, version, "m1", "headshot", start, start + 3600)
        assert [b for b, _ in got] == [start]
        _check(got[0][1], items)
    assert racing.hook is None  # the worker did write in between


def test_a_reader_gives_up_with_a_clear_error_when_states_keep_changing(store: ClickHouseWarehouse) -> None:
    version = "v-race-busy/tiny:seed0"
    writer = MomentStates(store, 3600, compact_every=1)
    offsets = iter(range(100))

    def states():  # every read races a state rewrite
        read = store.query(sql_files.report("feature_moments"), query)
        writer.apply(version, _inputs(1, seed=next(offsets), first_offset=next(offsets))).write(store)
        return read

    query = {"scorer_version": version, **Window().params()}
    with pytest.raises(MomentsChanging, match="rewritten during each of 3 reads"):
        consistent_read(store, query, states, lambda: store.query(sql_files.report("feature_moment_tail"), query),
                        attempts=3)

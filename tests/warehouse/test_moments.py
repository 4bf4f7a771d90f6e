"""FID moment states and their tail on a real chDB store: offset idempotence across redelivery
and restart, and the window query's SQL merge (states + unheld tail rows) against numpy."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest
from conftest import migrated_store

from warehouse.moment_reads import bucket_moments, window_moments
from warehouse.moments import MomentInput, MomentStates, rows_token, tail_token
from warehouse.window import Window
from warehouse.client import ClickHouseWarehouse

UTC = timezone.utc
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
V = "v-test/tiny:seed0"
D = 8


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    yield from migrated_store(tmp_path_factory, "moments")


def _inputs(n: int, seed: int, partition: int = 0, first_offset: int = 0) -> list[MomentInput]:
    rng = np.random.default_rng(seed)
    models, niches = ["m1", "m2"], ["headshot", "product"]
    out = []
    for k in range(n):
        out.append(MomentInput(models[k % 2], niches[(k // 2) % 2], T0 + timedelta(minutes=7 * k), partition,
                               first_offset + k, rng.normal(size=D).astype(np.float32).tolist()))
    return out


def _store(states: MomentStates, warehouse: ClickHouseWarehouse, items: list[MomentInput]) -> int:
    writes = states.apply(V, items)
    writes.write(warehouse)
    return 0 if writes.tail is None else writes.tail.num_rows


def _expected(items: list[MomentInput], start: datetime, end: datetime) -> dict:
    """Direct numpy: count, mean and unbiased covariance per (model, niche), buckets in [start, end)."""
    groups: dict = {}
    for i in items:
        bucket = i.requested_at.replace(minute=0, second=0, microsecond=0)
        if start <= bucket < end:
            groups.setdefault((i.model_id, i.niche), []).append(i.embedding)
    return {k: (len(v), np.mean(np.asarray(v, np.float64), axis=0), np.cov(np.asarray(v, np.float64), rowvar=False))
            for k, v in groups.items()}


def _assert_holds_each_once(store: ClickHouseWarehouse, version: str, items: list[MomentInput]) -> None:
    """The stored states of ``version`` merge to numpy's count, mean and covariance of ``items``."""
    got = window_moments(store, version, Window().params())
    want = _expected(items, datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
    assert {k: m.n for k, m in got.items()} == {k: n for k, (n, _, _) in want.items()}
    for key, (n, mean, cov) in want.items():
        np.testing.assert_allclose(got[key].mean, mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got[key].covariance, cov, rtol=1e-9, atol=1e-12)


def test_redelivery_and_restart_apply_each_offset_once(store: ClickHouseWarehouse) -> None:
    """A state is stored every 3 images of its key, so the table holds states and tail rows."""
    items = _inputs(60, seed=1)
    first = MomentStates(store, bucket_s=3600, compact_every=3)
    assert _store(first, store, items[:40]) > 0
    assert store.query("SELECT count() AS n FROM sentinel.feature_moments FINAL WHERE scorer_version = {v:String}",
                       {"v": V}).column("n")[0].as_py() > 0
    # at-least-once: the same batch again (worker retried before its commit) changes nothing
    assert not first.apply(V, items[:40])
    # a restarted worker has no cache: it reloads the states and skips what they already hold,
    # including a redelivered batch that overlaps applied and new offsets
    restarted = MomentStates(store, bucket_s=3600, compact_every=3)
    assert _store(restarted, store, items[30:]) > 0
    assert not restarted.apply(V, items[:60])
    # a rebalance drops the cache; the table still holds the truth
    restarted.forget()
    assert not restarted.apply(V, items[10:50])

    got = window_moments(store, V, Window().params())
    want = _expected(items, datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
    assert set(got) == set(want)
    for key, (n, mean, cov) in want.items():
        assert got[key].n == n
        np.testing.assert_allclose(got[key].mean, mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got[key].covariance, cov, rtol=1e-9, atol=1e-12)


def test_window_merges_only_its_buckets(store: ClickHouseWarehouse) -> None:
    items = _inputs(60, seed=1)  # the states stored by the previous test
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=4)
    got = window_moments(store, V, Window(start, end).params())
    want = _expected(items, start, end)
    assert set(got) == set(want) and want
    for key, (n, mean, cov) in want.items():
        assert got[key].n == n
        np.testing.assert_allclose(got[key].mean, mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got[key].covariance, cov, rtol=1e-9, atol=1e-12)


def test_partitions_keep_separate_states(store: ClickHouseWarehouse) -> None:
    """Offsets are per source partition: offset 5 of partition 1 is new even if partition 0
    applied offset 5 long ago."""
    states = MomentStates(store, bucket_s=3600)
    other = _inputs(20, seed=2, partition=1)
    assert _store(states, store, other) > 0
    got = window_moments(store, V, Window().params())
    assert sum(m.n for m in got.values()) == 80


def test_a_batch_holding_a_record_twice_applies_it_once(store: ClickHouseWarehouse) -> None:
    """Faust can hand an agent the same offset twice in one batch (a re-fetch after a seek
    while the older copy is still buffered): the state must count it once."""
    version = "v-test/twice"
    items = _inputs(24, seed=3)
    states = MomentStates(store, bucket_s=3600)
    writes = states.apply(version, items[:16] + items[8:20] + items[19:])
    assert writes.tail.num_rows == len(items)
    writes.write(store)
    _assert_holds_each_once(store, version, items)


def test_records_arriving_out_of_order_are_each_applied_once(store: ClickHouseWarehouse) -> None:
    """A record Faust failed to deliver comes back (the hole healer's re-read) after later
    ones; the state must take it then, and still never take anything twice -- across a
    restart, with the stored offset list cut at the committed offset."""
    version = "v-test/out-of-order"
    items = _inputs(40, seed=4)
    holes = {3, 4, 11, 25}
    first = MomentStates(store, bucket_s=3600, compact_every=1)

    def write(states: MomentStates, batch: list[MomentInput], committed: int | None = None) -> None:
        states.apply(version, batch, (lambda p: committed) if committed is not None else None).write(store)

    write(first, [i for i in items[:30] if i.offset not in holes])
    write(first, [items[k] for k in sorted(holes)] + items[28:34])  # the re-read, overlapping
    restarted = MomentStates(store, bucket_s=3600, compact_every=1)  # a crash: everything again, from the table
    write(restarted, items[::-1], committed=20)  # commit at 20: offsets below are settled
    write(restarted, items[15:])
    restarted.forget()
    assert not restarted.apply(version, items)
    stored = store.query("SELECT complete_below, applied_offsets FROM sentinel.feature_moments FINAL "
                         "WHERE scorer_version = {v:String}", {"v": version}).to_pylist()
    settled = [r for r in stored if r["complete_below"] >= 20]  # states written after the commit
    assert settled and all(min(r["applied_offsets"], default=20) >= 20 for r in settled)

    _assert_holds_each_once(store, version, items)


def test_bucket_moments_merge_partitions_per_bucket(store: ClickHouseWarehouse) -> None:
    """The FID drift input: per bucket of one model x niche, every source partition merged
    (two partitions here), only buckets starting in [start, end)."""
    version = "v-drift/tiny:seed0"  # its own scorer version: the module's store is shared
    items = _inputs(40, seed=11, partition=0) + _inputs(40, seed=12, partition=1)
    MomentStates(store, 3600, compact_every=3).apply(version, items).write(store)  # states and tail rows
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=3)
    got = bucket_moments(store, version, "m1", "headshot", int(start.timestamp()), int(end.timestamp()))
    want: dict = {}
    for i in items:
        bucket = i.requested_at.replace(minute=0, second=0, microsecond=0)
        if (i.model_id, i.niche) == ("m1", "headshot") and start <= bucket < end:
            want.setdefault(int(bucket.timestamp()), []).append(i.embedding)
    assert [b for b, _ in got] == sorted(want) and len(want) == 2
    for b, m in got:
        x = np.asarray(want[b], np.float64)
        assert m.n == len(x)
        np.testing.assert_allclose(m.sum, x.sum(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(m.sum_outer, x.T @ x, rtol=1e-12, atol=1e-12)


def _symmetric(upper: list[float]) -> np.ndarray:
    m = np.zeros((D, D))
    m[np.triu_indices(D)] = upper
    return m + np.triu(m, 1).T


def test_states_store_the_upper_triangle_and_merge_with_full_matrix_states(store: ClickHouseWarehouse) -> None:
    """Σxxᵀ is stored as its upper triangle (D(D+1)/2 values; migration 0013) and read back to
    the bit; a state written before (all D² values in sum_outer) merges with new ones in the
    window query, the FID drift buckets and a state reload."""
    version = "v-upper/tiny:seed0"
    old_items, new_items = _inputs(12, seed=21, partition=2), _inputs(12, seed=22, partition=3)
    old = MomentStates(store, 3600, compact_every=1).apply(version, old_items).states
    # the old form, as a worker before migration 0013 wrote it: every value of the matrix
    full = [_symmetric(u).reshape(-1) for u in old.column("sum_outer_upper").to_pylist()]
    old = old.set_column(old.schema.get_field_index("sum_outer"), "sum_outer", pa.array(full, pa.list_(pa.float64())))
    old = old.set_column(old.schema.get_field_index("sum_outer_upper"), "sum_outer_upper",
                         pa.array([[]] * old.num_rows, pa.list_(pa.float64())))
    store.insert("sentinel.feature_moments", old, rows_token(old))
    writer = MomentStates(store, 3600, compact_every=1)
    new = writer.apply(version, new_items).states
    assert all(len(v) == 0 for v in new.column("sum_outer").to_pylist())
    assert {len(v) for v in new.column("sum_outer_upper").to_pylist()} == {D * (D + 1) // 2}
    store.insert("sentinel.feature_moments", new, rows_token(new))

    items = old_items + new_items
    got = window_moments(store, version, Window().params())
    assert sorted(got) == sorted({(i.model_id, i.niche) for i in items})
    for (model, niche), m in got.items():
        x = np.asarray([i.embedding for i in items if (i.model_id, i.niche) == (model, niche)], np.float64)
        assert m.n == len(x)
        np.testing.assert_allclose(m.sum_outer, x.T @ x, rtol=1e-12, atol=1e-12)
    buckets = bucket_moments(store, version, "m1", "headshot", 0, 2**31 - 1)
    x = np.asarray([i.embedding for i in items if (i.model_id, i.niche) == ("m1", "headshot")], np.float64)
    assert sum(m.n for _, m in buckets) == len(x)
    np.testing.assert_allclose(sum(m.sum_outer for _, m in buckets), x.T @ x, rtol=1e-12, atol=1e-12)
    reloaded = MomentStates(store, 3600)
    assert not reloaded.apply(version, old_items + new_items)  # every offset held: loaded, nothing new
    for key, state in writer._cache.items():
        assert np.array_equal(reloaded._cache[key].moments.sum_outer, state.moments.sum_outer)  # to the bit


def test_tail_rows_and_states_fold_to_each_image_once(store: ClickHouseWarehouse) -> None:
    """States are stored every 2 images of a key, the images between as tail rows: the window,
    the FID drift buckets and a reloading worker see every image once, also when a batch's tail
    rows were stored and its due states were not (a crash between the two inserts), and when
    the state stored later holds tail rows stored before it."""
    version = "v-tail/tiny:seed0"
    items = _inputs(30, seed=31, partition=5)
    writer = MomentStates(store, 3600, compact_every=2)
    writer.apply(version, items[:10]).write(store)
    crashed = writer.apply(version, items[10:20])
    assert crashed.tail.num_rows == 10 and crashed.states is not None
    store.insert("sentinel.feature_moment_tail", crashed.tail, tail_token(crashed.tail))  # its states never stored
    resumed = MomentStates(store, 3600, compact_every=2)  # the restart: states + unheld tail rows
    assert not resumed.apply(version, items[:20])
    writes = resumed.apply(version, items[15:])
    assert writes.tail.num_rows == 10
    writes.write(store)

    got = window_moments(store, version, Window().params())
    for (model, niche), m in got.items():
        x = np.asarray([i.embedding for i in items if (i.model_id, i.niche) == (model, niche)], np.float64)
        assert m.n == len(x)
        np.testing.assert_allclose(m.sum, x.sum(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(m.sum_outer, x.T @ x, rtol=1e-12, atol=1e-12)
    assert sum(m.n for m in got.values()) == len(items)
    buckets = bucket_moments(store, version, "m2", "product", 0, 2**31 - 1)
    want: dict = {}
    for i in items:
        if (i.model_id, i.niche) == ("m2", "product"):
            want.setdefault(int(i.requested_at.replace(minute=0).timestamp()), []).append(i.embedding)
    assert [b for b, _ in buckets] == sorted(want)
    for b, m in buckets:
        np.testing.assert_allclose(m.sum_outer, np.asarray(want[b]).T @ np.asarray(want[b]), rtol=1e-12, atol=1e-12)
    reloaded = MomentStates(store, 3600, compact_every=2)
    assert not reloaded.apply(version, items)
    for key, state in resumed._cache.items():
        assert reloaded._cache[key].moments.n == state.moments.n


def test_a_tail_row_stored_twice_counts_once(store: ClickHouseWarehouse) -> None:
    """A re-read batch cut differently stores an image's tail row again (another dedup token):
    its key and offset make it one row."""
    version = "v-tail-twice/tiny:seed0"
    items = _inputs(8, seed=41, partition=6)
    writes = MomentStates(store, 3600).apply(version, items)
    writes.write(store)
    store.insert("sentinel.feature_moment_tail", writes.tail.slice(2, 4), "a re-read cut differently")
    got = window_moments(store, version, Window().params())
    assert sum(m.n for m in got.values()) == len(items)


class _TailFailsOnce:
    """The store, but its first tail-row query (a worker loading a state) fails."""

    def __init__(self, store: ClickHouseWarehouse) -> None:
        self.store, self.failed = store, False

    def query(self, text: str, parameters=None):
        if not self.failed and "source_offset, embedding" in text:
            self.failed = True
            raise ConnectionError("store restarting")
        return self.store.query(text, parameters)

    def insert(self, *args, **kwargs):
        return self.store.insert(*args, **kwargs)


def test_a_load_that_fails_half_way_loads_again_on_the_retry(store: ClickHouseWarehouse) -> None:
    """A restarted worker's load reads the state, then fails on its tail rows: the retried apply
    must load both again, not resume from the state alone (its next compaction would then claim
    the tail rows' offsets without their images)."""
    version = "v-tail-retry/tiny:seed0"
    items = _inputs(12, seed=51, partition=7)
    MomentStates(store, 3600, compact_every=100).apply(version, items[:8]).write(store)  # tail rows only
    flaky = _TailFailsOnce(store)
    restarted = MomentStates(flaky, 3600, compact_every=1)
    with pytest.raises(ConnectionError):
        restarted.apply(version, items[8:])
    restarted.apply(version, items[8:], committed=lambda p: 12).write(store)  # the retry; states written
    _assert_holds_each_once(store, version, items)
    got = window_moments(store, version, Window().params())
    assert sum(m.n for m in got.values()) == len(items)

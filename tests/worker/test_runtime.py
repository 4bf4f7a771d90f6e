"""When the scorer runs its towers side by side (worker.runtime.towers_pool)."""

from __future__ import annotations

import os

import pytest

from config.settings import ConfigError, load_settings
from worker.runtime import AUTO_TOWERS_MIN_PARAMS, towers_pool

BIG, SMALL = AUTO_TOWERS_MIN_PARAMS, AUTO_TOWERS_MIN_PARAMS - 1


@pytest.fixture
def cores(monkeypatch):
    def set_cores(n: int) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)), raising=False)
    set_cores(2)
    return set_cores


@pytest.mark.parametrize("mode, params, expected", [
    ("auto", BIG, True), ("auto", SMALL, False), ("on", SMALL, True), ("off", BIG, False),
])
def test_the_mode_and_the_image_tower_size_decide(cores, mode, params, expected) -> None:
    pool = towers_pool(load_settings(env={}, parallel_towers=mode), params)
    try:
        assert (pool is not None) is expected
    finally:
        if pool is not None:
            pool.shutdown()


@pytest.mark.parametrize("overrides", [{"device": "cuda"}, {"score_enabled": False}], ids=["gpu", "metadata-only"])
def test_no_second_thread_off_the_cpu_or_without_scoring(cores, overrides) -> None:
    assert towers_pool(load_settings(env={}, parallel_towers="on", **overrides), BIG) is None


def test_auto_keeps_two_thread_teams_within_the_cores(cores) -> None:
    # torch's thread count applies in each tower's thread: two teams of 2 need 4 cores
    assert towers_pool(load_settings(env={}, torch_threads=2), BIG) is None
    cores(4)
    pool = towers_pool(load_settings(env={}, torch_threads=2), BIG)
    assert pool is not None
    pool.shutdown()
    assert towers_pool(load_settings(env={}, torch_threads=3), BIG) is None


def test_no_second_thread_on_one_core(cores) -> None:
    cores(1)
    assert towers_pool(load_settings(env={}, parallel_towers="on"), BIG) is None


def test_the_setting_is_checked_and_case_free() -> None:
    assert load_settings(env={"SENTINEL_PARALLEL_TOWERS": " ON "}).parallel_towers == "on"
    with pytest.raises(ConfigError, match="parallel_towers='sometimes'.*auto, on, off"):
        load_settings(env={"SENTINEL_PARALLEL_TOWERS": "sometimes"})
    for bad in ("-1", "inf", "nan"):
        with pytest.raises(ConfigError, match="score_slice_s"):
            load_settings(env={"SENTINEL_SCORE_SLICE_S": bad})

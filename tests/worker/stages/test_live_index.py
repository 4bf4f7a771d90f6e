"""The live table's index (worker/stages/live_index.py) behind /metrics, /sentinel/live/,
/sentinel/sketches/ and the tally's expiry: what it returns equals a plain scan of the table,
as keys are written and expire."""

from __future__ import annotations

import random

from sentinel.buckets import parse_live_key
from worker.stages.live_index import LiveIndex


def scan(table: dict, partitions: set[int], since: float) -> list[tuple[str, dict]]:
    out = []
    for key, value in table.items():
        _, _, start, partition = parse_live_key(key)
        if partition in partitions and start + value["bucket_s"] > since:
            out.append((key, value))
    return sorted(out)


def test_the_index_answers_as_a_scan_of_the_table_while_keys_come_and_go() -> None:
    rng = random.Random(0)
    table: dict[str, dict] = {}
    index = LiveIndex(table)
    for step in range(30):
        for _ in range(rng.randrange(0, 60)):
            start = 300 * rng.randrange(0, 40)
            table[f"m{rng.randrange(3)}|a|b|{start}|{rng.randrange(4)}"] = {"bucket_s": 300, "stats": {"n": step}}
        for key in rng.sample(sorted(table), k=min(len(table), rng.randrange(0, 20))):
            del table[key]
        partitions = set(rng.sample(range(4), k=rng.randrange(0, 5)))
        since = rng.choice([float("-inf"), 300.0 * rng.randrange(0, 45)])
        assert index.items(partitions, since) == scan(table, partitions, since)
        partition, before = rng.randrange(4), 300 * rng.randrange(0, 45)
        assert index.older(partition, before) == sorted(
            k for k in table if parse_live_key(k)[3] == partition and parse_live_key(k)[2] < before)
    assert set(index.where) == set(table)  # expired keys are dropped from the index


def test_a_bucket_ending_at_the_window_start_is_outside_it() -> None:
    table = {"m|n|600|0": {"bucket_s": 300}, "m|n|900|0": {"bucket_s": 300}}
    assert [k for k, _ in LiveIndex(table).items({0}, since=900.0)] == ["m|n|900|0"]


def test_buckets_of_another_length_stay_in_their_window() -> None:
    """Buckets are skipped by the longest length: the worker's own (a key it rewrites after the
    setting changed) or a longer one read (a key kept from an earlier setting)."""
    table = {"m|n|0|0": {"bucket_s": 60}, "m|n|600|0": {"bucket_s": 60}}
    index = LiveIndex(table, bucket_s=60)
    assert [k for k, _ in index.items({0}, since=100.0)] == ["m|n|600|0"]
    table["m|n|0|0"] = {"bucket_s": 3600}  # rewritten by a worker now set to hour buckets
    assert [k for k, _ in LiveIndex(table, bucket_s=3600).items({0}, since=100.0)] == ["m|n|0|0", "m|n|600|0"]
    kept = {"m|n|0|1": {"bucket_s": 3600}, "m|n|3600|1": {"bucket_s": 60}}  # kept from an hour setting
    assert [k for k, _ in LiveIndex(kept, bucket_s=60).items({1}, since=100.0)] == ["m|n|0|1", "m|n|3600|1"]

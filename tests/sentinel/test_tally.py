"""JobTally: at-least-once replays are no-ops; merges add up; the state round-trips as JSON."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from sentinel.tally import JobTally


def _stream(seed: int, partitions: int = 4, per_partition: int = 60):
    """Events per partition: (partition, offset, gpu_seconds, cost), offsets increasing with gaps."""
    rng = np.random.default_rng(seed)
    events = {}
    for p in range(partitions):
        offsets = np.cumsum(rng.integers(1, 4, per_partition)) + rng.integers(0, 1000)
        events[p] = [(p, int(o), float(g), float(c)) for o, g, c in
                     zip(offsets, rng.random(per_partition) * 20, rng.random(per_partition) * 0.05)]
    return events


def _redelivered(events: dict, seed: int) -> list:
    """At-least-once delivery: per partition, offset order with rewinds (replayed suffixes of the
    prefix seen so far), partitions interleaved at random."""
    rng = random.Random(seed)
    per_partition = {}
    for p, evs in events.items():
        seq, pos = [], 0
        while pos < len(evs):
            end = min(len(evs), pos + rng.randint(1, 15))
            seq.extend(evs[pos:end])
            pos = end
            if rng.random() < 0.5:  # crash: restart from an earlier committed position
                rewind = rng.randint(0, pos)
                seq.extend(evs[rewind:pos])
        per_partition[p] = seq
    cursors = {p: 0 for p in per_partition}
    out = []
    while cursors:
        p = rng.choice(sorted(cursors))
        out.append(per_partition[p][cursors[p]])
        cursors[p] += 1
        if cursors[p] == len(per_partition[p]):
            del cursors[p]
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_replays_are_no_ops(seed: int) -> None:
    events = _stream(seed)
    delivered = _redelivered(events, seed)
    unique = [e for evs in events.values() for e in evs]
    assert len(delivered) > len(unique)  # the delivery really had duplicates

    tally = JobTally()
    applied = [tally.update(partition=p, offset=o, gpu_seconds=g, cost_usd=c) for p, o, g, c in delivered]
    assert sum(applied) == len(unique)

    arr = np.array([(g, c) for _, _, g, c in unique])
    assert tally.jobs == len(unique)
    assert tally.gpu_seconds == pytest.approx(np.sum(arr[:, 0]), rel=1e-12)
    assert tally.cost_usd == pytest.approx(np.sum(arr[:, 1]), rel=1e-12)
    assert tally.last_offsets() == {p: evs[-1][1] for p, evs in sorted(events.items())}
    computed = tally.compute()
    assert computed["cost_per_image_usd"] == pytest.approx(np.mean(arr[:, 1]), rel=1e-12)

    before = tally.to_dict()
    for p, o, g, c in delivered:  # a full replay of everything changes nothing
        assert tally.update(partition=p, offset=o, gpu_seconds=g, cost_usd=c) is False
    assert tally.to_dict() == before


def test_empty_tally() -> None:
    computed = JobTally().compute()
    assert computed["jobs"] == 0 and computed["cost_per_image_usd"] is None


def _dyadic_tally(partition: int, seed: int, n: int = 20) -> JobTally:
    """Values are multiples of 2**-10, so every sum here is exact in float64."""
    rng = np.random.default_rng(seed)
    t = JobTally()
    for off in sorted(rng.choice(10_000, n, replace=False)):
        t.update(partition=partition, offset=int(off), gpu_seconds=int(rng.integers(0, 40_000)) / 1024,
                 cost_usd=int(rng.integers(0, 100)) / 1024)
    return t


def _numbers(t: JobTally):
    return t.jobs, t.gpu_seconds, t.cost_usd, {p: a.to_json() for p, a in sorted(t.applied.items())}


def test_merge_is_associative_and_commutative() -> None:
    a, b, c = _dyadic_tally(0, 1), _dyadic_tally(1, 2), _dyadic_tally(2, 3)
    left = a.merge(b).merge(c)
    right = a.merge(b.merge(c))
    swapped = c.merge(a).merge(b)
    assert _numbers(left) == _numbers(right) == _numbers(swapped) == _numbers(b.merge(a).merge(c))
    assert left.jobs == a.jobs + b.jobs + c.jobs
    assert left.gpu_seconds == a.gpu_seconds + b.gpu_seconds + c.gpu_seconds
    assert left.last_offsets() == {0: a.last_offsets()[0], 1: b.last_offsets()[1], 2: c.last_offsets()[2]}
    assert _numbers(a.merge(JobTally())) == _numbers(JobTally().merge(a)) == _numbers(a)


def test_merge_does_not_mutate_and_keeps_replay_protection() -> None:
    a, b = _dyadic_tally(0, 5), _dyadic_tally(1, 6)
    a_before, b_before = _numbers(a), _numbers(b)
    merged = a.merge(b)
    assert _numbers(a) == a_before and _numbers(b) == b_before
    assert merged.update(partition=0, offset=a.last_offsets()[0], gpu_seconds=1.0, cost_usd=1.0) is False
    assert merged.update(partition=1, offset=b.last_offsets()[1] + 1, gpu_seconds=1.0, cost_usd=1.0) is True


def test_to_dict_from_dict_round_trip_is_stable() -> None:
    t = JobTally()
    for p, o, g, c in [(3, 10, 0.1, 0.0021), (0, 7, 1e-9, 1 / 3), (12, 2**40, 12.5, 0.009546875), (3, 11, 0.2, 0.003)]:
        t.update(partition=p, offset=o, gpu_seconds=g, cost_usd=c)
    text = json.dumps(t.to_dict(), sort_keys=True)
    back = JobTally.from_dict(json.loads(text))
    assert _numbers(back) == _numbers(t)
    assert all(isinstance(p, int) for p in back.applied)
    assert json.dumps(back.to_dict(), sort_keys=True) == text
    again = JobTally.from_dict(json.loads(json.dumps(back.to_dict(), sort_keys=True)))
    assert json.dumps(again.to_dict(), sort_keys=True) == text
    # Watermarks survive the round trip (int partitions): a replay is still a no-op.
    assert back.update(partition=3, offset=11, gpu_seconds=5.0, cost_usd=5.0) is False
    assert back.update(partition=12, offset=2**40, gpu_seconds=5.0, cost_usd=5.0) is False


def test_from_dict_edge_cases() -> None:
    assert _numbers(JobTally.from_dict(None)) == _numbers(JobTally())
    assert _numbers(JobTally.from_dict({})) == _numbers(JobTally())
    with pytest.raises(ValueError, match="format"):
        JobTally.from_dict({"v": 3, "jobs": 1, "gpu_seconds": 0, "cost_usd": 0, "applied": {}})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_late_records_are_counted_once_and_settling_forgets_nothing(seed: int) -> None:
    """Faust can deliver a record after later ones (a re-read of one it failed to hand over):
    a watermark would skip it for good; the tally takes it, once, in any order, and settling
    at a committed offset keeps every answer."""
    rng = np.random.default_rng(seed)
    offsets = list(range(200))
    values = {o: (int(rng.integers(1, 4000)) / 1024, int(rng.integers(1, 100)) / 1024) for o in offsets}
    late = set(rng.choice(200, 30, replace=False).tolist())
    order = [o for o in offsets if o not in late] + sorted(late)  # the missing ones come back last
    order += list(rng.choice(200, 100).tolist())  # and a replay of random ones
    tally = JobTally()
    taken = 0
    for k, o in enumerate(order):
        taken += tally.update(partition=0, offset=int(o), gpu_seconds=values[o][0], cost_usd=values[o][1])
        if k == 150:
            tally.settle(0, min(late))  # the commit cannot pass the first missing record
        if k == 230:
            tally.settle(0, 200)  # everything committed
    assert taken == 200 and tally.jobs == 200
    assert tally.gpu_seconds == sum(v[0] for v in values.values())  # dyadic: exact
    assert tally.cost_usd == sum(v[1] for v in values.values())
    assert tally.applied[0].to_json() == [200, []]
    back = JobTally.from_dict(json.loads(json.dumps(tally.to_dict())))
    assert all(back.update(partition=0, offset=o, gpu_seconds=1.0, cost_usd=1.0) is False for o in offsets)


def test_format_1_watermarks_still_read() -> None:
    old = {"v": 1, "jobs": 3, "images": 3, "gpu_seconds": 1.0, "cost_usd": 0.5, "applied": {"2": 41}}
    t = JobTally.from_dict(old)
    assert t.last_offsets() == {2: 41}
    assert t.update(partition=2, offset=41, gpu_seconds=1.0, cost_usd=1.0) is False
    assert t.update(partition=2, offset=42, gpu_seconds=1.0, cost_usd=1.0) is True

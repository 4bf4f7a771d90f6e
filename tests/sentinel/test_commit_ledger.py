"""The commit ledger against a naive recomputation: a partition may be committed up to the first
offset (from where it was read) that some reader has not finished."""

from __future__ import annotations

import random

import pytest

from sentinel.offsets import CommitLedger

READERS = {"jobs.completed": ["score", "archive", "tally"], "jobs.scored": ["store_scores"]}


def naive_commit(start: int, finished: dict[str, set[int]]) -> int:
    def first_missing(done: set[int]) -> int:
        o = start
        while o in done:
            o += 1
        return o
    return min(first_missing(done) for done in finished.values())


@pytest.mark.parametrize("seed", range(40))
def test_committable_equals_a_naive_recomputation_under_any_delivery_order(seed: int) -> None:
    rng = random.Random(seed)
    ledger = CommitLedger(READERS)
    start = rng.randrange(0, 50)
    ledger.reset({("jobs.completed", 0): start, ("jobs.scored", 0): 0})
    finished: dict[str, set[int]] = {r: set() for r in READERS["jobs.completed"]}
    for step in range(300):
        reader = rng.choice(READERS["jobs.completed"])
        # mostly in order, some re-reads, some records passed over, some from before the start
        offset = start + rng.randrange(-5, 80)
        ledger.finish(reader, "jobs.completed", 0, offset)
        finished[reader].add(offset)
        if step % 17 == 0:
            assert ledger.committable("jobs.completed", 0) == naive_commit(start, finished)
    assert ledger.committable("jobs.completed", 0) == naive_commit(start, finished)


def test_one_reader_that_never_got_a_record_holds_the_commit_for_all() -> None:
    ledger = CommitLedger(READERS)
    ledger.reset({("jobs.completed", 1): 10})
    for o in range(10, 20):
        ledger.finish("archive", "jobs.completed", 1, o)
        ledger.finish("tally", "jobs.completed", 1, o)
        if o != 13:
            ledger.finish("score", "jobs.completed", 1, o)
    assert ledger.committable("jobs.completed", 1) == 13
    lag = ledger.lag("jobs.completed", 1)
    assert (lag.offset, lag.readers, lag.skipped, lag.others_ahead, lag.next_finished) == (13, ("score",), True, True, 14)
    ledger.finish("score", "jobs.completed", 1, 13)  # the re-read copy
    assert ledger.committable("jobs.completed", 1) == 20
    assert ledger.lag("jobs.completed", 1) is None


def test_a_slow_reader_is_behind_but_has_skipped_nothing() -> None:
    ledger = CommitLedger(READERS)
    ledger.reset({("jobs.completed", 0): 0})
    for o in range(8):
        ledger.finish("archive", "jobs.completed", 0, o)
        ledger.finish("tally", "jobs.completed", 0, o)
    for o in range(3):
        ledger.finish("score", "jobs.completed", 0, o)
    lag = ledger.lag("jobs.completed", 0)
    assert (lag.offset, lag.readers, lag.skipped, lag.others_ahead) == (3, ("score",), False, True)


def test_reset_forgets_revoked_partitions_and_restarts_at_the_committed_offset() -> None:
    ledger = CommitLedger(READERS)
    ledger.reset({("jobs.scored", 0): 5, ("jobs.scored", 1): 0})
    ledger.finish("store_scores", "jobs.scored", 0, 5)
    assert ledger.committable("jobs.scored", 0) == 6
    ledger.reset({("jobs.scored", 0): 4})  # seek back to the committed offsets; partition 1 revoked
    assert ledger.committable("jobs.scored", 0) == 4
    assert ledger.committable("jobs.scored", 1) is None
    ledger.finish("store_scores", "jobs.scored", 1, 0)  # a late record of a revoked partition: ignored
    assert ledger.committable("jobs.scored", 1) is None
    assert not ledger.tracks("other.topic")
    with pytest.raises(KeyError, match="not a registered reader"):
        ledger.finish("drift", "jobs.scored", 0, 4)

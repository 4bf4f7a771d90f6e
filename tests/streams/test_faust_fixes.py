"""The worker's commits come from the commit ledger (streams/faust_fixes.py), driven through
Faust's own Consumer code with its state set by hand; the end-to-end proof is
tests/integration/test_faults.py and tests/integration/test_worker_restart.py."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from sentinel.offsets import CommitLedger
from streams import faust_fixes
from streams.app import create_app, finished
from streams.config import Settings

TOPIC = "jobs.completed"
READERS = ("archive", "score", "tally")


def consumer_state(committed: int | None, acked: list[int], gaps: list[tuple[int, int]] = (),
                   ledger: CommitLedger | None = None) -> SimpleNamespace:
    tp = TP(TOPIC, 0)
    gap = defaultdict(IntervalTree)
    for begin, end in gaps:
        gap[tp].addi(begin, end)
    return SimpleNamespace(_committed_offset=defaultdict(lambda: None, {tp: committed} if committed is not None else {}),
                           _acked=defaultdict(list, {tp: list(acked)}), _acked_index=defaultdict(set, {tp: set(acked)}),
                           _gap=gap, app=SimpleNamespace(sentinel_ledger=ledger))


def new_offset(state: SimpleNamespace) -> int | None:
    faust_fixes.install()
    return Consumer._new_offset(state, TP(TOPIC, 0))


def ledger_from(start: int, finished_by: dict[str, range | list[int]]) -> CommitLedger:
    ledger = CommitLedger({TOPIC: READERS})
    ledger.reset({(TOPIC, 0): start})
    for reader, offsets in finished_by.items():
        for o in offsets:
            ledger.finish(reader, TOPIC, 0, o)
    return ledger


def test_the_commit_waits_for_every_reader_whatever_faust_acknowledged() -> None:
    # Faust counts 10..19 acknowledged (e.g. a failed take_events batch acked in its finally);
    # the score agent finished only 10..12
    ledger = ledger_from(10, {"archive": range(10, 20), "tally": range(10, 20), "score": [10, 11, 12, 15]})
    state = consumer_state(10, list(range(10, 20)), ledger=ledger)
    assert new_offset(state) == 13
    # Faust's own (unused) bookkeeping is trimmed below the commit, the rest kept
    assert state._acked[TP(TOPIC, 0)] == list(range(13, 20)) and state._acked_index[TP(TOPIC, 0)] == set(range(13, 20))
    # nothing finished by every reader: nothing to commit past the committed offset
    assert new_offset(consumer_state(10, [], ledger=ledger_from(10, {"archive": [10], "tally": [10]}))) == 10


def test_a_known_gap_in_the_log_counts_as_finished() -> None:
    ledger = ledger_from(10, {r: [12, 13] for r in READERS})
    assert new_offset(consumer_state(10, [], gaps=[(10, 12)], ledger=ledger)) == 14


def test_topics_without_a_ledger_keep_fausts_commit() -> None:
    assert new_offset(consumer_state(10, [10, 11, 12])) == 13
    ledger = CommitLedger({"other.topic": ["x"]})
    assert new_offset(consumer_state(10, [10, 11, 12], ledger=ledger)) == 13


def test_every_agent_of_the_worker_is_a_reader_of_its_topics(tmp_path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    assert app.sentinel_ledger.readers == {
        "jobs.completed": ("archive", "score", "tally"),
        "jobs.scored": ("drift", "store_scores"),
        "alerts.quality": ("notify", "store_alerts"),
        "ratings.pairwise": ("store_ratings",),
    }


def test_a_batch_body_that_raised_finishes_nothing() -> None:
    ledger = ledger_from(0, {"archive": range(3), "tally": range(3)})
    app = SimpleNamespace(sentinel_ledger=ledger)
    events = [SimpleNamespace(message=SimpleNamespace(topic=TOPIC, partition=0, offset=o)) for o in range(3)]
    with pytest.raises(RuntimeError):
        with finished(app, "score", events):
            raise RuntimeError("the sink blew up")
    assert ledger.committable(TOPIC, 0) == 0
    for ev in events:  # the re-read copies
        with finished(app, "score", [ev]):
            pass
    assert ledger.committable(TOPIC, 0) == 3

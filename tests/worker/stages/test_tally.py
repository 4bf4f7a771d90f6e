"""The live tally's expiry (worker/stages/tally.py): when a partition's newest bucket moves, that
partition's buckets older than the retention are dropped, and no other partition's, checked
against the keys recomputed from the events."""

from __future__ import annotations

from config.settings import load_settings
from conftest import make_event
from sentinel.buckets import bucket_start, live_key
from worker.stages.tally import TallyStage
from worker.stages.triage import Accepted
from worker_fakes import Event

BUCKET_S, RETENTION_S = 300, 3600


def test_each_partition_keeps_the_buckets_within_the_retention_of_its_newest() -> None:
    settings = load_settings(env={})
    table: dict = {}
    tally = TallyStage(table, settings.pricing(), BUCKET_S, RETENTION_S, lambda p: None)
    # 7 s apart in event time: 1,800 events span 3.5 hours; partition 1 stops at half of them
    events = [(make_event(i), i % 2) for i in range(1800) if i % 2 == 0 or i < 900]
    offsets = {0: 0, 1: 0}
    for start in range(0, len(events), 100):
        batch, raw = [], {}
        for event, partition in events[start:start + 100]:
            offset = offsets[partition]
            offsets[partition] += 1
            batch.append(Accepted(event, partition, offset))
            raw[(partition, offset)] = Event(b"", partition, offset)
        tally(batch, raw)
    newest = {p: max(bucket_start(e["requested_at"], BUCKET_S) for e, q in events if q == p) for p in (0, 1)}
    want = {live_key(e, p, BUCKET_S) for e, p in events
            if bucket_start(e["requested_at"], BUCKET_S) >= newest[p] - RETENTION_S}
    assert set(table) == want
    written = {live_key(e, p, BUCKET_S) for e, p in events}
    assert {k[-1] for k in want} == {"0", "1"} and len(written) > 2 * len(want)  # most buckets expired

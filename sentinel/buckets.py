"""Event-time buckets and the keys of per-bucket states (live tallies, FID moments).

A state key holds one source partition, so the offsets it remembers stay meaningful (each
partition is read in order by one worker at a time).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from sentinel.latency import LiveStats


def bucket_start(ts: datetime, bucket_s: int) -> int:
    """Epoch seconds of the start of the event-time bucket holding ``ts``."""
    epoch = int(ts.timestamp())
    return epoch - epoch % bucket_s


def live_key(event: dict[str, Any], partition: int, bucket_s: int) -> str:
    """model|niche|bucket|partition of a job's live tally."""
    return f"{event['model_id']}|{event['niche']}|{bucket_start(event['requested_at'], bucket_s)}|{partition}"


def parse_live_key(key: str) -> tuple[str, str, int, int]:
    model, niche, bucket, partition = key.rsplit("|", 3)
    return model, niche, int(bucket), int(partition)


def live_snapshot(items: Iterable[tuple[str, Any]], since_epoch_s: float) -> dict[tuple[str, str], LiveStats]:
    """Merge the live stats of every bucket that ends after ``since_epoch_s``, per model x niche."""
    merged: dict[tuple[str, str], LiveStats] = {}
    for key, value in items:
        model, niche, bucket, _ = parse_live_key(key)
        if bucket + value.get("bucket_s", 0) <= since_epoch_s:
            continue
        state = LiveStats.from_dict(value["stats"])
        merged[(model, niche)] = merged[(model, niche)].merge(state) if (model, niche) in merged else state
    return merged

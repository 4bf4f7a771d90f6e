"""Where each key of the live table (``live_stats``: model|niche|bucket|partition) belongs,
kept beside the table: the views read one window's buckets and the tally drops one partition's
expired buckets without walking, and parsing, every key the retention keeps."""

from __future__ import annotations

from typing import Any, Container

from sentinel.buckets import parse_live_key


class LiveIndex:
    """The live table's keys by bucket start and source partition, each key parsed once: a
    scrape reads the values of its window's buckets only, not every key the retention keeps
    (two days of 5-minute buckets per model x niche x partition). Each read compares the table's
    keys with the index (set operations) to pick up keys written or expired since; a bucket is
    skipped only when even the longest bucket length ends before the window: ``bucket_s`` (what
    this worker writes) or a longer one read (a key kept from an earlier setting, read when
    first seen)."""

    def __init__(self, table: Any, bucket_s: int = 0) -> None:
        self.table = table
        self.where: dict[str, tuple[int, int]] = {}  # key -> (bucket start, source partition)
        self.buckets: dict[int, set[str]] = {}
        self.longest = bucket_s

    def sync(self) -> None:
        """Index the keys written since the last call; forget those deleted."""
        keys = set(self.table.keys())
        for key in self.where.keys() - keys:
            start, _ = self.where.pop(key)
            self.buckets[start].discard(key)
            if not self.buckets[start]:
                del self.buckets[start]
        for key in keys - self.where.keys():
            _, _, start, partition = parse_live_key(key)
            self.where[key] = (start, partition)
            self.buckets.setdefault(start, set()).add(key)
            value = self.table.get(key)
            if value is not None:
                self.longest = max(self.longest, int(value.get("bucket_s", 0)))

    def items(self, partitions: Container[int], since: float = float("-inf")) -> list[tuple[str, Any]]:
        """(key, value) of ``partitions``' buckets that end after ``since``, by key."""
        self.sync()
        out = []
        for start, members in self.buckets.items():
            if start + self.longest <= since:
                continue
            for key in members:
                value = self.table.get(key) if self.where[key][1] in partitions else None
                if value is None:
                    continue
                length = int(value.get("bucket_s", 0))
                self.longest = max(self.longest, length)
                if start + length > since:
                    out.append((key, value))
        return sorted(out, key=lambda item: item[0])

    def older(self, partition: int, before: int) -> list[str]:
        """The keys of ``partition``'s buckets that start before ``before`` (epoch s)."""
        self.sync()
        return sorted(key for start, members in self.buckets.items() if start < before
                      for key in members if self.where[key][1] == partition)

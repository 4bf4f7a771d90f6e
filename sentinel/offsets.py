"""Source offsets, exact under any delivery order: what a state holds, and where a commit may go.

At-least-once delivery replays records after a crash, and Faust can hand an agent a record
*after* later ones (a re-read of one it failed to deliver; worker/delivery/overrides.py). A "last
offset applied" watermark skips such a late record for good. :class:`AppliedOffsets` instead
holds every offset below ``complete_below`` plus the set ``above`` of the ones held at or above
it. The owner raises ``complete_below`` with :meth:`settle` to the source partition's committed
offset -- everything below a commit was finished by every agent reading the partition
(:class:`CommitLedger` decides the commit), including the one that owns the state -- so
``above`` stays the short uncommitted tail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Collection, Mapping


@dataclass
class AppliedOffsets:
    complete_below: int = 0
    above: set[int] = field(default_factory=set)

    def holds(self, offset: int) -> bool:
        return offset < self.complete_below or offset in self.above

    def add(self, offset: int) -> bool:
        """Record ``offset``; False (nothing changed) if it was already held."""
        if self.holds(offset):
            return False
        self.above.add(offset)
        return True

    def settle(self, committed: int | None) -> None:
        """Every offset below ``committed`` is held (the partition's committed offset)."""
        if committed is not None and committed > self.complete_below:
            self.complete_below = committed
            self.above = {o for o in self.above if o >= committed}

    @property
    def last(self) -> int:
        """The highest offset held (-1: none)."""
        return max(self.above) if self.above else self.complete_below - 1

    def merge(self, other: "AppliedOffsets") -> "AppliedOffsets":
        """For merged read-only views (states of different keys); not for further updates."""
        return AppliedOffsets(max(self.complete_below, other.complete_below), self.above | other.above)

    def to_json(self) -> list[Any]:
        return [self.complete_below, sorted(self.above)]

    @classmethod
    def from_json(cls, value: Any) -> "AppliedOffsets":
        if isinstance(value, int):  # format 1: the last offset applied, everything below it held
            return cls(value + 1)
        complete_below, above = value
        return cls(int(complete_below), {int(o) for o in above})


@dataclass
class Frontier:
    """The offsets one reader has finished in one partition: all below ``next``, plus ``ahead``."""

    next: int
    ahead: set[int] = field(default_factory=set)

    def finish(self, offset: int) -> None:
        if offset >= self.next:
            self.ahead.add(offset)

    def advance(self) -> int:
        """Move ``next`` over the finished offsets that follow it; the new ``next``."""
        while self.next in self.ahead:
            self.ahead.discard(self.next)
            self.next += 1
        return self.next


@dataclass(frozen=True)
class Lag:
    """Why a partition's commit position has not moved."""

    offset: int  # the commit position: the first offset some reader has not finished
    readers: tuple[str, ...]  # the readers that have not finished it
    skipped: bool  # one of them finished a later offset (it was passed over: a re-read is due)
    others_ahead: bool  # another reader finished it and more
    next_finished: int | None = None  # the lowest later offset one of them finished


class CommitLedger:
    """Where each partition's consumer commit may go: the first offset that *some* reader of its
    topic has not finished.

    Several agents read one topic; a record may be committed once every one of them has
    finished it (its outputs acknowledged, its state written). Faust decides that by counting
    acknowledgements per message, and in crash tests records were committed that an agent had
    never processed (an older generation's skipped events, a failed batch acked in a
    ``finally``, a record acknowledged before one agent got it; worker/delivery/overrides.py). The
    ledger decides it from what each reader *says* it finished, so the commit cannot pass a
    record one of them never saw, whatever the cause.

    ``readers`` maps a topic to the names of the readers that must finish each of its records.
    :meth:`reset` starts each partition at its committed offset (every assignment and every
    seek back to the committed offsets: everything at or above it is read again). Offsets are
    taken to be contiguous: the topics must not be compacted or written transactionally (a gap
    in the log would hold its partition's commit for good). Faust's own "gaps" are not trusted:
    it records one wherever the offsets it *delivered* jump, which is also where it dropped
    records after a rebalance, and committed them unprocessed (a run of 7 records per partition
    in a SIGKILL run).
    """

    def __init__(self, readers: Mapping[str, Collection[str]]) -> None:
        self.readers = {topic: tuple(sorted(set(names))) for topic, names in readers.items() if names}
        self._parts: dict[tuple[str, int], dict[str, Frontier]] = {}

    def tracks(self, topic: str) -> bool:
        return topic in self.readers

    def reset(self, starts: Mapping[tuple[str, int], int]) -> None:
        """The partitions read from now on and the offset each is read from; others are forgotten."""
        self._parts = {(topic, partition): {r: Frontier(start) for r in self.readers[topic]}
                       for (topic, partition), start in starts.items() if topic in self.readers}

    def finish(self, reader: str, topic: str, partition: int, offset: int) -> None:
        """``reader`` is done with this record (a record of a partition not held is ignored:
        it was revoked, and is read again by whoever holds it)."""
        frontiers = self._parts.get((topic, partition))
        if frontiers is None:
            return
        frontier = frontiers.get(reader)
        if frontier is None:
            raise KeyError(f"{reader!r} is not a registered reader of {topic!r} ({self.readers.get(topic)})")
        frontier.finish(offset)

    def committable(self, topic: str, partition: int) -> int | None:
        """The offset a commit may move to (every reader finished everything below it); None if
        the partition is not held."""
        frontiers = self._parts.get((topic, partition))
        if not frontiers:
            return None
        return min(f.advance() for f in frontiers.values())

    def lag(self, topic: str, partition: int) -> Lag | None:
        """None when every reader has finished the same prefix (nothing held back by one of them)."""
        at = self.committable(topic, partition)
        if at is None:
            return None
        frontiers = self._parts[(topic, partition)]
        behind = tuple(r for r, f in frontiers.items() if f.next == at)
        later = [min(frontiers[r].ahead) for r in behind if frontiers[r].ahead]
        others_ahead = len(behind) < len(frontiers)
        if not later and not others_ahead:
            return None
        return Lag(at, behind, bool(later), others_ahead, min(later) if later else None)

"""Which source offsets of one partition a state holds: exact under any delivery order.

At-least-once delivery replays records after a crash, and Faust can hand an agent a record
*after* later ones (a re-read of one it failed to deliver; streams/faust_fixes.py). A "last
offset applied" watermark skips such a late record for good. :class:`AppliedOffsets` instead
holds every offset below ``complete_below`` plus the set ``above`` of the ones held at or above
it. The owner raises ``complete_below`` with :meth:`settle` to the source partition's committed
offset -- everything below a commit was acknowledged by the agent that owns the state, which
acknowledges only after updating it -- so ``above`` stays the short uncommitted tail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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

"""Running job tallies as a mergeable state with offset-based idempotence.

A tally key is only ever updated from one source partition (the key includes it), and it
records exactly which of that partition's offsets it holds (sentinel.offsets.AppliedOffsets),
so replays after a crash (at-least-once delivery) are no-ops and a record delivered late,
after later ones, is still counted once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from sentinel.offsets import AppliedOffsets


@dataclass
class JobTally:
    jobs: int = 0
    images: int = 0
    gpu_seconds: float = 0.0
    cost_usd: float = 0.0
    applied: dict[int, AppliedOffsets] = field(default_factory=dict)  # source partition -> offsets held

    def update(self, *, partition: int, offset: int, gpu_seconds: float, cost_usd: float, images: int = 1) -> bool:
        """Apply one job; returns False (and changes nothing) if this offset was applied."""
        held = self.applied.get(partition)
        if held is None:
            held = self.applied[partition] = AppliedOffsets()
        if not held.add(offset):
            return False
        self.jobs += 1
        self.images += images
        self.gpu_seconds += gpu_seconds
        self.cost_usd += cost_usd
        return True

    def settle(self, partition: int, committed: int | None) -> None:
        """Offsets of ``partition`` below ``committed`` (its committed offset) are all held."""
        if partition in self.applied:
            self.applied[partition].settle(committed)

    def last_offsets(self) -> dict[int, int]:
        """The highest offset held per source partition."""
        return {p: a.last for p, a in sorted(self.applied.items())}

    def merge(self, other: "JobTally") -> "JobTally":
        # for merged views: the merged state has seen everything either side saw
        applied = {p: held.merge(AppliedOffsets()) for p, held in self.applied.items()}  # copies
        for p, held in other.applied.items():
            applied[p] = applied[p].merge(held) if p in applied else held.merge(AppliedOffsets())
        return JobTally(self.jobs + other.jobs, self.images + other.images, self.gpu_seconds + other.gpu_seconds,
                        self.cost_usd + other.cost_usd, applied)

    def compute(self) -> dict[str, float]:
        return {
            "jobs": self.jobs,
            "images": self.images,
            "gpu_seconds": self.gpu_seconds,
            "cost_usd": self.cost_usd,
            # cost per image = mean job cost (one image per job), as in the reports
            "cost_per_image_usd": self.cost_usd / self.jobs if self.jobs else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": 2,
            "jobs": self.jobs,
            "images": self.images,
            "gpu_seconds": self.gpu_seconds,
            "cost_usd": self.cost_usd,
            "applied": {str(p): a.to_json() for p, a in sorted(self.applied.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "JobTally":
        if not data:
            return cls()
        if data.get("v") not in (1, 2):  # 1: a last offset per partition
            raise ValueError(f"unknown JobTally format {data.get('v')!r}")
        return cls(int(data["jobs"]), int(data.get("images", data["jobs"])), float(data["gpu_seconds"]), float(data["cost_usd"]),
                   {int(p): AppliedOffsets.from_json(o) for p, o in data["applied"].items()})

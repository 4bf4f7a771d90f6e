"""Running job tallies as a mergeable state with offset-based idempotence.

A tally key is only ever updated from one source partition (the key includes it), so
remembering the last applied offset per partition makes replays after a crash (at-least-once
delivery) no-ops: an update whose offset is not newer than the stored one is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass
class JobTally:
    jobs: int = 0
    images: int = 0
    gpu_seconds: float = 0.0
    cost_usd: float = 0.0
    applied: dict[int, int] = field(default_factory=dict)  # source partition -> last offset

    def update(self, *, partition: int, offset: int, gpu_seconds: float, cost_usd: float, images: int = 1) -> bool:
        """Apply one job; returns False (and changes nothing) if this offset was applied."""
        if offset <= self.applied.get(partition, -1):
            return False
        self.jobs += 1
        self.images += images
        self.gpu_seconds += gpu_seconds
        self.cost_usd += cost_usd
        self.applied[partition] = offset
        return True

    def merge(self, other: "JobTally") -> "JobTally":
        # Watermarks merge by max: the merged state has seen everything either side saw.
        applied = dict(self.applied)
        for p, off in other.applied.items():
            applied[p] = max(off, applied.get(p, -1))
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
            "v": 1,
            "jobs": self.jobs,
            "images": self.images,
            "gpu_seconds": self.gpu_seconds,
            "cost_usd": self.cost_usd,
            "applied": {str(p): o for p, o in sorted(self.applied.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "JobTally":
        if not data:
            return cls()
        if data.get("v") != 1:
            raise ValueError(f"unknown JobTally format {data.get('v')!r}")
        return cls(int(data["jobs"]), int(data.get("images", data["jobs"])), float(data["gpu_seconds"]), float(data["cost_usd"]),
                   {int(p): int(o) for p, o in data["applied"].items()})

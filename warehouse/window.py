"""The time window of a query: jobs requested in [start, end), as the SQL files' parameters."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
FAR_FUTURE = datetime(2200, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Window:
    start: datetime = EPOCH
    end: datetime = FAR_FUTURE

    @classmethod
    def quarter(cls, text: str) -> "Window":
        """``2026Q1`` -> [2026-01-01, 2026-04-01) UTC."""
        match = re.fullmatch(r"(\d{4})-?[Qq]([1-4])", text.strip())
        if not match:
            raise ValueError(f"{text!r} is not a quarter like 2026Q1")
        year, q = int(match[1]), int(match[2])
        start = datetime(year, 3 * q - 2, 1, tzinfo=timezone.utc)
        end = datetime(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1, tzinfo=timezone.utc)
        return cls(start, end)

    def params(self) -> dict[str, str]:
        fmt = "%Y-%m-%d %H:%M:%S.%f"
        return {"start": self.start.astimezone(timezone.utc).strftime(fmt)[:-3],
                "end": self.end.astimezone(timezone.utc).strftime(fmt)[:-3]}

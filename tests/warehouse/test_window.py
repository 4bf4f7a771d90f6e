"""Report windows: calendar quarters."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from warehouse.window import Window

UTC = timezone.utc


@pytest.mark.parametrize("text,start,end", [
    ("2026Q1", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)),
    ("2026q2", datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)),
    ("2026-Q3", datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)),
    ("2026Q4", datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
])
def test_quarter_windows(text: str, start: datetime, end: datetime) -> None:
    assert Window.quarter(text) == Window(start, end)


@pytest.mark.parametrize("text", ["2026Q5", "Q1", "2026", "26Q1"])
def test_bad_quarters_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="quarter"):
        Window.quarter(text)

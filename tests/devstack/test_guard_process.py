"""devstack.guard_process: a guard that cannot start is reported with its exit and output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devstack.guard_process import GuardDidNotStart, GuardProcess


def test_a_guard_that_exits_is_reported_with_its_status_and_output(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-rubric.toml"
    guard = GuardProcess({**os.environ, "HF_HUB_OFFLINE": "1"}, ["--rubric", str(missing)]).start()
    with pytest.raises(GuardDidNotStart, match=r"exited with 2: .*no-such-rubric"):
        guard.wait_ready(60)
    assert guard.proc is not None and guard.proc.poll() == 2

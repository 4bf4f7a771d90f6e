"""A child's session: every member is seen, signalled and waited for."""

from __future__ import annotations

import signal
import subprocess
import time

from devstack.process_group import group_members, poll_until, signal_group, wait_group


def test_a_group_is_signalled_and_waited_for_as_a_whole() -> None:
    # a shell with a background child: waiting for the shell alone would miss that one
    proc = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30"], start_new_session=True)
    pgid = proc.pid
    try:
        assert poll_until(lambda: len(group_members(pgid)) >= 2, time.monotonic() + 5)
        assert proc.pid in group_members(pgid)
        signal_group(pgid, signal.SIGTERM)
        assert wait_group(proc, pgid, 5.0)
        assert group_members(pgid) == [] and proc.returncode is not None
        signal_group(pgid, signal.SIGTERM)  # a group already gone is not an error
    finally:
        signal_group(pgid, signal.SIGKILL)


def test_wait_group_gives_up_at_the_timeout() -> None:
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        began = time.monotonic()
        assert not wait_group(proc, proc.pid, 0.3)
        assert time.monotonic() - began < 3
    finally:
        signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def test_poll_until() -> None:
    calls = iter([False, False, True])
    assert poll_until(lambda: next(calls), time.monotonic() + 5)
    assert not poll_until(lambda: False, time.monotonic() + 0.2)

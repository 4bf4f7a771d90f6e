"""A child's session: every member is seen, signalled and waited for; a child dies with its
parent; SIGTERM and SIGHUP stop like Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.process_group import group_members, poll_until, signal_group, stop_signals, wait_group

ROOT = Path(__file__).resolve().parents[2]


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


# a parent that starts `sleep 30` with die_with_parent, prints its pid, then waits to be killed
PARENT = """
import subprocess, sys, time
from devstack.process_group import die_with_parent
child = subprocess.Popen(["sleep", "30"], start_new_session=True, preexec_fn=die_with_parent())
print(child.pid, flush=True)
time.sleep(30)
"""


def test_a_child_dies_with_its_parent_even_on_sigkill() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    child = int(parent.stdout.readline())
    try:
        assert group_members(child) == [child]
        parent.kill()  # no handler, no finally: only the kernel can tell the child
        parent.wait()
        assert poll_until(lambda: not group_members(child), time.monotonic() + 5)
    finally:
        signal_group(child, signal.SIGKILL)
        parent.stdout.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_like_ctrl_c_then_handlers_come_back(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    with pytest.raises(KeyboardInterrupt, match=sig.name):
        with stop_signals():
            os.kill(os.getpid(), sig)
            time.sleep(5)
    assert signal.getsignal(sig) == before

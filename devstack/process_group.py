"""A child process's whole session: signal every member, wait until none is left.

Children die with their parent (``die_with_parent``), and ``stop_signals`` turns SIGTERM and
SIGHUP into the same clean stop as Ctrl-C.

A broker runs in its own session (process group), so that stopping it reaches every process it
spawned and a crash of the parent's terminal signals does not leave half of it behind. Members
are read from /proc, so zombies (a container's PID 1 may never reap reparented children) do not
count as running.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Iterator

POLL_INTERVAL = 0.1


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``.

    Reads /proc so that zombies (a container's PID 1 may never reap
    reparented children) do not count as running. Falls back to a signal-0
    probe where /proc is missing.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may contain spaces/parens.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to process group ``pgid``; a group already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def wait_group(proc: subprocess.Popen[bytes], pgid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` s for ``proc`` to exit and every member of its group to be gone."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    return poll_until(lambda: proc.poll() is not None and not group_members(pgid), deadline)


def poll_until(predicate: Callable[[], bool], deadline: float) -> bool:
    """Whether ``predicate`` became true before ``deadline`` (``time.monotonic()``), polling."""
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)


PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for Popen: the child gets ``sig`` when the process that started it dies,
    even by SIGKILL (Linux ``prctl(PR_SET_PDEATHSIG)``); ``None`` elsewhere. The signal comes
    when the *thread* that forked exits, so start children from a long-lived thread."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def preexec() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived; raised like Ctrl-C so the same ``finally`` stops the children."""


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise ``Stopped`` in the main thread, as SIGINT raises
    KeyboardInterrupt; the previous handlers come back afterwards."""
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        for sig in previous:  # a second signal must not cut the clean stop short
            signal.signal(sig, signal.SIG_IGN)
        raise Stopped(signal.Signals(signum).name)

    previous.update({sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)})
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

"""The discovery file: announced, found while its process lives, stale once it is gone, and
withdrawn only by the process that wrote it."""

from __future__ import annotations

import os
import subprocess

from devstack.discovery import StackInfo, announce, running_stack, stack_file, withdraw


def test_a_running_stack_is_found_and_withdrawn(tmp_path) -> None:
    info = StackInfo("kafka://127.0.0.1:19092", "http://127.0.0.1:16066", os.getpid())
    assert announce(tmp_path, info) == stack_file(tmp_path)
    assert running_stack(tmp_path) == info
    withdraw(tmp_path, os.getpid() + 1)  # another process's withdraw leaves it
    assert running_stack(tmp_path) == info
    withdraw(tmp_path, os.getpid())
    assert running_stack(tmp_path) is None and not stack_file(tmp_path).exists()


def test_a_file_of_a_dead_process_or_garbage_is_ignored(tmp_path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    announce(tmp_path, StackInfo("kafka://127.0.0.1:1", "http://127.0.0.1:2", gone.pid))
    assert running_stack(tmp_path) is None
    stack_file(tmp_path).write_text("{not json")
    assert running_stack(tmp_path) is None
    assert running_stack(tmp_path / "missing") is None

"""The discovery file: how a running embedded stack tells other shells where it is.

``EmbeddedStack`` writes ``<data_dir>/stack.json`` (broker URL, worker web URL, its pid) once the
worker is ready and removes it when it stops. Commands run with the same data dir and no broker
URL of their own (``sentinel replay``, ``node``, ``dlq``, ...) read it, so ``sentinel up`` in one
shell and ``sentinel replay`` in another meet without copying exports. A file whose pid is gone
is stale and ignored (a stack killed by SIGKILL cannot remove it).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

FILE_NAME = "stack.json"


@dataclass(frozen=True)
class StackInfo:
    broker_url: str
    web_url: str
    pid: int


def stack_file(data_dir: Path) -> Path:
    return Path(data_dir) / FILE_NAME


def announce(data_dir: Path, info: StackInfo) -> Path:
    """Write the discovery file atomically (a reader never sees half of it)."""
    path = stack_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(info)))
    tmp.replace(path)
    return path


def withdraw(data_dir: Path, pid: int) -> None:
    """Remove the discovery file if process ``pid`` wrote it (a newer stack's file stays)."""
    info = _read(stack_file(data_dir))
    if info is not None and info.pid == pid:
        stack_file(data_dir).unlink(missing_ok=True)


def running_stack(data_dir: Path) -> StackInfo | None:
    """The stack announced in ``data_dir``, if its process still lives."""
    info = _read(stack_file(data_dir))
    if info is None:
        return None
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return info


def _read(path: Path) -> StackInfo | None:
    try:
        data = json.loads(path.read_text())
        return StackInfo(str(data["broker_url"]), str(data["web_url"]), int(data["pid"]))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None

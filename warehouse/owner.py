"""Who holds an embedded store: the owner file beside a chDB path names the process that
opened it (pid, the start time that pid had, its URL and the token guarding its query view).
Other processes reach the store through that owner (warehouse/client.py ``RemoteWarehouse``)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Owner:
    pid: int
    url: str
    token: str
    role: str = "worker"  # "store": `sentinel store`, which serves workers too


def owner_file(chdb_path: Path) -> Path:
    return Path(str(chdb_path).rstrip("/") + ".owner.json")


def claim(chdb_path: Path, url: str, role: str = "worker", keep_token: bool = False) -> Owner:
    """Record this process as the owner of ``chdb_path``; the token guards the query view.
    ``keep_token``: reuse the token of the previous owner's file (a restarted store keeps the
    token its workers and the rating links already hold)."""
    token = _previous_token(chdb_path) if keep_token else None
    owner = Owner(pid=os.getpid(), url=url, token=token or secrets.token_urlsafe(24), role=role)
    path = owner_file(chdb_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_owner_file(path, {**owner.__dict__, "started": process_start(owner.pid)})
    return owner


def _write_owner_file(path: Path, data: dict[str, Any]) -> None:
    """Atomically, readable by this user only (it holds the token)."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    tmp.replace(path)


def process_start(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, /proc/<pid>/stat field 22): with the pid it
    names one process, so an owner file is not taken for a later process given the same pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()[19]


def _previous_token(chdb_path: Path) -> str | None:
    try:
        return str(json.loads(owner_file(chdb_path).read_text())["token"]) or None
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def release(chdb_path: Path, keep_token: bool = False) -> None:
    """Give up ownership: the file goes, or with ``keep_token`` stays with no owner (pid 0) so
    the next owner claiming with ``keep_token`` reuses the token."""
    path = owner_file(chdb_path)
    try:
        data = json.loads(path.read_text())
        if data.get("pid") != os.getpid():
            return
        if keep_token:
            _write_owner_file(path, {**data, "pid": 0, "url": ""})
        else:
            path.unlink()
    except (FileNotFoundError, ValueError):
        pass


def live_owner(chdb_path: Path) -> Owner | None:
    try:
        data = json.loads(owner_file(chdb_path).read_text())
        owner = Owner(int(data["pid"]), str(data["url"]), str(data["token"]), str(data.get("role", "worker")))
    except (FileNotFoundError, ValueError, KeyError):
        return None
    if owner.pid <= 0:
        return None  # released (pid 0 keeps only the token); never signal a process group
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return None  # stale: the worker died without cleaning up
    except PermissionError:
        pass
    started = data.get("started")
    if started is not None and process_start(owner.pid) not in (None, started):
        return None  # the owner died and its pid went to another process
    return owner

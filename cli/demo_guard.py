"""The demo's guard: a `sentinel guard` child process (tiny CLIP, rubric.toml) on a free port
with a fresh token, and the flags that make one demo node guarded with a few planted bad outputs."""

from __future__ import annotations

import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer

from cli.common import console

GUARDED_MODEL = "tiny-sd"  # the demo's guarded node (falls back to the first non-API model)
PLANT_BAD = 0.15
MAX_ATTEMPTS = 3


def guarded_model(models: list[str]) -> str | None:
    if GUARDED_MODEL in models:
        return GUARDED_MODEL
    return next((m for m in models if not m.startswith("sim-api")), None)


class DemoGuard:
    def __init__(self, data_dir: Path) -> None:
        self.token = secrets.token_urlsafe(24)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "logs" / "guard.log"
        self.proc: subprocess.Popen | None = None

    def start(self, env: dict[str, str], timeout: float = 120.0) -> "DemoGuard":
        import httpx

        from devstack.process_group import die_with_parent
        from devstack.stack import ORPHAN_SIGNAL

        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log_file:
            self.proc = subprocess.Popen([sys.executable, "-m", "cli.main", "guard", "--port", str(self.port)],
                                         env={**env, "SENTINEL_GUARD_TOKEN": self.token}, stdout=log_file,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=die_with_parent(ORPHAN_SIGNAL))
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                console.print(f"[red]demo failed:[/] the guard service did not start; see {self.log}")
                self.stop()
                raise typer.Exit(1)
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)

    def node_args(self) -> list[str]:
        return ["--guard", self.url, "--max-attempts", str(MAX_ATTEMPTS), "--plant-bad", str(PLANT_BAD)]

    def node_env(self) -> dict[str, str]:
        return {"SENTINEL_GUARD_TOKEN": self.token}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def published_events(nodes: list[tuple[Any, ...]], logs: Path) -> int | None:
    """Events the nodes published (a guarded node publishes one per attempt), once every node
    has exited with 0 and logged its count; None before that."""
    if any(proc.poll() != 0 for _, proc, _ in nodes):
        return None
    total = 0
    for model, _, _ in nodes:
        log = logs / f"node-{model}.log"
        found = re.findall(r"published (\d+) jobs", log.read_text(errors="replace")) if log.exists() else []
        if not found:
            return None
        total += int(found[-1])
    return total


def guard_env(env: dict[str, str], guard: DemoGuard | None, model: str, guarded: str | None) -> dict[str, str]:
    return {**env, **guard.node_env()} if guard is not None and model == guarded else env

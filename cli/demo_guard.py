"""The demo's guard: a `sentinel guard` child process (tiny CLIP, rubric.toml) on a free port
with a fresh token, and the flags that make one demo node guarded with a few planted bad outputs."""

from __future__ import annotations

import re
import secrets
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
    """The demo's `sentinel guard` (devstack.guard_process) with a fresh token; log in <data_dir>/logs."""

    def __init__(self, data_dir: Path) -> None:
        self.token = secrets.token_urlsafe(24)
        self.log = data_dir / "logs" / "guard.log"
        self.process: Any = None
        self.url = ""

    def start(self, env: dict[str, str], timeout: float = 120.0) -> "DemoGuard":
        from devstack.guard_process import GuardDidNotStart, GuardProcess

        self.process = GuardProcess({**env, "SENTINEL_GUARD_TOKEN": self.token}, log=self.log).start()
        self.url = self.process.url
        try:
            self.process.wait_ready(timeout)
        except GuardDidNotStart:
            console.print(f"[red]demo failed:[/] the guard service did not start; see {self.log}")
            raise typer.Exit(1) from None
        return self

    def node_args(self) -> list[str]:
        return ["--guard", self.url, "--max-attempts", str(MAX_ATTEMPTS), "--plant-bad", str(PLANT_BAD)]

    def node_env(self) -> dict[str, str]:
        return {"SENTINEL_GUARD_TOKEN": self.token}

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


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

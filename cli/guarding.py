"""The guard-mode options that `sentinel node` and `sentinel replay --live` share, and the
wiring from them to a ``GuardedNode`` (inference/guarded.py)."""

from __future__ import annotations

import os
from typing import Any, Optional

import typer

from cli.common import console

GuardOpt = typer.Option(None, "--guard", help="URL of a `sentinel guard` service: judge every image before delivery, "
                                              "regenerate a failing one (bearer token from env SENTINEL_GUARD_TOKEN).")
MaxAttemptsOpt = typer.Option(3, "--max-attempts", help="Guard mode: attempts per request (the last failing "
                                                         "attempt is not delivered).")
GuardTimeoutOpt = typer.Option(5.0, "--guard-timeout", help="Guard mode: seconds to wait for a verdict before "
                                                            "delivering unguarded (counted in the report).")
PlantBadOpt = typer.Option(0.0, "--plant-bad", help="Tests/demo: fraction of jobs whose image is made bad (blank, "
                                                    "wrong size or the previous output), chosen by seed.")


def plant(rate: float) -> Any:
    from inference.planted import PlantBad

    try:
        return PlantBad(rate) if rate else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def guarded(node: Any, guard: Optional[str], max_attempts: int, timeout_s: float) -> Any:
    """``node`` itself without ``--guard``; else the node behind a guard client."""
    if not guard:
        return node
    from inference.guard_client import TOKEN_ENV, GuardClient
    from inference.guarded import GuardedNode

    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:  # a guard started without a token accepts requests without one
        console.print(f"[yellow]{TOKEN_ENV} is not set: verdict requests carry no token[/]")
    if max_attempts < 1:
        raise typer.BadParameter(f"--max-attempts must be at least 1, got {max_attempts}")
    return GuardedNode(node, GuardClient(guard, token, timeout_s=timeout_s), max_attempts)


def guard_summary(node: Any) -> str:
    """What a guarded node reports at the end ('' for an unguarded one)."""
    if not hasattr(node, "unguarded"):
        return ""
    return (f"; guard: {node.failed_requests} request(s) failed every attempt, "
            f"{node.unguarded} event(s) delivered without a verdict (guard unavailable)")

"""Which model ids and niches the worker accepts, known before anything is published.

The worker dead-letters an event naming a model or niche outside its catalog (``unknown_model``,
``unknown_niche``; worker/stages/gate.py ``Catalog``). The catalog is built here from plain
values so that a replay (or ``dlq replay``) can tell, before publishing, which jobs the worker
will refuse and how to make it accept them: the model registry's ids, the trace models and the
demo and trace niches, plus the comma-separated ``SENTINEL_KNOWN_MODELS`` /
``SENTINEL_KNOWN_NICHES`` (``*`` accepts any).
"""

from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from inference.trace_models import NICHES as TRACE_NICHES
from inference.trace_models import TRACE_MODELS
from inference.trace_row import TraceRow
from inference.traffic import NICHE_PROMPTS

ANY = "*"


def registry_model_ids(path: Path) -> set[str]:
    """Model ids of a model registry file (models.toml); the nodes validate the entries."""
    if not path.exists():
        raise FileNotFoundError(f"model registry {path} does not exist")
    with path.open("rb") as fh:
        return set(tomllib.load(fh).get("models", {}))


def parse_ids(text: str) -> set[str]:
    """The ids of a comma-separated setting, blanks dropped."""
    return {part.strip() for part in text.split(",") if part.strip()}


@dataclass(frozen=True)
class KnownIds:
    """Model ids and niches the worker accepts; ``None`` for either accepts anything."""

    models: frozenset[str] | None
    niches: frozenset[str] | None


def known_ids(registry: Path, known_models: str = "", known_niches: str = "") -> KnownIds:
    """Registry models + the trace models + ``known_models``; demo and trace niches +
    ``known_niches``. ``*`` in either turns that check off (the registry is then not read)."""
    extra_models, extra_niches = parse_ids(known_models), parse_ids(known_niches)
    models = None
    if ANY not in extra_models:
        models = frozenset(registry_model_ids(registry) | {m.model for m in TRACE_MODELS} | extra_models)
    niches = None if ANY in extra_niches else frozenset(set(NICHE_PROMPTS) | set(TRACE_NICHES) | extra_niches)
    return KnownIds(models, niches)


@dataclass(frozen=True)
class Refusals:
    """Jobs (trace rows, dead letters) the worker will dead-letter, counted by the unknown model id
    or niche they name."""

    models: dict[str, int]
    niches: dict[str, int]

    def __bool__(self) -> bool:
        return bool(self.models or self.niches)

    def messages(self) -> list[str]:
        """One line per kind of refusal: what, how many jobs, and the setting that accepts them."""
        lines = []
        for kind, counts, setting, reason in (("model", self.models, "SENTINEL_KNOWN_MODELS", "unknown_model"),
                                              ("niche", self.niches, "SENTINEL_KNOWN_NICHES", "unknown_niche")):
            if counts:
                listed = ", ".join(f"{name!r} ({_jobs(n)})" for name, n in sorted(counts.items()))
                lines.append(f"the worker will dead-letter {_jobs(sum(counts.values()))} as {reason}: {listed}; "
                             f"to accept them, start the worker with {setting}={','.join(sorted(counts))} "
                             f"(comma-separated, added to the built-in ones; '*' accepts any {kind})")
        return lines


def _jobs(n: int) -> str:
    return f"{n:,} job{'' if n == 1 else 's'}"


def refusals(jobs: Iterable[tuple[str, str]], known: KnownIds) -> Refusals:
    """Which ``(model id, niche)`` jobs name a model or niche outside ``known``."""
    models: Counter[str] = Counter()
    niches: Counter[str] = Counter()
    for model, niche in jobs:
        if known.models is not None and model not in known.models:
            models[model] += 1
        if known.niches is not None and niche not in known.niches:
            niches[niche] += 1
    return Refusals(dict(models), dict(niches))


def row_jobs(rows: Iterable[TraceRow]) -> Iterable[tuple[str, str]]:
    """``(model id, niche)`` of each trace row, for :func:`refusals`."""
    return ((row.model, row.niche) for row in rows)

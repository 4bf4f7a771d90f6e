"""The Guard rubric: thresholds per niche (versioned, from rubric.toml) and the verdict they give.

A verdict passes when every check passes. Its 0-100 score is a weighted mean of per-check
sub-scores, ``100 * sum(w_c * s_c) / sum(w_c)`` over the checks the verdict holds: a weight-free
check (decodes, resolution, aspect, blank, clipped, repeat) gives s = 1 passed, 0 failed; the CLIP
prompt check gives s = clamp((score - clip_floor) / (clip_ceiling - clip_floor), 0, 1); the
reference check gives s = clamp(cosine, 0, 1). Weights per check key come from the rubric. The
score ranks outputs; only the checks decide pass/fail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping, Sequence

from contracts.verdict import CHECK_NAMES, Check, Verdict
from sentinel.image_checks import (Decoded, PixelStats, RecentDigests, check_aspect, check_decodes,
                                   check_not_blank, check_not_clipped, check_not_repeat, check_prompt,
                                   check_reference, check_resolution)

DEFAULT_WEIGHTS: Mapping[str, float] = {"decodes": 1.0, "resolution": 1.0, "aspect": 1.0, "blank": 1.0,
                                        "clipped": 1.0, "repeat": 1.0, "prompt": 3.0, "reference": 2.0}


class RubricError(ValueError):
    pass


@dataclass(frozen=True)
class NicheRubric:
    """Thresholds of one niche (see rubric.toml for what each means)."""

    clip_min: float = 0.0
    reference_min: float = 0.0
    size_tolerance: float = 0.0
    aspect_tolerance: float = 0.01
    blank_min_std: float = 4.0
    clipped_max_fraction: float = 0.5
    max_repeats: int = 0
    clip_floor: float = 0.0
    clip_ceiling: float = 40.0
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    def validate(self, where: str) -> "NicheRubric":
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "weights" and (not isinstance(value, (int, float)) or isinstance(value, bool)
                                        or not math.isfinite(value)):
                raise RubricError(f"{where}.{f.name}: expected a finite number, got {value!r}")
        for name in ("size_tolerance", "aspect_tolerance", "blank_min_std", "clipped_max_fraction", "max_repeats"):
            if getattr(self, name) < 0:
                raise RubricError(f"{where}.{name} must not be negative")
        if not self.clip_ceiling > self.clip_floor:
            raise RubricError(f"{where}: clip_ceiling must exceed clip_floor")
        unknown = set(self.weights) - set(CHECK_NAMES)
        if unknown:
            raise RubricError(f"{where}.weights: unknown checks {sorted(unknown)}; known {list(CHECK_NAMES)}")
        if any(not isinstance(w, (int, float)) or isinstance(w, bool) or not w >= 0 for w in self.weights.values()):
            raise RubricError(f"{where}.weights: every weight must be a number >= 0")
        return self


@dataclass(frozen=True)
class Rubric:
    version: str
    defaults: NicheRubric = field(default_factory=NicheRubric)
    niches: Mapping[str, NicheRubric] = field(default_factory=dict)
    repeat_window: int = 64  # outputs per model the repeat check remembers

    def for_niche(self, niche: str) -> NicheRubric:
        """The niche's thresholds; a niche the file does not name gets the defaults."""
        return self.niches.get(niche, self.defaults)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "Rubric":
        """Build from parsed TOML: ``version``, ``repeat_window``, ``[defaults]`` (over the built-in
        defaults) and ``[niche.<name>]`` (over ``[defaults]``); ``weights`` tables merge the same way."""
        version = data.get("version")
        if not isinstance(version, str) or not version.strip():
            raise RubricError("rubric: a non-empty string `version` is required")
        unknown = set(data) - {"version", "repeat_window", "defaults", "niche"}
        if unknown:
            raise RubricError(f"rubric: unknown keys {sorted(unknown)}")
        window = data.get("repeat_window", 64)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise RubricError("rubric: repeat_window must be an integer >= 1")
        defaults = _overlay(NicheRubric(), data.get("defaults", {}), "defaults")
        niches = {name: _overlay(defaults, table, f"niche.{name}") for name, table in data.get("niche", {}).items()}
        return cls(version.strip(), defaults, niches, window)

    def describe(self) -> dict[str, Any]:
        """Plain data for a report: the version and every niche's thresholds."""
        def plain(r: NicheRubric) -> dict[str, Any]:
            return {f.name: (dict(getattr(r, f.name)) if f.name == "weights" else getattr(r, f.name))
                    for f in fields(r)}
        return {"version": self.version, "repeat_window": self.repeat_window, "defaults": plain(self.defaults),
                "niches": {name: plain(r) for name, r in sorted(self.niches.items())}}


def _overlay(base: NicheRubric, table: Any, where: str) -> NicheRubric:
    if not isinstance(table, Mapping):
        raise RubricError(f"{where}: expected a table")
    known = {f.name for f in fields(NicheRubric)}
    unknown = set(table) - known
    if unknown:
        raise RubricError(f"{where}: unknown keys {sorted(unknown)}; known {sorted(known)}")
    changes = dict(table)
    if "weights" in changes:
        if not isinstance(changes["weights"], Mapping):
            raise RubricError(f"{where}.weights: expected a table")
        changes["weights"] = {**base.weights, **changes["weights"]}
    return replace(base, **changes).validate(where)


@dataclass(frozen=True)
class ImageFacts:
    """What the weight-free checks found (computed before the encoder runs)."""

    checks: tuple[Check, ...]


def weight_free_checks(rubric: NicheRubric, decoded: Decoded, *, media_type: str, width: int, height: int,
                       model_id: str, recent: RecentDigests) -> ImageFacts:
    """Decodes, resolution, aspect ratio, blank, clipped and repeat checks of one output; records
    its digest in ``recent`` (every judged output counts, passed or not)."""
    w, h = decoded.image.size
    stats = PixelStats.of(decoded.image)
    earlier = recent.observe(model_id, decoded.digest)
    return ImageFacts((
        check_decodes(decoded.format, media_type),
        check_resolution(w, h, width, height, rubric.size_tolerance),
        check_aspect(w, h, width, height, rubric.aspect_tolerance),
        check_not_blank(stats, rubric.blank_min_std),
        check_not_clipped(stats, rubric.clipped_max_fraction),
        check_not_repeat(earlier, int(rubric.max_repeats), recent.window),
    ))


def verdict(rubric: Rubric, niche: str, facts: ImageFacts, *, clip_prompt_score: float,
            clip_reference_score: float | None, scorer_version: str, job_id: str | None = None) -> Verdict:
    """The verdict of one output: its weight-free checks plus the CLIP checks (the reference
    check only when the request carried a reference), the score (module docstring), pass/fail."""
    r = rubric.for_niche(niche)
    checks = list(facts.checks) + [check_prompt(clip_prompt_score, r.clip_min)]
    if clip_reference_score is not None:
        checks.append(check_reference(clip_reference_score, r.reference_min))
    score = weighted_score(r, checks)
    failed = tuple(c.name for c in checks if not c.passed)
    return Verdict(not failed, score, rubric.version, scorer_version, niche, tuple(checks), failed, job_id)


def weighted_score(r: NicheRubric, checks: Sequence[Check]) -> float:
    keys = {name: key for key, name in CHECK_NAMES.items()}
    total = weight_sum = 0.0
    for c in checks:
        key = keys[c.name]
        w = float(r.weights.get(key, 0.0))
        if key == "prompt":
            s = (c.value - r.clip_floor) / (r.clip_ceiling - r.clip_floor)
        elif key == "reference":
            s = c.value
        else:
            s = 1.0 if c.passed else 0.0
        s = float(s) if s is not None and math.isfinite(s) else 0.0
        total += w * min(max(s, 0.0), 1.0)
        weight_sum += w
    return 100.0 * total / weight_sum if weight_sum > 0 else 0.0

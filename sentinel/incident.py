"""The alert lifecycle shared by the drift detectors: incidents that fire and resolve.

A detector's ``update`` returns a ``Transition`` (``firing`` / ``resolved``) exactly when its
incident changes state, so the caller publishes one alert per transition;
``Transition.to_alert()`` is a ``QualityAlert`` record (contracts/quality_alert.avsc). Incident
ids ("<model>|<niche>|<metric>#<seq>") are deterministic: a replay that re-derives a transition
gives it the same id, so downstream de-duplication (ReplacingMergeTree) holds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from typing import Any, Literal, Mapping

FIRING = "firing"
RESOLVED = "resolved"
TransitionState = Literal["firing", "resolved"]


def require_finite(name: str, value: float) -> None:
    """Raise ValueError unless ``value`` is a finite number (config validation)."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite number")


def require_int(name: str, value: int, minimum: int = 1) -> None:
    """Raise ValueError unless ``value`` is an integer (not a bool) of at least ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")


@dataclass(frozen=True)
class Transition:
    """An incident changing state: publish exactly one alert per transition."""

    state: TransitionState
    incident_id: str  # "<model>|<niche>|<metric>#<seq>": deterministic, the same on firing and resolved
    model_id: str
    niche: str
    metric: str
    seq: int  # incident sequence number of this detector, from 1
    at: float  # event time (epoch s) of the sample / window that triggered the transition
    started_at: float | None  # firing: estimated start of the drop; resolved: when it fired
    baseline: float  # baseline mean (or the windowed baseline)
    baseline_sd: float | None  # per-image sd of the baseline; None for windowed statistics
    current: float  # mean over the window that triggered (see ``window``)
    window_n: int  # samples (or windows) in that window
    samples: int  # samples (or windows) seen by the detector so far
    statistic: float  # CUSUM in baseline sigmas, or the last windowed value
    window: str  # what ``current`` summarizes, in words
    detector: str  # detector name and parameters
    reason: str = ""  # "drop detected", "recovered", "rebaselined", ...

    @property
    def relative_change(self) -> float | None:
        return (self.current - self.baseline) / abs(self.baseline) if self.baseline else None

    def to_alert(self) -> dict[str, Any]:
        """The ``QualityAlert`` record (contracts/quality_alert.avsc) for this transition."""
        return {
            "alert_id": self.incident_id,
            "model_id": self.model_id,
            "niche": self.niche,
            "metric": self.metric,
            "window": self.window,
            "baseline": float(self.baseline),
            "current": float(self.current),
            "samples": int(self.samples),
            "state": self.state,
            "detector": self.detector,
            "at": datetime.fromtimestamp(self.at, tz=timezone.utc),
        }

    def to_dict(self) -> dict[str, Any]:
        return {"v": 1, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Transition":
        if data.get("v") != 1:
            raise ValueError(f"unknown Transition format {data.get('v')!r}")
        return cls(**{f.name: data[f.name] for f in fields(cls)})


class Incidents:
    """Incident numbering and the relapse back-off, shared by both detectors."""

    def __init__(self, model_id: str, niche: str, metric: str) -> None:
        for name, value in (("model_id", model_id), ("niche", niche), ("metric", metric)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
        self.model_id, self.niche, self.metric = model_id, niche, metric
        self.seq = 0
        self.fired_at: float | None = None

    @property
    def key(self) -> str:
        return f"{self.model_id}|{self.niche}"

    @property
    def incident_id(self) -> str | None:
        return f"{self.key}|{self.metric}#{self.seq}" if self.seq else None

    def _transition(self, state: TransitionState, **kw: Any) -> Transition:
        return Transition(state=state, incident_id=f"{self.key}|{self.metric}#{self.seq}", model_id=self.model_id,
                          niche=self.niche, metric=self.metric, seq=self.seq, **kw)

    def _ids_to_dict(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "niche": self.niche, "metric": self.metric, "seq": self.seq,
                "fired_at": self.fired_at}


"""Threshold with hysteresis on a statistic computed per window (windowed FID, CMMD per niche).

The statistic of each window is compared with the niche baseline (higher is worse for
distances): the detector fires when it is beyond ``baseline + margin`` for ``m`` consecutive
windows, and resolves after ``m`` consecutive windows back inside
``baseline + resolve_fraction·margin`` (the hysteresis band); a relapse doubles the run needed
to resolve, as in the CUSUM detector. ``update`` takes the window id and ignores any window not
newer than the last applied, so a replay after a crash neither counts a window twice nor fires
twice.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import numpy as np

from sentinel.incident import FIRING, RESOLVED, Incidents, Transition, require_finite, require_int


@dataclass(frozen=True)
class WindowedConfig:
    """Parameters of ``WindowedThresholdDetector``.

    baseline: the statistic's good value (e.g. FID of a known-good window vs the reference);
      None = the median of the first ``baseline_windows`` windows.
    margin_abs, margin_rel: the alarm margin is max(margin_abs, margin_rel·|baseline|).
    m: consecutive windows beyond the margin to fire, and back inside the band to resolve.
    resolve_fraction: resolving needs the statistic within baseline + resolve_fraction·margin.
    higher_is_worse: True for distances (FID, CMMD); False for scores where a drop is bad.
    max_resolve_m: cap of the relapse back-off (windows in the band needed to resolve).
    cooldown_windows: an incident firing within this many windows of the last resolution is
      a relapse: it needs twice the last resolving run to resolve.
    Baselines near 0 (CMMD can be) need ``margin_abs``: a relative margin of ~0 fires on noise.
    """

    baseline: float | None = None
    baseline_windows: int = 5
    margin_abs: float = 0.0
    margin_rel: float = 0.25
    m: int = 3
    resolve_fraction: float = 0.5
    higher_is_worse: bool = True
    max_resolve_m: int = 24
    cooldown_windows: int = 12

    def __post_init__(self) -> None:
        if self.baseline is not None:
            require_finite("baseline", self.baseline)
        require_int("baseline_windows", self.baseline_windows)
        require_int("m", self.m)
        require_int("max_resolve_m", self.max_resolve_m, self.m)
        require_int("cooldown_windows", self.cooldown_windows, 0)
        for name in ("margin_abs", "margin_rel", "resolve_fraction"):
            require_finite(name, getattr(self, name))
        if self.margin_abs < 0 or self.margin_rel < 0 or (self.margin_abs == 0 and self.margin_rel == 0):
            raise ValueError("margins must be >= 0 and not both 0")
        if not 0 <= self.resolve_fraction <= 1:
            raise ValueError(f"resolve_fraction={self.resolve_fraction} must be in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "WindowedConfig":
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


class WindowedThresholdDetector(Incidents):
    """Threshold with hysteresis on a statistic computed per window (FID, CMMD per niche)."""

    def __init__(self, model_id: str, niche: str, metric: str, config: WindowedConfig | None = None) -> None:
        super().__init__(model_id, niche, metric)
        self.config = config or WindowedConfig()
        self.last_window: int | None = None  # id of the last applied window (e.g. its start, epoch s)
        self.n = 0
        self.learning: list[float] = []
        self.baseline: float | None = self.config.baseline
        self.state = "ok" if self.baseline is not None else "warmup"
        self.streak: list[float] = []  # values of the current run beyond (ok) / inside (firing) the band
        self.streak_t0 = 0.0
        self.need_m = self.config.m
        self.resolved_n: int | None = None  # self.n at the last resolution (for the cooldown)

    @property
    def margin(self) -> float:
        return max(self.config.margin_abs, self.config.margin_rel * abs(self.baseline or 0.0))

    def _worse_than(self, value: float, margin: float) -> bool:
        assert self.baseline is not None
        return value > self.baseline + margin if self.config.higher_is_worse else value < self.baseline - margin

    def describe(self) -> str:
        c = self.config
        return (f"windowed-threshold baseline={self.baseline:g} margin={self.margin:g} m={c.m} "
                f"resolve_fraction={c.resolve_fraction:g} {'higher' if c.higher_is_worse else 'lower'}_is_worse")

    def update(self, value: float, t: float, *, window: int) -> Transition | None:
        """Apply one window's statistic; windows not newer than the last applied are ignored."""
        if self.last_window is not None and window <= self.last_window:
            return None
        self.last_window = window
        value = float(value)
        if not math.isfinite(value):
            return None
        self.n += 1
        c = self.config
        if self.state == "warmup":
            self.learning.append(value)
            if len(self.learning) >= c.baseline_windows:
                self.baseline = float(np.median(self.learning))
                self.learning, self.state = [], "ok"
            return None

        if self.state == "ok":
            if self._worse_than(value, self.margin):
                if not self.streak:
                    self.streak_t0 = t
                self.streak.append(value)
                if len(self.streak) >= c.m:
                    return self._fire(t, value)
            else:
                self.streak = []
            return None

        if self._worse_than(value, c.resolve_fraction * self.margin):  # relapse: back off
            if 2 * len(self.streak) > self.need_m:
                self.need_m = min(c.max_resolve_m, 2 * len(self.streak))
            self.streak = []
            return None
        self.streak.append(value)
        if len(self.streak) >= self.need_m:
            return self._resolve(t, value)
        return None

    def _fire(self, t: float, value: float) -> Transition:
        self.seq += 1
        self.fired_at = t
        c = self.config
        relapse = self.resolved_n is not None and self.n - self.resolved_n <= c.cooldown_windows
        n = len(self.streak)
        tr = self._transition(
            FIRING, at=t, started_at=self.streak_t0, baseline=float(self.baseline), baseline_sd=None,
            current=sum(self.streak) / n, window_n=n, samples=self.n, statistic=value,
            window=f"last {n} windows beyond {self.baseline:g}{'+' if c.higher_is_worse else '-'}{self.margin:g}",
            detector=self.describe(), reason="relapse within cooldown" if relapse else "threshold exceeded")
        self.state, self.streak = FIRING, []
        self.need_m = min(c.max_resolve_m, 2 * self.need_m) if relapse else c.m
        return tr

    def _resolve(self, t: float, value: float) -> Transition:
        n = len(self.streak)
        tr = self._transition(
            RESOLVED, at=t, started_at=self.fired_at, baseline=float(self.baseline), baseline_sd=None,
            current=sum(self.streak) / n, window_n=n, samples=self.n, statistic=value,
            window=f"last {n} windows back within the band", detector=self.describe(), reason="recovered")
        self.state, self.streak, self.resolved_n = "ok", [], self.n
        return tr

    def compute(self) -> dict[str, Any]:
        return {"state": self.state, "windows": self.n, "baseline": self.baseline,
                "margin": self.margin if self.baseline is not None else None, "streak": len(self.streak),
                "incident_id": self.incident_id if self.state == FIRING else None}

    def to_dict(self) -> dict[str, Any]:
        return {"v": 1, **self._ids_to_dict(), "config": self.config.to_dict(), "last_window": self.last_window,
                "n": self.n, "learning": list(self.learning), "baseline": self.baseline, "state": self.state,
                "streak": list(self.streak), "streak_t0": self.streak_t0, "need_m": self.need_m,
                "resolved_n": self.resolved_n}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], config: WindowedConfig | None = None) -> "WindowedThresholdDetector":
        if data.get("v") != 1:
            raise ValueError(f"unknown WindowedThresholdDetector format {data.get('v')!r}")
        d = cls(data["model_id"], data["niche"], data["metric"], config or WindowedConfig.from_dict(data["config"]))
        d.seq, d.fired_at = int(data["seq"]), data["fired_at"]
        d.last_window = None if data["last_window"] is None else int(data["last_window"])
        d.n, d.state = int(data["n"]), str(data["state"])
        d.learning = [float(v) for v in data["learning"]]
        d.baseline = None if data["baseline"] is None else float(data["baseline"])
        d.streak = [float(v) for v in data["streak"]]
        d.streak_t0, d.need_m = float(data["streak_t0"]), int(data["need_m"])
        d.resolved_n = None if data["resolved_n"] is None else int(data["resolved_n"])
        if config is not None and config.baseline is not None:  # an explicit new baseline wins
            d.baseline, d.learning = float(config.baseline), []
            if d.state == "warmup":
                d.state = "ok"
        return d

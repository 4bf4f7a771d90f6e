"""The windowed threshold detector on FID-like window statistics: fire, resolve, no storms, replays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sentinel.incident import Transition
from sentinel.windowed import WindowedConfig, WindowedThresholdDetector

T0 = 1_767_600_000.0  # event time of the first window (epoch s); one window every 5 minutes


def states(transitions: list[tuple[int, Transition]]) -> list[str]:
    return [t.state for _, t in transitions]


def wdetector(**kw) -> WindowedThresholdDetector:
    return WindowedThresholdDetector("flux-dev", "headshot", "fid", WindowedConfig(**kw))


def wfeed(det: WindowedThresholdDetector, values, start: int = 0) -> list[tuple[int, Transition]]:
    out = []
    for i, v in enumerate(values, start):
        tr = det.update(float(v), T0 + 300 * i, window=i)
        if tr is not None:
            out.append((i, tr))
    return out


def test_windowed_fires_after_m_windows_and_resolves_after_m_back() -> None:
    rng = np.random.default_rng(0)
    fid = 20 + rng.normal(0, 0.8, 60)
    fid[20:40] += 10  # a broken checkpoint: FID 30 > 20 + 25%
    det = wdetector(baseline=20.0)
    trs = wfeed(det, fid)
    assert states(trs) == ["firing", "resolved"]
    (i_fire, fire), (i_res, res) = trs
    assert i_fire == 22 and i_res == 42  # m = 3 consecutive windows each way
    assert fire.current == pytest.approx(30, abs=1.5) and fire.window_n == 3 and fire.baseline == 20.0
    assert fire.incident_id == res.incident_id == "flux-dev|headshot|fid#1"


def test_windowed_hovering_at_the_threshold_is_one_incident() -> None:
    rng = np.random.default_rng(1)
    fid = np.concatenate([20 + rng.normal(0, 0.5, 10),  # good
                          25 + rng.normal(0, 1.0, 200),  # hovering around the alarm line (25)
                          20 + rng.normal(0, 0.5, 30)])  # good again
    trs = wfeed(wdetector(baseline=20.0), fid)
    assert states(trs) == ["firing", "resolved"], trs
    assert trs[1][0] >= 210


def test_windowed_alternating_windows_do_not_storm() -> None:
    fid = [20.0] * 5 + [30.0, 20.0] * 50 + [20.0] * 10  # never 3 in a row beyond
    assert wfeed(wdetector(baseline=20.0), fid) == []
    fid = [20.0] * 5 + [30.0] * 3 + [21.0, 21.0, 26.0] * 30 + [20.0] * 40  # relapses keep it open
    trs = wfeed(wdetector(baseline=20.0), fid)
    assert states(trs) == ["firing", "resolved"] and trs[1][0] >= 5 + 3 + 90


def test_windowed_learns_baseline_lower_is_worse_and_round_trips() -> None:
    # a score where a drop is bad; baseline = median of the first 5 windows; absolute margin
    values = [70, 71, 69, 70, 72] + [70] * 5 + [60] * 4 + [70] * 6
    whole = wdetector(higher_is_worse=False, margin_abs=5.0, margin_rel=0.0)
    expected = wfeed(whole, values)
    assert states(expected) == ["firing", "resolved"] and expected[0][1].baseline == 70.0
    first = wdetector(higher_is_worse=False, margin_abs=5.0, margin_rel=0.0)
    got = wfeed(first, values[:12])
    restored = WindowedThresholdDetector.from_dict(json.loads(json.dumps(first.to_dict())))
    got += wfeed(restored, values[12:], start=12)
    assert got == expected and restored.to_dict() == whole.to_dict()
    # replayed windows are ignored
    assert wfeed(restored, values) == [] and restored.to_dict() == whole.to_dict()


@pytest.mark.parametrize("bad", [dict(margin_rel=0.0), dict(m=0), dict(resolve_fraction=1.5),
                                 dict(baseline=float("inf")), dict(margin_abs=-1.0)])
def test_windowed_config_is_validated(bad: dict) -> None:
    with pytest.raises(ValueError):
        WindowedConfig(**bad)

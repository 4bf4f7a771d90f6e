"""sentinel.drift is one import for the detectors: the same objects as their own modules."""

from __future__ import annotations

import sentinel.drift as drift
from sentinel import cusum, incident, windowed


def test_drift_re_exports_the_detectors_and_their_records() -> None:
    assert drift.CusumDriftDetector is cusum.CusumDriftDetector and drift.DriftConfig is cusum.DriftConfig
    assert drift.WindowedThresholdDetector is windowed.WindowedThresholdDetector
    assert drift.WindowedConfig is windowed.WindowedConfig
    assert drift.Transition is incident.Transition
    assert set(drift.__all__) <= set(dir(drift))

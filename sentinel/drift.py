"""Quality-drift detectors per (model, niche), one import for the stream and its config.

``CusumDriftDetector`` (sentinel/cusum.py) watches per-image signals such as the CLIP
alignment; ``WindowedThresholdDetector`` (sentinel/windowed.py) watches statistics computed per
window, such as FID and CMMD. Both report incidents as ``Transition`` records
(sentinel/incident.py), one alert per state change.
"""

from sentinel.cusum import CusumDriftDetector, DriftConfig
from sentinel.incident import FIRING, RESOLVED, Transition, TransitionState
from sentinel.windowed import WindowedConfig, WindowedThresholdDetector

__all__ = [
    "FIRING", "RESOLVED", "CusumDriftDetector", "DriftConfig", "Transition", "TransitionState",
    "WindowedConfig", "WindowedThresholdDetector",
]

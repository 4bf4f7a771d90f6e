"""The incident record: a transition is a QualityAlert, round-trips, and carries a stable id."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sentinel.cusum import CusumDriftDetector
from sentinel.incident import Incidents, Transition

MEAN, SD = 28.0, 3.5  # simulated per-image CLIP alignment, as in test_cusum.py
DROP = 0.10  # relative
T0 = 1_767_600_000.0  # event time of the first image (epoch s); one image per second


def cusum_transitions(seed: int) -> list[Transition]:
    """Transitions of a CUSUM detector over 3,000 images whose mean drops 10% in [1000, 2000)."""
    x = MEAN + SD * np.random.default_rng(seed).standard_normal(3000)
    x[1000:2000] -= DROP * MEAN
    det = CusumDriftDetector("flux-dev", "headshot", "clip_prompt_score")
    return [tr for i, v in enumerate(x.tolist()) if (tr := det.update(v, T0 + i, partition=0, offset=i))]


def test_transition_is_a_quality_alert_and_round_trips() -> None:
    from contracts.codec import AvroCodec

    trs = cusum_transitions(1)
    codec = AvroCodec("QualityAlert")
    for tr in trs:
        assert Transition.from_dict(json.loads(json.dumps(tr.to_dict()))) == tr
        decoded = codec.decode(codec.encode(tr.to_alert()))
        assert decoded["alert_id"] == tr.incident_id and decoded["state"] == tr.state
        assert decoded["model_id"] == "flux-dev" and decoded["niche"] == "headshot"
        assert decoded["at"].timestamp() == pytest.approx(tr.at)
    assert trs[0].relative_change == pytest.approx(-DROP, abs=0.05)


def test_transition_refuses_an_unknown_format() -> None:
    data = cusum_transitions(1)[0].to_dict()
    with pytest.raises(ValueError):
        Transition.from_dict({**data, "v": 2})


def test_incident_ids_are_numbered_per_model_niche_and_metric() -> None:
    incidents = Incidents("flux-dev", "headshot", "fid")
    assert incidents.key == "flux-dev|headshot" and incidents.incident_id is None
    incidents.seq = 2
    assert incidents.incident_id == "flux-dev|headshot|fid#2"
    for bad in [("", "headshot", "fid"), ("flux-dev", "", "fid"), ("flux-dev", "headshot", "")]:
        with pytest.raises(ValueError):
            Incidents(*bad)

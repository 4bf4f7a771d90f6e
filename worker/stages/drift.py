"""Quality-drift detectors fed by stored scores: one CUSUM detector per model x niche on the
CLIP prompt score, kept in a changelog-backed Faust table, one write per detector per batch.

``jobs.scored`` is keyed by model|niche, so each detector is fed in order from one partition,
and its changelog goes to that partition (its last event made current).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from sentinel.cusum import CusumDriftDetector, DriftConfig
from worker.delivery.overrides import make_current
from worker.stages.table_states import TableStates

log = logging.getLogger(__name__)

DRIFT_METRIC = "clip_prompt_score"


class DriftStage:
    def __init__(self, table: Any, config: DriftConfig, scorer_version: str) -> None:
        self.config = config
        self.scorer_version = scorer_version
        self.states = TableStates(table, lambda stored: CusumDriftDetector.from_dict(stored, config=config)
                                  if stored else None)

    def forget(self) -> None:
        self.states.forget()

    def update(self, scores: Sequence[tuple[Any, dict[str, Any]]]) -> tuple[list[dict[str, Any]], dict[str, tuple]]:
        """Feed (Faust event, decoded JobScored) pairs; return the alerts that fired or resolved
        (in order) and the changed detectors, to :meth:`write` once the alerts are delivered."""
        changed: dict[str, tuple[CusumDriftDetector, Any]] = {}
        alerts: list[dict[str, Any]] = []
        for ev, value in scores:
            if value["scorer_version"] != self.scorer_version:
                continue  # rescoring under another version never moves the live detectors
            key = f"{value['model_id']}|{value['niche']}|{DRIFT_METRIC}"
            detector = changed[key][0] if key in changed else self.states.get(key)
            if detector is None:  # the first score of this model x niche
                detector = CusumDriftDetector(value["model_id"], value["niche"], DRIFT_METRIC, self.config)
            transition = detector.update(value[DRIFT_METRIC], value["scored_at"].timestamp(),
                                         partition=ev.message.partition, offset=ev.message.offset)
            changed[key] = (detector, ev)
            if transition is not None:
                alert = transition.to_alert()
                log.warning("quality drift %s: %s/%s %s %.2f vs baseline %.2f", alert["state"], alert["model_id"],
                            alert["niche"], alert["metric"], alert["current"], alert["baseline"])
                alerts.append(alert)
        return alerts, changed

    def write(self, changed: dict[str, tuple]) -> None:
        for key, (detector, ev) in changed.items():
            make_current(ev)
            self.states.put(key, detector, detector.to_dict())

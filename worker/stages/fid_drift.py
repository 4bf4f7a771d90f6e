"""FID drift fed by the score path: one ``FidDriftTracker`` per model x niche (changelog-backed
Faust table, key ``model|niche|fid``), moved by the event time of each JobScored and fed the
stored per-bucket FID moments (states + tail rows, warehouse/moment_reads.py) of the buckets
that closed -- never a re-encode. ``jobs.scored`` is keyed by model|niche, so one worker owns each tracker.

Four steps, so the event loop never waits on ClickHouse: ``observe`` (on the loop: table
reads), ``fetch`` (blocking, changes nothing: moments and reference queries; run it in the
sink thread until it succeeds), ``apply`` (FID and the detectors; in the sink thread too, an
eigen-decomposition per window), ``write`` (on the loop, after the alerts are delivered).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Sequence

from sentinel.fid import FeatureMoments
from sentinel.fid_drift import FID_METRIC, FidDriftConfig, FidDriftTracker
from worker.delivery.overrides import make_current
from worker.stages.table_states import TableStates

log = logging.getLogger(__name__)

# (scorer_version, model, niche, start, end) -> [(bucket start, moments)]
LoadBuckets = Callable[[str, str, str, int, int], "list[tuple[int, FeatureMoments]]"]
References = Callable[[str], "FeatureMoments | None"]  # niche -> reference moments (None: no set)
Inputs = tuple[int, "list[tuple[int, FeatureMoments]]", "FeatureMoments | None"]  # end, buckets, reference


class ReferenceCache:
    """The niches' reference moments, re-read every ``ttl_s`` (a newly built set is picked up)."""

    def __init__(self, load: Callable[[], dict[str, FeatureMoments]], ttl_s: float = 300.0) -> None:
        self.load, self.ttl_s = load, ttl_s
        self._refs: dict[str, FeatureMoments] = {}
        self._at = -float("inf")
        self._lock = threading.Lock()

    def __call__(self, niche: str) -> FeatureMoments | None:
        with self._lock:
            if time.monotonic() - self._at > self.ttl_s:
                self._refs, self._at = self.load(), time.monotonic()
            return self._refs.get(niche)


class FidDriftStage:
    def __init__(self, table: Any, config: FidDriftConfig, scorer_version: str, load_buckets: LoadBuckets,
                 references: References) -> None:
        self.config = config
        self.scorer_version = scorer_version
        self.load_buckets = load_buckets
        self.references = references
        self.states = TableStates(table, lambda stored: FidDriftTracker.from_dict(stored, config=config)
                                  if stored else None)

    def forget(self) -> None:
        self.states.forget()

    def observe(self, scores: Sequence[tuple[Any, dict[str, Any]]]) -> dict[str, tuple[FidDriftTracker, Any]]:
        """Move each model x niche's event time; return the changed trackers (and their last event)."""
        changed: dict[str, tuple[FidDriftTracker, Any]] = {}
        for ev, value in scores:
            if value["scorer_version"] != self.scorer_version:
                continue  # rescoring under another version never moves the live detectors
            key = f"{value['model_id']}|{value['niche']}|{FID_METRIC}"
            tracker = changed[key][0] if key in changed else self.states.get(key)
            if tracker is None:
                tracker = FidDriftTracker(value["model_id"], value["niche"], self.config)
            t = value.get("requested_at") or value["scored_at"]  # records written before requested_at existed
            tracker.observe(t.timestamp())
            changed[key] = (tracker, ev)
        return changed

    def fetch(self, changed: dict[str, tuple[FidDriftTracker, Any]]) -> dict[str, Inputs]:
        """Blocking, changes nothing (retry it as a whole): each due tracker's closed range, its
        per-bucket moments and the niche's reference moments."""
        inputs = {}
        for key, (tracker, _) in changed.items():
            due = tracker.due()
            if due is not None:
                det = tracker.detector
                reference = self.references(det.niche)
                # without a reference set the tracker skips the range: its moments are not read
                buckets = self.load_buckets(self.scorer_version, det.model_id, det.niche, *due) \
                    if reference is not None and reference.n >= 2 else []
                inputs[key] = (due[1], buckets, reference)
        return inputs

    def apply(self, changed: dict[str, tuple[FidDriftTracker, Any]], inputs: dict[str, Inputs]) -> list[dict[str, Any]]:
        """Feed the fetched buckets to the trackers; return the alerts, in order."""
        alerts = []
        for key, (end, buckets, reference) in inputs.items():
            for tr in changed[key][0].apply(buckets, end, reference):
                alert = tr.to_alert()
                log.warning("FID drift %s: %s/%s fid %.4g vs baseline %.4g", alert["state"], alert["model_id"],
                            alert["niche"], alert["current"], alert["baseline"])
                alerts.append(alert)
        return alerts

    def write(self, changed: dict[str, tuple[FidDriftTracker, Any]]) -> None:
        for key, (tracker, ev) in changed.items():
            make_current(ev)
            self.states.put(key, tracker, tracker.to_dict())

"""FID drift per model x niche from the stored per-bucket FID moments, never from re-encoding.

The worker keeps each image's feature moments per event-time bucket (warehouse/moments.py; read back by warehouse/moment_reads.py).
``FidDriftTracker`` turns closed buckets into windows and feeds each window's FID against the
niche's reference set to a ``WindowedThresholdDetector`` (sentinel/windowed.py), so FID drift
fires and resolves like the CLIP detector: one ``Transition`` per state change.

* Event time moves the tracker: ``observe(t)`` with each image's requested_at (the moment
  bucket it went into). A bucket is closed once event time passed its end by ``grace_s``
  (moments of other partitions arrive a little later); ``due()`` names the closed range not
  yet consumed.
* ``apply(buckets, reference)`` takes that range's per-bucket moments (all source partitions
  merged) in bucket order. Consecutive buckets merge into one window until it holds
  ``min_images`` images, so every window's FID has a comparable small-sample bias; a tail with
  fewer images stays pending and is read again with the next closed buckets.
* The detector ignores a window id (its first bucket) not newer than the last applied, so a
  replayed batch neither counts a window twice nor fires twice.

State (``to_dict``) is small (no moments): detector, watermark, the first unconsumed bucket.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Sequence

from sentinel.fid import FeatureMoments, fid
from sentinel.incident import Transition, require_int
from sentinel.windowed import WindowedConfig, WindowedThresholdDetector

FID_METRIC = "fid"
MAX_WINDOWS_KEPT = 256  # evaluated windows kept in memory (for inspection; not serialized)


@dataclass(frozen=True)
class FidDriftConfig:
    """min_images: images a window needs (whole buckets merge until reached);
    grace_s: event-time seconds past a bucket's end before it counts as closed;
    detector: the windowed threshold on each window's FID (baseline = median of the first
    ``baseline_windows`` windows unless given; margin max(margin_abs, margin_rel·baseline))."""

    bucket_s: int = 3600
    min_images: int = 200
    grace_s: int = 60
    detector: WindowedConfig = field(default_factory=WindowedConfig)

    def __post_init__(self) -> None:
        require_int("bucket_s", self.bucket_s)
        require_int("min_images", self.min_images, 2)
        require_int("grace_s", self.grace_s, 0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "detector": self.detector.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FidDriftConfig":
        kw = {f.name: data[f.name] for f in fields(cls) if f.name in data and f.name != "detector"}
        return cls(**kw, detector=WindowedConfig.from_dict(data.get("detector", {})))


@dataclass(frozen=True)
class FidWindow:
    """One evaluated window: buckets [start, end), its image count and FID."""

    start: int
    end: int
    images: int
    fid: float


def _bucket(t: float, bucket_s: int) -> int:
    epoch = int(t)
    return epoch - epoch % bucket_s


class FidDriftTracker:
    """Closed buckets -> windows of at least ``min_images`` -> FID -> windowed detector."""

    def __init__(self, model_id: str, niche: str, config: FidDriftConfig | None = None) -> None:
        self.config = config or FidDriftConfig()
        self.detector = WindowedThresholdDetector(model_id, niche, FID_METRIC, self.config.detector)
        self.watermark: float | None = None  # newest event time seen (epoch s)
        self.next_bucket: int | None = None  # first bucket not yet consumed into a window
        self.windows: list[FidWindow] = []  # the last windows evaluated by this object (not serialized)

    def observe(self, t: float) -> None:
        """One image's event time (epoch s, its requested_at)."""
        if self.watermark is None or t > self.watermark:
            self.watermark = float(t)
        if self.next_bucket is None:  # images of older buckets seen later are not windowed
            self.next_bucket = _bucket(t, self.config.bucket_s)

    def due(self) -> tuple[int, int] | None:
        """[start, end) of closed buckets not consumed yet (epoch s of bucket starts), or None."""
        if self.watermark is None or self.next_bucket is None:
            return None
        end = _bucket(self.watermark - self.config.grace_s, self.config.bucket_s)
        return (self.next_bucket, end) if end > self.next_bucket else None

    def apply(self, buckets: Sequence[tuple[int, FeatureMoments]], end: int,
              reference: FeatureMoments | None) -> list[Transition]:
        """Consume the closed range up to ``end`` given its per-bucket moments (any order, empty
        buckets may be absent); return the detector's transitions. Without a reference set the
        range is skipped (no FID without one)."""
        if reference is None or reference.n < 2:
            self.next_bucket = end
            return []
        out: list[Transition] = []
        pending, start = FeatureMoments(), None
        for b, moments in sorted(buckets, key=lambda x: x[0]):
            if b >= end or moments.n == 0:
                continue
            start = b if start is None else start
            pending = pending.merge(moments)
            if pending.n >= self.config.min_images:
                window_end = b + self.config.bucket_s
                value = fid(pending, reference)
                self.windows = [*self.windows[-(MAX_WINDOWS_KEPT - 1):], FidWindow(start, window_end, pending.n, value)]
                tr = self.detector.update(value, float(window_end), window=start)
                if tr is not None:
                    out.append(tr)
                pending, start = FeatureMoments(), None
        self.next_bucket = end if start is None else start
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"v": 1, "config": self.config.to_dict(), "detector": self.detector.to_dict(),
                "watermark": self.watermark, "next_bucket": self.next_bucket}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], config: FidDriftConfig | None = None) -> "FidDriftTracker":
        if data.get("v") != 1:
            raise ValueError(f"unknown FidDriftTracker format {data.get('v')!r}")
        cfg = config or FidDriftConfig.from_dict(data["config"])
        det = data["detector"]
        t = cls(det["model_id"], det["niche"], cfg)
        t.detector = WindowedThresholdDetector.from_dict(det, config=cfg.detector)
        t.watermark = data["watermark"]
        t.next_bucket = data["next_bucket"]
        return t

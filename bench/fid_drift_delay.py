"""FID drift detection delay and false alarms, measured on the pure tracker (sentinel/fid_drift.py).

    python bench/fid_drift_delay.py [--seeds 10]

Unit-norm 64-d embeddings like the tiny CLIP's (normalize(2·mu + A z)); a shift adds a unit
vector to the mean (the window FID about doubles); 50 images per one-minute bucket, windows of
200 images, the default thresholds (baseline 5 windows, margin 25%, m = 3, resolve band 50%).
Per seed and shift offset (0-3 buckets into a window): images from the shift's start to the
firing window's end, and from the shift's end to the resolving window's end; then 20,000
stationary images per seed for false alarms. Prints the ranges and the documented bound
(m + 1) x min_images + one bucket.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sentinel.fid import FeatureMoments  # noqa: E402
from sentinel.fid_drift import FidDriftConfig, FidDriftTracker  # noqa: E402

D, BUCKET_S, PER_BUCKET = 64, 60, 50
CONFIG = FidDriftConfig(bucket_s=BUCKET_S, min_images=200, grace_s=5)


def run(seed: int, shift: range, n_buckets: int) -> list:
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=D)
    mu /= np.linalg.norm(mu)
    a = rng.normal(size=(D, D)) / np.sqrt(D)

    def images(n: int, shifted: bool) -> np.ndarray:
        x = 2 * (mu + (np.eye(D)[0] if shifted else 0)) + rng.normal(size=(n, D)) @ a.T
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    reference = FeatureMoments.from_features(images(2000, False))
    tracker, buckets, out = FidDriftTracker("m", "n", CONFIG), {}, []
    for b in range(n_buckets):
        buckets[b * BUCKET_S] = FeatureMoments.from_features(images(PER_BUCKET, b in shift))
        tracker.observe(b * BUCKET_S)
        tracker.observe(b * BUCKET_S + BUCKET_S - 1)
        due = tracker.due()
        if due is not None:
            got = [(k, m) for k, m in buckets.items() if due[0] <= k < due[1]]
            out += [(b, tr) for tr in tracker.apply(got, due[1], reference)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    fire, resolve, counts = [], [], []
    for seed in range(args.seeds):
        for offset in range(4):
            shift = range(40 + offset, 70 + offset)
            events = run(seed, shift, 140)
            counts.append(len(events))
            states = [tr.state for _, tr in events]
            if states != ["firing", "resolved"]:
                continue
            fire.append(int(events[0][1].at) // BUCKET_S * PER_BUCKET - shift.start * PER_BUCKET)
            resolve.append(int(events[1][1].at) // BUCKET_S * PER_BUCKET - shift.stop * PER_BUCKET)
    alarms = sum(len(run(1000 + s, range(0), 20_000 // PER_BUCKET)) for s in range(args.seeds))
    bound = (CONFIG.detector.m + 1) * CONFIG.min_images + PER_BUCKET
    print(f"runs: {len(counts)}; exactly one incident that fired and resolved: {len(fire)}/{len(counts)}")
    print(f"fired after {min(fire)}–{max(fire)} images of the shifted distribution (documented bound {bound})")
    print(f"resolved {min(resolve)}–{max(resolve)} images after the shift ended")
    print(f"false alarms over {args.seeds} x 20,000 stationary images: {alarms}")


if __name__ == "__main__":
    main()

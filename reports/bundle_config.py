"""``config.json`` of a benchmark bundle: everything besides the data that fixed the report's numbers.

Sections: ``report`` (window, requested scorer version, bootstrap resamples/seed/cap, CMMD
sample size: what ``reports.report.benchmark`` was called with), ``rubric`` (composite weights,
the CLIP range mapped to 0-100, and -- informational, the numbers used are the reference rows in
``data/reference_sets.parquet`` -- the FID anchors per niche), ``pricing`` (the pricing file's
content), ``drift`` (the drift detectors' thresholds in force at export) and ``scorer`` (the
scorer version the report's FID/CMMD used and what identifies its weights: the sha256 of the
checkpoint file, or for the seeded tiny CLIP its seed and the sha256 of its initialized
weights). ``report_inputs`` turns the file back into the arguments of ``benchmark``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from sentinel.bootstrap import BootstrapConfig
from sentinel.clip_spec import ClipSpec
from sentinel.composite import CompositeWeights, QualityConfig
from sentinel.cost import Pricing
from warehouse.window import Window


def bundle_config(*, window: Window, scorer_version: str, pricing: Pricing, quality: QualityConfig,
                  bootstrap: BootstrapConfig, report: Mapping[str, Any], drift: Mapping[str, Any] | None,
                  scorer: Mapping[str, Any]) -> dict[str, Any]:
    """The config of a bundle whose report is ``report`` (benchmark's result with these inputs)."""
    q = report.get("quality") or {}
    return {
        "report": {
            "window": {"from": window.start.isoformat(), "to": window.end.isoformat()},
            "scorer_version": scorer_version,
            "bootstrap": {"resamples": bootstrap.resamples, "seed": bootstrap.seed, "max_jobs": bootstrap.max_jobs},
            "cmmd_sample": quality.cmmd_sample,
            "human_min_ratings": quality.human_min_ratings,
            "significance_fid": quality.fid_significance,
        },
        "rubric": {
            "composite_weights": quality.weights.as_dict(),
            "clip_range": {"floor": quality.clip_floor, "ceiling": quality.clip_ceiling},
            "fid_anchors": q.get("references") or {},
        },
        "pricing": {
            "platform_fee_usd_per_image": pricing.platform_fee_usd_per_image,
            "orchestration_overhead": pricing.orchestration_overhead,
            "gpu_usd_per_hour": dict(sorted(pricing.gpu_usd_per_hour.items())),
        },
        "drift": dict(drift or {}),
        "scorer": dict(scorer),
    }


def report_inputs(config: Mapping[str, Any]) -> dict[str, Any]:
    """``benchmark``'s keyword arguments (but the reader) from a bundle's config. Raises KeyError
    or ValueError (PricingError included) on a config that lacks or garbles one."""
    r, rubric = config["report"], config["rubric"]
    window = Window(datetime.fromisoformat(r["window"]["from"]), datetime.fromisoformat(r["window"]["to"]))
    weights = CompositeWeights(**{k: float(v) for k, v in rubric["composite_weights"].items()})
    defaults = QualityConfig()  # for a config written before these settings existed
    quality = QualityConfig(weights=weights, clip_floor=float(rubric["clip_range"]["floor"]),
                            clip_ceiling=float(rubric["clip_range"]["ceiling"]), cmmd_sample=int(r["cmmd_sample"]),
                            human_min_ratings=int(r.get("human_min_ratings", defaults.human_min_ratings)),
                            fid_significance=bool(r.get("significance_fid", defaults.fid_significance)))
    b = r["bootstrap"]
    bootstrap = BootstrapConfig(resamples=int(b["resamples"]), seed=int(b["seed"]), max_jobs=int(b["max_jobs"]))
    return {"pricing": Pricing.from_mapping(config["pricing"]), "window": window,
            "scorer_version": str(r["scorer_version"]), "quality": quality, "bootstrap": bootstrap}


def scorer_identity(spec: ClipSpec, configured_version: str, report_version: str | None) -> dict[str, Any]:
    """What identifies the scorer behind the report's FID/CMMD. A checkpoint file: its sha256. The
    tiny CLIP (no checkpoint): architecture, seed and the sha256 of its seeded initial weights
    (each tensor's name, dtype, shape and bytes, in state-dict order), which builds the model
    (torch). When the configured scorer is not the report's (a rescored version), only the
    report's version string is known and ``weights_sha256`` is null."""
    out: dict[str, Any] = {"version": report_version, "configured_version": configured_version,
                           "arch": spec.arch, "checkpoint": spec.checkpoint, "seed": spec.seed,
                           "checkpoint_sha256": None, "weights_sha256": None}
    matches = report_version is not None and report_version.split("/", 1)[-1] == configured_version.split("/", 1)[-1]
    out["matches_report"] = matches
    if not matches:
        out["note"] = "the configured scorer is not the one behind the report's FID/CMMD: weights not identified"
        return out
    if spec.checkpoint:
        path = Path(spec.checkpoint)
        if path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            out["checkpoint_sha256"] = digest.hexdigest()
        else:
            out["note"] = f"checkpoint {spec.checkpoint} is not a local file: no sha256"
        return out
    out["weights_sha256"] = _init_weights_digest(spec)
    out["note"] = (f"no checkpoint: {spec.arch} with weights drawn by torch.manual_seed({spec.seed}); "
                   "weights_sha256 digests those initial weights")
    return out


def _init_weights_digest(spec: ClipSpec) -> str:
    import logging

    from sentinel.clip import ClipExtractor

    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # open_clip warns "no pretrained weights": that is the point
    try:
        extractor = ClipExtractor(ClipSpec(arch=spec.arch, seed=spec.seed))
    finally:
        root.setLevel(level)
    digest = hashlib.sha256()
    for name, tensor in extractor.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()

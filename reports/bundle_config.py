"""``config.json`` of a benchmark bundle: everything besides the data that fixed the report's numbers.

Sections: ``report`` (window, requested scorer version, every field of the bootstrap config and
of the quality config but the rubric's: what ``reports.report.benchmark`` was called with);
``rubric`` (composite weights, the CLIP range mapped to 0-100, and -- informational, the numbers
used are the reference rows in ``data/reference_sets.parquet`` -- the FID anchors per niche);
``pricing`` (the pricing file's content); ``drift`` (the drift detectors' thresholds in force at
export); ``scorer`` (the scorer version the report's FID/CMMD used and what identifies its
weights: the sha256 of the checkpoint file, or for the seeded tiny CLIP its seed and the sha256
of its initialized weights); ``guard_rubric`` (the Guard's thresholds per niche and their
version, from rubric.toml at export: informational, no report number depends on them).
``report_inputs`` turns the file back into the arguments of ``benchmark``.
"""

from __future__ import annotations

import hashlib
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from sentinel.bootstrap import BootstrapConfig
from sentinel.clip_spec import ClipSpec
from sentinel.composite import CompositeWeights, QualityConfig
from sentinel.cost import Pricing
from warehouse.window import Window


RUBRIC_FIELDS = ("weights", "clip_floor", "clip_ceiling")  # QualityConfig fields kept under "rubric"


def bundle_config(*, window: Window, scorer_version: str, pricing: Pricing, quality: QualityConfig,
                  bootstrap: BootstrapConfig, report: Mapping[str, Any], drift: Mapping[str, Any] | None,
                  scorer: Mapping[str, Any], guard_rubric: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config of a bundle whose report is ``report`` (benchmark's result with these inputs).
    Every field of the quality and bootstrap configs is written (a field added later travels too)."""
    q = report.get("quality") or {}
    return {
        "report": {
            "window": {"from": window.start.isoformat(), "to": window.end.isoformat()},
            "scorer_version": scorer_version,
            "bootstrap": {f.name: getattr(bootstrap, f.name) for f in fields(bootstrap)},
            "quality": {f.name: getattr(quality, f.name) for f in fields(quality) if f.name not in RUBRIC_FIELDS},
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
        "guard_rubric": dict(guard_rubric or {}),
    }


def report_inputs(config: Mapping[str, Any]) -> dict[str, Any]:
    """``benchmark``'s keyword arguments (but the reader) from a bundle's config. Raises KeyError
    or ValueError (PricingError included) on a config that lacks or garbles one."""
    r, rubric = config["report"], config["rubric"]
    window = Window(datetime.fromisoformat(r["window"]["from"]), datetime.fromisoformat(r["window"]["to"]))
    weights = CompositeWeights(**{k: float(v) for k, v in rubric["composite_weights"].items()})
    quality = QualityConfig(weights=weights, clip_floor=float(rubric["clip_range"]["floor"]),
                            clip_ceiling=float(rubric["clip_range"]["ceiling"]), **_quality_fields(r))
    bootstrap = BootstrapConfig(**dict(r["bootstrap"]))
    return {"pricing": Pricing.from_mapping(config["pricing"]), "window": window,
            "scorer_version": str(r["scorer_version"]), "quality": quality, "bootstrap": bootstrap}


# the layout of bundles written before "report.quality" held every quality setting
_FLAT_QUALITY = {"cmmd_sample": "cmmd_sample", "human_min_ratings": "human_min_ratings",
                 "significance_fid": "fid_significance"}


def _quality_fields(r: Mapping[str, Any]) -> dict[str, Any]:
    """The quality settings but the rubric's; a setting the bundle lacks (written before it
    existed) keeps its default, one this code does not know is a TypeError naming it."""
    if "quality" in r:
        return dict(r["quality"])
    return {field: r[key] for key, field in _FLAT_QUALITY.items() if key in r}


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

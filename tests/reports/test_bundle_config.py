"""config.json of a bundle gives back the report's inputs, and names the scorer's weights."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from reports.bundle_config import bundle_config, report_inputs, scorer_identity
from sentinel.bootstrap import BootstrapConfig
from sentinel.clip_spec import ClipSpec
from sentinel.composite import CompositeWeights, QualityConfig
from sentinel.cost import Pricing
from warehouse.window import Window


def test_config_round_trips_through_json_to_the_same_report_inputs() -> None:
    window = Window(datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 2, 15, 12, tzinfo=timezone.utc))
    pricing = Pricing(0.003, 0.2, {"L4": 0.8, "A100-80GB": 1.89})
    quality = QualityConfig(CompositeWeights(0.5, 0.25, 0.25), clip_floor=10.0, clip_ceiling=40.0, cmmd_sample=77,
                            human_min_ratings=12, fid_significance=False)
    bootstrap = BootstrapConfig(resamples=300, seed=9, max_jobs=123)
    config = bundle_config(window=window, scorer_version="v1/x", pricing=pricing, quality=quality,
                           bootstrap=bootstrap, report={"quality": {"references": {"headshot": {"n": 3}}}},
                           drift={"h": 15.0}, scorer={"version": "v1/x"}, guard_rubric={"version": "r1"})
    inputs = report_inputs(json.loads(json.dumps(config)))
    assert inputs == {"window": window, "scorer_version": "v1/x", "pricing": pricing, "quality": quality,
                      "bootstrap": bootstrap}
    assert config["rubric"]["fid_anchors"] == {"headshot": {"n": 3}} and config["drift"] == {"h": 15.0}
    assert config["guard_rubric"] == {"version": "r1"}


def test_a_config_of_the_earlier_flat_layout_still_reads() -> None:
    config = {"report": {"window": {"from": "2026-01-01T00:00:00+00:00", "to": "2026-04-01T00:00:00+00:00"},
                         "scorer_version": "", "bootstrap": {"resamples": 10, "seed": 1, "max_jobs": 50},
                         "cmmd_sample": 9, "human_min_ratings": 4, "significance_fid": False},
              "rubric": {"composite_weights": {"fid": 0.4, "clip": 0.3, "human": 0.3},
                         "clip_range": {"floor": 0.0, "ceiling": 100.0}},
              "pricing": {"platform_fee_usd_per_image": 0.002, "orchestration_overhead": 0.15,
                          "gpu_usd_per_hour": {"L4": 0.8}}}
    quality = report_inputs(config)["quality"]
    assert (quality.cmmd_sample, quality.human_min_ratings, quality.fid_significance) == (9, 4, False)
    del config["report"]["human_min_ratings"]  # written before the setting existed: its default
    assert report_inputs(config)["quality"].human_min_ratings == QualityConfig().human_min_ratings


def test_a_checkpoint_is_identified_by_its_sha256(tmp_path: Path) -> None:
    ckpt = tmp_path / "weights.bin"
    ckpt.write_bytes(b"\x01\x02" * 100_000)
    spec = ClipSpec(arch="ViT-B-32", checkpoint=str(ckpt))
    ident = scorer_identity(spec, f"v1/{spec.version}", f"v1/{spec.version}")
    assert ident["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert ident["matches_report"] is True
    other = scorer_identity(spec, f"v1/{spec.version}", "v-rescored/other:seed1")
    assert other["matches_report"] is False and other["checkpoint_sha256"] is None

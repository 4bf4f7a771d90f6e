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
                           drift={"h": 15.0}, scorer={"version": "v1/x"})
    inputs = report_inputs(json.loads(json.dumps(config)))
    assert inputs == {"window": window, "scorer_version": "v1/x", "pricing": pricing, "quality": quality,
                      "bootstrap": bootstrap}
    assert config["rubric"]["fid_anchors"] == {"headshot": {"n": 3}} and config["drift"] == {"h": 15.0}


def test_a_checkpoint_is_identified_by_its_sha256(tmp_path: Path) -> None:
    ckpt = tmp_path / "weights.bin"
    ckpt.write_bytes(b"\x01\x02" * 100_000)
    spec = ClipSpec(arch="ViT-B-32", checkpoint=str(ckpt))
    ident = scorer_identity(spec, f"v1/{spec.version}", f"v1/{spec.version}")
    assert ident["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert ident["matches_report"] is True
    other = scorer_identity(spec, f"v1/{spec.version}", "v-rescored/other:seed1")
    assert other["matches_report"] is False and other["checkpoint_sha256"] is None

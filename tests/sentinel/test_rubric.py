"""The rubric: TOML overlay rules, refusal of bad files, the verdict's pass/fail and its 0-100 score
recomputed here from the documented formula."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from config.rubric import DEFAULT_RUBRIC, load_rubric
from config.settings import ConfigError
from contracts.verdict import CHECK_NAMES
from sentinel.image_checks import Decoded, RecentDigests
from sentinel.rubric import NicheRubric, Rubric, RubricError, verdict, weight_free_checks


def test_niches_overlay_defaults_which_overlay_builtins() -> None:
    rubric = Rubric.from_mapping({
        "version": "t1", "repeat_window": 5,
        "defaults": {"clip_min": 10.0, "weights": {"prompt": 5.0}},
        "niche": {"headshot": {"reference_min": 0.7, "weights": {"reference": 9.0}}},
    })
    head, other = rubric.for_niche("headshot"), rubric.for_niche("unknown-niche")
    assert other == rubric.defaults and other.clip_min == 10.0 and other.blank_min_std == NicheRubric().blank_min_std
    assert head.clip_min == 10.0 and head.reference_min == 0.7
    assert head.weights["prompt"] == 5.0 and head.weights["reference"] == 9.0 and head.weights["blank"] == 1.0
    assert rubric.repeat_window == 5 and rubric.describe()["niches"]["headshot"]["reference_min"] == 0.7


@pytest.mark.parametrize("data, words", [
    ({}, "version"),
    ({"version": "v", "defaults": {"clip_mni": 1}}, "clip_mni"),
    ({"version": "v", "niche": {"x": {"blank_min_std": -1}}}, "niche.x.blank_min_std"),
    ({"version": "v", "defaults": {"clip_min": "high"}}, "clip_min"),
    ({"version": "v", "defaults": {"clip_floor": 50, "clip_ceiling": 40}}, "clip_ceiling"),
    ({"version": "v", "defaults": {"weights": {"sharpness": 1}}}, "sharpness"),
    ({"version": "v", "repeat_window": 0}, "repeat_window"),
    ({"version": "v", "extra": 1}, "extra"),
])
def test_bad_rubrics_are_refused_by_name(data, words) -> None:
    with pytest.raises(RubricError, match=words):
        Rubric.from_mapping(data)


def test_the_shipped_rubric_loads(tmp_path) -> None:
    rubric = load_rubric()
    assert rubric.version and {"headshot", "product", "portrait"} <= set(rubric.niches)
    assert load_rubric(DEFAULT_RUBRIC) == rubric
    bad = tmp_path / "r.toml"
    bad.write_text("version = \n")
    with pytest.raises(ConfigError, match="r.toml"):
        load_rubric(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_rubric(tmp_path / "missing.toml")


def decoded(pixels: np.ndarray, digest: str = "d1") -> Decoded:
    return Decoded(Image.fromarray(pixels), "PNG", digest)


def score_by_hand(r: NicheRubric, passes: dict[str, bool], prompt: float, reference: float | None) -> float:
    w = r.weights
    parts = [(w[k], 1.0 if ok else 0.0) for k, ok in passes.items()]
    parts.append((w["prompt"], min(max((prompt - r.clip_floor) / (r.clip_ceiling - r.clip_floor), 0), 1)))
    if reference is not None:
        parts.append((w["reference"], min(max(reference, 0), 1)))
    return 100 * sum(a * b for a, b in parts) / sum(a for a, _ in parts)


def test_verdict_pass_fail_and_score() -> None:
    rubric = Rubric.from_mapping({"version": "t2", "defaults": {"clip_min": 10.0, "reference_min": 0.6}})
    r = rubric.defaults
    recent = RecentDigests(4)
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    facts = weight_free_checks(r, decoded(noise), media_type="image/png", width=32, height=32, model_id="m",
                               recent=recent)
    good = verdict(rubric, "any", facts, clip_prompt_score=30.0, clip_reference_score=0.9, scorer_version="s")
    assert good.passed and good.failed_checks == () and good.rubric_version == "t2" and good.niche == "any"
    assert [c.name for c in good.checks] == list(CHECK_NAMES.values())
    assert good.score == pytest.approx(score_by_hand(r, dict.fromkeys(
        ["decodes", "resolution", "aspect", "blank", "clipped", "repeat"], True), 30.0, 0.9))

    # the same bytes again, blank pixels, wrong size, low CLIP, no reference
    blank = np.full((16, 32, 3), 255, np.uint8)
    facts = weight_free_checks(r, decoded(blank), media_type="image/png", width=32, height=32, model_id="m",
                               recent=recent)
    bad = verdict(rubric, "any", facts, clip_prompt_score=5.0, clip_reference_score=None, scorer_version="s")
    assert not bad.passed
    assert bad.failed_checks == tuple(CHECK_NAMES[k] for k in
                                      ["resolution", "aspect", "blank", "clipped", "repeat", "prompt"])
    assert CHECK_NAMES["reference"] not in [c.name for c in bad.checks]
    assert bad.score == pytest.approx(score_by_hand(r, {"decodes": True, "resolution": False, "aspect": False,
                                                        "blank": False, "clipped": False, "repeat": False}, 5.0, None))

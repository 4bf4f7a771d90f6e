"""The one settings object (config/settings.py): env over TOML over defaults, booleans and the
torch thread count resolved once."""

from __future__ import annotations

import pytest

from config.settings import ConfigError, load_settings


def test_torch_threads_setting_beats_omp_num_threads_which_beats_automatic(tmp_path) -> None:
    assert load_settings(env={"SENTINEL_TORCH_THREADS": "3", "OMP_NUM_THREADS": "2"}).torch_threads == 3
    assert load_settings(env={"OMP_NUM_THREADS": "2"}).torch_threads == 2
    assert load_settings(env={"OMP_NUM_THREADS": "two"}).torch_threads == 0  # malformed: automatic
    assert load_settings(env={}).torch_threads == 0
    assert load_settings(env={"OMP_NUM_THREADS": "2"}).clip_spec.threads == 2


@pytest.mark.parametrize("raw,expected", [("0", False), ("false", False), ("off", False), ("1", True),
                                          ("TRUE", True), ("yes", True)])
def test_score_enabled_reads_booleans(raw, expected) -> None:
    assert load_settings(env={"SENTINEL_SCORE_ENABLED": raw}).score_enabled is expected


def test_a_bad_boolean_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="score_enabled"):
        load_settings(env={"SENTINEL_SCORE_ENABLED": "maybe"})


def test_toml_then_environment(tmp_path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("partitions = 8\nscore_batch_size = 16\n")
    settings = load_settings(path, env={"SENTINEL_PARTITIONS": "2"})
    assert (settings.partitions, settings.score_batch_size) == (2, 16)


def test_the_producer_linger_is_seconds_between_0_and_1() -> None:
    assert load_settings(env={}).producer_linger_s == 0.0
    assert load_settings(env={"SENTINEL_PRODUCER_LINGER_S": "0.005"}).producer_linger_s == 0.005
    for bad in ("-0.1", "2", "nan", "soon"):
        with pytest.raises(ConfigError, match="producer_linger_s"):
            load_settings(env={"SENTINEL_PRODUCER_LINGER_S": bad})

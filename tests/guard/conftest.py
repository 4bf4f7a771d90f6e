from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_scorer():
    """The worker's scorer on the tiny deterministic CLIP (no mock: the real encoder)."""
    from config.settings import Settings
    from sentinel.clip import ClipExtractor
    from sentinel.scoring import BatchScorer

    return BatchScorer(ClipExtractor(Settings().clip_spec))

"""Build the Guard service from configuration and serve it with uvicorn.

The scorer is the worker's: ``BatchScorer(ClipExtractor(settings.clip_spec))`` under
``settings.scorer_version`` (same model, same weights, same scores as the stream's JobScored).
"""

from __future__ import annotations

import logging
import os
import warnings

from config.settings import Settings
from contracts.verdict import TOKEN_ENV
from guard.app import GuardConfig, create_app
from guard.judge import Judge
from sentinel.rubric import Rubric

log = logging.getLogger(__name__)


def build_judge(settings: Settings, rubric: Rubric, config: GuardConfig) -> Judge:
    from PIL import Image

    from sentinel.clip import ClipExtractor
    from sentinel.scoring import BatchScorer

    # Oversize images are refused from their headers (config.max_pixels) before PIL's own warning
    # threshold matters; silence the warning so a flood of them does not flood the log.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    scorer = BatchScorer(ClipExtractor(settings.clip_spec))
    return Judge(rubric, scorer, settings.scorer_version, max_pixels=config.max_pixels)


def token_from_env() -> str:
    return os.environ.get(TOKEN_ENV, "").strip()


def serve(settings: Settings, rubric: Rubric, config: GuardConfig) -> None:
    """Blocks until stopped (SIGINT/SIGTERM)."""
    import uvicorn

    app = create_app(config, build_judge(settings, rubric, config))
    if config.host not in ("127.0.0.1", "localhost", "::1") and not config.token:
        log.warning("guard listening on %s without a token: set %s", config.host, TOKEN_ENV)
    uvicorn.run(app, host=config.host, port=config.port, log_level=settings.log_level, access_log=False,
                limit_concurrency=max(64, 4 * config.max_queue), timeout_keep_alive=30)

"""Load the Guard rubric (thresholds per niche, versioned) from a TOML file: rubric.toml at the
repository root unless a path is given (``sentinel guard --rubric``)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from config.settings import PROJECT_ROOT, ConfigError
from sentinel.rubric import Rubric, RubricError

DEFAULT_RUBRIC = PROJECT_ROOT / "rubric.toml"


def load_rubric(path: str | Path | None = None) -> Rubric:
    """The rubric in ``path`` (default: rubric.toml); a missing, unparsable or invalid file is a
    ConfigError naming the file and the problem."""
    path = Path(path) if path else DEFAULT_RUBRIC
    if not path.exists():
        raise ConfigError(f"rubric file {path} does not exist")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        return Rubric.from_mapping(data)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"rubric file {path}: not valid TOML: {exc}") from exc
    except RubricError as exc:
        raise ConfigError(f"rubric file {path}: {exc}") from exc

"""Reference sets on disk and in the warehouse: build from a directory, store, load.

``build_from_dir`` reads every image file in a directory (clear error naming any file that
cannot be read), embeds them with the scorer's extractor and computes the statistics
(``sentinel.reference``); ``store`` writes one row to ``sentinel.reference_sets``;
``load_references`` reads the current set per niche for an extractor.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pyarrow as pa
from PIL import Image, UnidentifiedImageError

import sql as sql_files
from sentinel.fid import FeatureMoments
from sentinel.reference import ReferenceStats, build_reference, noise_images

if TYPE_CHECKING:  # torch + open_clip: only the caller that builds a reference set needs them loaded
    from sentinel.clip import ClipExtractor

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}

REFERENCE_SCHEMA = pa.schema([
    ("niche", pa.string()),
    ("extractor", pa.string()),
    ("built_at", pa.timestamp("ms", tz="UTC")),
    ("source", pa.string()),
    ("n", pa.uint64()),
    ("sum", pa.list_(pa.float64())),
    ("sum_outer", pa.list_(pa.float64())),
    ("embeddings", pa.list_(pa.list_(pa.float32()))),
    ("fid_best", pa.float64()),
    ("fid_worst", pa.float64()),
])


class ReferenceError(ValueError):
    pass


def image_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise ReferenceError(f"{directory} is not a directory")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ReferenceError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {directory}")
    return files


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ReferenceError(f"{path}: not a readable image ({exc})") from None


def extractor_id(scorer_version: str) -> str:
    """The extractor part of a scorer version ``v<N>/<arch>:<weights>``: what features depend on."""
    return scorer_version.split("/", 1)[1] if "/" in scorer_version else scorer_version


def build_from_dir(niche: str, directory: Path, extractor: ClipExtractor, extractor_name: str, *,
                   seed: int = 0, batch: int = 64, progress: Callable[[int], None] | None = None) -> ReferenceStats:
    files = image_files(directory)
    chunks = []
    for start in range(0, len(files), batch):
        images = [_open(p) for p in files[start:start + batch]]
        chunks.append(extractor.encode_images(images))
        if progress:
            progress(len(images))
    features = np.concatenate(chunks)
    size = extractor.model.visual.image_size
    noise = extractor.encode_images(noise_images(len(files), size=int(size[0] if isinstance(size, (tuple, list)) else size),
                                                 seed=seed))
    try:
        return build_reference(niche, extractor_name, features, noise, seed=seed)
    except ValueError as exc:
        raise ReferenceError(str(exc)) from None


def rows(stats: ReferenceStats, source: str) -> pa.Table:
    m = stats.moments
    return pa.table({
        "niche": [stats.niche], "extractor": [stats.extractor],
        "built_at": [datetime.now(timezone.utc)], "source": [source], "n": [m.n],
        "sum": [m.sum.tolist()], "sum_outer": [m.sum_outer.reshape(-1).tolist()],
        "embeddings": [stats.embeddings.tolist()],
        "fid_best": [stats.fid_best], "fid_worst": [stats.fid_worst],
    }, schema=REFERENCE_SCHEMA)


def store(warehouse: Any, stats: ReferenceStats, source: str) -> None:
    warehouse.insert("sentinel.reference_sets", rows(stats, source))


def load_references(reader: Any, extractor: str) -> dict[str, ReferenceStats]:
    out = {}
    for row in reader.query(sql_files.report("reference_sets"), {"extractor": extractor}).to_pylist():
        s = np.asarray(row["sum"], np.float64)
        d = s.shape[0]
        moments = FeatureMoments(int(row["n"]), s, np.asarray(row["sum_outer"], np.float64).reshape(d, d))
        out[row["niche"]] = ReferenceStats(row["niche"], row["extractor"], moments,
                                           np.asarray(row["embeddings"], np.float32).reshape(-1, d),
                                           float(row["fid_best"]), float(row["fid_worst"]))
    return out

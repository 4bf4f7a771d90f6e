"""The manifest of a benchmark bundle: the sha256 and size of every file in it.

``manifest.json`` sits at the bundle's root and lists every other file under it (paths relative
to the root, '/'-separated, sorted). ``check_manifest`` recomputes the digests and names each
file that changed, went missing or was added since, so that `sentinel bundle verify` can say
which file was touched before it says which numbers moved.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

MANIFEST = "manifest.json"
FORMAT = "sentinel-bundle/1"


class BundleError(ValueError):
    """A bundle that cannot be read at all (no manifest, bad JSON, unknown format)."""


@dataclass(frozen=True)
class FileProblem:
    path: str
    kind: str  # "changed", "missing" or "unlisted"
    expected: str = ""  # sha256 in the manifest
    actual: str = ""  # sha256 of the file now

    def __str__(self) -> str:
        if self.kind == "changed":
            return f"{self.path}: changed (sha256 {self.actual[:16]}…, manifest says {self.expected[:16]}…)"
        if self.kind == "missing":
            return f"{self.path}: listed in the manifest but missing"
        return f"{self.path}: not listed in the manifest"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_files(root: Path) -> list[str]:
    """Every file under ``root`` but the manifest, as sorted '/'-separated relative paths."""
    return sorted(rel for rel in (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
                  if rel != MANIFEST)


def build_manifest(root: Path, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    files = {rel: {"sha256": sha256_file(root / rel), "bytes": (root / rel).stat().st_size}
             for rel in bundle_files(root)}
    return {"format": FORMAT, **dict(meta or {}), "files": files}


def write_manifest(root: Path, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    manifest = build_manifest(root, meta)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        raise BundleError(f"{path}: no manifest (is {root} a bundle written by `sentinel bundle export`?)")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise BundleError(f"{path}: not JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise BundleError(f"{path}: not a {FORMAT} manifest")
    return manifest


def check_manifest(root: Path, manifest: Mapping[str, Any]) -> list[FileProblem]:
    """Each listed file whose digest differs or that is gone, and each file not listed."""
    listed: Mapping[str, Any] = manifest["files"]
    problems = []
    for rel, entry in sorted(listed.items()):
        path = root / rel
        if not path.is_file():
            problems.append(FileProblem(rel, "missing", str(entry.get("sha256", ""))))
            continue
        actual = sha256_file(path)
        if actual != entry.get("sha256"):
            problems.append(FileProblem(rel, "changed", str(entry.get("sha256", "")), actual))
    problems += [FileProblem(rel, "unlisted") for rel in bundle_files(root) if rel not in listed]
    return problems

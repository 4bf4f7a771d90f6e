"""The bundle manifest: sha256 of every file (checked against hashlib here), and each changed,
missing or added file named."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from reports.manifest import MANIFEST, BundleError, check_manifest, read_manifest, write_manifest


def _bundle(root: Path) -> dict[str, bytes]:
    files = {"config.json": b'{"a": 1}\n', "data/jobs.parquet": bytes(range(256)) * 5000,
             "report/report.json": b"{}"}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_manifest_lists_every_file_with_its_sha256_and_size(tmp_path: Path) -> None:
    files = _bundle(tmp_path)
    manifest = write_manifest(tmp_path, {"rows": {"jobs": 3}})
    on_disk = json.loads((tmp_path / MANIFEST).read_text())
    assert on_disk == manifest == read_manifest(tmp_path)
    assert manifest["rows"] == {"jobs": 3}
    assert manifest["files"] == {rel: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                                 for rel, data in files.items()}
    assert check_manifest(tmp_path, manifest) == []


def test_changed_missing_and_unlisted_files_are_named(tmp_path: Path) -> None:
    _bundle(tmp_path)
    manifest = write_manifest(tmp_path)
    data = bytearray((tmp_path / "data/jobs.parquet").read_bytes())
    data[1000] ^= 1  # one bit
    (tmp_path / "data/jobs.parquet").write_bytes(bytes(data))
    (tmp_path / "report/report.json").unlink()
    (tmp_path / "extra.txt").write_text("x")
    problems = {(p.path, p.kind) for p in check_manifest(tmp_path, manifest)}
    assert problems == {("data/jobs.parquet", "changed"), ("report/report.json", "missing"), ("extra.txt", "unlisted")}
    changed = next(p for p in check_manifest(tmp_path, manifest) if p.kind == "changed")
    assert changed.actual == hashlib.sha256(bytes(data)).hexdigest()
    assert changed.expected == manifest["files"]["data/jobs.parquet"]["sha256"]
    assert "data/jobs.parquet: changed" in str(changed)


@pytest.mark.parametrize("content", [None, "not json", json.dumps({"format": "other", "files": {}})])
def test_a_directory_without_a_manifest_is_not_a_bundle(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / MANIFEST).write_text(content)
    with pytest.raises(BundleError, match="manifest"):
        read_manifest(tmp_path)

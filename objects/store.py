"""The claim-check object store: bytes kept under their sha256, events carry a reference.

An image above the inline limit (``Settings.max_image_bytes``) is not put in the event: it is
written here once, under ``<root>/sha256/<2 hex>/<64 hex>``, and the event carries an
:class:`ObjectRef` (URI, size, sha256). The root is a local directory (embedded default:
``<data_dir>/objects``) or any fsspec URL (``s3://bucket/prefix`` in production). Writers
(inference nodes, ``sentinel import``) call :meth:`ObjectStore.put`; the worker calls
:meth:`ObjectStore.fetch`, which refuses a URI outside the root and checks size and digest, so
a missing, truncated or swapped object is a dead letter with a reason, never a wrong score.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from contracts.errors import InvalidEvent

# Largest object the worker fetches: a guard against a reference that claims gigabytes (the
# decoder's pixel limit comes after the bytes are in memory).
MAX_OBJECT_BYTES = 256 * 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ObjectRef:
    """Where an object is, how long it is and its sha256 (hex): the ``ImageRef`` Avro record."""

    uri: str
    size: int
    sha256: str

    def to_record(self) -> dict[str, Any]:
        return {"uri": self.uri, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "ObjectRef":
        return cls(str(record["uri"]), int(record["size"]), str(record["sha256"]))


def ref_problem(record: Mapping[str, Any]) -> str | None:
    """Why an ``ImageRef`` record cannot be a reference (None when it can): checked by the
    worker's triage before anything is fetched."""
    if not record.get("uri"):
        return "empty uri"
    if not _HEX64.fullmatch(str(record.get("sha256", ""))):
        return f"sha256 {record.get('sha256')!r} is not 64 lower-case hex digits"
    size = record.get("size")
    if not isinstance(size, int) or not 0 < size <= MAX_OBJECT_BYTES:
        return f"size {size!r} is not in 1 .. {MAX_OBJECT_BYTES}"
    return None


class ObjectStore:
    """Put and fetch bytes by sha256 under one root (a path or an fsspec URL)."""

    def __init__(self, root: str | Path) -> None:
        import fsspec

        text = str(root)
        if "://" not in text:
            text = Path(text).expanduser().resolve().as_uri()
        self.fs, path = fsspec.core.url_to_fs(text)
        self.root_path = path.rstrip("/")
        self.root = self.fs.unstrip_protocol(self.root_path).rstrip("/")
        self.local = "file" in _protocols(self.fs)

    def path_for(self, digest: str) -> str:
        return f"{self.root_path}/sha256/{digest[:2]}/{digest}"

    def uri_for(self, digest: str) -> str:
        return f"{self.root}/sha256/{digest[:2]}/{digest}"

    def put(self, data: bytes) -> ObjectRef:
        """Store ``data`` under its digest (a no-op when an object of that size is there) and
        return its reference. Local writes are atomic (temp file + rename)."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_for(digest)
        if not self._has(path, len(data)):
            if self.local:
                _write_atomic(Path(path), data)
            else:
                self.fs.pipe_file(path, data)
        return ObjectRef(self.uri_for(digest), len(data), digest)

    def _has(self, path: str, size: int) -> bool:
        try:
            return int(self.fs.size(path)) == size
        except (FileNotFoundError, OSError):
            return False

    def fetch(self, ref: ObjectRef, what: str = "image") -> bytes:
        """The bytes of ``ref``, checked: InvalidEvent ``<what>_ref_outside_store`` (a URI other
        than this store's for the digest: another root, a path with ``..``), ``<what>_object_missing``, ``<what>_object_unreadable`` or
        ``<what>_digest_mismatch`` (size or sha256 differ)."""
        if ref.uri != self.uri_for(ref.sha256):  # also no "..", no other object's name
            raise InvalidEvent(f"{what}_ref_outside_store", f"{ref.uri} is not the object store's URI for sha256 "
                                                          f"{ref.sha256} ({self.uri_for(ref.sha256)})")
        path = self.path_for(ref.sha256)
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            raise InvalidEvent(f"{what}_object_missing", f"no object at {ref.uri}") from None
        except OSError as exc:
            raise InvalidEvent(f"{what}_object_unreadable", f"{ref.uri}: {type(exc).__name__}: {exc}") from None
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != ref.size or digest != ref.sha256:
            raise InvalidEvent(f"{what}_digest_mismatch", f"{ref.uri}: expected {ref.size} bytes sha256 {ref.sha256}, "
                                                         f"found {len(data)} bytes sha256 {digest}")
        return data


    def fetch_uri(self, uri: str, what: str = "image") -> bytes:
        """The bytes at a URI of this store, checked against the sha256 the URI names (for
        stored rows, which keep the URI but not the size)."""
        digest = uri.rsplit("/", 1)[-1]
        if not _HEX64.fullmatch(digest):
            raise InvalidEvent(f"{what}_ref_outside_store", f"{uri} does not end in a sha256")
        try:
            size = int(self.fs.size(self.path_for(digest))) if uri == self.uri_for(digest) else 1
        except (FileNotFoundError, OSError):
            size = 1  # fetch names the problem
        return self.fetch(ObjectRef(uri, size, digest), what)


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:8]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

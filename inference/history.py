"""``sentinel import``: production history in, JobCompleted events with the real images out.

Each good row of a history file (inference/history_rows.py) becomes one JobCompleted event with
the file's own timings and costs and the bytes of the image it names, exactly as delivered
(never re-encoded). An image above the inline limit travels by claim check (objects/): stored
under its sha256, the event carries the reference.

Resumable: a job id is skipped when the local ledger says it was published (ids are appended
once the broker acknowledged them) or when the warehouse already stores it (the ``stored``
lookup the CLI passes in). A re-run after a crash publishes at most one chunk again, and those
copies carry the same content, so the worker's gate skips them as duplicates.

Rows whose image is missing, unreadable or does not decode are refused with their line or row
number and the reason; nothing else stops the import.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

from PIL import Image

from contracts.errors import InvalidEvent
from inference.history_rows import HistoryRow, RowError, load_history
from objects.claims import claim_large
from objects.store import MAX_OBJECT_BYTES, ObjectStore
from sentinel.validation import MEDIA_TYPES, decode_image

NODE_ID = "import"
_MEDIA_OF_FORMAT = {fmt: media for media, fmt in MEDIA_TYPES.items()}


class Publisher(Protocol):
    async def publish(self, event: dict[str, Any]) -> None: ...

    async def flush(self) -> None: ...


class RowRefused(ValueError):
    """A row whose images cannot be used; the message is the reason reported for it."""


@dataclass
class ImportResult:
    published: int = 0
    by_reference: int = 0  # of those published: events with an image or a reference photo by reference
    skipped_ledger: int = 0  # already published by an earlier run (the local ledger)
    skipped_stored: int = 0  # already in the warehouse
    refused: list[RowError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def skipped(self) -> int:
        return self.skipped_ledger + self.skipped_stored

    def summary(self) -> str:
        return (f"published {self.published:,} jobs ({self.by_reference:,} with images by reference), "
                f"skipped {self.skipped:,} already imported ({self.skipped_ledger:,} in the ledger, "
                f"{self.skipped_stored:,} in the warehouse), refused {len(self.refused):,} rows "
                f"in {self.seconds:.1f}s")


class Ledger:
    """Job ids published by earlier imports: one JSON string per line, appended and synced after
    the broker acknowledged them (a torn last line from a crash is ignored)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.ids: set[str] = set()
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    self.ids.add(json.loads(line))
                except ValueError:
                    continue

    def __contains__(self, job_id: str) -> bool:
        return job_id in self.ids

    def add(self, job_ids: Iterable[str]) -> None:
        new = [j for j in job_ids if j not in self.ids]
        if not new:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(j) + "\n" for j in new))
            fh.flush()
            os.fsync(fh.fileno())
        self.ids.update(new)


# --- images ----------------------------------------------------------------------------------

def read_location(location: str, base_dir: Path, what: str = "image") -> bytes:
    """The bytes at a path (relative to ``base_dir``) or URL (file://, any fsspec protocol)."""
    try:
        if "://" not in location:
            path = Path(location).expanduser()
            path = path if path.is_absolute() else base_dir / path
            if path.stat().st_size > MAX_OBJECT_BYTES:
                raise RowRefused(f"{what} {location} is larger than {MAX_OBJECT_BYTES} bytes")
            return path.read_bytes()
        import fsspec

        with fsspec.open(location, "rb") as fh:
            data = fh.read(MAX_OBJECT_BYTES + 1)
        if len(data) > MAX_OBJECT_BYTES:
            raise RowRefused(f"{what} {location} is larger than {MAX_OBJECT_BYTES} bytes")
        return data
    except FileNotFoundError:
        raise RowRefused(f"{what} not found: {location}") from None
    except (OSError, ValueError, ImportError) as exc:  # unknown protocol, permissions, network
        if isinstance(exc, RowRefused):
            raise
        raise RowRefused(f"cannot read {what} {location}: {type(exc).__name__}: {exc}") from None


def media_type_of(data: bytes, location: str, declared: str | None, what: str = "image") -> str:
    """The media type of image bytes, checked by a full decode (a truncated or corrupt file is
    refused here, not dead-lettered later); a declared media type must match the bytes."""
    try:
        fmt = Image.open(io.BytesIO(data)).format
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        fmt = None
    try:
        if fmt is None:  # not even a header: let the decoder say why (corrupt_image, image_too_large)
            decode_image(data)
    except InvalidEvent as exc:
        raise RowRefused(f"{what} {location}: {exc.reason}: {exc.detail}") from None
    media_type = declared or _MEDIA_OF_FORMAT.get(fmt or "")
    if media_type is None:
        raise RowRefused(f"{what} {location} is not a PNG, JPEG or WebP image (format {fmt or 'unknown'})")
    try:
        decode_image(data, media_type)
    except InvalidEvent as exc:
        raise RowRefused(f"{what} {location}: {exc.reason}: {exc.detail}") from None
    return media_type


def build_event(row: HistoryRow, base_dir: Path, store: ObjectStore, max_inline: int) -> dict[str, Any]:
    """The JobCompleted event of one row with its images read, checked and, when larger than
    ``max_inline`` bytes, stored by reference; RowRefused says why a row cannot be imported."""
    image = read_location(row.image, base_dir)
    media_type = media_type_of(image, row.image, row.media_type)
    reference = None
    if row.reference_image:
        reference = read_location(row.reference_image, base_dir, "reference image")
        media_type_of(reference, row.reference_image, None, "reference image")
    event = row.trace.to_job_completed(image, media_type, NODE_ID, reference)
    if not row.seed_known:
        event["seed"] = None
    event["image_ref"] = event["reference_image_ref"] = None
    return claim_large(event, store, max_inline)


# --- the import ------------------------------------------------------------------------------

async def import_history(path: Path, publisher: Publisher, store: ObjectStore, ledger: Ledger, *,
                         max_inline: int, stored: Callable[[list[str]], set[str]] | None = None,
                         chunk: int = 200, on_rows: Callable[[list[HistoryRow]], None] | None = None,
                         on_row: Callable[[], None] | None = None) -> ImportResult:
    """Import every good row of ``path`` not imported before (see the module docstring).
    ``on_rows`` sees the rows about to be imported (before any is published), ``on_row`` each
    row done (published or refused)."""
    t0 = time.perf_counter()
    path = Path(path)
    rows, errors = load_history(path)
    result = ImportResult(refused=list(errors))
    todo = _not_imported(rows, ledger, stored, result)
    if on_rows is not None:
        on_rows(todo)
    loop = asyncio.get_running_loop()
    pending: list[str] = []
    for row in todo:
        try:
            event = await loop.run_in_executor(None, build_event, row, path.parent, store, max_inline)
        except RowRefused as exc:
            result.refused.append(row.error(str(exc)))
        else:
            await publisher.publish(event)
            pending.append(row.job_id)
            result.published += 1
            result.by_reference += bool(event.get("image_ref") or event.get("reference_image_ref"))
        if on_row is not None:
            on_row()
        if len(pending) >= chunk:
            await _settle(publisher, ledger, pending)
    await _settle(publisher, ledger, pending)
    result.refused.sort(key=lambda e: e.position)
    result.seconds = time.perf_counter() - t0
    return result


def _not_imported(rows: Sequence[HistoryRow], ledger: Ledger, stored: Callable[[list[str]], set[str]] | None,
                  result: ImportResult) -> list[HistoryRow]:
    fresh = [r for r in rows if r.job_id not in ledger]
    result.skipped_ledger = len(rows) - len(fresh)
    in_store = stored([r.job_id for r in fresh]) if stored is not None and fresh else set()
    result.skipped_stored = sum(r.job_id in in_store for r in fresh)
    return [r for r in fresh if r.job_id not in in_store]


async def _settle(publisher: Publisher, ledger: Ledger, pending: list[str]) -> None:
    """Wait for the broker's acks, then record the ids in the ledger."""
    if pending:
        await publisher.flush()
        ledger.add(pending)
        pending.clear()

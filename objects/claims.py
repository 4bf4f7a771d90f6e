"""Images of a JobCompleted event, inline or by claim check.

Writers call :func:`claim_large` to move an image above the inline limit into the object store
(``image`` becomes empty and ``image_ref`` names the object; a reference photo likewise through
``reference_image_ref``). Readers call :func:`image_bytes`, which returns the bytes either way and
checks every fetched object's size and digest (objects/store.py).
"""

from __future__ import annotations

from typing import Any, Mapping

from contracts.errors import InvalidEvent
from objects.store import ObjectRef, ObjectStore, ref_problem

REFS = (("image", "image_ref"), ("reference_image", "reference_image_ref"))


def by_reference(event: Mapping[str, Any]) -> bool:
    return any(event.get(ref) for _, ref in REFS)


def claim_large(event: dict[str, Any], store: ObjectStore, max_inline: int) -> dict[str, Any]:
    """``event`` with each image longer than ``max_inline`` bytes stored in ``store`` and
    replaced by its reference (the event is changed in place and returned)."""
    for field, ref in REFS:
        data = event.get(field)
        if data is not None and len(data) > max_inline:
            event[ref] = store.put(bytes(data)).to_record()
            event[field] = b"" if field == "image" else None
    return event


def image_bytes(event: Mapping[str, Any], store: ObjectStore | None) -> tuple[bytes, bytes | None]:
    """(image, reference image or None) of ``event``, fetched and verified when by reference;
    InvalidEvent when a reference cannot be fetched or does not match (reason names which)."""
    out: list[bytes | None] = []
    for field, ref in REFS:
        record = event.get(ref)
        if not record:
            out.append(event.get(field))
            continue
        if store is None:
            raise InvalidEvent(f"{field}_ref_unsupported", "the event carries an image by reference and this "
                                                           "reader has no object store configured")
        out.append(store.fetch(ObjectRef.from_record(record), field))
    image, reference = out
    return image if image is not None else b"", reference


def check_refs(event: Mapping[str, Any]) -> None:
    """InvalidEvent unless each reference is well-formed and replaces its inline field."""
    for field, ref in REFS:
        record = event.get(ref)
        if not record:
            continue
        if event.get(field):
            raise InvalidEvent(f"{field}_inline_and_by_reference",
                               f"{field} has {len(event[field])} bytes and {ref} names an object: send one")
        problem = ref_problem(record)
        if problem:
            raise InvalidEvent(f"bad_{ref}", problem)

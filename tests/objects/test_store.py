"""The claim-check object store (objects/store.py) and the event helpers (objects/claims.py):
digests recomputed here with hashlib on the bytes written, objects read back from disk directly."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from contracts.errors import InvalidEvent
from objects.claims import check_refs, claim_large, image_bytes
from objects.store import ObjectRef, ObjectStore


def test_put_writes_under_the_sha256_and_fetch_returns_the_same_bytes(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects")
    data = bytes(range(256)) * 40
    digest = hashlib.sha256(data).hexdigest()
    ref = store.put(data)
    assert ref == ObjectRef(f"file://{tmp_path}/objects/sha256/{digest[:2]}/{digest}", len(data), digest)
    on_disk = tmp_path / "objects" / "sha256" / digest[:2] / digest
    assert on_disk.read_bytes() == data
    assert store.fetch(ref) == data
    before = on_disk.stat().st_mtime_ns
    again = store.put(data)  # same bytes, same object: nothing rewritten
    assert again == ref and on_disk.stat().st_mtime_ns == before
    assert [p.name for p in on_disk.parent.iterdir()] == [digest]  # no temp files left


def test_an_fsspec_url_works_the_same(tmp_path: Path) -> None:
    store = ObjectStore("memory://bucket/claims")
    data = b"\x89PNG not really" * 100
    ref = store.put(data)
    assert ref.uri.startswith("memory://") and ref.uri.endswith("/bucket/claims/sha256/" + ref.sha256[:2] + "/" + ref.sha256)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ObjectStore("memory://bucket/claims").fetch(ref) == data


def test_missing_object_is_an_invalid_event(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    digest = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(InvalidEvent) as info:
        store.fetch(ObjectRef(store.uri_for(digest), 12, digest))
    assert info.value.reason == "image_object_missing"


@pytest.mark.parametrize("tamper", ["flip_a_byte", "truncate", "swap_object"])
def test_digest_mismatch_is_an_invalid_event(tmp_path: Path, tamper: str) -> None:
    store = ObjectStore(tmp_path)
    data = b"x" * 5000
    ref = store.put(data)
    path = Path(store.path_for(ref.sha256))
    if tamper == "flip_a_byte":
        path.write_bytes(b"y" + data[1:])
    elif tamper == "truncate":
        path.write_bytes(data[:-1])
    else:
        path.write_bytes(b"z" * 5000)
    with pytest.raises(InvalidEvent) as info:
        store.fetch(ref, "reference_image")
    assert info.value.reason == "reference_image_digest_mismatch"
    assert hashlib.sha256(path.read_bytes()).hexdigest() in info.value.detail


def test_a_uri_outside_the_store_is_refused_before_reading(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"do not read")
    digest = hashlib.sha256(b"do not read").hexdigest()
    store = ObjectStore(tmp_path / "objects")
    for uri in (secret.as_uri(), f"{store.root}/sha256/../../secret.txt", ObjectStore(tmp_path / "other").uri_for(digest)):
        with pytest.raises(InvalidEvent) as info:
            store.fetch(ObjectRef(uri, 11, digest))
        assert info.value.reason == "image_ref_outside_store", uri


def _event(image: bytes, reference: bytes | None = None) -> dict:
    return {"image": image, "reference_image": reference, "image_ref": None, "reference_image_ref": None}


def test_claim_large_moves_only_images_above_the_limit(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    small, large = b"s" * 100, b"L" * 101
    event = claim_large(_event(small, large), store, max_inline=100)
    assert event["image"] == small and event["image_ref"] is None
    assert event["reference_image"] is None
    assert event["reference_image_ref"]["sha256"] == hashlib.sha256(large).hexdigest()
    assert event["reference_image_ref"]["size"] == 101
    assert image_bytes(event, store) == (small, large)
    event = claim_large(_event(large), store, max_inline=100)
    assert event["image"] == b"" and event["image_ref"]["size"] == 101
    assert image_bytes(event, store) == (large, None)
    check_refs(event)
    with pytest.raises(InvalidEvent) as info:
        image_bytes(event, None)
    assert info.value.reason == "image_ref_unsupported"


@pytest.mark.parametrize("change,reason", [
    ({"image": b"inline too"}, "image_inline_and_by_reference"),
    ({"image_ref": {"uri": "", "size": 3, "sha256": "a" * 64}}, "bad_image_ref"),
    ({"image_ref": {"uri": "file:///x", "size": 3, "sha256": "A" * 64}}, "bad_image_ref"),
    ({"image_ref": {"uri": "file:///x", "size": 0, "sha256": "a" * 64}}, "bad_image_ref"),
    ({"reference_image": b"r", "reference_image_ref": {"uri": "file:///x", "size": 3, "sha256": "a" * 64}},
     "reference_image_inline_and_by_reference"),
])
def test_check_refs_reasons(change: dict, reason: str) -> None:
    event = {**_event(b""), "image_ref": {"uri": "file:///x", "size": 3, "sha256": "a" * 64}, **change}
    with pytest.raises(InvalidEvent) as info:
        check_refs(event)
    assert info.value.reason == reason

"""Rescoring jobs whose images are kept by reference (worker/rescore.py ``_pixels``): fetched
from the object store by the URI the row keeps, digest checked, or skipped with a reason."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contracts.errors import InvalidEvent
from objects.store import ObjectStore
from worker.rescore import _pixels


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(seed).random((8, 8, 3)) * 255).astype("uint8")).save(buf, format="PNG")
    return buf.getvalue()


def test_a_stored_row_by_reference_is_fetched_and_checked(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    image, photo = png(1), png(2)
    job = {"image": b"", "reference_image": None, "media_type": "image/png",
           "image_uri": store.put(image).uri, "reference_uri": store.put(photo).uri}
    got, reference = _pixels(job, store)
    assert np.array_equal(np.asarray(got), np.asarray(Image.open(io.BytesIO(image)).convert("RGB")))
    assert np.array_equal(np.asarray(reference), np.asarray(Image.open(io.BytesIO(photo)).convert("RGB")))
    inline = {**job, "image": image, "image_uri": "", "reference_uri": ""}
    assert _pixels(inline, None)[1] is None
    with pytest.raises(InvalidEvent) as info:
        _pixels(job, None)
    assert info.value.reason == "image_ref_unsupported"
    Path(store.path_for(job["image_uri"].rsplit("/", 1)[1])).write_bytes(png(3))
    with pytest.raises(InvalidEvent) as info:
        _pixels(job, store)
    assert info.value.reason == "image_digest_mismatch"
    Path(store.path_for(job["reference_uri"].rsplit("/", 1)[1])).unlink()
    with pytest.raises(InvalidEvent) as info:
        _pixels({**job, "image_uri": ""}, store)
    assert info.value.reason == "reference_image_object_missing"

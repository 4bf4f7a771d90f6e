"""The worker's gate (worker/stages/gate.py): one verdict per source offset, content hashes, catalog.

The stored-copy lookup is a plain dict here (the gate's own logic is under test); the real
ClickHouse lookup runs in tests/integration/test_faults.py.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contracts.codec import AvroCodec, content_hash
from contracts.errors import InvalidEvent
from config.settings import load_settings
from worker.stages.gate import BAD, CONFLICT, CONFLICT_REASON, DUPLICATE, OK, Catalog, Gate, StoredCopy

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def png(seed: int) -> bytes:
    pixels = (np.random.default_rng(seed).random((8, 8, 3)) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def event(job_id: str, **overrides) -> dict:
    e = {"job_id": job_id, "model_id": "flux-dev", "model_version": "1", "provider": "self_hosted",
         "niche": "headshot", "prompt": "p", "seed": 1, "reference_image": None, "image": png(1),
         "media_type": "image/png", "requested_at": T0, "started_at": T0, "completed_at": T0 + timedelta(seconds=1),
         "delivered_at": T0 + timedelta(seconds=1), "cold_start": False, "cold_start_ms": 0.0, "inference_ms": 1.0,
         "encode_ms": 1.0, "gpu_type": "L4", "gpu_seconds": 1.0, "api_cost_usd": None, "node_id": "n"}
    e.update(overrides)
    return e


class Store:
    """Stand-in for sentinel.jobs: job id -> stored copy, and a switch to fail lookups."""

    def __init__(self) -> None:
        self.rows: dict[str, StoredCopy] = {}
        self.down = False
        self.calls: list[list[str]] = []

    def __call__(self, ids: list[str]) -> dict[str, StoredCopy]:
        self.calls.append(ids)
        if self.down:
            raise RuntimeError("ClickHouse is down")
        return {i: self.rows[i] for i in ids if i in self.rows}


def kinds(verdicts) -> list[str]:
    return [None if v is None else v.kind for v in verdicts]


def test_content_hash_ignores_writer_schema_but_not_values() -> None:
    e = event("a")
    assert content_hash(e) == content_hash(dict(reversed(list(e.items()))))
    assert content_hash(e) == content_hash({**e, "region": None})  # an added optional field, left null
    assert content_hash(e) != content_hash({**e, "region": "eu"})
    assert content_hash(e) != content_hash({**e, "image": e["image"][:-1] + bytes([e["image"][-1] ^ 1])})
    assert content_hash(e) != content_hash({**e, "delivered_at": e["delivered_at"] + timedelta(milliseconds=1)})
    assert content_hash(e) != content_hash({**e, "gpu_seconds": 1.0000000000000002})
    # what the worker sees: the decoded record round-trips to the same hash
    codec = AvroCodec("JobCompleted")
    assert content_hash(codec.decode(codec.encode(e))) == content_hash(e)


def test_content_hash_byte_stream_is_stable() -> None:
    """Hashes are stored (sentinel.jobs.content_hash) and compared with later copies, so the
    hashed byte stream must never change: recomputed here by hand from the documented format."""
    import hashlib
    from collections import OrderedDict

    class Name(str):  # a subclass takes the isinstance path
        pass

    when = datetime(2026, 1, 5, 9, 0, 0, 1500, tzinfo=timezone(timedelta(hours=2)))
    record = OrderedDict([("z", [1, True, 2.5, None, (b"ab",)]), ("a", Name("é")), ("m", None),
                          ("t", when), ("naive", datetime(1970, 1, 1, 0, 0, 1)), ("b", bytearray(b"\x00\x01")),
                          ("n", {"k": -3})])
    us = int((when - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds()) * 1_000_000 + 1500
    expected = (b"{" + b"s1:a" + b"s2:\xc3\xa9" + b"s1:b" + b"b2:\x00\x01" + b"s1:n" + b"{s1:ki-3;}"
                + b"s5:naive" + b"t1000000;" + b"s1:t" + b"t%d;" % us
                + b"s1:z" + b"[" + b"i1;" + b"T" + b"f" + (2.5).hex().encode() + b";" + b"n" + b"[b2:ab]" + b"]" + b"}")
    assert content_hash(record) == hashlib.sha256(expected).hexdigest()
    with pytest.raises(TypeError, match="unsupported value type set"):
        content_hash({"x": {1}})

def test_first_copy_duplicate_and_conflict_in_one_partition() -> None:
    store = Store()
    duplicates = []
    gate = Gate(store, on_duplicate=lambda: duplicates.append(1))
    a, b = event("a"), event("b")
    verdicts = gate.judge([(0, 10, a), (0, 11, b), (0, 12, dict(a)), (0, 13, {**a, "prompt": "other"})])
    assert kinds(verdicts) == [OK, OK, DUPLICATE, CONFLICT]
    assert verdicts[3].reason == CONFLICT_REASON and "offset 10" in verdicts[3].detail
    assert duplicates == [1]
    # every agent asks again: the same verdicts, from the cache (no second lookup)
    calls = len(store.calls)
    assert kinds(gate.judge([(0, 12, dict(a)), (0, 13, {**a, "prompt": "other"}), (0, 10, a)])) == [DUPLICATE, CONFLICT, OK]
    assert len(store.calls) == calls and duplicates == [1]


def test_one_lookup_per_batch_only_for_ids_not_in_memory() -> None:
    store = Store()
    gate = Gate(store)
    gate.judge([(1, i, event(f"j{i}")) for i in range(50)])
    assert store.calls == [sorted(f"j{i}" for i in range(50))]
    gate.judge([(1, 50 + i, event(f"j{i}")) for i in range(3)] + [(1, 60, event("new"))])
    assert store.calls[-1] == ["new"]


def test_after_a_restart_the_stored_first_copy_is_itself_and_later_copies_are_not() -> None:
    a = event("a")
    store = Store()
    store.rows["a"] = StoredCopy(2, 7, content_hash(a))  # stored before the crash, from 2@7
    gate = Gate(store)  # a new process: empty memory
    assert kinds(gate.judge([(2, 7, a), (2, 9, dict(a)), (2, 11, {**a, "gpu_seconds": 9.0})])) == [OK, DUPLICATE, CONFLICT]
    # an id stored from an earlier offset (committed before the crash) with the same content
    b = event("b")
    store.rows["b"] = StoredCopy(2, 3, content_hash(b))
    assert kinds(Gate(store).judge([(2, 20, b)])) == [DUPLICATE]
    # a stored row from before migration 0005 has no hash: a different offset is a conflict
    store.rows["c"] = StoredCopy(2, 4, "")
    verdict = Gate(store).judge([(2, 21, event("c"))])[0]
    assert verdict.kind == CONFLICT and "without a content hash" in verdict.detail


def test_bad_images_are_judged_and_never_become_the_first_copy() -> None:
    gate = Gate(Store())
    broken = event("a", image=b"\x89PNG\r\n\x1a\n broken")
    fixed = event("a")
    verdicts = gate.judge([(0, 1, broken), (0, 2, fixed), (0, 3, event("r", reference_image=b"junk"))])
    assert kinds(verdicts) == [BAD, OK, BAD]
    assert verdicts[0].reason == "corrupt_image" and verdicts[2].reason == "corrupt_image"


def test_a_failed_lookup_changes_nothing_and_the_retry_gives_the_same_verdicts() -> None:
    store = Store()
    gate = Gate(store)
    gate.judge([(0, 0, event("x"))])
    store.down = True
    batch = [(0, 1, event("x")), (0, 2, event("y")), (0, 3, event("y", prompt="changed"))]
    with pytest.raises(RuntimeError):
        gate.judge(batch)
    assert gate.cached(0, 1) is None and gate.cached(0, 2) is None
    store.down = False
    assert kinds(gate.judge(batch)) == [DUPLICATE, OK, CONFLICT]


def test_memories_are_bounded_and_fall_back_to_the_store() -> None:
    store = Store()
    gate = Gate(store, max_verdicts=10, max_jobs=5)
    events = [(0, i, event(f"j{i}")) for i in range(40)]
    assert kinds(gate.judge(events)) == [OK] * 40
    assert len(gate._verdicts) <= 10 and len(gate._first) <= 5
    for p, o, e in events:  # what the archive would have stored meanwhile
        store.rows[e["job_id"]] = StoredCopy(p, o, content_hash(e))
    # evicted everywhere: the store answers, and the verdicts do not change
    assert kinds(gate.judge(events[:3])) == [OK] * 3
    assert kinds(gate.judge([(0, 100, event("j0"))])) == [DUPLICATE]


def test_screen_backs_off_while_the_store_is_down() -> None:
    import asyncio

    store = Store()
    retries = []
    gate = Gate(store, on_retry=lambda: retries.append(1))
    store.down = True

    async def main():
        async def recover() -> None:
            await asyncio.sleep(0.5)
            store.down = False

        task = asyncio.create_task(recover())
        verdicts = await gate.screen([(0, 0, event("a"))])
        await task
        return verdicts

    assert kinds(asyncio.run(main())) == [OK] and len(retries) >= 2


def test_catalog_defaults_extension_and_wildcard(tmp_path) -> None:
    catalog = Catalog.from_settings(load_settings(env={}, data_dir=tmp_path))
    from inference.trace import TRACE_MODELS

    for model in ["tiny-sd", "tiny-sdxl", "tiny-flux", "sim-api-provider"] + [m.model for m in TRACE_MODELS]:
        catalog.check(event("a", model_id=model))
    for niche in ["headshot", "product", "portrait"]:
        catalog.check(event("a", niche=niche))
    with pytest.raises(InvalidEvent) as exc:
        catalog.check(event("a", model_id="gpt-image-9"))
    assert exc.value.reason == "unknown_model"
    with pytest.raises(InvalidEvent) as exc:
        catalog.check(event("a", niche="wedding"))
    assert exc.value.reason == "unknown_niche"

    extended = Catalog.from_settings(load_settings(env={"SENTINEL_KNOWN_MODELS": "gpt-image-9, other",
                                                        "SENTINEL_KNOWN_NICHES": "wedding"}, data_dir=tmp_path))
    extended.check(event("a", model_id="gpt-image-9", niche="wedding"))
    extended.check(event("a", model_id="tiny-sd"))
    anything = Catalog.from_settings(load_settings(env={"SENTINEL_KNOWN_MODELS": "*", "SENTINEL_KNOWN_NICHES": "*"},
                                                   data_dir=tmp_path))
    anything.check(event("a", model_id="whatever", niche="anything"))

    registry = tmp_path / "models.toml"
    registry.write_text('[models.house-model]\nclass = "sd"\nversion = "1"\n')
    custom = Catalog.from_settings(load_settings(env={"SENTINEL_MODEL_REGISTRY": str(registry)}, data_dir=tmp_path))
    custom.check(event("a", model_id="house-model"))
    with pytest.raises(InvalidEvent):
        custom.check(event("a", model_id="tiny-sd"))


def test_each_partition_is_judged_in_log_order_once_its_start_is_known() -> None:
    """Judged out of order, a later copy became the 'first' and the real first copy was
    dead-lettered as the conflict (a SIGKILL run). Items past an unjudged offset are deferred."""
    first, other = event("j1"), event("j2")
    conflict = {**first, "prompt": "a different job under a re-used id"}
    gate = Gate(Store())
    gate.restart({2: 5})
    assert gate.judge([(2, 7, conflict)]) == [None]  # 5 and 6 not judged yet
    assert gate.next_offset(2) == 5
    assert kinds(gate.judge([(2, 6, other), (2, 5, first), (2, 7, conflict)])) == [OK, OK, CONFLICT]
    assert gate.next_offset(2) == 8
    # records rejected before the gate (undecodable) are judged too, so they hold nothing back
    assert kinds(gate.judge([(2, 8, None), (2, 9, event("j3"))])) == [BAD, OK]
    # other partitions and partitions without a known start are not held back
    assert kinds(gate.judge([(3, 100, event("j4")), (2, 12, event("j5"))])) == [OK, None]
    gate.restart({2: 12})  # a seek to the committed offset: judged from there
    assert kinds(gate.judge([(2, 12, event("j5"))])) == [OK]


# -- images by reference (claim check) ------------------------------------------------------

def test_images_by_reference_are_fetched_checked_and_decoded(tmp_path) -> None:
    import hashlib

    from objects.store import ObjectStore
    from worker.stages.gate import check_images

    store = ObjectStore(tmp_path / "objects")
    image, reference = png(7), png(8)
    by_ref = event("ref-1", image=b"", image_ref=store.put(image).to_record(),
                   reference_image_ref=store.put(reference).to_record())
    missing_digest = hashlib.sha256(b"gone").hexdigest()
    missing = event("ref-2", image=b"", image_ref={"uri": store.uri_for(missing_digest), "size": 4,
                                                    "sha256": missing_digest})
    swapped = event("ref-3", image=b"", image_ref=store.put(png(9)).to_record())
    Path(store.path_for(swapped["image_ref"]["sha256"])).write_bytes(png(10))  # another image under its name
    gate = Gate(Store(), objects=store)
    decoded: dict = {}
    verdicts = gate.judge([(0, 0, by_ref), (0, 1, missing), (0, 2, swapped)], decoded)
    assert kinds(verdicts) == [OK, BAD, BAD]
    assert verdicts[1].reason == "image_object_missing" and verdicts[2].reason == "image_digest_mismatch"
    pixels, ref_pixels = decoded[(0, 0)]
    expected = np.asarray(Image.open(io.BytesIO(image)).convert("RGB"))
    assert np.array_equal(np.asarray(pixels), expected)
    assert np.array_equal(np.asarray(ref_pixels), np.asarray(Image.open(io.BytesIO(reference)).convert("RGB")))
    assert kinds(Gate(Store()).judge([(0, 0, by_ref)])) == [BAD]  # no object store: refused, not guessed
    with pytest.raises(InvalidEvent):
        check_images(missing, store)

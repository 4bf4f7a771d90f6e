"""`sentinel import`'s core (inference/history.py) with an in-memory publisher: real image files,
bytes compared with hashlib on the files, a ledger that makes a second run publish nothing.
(The real broker, worker and chDB run in tests/integration/test_import.py.)"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest
from history_fixtures import good, image_file

from contracts.codec import AvroCodec
from inference.history import Ledger, import_history
from objects.store import ObjectStore


class Collect:
    def __init__(self) -> None:
        self.events: list[dict] = []
        self.flushes = 0

    async def publish(self, event: dict) -> None:
        self.events.append(AvroCodec("JobCompleted").decode(AvroCodec("JobCompleted").encode(event)))

    async def flush(self) -> None:
        self.flushes += 1


def run(path: Path, store: ObjectStore, ledger: Ledger, **kw):
    publisher = Collect()
    result = asyncio.run(import_history(path, publisher, store, ledger, max_inline=20_000, **kw))
    return result, publisher.events


@pytest.fixture()
def history(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    files = {
        "h-1": image_file(tmp_path / "img" / "1.png", "PNG", 16, 1),
        "h-2": image_file(tmp_path / "img" / "2.jpg", "JPEG", 16, 2),
        "h-3": image_file(tmp_path / "img" / "3.png", "PNG", 128, 3),  # > 20,000 bytes: by reference
        "ref": image_file(tmp_path / "img" / "ref.jpg", "JPEG", 16, 4),
    }
    assert len(files["h-3"]) > 20_000 > max(len(files["h-1"]), len(files["h-2"]))
    (tmp_path / "img" / "corrupt.png").write_bytes(files["h-1"][:40])
    (tmp_path / "img" / "text.png").write_bytes(b"hello, not an image")
    image_file(tmp_path / "img" / "anim.gif", "GIF", 8, 5)
    rows = [good(1, image="img/1.png", reference_image="img/ref.jpg", seed=5),
            good(2, image=(tmp_path / "img" / "2.jpg").as_uri()),
            good(3, image=str(tmp_path / "img" / "3.png")),
            good(4, image="img/missing.png"),
            good(5, image="img/corrupt.png"),
            good(6, image="img/text.png"),
            good(7, image="img/1.png", media_type="image/jpeg"),
            good(8, image="img/2.jpg", reference_image="img/nope.jpg"),
            good(9, image="nosuchproto://x/y.png"),
            good(10, image="img/anim.gif")]
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, files


def test_import_publishes_real_bytes_refuses_bad_rows_by_line_and_resumes(tmp_path: Path, history) -> None:
    path, files = history
    store = ObjectStore(tmp_path / "objects")
    ledger_path = tmp_path / "ledger.jsonl"
    result, events = run(path, store, Ledger(ledger_path), chunk=2)
    by_id = {e["job_id"]: e for e in events}
    assert sorted(by_id) == ["h-1", "h-2", "h-3"] and result.published == 3 and result.by_reference == 1
    assert by_id["h-1"]["image"] == files["h-1"] and by_id["h-1"]["reference_image"] == files["ref"]
    assert by_id["h-1"]["media_type"] == "image/png" and by_id["h-1"]["seed"] == 5
    assert by_id["h-2"]["image"] == files["h-2"] and by_id["h-2"]["media_type"] == "image/jpeg"
    assert by_id["h-2"]["seed"] is None and by_id["h-2"]["node_id"] == "import"
    big = by_id["h-3"]
    assert big["image"] == b"" and big["image_ref"]["sha256"] == hashlib.sha256(files["h-3"]).hexdigest()
    assert big["image_ref"]["size"] == len(files["h-3"])
    assert Path(store.path_for(big["image_ref"]["sha256"])).read_bytes() == files["h-3"]
    refused = {e.position: e.reason for e in result.refused}
    assert sorted(refused) == [4, 5, 6, 7, 8, 9, 10]
    assert refused[4] == "image not found: img/missing.png"
    assert "corrupt_image" in refused[5]
    assert refused[6].startswith("image img/text.png: corrupt_image: ")
    assert refused[10] == "image img/anim.gif is not a PNG, JPEG or WebP image (format GIF)"
    assert "media_type_mismatch" in refused[7]
    assert refused[8] == "reference image not found: img/nope.jpg"
    assert "cannot read image nosuchproto://x/y.png" in refused[9]
    assert {json.loads(line) for line in ledger_path.read_text().splitlines()} == {"h-1", "h-2", "h-3"}

    again, events = run(path, store, Ledger(ledger_path))
    assert events == [] and again.published == 0 and again.skipped_ledger == 3 and len(again.refused) == 7


def test_the_warehouse_lookup_skips_stored_jobs_without_a_ledger(tmp_path: Path, history) -> None:
    path, _ = history
    asked: list[list[str]] = []

    def stored(ids: list[str]) -> set[str]:
        asked.append(ids)
        return {"h-2"}

    result, events = run(path, ObjectStore(tmp_path / "o"), Ledger(tmp_path / "l.jsonl"), stored=stored)
    assert sorted(e["job_id"] for e in events) == ["h-1", "h-3"] and result.skipped_stored == 1
    assert asked == [[f"h-{i}" for i in range(1, 11)]]


def test_ledger_ignores_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text('"a"\n"b"\n"c')
    ledger = Ledger(path)
    assert "a" in ledger and "b" in ledger and "c" not in ledger

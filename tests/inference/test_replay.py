"""Replay as recorded: one valid event per row, images by the renderer, on or off the event loop."""

from __future__ import annotations

import asyncio
import threading

from contracts.codec import AvroCodec
from inference.replay import replay_as_recorded
from inference.seeded_images import SeededImages
from inference.trace_generator import generate_trace
from sentinel.validation import check_job, decode_image


class ListPublisher:
    """The publisher's interface, keeping events in a list."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.flushed = False

    async def publish(self, event: dict) -> None:
        self.events.append(event)

    async def flush(self) -> None:
        self.flushed = True


class ThreadRecordingImages(SeededImages):
    in_thread = True

    def __init__(self) -> None:
        super().__init__(8)
        self.threads: set[int] = set()

    def render(self, row):
        self.threads.add(threading.get_ident())
        return super().render(row)


def _replay(rows, renderer):
    publisher = ListPublisher()
    seen: list[str] = []
    result = asyncio.run(replay_as_recorded(rows, renderer, publisher, on_published=lambda e: seen.append(e["job_id"])))
    return result, publisher, seen


def test_every_row_becomes_a_valid_event_with_the_trace_timings() -> None:
    rows = generate_trace(300, seed=4)
    result, publisher, seen = _replay(rows, SeededImages())
    assert result.published == len(rows) == len(publisher.events) and publisher.flushed
    assert seen == [row.job_id for row in rows] and result.stand_ins == []
    codec = AvroCodec("JobCompleted")
    for row, event in zip(rows, publisher.events):
        assert codec.decode(codec.encode(event)) == event
        check_job(event, max_image_bytes=900_000)
        assert event["requested_at"] == row.requested_at and event["delivered_at"] == row.delivered_at
        assert event["gpu_seconds"] == row.gpu_seconds and event["api_cost_usd"] == row.api_cost_usd
        assert decode_image(event["image"], event["media_type"]).size == (32, 32)


def test_slow_renderers_run_off_the_event_loop_thread() -> None:
    rows = generate_trace(5, seed=5)
    renderer = ThreadRecordingImages()
    _, publisher, _ = _replay(rows, renderer)
    assert len(publisher.events) == 5 and threading.get_ident() not in renderer.threads
    inline = SeededImages(8)
    _, again, _ = _replay(rows, inline)
    assert [e["image"] for e in again.events] == [e["image"] for e in publisher.events]

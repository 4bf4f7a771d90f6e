"""GuardedNode's attempt loop against the stand-in guard over real HTTP (tests/guard_stand_in.py),
with a small node that draws seeded noise images and a blank one for chosen seeds; planted-bad
choice is deterministic and at the requested rate."""

from __future__ import annotations

import io
import socket
from datetime import datetime, timezone
from types import SimpleNamespace

import numpy as np
import pytest
from guard_stand_in import StandInGuard
from PIL import Image

from inference.attempts import UNGUARDED, attempt_job_id, attempt_seed
from inference.guard_client import GuardClient
from inference.guarded import GuardedNode
from inference.node import JobRequest
from inference.planted import KINDS, PlantBad, planted_image

SIZE = 16


class SeededNode:
    """Noise images by seed; the seeds in ``blank`` give a uniform image (a bad output)."""

    def __init__(self, blank: set[int]) -> None:
        self.models = {"m": SimpleNamespace(size=SIZE)}
        self.node_id = "n"
        self.blank = blank
        self.seeds: list[int] = []

    def run(self, request: JobRequest) -> dict:
        self.seeds.append(request.seed)
        rng = np.random.default_rng(request.seed)
        pixels = np.full((SIZE, SIZE, 3), 128, "uint8") if request.seed in self.blank else \
            (rng.random((SIZE, SIZE, 3)) * 255).astype("uint8")
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        now = datetime.now(timezone.utc)
        return {"job_id": request.job_id, "model_id": "m", "niche": "product", "prompt": request.prompt,
                "reference_image": None, "image": buf.getvalue(), "media_type": "image/png",
                "requested_at": request.requested_at, "started_at": now, "completed_at": now, "delivered_at": now,
                "gpu_seconds": 0.1, **UNGUARDED}


@pytest.fixture(scope="module")
def guard():
    g = StandInGuard().start()
    yield g
    g.stop()


def _request(seed: int, job_id: str = "req-1") -> JobRequest:
    return JobRequest(job_id, "m", "product", "a mug", seed, datetime.now(timezone.utc))


def test_a_passing_first_attempt_is_delivered_alone(guard) -> None:
    node = GuardedNode(SeededNode(set()), GuardClient(guard.url, guard.token), max_attempts=3)
    [event] = node.run_attempts(_request(11))
    assert (event["job_id"], event["request_id"], event["attempt"], event["delivered"]) == ("req-1", "req-1", 1, True)
    assert event["guard_passed"] is True and event["guard_failed_checks"] == [] and event["guard_ms"] > 0
    assert event["guard_rubric_version"] == "stand-in-1" and len(event["guard_checks"]) == 4


def test_a_failing_attempt_is_discarded_and_regenerated_with_a_new_seed(guard) -> None:
    inner = SeededNode({21})
    node = GuardedNode(inner, GuardClient(guard.url, guard.token), max_attempts=3)
    first, second = node.run_attempts(_request(21, "req-2"))
    assert inner.seeds == [21, attempt_seed(21, 2)] and inner.seeds[1] != 21
    assert (first["job_id"], first["delivered"], first["guard_failed_checks"]) == ("req-2", False, ["blank"])
    assert (second["job_id"], second["attempt"], second["delivered"]) == (attempt_job_id("req-2", 2), 2, True)
    assert second["request_id"] == first["request_id"] == "req-2"
    assert second["requested_at"] == first["requested_at"] and second["delivered_at"] > first["delivered_at"]


def test_all_attempts_failing_deliver_nothing(guard) -> None:
    seeds = [attempt_seed(31, k) for k in (1, 2)]
    node = GuardedNode(SeededNode(set(seeds)), GuardClient(guard.url, guard.token), max_attempts=2)
    events = node.run_attempts(_request(31, "req-3"))
    assert [e["delivered"] for e in events] == [False, False] and node.failed_requests == 1


@pytest.mark.parametrize("why", ["refused", "token"])
def test_no_verdict_delivers_unguarded_and_says_why(guard, why) -> None:
    if why == "refused":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again before the call
        client = GuardClient(url, guard.token, timeout_s=0.5)
    else:
        client = GuardClient(guard.url, "wrong-token")
    node = GuardedNode(SeededNode({41}), client, max_attempts=3)
    [event] = node.run_attempts(_request(41, "req-4"))  # a blank image, but no verdict: delivered
    assert event["delivered"] is True and event["guard_passed"] is None and node.unguarded == 1
    assert event["guard_error"].startswith("ConnectError" if why == "refused" else "HTTP 401")
    assert event["guard_failed_checks"] is None and event["guard_checks"] is None


def test_planted_kinds_are_deterministic_and_at_the_rate() -> None:
    plant = PlantBad(0.3)
    kinds = [plant.kind(seed) for seed in range(20_000)]
    assert kinds == [PlantBad(0.3).kind(seed) for seed in range(20_000)]
    share = sum(k is not None for k in kinds) / len(kinds)
    assert abs(share - 0.3) < 4 * np.sqrt(0.3 * 0.7 / len(kinds))
    assert set(kinds) == {None, *KINDS} and PlantBad(0.0).kind(5) is None
    with pytest.raises(ValueError, match="within 0..1"):
        PlantBad(1.5)
    image = Image.fromarray((np.random.default_rng(0).random((8, 8, 3)) * 255).astype("uint8"))
    assert np.asarray(planted_image("blank", image)).std() == 0
    assert planted_image("wrong_size", image).size == (4, 8)


def test_a_refused_output_naming_a_check_is_a_failed_attempt() -> None:
    """The service answers 4xx with ``check`` for bytes that are no image (contracts.verdict.ApiError)."""
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"error": "cannot identify image file", "field": "image",
                                         "check": "Image decodes"})

    client = GuardClient("http://guard", "t", transport=httpx.MockTransport(handler))
    node = GuardedNode(SeededNode(set()), client, max_attempts=2)
    events = node.run_attempts(_request(51, "req-5"))
    assert [e["delivered"] for e in events] == [False, False] and node.unguarded == 0
    assert events[0]["guard_failed_checks"] == ["Image decodes"] and events[0]["guard_error"] is None
    assert events[0]["guard_checks"][0]["reason"].startswith("refused: cannot identify")


def test_live_replay_publishes_every_attempt_and_times_delivered_images(guard) -> None:
    """replay_live with guarded nodes: all attempts reach the publisher; the replay's latency
    list holds one requested -> delivered latency per delivered request."""
    import asyncio

    from inference.replay import replay_live
    from inference.trace import generate_trace

    rows = [r.__class__(**{**r.__dict__, "model": "m", "job_id": f"live-{i}", "reference_image": None})
            for i, r in enumerate(generate_trace(8, seed=4))]
    blank = {rows[1].seed, rows[4].seed, attempt_seed(rows[4].seed, 2)}  # row 4 fails every attempt

    class Collect:
        def __init__(self) -> None:
            self.events: list[dict] = []

        async def publish(self, event: dict) -> None:
            self.events.append(event)

        async def flush(self) -> None:
            pass

    out = Collect()
    nodes = [GuardedNode(SeededNode(blank), GuardClient(guard.url, guard.token), max_attempts=2) for _ in range(2)]
    result = asyncio.run(replay_live(rows, nodes, out, rate=200.0))
    assert result.published == len(out.events) == len(rows) + 2  # row 1: 2 attempts, row 4: 2 attempts
    delivered = [e for e in out.events if e["delivered"]]
    assert len(delivered) == len(rows) - 1 and len(result.latencies_ms) == len(delivered)
    assert sorted(result.latencies_ms) == pytest.approx(sorted(
        (e["delivered_at"] - e["requested_at"]).total_seconds() * 1000 for e in delivered))
    assert sum(n.failed_requests for n in nodes) == 1


def test_a_guard_timeout_delivers_unguarded() -> None:
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    node = GuardedNode(SeededNode({61}), GuardClient("http://guard", "t", transport=httpx.MockTransport(handler)), 3)
    [event] = node.run_attempts(_request(61, "req-6"))
    assert event["delivered"] is True and event["guard_passed"] is None and event["guard_error"].startswith("ReadTimeout")
    assert node.unguarded == 1

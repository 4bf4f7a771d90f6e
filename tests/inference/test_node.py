"""Inference nodes: honest timings, GPU-seconds accounting, the simulated API kind."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from inference.node import InferenceNode, JobRequest
from inference.registry import RegistryError, load_registry
from contracts.codec import AvroCodec
from sentinel.validation import check_job
from config.settings import PROJECT_ROOT


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> InferenceNode:
    models = load_registry(PROJECT_ROOT / "models.toml")
    return InferenceNode(models, node_id="t", cache_dir=tmp_path_factory.mktemp("models"))


def request(model: str, seed: int = 1) -> JobRequest:
    return JobRequest(f"job-{model}-{seed}", model, "headshot", "a corporate headshot", seed, datetime.now(timezone.utc))


def test_self_hosted_job_timings_and_cold_start(node: InferenceNode) -> None:
    first = node.run(request("tiny-sd", 1))
    second = node.run(request("tiny-sd", 2))
    assert first["cold_start"] and first["cold_start_ms"] > 0 and not second["cold_start"]
    for event in (first, second):
        check_job(event, max_image_bytes=900_000)
        assert AvroCodec("JobCompleted").decode(AvroCodec("JobCompleted").encode(event))["job_id"] == event["job_id"]
        node_ms = (event["completed_at"] - event["started_at"]) / timedelta(milliseconds=1)
        assert event["cold_start_ms"] + event["inference_ms"] == pytest.approx(node_ms, abs=3.0)
        assert event["gpu_seconds"] * 1000 == pytest.approx(node_ms, abs=3.0)
        assert event["gpu_type"] == "cpu" and event["api_cost_usd"] is None


def test_simulated_api_records_provider_latency_and_price(node: InferenceNode) -> None:
    event = node.run(request("sim-api-provider", 5))
    check_job(event, max_image_bytes=900_000)
    assert event["provider"] == "api" and event["api_cost_usd"] == 0.04 and event["gpu_seconds"] == 0.0
    assert not event["cold_start"]
    assert event["inference_ms"] > 50  # the simulated provider's latency, not just the tiny pipeline
    again = node.run(request("sim-api-provider", 5))
    assert again["image"] == event["image"]  # deterministic stand-in images


def test_registry_rejects_api_model_without_price(tmp_path: Path) -> None:
    bad = tmp_path / "models.toml"
    bad.write_text('[models.x]\nclass = "api"\nversion = "1"\n')
    with pytest.raises(RegistryError, match="api_cost_usd"):
        load_registry(bad)
    bad.write_text('[models.x]\nclass = "dalle"\nversion = "1"\n')
    with pytest.raises(RegistryError, match="expected one of"):
        load_registry(bad)


def test_nodes_load_pipelines_concurrently(tmp_path: Path) -> None:
    # Two nodes cold-starting the same models from executor threads (as live replay does).
    from concurrent.futures import ThreadPoolExecutor

    models = load_registry(PROJECT_ROOT / "models.toml")
    nodes = [InferenceNode(models, node_id=f"n{i}", cache_dir=tmp_path) for i in range(2)]
    names = sorted(m for m, spec in models.items() if not spec.is_api)
    with ThreadPoolExecutor(4) as pool:
        events = list(pool.map(lambda args: args[0].run(request(args[1], 7)),
                               [(node, name) for name in names for node in nodes]))
    by_model: dict[str, set[bytes]] = {}
    for e in events:
        by_model.setdefault(e["model_id"], set()).add(e["image"])
    assert all(len(images) == 1 for images in by_model.values())  # same seed, same weights, same image


def test_an_output_above_the_inline_limit_travels_by_reference(tmp_path: Path) -> None:
    import hashlib

    from inference.node import ImageTooLarge
    from objects.claims import check_refs
    from objects.store import ObjectStore

    models = load_registry(PROJECT_ROOT / "models.toml")
    cache = tmp_path / "models"
    inline = InferenceNode(models, node_id="t", cache_dir=cache, image_format="png").run(request("tiny-sd", 3))
    store = ObjectStore(tmp_path / "objects")
    small_limit = len(inline["image"]) - 1
    node = InferenceNode(models, node_id="t", cache_dir=cache, image_format="png", max_image_bytes=small_limit,
                         objects=store)
    photo = b"\xff\xd8" + bytes(small_limit)  # a customer photo above the limit too (bytes as given)
    event = node.run(JobRequest("job-big", "tiny-sd", "headshot", "a corporate headshot", 3,
                                datetime.now(timezone.utc), photo))
    check_job(event, max_image_bytes=small_limit)
    check_refs(event)
    assert event["image"] == b"" and event["reference_image"] is None
    ref = event["image_ref"]
    assert ref["size"] == len(inline["image"]) and ref["sha256"] == hashlib.sha256(inline["image"]).hexdigest()
    assert (tmp_path / "objects" / "sha256" / ref["sha256"][:2] / ref["sha256"]).read_bytes() == inline["image"]
    assert event["reference_image_ref"]["sha256"] == hashlib.sha256(photo).hexdigest()
    codec = AvroCodec("JobCompleted")
    assert codec.decode(codec.encode(event))["image_ref"] == ref
    without_store = InferenceNode(models, node_id="t", cache_dir=cache, image_format="png", max_image_bytes=small_limit)
    with pytest.raises(ImageTooLarge, match="no object store"):
        without_store.run(request("tiny-sd", 3))

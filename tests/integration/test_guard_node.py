"""Guard mode end to end on the embedded stack: the real `sentinel guard` service (its own
process, tiny CLIP, rubric.toml) judges a guarded `sentinel node` whose model plants bad outputs
(blank, wrong size, repeated bytes); the node delivers only passing images and publishes every
attempt, and the report's guard numbers equal a recomputation from the published events
(consumed from jobs.completed here, priced with the pricing file's formula written out below).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from devstack.guard_process import GuardProcess
from conftest import make_event, publish_events, running_stack, wait_for, consume_all
from PIL import Image


from config.rubric import load_rubric
from contracts.codec import AvroCodec
from contracts.verdict import CHECK_NAMES
from contracts.topics import JOBS_COMPLETED
from reports import report as reports
from warehouse.client import open_reader
from warehouse.window import Window

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = '[models.tiny-sd]\nclass = "sd"\nversion = "tiny-s1"\nseed = 1\nsteps = 1\n'
JOBS, SIZE, MAX_ATTEMPTS = 15, 64, 2


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from running_stack(tmp_path_factory, score_enabled=False)  # guard numbers need no CLIP scores


TOKEN = "guard-node-test-token"


@pytest.fixture(scope="module")
def guard_server():
    """`sentinel guard` on a free port, started before the stack (both take seconds to start);
    yields a function that waits for /healthz and returns the URL."""
    guard = GuardProcess({**os.environ, "SENTINEL_GUARD_TOKEN": TOKEN, "SENTINEL_LOG_LEVEL": "warning"},
                         cwd=ROOT).start()
    try:
        yield guard.wait_ready
    finally:
        guard.stop()


@pytest.fixture(scope="module")
def guarded_run(guard_server, stack, tmp_path_factory):
    registry = tmp_path_factory.mktemp("registry") / "models.toml"
    registry.write_text(REGISTRY)
    unguarded = [make_event(i, seed=77) for i in range(6)]  # other models, no guard: no guard rows
    publish_events(stack.broker.bootstrap, unguarded)
    env = {**os.environ, **stack.settings.to_env(), "SENTINEL_GUARD_TOKEN": TOKEN}
    out = subprocess.run([sys.executable, "-m", "cli.main", "node", "-m", "tiny-sd", "--jobs", str(JOBS),
                          "--seed", "2", "--node-id", "guarded-node", "--registry", str(registry),
                          "--guard", guard_server(), "--max-attempts", str(MAX_ATTEMPTS), "--plant-bad", "0.4"],
                         env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    published = int(re.search(r"published (\d+) jobs", out.stderr).group(1))
    codec = AvroCodec("JobCompleted")
    records = consume_all(stack.broker.bootstrap, JOBS_COMPLETED, published + len(unguarded), timeout=60)
    events = [e for e in (codec.decode(r.value) for r in records) if e["node_id"] == "guarded-node"]
    assert len(events) == published
    reader = open_reader(stack.settings.dsn)
    wait_for(lambda: reader.query("SELECT count() AS n FROM sentinel.jobs FINAL").column("n").to_pylist()[0]
             >= published + len(unguarded), 90, "every event stored", diagnose=stack.worker.log_tail)
    return events, reader, out.stderr


def _cost(event: dict, pricing: dict) -> float:
    """pricing.toml: gpu_seconds x $/h / 3600 x (1 + overhead) + fee (self-hosted CPU jobs here)."""
    price = pricing["gpu_usd_per_hour"][event["gpu_type"]]
    return (event["gpu_seconds"] * price / 3600 * (1 + pricing["orchestration_overhead"])
            + pricing["platform_fee_usd_per_image"])


def _ms(delta) -> float:
    return delta.total_seconds() * 1000.0


def _expected(events: list[dict], pricing: dict) -> dict:
    by_request: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        by_request[e["request_id"]].append(e)
    first = [next(a for a in attempts if a["attempt"] == 1) for attempts in by_request.values()]
    delivered = [e for e in events if e["delivered"]]
    added = []
    for attempts in by_request.values():
        kept = [a for a in attempts if a["delivered"]]
        if kept:
            a1 = next(a for a in attempts if a["attempt"] == 1)
            added.append(_ms(kept[0]["delivered_at"] - kept[0]["requested_at"])
                         - (_ms(a1["delivered_at"] - a1["requested_at"]) - a1["guard_ms"]))
    return {
        "requests": len(by_request), "attempts": len(events), "delivered": len(delivered),
        "failed_requests": len(by_request) - len(delivered),
        "first_attempt_pass_rate": float(np.mean([a["guard_passed"] for a in first])),
        "attempts_per_delivered": len(events) / len(delivered),
        "cost_per_delivered_usd": float(np.sum([_cost(e, pricing) for e in events])) / len(delivered),
        "p95_added_latency_ms": float(np.percentile(added, 95)),
        "failures": Counter(name for e in events for name in e["guard_failed_checks"]),
    }


def test_guarded_node_delivers_only_passing_images(guarded_run):
    events, _, stderr = guarded_run
    delivered = [e for e in events if e["delivered"]]
    discarded = [e for e in events if not e["delivered"]]
    assert discarded and delivered and len({e["request_id"] for e in events}) == JOBS
    assert all(e["guard_passed"] is True and e["guard_error"] is None for e in delivered)
    assert all(e["guard_passed"] is False and e["guard_failed_checks"] for e in discarded)
    digests = set()
    for e in delivered:  # checked here, independently of any guard: right size, not blank, not repeated
        image = Image.open(io.BytesIO(e["image"])).convert("RGB")
        assert image.size == (SIZE, SIZE) and np.asarray(image, dtype=float).std() >= 2.0
        digests.add(hashlib.sha256(e["image"]).hexdigest())
    assert len(digests) == len(delivered)
    failed = {name for e in discarded for name in e["guard_failed_checks"]}
    # every planted kind was caught: blank, wrong size (resolution and aspect), the previous output again
    assert {CHECK_NAMES["blank"], CHECK_NAMES["resolution"], CHECK_NAMES["aspect"], CHECK_NAMES["repeat"]} <= failed
    for request_id in {e["request_id"] for e in events}:
        attempts = sorted(e["attempt"] for e in events if e["request_id"] == request_id)
        assert attempts == list(range(1, len(attempts) + 1)) and len(attempts) <= MAX_ATTEMPTS
        assert sum(e["delivered"] for e in events if e["request_id"] == request_id) <= 1
    assert "request(s) failed every attempt" in stderr


def test_report_guard_numbers_equal_a_recomputation_from_the_events(guarded_run, stack, tmp_path):
    events, reader, _ = guarded_run
    pricing_file = tomllib.loads(Path(stack.settings.pricing_file).read_text())
    data = reports.benchmark(reader, stack.settings.pricing(), Window())
    guard = data["guard"]
    assert [r["model"] for r in guard["models"]] == ["tiny-sd"]  # unguarded models have no guard row
    assert [r["rubric_version"] for r in guard["rubrics"]] == [load_rubric().version]
    groups = [(guard["models"][0], events)] + [
        (row, [e for e in events if e["niche"] == row["niche"]]) for row in guard["niches"]]
    assert len(groups) == 1 + len({e["niche"] for e in events})
    for row, group in groups:
        want = _expected(group, pricing_file)
        for key in ("requests", "attempts", "delivered", "failed_requests"):
            assert row[key] == want[key], key
        for key in ("first_attempt_pass_rate", "attempts_per_delivered", "cost_per_delivered_usd",
                    "p95_added_latency_ms"):
            assert row[key] == pytest.approx(want[key], rel=1e-9, abs=1e-6), key
        assert {c["check"]: c["failed"] for c in row["failed_checks"]} == dict(want["failures"])
    # the per-image benchmark counts delivered images, priced with the discarded attempts' cost
    bench = next(r for r in data["models"] if r["model"] == "tiny-sd")
    want = _expected(events, pricing_file)
    assert bench["jobs"] == want["delivered"]
    assert bench["cost_per_image_usd"] == pytest.approx(want["cost_per_delivered_usd"], rel=1e-9)
    assert bench["guard_attempts_per_delivered"] == pytest.approx(want["attempts_per_delivered"], rel=1e-9)
    other = next(r for r in data["models"] if r["model"] != "tiny-sd")
    assert other["guard_requests"] is None  # every row carries the guard keys (CSV), None without guarding
    for text in (reports.render_markdown(data), reports.render_html(data)):
        assert "Guard mode" in text and load_rubric().version in text
    _check_csv_and_json(data, want, tmp_path)


def _check_csv_and_json(data: dict, want: dict, tmp_path: Path) -> None:
    """The CLI's CSV and JSON outputs carry the same guard numbers."""
    import csv
    import json

    from cli.query import _emit_report

    _emit_report(data, "csv", tmp_path / "r.csv")
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    row = next(r for r in rows if r["model"] == "tiny-sd" and r["niche"] == "*")
    assert float(row["guard_cost_per_delivered_usd"]) == pytest.approx(want["cost_per_delivered_usd"], rel=1e-9)
    assert float(row["guard_first_attempt_pass_rate"]) == pytest.approx(want["first_attempt_pass_rate"])
    _emit_report(data, "json", tmp_path / "r.json")
    guard = json.loads((tmp_path / "r.json").read_text())["guard"]
    assert guard["models"][0]["attempts_per_delivered"] == pytest.approx(want["attempts_per_delivered"], rel=1e-9)


def test_live_view_shows_pass_rate_and_failures_by_check(guarded_run, stack):
    import json
    import urllib.request

    events, _, _ = guarded_run
    with urllib.request.urlopen(f"{stack.worker.url}/sentinel/live/?window=all", timeout=10) as response:
        rows = [r for r in json.loads(response.read())["rows"] if r["model"] == "tiny-sd"]
    assert sorted(r["niche"] for r in rows) == sorted({e["niche"] for e in events})
    for row in rows:
        group = [e for e in events if e["niche"] == row["niche"]]
        assert row["guarded_attempts"] == len(group) and row["discarded"] == sum(not e["delivered"] for e in group)
        assert row["guard_pass_rate"] == pytest.approx(np.mean([e["guard_passed"] for e in group]))
        assert row["failed_by_check"] == dict(Counter(c for e in group for c in e["guard_failed_checks"]))
    with urllib.request.urlopen(f"{stack.worker.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    for niche in {e["niche"] for e in events}:  # Prometheus: the last hour, these events included
        group = [e for e in events if e["niche"] == niche]
        [value] = re.findall(rf'^sentinel_guard_pass_rate\{{model="tiny-sd",niche="{niche}"\}} (\S+)$', text, re.M)
        assert float(value) == pytest.approx(np.mean([e["guard_passed"] for e in group]))


def test_a_bundle_of_guarded_traffic_exports_and_verifies(guarded_run, stack, tmp_path):
    """`sentinel bundle export/verify` over everything stored (discarded attempts included): the
    report recomputed from the bundle, guard section and all, equals the exported one."""
    env = {**os.environ, **stack.settings.to_env()}
    bundle = tmp_path / "bundle"
    done = subprocess.run([sys.executable, "-m", "cli.main", "bundle", "export", "--from", "2000-01-01",
                           "--to", "2100-01-01", str(bundle)], env=env, capture_output=True, text=True, timeout=180,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    verify_env = {**env, "SENTINEL_DATA_DIR": str(tmp_path / "nothing-here"), "SENTINEL_BROKER_URL": "kafka://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", "cli.main", "bundle", "verify", str(bundle)], env=verify_env,
                          capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0 and " 0 differ" in done.stderr, done.stderr[-3000:]
    import json

    report = json.loads((bundle / "report" / "report.json").read_text())
    assert report["guard"]["models"][0]["attempts"] == len(guarded_run[0])

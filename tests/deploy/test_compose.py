"""The production compose file cannot be started here (no Docker engine), so check it
statically: it parses, and everything it references from the repo exists."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import yaml

from config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_images() -> None:
    services = compose()["services"]
    assert {"kafka", "clickhouse", "grafana", "worker-1", "worker-2", "node-1"} <= set(services)
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert re.fullmatch(r"clickhouse/clickhouse-server:26\.\d+", services["clickhouse"]["image"])
    workers = [name for name in services if name.startswith("worker-")]
    assert len(workers) >= 2
    worker_ids = {services[w]["environment"]["SENTINEL_WORKER_ID"] for w in workers}
    assert len(worker_ids) == len(workers), "static group membership needs a distinct id per worker"


def test_role_split_one_store_and_scoring_workers_that_use_it() -> None:
    """The store role owns migrations and snapshots; every scoring worker waits for it and
    leaves both to it (SENTINEL_USE_STORE), and talks to the ClickHouse server, not to chDB."""
    services = compose()["services"]
    assert services["store"]["command"] == ["store"]
    assert "/healthz" in " ".join(services["store"]["healthcheck"]["test"])
    port = services["store"]["environment"]["SENTINEL_STORE_PORT"]
    assert f"localhost:{port}/healthz" in " ".join(services["store"]["healthcheck"]["test"])
    for name in (n for n in services if n.startswith("worker-")):
        svc = services[name]
        assert svc["command"] == ["worker"], name
        assert svc["environment"]["SENTINEL_USE_STORE"] == "true", name
        assert svc["depends_on"]["store"] == {"condition": "service_healthy"}, name
        assert svc["environment"]["SENTINEL_CLICKHOUSE_DSN"].startswith("http://"), name


def test_referenced_files_exist() -> None:
    for name, svc in compose()["services"].items():
        if "build" in svc:
            context = ROOT / (svc["build"] if isinstance(svc["build"], str) else svc["build"]["context"])
            assert (context / "Dockerfile").exists(), name
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src


def test_environment_names_known_settings() -> None:
    known = {f"SENTINEL_{f.name.upper()}" for f in fields(Settings)}
    for name, svc in compose()["services"].items():
        for key in svc.get("environment", {}):
            if key.startswith("SENTINEL_"):
                assert key in known, f"{name}: {key} is not a setting"


def test_grafana_dashboard_queries_known_tables() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/sentinel.json").read_text())
    ddl = "".join(
        p.read_text() for p in sorted((ROOT / "sql/migrations").glob("*.sql")))
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for table in re.findall(r"sentinel\.(\w+)", target["rawSql"]):
                assert f"sentinel.{table}" in ddl, table


def test_every_package_is_installed_and_copied_into_the_image() -> None:
    """A package missing from pyproject's list or the Dockerfile works in the editable dev install
    and fails only in a built image (worker.agents and worker.stages once were)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {str(p.parent.relative_to(ROOT)).replace("/", ".") for p in ROOT.glob("*/**/__init__.py")
             if p.parts[len(ROOT.parts)] not in ("tests", "bench", ".venv", "build")}
    assert found == listed
    copied = {line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")}
    assert {name for name in listed if "." not in name} <= copied

"""`sentinel up` as a user runs it: a real process on free ports (port 0), found by other
commands through its discovery file, a refused query that leaves the next one alone, and no
child or port left behind when it is stopped with SIGTERM or killed outright."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from conftest import wait_for

from devstack.broker_probes import port_accepts
from devstack.discovery import running_stack, stack_file
from devstack.process_group import group_members, poll_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    return {**env, "SENTINEL_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "COLUMNS": "1000", **extra}


def sentinel(data_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *argv], env=env_for(data_dir), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def children(pid: int) -> list[int]:
    """Every live process in the session of each direct child of ``pid`` (broker, worker)."""
    direct = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == pid]
    return sorted({m for child in direct for m in group_members(child)})


def _ppid(proc: Path) -> int | None:
    try:
        stat = (proc / "stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2:].split()[1])


@pytest.fixture
def up(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    data_dir = tmp_path / "data"
    log = (tmp_path / "up.log").open("wb")
    workers = getattr(request, "param", 1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "up", "--workers", str(workers)], cwd=ROOT, stdout=log,
        stderr=subprocess.STDOUT,
        env=env_for(data_dir, SENTINEL_BROKER_URL="kafka://127.0.0.1:0", SENTINEL_WEB_PORT="0", SENTINEL_STORE_PORT="0",
                    SENTINEL_PARTITIONS="2", SENTINEL_SCORE_ENABLED="false",
                    SENTINEL_APP_ID=f"sentinel-up-{os.getpid()}"))
    try:
        wait_for(lambda: running_stack(data_dir) or proc.poll() is not None, 240, "sentinel up to announce itself",
                 diagnose=lambda: (tmp_path / "up.log").read_text(errors="replace")[-3000:])
        assert proc.poll() is None, (tmp_path / "up.log").read_text(errors="replace")[-3000:]
        yield proc, data_dir
    finally:
        for pid in children(proc.pid) if proc.poll() is None else []:
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()


def ports(data_dir: Path) -> list[tuple[str, int]]:
    info = json.loads(stack_file(data_dir).read_text())
    return [(url.split("://")[1].rsplit(":", 1)[0], int(url.rsplit(":", 1)[1])) for url in (info["broker_url"], info["web_url"])]


@pytest.mark.parametrize("up", [1, 2], indirect=True, ids=["one-worker", "two-workers-and-a-store"])
def test_commands_find_the_stack_and_sigterm_leaves_nothing(up, request) -> None:
    proc, data_dir = up
    workers = request.node.callspec.params["up"]
    owner = json.loads((data_dir / "chdb.owner.json").read_text())
    assert owner["role"] == ("store" if workers > 1 else "worker")  # sql below goes through it
    listening = ports(data_dir)
    assert all(port_accepts(host, port) for host, port in listening)

    # the broker comes from the discovery file: no SENTINEL_BROKER_URL in these commands' environment
    listed = sentinel(data_dir, "dlq", "list", "-f", "json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr

    # a refused multi-statement never affects the next query (it did, 5 of 5 tries: "Invalid IPC stream")
    for _ in range(2):
        refused = sentinel(data_dir, "sql", "SELECT 1; DROP TABLE sentinel.jobs")
        assert refused.returncode == 1 and "one statement per query" in refused.stderr, refused.stderr
        valid = sentinel(data_dir, "sql", "SELECT count() AS n FROM sentinel.jobs", "-f", "json")
        assert valid.returncode == 0 and json.loads(valid.stdout) == [{"n": 0}], valid.stderr

    kids = children(proc.pid)
    assert len(kids) >= 2 + (workers - 1) + (workers > 1)  # the broker, the worker(s), the store
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 0
    assert poll_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in kids), time.monotonic() + 10), kids
    assert not any(port_accepts(host, port) for host, port in listening)
    assert not stack_file(data_dir).exists()


def test_children_exit_when_up_is_killed(up) -> None:
    proc, data_dir = up
    listening = ports(data_dir)
    kids = children(proc.pid)
    assert len(kids) >= 2
    proc.kill()  # no handler runs: only the kernel's parent-death signal reaches the children
    proc.wait()
    assert poll_until(lambda: not any(_alive(pid) for pid in kids), time.monotonic() + 20), \
        [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in kids if _alive(pid)]
    assert poll_until(lambda: not any(port_accepts(host, port) for host, port in listening),
                      time.monotonic() + 10), _listeners(listening)
    assert running_stack(data_dir) is None  # the file stays, but names a dead process


def _alive(pid: int) -> bool:
    """Running and not a zombie (a reparented child may wait for PID 1 to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def _listeners(listening: list[tuple[str, int]]) -> str:
    """Who still listens on these ports (for the failure message)."""
    return "\n".join(subprocess.run(["ss", "-ltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
                     for _, port in listening)

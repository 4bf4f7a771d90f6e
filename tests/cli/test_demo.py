"""The demo's orchestration without a stack: job split, waiting for scores, stopping nodes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer

from cli.demo import _jobs_per_model, _look_again, _stop_nodes, _wait_until_scored


def test_jobs_split_evenly_first_nodes_take_the_rest() -> None:
    assert _jobs_per_model(300, 8) == [38] * 4 + [37] * 4
    assert _jobs_per_model(2, 3) == [1, 1, 0]


class Reader:
    def __init__(self, jobs: int, scored: int) -> None:
        self.row = {"jobs": jobs, "scored": scored, "ratings": 0}

    def query(self, sql: str, params=None):
        return SimpleNamespace(to_pylist=lambda: [self.row])


def fake_stack(tmp_path, worker_exit=None):
    proc = SimpleNamespace(poll=lambda: worker_exit)
    return SimpleNamespace(settings=SimpleNamespace(data_dir=tmp_path),
                           worker=SimpleNamespace(proc=proc, log_tail=lambda: "worker log"))


def node(exit_code):
    return ("flux", SimpleNamespace(poll=lambda: exit_code, returncode=exit_code), None)


def _node_log(tmp_path, published: int) -> None:
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / "logs" / "node-flux.log").write_text(f"... published {published} jobs to 127.0.0.1:9092\n")


def test_returns_once_every_published_event_is_stored_and_scored(tmp_path) -> None:
    _node_log(tmp_path, 5)
    _wait_until_scored(Reader(5, 5), fake_stack(tmp_path), [node(0)], jobs=5, timeout=60)


def test_waits_for_a_guarded_nodes_discarded_attempts_too(tmp_path, capsys) -> None:
    _node_log(tmp_path, 7)  # 5 jobs, 2 of them needed a second attempt: 7 events
    with pytest.raises(typer.Exit):
        _wait_until_scored(Reader(5, 5), fake_stack(tmp_path), [node(0)], jobs=5, timeout=0)
    assert "timed out" in capsys.readouterr().err
    _wait_until_scored(Reader(7, 7), fake_stack(tmp_path), [node(0)], jobs=5, timeout=60)


@pytest.mark.parametrize("nodes, worker_exit, why", [
    ([node(3)], None, "node flux exited with 3"),
    ([node(0)], 1, "worker exited:\nworker log"),
    ([node(None)], None, "timed out after 0s"),
])
def test_fails_naming_why(tmp_path, capsys, nodes, worker_exit, why) -> None:
    with pytest.raises(typer.Exit) as exc:
        _wait_until_scored(Reader(5, 2), fake_stack(tmp_path, worker_exit), nodes, jobs=5, timeout=0)
    assert exc.value.exit_code == 1
    assert why in capsys.readouterr().err


def test_stop_nodes_ends_running_nodes_and_closes_their_logs(tmp_path) -> None:
    log = (tmp_path / "node.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdout=log)
    _stop_nodes([("flux", proc, log)])
    assert proc.returncode is not None and proc.returncode < 0
    assert log.closed


def test_the_demo_ends_with_commands_that_read_its_store() -> None:
    lines = _look_again(Path(".sentinel/my demo")).splitlines()
    assert "stays in .sentinel/my demo" in lines[0]
    assert lines[1].split() == ["SENTINEL_DATA_DIR='.sentinel/my", "demo'", "sentinel", "report"]
    assert lines[2].startswith("  SENTINEL_DATA_DIR='.sentinel/my demo' sentinel sql ")

"""Several workers sharing the partitions, with a store role owning the embedded warehouse (#21).

One stack for the module: tansu (its group coordinator evicts a SIGKILLed member after the
session timeout, as Kafka does; noida-db never does: docs/scale-out.md), a `sentinel store`
process owning chDB, and three workers. Checked after each fault, over everything published so
far (tests/exactness.py): ClickHouse holds exactly the published job ids with the first copy's
content, one score per job and scorer version; the report equals numpy; the live tallies, merged
over the workers from the partitions each holds, equal a recomputation from the published
events; the FID moment states hold every first copy once; every dead letter is accounted for.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from conftest import wait_for

from exactness import Ledger, check_exactly_once, jobs, reader, record, send
from sentinel.buckets import live_snapshot

pytestmark = pytest.mark.integration


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def held_partitions(stack) -> dict[str, list[int]]:
    """jobs.completed partitions per live worker (a worker that does not answer holds none)."""
    out = {}
    for w in stack.workers:
        if not w.alive():
            continue
        try:
            out[w.settings.worker_id] = get_json(f"{w.url}/sentinel/ready/")["partitions"]
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            out[w.settings.worker_id] = []
    return out


def merged_live_rows(stack) -> dict[str, dict]:
    """The live tallies of the whole group: each live worker's states of the partitions it holds,
    merged (the states are mergeable); a partition held twice or by nobody is not settled yet."""
    items: list[tuple[str, Any]] = []
    for w in stack.workers:
        if w.alive():
            try:
                items += list(get_json(f"{w.url}/sentinel/sketches/").items())
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                return {}
    merged = live_snapshot(items, float("-inf"))
    return {f"{m}|{n}": state.compute() for (m, n), state in merged.items()}


def tallied(stack) -> int:
    return sum(r["jobs"] for r in merged_live_rows(stack).values())


def stored(stack) -> dict[str, int]:
    try:
        return reader(stack).query("SELECT (SELECT count() FROM sentinel.jobs FINAL) AS jobs, "
                                   "(SELECT count() FROM sentinel.scores FINAL) AS scores").to_pylist()[0]
    except Exception:  # noqa: BLE001 - the store may be restarting
        return {"jobs": -1, "scores": -1}


def stored_jobs(stack) -> int:
    return stored(stack)["jobs"]


def settled(stack, n: int) -> bool:
    """Every partition held by exactly one live worker, all ``n`` jobs stored, scored and tallied."""
    held = [p for parts in held_partitions(stack).values() for p in parts]
    return (sorted(held) == list(range(stack.settings.partitions)) and stored(stack) == {"jobs": n, "scores": n}
            and tallied(stack) == n)


def stream_of(seed: int, n: int, rng: random.Random) -> list[tuple[str, dict]]:
    """``n`` jobs with re-sent duplicates and re-used job ids (conflicts) among them."""
    events = jobs(seed, n)
    stream: list[tuple[str, dict]] = []
    for i, e in enumerate(events):
        stream.append(("first", e))
        if i > 10 and rng.random() < 0.01:
            stream.append(("duplicate", events[rng.randrange(max(0, i - 400), i)]))
        if i > 10 and rng.random() < 0.004:
            old = events[rng.randrange(max(0, i - 400), i)]
            stream.append(("conflict", {**old, "gpu_seconds": old["gpu_seconds"] + 1.5, "node_id": "rogue"}))
    return stream


def publish_in_background(stack, stream: list[tuple[str, dict]], chunk: int, pause: float) -> tuple[threading.Thread, list, list]:
    where: list[tuple[int, int]] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            # tansu refuses idempotent producers (PLATFORM notes); a send is awaited before the next
            where.extend(send(stack.broker.bootstrap, [record(e) for _, e in stream], chunk=chunk, pause=pause,
                              idempotent=False))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="publisher")
    thread.start()
    return thread, where, failure


def into_ledger(ledger: Ledger, stream: list[tuple[str, dict]], where: list[tuple[int, int]]) -> None:
    assert len(where) == len(stream)
    for (kind, e), at in zip(stream, where):
        if kind == "first":
            ledger.first[e["job_id"]] = e
        elif kind == "conflict":
            ledger.dead[at] = "duplicate_job_id_conflict"


def diagnosis(stack) -> str:
    logs = "\n".join(f"--- {w.settings.worker_id} ---\n{w.log_tail(1500)}" for w in stack.workers if w.alive())
    return f"held {held_partitions(stack)}\nstored {stored(stack)} tallied {tallied(stack)}\n{logs}"


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    from config.settings import load_settings
    from devstack.stack import EmbeddedStack

    settings = load_settings(env={}, data_dir=tmp_path_factory.mktemp("scale"), partitions=6, score_batch_wait_s=0.2,
                             sink_batch_wait_s=0.3, app_id=f"sentinel-scale-{os.getpid()}")
    stack = EmbeddedStack(settings, broker_kind="tansu", workers=3).start()
    try:
        yield stack
    finally:
        stack.stop()


def test_the_store_role_owns_the_warehouse_and_workers_go_through_it(stack):
    from warehouse.client import RemoteWarehouse, open_reader
    from warehouse.owner import live_owner

    owner = live_owner(stack.settings.chdb_path)
    assert owner is not None and owner.role == "store" and owner.pid == stack.store.proc.pid
    assert isinstance(open_reader(stack.settings.dsn), RemoteWarehouse)
    held = held_partitions(stack)
    assert len(held) == 3 and sorted(p for parts in held.values() for p in parts) == list(range(6)), held
    # every worker serves the rating page with the store's token (what `sentinel ratings url` hands out)
    from worker.ratings import rater_token

    for w in stack.workers:
        with urllib.request.urlopen(f"{w.url}/sentinel/rate/?token={rater_token(owner.token)}&rater=r1",
                                    timeout=10) as page:
            assert page.status == 200


def test_three_workers_one_killed_one_joining_lose_and_double_nothing(stack, ledger):
    rng = random.Random(21)
    stream = stream_of(2101, 3000, rng)
    assert sum(k == "duplicate" for k, _ in stream) >= 10 and sum(k == "conflict" for k, _ in stream) >= 5
    publisher, where, failure = publish_in_background(stack, stream, chunk=40, pause=0.25)

    victim = stack.workers[1]
    wait_for(lambda: stored_jobs(stack) >= 600, 240, "600 jobs stored before the kill", interval=0.2,
             diagnose=lambda: diagnosis(stack))
    victim.kill()  # SIGKILL: no commit, no leave; the group evicts it after the session timeout
    wait_for(lambda: stored_jobs(stack) >= 1500, 300, "1,500 jobs stored before a worker joins", interval=0.2,
             diagnose=lambda: diagnosis(stack))
    stack.add_worker()
    publisher.join(600)
    assert not failure, failure
    into_ledger(ledger, stream, where)

    wait_for(lambda: settled(stack, len(ledger.first)), 300, "every job stored and tallied, partitions settled",
             interval=1.0, diagnose=lambda: diagnosis(stack))
    check_exactly_once(stack, ledger, merged_live_rows)
    # any worker's group view (what the live page shows) is that merge
    group = get_json(f"{stack.worker.url}/sentinel/live/?window=all&scope=group")
    assert group["missing"] == [] and {f"{r['model']}|{r['niche']}": r["jobs"] for r in group["rows"]} == \
        {k: v["jobs"] for k, v in merged_live_rows(stack).items()}
    held = held_partitions(stack)
    assert set(held) == {"worker-1", "worker-3", "worker-4"} and all(held.values()), held


def test_store_role_killed_and_restarted_mid_stream(stack, ledger):
    rng = random.Random(22)
    stream = stream_of(2102, 1000, rng)
    before = stored_jobs(stack)
    publisher, where, failure = publish_in_background(stack, stream, chunk=40, pause=0.25)
    wait_for(lambda: stored_jobs(stack) >= before + 200, 240, "200 new jobs stored before the store dies",
             interval=0.2, diagnose=lambda: diagnosis(stack))
    from warehouse.owner import live_owner

    old_pid, token = stack.store.proc.pid, live_owner(stack.settings.chdb_path).token
    stack.store.kill()  # SIGKILL: the workers see an outage and retry
    time.sleep(3)
    stack.restart_store()
    assert stack.store.proc.pid != old_pid
    assert live_owner(stack.settings.chdb_path).token == token  # links and workers keep working
    publisher.join(600)
    assert not failure, failure
    into_ledger(ledger, stream, where)
    wait_for(lambda: settled(stack, len(ledger.first)), 300, "every job stored and tallied after the store restart",
             interval=1.0, diagnose=lambda: diagnosis(stack))
    check_exactly_once(stack, ledger, merged_live_rows)

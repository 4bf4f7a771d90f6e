"""Compare embedded brokers on Faust table recovery after hard worker crashes.

For each broker kind (noida-db, tansu) and producer variant, this script:

1. starts the broker with :class:`devstack.broker.EmbeddedBroker`;
2. runs a minimal Faust app in a *subprocess* (this file with ``--worker``):
   an agent counts events per key into a changelog-backed table with the
   memory store, so every restart rebuilds the table from the changelog;
3. produces ``--events`` events with aiokafka, in chunks, and SIGKILLs the
   worker at a random point in each chunk, ``--restarts`` times;
4. lets the last worker drain, reads its table over the Faust web view and
   compares it with the exact expected counts.

Updates are idempotent: the table value stores the count *and* the last
applied source offset, and events at or below that offset are skipped.
Faust is at-least-once (after a crash it re-reads from the last committed
source offset, while the changelog already holds the effect of those events),
so with a correct broker the guarded count must come out exact. Any missing
update therefore means the changelog was not fully restored -- the reported
tansu ListOffsets(latest) bug. The value also carries a naive (unguarded)
count, to show how many updates plain at-least-once would have doubled.

Variants:

* ``default``: Faust's producer settings left alone (multi-record batches on
  the changelog), static group membership (``consumer_group_instance_id``).
* ``batch1``: ``producer_max_batch_size=1``, so every changelog record is its
  own batch, which sidesteps the tansu ListOffsets bug.
* ``dynamic``: like ``default`` but without static membership, i.e. the
  restarted worker must wait for the broker to expire the killed member.
  noida-db 0.2.3 never expires it, so this variant hangs there (and is
  reported as such after ``--restart-ready-timeout``).

Report columns: *lost* splits into updates a worker applied and wrote but a
later worker did not restore (broker: changelog highwater) and events no
worker ever applied (Faust: see below); *skipped at restart* counts events
between the committed offset and the first event a restarted worker's agent
received (harmless when the killed worker had already applied them);
*unguarded doubles* is what a plain ``count += 1`` would have over-counted;
times are seconds from spawning the worker process to its web server
answering (*up*), its first partition assignment (*joined*) and table
recovery done with all partitions owned (*ready*).

Faust caveat this bench exposed (faust-streaming 0.15.3; seen on noida, not
a broker fault): after a restart the agent occasionally never receives the
record at the committed offset, and a worker killed before its first commit
once restarted at the log end. Likely cause (code reading): records fetched
while flow is still suspended are discarded and Faust "seeks back to
committed offsets", which aiokafka's ``seek_to_committed`` skips for
partitions whose committed offset is missing or 0.

Usage::

    python bench/broker_recovery.py --restarts 6 --events 3000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TABLE = "counts"

log = logging.getLogger("broker_recovery")

# Faust settings that make local group joins fast (Kafka's minimum session
# timeout is 6 s; noida enforces it).
FAUST_FAST_JOIN = {
    "broker_session_timeout": 6,
    "broker_rebalance_timeout": 6,
    "broker_heartbeat_interval": 1,
}


@dataclass(frozen=True)
class Variant:
    max_batch_size: int | None  # Faust producer_max_batch_size; None = default
    static_membership: bool  # consumer_group_instance_id, stable across restarts


VARIANTS = {
    "default": Variant(max_batch_size=None, static_membership=True),
    "batch1": Variant(max_batch_size=1, static_membership=True),
    "dynamic": Variant(max_batch_size=None, static_membership=False),
}


# ---------------------------------------------------------------------------
# Worker (runs in a subprocess)
# ---------------------------------------------------------------------------


def run_worker(args: argparse.Namespace) -> None:
    """The Faust app under test. Exposes ``/state/`` with the table and stats."""
    boot = time.time()
    import faust

    conf: dict[str, Any] = dict(
        broker=args.broker_url,
        store="memory://",
        topic_partitions=args.partitions,
        web_enabled=True,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_port=args.web_port,
        datadir=args.datadir,
        broker_commit_interval=args.commit_interval,
        **FAUST_FAST_JOIN,
    )
    if args.max_batch_size:
        conf["producer_max_batch_size"] = args.max_batch_size
    if args.group_instance_id:
        # Static membership: a restarted worker takes over the killed one's
        # place at once instead of waiting for the broker to expire it.
        conf["consumer_group_instance_id"] = args.group_instance_id
    app = faust.App(args.app_id, **conf)
    source = app.topic(
        args.topic,
        partitions=args.partitions,
        key_serializer="raw",
        value_serializer="raw",
    )
    # Value: [guarded count, last applied source offset, naive count].
    table = app.Table(TABLE, default=None, partitions=args.partitions)
    stats: Counter[str] = Counter()
    times: dict[str, float] = {"boot": boot}
    # Per source partition: first offset this worker saw, and jumps in the
    # offsets its agent received (events the stream never delivered).
    first_seen: dict[int, int] = {}
    last_seen: dict[int, int] = {}
    gaps: list[list[int]] = []

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        times.setdefault("first_assigned", time.time())
        times["last_assigned"] = time.time()

    @app.on_rebalance_complete.connect
    async def on_complete(sender: Any, **kwargs: Any) -> None:
        times.setdefault("first_rebalance_complete", time.time())

    @app.agent(source)
    async def count(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            # Keyed by source partition: the changelog record goes to the
            # same partition as the source event, so no repartitioning.
            key = f"{msg.partition}:{msg.key.decode()}"
            first_seen.setdefault(msg.partition, msg.offset)
            prev_offset = last_seen.get(msg.partition)
            if prev_offset is not None and msg.offset > prev_offset + 1 and len(gaps) < 20:
                gaps.append([msg.partition, prev_offset + 1, msg.offset - 1])
            last_seen[msg.partition] = max(msg.offset, prev_offset if prev_offset is not None else -1)
            cur = table.get(key)
            naive = (cur[2] if cur else 0) + 1
            if cur is not None and msg.offset <= cur[1]:
                stats["skipped"] += 1
                table[key] = [cur[0], cur[1], naive]
                continue
            stats["applied"] += 1
            table[key] = [(cur[0] if cur else 0) + 1, msg.offset, naive]

    @app.page("/state/")
    async def state(web: Any, request: Any) -> Any:
        # Ready = this worker owns every source partition and has finished
        # restoring the table; a worker that joined next to a not-yet-expired
        # dead member may own only some partitions.
        assigned = sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == args.topic)
        ready = (
            app.tables.recovery.completed.is_set()
            and not app.rebalancing
            and len(assigned) == args.partitions
        )
        if ready:
            times.setdefault("first_ready", time.time())
        return web.json(
            {
                "ready": ready,
                "assigned": assigned,
                "table": {k: list(v) for k, v in table.items()},
                "stats": dict(stats),
                "first_seen": first_seen,
                "gaps": gaps,
                "times": times,
            }
        )

    worker = faust.Worker(app, loglevel="info", quiet=True)
    worker.execute_from_commandline()


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


@dataclass
class RunResult:
    broker: str
    variant: str
    restarts_done: int = 0
    exact: bool = False
    lost_updates: int = 0
    lost_never_applied: int = 0  # no worker ever processed the event (Faust drop)
    lost_in_recovery: int = 0  # applied and written, then not restored (broker)
    # Events between the committed offset and the first event a restarted
    # worker's agent saw: Faust moved past them without processing them.
    events_skipped_at_restart: int = 0
    final_cycle_first_seen: dict[str, int] = field(default_factory=dict)
    doubled_updates: int = 0
    missing_keys: int = 0
    naive_doubled: int = 0
    events: int = 0
    worker_start_s: list[float] = field(default_factory=list)
    worker_assigned_s: list[float | None] = field(default_factory=list)
    worker_ready_s: list[float] = field(default_factory=list)
    kills_after_ready_s: list[float] = field(default_factory=list)
    cycles: list[dict[str, Any]] = field(default_factory=list)
    drain_s: float | None = None
    final_worker_stats: dict[str, Any] = field(default_factory=dict)
    total_s: float = 0.0
    broker_start_s: float | None = None
    changelog: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class WorkerProc:
    """One Faust worker subprocess in its own process group."""

    def __init__(self, cmd: list[str], log_path: Path, web_port: int) -> None:
        self.log_path = log_path
        self.web_port = web_port
        self.spawned = time.time()
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in reap()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pgid(self) -> int:
        return self.proc.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, sig)

    def reap(self, timeout: float = 20.0) -> None:
        """SIGTERM (graceful Faust shutdown), then SIGKILL; always waits."""
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d ignored SIGTERM, killing", self.proc.pid)
                self.kill(signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()

    def tail(self, n: int = 3000) -> str:
        data = self.log_path.read_bytes()
        return data[-n:].decode("utf-8", "replace")


async def fetch_state(session: Any, port: int) -> dict[str, Any] | None:
    try:
        async with session.get(f"http://127.0.0.1:{port}/state/", timeout=2) as resp:
            if resp.status == 200:
                return await resp.json()
    except Exception:
        return None
    return None


@dataclass
class Spawned:
    """Process groups and ports this run created, checked at the end for leaks."""

    pgids: list[int] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)


async def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    """The group's committed source offsets: where a restarted worker must resume.

    Uses a consumer's OffsetFetch (no group join); the admin client's
    list_consumer_group_offsets cannot parse tansu's answer.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    except Exception as exc:  # informational only
        log.warning("could not read committed offsets: %s", exc)
        return {}
    finally:
        await consumer.stop()


async def watch(session: Any, port: int, into: dict[str, Any]) -> None:
    """Keep the latest worker state in ``into`` (what it had done before the kill)."""
    while True:
        st = await fetch_state(session, port)
        if st is not None:
            into.update(st)
        await asyncio.sleep(0.2)


async def bench_one(kind: str, variant: str, args: argparse.Namespace, workdir: Path, spawned: Spawned) -> RunResult:
    import aiohttp
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from devstack.broker import EmbeddedBroker, free_port

    res = RunResult(broker=kind, variant=variant, events=args.events)
    rng = random.Random(f"{args.seed}-{kind}-{variant}")
    run_id = uuid.uuid4().hex[:8]
    app_id = f"bench-{kind}-{variant}-{run_id}"
    topic = f"events-{run_id}"
    rundir = workdir / f"{kind}-{variant}"
    rundir.mkdir(parents=True)
    began = time.monotonic()
    broker = EmbeddedBroker(kind, data_dir=rundir / "broker")
    workers: list[WorkerProc] = []
    expected: Counter[str] = Counter()
    produced: set[tuple[str, int]] = set()  # (table key, source offset)
    expected_last: dict[str, int] = {}
    stack = contextlib.AsyncExitStack()
    try:
        broker.start()
        spawned.pgids.append(broker.pid or 0)
        spawned.ports.append(broker.port)
        res.broker_start_s = round(broker.startup_seconds or 0.0, 3)
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, args.partitions, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)  # default settings on purpose
        await producer.start()
        stack.push_async_callback(producer.stop)

        chunks = [args.events // (args.restarts + 1)] * (args.restarts + 1)
        chunks[-1] += args.events - sum(chunks)
        seq = 0

        async def produce(n: int, kill_at: int | None, kill_evt: asyncio.Event) -> None:
            nonlocal seq
            sent = 0
            while sent < n:
                burst = min(args.burst, n - sent)
                futs = []
                for _ in range(burst):
                    key = f"k{seq % args.keys}"
                    futs.append((key, await producer.send(topic, key=key.encode(), value=json.dumps({"seq": seq}).encode())))
                    seq += 1
                for key, fut in futs:
                    md = await fut
                    k = f"{md.partition}:{key}"
                    expected[k] += 1
                    expected_last[k] = max(expected_last.get(k, -1), md.offset)
                    produced.add((k, md.offset))
                sent += burst
                if kill_at is not None and sent >= kill_at:
                    kill_evt.set()
                await asyncio.sleep(burst / args.rate)
            kill_evt.set()

        async with aiohttp.ClientSession() as session:
            for cycle, chunk in enumerate(chunks):
                web_port = free_port()
                cmd = [
                    sys.executable, str(Path(__file__).resolve()), "--worker",
                    "--broker-url", broker.url, "--app-id", app_id, "--topic", topic,
                    "--web-port", str(web_port), "--datadir", str(rundir / "faust"),
                    "--partitions", str(args.partitions), "--commit-interval", str(args.commit_interval),
                ]  # fmt: skip
                if VARIANTS[variant].max_batch_size:
                    cmd += ["--max-batch-size", str(VARIANTS[variant].max_batch_size)]
                if VARIANTS[variant].static_membership:
                    cmd += ["--group-instance-id", f"{app_id}-worker-1"]
                w = WorkerProc(cmd, rundir / f"worker-{cycle}.log", web_port)
                workers.append(w)
                spawned.pgids.append(w.pgid)
                spawned.ports.append(web_port)
                web_up = ready_at = None
                at_ready: dict[str, Any] = {}
                ready_timeout = args.ready_timeout if cycle == 0 else args.restart_ready_timeout
                deadline = time.time() + ready_timeout
                while ready_at is None:
                    if w.proc.poll() is not None:
                        raise RuntimeError(f"worker {cycle} exited ({w.proc.returncode}):\n{w.tail()}")
                    if time.time() > deadline:
                        joins = w.log_path.read_text(errors="replace").count("Joined group")
                        raise RuntimeError(
                            f"worker {cycle} not ready after {ready_timeout:.0f}s "
                            f"({joins} JoinGroup rounds, never synced); log tail:\n{w.tail(600)}"
                        )
                    st = await fetch_state(session, web_port)
                    if st is not None:
                        web_up = web_up or time.time()
                        if st["ready"]:
                            ready_at = time.time()
                            at_ready = st
                    await asyncio.sleep(0.1)
                # Worker-side clock (same host): when Faust got its first
                # assignment, i.e. how long the group join took.
                wt = at_ready.get("times", {})
                restored = sum(v[0] for v in at_ready.get("table", {}).values())
                info: dict[str, Any] = {
                    "start_s": round(web_up - w.spawned, 2),
                    "assigned_s": round(wt["first_assigned"] - w.spawned, 2) if "first_assigned" in wt else None,
                    "ready_s": round(ready_at - w.spawned, 2),
                    # Includes what was processed in the <=0.1 s before the poll.
                    "table_updates_at_ready": restored,
                    "produced_before": sum(expected.values()),
                }
                res.cycles.append(info)
                res.worker_start_s.append(info["start_s"])
                res.worker_assigned_s.append(info["assigned_s"])
                res.worker_ready_s.append(info["ready_s"])
                last = cycle == len(chunks) - 1
                kill_evt = asyncio.Event()
                kill_at = None if last else rng.randint(max(1, chunk // 20), max(1, chunk * 19 // 20))
                prod = asyncio.create_task(produce(chunk, kill_at, kill_evt))
                if not last:
                    seen: dict[str, Any] = {}
                    watcher = asyncio.create_task(watch(session, web_port, seen))
                    await kill_evt.wait()
                    w.kill(signal.SIGKILL)
                    w.proc.wait(10)
                    watcher.cancel()
                    info["killed_after_s"] = round(time.time() - ready_at, 2)
                    info["committed_at_kill"] = await committed_offsets(broker.bootstrap, app_id, topic, args.partitions)
                    info["processed_at_kill"] = {
                        p: max((v[1] + 1 for k, v in seen.get("table", {}).items() if k.startswith(f"{p}:")), default=0)
                        for p in range(args.partitions)
                    }
                    info["stats_before_kill"] = seen.get("stats", {})
                    info["first_seen"] = seen.get("first_seen", {})
                    info["gaps"] = seen.get("gaps", [])
                    res.kills_after_ready_s.append(info["killed_after_s"])
                    res.restarts_done += 1
                    log.info("[%s/%s] cycle %d: ready in %.1fs (%d updates in table), SIGKILL %.1fs later "
                             "after %d/%d events of the chunk; worker stats then: %s",
                             kind, variant, cycle, ready_at - w.spawned, restored, info["killed_after_s"],
                             kill_at, chunk, info["stats_before_kill"])  # fmt: skip
                await prod

            # Drain: wait until every key saw its last offset, or nothing changes.
            drain_began = time.time()
            final: dict[str, Any] | None = None
            stable_since, prev = time.time(), None
            while time.time() - drain_began < args.drain_timeout:
                st = await fetch_state(session, workers[-1].web_port)
                if st is not None:
                    final = st
                    table = st["table"]
                    if all(table.get(k, [0, -1])[1] == off for k, off in expected_last.items()):
                        break
                    if table != prev:
                        prev, stable_since = table, time.time()
                    elif time.time() - stable_since > args.settle:
                        log.warning("[%s/%s] table stopped changing before reaching the last offsets", kind, variant)
                        break
                await asyncio.sleep(0.25)
            res.drain_s = round(time.time() - drain_began, 2)

        table = (final or {}).get("table", {})
        res.final_worker_stats = {
            **(final or {}).get("stats", {}),
            "first_seen": (final or {}).get("first_seen", {}),
            "gaps": (final or {}).get("gaps", []),
        }
        for k, exp in expected.items():
            got = table.get(k, [0, -1, 0])
            if k not in table:
                res.missing_keys += 1
            res.lost_updates += max(0, exp - got[0])
            res.doubled_updates += max(0, got[0] - exp)
            res.naive_doubled += max(0, got[2] - exp)
        res.doubled_updates += sum(v[0] for k, v in table.items() if k not in expected)
        res.exact = final is not None and res.lost_updates == 0 and res.doubled_updates == 0
        res.final_cycle_first_seen = res.final_worker_stats["first_seen"]
        res.events_skipped_at_restart = count_restart_skips(res)
        workers[-1].reap()
        res.changelog = await inspect_changelog(
            broker.bootstrap, f"{app_id}-{TABLE}-changelog", args.partitions, produced
        )
        res.lost_never_applied = min(res.lost_updates, res.changelog["never_applied"])
        res.lost_in_recovery = res.lost_updates - res.lost_never_applied
    except Exception as exc:
        log.exception("[%s/%s] run failed", kind, variant)
        res.error = f"{type(exc).__name__}: {str(exc)[:1000]}"
    finally:
        with contextlib.suppress(Exception):
            await stack.aclose()
        for w in workers:
            w.reap()
        broker.stop()
        res.total_s = round(time.monotonic() - began, 1)
    return res


async def inspect_changelog(
    bootstrap: str, topic: str, partitions: int, produced: set[tuple[str, int]]
) -> dict[str, Any]:
    """Read the whole changelog back and explain any lost update.

    * ``end_offset_correct``: whether ListOffsets(latest) matches what a full
      read finds. Faust uses it as the recovery highwater, so a low answer
      ends recovery early and silently drops the changelog's tail.
    * ``never_applied``: source events whose offset no changelog record ever
      carries, i.e. no worker's agent ever saw them (a Faust-side drop, not
      the broker's: see the report).
    * ``stale_restores``: changelog records whose count did not grow although
      they apply a newer source offset, or whose offset went backwards: a
      worker restored an older table state than the one written before.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(tps)
        reported = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        msgs_by_tp: dict[Any, list[Any]] = {tp: [] for tp in tps}
        idle_since = time.time()
        while time.time() - idle_since < 2.0:
            batch = await consumer.getmany(*tps, timeout_ms=300)
            if any(batch.values()):
                idle_since = time.time()
            for tp, msgs in batch.items():
                msgs_by_tp[tp].extend(msgs)
    finally:
        await consumer.stop()

    out: dict[str, Any] = {}
    applied: set[tuple[str, int]] = set()
    stale = 0
    for tp, msgs in msgs_by_tp.items():
        out[str(tp.partition)] = {
            "reported_end": reported[tp],
            "actual_end": (msgs[-1].offset + 1) if msgs else 0,
            "records": len(msgs),
        }
        prev: dict[str, list[int]] = {}
        for m in sorted(msgs, key=lambda m: m.offset):
            key, value = json.loads(m.key), json.loads(m.value)
            applied.add((key, value[1]))
            before = prev.get(key)
            if before is not None and (value[1] < before[1] or (value[1] > before[1] and value[0] <= before[0])):
                stale += 1
            prev[key] = value
    out["end_offset_correct"] = all(v["reported_end"] == v["actual_end"] for v in out.values())
    never = sorted(produced - applied, key=lambda e: (e[0], e[1]))
    out["never_applied"] = len(never)
    out["never_applied_sample"] = [f"{k}@{o}" for k, o in never[:10]]
    out["stale_restores"] = stale
    return out


def count_restart_skips(res: RunResult) -> int:
    """Events each restarted worker jumped over: first offset seen minus committed offset."""
    total = 0
    for i in range(1, len(res.cycles)):
        committed = res.cycles[i - 1].get("committed_at_kill")
        if committed is None or len(committed) == 0:
            continue  # unknown
        first = res.cycles[i].get("first_seen") if i < len(res.cycles) - 1 else res.final_cycle_first_seen
        skipped = 0
        for p, off in (first or {}).items():
            start = committed.get(int(p)) if int(p) in committed else committed.get(str(p))
            skipped += max(0, int(off) - (start or 0))
        res.cycles[i]["skipped_at_start"] = skipped
        total += skipped
    return total


def leftovers(spawned: Spawned) -> dict[str, list[int]]:
    """Processes still alive in any group we created, and ports still bound."""
    from devstack.process_group import group_members as _group_members

    return {
        "processes": sorted({pid for pgid in spawned.pgids for pid in _group_members(pgid)}),
        "ports_in_use": [port for port in spawned.ports if not port_free(port)],
    }


def markdown(results: list[RunResult]) -> str:
    """One row per broker/variant; times are seconds from worker spawn (median over restarts)."""

    def med(xs: list[float | None]) -> str:
        vals = [x for x in xs if x is not None]
        return f"{statistics.median(vals):.1f}" if vals else "-"

    lines = [
        "| broker | variant | restarts | exact | lost (not restored / never applied) | skipped at restart | doubled | unguarded doubles | worker up s | "
        "first ready s | restart joined s | restart ready s | total s | ListOffsets(latest) ok |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        exact = ("yes" if r.exact else "NO") + (" (error)" if r.error else "")
        first = f"{r.worker_ready_s[0]:.1f}" if r.worker_ready_s else "-"
        offsets_ok = {True: "yes", False: "NO"}.get(r.changelog.get("end_offset_correct"), "-")
        lines.append(
            f"| {r.broker} | {r.variant} | {r.restarts_done} | {exact} "
            f"| {r.lost_updates} ({r.lost_in_recovery} / {r.lost_never_applied}) | {r.events_skipped_at_restart} "
            f"| {r.doubled_updates} "
            f"| {r.naive_doubled} | {med(r.worker_start_s)} | {first} | {med(r.worker_assigned_s[1:])} "
            f"| {med(r.worker_ready_s[1:])} | {r.total_s} | {offsets_ok} |"
        )
    errors = [f"- {r.broker}/{r.variant}: {r.error.splitlines()[0]}" for r in results if r.error]
    return "\n".join(lines + ([""] + errors if errors else []))


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def main_async(args: argparse.Namespace) -> int:
    results: list[RunResult] = []
    spawned = Spawned()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="broker-recovery-") as tmp:
        workdir = Path(tmp)
        for kind in args.brokers:
            for variant in args.variants:
                log.info("=== %s / %s ===", kind, variant)
                r = await bench_one(kind, variant, args, workdir, spawned)
                results.append(r)
                log.info("result: %s", json.dumps(asdict(r)))
        if args.logs_dir:
            import shutil

            shutil.rmtree(args.logs_dir, ignore_errors=True)
            shutil.copytree(workdir, args.logs_dir, ignore=shutil.ignore_patterns("faust"))
    leaks = leftovers(spawned)
    out = {
        "config": {k: v for k, v in vars(args).items() if k != "worker"},
        "faust_settings": FAUST_FAST_JOIN,
        "results": [asdict(r) for r in results],
        "leftovers": leaks,
        "wall_s": round(time.monotonic() - started, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    text = markdown(results)
    print(text)
    Path(args.out).with_suffix(".md").write_text(text.rstrip() + "\n")
    print(f"\nleftover processes: {leaks['processes'] or 'none'}; ports still bound: "
          f"{leaks['ports_in_use'] or 'none'}; results: {args.out}")
    clean = not leaks["processes"] and not leaks["ports_in_use"]
    return 0 if clean and all(r.error is None for r in results) else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--restarts", type=int, default=6, help="SIGKILL + restart cycles per broker")
    p.add_argument("--events", type=int, default=3000)
    p.add_argument("--brokers", type=lambda s: s.split(","), default=["noida", "tansu"])
    p.add_argument("--variants", type=lambda s: s.split(","), default=list(VARIANTS))
    p.add_argument("--keys", type=int, default=16)
    p.add_argument("--partitions", type=int, default=2)
    p.add_argument("--rate", type=float, default=100.0, help="events/s while producing")
    p.add_argument("--commit-interval", type=float, default=1.0, help="Faust broker_commit_interval (s)")
    p.add_argument("--burst", type=int, default=20, help="sends in flight together (forms batches)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--ready-timeout", type=float, default=90.0, help="first worker start")
    p.add_argument("--restart-ready-timeout", type=float, default=45.0, help="worker start after a SIGKILL")
    p.add_argument("--drain-timeout", type=float, default=90.0)
    p.add_argument("--settle", type=float, default=10.0, help="s without table changes that ends the drain")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "broker_recovery.json"))
    p.add_argument("--logs-dir", default=None, help="copy worker and broker logs here")
    # worker mode (internal)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--broker-url", help=argparse.SUPPRESS)
    p.add_argument("--app-id", help=argparse.SUPPRESS)
    p.add_argument("--topic", help=argparse.SUPPRESS)
    p.add_argument("--web-port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--datadir", help=argparse.SUPPRESS)
    p.add_argument("--max-batch-size", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--group-instance-id", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for kind in args.brokers:
        if kind not in ("noida", "tansu"):
            p.error(f"unknown broker {kind!r}")
    for v in args.variants:
        if v not in VARIANTS:
            p.error(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        sys.argv = sys.argv[:1]  # faust.Worker must not parse our flags
        run_worker(args)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())

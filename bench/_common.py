"""Helpers shared by the stack benchmarks (metadata_path.py, memory.py).

* ``BenchStack``: the embedded broker + one worker started through ``bench/_worker.py`` (the
  real ``run_worker`` with counters and optional cProfile; ``score_enabled=False`` makes it a
  metadata-path worker), on free ports under a temporary data directory.
* metadata-path events: valid JobCompleted records whose image is a 1x1 WebP (a
  few dozen bytes), Avro-encoded up front, so publishing and consuming them is cheap.
* ``prefill``: a fast aiokafka producer (pre-encoded values); ``raw_consume``: the plain aiokafka
  consume loop the worker is compared with.
* CPU of process groups and threads from /proc, VmRSS, load average, and ``write_results``
  (JSON + Markdown next to each other under ``bench/results/``).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from _machine import cores_available, cpu_model  # noqa: E402

RESULTS_DIR = REPO / "bench" / "results"
CLK = os.sysconf("SC_CLK_TCK")
TOPIC = "jobs.completed"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- machine, results


def machine_info() -> dict[str, Any]:
    def ver(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    return {
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cores_available": cores_available(),
        "python": platform.python_version(),
        "packages": {p: ver(p) for p in ("faust-streaming", "aiokafka", "noida-db", "chdb", "fastdigest",
                                         "fastavro", "torch", "open_clip_torch")},
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_line(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    la0, la1 = doc.get("loadavg_start", [float("nan")]), doc.get("loadavg_end", [float("nan")])
    return (f"Machine: {m['cpu_model'] or m['machine']}, {m['cores_available']}/{m['cpu_count']} cores, "
            f"Python {m['python']}; load average (1 min) {la0[0]:.1f} at start, {la1[0]:.1f} at end "
            f"(the machine is shared: compare the ratios, which are measured back to back).")


def write_results(name: str, doc: dict[str, Any], markdown: str, out: Path | None = None) -> Path:
    """``bench/results/<name>.json`` (the document, with the table in it) and ``<name>.md``."""
    path = out or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc["table_markdown"] = markdown
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    path.with_suffix(".md").write_text(markdown.rstrip() + "\n")
    return path


# --------------------------------------------------------------------------- /proc


def _stat_fields(path: str) -> tuple[str, list[str]] | None:
    try:
        raw = Path(path).read_text()
    except OSError:
        return None
    return raw[raw.index("(") + 1: raw.rindex(")")], raw[raw.rindex(")") + 2:].split()


def group_cpu_s(pgid: int | None) -> float:
    """CPU seconds (user+sys) of the live processes of a process group."""
    if pgid is None:
        return 0.0
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat_fields(f"/proc/{entry}/stat")
            if st and int(st[1][2]) == pgid:
                total += int(st[1][11]) + int(st[1][12])
    return total / CLK


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds per thread of one process, the main thread named 'main (event loop)'."""
    out: dict[str, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        st = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
        if st:
            name = "main (event loop)" if int(tid) == pid else f"{st[0]}#{tid}"
            out[name] = (int(st[1][11]) + int(st[1][12])) / CLK
    return out


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile ... of /proc/<pid>/status, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key.startswith(("Vm", "Rss")) and rest.strip().endswith("kB"):
            out[key] = int(rest.split()[0])
    return out


# --------------------------------------------------------------------------- events


def tiny_image() -> bytes:
    """A 1x1 WebP: what the metadata path carries instead of an image (validation needs one that decodes)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (120, 80, 40)).save(buf, format="WEBP")
    return buf.getvalue()


MODELS = [("flux-dev", "self_hosted", "A100-80GB", None), ("sdxl-lightning", "self_hosted", "L4", None),
          ("proprietary-a", "api", "none", 0.04)]
NICHES = ["headshot", "product", "portrait"]


class EventMaker:
    """Valid, Avro-encoded JobCompleted records with a 1x1 image, event time paced at ``event_rate``/s
    (requested_at of event i = t0 + i / event_rate), timings like ``tests/conftest.make_event``."""

    def __init__(self, *, seed: int, event_rate: float, t0: datetime | None = None) -> None:
        from contracts.codec import AvroCodec

        self.codec = AvroCodec("JobCompleted")
        self.image = tiny_image()
        self.seed = seed
        self.event_rate = event_rate
        self.t0 = t0 or datetime.now(timezone.utc).replace(microsecond=0)
        self.next_i = 0

    def event(self, i: int) -> dict[str, Any]:
        rng = random.Random(self.seed * 1_000_003 + i)
        model_id, provider, gpu_type, api_cost = MODELS[i % 3]
        requested = self.t0 + timedelta(seconds=i / self.event_rate)
        queue_ms, infer_ms, encode_ms = rng.randint(0, 400), rng.randint(800, 4000), rng.randint(5, 40)
        cold_ms = rng.randint(2000, 9000) if rng.random() < 0.05 else 0
        started = requested + timedelta(milliseconds=queue_ms)
        completed = started + timedelta(milliseconds=cold_ms + infer_ms)
        return {
            "job_id": f"md-{self.seed}-{i:08d}", "model_id": model_id, "model_version": "2026.1",
            "provider": provider, "niche": NICHES[(i // 3) % 3], "prompt": f"a photo number {i} of something nice",
            "seed": i, "reference_image": None, "image": self.image, "media_type": "image/webp",
            "requested_at": requested, "started_at": started, "completed_at": completed,
            "delivered_at": completed + timedelta(milliseconds=encode_ms + rng.randint(1, 30)),
            "cold_start": cold_ms > 0, "cold_start_ms": float(cold_ms), "inference_ms": float(infer_ms),
            "encode_ms": float(encode_ms), "gpu_type": gpu_type,
            "gpu_seconds": (cold_ms + infer_ms) / 1000.0 if provider != "api" else 0.0,
            "api_cost_usd": api_cost, "node_id": f"node-{i % 2}",
        }

    def take(self, n: int) -> list[tuple[bytes, bytes]]:
        """The next ``n`` events as (key, Avro value)."""
        out = []
        for i in range(self.next_i, self.next_i + n):
            e = self.event(i)
            out.append((e["job_id"].encode(), self.codec.encode(e)))
        self.next_i += n
        return out


# --------------------------------------------------------------------------- Kafka clients


async def _prefill(bootstrap: str, items: list[tuple[bytes, bytes]], topic: str) -> float:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=512 * 1024)
    await producer.start()
    try:
        t0 = time.perf_counter()
        futures = [await producer.send(topic, value, key=key) for key, value in items]
        await asyncio.gather(*futures)
        return time.perf_counter() - t0
    finally:
        await producer.stop()


def prefill(bootstrap: str, items: list[tuple[bytes, bytes]], topic: str = TOPIC) -> float:
    """Publish pre-encoded records (acks=all, batched); returns seconds until all acked."""
    return asyncio.run(_prefill(bootstrap, items, topic))


async def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await c.start()
    try:
        parts = c.partitions_for_topic(topic) or set()
        ends = await c.end_offsets([TopicPartition(topic, p) for p in sorted(parts)])
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await c.stop()


def end_offsets(bootstrap: str, topic: str = TOPIC) -> dict[int, int]:
    return asyncio.run(_end_offsets(bootstrap, topic))


async def _raw_consume(bootstrap: str, start: dict[int, int], end: dict[int, int], topic: str,
                       handle: Callable[[Any], None] | None) -> dict[str, float]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    want = sum(end[p] - start.get(p, 0) for p in end)
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                         auto_offset_reset="earliest")
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(end)]
        c.assign(tps)
        for tp in tps:
            c.seek(tp, start.get(tp.partition, 0))
        n, nbytes = 0, 0
        c0, t0 = time.process_time(), time.perf_counter()
        while n < want:
            batch = await c.getmany(timeout_ms=1000)
            for tp, records in batch.items():
                stop = end[tp.partition]
                for rec in records:
                    if rec.offset < stop:
                        n += 1
                        nbytes += len(rec.value)
                        if handle is not None:
                            handle(rec)
            if time.perf_counter() - t0 > 600:
                raise RuntimeError(f"raw consumer: {n}/{want} after 600 s")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return {"events": n, "bytes": nbytes, "wall_s": wall, "cpu_s": cpu, "events_s": n / wall}
    finally:
        await c.stop()


def raw_consume(bootstrap: str, start: dict[int, int], end: dict[int, int], topic: str = TOPIC,
                handle: Callable[[Any], None] | None = None) -> dict[str, float]:
    """A plain aiokafka consume loop over [start, end) of every partition (no group, no commits);
    ``handle(record)`` is called per record when given. Timed from the first fetch."""
    return asyncio.run(_raw_consume(bootstrap, start, end, topic, handle))


# --------------------------------------------------------------------------- the stack


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


class BenchStack:
    """Embedded noida broker + one worker run by ``bench/_worker.py`` (see its docstring)."""

    def __init__(self, data_dir: Path, *, env: dict[str, str] | None = None, **settings: Any) -> None:
        from config.settings import load_settings
        from devstack.stack import EmbeddedStack

        base = load_settings(env={}, data_dir=data_dir, app_id=f"sentinel-bench-{os.getpid()}", **settings)
        self.stack = EmbeddedStack(base)
        self.settings = self.stack.settings
        self.env = dict(env or {})  # SENTINEL_SCORE_ENABLED etc. come from the settings (to_env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False
        self.log_path = self.settings.data_dir / "logs" / "worker.log"

    @property
    def bootstrap(self) -> str:
        return self.settings.bootstrap_servers

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 180.0) -> "BenchStack":
        from devstack.stack import CHILD_ENV, StackError, create_topics

        self.stack.broker.start()
        try:
            create_topics(self.settings)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, **self.settings.to_env(), **CHILD_ENV, **self.env}
            with self.log_path.open("ab") as fh:
                self.proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "_worker.py")], env=env, cwd=REPO,
                                             stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise StackError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if get_json(f"{self.url}/sentinel/ready/", 2).get("ready"):
                        return self
                except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                    pass
                time.sleep(0.25)
            raise StackError(f"worker not ready after {timeout:.0f}s:\n{self.log_tail()}")
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if get_json(f"{self.url}/sentinel/ready/", 2).get("ready"):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def progress(self) -> dict[str, Any]:
        return get_json(f"{self.url}/bench/progress/", timeout=30)

    def control(self, kind: str, action: str, **query: Any) -> Any:
        """``kind`` profile (cProfile of the event loop) or sample (all threads); ``action`` start/stop."""
        q = "?" + urllib.parse.urlencode(query) if query else ""
        return get_json(f"{self.url}/bench/{kind}/{action}/{q}", timeout=30)

    def cpu(self) -> dict[str, Any]:
        return {"t": time.time(), "worker": group_cpu_s(self.pid), "threads": thread_cpu_s(self.pid),
                "broker": group_cpu_s(self.stack.broker.pid), "bench": time.process_time()}

    def freeze(self) -> None:
        os.killpg(self.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen:
            os.killpg(self.pid, signal.SIGCONT)
            self.frozen = False

    def wait_for(self, done: Callable[[dict[str, Any]], bool], timeout: float, poll_s: float = 0.25,
                 on_poll: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                p = self.progress()
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                # a busy event loop may answer late: keep polling until the deadline
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker did not answer in {timeout:.0f}s: {exc}\n{self.log_tail()}")
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
                continue
            if on_poll:
                on_poll(p)
            if done(p):
                return p
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker did not finish in {timeout:.0f}s: {p}\n{self.log_tail()}")
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            time.sleep(poll_s)

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return "(no worker log)"

    def stop(self) -> None:
        try:
            self.thaw()
            if self.proc is not None and self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
        finally:
            self.stack.broker.stop()


def cpu_delta(a: dict[str, Any], b: dict[str, Any], n: int) -> dict[str, Any]:
    wall = b["t"] - a["t"]
    threads = {k: v - a["threads"].get(k, 0.0) for k, v in b["threads"].items()}
    out = {"wall_s": wall, "worker_cpu_s": b["worker"] - a["worker"], "broker_cpu_s": b["broker"] - a["broker"],
           "bench_cpu_s": b["bench"] - a["bench"],
           "worker_event_loop_cpu_s": threads.get("main (event loop)", 0.0),
           "worker_threads_cpu_s": dict(sorted(((k, round(v, 3)) for k, v in threads.items() if v >= 0.01),
                                               key=lambda kv: -kv[1]))}
    out["worker_cores"] = out["worker_cpu_s"] / wall if wall > 0 else float("nan")
    out["worker_cpu_us_per_event"] = out["worker_cpu_s"] / n * 1e6 if n else float("nan")
    out["broker_cpu_us_per_event"] = out["broker_cpu_s"] / n * 1e6 if n else float("nan")
    return out

"""The embedded stack: broker + Faust workers (+ the store role) as child processes, for `up`,
`demo` and tests.

Each child runs in its own process group so that stopping it reaches everything it spawned, and
is signalled by the kernel when its parent dies; ``EmbeddedStack`` stops the worker before the broker, so the
worker can commit on its way out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from config.settings import Settings
from contracts.topics import ALERTS, JOBS_COMPLETED, JOBS_SCORED, RATINGS, dlq_name
from devstack.broker import EmbeddedBroker, free_port
from devstack.broker_probes import port_bindable
from devstack.discovery import StackInfo, announce, withdraw
from devstack.process_group import die_with_parent

log = logging.getLogger(__name__)

CHILD_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
             "TOKENIZERS_PARALLELISM": "false"}


# What a child that talks to the embedded broker gets when its parent dies: SIGKILL, because the
# broker dies with the same parent and a clean stop needs it (measured: the worker's consumer
# waited 60 s to leave its group). A killed worker is the crash the commit protocol is built for.
ORPHAN_SIGNAL = signal.SIGKILL


class StackError(RuntimeError):
    pass


def _get_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


async def _create_topics(bootstrap: str, names: dict[str, int]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(n, p, 1) for n, p in names.items() if n not in existing]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


def create_topics(settings: Settings) -> None:
    """Create the input topics up front, so producers never auto-create them with 1 partition."""
    asyncio.run(_create_topics(settings.bootstrap_servers, {
        JOBS_COMPLETED: settings.partitions, JOBS_SCORED: settings.partitions, ALERTS: 1,
        dlq_name(JOBS_COMPLETED): 1, dlq_name(JOBS_SCORED): 1, dlq_name(ALERTS): 1,
        RATINGS: settings.partitions, dlq_name(RATINGS): 1,
    }))


class ChildProcess:
    """A `sentinel` command as a child process, ready when ``ready_path`` answers."""

    command = "worker"
    ready_path = "/sentinel/ready/"
    what = "worker"

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._terminated = False

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def _ready(self, answer: Any) -> bool:
        return bool(answer.get("ready"))

    def start(self, timeout: float = 180.0) -> "ChildProcess":
        return self.spawn().wait_ready(timeout)

    def spawn(self) -> "ChildProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.settings.to_env(), **CHILD_ENV}
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen([sys.executable, "-m", "cli.main", self.command], env=env,
                                         stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=die_with_parent(ORPHAN_SIGNAL))
        return self

    def wait_ready(self, timeout: float = 180.0) -> "ChildProcess":
        assert self.proc is not None, "spawn() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StackError(f"{self.what} exited with {self.proc.returncode} during start:\n{self.log_tail()}")
            try:
                if self._ready(_get_json(f"{self.url}{self.ready_path}")):
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                pass
            time.sleep(0.25)
        self.stop()
        raise StackError(f"{self.what} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no commit, no cleanup."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def terminate(self) -> None:
        """SIGTERM once (a second one may cut a Faust worker's clean stop short)."""
        if self.alive() and not self._terminated:
            self._terminated = True
            os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", self.what, timeout)
            self.kill()
            return self.proc.returncode

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return f"(no {self.what} log)"


class WorkerProcess(ChildProcess):
    """`sentinel worker`, ready when its partitions are assigned."""

    def stats(self) -> dict[str, Any]:
        return _get_json(f"{self.url}/sentinel/stats/")


class StoreProcess(ChildProcess):
    """`sentinel store` (worker/store_role.py), ready when it serves."""

    command = "store"
    ready_path = "/healthz"
    what = "store"

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.store_port}"

    def _ready(self, answer: Any) -> bool:
        return answer.get("role") == "store"


class PortTaken(StackError):
    """A configured port is in use; the message names the setting to change."""


def broker_address(broker_url: str) -> tuple[str, int]:
    """Host and port of the first address of a ``kafka://host:port[,...]`` URL."""
    first = broker_url.split(",")[0].split("://", 1)[-1]
    host, _, port = first.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise StackError(f"SENTINEL_BROKER_URL {broker_url!r} names no port (kafka://host:port)") from None


class EmbeddedStack:
    """Broker + workers (+ the store role), data under ``settings.data_dir``, announced in the
    discovery file.

    By default everything listens on free local ports, so tests and the demo never clash with each
    other or with a running ``sentinel up``. ``configured_ports=True`` (``sentinel up``) uses the
    port of ``settings.broker_url``, ``settings.web_port`` (the first worker) and
    ``settings.store_port`` instead; 0 there still picks a free one. With ``workers`` > 1 (or
    ``store=True``) a store role owns the embedded warehouse and the workers go through it
    (worker/store_role.py); with one worker and no store, that worker owns it.
    """

    def __init__(self, settings: Settings, *, broker_kind: str = "noida", configured_ports: bool = False,
                 workers: int = 1, store: bool | None = None) -> None:
        if workers < 1:
            raise StackError(f"--workers must be at least 1, not {workers}")
        data_dir = settings.data_dir.resolve()
        host, broker_port, web_port, store_port = "127.0.0.1", None, free_port(), free_port()
        if configured_ports:
            host, broker_port = broker_address(settings.broker_url)
            web_port = settings.web_port or free_port(settings.web_host)
            store_port = settings.store_port or free_port(settings.web_host)
        self.configured_ports = configured_ports
        self.broker = EmbeddedBroker(broker_kind, host=host, port=broker_port or None, data_dir=data_dir / "broker",
                                     log_path=data_dir / "logs" / "broker.log")
        changes: dict[str, Any] = {}
        if broker_kind == "tansu":  # docs/scale-out.md: dynamic members, one record per produce batch
            changes = {"static_membership": False, "producer_max_batch_size": 1}
        self.settings = settings.with_(data_dir=data_dir, broker_url=self.broker.url, web_port=web_port,
                                       store_port=store_port, **changes)
        use_store = workers > 1 if store is None else store
        self.store = StoreProcess(self.settings, data_dir / "logs" / "store.log") if use_store else None
        if use_store:
            self.settings = self.settings.with_(use_store=True)  # the store's own settings ignore it
        self.workers: list[WorkerProcess] = [self._worker(i) for i in range(1, workers + 1)]
        self._next = workers + 1

    @property
    def worker(self) -> WorkerProcess:
        """The first worker (the one `sentinel up` announces)."""
        return self.workers[0]

    def _worker(self, index: int) -> WorkerProcess:
        port = self.settings.web_port if index == 1 else free_port(self.settings.web_host)
        settings = self.settings.with_(worker_id=f"worker-{index}", web_port=port)
        name = "worker.log" if index == 1 else f"worker-{index}.log"
        return WorkerProcess(settings, self.settings.data_dir / "logs" / name)

    def start(self) -> "EmbeddedStack":
        if self.configured_ports:
            self._check_ports()
        self._check_memory_broker()
        self.broker.start()
        try:
            create_topics(self.settings)
            if self.store is not None:
                self.store.start()
            if self.broker.kind == "noida":  # one join at a time: noida once handed a joining member an
                for w in self.workers:       # empty assignment when two joined together (aiokafka failed)
                    w.start()
            else:  # started together: each takes seconds to import torch
                for w in self.workers:
                    w.spawn()
                for w in self.workers:
                    w.wait_ready()
            announce(self.settings.data_dir, StackInfo(self.settings.broker_url, self.worker.url, os.getpid()))
        except BaseException:
            self.stop()
            raise
        return self

    def add_worker(self) -> WorkerProcess:
        """A new worker (next id) joins the group; returns once it is ready."""
        worker = self._worker(self._next)
        self._next += 1
        self.workers.append(worker)
        return worker.start()

    def _check_memory_broker(self) -> None:
        """tansu forgets its logs on every start while the store keeps what it stored: new jobs
        would reuse the old offsets, so their inserts look like retries (same dedup tokens) and
        their FID moments like offsets already applied, and both are dropped. Refuse instead."""
        chdb = self.settings.data_dir / "chdb"
        if self.broker.kind == "tansu" and chdb.is_dir() and any(chdb.iterdir()):
            raise StackError(f"tansu keeps no data across restarts, but {chdb} holds a store built on an earlier "
                             "broker's offsets; start tansu stacks on a fresh SENTINEL_DATA_DIR (or remove that "
                             "store), or use --broker noida, which keeps its log")

    def _check_ports(self) -> None:
        s = self.settings
        ports = [("SENTINEL_BROKER_URL", self.broker.host, self.broker.port), ("SENTINEL_WEB_PORT", s.web_host, s.web_port)]
        if self.store is not None:
            ports.append(("SENTINEL_STORE_PORT", s.web_host, s.store_port))
        for setting, host, port in ports:
            if not port_bindable(host, port):
                raise PortTaken(f"port {host}:{port} ({setting}) is already in use (another `sentinel up`?); "
                                f"set {setting} to another port, or port 0 for a free one")

    def restart_worker(self, *, kill: bool = False, index: int = 0) -> WorkerProcess:
        """Stop (or SIGKILL) worker ``index`` and start it again with the same id."""
        old = self.workers[index]
        if kill:
            old.kill()
        else:
            old.stop()
        # the stack's settings as they are now (a test may have changed them), under the same id and port
        settings = self.settings.with_(worker_id=old.settings.worker_id, web_port=old.settings.web_port)
        self.workers[index] = WorkerProcess(settings, old.log_path).start()
        return self.workers[index]

    def restart_store(self, *, kill: bool = False) -> None:
        if self.store is None:
            raise StackError("this stack runs no store role")
        if kill:
            self.store.kill()
        else:
            self.store.stop()
        self.store = StoreProcess(self.settings, self.store.log_path).start()

    def stop(self) -> None:
        withdraw(self.settings.data_dir, os.getpid())
        try:
            for w in self.workers:  # all told at once: each commits on its way out
                w.terminate()
            for w in self.workers:
                w.stop()
            if self.store is not None:
                self.store.stop()
        finally:
            self.broker.stop()

    def __enter__(self) -> "EmbeddedStack":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

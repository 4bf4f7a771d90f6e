"""Run a Kafka-protocol broker as a child process, for the CLI and the tests.

``EmbeddedBroker`` starts one of the brokers of devstack/broker_kinds.py (noida by default) in
its own session, returns once it answers Kafka requests (devstack/broker_probes.py), retries on
a fresh port if the one it picked was taken meanwhile, and stops every process of its group
(devstack/process_group.py).

Example::

    with EmbeddedBroker(data_dir=Path("/tmp/kafka")) as broker:
        app = faust.App("id", broker=broker.url)
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from devstack.broker_kinds import BROKER_KINDS, BrokerError, noida_command, stop_noida_service, tansu_command
from devstack.broker_probes import api_versions_ok, free_port, metadata_ok, port_accepts, port_bindable
from devstack.process_group import POLL_INTERVAL, die_with_parent, group_members, poll_until, signal_group, wait_group

__all__ = ["BROKER_KINDS", "BrokerError", "EmbeddedBroker", "free_port"]

log = logging.getLogger(__name__)

_LOG_TAIL_BYTES = 4000


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
            return noida_command(self.host, self.port, self.data_dir)
        return tansu_command(self.host, self.port)

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
                if attempt == attempts or port_bindable(self.host, self.port):
                    raise BrokerError(str(exc)) from None
                old, self.port = self.port, free_port(self.host)
                log.warning("%s broker could not use port %d, retrying on %d", self.kind, old, self.port)
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> None:
        if not port_bindable(self.host, self.port):
            raise _DiedEarly(f"port {self.bootstrap} is already in use")
        cmd = self.command()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        log.info("starting %s broker on %s: %s", self.kind, self.bootstrap, " ".join(cmd))
        began = time.monotonic()
        # start_new_session: own process group, so stop() can signal the
        # broker and anything it spawned, and Ctrl-C in the terminal reaches
        # only the parent (which then stops the broker cleanly); if the parent dies
        # instead, the broker gets SIGTERM (die_with_parent).
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            start_new_session=True,
            preexec_fn=die_with_parent(),
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
                if port_accepts(self.host, self.port):
                    if api_versions_ok(self.host, self.port):
                        ok, detail = metadata_ok(self.bootstrap, timeout=max(1.0, min(5.0, deadline - time.monotonic())))
                        if ok:
                            break
                    else:
                        detail = "ApiVersions not answered"
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"{self.kind} broker not ready on {self.bootstrap} after {timeout:.0f}s "
                        f"({detail}); log {self.log_path}:\n{self.log_tail()}"
                    )
                time.sleep(POLL_INTERVAL)
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
            stop_noida_service(self.data_dir, timeout)
        if proc is not None:
            pgid = proc.pid  # start_new_session: the child leads its own group
            signal_group(pgid, signal.SIGTERM)
            if not wait_group(proc, pgid, timeout):
                log.warning("%s broker (pgid %d) ignored SIGTERM for %.0fs; sending SIGKILL", self.kind, pgid, timeout)
                signal_group(pgid, signal.SIGKILL)
                if not wait_group(proc, pgid, 5.0):
                    log.error("%s broker (pgid %d) still alive after SIGKILL: %s", self.kind, pgid, group_members(pgid))
            log.info("%s broker on %s stopped (exit code %s)", self.kind, self.bootstrap, proc.returncode)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if proc is not None:
            self._wait_port_free(timeout=5.0)

    def log_tail(self, max_bytes: int = _LOG_TAIL_BYTES) -> str:
        """The last ``max_bytes`` of the broker log (for error messages)."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - max_bytes))
                return fh.read().decode("utf-8", "replace")
        except OSError as exc:
            return f"<no broker log: {exc}>"

    def _wait_port_free(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if not poll_until(lambda: port_bindable(self.host, self.port), deadline):
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


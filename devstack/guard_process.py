"""`sentinel guard` as a child process on a free local port: start it, wait until /healthz
answers, stop it. One place for the demo, the tests and the guard benchmark."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from devstack.broker_probes import free_port
from devstack.process_group import die_with_parent


class GuardDidNotStart(RuntimeError):
    pass


class GuardProcess:
    """``env`` is the child's whole environment (token, CLIP settings, ...); ``args`` go after
    ``sentinel guard --port N``; output goes to ``log`` (else stdout is dropped and stderr kept
    for the error message). The child dies with this process (``die_with_parent``)."""

    def __init__(self, env: dict[str, str], args: Sequence[str] = (), *, log: Path | None = None,
                 cwd: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env, self.args, self.log, self.cwd = env, list(args), log, cwd
        self.proc: subprocess.Popen | None = None

    def start(self) -> "GuardProcess":
        from devstack.stack import ORPHAN_SIGNAL

        cmd = [sys.executable, "-m", "cli.main", "guard", "--port", str(self.port), *self.args]
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with self.log.open("wb") as out:
                self.proc = subprocess.Popen(cmd, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                             start_new_session=True, preexec_fn=die_with_parent(ORPHAN_SIGNAL))
        else:
            self.proc = subprocess.Popen(cmd, cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, start_new_session=True,
                                         preexec_fn=die_with_parent(ORPHAN_SIGNAL))
        return self

    def wait_ready(self, timeout: float = 120.0) -> str:
        """The URL once /healthz answers 200; GuardDidNotStart (with the child's last output) when
        it exits first or ``timeout`` passes (the child is stopped then)."""
        import httpx

        assert self.proc is not None, "start() first"
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                why = (f"exited with {self.proc.returncode}" if self.proc.poll() is not None
                       else f"did not answer /healthz within {timeout:.0f} s")
                self.stop()
                raise GuardDidNotStart(f"sentinel guard {why}: {self._tail()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _tail(self) -> str:
        if self.log is not None:
            return f"see {self.log}"
        assert self.proc is not None and self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")[-3000:] if self.proc.poll() is not None else "(running)"

"""A stand-in for `sentinel guard` in tests: the verdict HTTP contract (POST /v1/verdicts, bearer
token) with simple deterministic weight-free checks, served by aiohttp in a background thread.

Checks: decodable, resolution (the requested width x height), blank (pixel std below 2), and
repeated (the same bytes as one of the last 256 outputs). A fast peer (no CLIP) for the unit tests of the node's attempt loop; the integration test
(tests/integration/test_guard_node.py) runs the real `sentinel guard` service.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import socket
import threading
from collections import deque
from typing import Any

import numpy as np
from aiohttp import web
from PIL import Image

RUBRIC_VERSION = "stand-in-1"


def _checks(body: dict[str, Any], recent: deque) -> list[dict[str, Any]]:
    data = base64.b64decode(body["image"])
    digest = hashlib.sha256(data).hexdigest()
    repeated = digest in recent
    recent.append(digest)
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:  # noqa: BLE001 - any decoder error is a failed check
        return [{"name": "decodable", "value": 0.0, "threshold": 1.0, "passed": False, "reason": str(exc)}]
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    std = float(pixels.std())
    size_ok = image.size == (body["width"], body["height"])
    return [
        {"name": "decodable", "value": 1.0, "threshold": 1.0, "passed": True, "reason": "decoded"},
        {"name": "resolution", "value": float(image.width * image.height),
         "threshold": float(body["width"] * body["height"]), "passed": size_ok,
         "reason": f"{image.width}x{image.height}, requested {body['width']}x{body['height']}"},
        {"name": "blank", "value": std, "threshold": 2.0, "passed": std >= 2.0, "reason": f"pixel std {std:.2f}"},
        {"name": "repeated", "value": float(repeated), "threshold": 0.0, "passed": not repeated,
         "reason": "same bytes as a recent output" if repeated else "new output"},
    ]


class StandInGuard:
    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self.recent: deque = deque(maxlen=256)
        self.requests = 0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _verdict(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "missing or wrong bearer token", "field": "Authorization"}, status=401)
        body = await request.json()
        self.requests += 1
        checks = _checks(body, self.recent)
        failed = [c["name"] for c in checks if not c["passed"]]
        return web.json_response({"passed": not failed, "score": 100.0 * (len(checks) - len(failed)) / len(checks),
                                  "rubric_version": RUBRIC_VERSION, "scorer_version": "none",
                                  "niche": body["niche"], "checks": checks, "failed_checks": failed})

    async def _start(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/v1/verdicts", self._verdict)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> "StandInGuard":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

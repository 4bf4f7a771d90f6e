"""A little real HTTP server answering JSON, for tests of code that asks peers over HTTP (not a
stand-in for Kafka or ClickHouse)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve(answer: Any, delay_s: float = 0.0, status: int = 200,
          path: str | None = "/sentinel/worker/") -> tuple[ThreadingHTTPServer, str]:
    """A server answering ``answer`` as JSON with ``status`` after ``delay_s`` on ``path`` (None:
    every path; others get 404), in a daemon thread; returns it and its URL."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if path is not None and self.path != path:
                self.send_error(404)
                return
            time.sleep(delay_s)
            body = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except OSError:  # the asker gave up
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"

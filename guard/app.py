"""The Guard HTTP API (FastAPI): ``POST /v1/verdicts``, ``/healthz``, ``/metrics``, ``/openapi.json``.

Bad input is always a 4xx with ``{"error": ..., "field": ...}`` (contracts/verdict.py), never a
500: the body is read with a size limit before parsing, images are refused from their headers
when they claim too many pixels, FastAPI's own validation and routing errors are reshaped to the
same body. Parsing, decoding and the weight-free checks run in a worker thread, CLIP in the
micro-batcher's encoder thread: the event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from contracts.verdict import ERROR_SCHEMA, REQUEST_SCHEMA, VERDICT_SCHEMA, VERDICTS_PATH, RequestError
from guard.batcher import MicroBatcher, Overloaded
from guard.judge import DEFAULT_MAX_PIXELS, Judge, Prepared
from guard.metrics import CONTENT_TYPE, GuardMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuardConfig:
    host: str = "127.0.0.1"
    port: int = 8087
    token: str = ""  # "" = no token required (SENTINEL_GUARD_TOKEN)
    max_batch: int = 32  # requests per encoder call (1 = micro-batching off)
    max_wait_ms: float = 5.0  # longest a request waits for its batch to fill
    max_body_bytes: int = 8 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_queue: int = 1024  # requests waiting for the encoder beyond this get 503
    prep_threads: int = 2  # threads decoding and checking images


def _error(status: int, error: str, field: str | None = None, check: str | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "field": field, "check": check}, status_code=status)


_ERROR = {"description": "refused: the error names the problem and the field",
          "content": {"application/json": {"schema": ERROR_SCHEMA}}}


def create_app(config: GuardConfig, judge: Judge) -> FastAPI:
    metrics = GuardMetrics(config.max_batch)
    prep = ThreadPoolExecutor(config.prep_threads, thread_name_prefix="guard-prep")
    encoder = ThreadPoolExecutor(1, thread_name_prefix="guard-encoder")

    def run_batch(batch: list[Prepared]) -> list:
        return judge.encode(batch)

    batcher: MicroBatcher = MicroBatcher(run_batch, max_batch=config.max_batch, max_wait_s=config.max_wait_ms / 1000,
                                         executor=encoder, max_queue=config.max_queue, on_batch=metrics.batch)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        await batcher.close()
        prep.shutdown(wait=False, cancel_futures=True)
        encoder.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="Sentinel Guard", version=judge.rubric.version, lifespan=lifespan,
                  description="Judges an output image before delivery: pass/fail, a 0-100 score and every "
                              "rubric check with its value, threshold and reason.")
    app.state.batcher, app.state.judge, app.state.metrics = batcher, judge, metrics
    _error_handlers(app, metrics)

    def authorized(request: Request) -> bool:
        if not config.token:
            return True
        got = request.headers.get("authorization", "")
        return hmac.compare_digest(got.encode(), f"Bearer {config.token}".encode())

    @app.post(VERDICTS_PATH, summary="Judge one output image",
              openapi_extra={"requestBody": {"required": True,
                                             "content": {"application/json": {"schema": REQUEST_SCHEMA}}}},
              responses={200: {"description": "the verdict", "content": {"application/json": {"schema": VERDICT_SCHEMA}}},
                         400: _ERROR, 401: _ERROR, 413: _ERROR, 415: _ERROR, 422: _ERROR, 503: _ERROR})
    async def verdicts(request: Request) -> Response:
        started = time.perf_counter()
        if not authorized(request):
            raise RequestError("missing or wrong bearer token", "Authorization", 401)
        body = await _read_body(request, config.max_body_bytes)
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(prep, judge.prepare, body)
        try:
            score = await batcher.submit(prepared)
        except Overloaded as exc:
            raise RequestError(f"busy: {exc}; retry later", None, 503) from exc
        verdict = judge.finish(prepared, score)
        metrics.verdict(verdict, time.perf_counter() - started)
        return JSONResponse(verdict.to_json())

    @app.get("/healthz", summary="Liveness: the rubric and scorer this process judges with")
    async def healthz() -> dict:
        return {"status": "ok", "rubric_version": judge.rubric.version, "scorer_version": judge.scorer_version,
                "max_batch": config.max_batch, "max_wait_ms": config.max_wait_ms}

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics_view(request: Request) -> Response:
        if not authorized(request):
            raise RequestError("missing or wrong bearer token", "Authorization", 401)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/v1/rubric", summary="The rubric in force: version and thresholds per niche")
    async def rubric() -> dict:
        return judge.rubric.describe()

    return app


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes ``limit`` bytes; never buffered past it."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(f"Content-Length {declared[:40]!r} is not a number", None, 400)
        if int(declared) > limit:
            raise RequestError(f"body of {declared} bytes is over the limit of {limit}", None, 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"body is over the limit of {limit} bytes", None, 413)
        chunks.append(chunk)
    if not size:
        raise RequestError("empty body: a JSON verdict request is required", None, 400)
    return b"".join(chunks)


def _error_handlers(app: FastAPI, metrics: GuardMetrics) -> None:
    @app.exception_handler(RequestError)
    async def refused(_: Request, exc: RequestError) -> JSONResponse:
        metrics.refused(exc.status, exc.field)
        return _error(exc.status, exc.error, exc.field, exc.check)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = (exc.errors() or [{}])[0]
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
        metrics.refused(422, ".".join(loc) or None)
        return _error(422, str(first.get("msg", "invalid request")), ".".join(loc) or None)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        metrics.refused(exc.status_code, None)
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:  # a bug, never bad input
        log.exception("verdict failed")
        metrics.refused(500, None)
        return _error(500, f"internal error: {type(exc).__name__}")

"""The FastAPI application: one server for webhooks, chat callbacks, API, ops and console."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from bot.app import metrics
from bot.app.runtime import Runtime
from bot.app.server import admin, api, console, ops
from bot.errors import NotFound, StoreUnavailable
from bot.ingest import webhooks

log = structlog.get_logger(__name__)


class BotServer(uvicorn.Server):
    """uvicorn, plus: on SIGTERM/SIGINT end the console's live streams so shutdown is prompt."""

    def __init__(self, runtime: Runtime, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.runtime = runtime

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.runtime.bus.close()
        super().handle_exit(sig, frame)


def server_config(app: FastAPI, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's settings for the bot. Its own proxy-header handling is off: the console guard
    reads X-Forwarded-For itself, and only from `http.trusted_proxies`, since it must still know
    the connection's peer to decide whom to believe."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        proxy_headers=False,
        **options,
    )


def create_app(runtime: Runtime, *, manage_runtime: bool = True) -> FastAPI:
    """The app around a runtime; with `manage_runtime` its lifespan starts and stops it."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            await runtime.start()
        try:
            yield
        finally:
            if manage_runtime:
                await runtime.stop()

    app = FastAPI(title="opsbot", lifespan=lifespan, docs_url="/api/docs", redoc_url=None)
    app.state.runtime = runtime
    app.state.guard = console.ConsoleGuard(runtime.cfg)
    for r in (webhooks.router, ops.router, api.router, admin.router, console.router):
        app.include_router(r)
    for mount in runtime.http_mounts:
        mount(app)

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        try:
            request.app.state.guard.check(request)
            response = await call_next(request)
        except HTTPException as exc:
            response = JSONResponse({"error": exc.detail}, exc.status_code, exc.headers)
        route = request.scope.get("route")
        metrics.REQUEST_LATENCY.labels(
            request.method, getattr(route, "path", "unmatched"), str(response.status_code)
        ).observe(time.perf_counter() - start)
        return response

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, exc.status_code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
            for e in exc.errors()
        ]
        return JSONResponse({"error": "invalid request", "problems": problems}, 422)

    @app.exception_handler(StoreUnavailable)
    async def store_down(_: Request, exc: StoreUnavailable) -> JSONResponse:
        log.warning("store.unavailable", error=str(exc))
        return JSONResponse(
            {"error": "store temporarily unavailable, retry"}, 503, {"Retry-After": "5"}
        )

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, 404)

    return app

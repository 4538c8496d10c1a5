"""The FastAPI application: one server for webhooks, chat callbacks, API, ops and console."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.app import metrics
from bot.app.runtime import Runtime
from bot.app.server import admin, api, console, ops
from bot.app.server.lane import FastLane
from bot.app.server.limits import RequestLimits
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
    the connection's peer to decide whom to believe. Its log records go to the root logger (no
    handlers of its own), where `logs.setup` masks secrets in them."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,
        lifespan="on",
        proxy_headers=False,
        **options,
    )


class Observe:
    """Console login checks and request latency, as plain ASGI (no per-request task)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        guard = scope["app"].state.guard
        try:
            if guard.guards(scope["path"]):  # a Request costs: build one only to check it
                guard.check(Request(scope))
        except HTTPException as exc:
            await JSONResponse({"error": exc.detail}, exc.status_code, exc.headers)(
                scope, receive, observed
            )
        else:
            await self.app(scope, receive, observed)
        finally:
            route = scope.get("route")
            metrics.REQUEST_LATENCY.labels(
                scope["method"], getattr(route, "path", "unmatched"), str(status)
            ).observe(time.perf_counter() - start)


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
    # inside the body limits: the lane's requests are bounded like every other
    app.add_middleware(
        FastLane,
        routes=webhooks.router.routes,
        prefix="/webhooks/",
        handlers=app.exception_handlers,
    )
    app.add_middleware(
        RequestLimits,
        max_body=runtime.cfg.http.max_body_bytes,
        max_json_depth=runtime.cfg.http.max_json_depth,
        own_depth_check="/webhooks/",  # bot.ingest.webhooks checks it where it parses
    )

    app.add_middleware(Observe)

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

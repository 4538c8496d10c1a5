"""A fast lane for the alert webhooks: their requests go straight to their handlers, past
FastAPI's routing, dependency solving and per-request exit stack, which cost a storm's
webhooks about a quarter of their CPU. The routes stay in FastAPI too (its schema, and every
other method on these paths)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, ExceptionHandler, Receive, Scope, Send


class FastLane:
    """ASGI middleware: a request to one of `routes` (path and method) is answered by its
    endpoint, called as `endpoint(request, **path_params)`; what it raises is answered by the
    app's own exception handlers (`handlers`), by Starlette's mechanism, as when FastAPI
    routes it."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[BaseRoute],
        prefix: str,
        handlers: Mapping[Any, ExceptionHandler],
    ) -> None:
        self.app, self.routes, self.prefix = app, routes, prefix
        self._endpoint = ExceptionMiddleware(_call_endpoint, handlers=handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    await self._endpoint(scope, receive, send)
                    return
        await self.app(scope, receive, send)


async def _call_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    response = await scope["endpoint"](Request(scope, receive), **scope["path_params"])
    await response(scope, receive, send)

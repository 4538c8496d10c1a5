"""A fast lane for the alert webhooks: their requests go straight to their handlers, past
FastAPI's routing, dependency solving and per-request exit stack, which cost a storm's
webhooks about a quarter of their CPU. The routes stay in FastAPI too (its schema, and every
other method on these paths)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

ExceptionHandler = Callable[[Request, Any], Response | Awaitable[Response]]


class FastLane:
    """ASGI middleware: a request to one of `routes` (path and method) is answered by its
    endpoint, called as `endpoint(request, **path_params)`; what it raises is answered by the
    app's own exception handlers, exactly as when FastAPI routes it."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[BaseRoute],
        prefix: str,
        handlers: Mapping[Any, ExceptionHandler],
    ) -> None:
        self.app, self.routes, self.prefix, self.handlers = app, routes, prefix, handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    await self._answer(child, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _answer(self, child: Scope, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await child["endpoint"](request, **child["path_params"])
        except Exception as exc:
            handler = next(
                (self.handlers[c] for c in type(exc).__mro__ if c in self.handlers), None
            )
            if handler is None:
                raise  # the server's own 500, as for any route
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)

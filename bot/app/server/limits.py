"""Bounds on every request body, before any route (or Bolt, or Twilio's handler) reads it:
its size (413) and, for JSON, how deeply it nests (400), so no parser meets a body it could
choke on. Routes that parse their bodies themselves may check the nesting there instead."""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_JSON_TYPES = ("application/json", "text/json")


_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')


def json_depth(body: bytes) -> int:
    """The deepest nesting of objects and arrays in `body`, without parsing it. Escapes are
    dropped, then all but brackets and quotes, then strings (every other piece between
    quotes), all in C, so only the brackets are walked."""
    if b"\\" in body:
        body = _ESCAPE.sub(b"", body)
    depth = deepest = 0
    for byte in b"".join(body.translate(None, _NOT_STRUCTURE).split(b'"')[::2]):
        if byte in (0x7B, 0x5B):  # { [
            depth += 1
            if depth > deepest:  # not max(): a call per bracket costs a fifth of the walk
                deepest = depth
        else:
            depth -= 1
    return deepest


def too_deep(body: bytes, limit: int) -> str | None:
    """Why a JSON body is refused for its nesting, or None when it is within `limit`."""
    return f"JSON nested deeper than {limit} levels" if json_depth(body) > limit else None


class RequestLimits:
    """ASGI middleware: reads each HTTP body (up to `max_body` bytes), checks it, replays it.
    Paths under `own_depth_check` check the nesting where they parse (a webhook's repeat,
    answered from memory, is never parsed: its nesting is no risk)."""

    def __init__(
        self, app: ASGIApp, max_body: int, max_json_depth: int, own_depth_check: str = ""
    ) -> None:
        self.app, self.max_body, self.max_depth = app, max_body, max_json_depth
        self.own_depth_check = own_depth_check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > self.max_body:
            await _refuse(
                send, 413, f"body of {length} bytes is over the {self.max_body}-byte limit"
            )
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(b"", message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _discard(receive, more and message.get("more_body", False), self.max_body * 4)
                await _refuse(send, 413, f"body is over the {self.max_body}-byte limit")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if not (self.own_depth_check and scope["path"].startswith(self.own_depth_check)):
            ctype = headers.get(b"content-type", b"").decode("latin-1")
            ctype = ctype.split(";")[0].strip().lower()
            if ctype in _JSON_TYPES or ctype.endswith("+json"):
                refusal = too_deep(body, self.max_depth)
                if refusal:
                    await _refuse(send, 400, refusal)
                    return
        await self.app(scope, _replay(body, None, receive), send)


def _replay(body: bytes, first: Message | None, receive: Receive) -> Receive:
    """A `receive` that gives the buffered body (or message) once, then the real one."""
    pending: list[Message] = (
        [first]
        if first is not None
        else [{"type": "http.request", "body": body, "more_body": False}]
    )

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def _discard(receive: Receive, more: bool, budget: int) -> None:
    """Read (up to `budget` bytes of) the rest of a refused body, so a client still sending it
    reads the answer instead of a reset connection."""
    while more and budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        more = message.get("more_body", False)


async def _refuse(send: Send, status: int, error: str) -> None:
    payload = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})

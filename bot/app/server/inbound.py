"""Small steps every inbound request goes through: auth, size limit, content type, JSON."""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import HTTPException, Request


def check_bearer(request: Request, token: str) -> None:
    """When a token is configured, require `Authorization: Bearer <token>` (401 otherwise)."""
    if not token:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
        raise HTTPException(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes with 413 before reading it all."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise HTTPException(413, f"body of {length} bytes is over the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def check_content_type(request: Request, allowed: tuple[str, ...]) -> None:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in allowed:
        raise HTTPException(
            415, f"content type {ctype or '(none)'!r} is not accepted; send {' or '.join(allowed)}"
        )


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPException(400, f"malformed JSON: {exc}") from exc
    except RecursionError as exc:
        raise HTTPException(400, "malformed JSON: nested too deeply") from exc

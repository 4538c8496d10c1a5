"""Small steps every inbound request goes through: auth, size limit, content type, JSON."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Any

from fastapi import HTTPException, Request

from bot.app.server.limits import too_deep

TOKEN_PARAM = "token"


def check_token(request: Request, token: str) -> None:
    """When a token is configured, require it (401 otherwise) as `Authorization: Bearer
    <token>`, as HTTP Basic auth whose password is the token (`https://user:<token>@host/...`,
    which Azure action groups and Google Cloud channels send), or as `?token=<token>` (Grafana
    OnCall's and Opsgenie's way). Each is compared in constant time."""
    if not token:
        return
    expected = token.encode()
    if not any(hmac.compare_digest(given, expected) for given in _offered_tokens(request)):
        raise HTTPException(
            401,
            "missing or wrong webhook token (Bearer, Basic password or ?token=)",
            {"WWW-Authenticate": 'Bearer, Basic realm="opsbot webhooks"'},
        )


def _offered_tokens(request: Request) -> list[bytes]:
    offered = [value.encode() for value in request.query_params.getlist(TOKEN_PARAM)]
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    credentials = credentials.strip()
    # header text is Latin-1 as it came: back to the bytes the sender sent
    if scheme.lower() == "bearer":
        offered.append(credentials.encode("latin-1"))
    elif scheme.lower() == "basic":
        try:
            _, colon, password = base64.b64decode(credentials, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return offered
        if colon:  # the user name is free
            offered.append(password)
    return offered


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


def check_depth(body: bytes, limit: int) -> None:
    """400 for a body nested deeper than `limit`, before any parser meets it."""
    refusal = too_deep(body, limit)
    if refusal:
        raise HTTPException(400, refusal)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPException(400, f"malformed JSON: {exc}") from exc
    except RecursionError as exc:
        raise HTTPException(400, "malformed JSON: nested too deeply") from exc

"""The JSON API the console and scripts use: incidents, their threads, replies and clicks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from bot.app.runtime import Runtime
from bot.chat.adapters.console import append_message, console_message
from bot.chat.events import CLOSED
from bot.errors import NotFound
from bot.incidents import lifecycle
from bot.incidents.models import Incident, Status
from bot.store import schema as t

router = APIRouter(prefix="/api")
KEEPALIVE_S = 15.0


def _rt(request: Request) -> Runtime:
    return request.app.state.runtime


async def _incident(rt: Runtime, ref: str) -> Incident:
    try:
        async with rt.store.read() as conn:
            return await lifecycle.find(conn, ref)
    except NotFound as exc:
        raise HTTPException(404, f"no incident {ref}") from exc


@router.get("/incidents")
async def list_incidents(request: Request, status: str | None = None) -> dict[str, Any]:
    if status and status not in {s.value for s in Status}:
        raise HTTPException(
            422, f"status must be one of triggered, acknowledged, resolved; got {status!r}"
        )
    async with _rt(request).store.read() as conn:
        found = await lifecycle.list_incidents(conn, status)
    return {"incidents": [i.to_json() for i in found]}


@router.get("/incidents/{ref}")
async def get_incident(request: Request, ref: str) -> dict[str, Any]:
    rt = _rt(request)
    inc = await _incident(rt, ref)
    async with rt.store.read() as conn:
        return await lifecycle.detail(conn, inc)


@router.get("/incidents/{ref}/postmortem", response_class=PlainTextResponse)
async def get_postmortem(request: Request, ref: str) -> Response:
    rt = _rt(request)
    inc = await _incident(rt, ref)
    async with rt.store.read() as conn:
        md = await conn.scalar(
            select(t.postmortems.c.markdown).where(t.postmortems.c.incident_id == inc.id)
        )
    if md is None:
        raise HTTPException(404, f"incident #{inc.short_id} has no postmortem yet")
    return PlainTextResponse(md, media_type="text/markdown; charset=utf-8")


class MessageIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class ButtonIn(BaseModel):
    action_id: str = Field(min_length=1, max_length=100)
    value: str = ""


def console_user(request: Request) -> str:
    """Who the console guard says sent this request (a person's name for people)."""
    user: str = request.state.user
    return user


async def _post_console(
    request: Request, ref: str, text: str, action: str | None, value: str | None
) -> dict[str, Any]:
    rt = _rt(request)
    inc = await _incident(rt, ref)
    user = console_user(request)
    if action is None:
        await append_message(rt.store, rt.bus, inc.id, user, "operator", text, {})
    await rt.router.accept(console_message(user, text, inc.id, action, value))
    return {"ok": True}


@router.post("/incidents/{ref}/messages", status_code=202)
async def post_message(request: Request, ref: str, body: MessageIn) -> dict[str, Any]:
    return await _post_console(request, ref, body.text, None, None)


@router.post("/incidents/{ref}/buttons", status_code=202)
async def click_button(request: Request, ref: str, body: ButtonIn) -> dict[str, Any]:
    return await _post_console(request, ref, body.action_id, body.action_id, body.value or ref)


@router.get("/events")
async def events(request: Request) -> StreamingResponse:
    rt = _rt(request)

    async def stream() -> AsyncIterator[str]:
        async with rt.bus.subscribe() as queue:
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if event is CLOSED:
                    return
                name, data = event
                yield f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n"

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )

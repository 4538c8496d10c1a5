"""Admin endpoints: the chaos switch that makes every LLM call fail at runtime."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from bot.app.server.console import is_loopback

router = APIRouter(prefix="/admin")


class ChaosIn(BaseModel):
    enabled: bool


def _authorize(request: Request) -> None:
    """Admin token when configured; otherwise only the loopback console user may flip it."""
    rt = request.app.state.runtime
    token = rt.cfg.admin.token
    header = request.headers.get("authorization", "")
    if token:
        given = header.removeprefix("Bearer ").strip()
        if header.startswith("Bearer ") and hmac.compare_digest(given, token):
            return
        if request.app.state.guard.required or not is_loopback(
            request.client.host if request.client else ""
        ):
            raise HTTPException(401, "admin token required", {"WWW-Authenticate": "Bearer"})
        return
    if not is_loopback(rt.cfg.http.host) and not request.cookies.get("opsbot_session"):
        raise HTTPException(401, "set admin.token to use admin endpoints on a public address")


@router.get("/chaos")
async def get_chaos(request: Request) -> dict[str, bool]:
    return {"enabled": await request.app.state.runtime.chaos.get()}


@router.post("/chaos")
async def set_chaos(request: Request, body: ChaosIn) -> dict[str, bool]:
    _authorize(request)
    rt = request.app.state.runtime
    await rt.chaos.set(body.enabled, actor="admin-api")
    return {"enabled": body.enabled}

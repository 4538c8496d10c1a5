"""Admin endpoints: the chaos switch that makes every LLM call fail at runtime.

Who may change it is the console guard's call (`admin.token`, or an admin's login).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

router = APIRouter(prefix="/admin")


class ChaosIn(BaseModel):
    enabled: bool


@router.get("/chaos")
async def get_chaos(request: Request) -> dict[str, bool]:
    return {"enabled": await request.app.state.runtime.chaos.get()}


@router.post("/chaos")
async def set_chaos(request: Request, body: ChaosIn) -> dict[str, bool]:
    await request.app.state.runtime.chaos.set(body.enabled, actor=request.state.user)
    return {"enabled": body.enabled}

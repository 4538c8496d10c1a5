"""Operations endpoints: liveness, readiness, Prometheus metrics, stats, chaos switch."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.app import stats
from bot.errors import StoreUnavailable

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> dict[str, Any]:
    """Ready while the store answers; says which replica this is and whether it leads."""
    rt = request.app.state.runtime
    try:
        await rt.store.ping()
    except StoreUnavailable as exc:
        raise HTTPException(503, f"store unreachable: {exc}") from exc
    return {"status": "ready", "replica": rt.replica.id, "leader": rt.leader.is_leader}


@router.get("/metrics")
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/stats")
async def get_stats(request: Request) -> dict[str, Any]:
    async with request.app.state.runtime.store.read() as conn:
        return await stats.compute(conn)

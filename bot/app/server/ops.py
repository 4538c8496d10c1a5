"""Operations endpoints: liveness, readiness, Prometheus metrics, stats, chaos switch."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.app import stats
from bot.chat import storm
from bot.errors import StoreUnavailable
from bot.queue import outbox

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> dict[str, Any]:
    """Ready while the store answers and the outbox worker moves the queue; says which
    replica this is and whether it leads."""
    rt = request.app.state.runtime
    try:
        async with rt.store.read() as conn:
            due = (await outbox.counts(conn))["due"]
    except StoreUnavailable as exc:
        raise HTTPException(503, f"store unreachable: {exc}") from exc
    problem = rt.worker.health.problem(rt.cfg.outbox.stall_s, due)
    if problem is not None:
        raise HTTPException(503, problem)
    return {"status": "ready", "replica": rt.replica.id, "leader": rt.leader.is_leader}


@router.get("/metrics")
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/stats")
async def get_stats(request: Request) -> dict[str, Any]:
    rt = request.app.state.runtime
    async with rt.store.read() as conn:
        data = await stats.compute(conn)
        data["storms"] = await storm.current(conn)  # channels showing one digest for many
    data["outbox"].update(rt.worker.health.report())
    return data

"""The numbers behind GET /stats and the `stats` chat command."""

from __future__ import annotations

from statistics import mean
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.incidents import delivery
from bot.incidents.models import aware
from bot.queue import outbox
from bot.store import schema as t

DROPPED = "user_dropped_count"


async def bump(conn: AsyncConnection, name: str, by: float = 1) -> None:
    done = await conn.execute(
        update(t.counters).where(t.counters.c.name == name).values(value=t.counters.c.value + by)
    )
    if done.rowcount == 0:
        await conn.execute(t.counters.insert().values(name=name, value=by))


async def compute(conn: AsyncConnection) -> dict[str, Any]:
    by_status: dict[str, int] = dict(
        (
            await conn.execute(
                select(t.incidents.c.status, func.count()).group_by(t.incidents.c.status)
            )
        ).all()
    )
    by_source: dict[str, int] = dict(
        (
            await conn.execute(
                select(t.diagnoses.c.source, func.count()).group_by(t.diagnoses.c.source)
            )
        ).all()
    )
    times = (
        await conn.execute(
            select(
                t.incidents.c.created_at, t.incidents.c.acknowledged_at, t.incidents.c.resolved_at
            )
        )
    ).all()
    ack = [(aware(a) - aware(c)).total_seconds() for c, a, _ in times if a]  # type: ignore[operator]
    res = [(aware(r) - aware(c)).total_seconds() for c, _, r in times if r]  # type: ignore[operator]
    dropped = await conn.scalar(select(t.counters.c.value).where(t.counters.c.name == DROPPED))
    return {
        "incidents": {s: by_status.get(s, 0) for s in ("triggered", "acknowledged", "resolved")},
        "diagnoses": {
            s: by_source.get(s, 0) for s in ("live", "fallback", "cache", "offline", "static")
        },
        "user_dropped_count": int(dropped or 0),
        "mtta_s": round(mean(ack), 1) if ack else None,
        "mttr_s": round(mean(res), 1) if res else None,
        "outbox": await outbox.counts(conn),
        "messages": await delivery.counts(conn),  # to people, by delivery status (WhatsApp)
    }

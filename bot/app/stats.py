"""The numbers behind GET /stats and the `stats` chat command."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.incidents import delivery
from bot.queue import outbox
from bot.store import schema as t

DROPPED = "user_dropped_count"


async def bump(conn: AsyncConnection, name: str, by: float = 1) -> None:
    done = await conn.execute(
        update(t.counters).where(t.counters.c.name == name).values(value=t.counters.c.value + by)
    )
    if done.rowcount == 0:
        await conn.execute(t.counters.insert().values(name=name, value=by))


def _seconds(conn: AsyncConnection, start: Any, end: Any) -> Any:
    """Seconds from `start` to `end` in SQL (NULL when `end` is): averaged in the database."""
    if conn.dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


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
    i = t.incidents
    mtta, mttr = (
        await conn.execute(
            select(
                func.avg(_seconds(conn, i.c.created_at, i.c.acknowledged_at)),
                func.avg(_seconds(conn, i.c.created_at, i.c.resolved_at)),
            )
        )
    ).one()
    dropped = await conn.scalar(select(t.counters.c.value).where(t.counters.c.name == DROPPED))
    return {
        "incidents": {s: by_status.get(s, 0) for s in ("triggered", "acknowledged", "resolved")},
        "diagnoses": {
            s: by_source.get(s, 0) for s in ("live", "fallback", "cache", "offline", "static")
        },
        "user_dropped_count": int(dropped or 0),
        "mtta_s": round(float(mtta), 1) if mtta is not None else None,
        "mttr_s": round(float(mttr), 1) if mttr is not None else None,
        "outbox": await outbox.counts(conn),
        "messages": await delivery.counts(conn),  # to people, by delivery status (WhatsApp)
    }

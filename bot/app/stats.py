"""The numbers behind GET /stats and the `stats` chat command."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, select, update
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
    i = t.incidents
    to_ack = _seconds(conn, i.c.created_at, i.c.acknowledged_at)
    to_resolve = _seconds(conn, i.c.created_at, i.c.resolved_at)
    rows = (
        await conn.execute(  # one pass over the incidents: counts and both means
            select(
                i.c.status,
                func.count(),
                func.sum(to_ack),
                func.count(to_ack),
                func.sum(to_resolve),
                func.count(to_resolve),
            ).group_by(i.c.status)
        )
    ).all()
    by_status = {r[0]: r[1] for r in rows}
    by_source: dict[str, int] = dict(
        (
            await conn.execute(
                select(t.diagnoses.c.source, func.count()).group_by(t.diagnoses.c.source)
            )
        ).all()
    )
    dropped = await conn.scalar(select(t.counters.c.value).where(t.counters.c.name == DROPPED))
    return {
        "incidents": {s: by_status.get(s, 0) for s in ("triggered", "acknowledged", "resolved")},
        "diagnoses": {
            s: by_source.get(s, 0) for s in ("live", "fallback", "cache", "offline", "static")
        },
        "user_dropped_count": int(dropped or 0),
        "mtta_s": _mean(rows, 2),
        "mttr_s": _mean(rows, 4),
        "outbox": await outbox.counts(conn),
        "messages": await delivery.counts(conn),  # to people, by delivery status (WhatsApp)
    }


def _mean(rows: Sequence[Row[Any]], at: int) -> float | None:
    """The mean over all statuses from each status's sum (`at`) and count (`at + 1`)."""
    total, n = sum(float(r[at] or 0) for r in rows), sum(r[at + 1] for r in rows)
    return round(total / n, 1) if n else None

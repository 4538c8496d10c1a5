"""The scheduled purge: delivered outbox items and raw webhook deliveries past their retention.

Pending and failed (dead-lettered) outbox items are never purged: they are work or evidence.
A delivery row is the sender's idempotency key too, so its retention outlasts any retry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.app.config import RetentionConfig
from bot.store import Store
from bot.store import schema as t

CHUNK = 5000  # rows per transaction: the purge never holds the write turn for long


@dataclass(frozen=True, slots=True)
class Purged:
    outbox: int
    deliveries: int

    def __bool__(self) -> bool:
        return bool(self.outbox or self.deliveries)


async def purge_chunk(conn: AsyncConnection, keep: RetentionConfig, now: datetime) -> Purged:
    """Delete up to CHUNK rows of each kind older than its retention; how many went."""
    o, d = t.outbox, t.deliveries
    done_before = now - timedelta(seconds=keep.delivered_outbox_s)
    old_outbox = select(o.c.id).where(o.c.status == "done", o.c.done_at < done_before)
    received_before = now - timedelta(seconds=keep.request_bodies_s)
    old_deliveries = select(d.c.id).where(d.c.received_at < received_before)
    outbox = await conn.execute(delete(o).where(o.c.id.in_(old_outbox.limit(CHUNK))))
    deliveries = await conn.execute(delete(d).where(d.c.id.in_(old_deliveries.limit(CHUNK))))
    return Purged(outbox.rowcount, deliveries.rowcount)


async def purge(store: Store, keep: RetentionConfig, now: datetime) -> Purged:
    """Everything past its retention, a chunk per transaction (as background writes)."""
    total = Purged(0, 0)
    while True:
        async with store.write() as conn:
            chunk = await purge_chunk(conn, keep, now)
        total = Purged(total.outbox + chunk.outbox, total.deliveries + chunk.deliveries)
        if chunk.outbox < CHUNK and chunk.deliveries < CHUNK:
            return total

"""Delivery of messages to people: what was sent, what the platform says became of it.

A failed or undelivered page shows in the incident's timeline and /stats, and brings the
incident's next escalation step forward to now: the person it was for cannot be reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.app.config import Config
from bot.incidents import escalation, lifecycle
from bot.incidents.models import aware, utcnow
from bot.store import schema as t

FAILED = frozenset({"failed", "undelivered"})
POSTING = "posting"  # attempted, the platform's answer not yet recorded
# later states win over earlier ones; callbacks can arrive out of order
_RANK = {"accepted": 0, "queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4}
STATUSES = ("sent", "delivered", "read", "failed", "undelivered")


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """A platform's report on one message it was given (a Twilio status callback)."""

    platform: str
    message_id: str
    status: str
    error: str | None = None


async def intend(
    conn: AsyncConnection, platform: str, key: str, recipient: str, incident_id: str | None
) -> None:
    """A message is about to be sent under `key` (kept from the first attempt on, so that
    after a crash the platform's own list shows whether it got through, and since when)."""
    sm = t.sent_messages
    known = await conn.scalar(
        select(sm.c.message_id).where(sm.c.platform == platform, sm.c.message_id == key)
    )
    if known is None:
        await _insert(conn, platform, key, recipient, incident_id, POSTING)


async def find_sent(
    conn: AsyncConnection, platform: str, key: str
) -> tuple[str | None, datetime, int] | None:
    """What became of a message under `key`: (its id, None while only attempted; when it was
    first attempted or sent; the `#N` of its incident), or None when it was never tried."""
    sm = t.sent_messages
    row = (
        await conn.execute(
            select(sm.c.message_id, sm.c.status, sm.c.sent_at, t.incidents.c.short_id)
            .join(t.incidents, t.incidents.c.id == sm.c.incident_id)
            .where(
                sm.c.platform == platform,
                or_(sm.c.post_key == key, and_(sm.c.message_id == key, sm.c.status == POSTING)),
            )
            .order_by((sm.c.status == POSTING).asc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    sent_id = None if row.status == POSTING else str(row.message_id)
    return sent_id, aware(row.sent_at) or utcnow(), int(row.short_id)


async def record_sent(
    conn: AsyncConnection,
    platform: str,
    message_id: str,
    recipient: str,
    incident_id: str | None,
    key: str | None = None,
) -> None:
    """A message the platform accepted, whose delivery it will report (its intent is done)."""
    sm = t.sent_messages
    if key is not None:
        await conn.execute(delete(sm).where(sm.c.platform == platform, sm.c.message_id == key))
    await _insert(conn, platform, message_id, recipient, incident_id, "queued", key)


async def _insert(
    conn: AsyncConnection,
    platform: str,
    message_id: str,
    recipient: str,
    incident_id: str | None,
    status: str,
    key: str | None = None,
) -> None:
    now = utcnow()
    await conn.execute(
        insert(t.sent_messages).values(
            platform=platform,
            message_id=message_id,
            incident_id=incident_id,
            recipient=recipient,
            status=status,
            sent_at=now,
            updated_at=now,
            post_key=key,
        )
    )


def _moves_on(old: str, new: str) -> bool:
    if old == new or old in FAILED:
        return False
    return new in FAILED or _RANK.get(new, 0) > _RANK.get(old, 0)


async def record_status(
    conn: AsyncConnection, cfg: Config, report: DeliveryStatus, now: datetime | None = None
) -> str | None:
    """Apply a status report once; returns the incident to escalate when a page failed."""
    now = now or utcnow()
    sm = t.sent_messages
    row = (
        await conn.execute(
            select(sm.c.status, sm.c.incident_id, sm.c.recipient).where(
                sm.c.platform == report.platform, sm.c.message_id == report.message_id
            )
        )
    ).first()
    if row is None or not _moves_on(row.status, report.status):
        return None  # not ours, a repeat, or older news than we have
    await conn.execute(
        update(sm)
        .where(sm.c.platform == report.platform, sm.c.message_id == report.message_id)
        .values(status=report.status, error=report.error, updated_at=now)
    )
    if report.status not in FAILED or row.incident_id is None:
        return None
    code = f" (error {report.error})" if report.error else ""
    person = cfg.person(row.recipient)
    who = person.name if person else row.recipient
    text = f"{report.platform} message to {who} {report.status}{code}"
    await lifecycle.add_event(conn, row.incident_id, "delivery_failed", report.platform, text, now)
    await escalation.escalate_now(conn, row.incident_id, now)
    return str(row.incident_id)


async def counts(conn: AsyncConnection) -> dict[str, int]:
    """Messages to people by their last known status, for /stats."""
    rows = (
        await conn.execute(
            select(t.sent_messages.c.status, func.count()).group_by(t.sent_messages.c.status)
        )
    ).all()
    by: dict[str, int] = {r[0]: r[1] for r in rows}
    return {s: int(by.get(s, 0)) for s in STATUSES}


async def heard_from(conn: AsyncConnection, platform: str, address: str, at: datetime) -> None:
    """A person wrote to us from `address` (WhatsApp's 24-hour window starts again)."""
    c = t.contacts
    moved = await conn.execute(
        update(c)
        .where(c.c.platform == platform, c.c.address == address, c.c.last_inbound_at < at)
        .values(last_inbound_at=at)
    )
    if moved.rowcount == 0:
        known = await conn.scalar(
            select(c.c.address).where(c.c.platform == platform, c.c.address == address)
        )
        if known is None:
            await conn.execute(
                insert(c).values(platform=platform, address=address, last_inbound_at=at)
            )


async def last_heard(conn: AsyncConnection, platform: str, address: str) -> datetime | None:
    """When the person at `address` last wrote to us, if ever."""
    return aware(
        await conn.scalar(
            select(t.contacts.c.last_inbound_at).where(
                t.contacts.c.platform == platform, t.contacts.c.address == address
            )
        )
    )

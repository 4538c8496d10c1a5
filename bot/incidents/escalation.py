"""Escalation: an unacknowledged incident pages step after step of its policy until someone acks.

The chain lives in the `escalations` row (steps fired, when the next is due), so a restart
neither loses nor repeats a step: a due step is claimed by a conditional update
(`fired = N` → `N + 1`) in the same transaction as the pages it queues, and with several
replicas only one update matches. Pages go out through the outbox like every message.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy import exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.app.config import Config, EscalationPolicyConfig, PersonConfig
from bot.chat.adapters import BY_NAME
from bot.chat.adapters.base import Reply
from bot.incidents import lifecycle, oncall
from bot.incidents.models import Incident, Status, aware, utcnow
from bot.queue.outbox import Item
from bot.store import Store
from bot.store import schema as t

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
ACTIVE, STOPPED, EXHAUSTED = "active", "stopped", "exhausted"


def address(cfg: Config, person: PersonConfig, channel: str) -> tuple[str, str] | None:
    """Where a person is paged on a channel: their number, their user id (a direct message),
    or the console; None when they have no address there or the platform is off."""
    platform = BY_NAME.get(channel)
    if platform is None or not platform.enabled(cfg):
        return None
    if platform.local:
        return (platform.name, platform.name)
    handle = getattr(person, channel)
    return (channel, handle) if handle else None


async def begin(conn: AsyncConnection, cfg: Config, inc: Incident, now: datetime) -> None:
    """A new (or re-opened) incident starts its policy's chain: the first step is paged now."""
    policy = cfg.escalation_for(inc.labels)
    if policy is None:
        return
    values = {"policy": policy, "fired": 0, "next_at": now, "state": ACTIVE, "updated_at": now}
    reset = await conn.execute(
        update(t.escalations).where(t.escalations.c.incident_id == inc.id).values(**values)
    )
    if reset.rowcount == 0:
        await conn.execute(insert(t.escalations).values(incident_id=inc.id, **values))
    await _advance(conn, cfg, inc.id, 0, now)


async def escalate_now(conn: AsyncConnection, incident_id: str, now: datetime) -> bool:
    """Bring the next step forward to now (a page could not be delivered)."""
    done = await conn.execute(
        update(t.escalations)
        .where(t.escalations.c.incident_id == incident_id, t.escalations.c.state == ACTIVE)
        .values(next_at=now, updated_at=now)
    )
    return done.rowcount > 0


async def _claim(
    conn: AsyncConnection, incident_id: str, seen: int, now: datetime, **values: object
) -> bool:
    """Move the chain on from `seen` steps fired; False when another transaction already did."""
    done = await conn.execute(
        update(t.escalations)
        .where(
            t.escalations.c.incident_id == incident_id,
            t.escalations.c.fired == seen,
            t.escalations.c.state == ACTIVE,
        )
        .values(updated_at=now, **values)
    )
    return done.rowcount == 1


async def _advance(
    conn: AsyncConnection, cfg: Config, incident_id: str, fired: int, now: datetime
) -> bool:
    """Fire the step after `fired` if it is still due; True when this call fired it."""
    inc = await lifecycle.get(conn, incident_id)
    policy_name = await conn.scalar(
        select(t.escalations.c.policy).where(t.escalations.c.incident_id == incident_id)
    )
    policy = cfg.oncall.policies.get(policy_name or "")
    if inc.status != Status.TRIGGERED or policy is None:
        if await _claim(conn, incident_id, fired, now, state=STOPPED, next_at=None):
            why = status_reason(inc) if policy is not None else "its policy is gone"
            await lifecycle.add_event(
                conn, inc.id, "escalation_stopped", "opsbot", f"Escalation stopped: {why}", now
            )
        return False
    if inc.snoozed_until is not None and inc.snoozed_until > now:
        await _claim(conn, incident_id, fired, now, next_at=inc.snoozed_until)
        return False
    steps = len(policy.steps)
    index = min(fired, steps - 1)
    more = fired + 1 < steps + policy.repeat
    after = now + timedelta(seconds=policy.steps[index].wait_s)
    if not await _claim(
        conn,
        incident_id,
        fired,
        now,
        fired=fired + 1,
        next_at=after if more else None,
        state=ACTIVE if more else EXHAUSTED,
    ):
        return False
    await _page_step(conn, cfg, inc, policy, fired, now)
    return True


def status_reason(inc: Incident) -> str:
    if inc.status == Status.ACKNOWLEDGED:
        return f"acknowledged by {inc.acknowledged_by}"
    if inc.status == Status.RESOLVED:
        return f"resolved by {inc.resolved_by or 'the source'}"
    return "triggered"


async def _page_step(
    conn: AsyncConnection,
    cfg: Config,
    inc: Incident,
    policy: EscalationPolicyConfig,
    fired: int,
    now: datetime,
) -> None:
    steps = len(policy.steps)
    index = min(fired, steps - 1)
    step = policy.steps[index]
    people: dict[str, PersonConfig] = {}
    for who in step.notify:
        person = oncall.resolve(cfg, who, now)
        if person is not None:
            people.setdefault(person.name, person)
    label = f"step {index + 1}/{steps}"
    if fired >= steps:
        label += f", repeat {fired - steps + 1}/{policy.repeat}"
    paged: list[str] = []
    for person in people.values():
        for channel in step.channels:
            where = address(cfg, person, channel)
            if where is None:
                continue
            await _page(conn, cfg, inc, where, person, label, now)
            paged.append(f"{person.name} ({channel})")
    text = f"Escalation {label}: paged " + (", ".join(paged) or "nobody (no reachable address)")
    await lifecycle.add_event(conn, inc.id, "escalated", "opsbot", text, now)
    log.info("escalation.step", incident=inc.id, step=index + 1, fired=fired + 1, paged=paged)


async def _page(
    conn: AsyncConnection,
    cfg: Config,
    inc: Incident,
    where: tuple[str, str],
    person: PersonConfig,
    label: str,
    now: datetime,
) -> None:
    """Page one person at one address: the incident's root message where they have none yet
    (it is the page), a short reminder in the conversation they already have."""
    platform, channel = where
    destination = f"{platform}:{channel}"
    o = t.outbox
    root = await conn.scalar(
        select(o.c.status).where(
            o.c.kind == "post_root",
            o.c.destination == destination,
            o.c.incident_id == inc.id,
            o.c.status != "dead",
        )
    )
    threaded = await conn.scalar(
        select(
            exists().where(
                t.threads.c.incident_id == inc.id,
                t.threads.c.platform == platform,
                t.threads.c.channel == channel,
            )
        )
    )
    if root is None and not threaded:
        await lifecycle.enqueue_root(conn, cfg, inc, post=True, only=where)
        return
    if root == "pending":
        return  # the root on its way is the page
    waited = max(1, round((now - inc.created_at).total_seconds() / 60))
    text = (
        f"🚨 {person.name}, you are paged ({label}): #{inc.short_id} [{inc.severity}] "
        f"{inc.service or '-'} — {inc.title}, unacknowledged for {waited} min. "
        f"Reply `ack` or `#{inc.short_id} ack`."
    )
    await lifecycle.enqueue_reply(conn, cfg, inc, Reply(text, "page"), only=where)


class Escalator:
    """Fires due steps; `tick` runs on the scheduler (and in tests, with their own clock)."""

    def __init__(self, cfg: Config, store: Store, clock: Clock = utcnow) -> None:
        self.cfg, self.store, self.clock = cfg, store, clock
        self.wake: Callable[[], None] = lambda: None  # the outbox worker, for the new pages

    async def start(self, item: Item) -> None:
        """The `escalate` job an incident's opening queued: its chain starts, step 1 now."""
        async with self.store.write() as conn:
            inc = await lifecycle.get(conn, str(item.incident_id))
            if inc.status == Status.TRIGGERED:
                await begin(conn, self.cfg, inc, self.clock())
        self.wake()

    async def tick(self) -> int:
        """Fire every step that is due now; returns how many this process fired."""
        now = self.clock()
        e = t.escalations
        async with self.store.read() as conn:
            due = (
                await conn.execute(
                    select(e.c.incident_id, e.c.fired)
                    .where(e.c.state == ACTIVE, e.c.next_at <= now)
                    .order_by(e.c.next_at)
                )
            ).all()
        fired = 0
        for row in due:
            async with self.store.write() as conn:
                fired += await _advance(conn, self.cfg, row.incident_id, row.fired, now)
        if fired:
            self.wake()
        return fired


async def describe(conn: AsyncConnection, cfg: Config, incident_id: str) -> str | None:
    """One line for `status` / `who is on call`: where an incident's chain stands."""
    row = (
        await conn.execute(select(t.escalations).where(t.escalations.c.incident_id == incident_id))
    ).first()
    if row is None:
        return None
    policy = cfg.oncall.policies.get(row.policy)
    total = len(policy.steps) + policy.repeat if policy else row.fired
    next_at = aware(row.next_at)
    if row.state == ACTIVE and next_at is not None:
        return (
            f"Escalation ({row.policy}): {row.fired} of {total} steps paged, "
            f"next at {next_at:%H:%M} UTC"
        )
    return f"Escalation ({row.policy}): {row.state} after {row.fired} of {total} steps"

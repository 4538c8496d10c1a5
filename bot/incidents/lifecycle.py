"""Incident lifecycle: alerts in → incidents; one function per transition.

Each transition writes the incident row, its timeline event and the outbox items it causes
in the caller's transaction, so nothing happens unless all of it is committed.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.app.config import Config, RouteConfig
from bot.chat.adapters import BY_NAME, PLATFORMS, is_local
from bot.chat.messages import Reply, reply_to_json
from bot.errors import NotFound
from bot.incidents.memory import remember_fix
from bot.incidents.models import Incident, Status, utcnow
from bot.queue import outbox
from bot.store import schema as t
from integrations.alerts import Alert, AlertStatus, Severity


@dataclass(slots=True)
class IngestResult:
    opened: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)
    ignored: int = 0

    @property
    def incident_ids(self) -> list[str]:
        return [*self.opened, *self.reopened, *self.updated, *self.resolved]


def destinations(cfg: Config, labels: dict[str, str]) -> list[tuple[str, str]]:
    """(platform, channel) pairs an incident's conversations live in, from the first matching
    route (with none, the local platforms'), on every platform that is switched on."""
    route = cfg.route_for(labels)
    on = [p for p in PLATFORMS if p.enabled(cfg) and (route is not None or p.local)]
    out = [(p.name, c) for p in on for c in p.targets(cfg, route or RouteConfig())]
    asked = labels.get(ASKED_IN_LABEL)  # a manual incident also lives where it was opened
    if asked:
        platform, _, channel = asked.partition(":")
        known = platform in BY_NAME and BY_NAME[platform].enabled(cfg)
        if (platform, channel) not in out and known and channel:
            out.append((platform, channel))
    return out


ASKED_IN_LABEL = "opsbot_opened_in"


async def conversations(conn: AsyncConnection, cfg: Config, inc: Incident) -> list[tuple[str, str]]:
    """Where an incident's news goes: its route's destinations, and every conversation it was
    posted in since (people paged by escalation hear the ack and the resolution too)."""
    out = destinations(cfg, inc.labels)
    rows = await conn.execute(
        select(t.threads.c.platform, t.threads.c.channel)
        .where(t.threads.c.incident_id == inc.id)
        .order_by(t.threads.c.id)
    )
    out += [(p, c) for p, c in rows.tuples() if (p, c) not in out]
    return out


def _ordering_key(platform: str, channel: str, incident_id: str) -> str:
    return f"{platform}:{channel}:{incident_id}"


async def enqueue_root(
    conn: AsyncConnection,
    cfg: Config,
    inc: Incident,
    *,
    post: bool,
    only: tuple[str, str] | None = None,
) -> None:
    """Post the root message everywhere (new incident) or edit it (repeat, state change)."""
    targets = [only] if only else destinations(cfg, inc.labels)
    if not post and not only:
        targets = await conversations(conn, cfg, inc)
    for platform, channel in targets:
        key = _ordering_key(platform, channel, inc.id)
        if post:
            await outbox.enqueue(
                conn,
                "post_root",
                f"{platform}:{channel}",
                {"incident_id": inc.id},
                ordering_key=key,
                incident_id=inc.id,
            )
        else:
            await outbox.enqueue(
                conn,
                "update_root",
                f"{platform}:{channel}",
                {"incident_id": inc.id},
                ordering_key=key,
                incident_id=inc.id,
                coalesce_key=f"update:{key}",
                delay_s=0 if is_local(platform) else cfg.outbox.update_coalesce_s,
            )


async def enqueue_reply(
    conn: AsyncConnection,
    cfg: Config,
    inc: Incident,
    reply: Reply,
    *,
    only: tuple[str, str] | None = None,
) -> None:
    """A reply in every conversation of the incident (or just one destination)."""
    targets = [only] if only else await conversations(conn, cfg, inc)
    for platform, channel in targets:
        await outbox.enqueue(
            conn,
            "reply",
            f"{platform}:{channel}",
            {"incident_id": inc.id, "reply": reply_to_json(reply)},
            ordering_key=_ordering_key(platform, channel, inc.id),
            incident_id=inc.id,
        )


async def enqueue_job(
    conn: AsyncConnection, kind: str, inc: Incident, payload: dict[str, Any] | None = None
) -> None:
    """Slow work for this incident (diagnose, action, ticket, postmortem), run by the worker."""
    await outbox.enqueue(
        conn,
        kind,
        kind,
        {"incident_id": inc.id, **(payload or {})},
        ordering_key=f"job:{kind}:{inc.id}:{uuid.uuid4().hex[:8]}",
        incident_id=inc.id,
    )


async def add_event(
    conn: AsyncConnection,
    incident_id: str,
    kind: str,
    actor: str,
    text: str,
    at: datetime | None = None,
) -> None:
    await conn.execute(
        insert(t.timeline).values(
            incident_id=incident_id, at=at or utcnow(), kind=kind, actor=actor, text=text
        )
    )


async def _set(conn: AsyncConnection, incident_id: str, now: datetime, **values: Any) -> None:
    await conn.execute(
        update(t.incidents).where(t.incidents.c.id == incident_id).values(updated_at=now, **values)
    )


async def get(conn: AsyncConnection, incident_id: str) -> Incident:
    row = (await conn.execute(select(t.incidents).where(t.incidents.c.id == incident_id))).first()
    if row is None:
        raise NotFound(f"no incident {incident_id}")
    return Incident.from_row(row)


async def find(conn: AsyncConnection, ref: str) -> Incident:
    """By id, short id ("42" or "#42")."""
    ref = ref.strip().lstrip("#")
    if ref.isdigit():
        row = (
            await conn.execute(select(t.incidents).where(t.incidents.c.short_id == int(ref)))
        ).first()
        if row is not None:
            return Incident.from_row(row)
    return await get(conn, ref)


async def list_incidents(
    conn: AsyncConnection, status: str | None = None, limit: int = 200
) -> list[Incident]:
    q = select(t.incidents).order_by(t.incidents.c.created_at.desc()).limit(limit)
    if status:
        q = q.where(t.incidents.c.status == status)
    return [Incident.from_row(r) for r in (await conn.execute(q)).all()]


async def _open_incident(
    conn: AsyncConnection, cfg: Config, alert: Alert, service: str | None, now: datetime
) -> Incident:
    for _ in range(5):  # a concurrent transaction opened this group first: read it instead
        short = await _next_short_id(conn)
        inc_id = uuid.uuid4().hex
        labels = {**alert.labels}
        if service:
            labels.setdefault("service", service)
        values = {
            "id": inc_id,
            "short_id": short,
            "group_key": alert.group_key,
            "open_key": alert.group_key,
            "status": Status.TRIGGERED.value,
            "severity": alert.severity.value,
            "title": alert.title,
            "service": service,
            "labels": labels,
            "annotations": dict(alert.annotations),
            "source": alert.source,
            "signature": alert.signature,
            "created_at": now,
            "updated_at": now,
            "alert_count": 0,
            "generator_url": alert.generator_url,
        }
        try:
            async with conn.begin_nested():
                await conn.execute(insert(t.incidents).values(**values))
        except IntegrityError:
            existing = (
                await conn.execute(
                    select(t.incidents).where(t.incidents.c.open_key == alert.group_key)
                )
            ).first()
            if existing is not None:
                return Incident.from_row(existing)
            continue
        await add_event(conn, inc_id, "triggered", alert.source, f"Triggered: {alert.title}", now)
        return Incident.from_values(values)
    raise RuntimeError("could not allocate an incident short id")


_INSERT_ALERTS = insert(t.alerts)
_UPDATE_ALERTS = update(t.alerts).where(t.alerts.c.id == bindparam("alert_id"))


SHORT_ID = "incident_short_id"


async def _next_short_id(conn: AsyncConnection) -> int:
    """The next `#N`: one counter row, incremented in place (row-locked until commit on
    PostgreSQL, so concurrent transactions and replicas never hand out the same number)."""
    bumped = await conn.execute(
        update(t.counters)
        .where(t.counters.c.name == SHORT_ID)
        .values(value=t.counters.c.value + 1)
        .returning(t.counters.c.value)
    )
    value = bumped.scalar()
    if value is not None:
        return int(value)
    first = ((await conn.scalar(select(func.max(t.incidents.c.short_id)))) or 0) + 1
    try:
        async with conn.begin_nested():
            await conn.execute(insert(t.counters).values(name=SHORT_ID, value=first))
    except IntegrityError:  # another transaction created the counter first
        return await _next_short_id(conn)
    return first


async def _upsert_alerts(
    conn: AsyncConnection, inc_id: str, group: list[Alert], now: datetime, *, new: bool = False
) -> dict[str, tuple[str, str]]:
    """Write a notification's alerts in two batched statements; returns every alert of the
    incident as fingerprint → (status, severity). A `new` incident has none to look up."""
    rows = (
        []
        if new
        else (
            await conn.execute(
                select(
                    t.alerts.c.id, t.alerts.c.fingerprint, t.alerts.c.status, t.alerts.c.severity
                ).where(t.alerts.c.incident_id == inc_id)
            )
        ).all()
    )
    ids = {r.fingerprint: r.id for r in rows}
    known = {r.fingerprint: (r.status, r.severity) for r in rows}
    latest = {a.fingerprint: a for a in group}  # a fingerprint twice in one body: last wins
    inserts, updates = [], []
    for fp, a in latest.items():
        values = {
            "status": a.status.value,
            "title": a.title,
            "severity": a.severity.value,
            "labels": dict(a.labels),
            "annotations": dict(a.annotations),
            "logs": list(a.logs),
            "starts_at": a.starts_at,
            "ends_at": a.ends_at,
            "updated_at": now,
        }
        if fp in ids:
            updates.append({"alert_id": ids[fp], **values})
        else:
            inserts.append({"incident_id": inc_id, "fingerprint": fp, **values})
        known[fp] = (a.status.value, a.severity.value)
    if inserts:
        await conn.execute(_INSERT_ALERTS, inserts)
    if updates:
        await conn.execute(_UPDATE_ALERTS, updates)
    return known


async def ingest(
    conn: AsyncConnection, cfg: Config, alerts: list[Alert], now: datetime | None = None
) -> IngestResult:
    """Apply a delivery's alerts: open, update, resolve or re-open incidents by group key."""
    now = now or utcnow()
    result = IngestResult()
    groups: dict[str, list[Alert]] = {}
    for a in alerts:
        groups.setdefault(a.group_key, []).append(a)
    for key, group in groups.items():
        await _ingest_group(conn, cfg, key, group, now, result)
    return result


async def _ingest_group(
    conn: AsyncConnection,
    cfg: Config,
    key: str,
    group: list[Alert],
    now: datetime,
    result: IngestResult,
) -> None:
    firing = [a for a in group if a.status == AlertStatus.FIRING]
    # FOR UPDATE (PostgreSQL): deliveries for one incident apply one after another
    row = (
        await conn.execute(
            select(t.incidents).where(t.incidents.c.open_key == key).with_for_update()
        )
    ).first()
    inc = Incident.from_row(row) if row else None
    new = reopened = False
    if inc is None:
        if not firing:
            result.ignored += len(group)  # resolution of something we never saw open
            return
        last = (
            await conn.execute(
                select(t.incidents)
                .where(t.incidents.c.group_key == key)
                .order_by(t.incidents.c.created_at.desc())
                .limit(1)
            )
        ).first()
        previous = Incident.from_row(last) if last else None
        window = timedelta(seconds=cfg.webhooks.reopen_window_s)
        if previous and previous.resolved_at and now - previous.resolved_at <= window:
            inc = previous
            reopened = True
            await _set(
                conn,
                inc.id,
                now,
                status=Status.TRIGGERED.value,
                open_key=key,
                resolved_at=None,
                resolved_by=None,
                acknowledged_at=None,
                acknowledged_by=None,
            )
            await add_event(
                conn, inc.id, "reopened", firing[0].source, "Re-opened: fired again", now
            )
            inc = await get(conn, inc.id)
        else:
            first = firing[0]
            service = (
                cfg.service_for(first.labels, first.service)
                or cfg.label_service(first.labels)
                or first.service
            )
            inc = await _open_incident(conn, cfg, first, service, now)
            new = inc.alert_count == 0  # 0 only when this call created it
    known = await _upsert_alerts(conn, inc.id, group, now, new=new)
    severity = max((Severity(sev) for _, sev in known.values()), key=lambda s: s.rank)
    all_resolved = all(status == AlertStatus.RESOLVED.value for status, _ in known.values())
    await _set(conn, inc.id, now, alert_count=len(known), severity=severity.value)
    inc = dataclasses.replace(inc, alert_count=len(known), severity=severity.value, updated_at=now)
    if all_resolved and inc.is_open:
        await resolve(conn, cfg, inc, actor=group[0].source, reason="all alerts resolved", now=now)
        result.resolved.append(inc.id)
        return
    if new:
        result.opened.append(inc.id)
        await enqueue_root(conn, cfg, inc, post=True)
        await enqueue_job(conn, "diagnose", inc, {"reason": "new incident"})
        await _escalate(conn, cfg, inc, now)
    elif reopened:
        result.reopened.append(inc.id)
        await enqueue_root(conn, cfg, inc, post=False)
        await enqueue_reply(
            conn, cfg, inc, Reply(f"🔁 Re-opened: {inc.title} fired again.", "info")
        )
        await enqueue_job(conn, "diagnose", inc, {"reason": "re-opened"})
        await _escalate(conn, cfg, inc, now)
    else:
        result.updated.append(inc.id)
        await enqueue_root(conn, cfg, inc, post=False)


async def _escalate(conn: AsyncConnection, cfg: Config, inc: Incident, now: datetime) -> None:
    from bot.incidents import escalation  # it builds on this module's transitions

    await escalation.begin(conn, cfg, inc, now)


async def acknowledge(
    conn: AsyncConnection, cfg: Config, inc: Incident, actor: str, now: datetime | None = None
) -> bool:
    """False when it was already acknowledged or resolved."""
    if inc.status != Status.TRIGGERED:
        return False
    now = now or utcnow()
    await _set(
        conn,
        inc.id,
        now,
        status=Status.ACKNOWLEDGED.value,
        acknowledged_at=now,
        acknowledged_by=actor,
    )
    await add_event(conn, inc.id, "acknowledged", actor, f"Acknowledged by {actor}", now)
    await enqueue_root(conn, cfg, await get(conn, inc.id), post=False)
    return True


async def resolve(
    conn: AsyncConnection,
    cfg: Config,
    inc: Incident,
    actor: str,
    reason: str = "",
    now: datetime | None = None,
) -> bool:
    """Resolve (by the source or a person): edit the root, say so, write the postmortem."""
    if not inc.is_open:
        return False
    now = now or utcnow()
    await _set(
        conn,
        inc.id,
        now,
        status=Status.RESOLVED.value,
        open_key=None,
        resolved_at=now,
        resolved_by=actor,
    )
    text = f"Resolved by {actor}" + (f" ({reason})" if reason else "")
    await add_event(conn, inc.id, "resolved", actor, text, now)
    fixed_by = await conn.scalar(
        select(t.actions.c.action)
        .where(t.actions.c.incident_id == inc.id, t.actions.c.state == "succeeded")
        .order_by(t.actions.c.id.desc())
        .limit(1)
    )
    if fixed_by is not None:
        await remember_fix(conn, inc.id, inc.signature, fixed_by)
    inc = await get(conn, inc.id)
    minutes = max(1, round((now - inc.created_at).total_seconds() / 60))
    await enqueue_root(conn, cfg, inc, post=False)
    await enqueue_reply(
        conn, cfg, inc, Reply(f"✅ Resolved by {actor} after {minutes} min.", "info")
    )
    await enqueue_job(conn, "postmortem", inc)
    return True


async def open_manual(
    conn: AsyncConnection, cfg: Config, description: str, actor: str, asked_in: tuple[str, str]
) -> Incident:
    """`/incident <description>`: a person opens an incident; it is posted and diagnosed."""
    now = utcnow()
    words = description.lower().split()
    service = next((s for s in cfg.services if s in words), None)
    alert = Alert(
        source="manual",
        group_key=f"manual:{uuid.uuid4().hex}",
        fingerprint="manual",
        status=AlertStatus.FIRING,
        title=description[:200],
        severity=Severity.HIGH,
        starts_at=now,
        service=service,
        labels={"alertname": "ManualIncident", ASKED_IN_LABEL: ":".join(asked_in)},
        annotations={"description": description, "opened_by": actor},
    )
    inc = await _open_incident(conn, cfg, alert, service, now)
    await _upsert_alerts(conn, inc.id, [alert], now, new=True)
    await _set(conn, inc.id, now, alert_count=1)
    inc = await get(conn, inc.id)
    await add_event(conn, inc.id, "opened_manually", actor, f"Opened by {actor}: {description}")
    await enqueue_root(conn, cfg, inc, post=True)
    await enqueue_job(conn, "diagnose", inc, {"reason": f"opened by {actor}"})
    await _escalate(conn, cfg, inc, now)
    return inc


async def snooze(
    conn: AsyncConnection, cfg: Config, inc: Incident, actor: str, seconds: int
) -> datetime:
    now = utcnow()
    until = now + timedelta(seconds=seconds)
    await _set(conn, inc.id, now, snoozed_until=until)
    await add_event(conn, inc.id, "snoozed", actor, f"Snoozed for {seconds // 60} min by {actor}")
    await enqueue_root(conn, cfg, inc, post=False)
    return until


async def detail(conn: AsyncConnection, inc: Incident) -> dict[str, Any]:
    """The incident as JSON with its timeline, threads, diagnoses, actions, tickets, messages."""
    from bot.incidents.models import iso

    def rows(table: Any, order: Any) -> Any:
        return conn.execute(select(table).where(table.c.incident_id == inc.id).order_by(order))

    timeline = [
        {"at": iso(r.at), "kind": r.kind, "actor": r.actor, "text": r.text}
        for r in await rows(t.timeline, t.timeline.c.id)
    ]
    threads = [
        {"platform": r.platform, "channel": r.channel, "thread_id": r.thread_id}
        for r in await rows(t.threads, t.threads.c.id)
        if r.thread_id is not None  # a root not yet posted
    ]
    diagnoses = [{**r.payload, "at": iso(r.at)} for r in await rows(t.diagnoses, t.diagnoses.c.id)]
    actions = [
        {
            "id": r.id,
            "action": r.action,
            "service": r.service,
            "params": r.params,
            "state": r.state,
            "requested_by": r.requested_by,
            "requested_at": iso(r.requested_at),
            "approved_by": r.approved_by,
            "started_at": iso(r.started_at),
            "finished_at": iso(r.finished_at),
            "outcome": r.outcome,
            "auto": r.auto,
        }
        for r in await rows(t.actions, t.actions.c.id)
    ]
    tickets = [
        {
            "key": r.key,
            "url": r.url,
            "state": r.state,
            "assignee": r.assignee,
            "requested_by": r.requested_by,
            "created_at": iso(r.created_at),
            "error": r.error,
        }
        for r in await rows(t.tickets, t.tickets.c.id)
    ]
    messages = [
        {
            "id": r.id,
            "at": iso(r.at),
            "author": r.author,
            **r.payload,
            "kind": r.kind,
            "text": r.text,
        }
        for r in await rows(t.messages, t.messages.c.id)
    ]
    return {
        **inc.to_json(),
        "timeline": timeline,
        "threads": threads,
        "diagnoses": diagnoses,
        "actions": actions,
        "tickets": tickets,
        "messages": messages,
    }

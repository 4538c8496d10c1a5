"""Incident lifecycle: alerts in → incidents; one function per transition.

Each transition writes the incident row, its timeline event and the outbox items it causes
in the caller's transaction, so nothing happens unless all of it is committed. The ingest path
is plain synchronous Core (the group-commit writer runs it in one thread hop); async callers
reach the same code through `AsyncConnection.run_sync`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.app.config import Config, RouteConfig
from bot.chat.adapters import BY_NAME, PLATFORMS, is_local
from bot.chat.messages import Reply, reply_to_json
from bot.errors import NotFound
from bot.incidents.memory import remember_fixes
from bot.incidents.models import Incident, Status, utcnow
from bot.queue import outbox
from bot.store import schema as t
from integrations.alerts import Alert, AlertStatus, Severity


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

Place = tuple[str, str]  # (platform, channel)


def news_targets(cfg: Config, inc: Incident, threads: Sequence[Place] = ()) -> list[Place]:
    """Where an incident's news goes: its route's destinations, and every conversation it was
    posted in since (`threads`: people paged by escalation hear the ack and the resolution)."""
    out = destinations(cfg, inc.labels)
    out += [place for place in threads if place not in out]
    return out


_THREADS_OF = (
    select(t.threads.c.incident_id, t.threads.c.platform, t.threads.c.channel)
    .where(t.threads.c.incident_id.in_(bindparam("ids", expanding=True)))
    .order_by(t.threads.c.id)
)


def thread_places(conn: Connection, incident_ids: Iterable[str]) -> dict[str, list[Place]]:
    """The conversations each incident has a thread in, oldest first."""
    places: dict[str, list[Place]] = {}
    rows = conn.execute(_THREADS_OF, {"ids": list(incident_ids)})
    for incident_id, platform, channel in rows.tuples():
        places.setdefault(incident_id, []).append((platform, channel))
    return places


async def conversations(conn: AsyncConnection, cfg: Config, inc: Incident) -> list[Place]:
    places = await conn.run_sync(thread_places, [inc.id])
    return news_targets(cfg, inc, places.get(inc.id, ()))


def conversation_key(platform: str, channel: str, incident_id: str) -> str:
    """The ordering key of one incident's conversation at one place: root, edits, replies."""
    return f"{platform}:{channel}:{incident_id}"


def root_items(
    cfg: Config, inc: Incident, targets: Iterable[Place], *, post: bool
) -> list[dict[str, Any]]:
    """Post the root message (new incident) or edit it (repeat, state change) at `targets`."""
    items = []
    for platform, channel in targets:
        key = conversation_key(platform, channel, inc.id)
        dest, payload = f"{platform}:{channel}", {"incident_id": inc.id}
        if post:
            items.append(
                outbox.item("post_root", dest, payload, ordering_key=key, incident_id=inc.id)
            )
        else:
            items.append(
                outbox.item(
                    "update_root",
                    dest,
                    payload,
                    ordering_key=key,
                    incident_id=inc.id,
                    coalesce_key=f"update:{key}",
                    delay_s=0 if is_local(platform) else cfg.outbox.update_coalesce_s,
                )
            )
    return items


def reply_items(inc: Incident, reply: Reply, targets: Iterable[Place]) -> list[dict[str, Any]]:
    """A reply in the incident's conversation at each of `targets` (a diagnosis goes after
    other incidents' news)."""
    priority = outbox.Priority.DIAGNOSIS if reply.kind == "diagnosis" else None
    return [
        outbox.item(
            "reply",
            f"{platform}:{channel}",
            {"incident_id": inc.id, "reply": reply_to_json(reply)},
            ordering_key=conversation_key(platform, channel, inc.id),
            incident_id=inc.id,
            priority=priority,
        )
        for platform, channel in targets
    ]


def job_item(kind: str, inc: Incident, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """Slow work for this incident (diagnose, action, ticket, postmortem), run by the worker."""
    return outbox.item(
        kind,
        kind,
        {"incident_id": inc.id, **(payload or {})},
        ordering_key=f"job:{kind}:{inc.id}:{uuid.uuid4().hex[:8]}",
        incident_id=inc.id,
    )


async def enqueue_root(
    conn: AsyncConnection,
    cfg: Config,
    inc: Incident,
    *,
    post: bool,
    only: Place | None = None,
) -> None:
    """Post the root message everywhere (new incident) or edit it wherever the incident has
    been news (repeat, state change); `only` at one destination."""
    if only:
        targets = [only]
    else:
        targets = destinations(cfg, inc.labels) if post else await conversations(conn, cfg, inc)
    await conn.run_sync(outbox.enqueue_many, root_items(cfg, inc, targets, post=post))


async def enqueue_reply(
    conn: AsyncConnection,
    cfg: Config,
    inc: Incident,
    reply: Reply,
    *,
    only: Place | None = None,
) -> None:
    """A threaded reply wherever the incident has been news (or at one destination)."""
    targets = [only] if only else await conversations(conn, cfg, inc)
    await conn.run_sync(outbox.enqueue_many, reply_items(inc, reply, targets))


def escalation_items(cfg: Config, inc: Incident) -> list[dict[str, Any]]:
    """A new or re-opened incident starts its escalation policy's chain (if it has one)."""
    return [job_item("escalate", inc)] if cfg.escalation_for(inc.labels) else []


async def enqueue_job(
    conn: AsyncConnection, kind: str, inc: Incident, payload: dict[str, Any] | None = None
) -> None:
    await conn.run_sync(outbox.enqueue_many, [job_item(kind, inc, payload)])


def event(
    incident_id: str, kind: str, actor: str, text: str, at: datetime | None = None
) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "at": at or utcnow(),
        "kind": kind,
        "actor": actor,
        "text": text,
    }


async def add_event(
    conn: AsyncConnection,
    incident_id: str,
    kind: str,
    actor: str,
    text: str,
    at: datetime | None = None,
) -> None:
    await conn.execute(insert(t.timeline).values(event(incident_id, kind, actor, text, at)))


def _update(incident_id: str, now: datetime, **values: Any) -> Any:
    return (
        update(t.incidents).where(t.incidents.c.id == incident_id).values(updated_at=now, **values)
    )


async def _set(conn: AsyncConnection, incident_id: str, now: datetime, **values: Any) -> None:
    await conn.execute(_update(incident_id, now, **values))


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


CUT_MARKER = "…[cut]"


def clip(value: str, limit: int) -> str:
    """`value` cut to `limit` characters with a visible marker (display text)."""
    return value if len(value) <= limit else value[: limit - len(CUT_MARKER)] + CUT_MARKER


def clip_key(value: str, limit: int) -> str:
    """A key cut to `limit` characters that stays distinct: the marker carries a digest of
    the whole value, so two long keys with a common beginning remain two keys."""
    if len(value) <= limit:
        return value
    tail = f"{CUT_MARKER}{hashlib.sha256(value.encode()).hexdigest()[:16]}"
    return value[: limit - len(tail)] + tail


LABEL_VALUE_LIMIT = 1000


def _width(column: Any) -> int:
    return int(column.type.length)


_WIDTHS = tuple(
    _width(c)
    for c in (
        t.incidents.c.group_key,
        t.alerts.c.fingerprint,
        t.alerts.c.title,
        t.incidents.c.service,
    )
)


def fit(alert: Alert) -> Alert:
    """The alert with every text cut to its column (a 2,000-character alertname is stored,
    marked as cut, instead of failing the delivery)."""
    key_w, fp_w, title_w, service_w = _WIDTHS
    if (
        len(alert.group_key) <= key_w
        and len(alert.fingerprint) <= fp_w
        and len(alert.title) <= title_w
        and len(alert.service or "") <= service_w
        and all(len(v) <= LABEL_VALUE_LIMIT for v in alert.labels.values())
    ):
        return alert
    return dataclasses.replace(
        alert,
        group_key=clip_key(alert.group_key, key_w),
        fingerprint=clip_key(alert.fingerprint, fp_w),
        title=clip(alert.title, title_w),
        service=clip(alert.service, service_w) if alert.service else None,
        labels={k: clip(v, LABEL_VALUE_LIMIT) for k, v in alert.labels.items()},
    )


SHORT_ID_SEQUENCE = "incident_short_id_seq"
_TOP_SHORT_ID = select(func.coalesce(func.max(t.incidents.c.short_id), 0))


def short_ids(conn: Connection, n: int) -> list[int]:
    """`n` new `#N`s: from a sequence on PostgreSQL (no hot counter row between replicas); on
    SQLite, where one writer holds the database, after the highest."""
    if conn.dialect.name == "postgresql":
        series = func.generate_series(1, n).table_valued("n")
        return list(conn.scalars(select(func.nextval(SHORT_ID_SEQUENCE)).select_from(series)))
    top = conn.scalar(_TOP_SHORT_ID) or 0
    return [top + k for k in range(1, n + 1)]


def new_incident(alert: Alert, service: str | None, now: datetime) -> Incident:
    """A triggered incident for the alert's group (its `#N` is given when it is written)."""
    service = clip(service, _WIDTHS[3]) if service else None
    labels = {**alert.labels}
    if service:
        labels.setdefault("service", service)
    return Incident(
        id=uuid.uuid4().hex,
        short_id=0,
        group_key=alert.group_key,
        status=Status.TRIGGERED,
        severity=alert.severity.value,
        title=alert.title,
        service=service,
        labels=labels,
        annotations=dict(alert.annotations),
        source=alert.source,
        signature=clip_key(alert.signature, _width(t.incidents.c.signature)),
        created_at=now,
        updated_at=now,
        acknowledged_at=None,
        acknowledged_by=None,
        resolved_at=None,
        resolved_by=None,
        snoozed_until=None,
        alert_count=0,
        generator_url=alert.generator_url,
    )


def incident_row(inc: Incident, short_id: int) -> dict[str, Any]:
    """The incidents row of a new incident (open while it is open)."""
    row = {name: getattr(inc, name) for name in Incident.__dataclass_fields__}
    row.update(
        short_id=short_id,
        status=inc.status.value,
        open_key=inc.group_key if inc.is_open else None,
    )
    return row


ALERT_CHANGES = (
    "status",
    "title",
    "severity",
    "labels",
    "annotations",
    "logs",
    "starts_at",
    "ends_at",
    "updated_at",
    "digest",
)


def alert_digest(a: Alert) -> str:
    """What an alert says, in 32 hex digits: an unchanged repeat needs no write."""
    content = (
        a.status.value,
        a.title,
        a.severity.value,
        sorted(a.labels.items()),
        sorted(a.annotations.items()),
        a.logs,
        a.starts_at.timestamp(),
        a.ends_at.timestamp() if a.ends_at else None,
    )
    return hashlib.blake2b(repr(content).encode(), digest_size=16).hexdigest()


def alert_row(incident_id: str, a: Alert, now: datetime) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "fingerprint": a.fingerprint,
        "status": a.status.value,
        "title": a.title,
        "severity": a.severity.value,
        "labels": a.labels,
        "annotations": a.annotations,
        "logs": list(a.logs),
        "starts_at": a.starts_at,
        "ends_at": a.ends_at,
        "updated_at": now,
        "digest": alert_digest(a),
    }


def resolution(
    cfg: Config, inc: Incident, actor: str, reason: str, now: datetime, targets: list[Place]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What resolving says: the timeline event, and the root edit and reply at `targets` (where
    the incident has been news) and the postmortem job."""
    text = f"Resolved by {actor}" + (f" ({reason})" if reason else "")
    minutes = max(1, round((now - inc.created_at).total_seconds() / 60))
    items = [
        *root_items(cfg, inc, targets, post=False),
        *reply_items(inc, Reply(f"✅ Resolved by {actor} after {minutes} min.", "info"), targets),
        job_item("postmortem", inc),
    ]
    return event(inc.id, "resolved", actor, text, now), items


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
    acked = dataclasses.replace(
        inc, status=Status.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=actor, updated_at=now
    )
    await enqueue_root(conn, cfg, acked, post=False)
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
    await conn.run_sync(_resolve, cfg, inc, actor, reason, now or utcnow())
    return True


def _resolve(
    conn: Connection, cfg: Config, inc: Incident, actor: str, reason: str, now: datetime
) -> None:
    conn.execute(
        _update(
            inc.id,
            now,
            status=Status.RESOLVED.value,
            open_key=None,
            resolved_at=now,
            resolved_by=actor,
        )
    )
    threads = thread_places(conn, [inc.id]).get(inc.id, [])
    resolved, items = resolution(cfg, inc, actor, reason, now, news_targets(cfg, inc, threads))
    conn.execute(insert(t.timeline).values(resolved))
    remember_fixes(conn, {inc.id: inc.signature})
    outbox.enqueue_many(conn, items)


async def open_manual(
    conn: AsyncConnection, cfg: Config, description: str, actor: str, asked_in: tuple[str, str]
) -> Incident:
    """`/incident <description>`: a person opens an incident; it is posted and diagnosed."""
    return await conn.run_sync(_open_manual, cfg, description, actor, asked_in)


def _open_manual(
    conn: Connection, cfg: Config, description: str, actor: str, asked_in: tuple[str, str]
) -> Incident:
    now = utcnow()
    words = description.lower().split()
    service = next((s for s in cfg.services if s in words), None)
    alert = fit(
        Alert(
            source="manual",
            group_key=f"manual:{uuid.uuid4().hex}",
            fingerprint="manual",
            status=AlertStatus.FIRING,
            title=description[:200],
            severity=Severity.CRITICAL,
            starts_at=now,
            service=service,
            labels={"alertname": "ManualIncident", ASKED_IN_LABEL: ":".join(asked_in)},
            annotations={"description": description, "opened_by": actor},
        )
    )
    inc = dataclasses.replace(new_incident(alert, service, now), alert_count=1)
    (short,) = short_ids(conn, 1)
    conn.execute(insert(t.incidents).values(incident_row(inc, short)))
    conn.execute(insert(t.alerts).values(alert_row(inc.id, alert, now)))
    conn.execute(
        insert(t.timeline),
        [
            event(inc.id, "triggered", alert.source, f"Triggered: {alert.title}", now),
            event(inc.id, "opened_manually", actor, f"Opened by {actor}: {description}", now),
        ],
    )
    outbox.enqueue_many(
        conn,
        [
            *root_items(cfg, inc, destinations(cfg, inc.labels), post=True),
            job_item("diagnose", inc, {"reason": f"opened by {actor}"}),
            *escalation_items(cfg, inc),
        ],
    )
    return dataclasses.replace(inc, short_id=short)


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

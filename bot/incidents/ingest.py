"""Alerts in → incidents, a batch at a time: the lifecycle's rules applied in memory to the state
read once for every group in the batch, then written back in a few multi-row statements."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.app.config import Config
from bot.chat.adapters.base import Reply
from bot.incidents import lifecycle
from bot.incidents.memory import remember_fixes
from bot.incidents.models import Incident, Status, utcnow
from bot.queue import outbox
from bot.store import schema as t
from bot.store import upsert
from integrations.alerts import Alert, AlertStatus, Severity


@dataclass(slots=True)
class IngestResult:
    opened: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)
    ignored: int = 0
    queued: int = 0  # outbox items it added (a repeat of what is stored adds none)

    @property
    def incident_ids(self) -> list[str]:
        return [*self.opened, *self.reopened, *self.updated, *self.resolved]

    @property
    def outcome(self) -> str:
        return (
            f"opened={len(self.opened)} updated={len(self.updated)} "
            f"resolved={len(self.resolved)} reopened={len(self.reopened)}"
        )


class Raced(Exception):
    """Another transaction (a replica) opened one of these groups first: apply again."""


Known = dict[str, tuple[str, str, str | None]]  # fingerprint → (status, severity, digest)


@dataclass(slots=True)
class _Batch:
    """The state read for a batch, changed in memory, and the rows to write back."""

    cfg: Config
    now: datetime
    latest: dict[str, Incident]  # group key → its newest incident
    known: dict[str, Known]  # incident id → its alerts
    threads: dict[str, list[lifecycle.Place]]  # incident id → conversations it is in
    opened: dict[str, Incident] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    alerts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    resolved: set[str] = field(default_factory=set)


def apply_alert_sets(
    conn: Connection, cfg: Config, alert_sets: list[list[Alert]], now: datetime
) -> list[IngestResult]:
    """Apply each delivery's alerts, in order, as one unit: open, update, resolve or re-open
    incidents by group key. Raises `Raced` when a concurrent transaction opened a group."""
    grouped = [_groups(alerts) for alerts in alert_sets]
    keys = sorted({key for groups in grouped for key in groups})
    latest = _latest(conn, keys)
    ids = [i.id for i in latest.values()]
    batch = _Batch(cfg, now, latest, _known(conn, ids), lifecycle.thread_places(conn, ids))
    results = []
    for groups in grouped:
        result, before = IngestResult(), len(batch.items)
        for key, group in groups.items():
            _apply_group(batch, key, group, result)
        result.queued = len(batch.items) - before
        results.append(result)
    _write(conn, batch)
    return results


async def ingest(
    conn: AsyncConnection, cfg: Config, alerts: list[Alert], now: datetime | None = None
) -> IngestResult:
    """One delivery's alerts, in the caller's transaction."""
    results = await conn.run_sync(apply_alert_sets, cfg, [alerts], now or utcnow())
    return results[0]


def _groups(alerts: list[Alert]) -> dict[str, list[Alert]]:
    groups: dict[str, list[Alert]] = {}
    for a in map(lifecycle.fit, alerts):
        groups.setdefault(a.group_key, []).append(a)
    return groups


def _newest_incidents() -> Any:
    i = t.incidents
    newest = (
        select(i.c.group_key, func.max(i.c.short_id).label("short_id"))
        .where(i.c.group_key.in_(bindparam("keys", expanding=True)))
        .group_by(i.c.group_key)
        .subquery()
    )
    return (
        select(i)
        .join(newest, and_(i.c.group_key == newest.c.group_key, i.c.short_id == newest.c.short_id))
        .order_by(i.c.group_key)
        .with_for_update(of=i)
    )


# Built once: a statement built per batch costs more in Python than the query in SQLite
_NEWEST = _newest_incidents()
_ALERTS_OF = select(
    t.alerts.c.incident_id,
    t.alerts.c.fingerprint,
    t.alerts.c.status,
    t.alerts.c.severity,
    t.alerts.c.digest,
).where(t.alerts.c.incident_id.in_(bindparam("ids", expanding=True)))


def _latest(conn: Connection, keys: list[str]) -> dict[str, Incident]:
    """Each group's newest incident (the open one, if any), row-locked in group-key order on
    PostgreSQL so two batches touching the same groups cannot deadlock."""
    if not keys:
        return {}
    rows = conn.execute(_NEWEST, {"keys": keys}).all()
    return {r.group_key: Incident.from_row(r) for r in rows}


def _known(conn: Connection, incident_ids: list[str]) -> dict[str, Known]:
    known: dict[str, Known] = {iid: {} for iid in incident_ids}
    if incident_ids:
        for r in conn.execute(_ALERTS_OF, {"ids": incident_ids}):
            known[r.incident_id][r.fingerprint] = (r.status, r.severity, r.digest)
    return known


def _apply_group(batch: _Batch, key: str, group: list[Alert], result: IngestResult) -> None:
    now, cfg = batch.now, batch.cfg
    firing = [a for a in group if a.status == AlertStatus.FIRING]
    inc = batch.latest.get(key)
    transition = "updated"
    if inc is None or not inc.is_open:
        if not firing:
            result.ignored += len(group)  # resolution of something we never saw open
            return
        window = timedelta(seconds=cfg.webhooks.reopen_window_s)
        if inc is not None and inc.resolved_at and now - inc.resolved_at <= window:
            transition = "reopened"
            inc = dataclasses.replace(
                inc,
                status=Status.TRIGGERED,
                resolved_at=None,
                resolved_by=None,
                acknowledged_at=None,
                acknowledged_by=None,
            )
            batch.events.append(
                lifecycle.event(inc.id, "reopened", firing[0].source, "Re-opened: fired again", now)
            )
        else:
            first = firing[0]
            service = (
                cfg.service_for(first.labels, first.service)
                or cfg.label_service(first.labels)
                or first.service
            )
            inc = lifecycle.new_incident(first, service, now)
            transition = "opened"
            batch.opened[inc.id] = inc
            batch.known[inc.id] = {}
            batch.events.append(
                lifecycle.event(inc.id, "triggered", first.source, f"Triggered: {first.title}", now)
            )
    known = batch.known[inc.id]
    changed = transition != "updated"
    for a in group:  # a fingerprint twice in one body: last wins
        row = lifecycle.alert_row(inc.id, a, now)
        if known.get(a.fingerprint, (None, None, None))[2] != row["digest"]:
            batch.alerts[(inc.id, a.fingerprint)] = row
            known[a.fingerprint] = (row["status"], row["severity"], row["digest"])
            changed = True
    if not changed:  # a repeat of what is stored: nothing to write, nothing to edit
        result.updated.append(inc.id)
        return
    severity = Severity.worst(Severity(sev) for _, sev, _ in known.values())
    all_resolved = all(status == AlertStatus.RESOLVED.value for status, _, _ in known.values())
    inc = dataclasses.replace(inc, alert_count=len(known), severity=severity.value, updated_at=now)
    if all_resolved:
        actor = group[0].source
        news = lifecycle.news_targets(cfg, inc, batch.threads.get(inc.id, ()))
        event, items = lifecycle.resolution(cfg, inc, actor, "all alerts resolved", now, news)
        inc = dataclasses.replace(inc, status=Status.RESOLVED, resolved_at=now, resolved_by=actor)
        batch.events.append(event)
        batch.items += items
        batch.resolved.add(inc.id)
        result.resolved.append(inc.id)
    elif transition == "opened":
        result.opened.append(inc.id)
        batch.items += lifecycle.root_items(
            cfg, inc, lifecycle.destinations(cfg, inc.labels), post=True
        )
        batch.items.append(lifecycle.job_item("diagnose", inc, {"reason": "new incident"}))
        batch.items += lifecycle.escalation_items(cfg, inc)
    elif transition == "reopened":
        result.reopened.append(inc.id)
        news = lifecycle.news_targets(cfg, inc, batch.threads.get(inc.id, ()))
        batch.items += lifecycle.root_items(cfg, inc, news, post=False)
        reply = Reply(f"🔁 Re-opened: {inc.title} fired again.", "info")
        batch.items += lifecycle.reply_items(inc, reply, news)
        batch.items.append(lifecycle.job_item("diagnose", inc, {"reason": "re-opened"}))
        batch.items += lifecycle.escalation_items(cfg, inc)
    else:
        result.updated.append(inc.id)
        news = lifecycle.news_targets(cfg, inc, batch.threads.get(inc.id, ()))
        batch.items += lifecycle.root_items(cfg, inc, news, post=False)
    batch.latest[key] = inc
    if inc.id in batch.opened:
        batch.opened[inc.id] = inc
    else:
        batch.changed.add(inc.id)


_STATE = (
    "status",
    "severity",
    "alert_count",
    "updated_at",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_at",
    "resolved_by",
)
_SET_STATE = (
    update(t.incidents)
    .where(t.incidents.c.id == bindparam("incident_id"))
    .values(
        open_key=bindparam("open_key_value"),
        **{c: bindparam(f"{c}_value") for c in _STATE},
    )
)


def _write(conn: Connection, batch: _Batch) -> None:
    """The batch's changes in one statement per table (new incidents in group-key order)."""
    by_id = {inc.id: inc for inc in batch.latest.values()}
    if batch.opened:
        new = sorted(batch.opened.values(), key=lambda inc: inc.group_key)
        shorts = lifecycle.short_ids(conn, len(new))
        rows = [lifecycle.incident_row(inc, short) for inc, short in zip(new, shorts, strict=True)]
        inserted = conn.execute(_insert_open(conn.dialect.name), rows).all()
        if len(inserted) != len(rows):
            raise Raced
    if batch.changed:
        conn.execute(
            _SET_STATE,
            [
                {
                    "incident_id": iid,
                    "open_key_value": by_id[iid].group_key if by_id[iid].is_open else None,
                    **{f"{c}_value": _state(by_id[iid], c) for c in _STATE},
                }
                for iid in sorted(batch.changed)
            ],
        )
    if batch.alerts:
        conn.execute(_upsert_alerts(conn.dialect.name), list(batch.alerts.values()))
    if batch.events:
        conn.execute(insert(t.timeline), batch.events)
    outbox.enqueue_many(conn, batch.items)
    if batch.resolved:
        remember_fixes(conn, {iid: by_id[iid].signature for iid in batch.resolved})


def _state(inc: Incident, column: str) -> Any:
    value = getattr(inc, column)
    return value.value if isinstance(value, Status) else value


@functools.cache
def _upsert_alerts(dialect: str) -> Any:
    """Insert an incident's alerts or update them by fingerprint."""
    stmt = upsert(dialect, t.alerts)
    return stmt.on_conflict_do_update(
        index_elements=[t.alerts.c.incident_id, t.alerts.c.fingerprint],
        set_={c: stmt.excluded[c] for c in lifecycle.ALERT_CHANGES},
    )


@functools.cache
def _insert_open(dialect: str) -> Any:
    """Insert new incidents, skipping one whose group another transaction opened first."""
    stmt = upsert(dialect, t.incidents).on_conflict_do_nothing(
        index_elements=[t.incidents.c.open_key]
    )
    return stmt.returning(t.incidents.c.id)

"""Parse PagerDuty-style bodies: Events API v2 events other tools send to PagerDuty
(`event_action` trigger / resolve with a `dedup_key`), and PagerDuty's own outgoing webhooks
(V3 `{"event": {"event_type": "incident.triggered", ...}}`; V1 and V2 `{"messages": [...]}`,
each message's change in `type` (V1) or `event` (V2), its incident in `data.incident` (V1)
or `incident` (V2))."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from integrations.alerts import normalize
from integrations.alerts.model import Alert
from integrations.alerts.payload import OptionalUtcDatetime, validate
from integrations.errors import PayloadError

SOURCE = "pagerduty"

_WEBHOOK_OPENS = frozenset({"triggered", "trigger", "reopened", "unacknowledged", "unacknowledge"})
_WEBHOOK_CLOSES = frozenset({"resolved", "resolve"})


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


class _EventPayload(_Loose):
    summary: str
    source: str | None = None
    severity: str | None = None
    timestamp: OptionalUtcDatetime = None
    component: str | None = None
    group: str | None = None
    class_: str | None = Field(default=None, alias="class")
    custom_details: dict[str, Any] | str | None = None


class _Link(_Loose):
    href: str | None = None


class _Event(_Loose):
    event_action: str
    dedup_key: str | None = None
    routing_key: str | None = None
    payload: _EventPayload | None = None
    links: list[_Link] = Field(default_factory=list)
    client_url: str | None = None


class _Ref(_Loose):
    summary: str | None = None
    name: str | None = None


class _Incident(_Loose):
    id: str
    title: str | None = None
    status: str | None = None
    urgency: str | None = None
    html_url: str | None = None
    incident_key: str | None = None
    created_at: OptionalUtcDatetime = None
    created_on: OptionalUtcDatetime = None
    service: _Ref | None = None
    priority: _Ref | None = None
    trigger_summary_data: dict[str, Any] | None = None


class _V3Event(_Loose):
    event_type: str
    occurred_at: OptionalUtcDatetime = None
    data: _Incident


class _V3(_Loose):
    event: _V3Event


class _V1Data(_Loose):
    incident: _Incident


class _Message(_Loose):
    type: str | None = None
    event: str | None = None
    created_on: OptionalUtcDatetime = None
    data: _V1Data | None = None
    incident: _Incident | None = None


class _Messages(_Loose):
    messages: list[_Message]


def matches(body: dict[str, object]) -> bool:
    event = body.get("event")
    v3 = isinstance(event, dict) and str(event.get("event_type", "")).startswith("incident.")
    messages = body.get("messages")
    v1 = isinstance(messages, list) and all(
        isinstance(m, dict) and str(m.get("type") or m.get("event") or "").startswith("incident.")
        for m in messages
    )
    return "event_action" in body or v3 or (v1 and bool(messages))


def parse(body: object) -> list[Alert]:
    if isinstance(body, dict) and "event" in body:
        v3 = validate(_V3, body).event
        return _incident(v3.data, v3.event_type.removeprefix("incident."), v3.occurred_at)
    if isinstance(body, dict) and "messages" in body:
        return [alert for m in validate(_Messages, body).messages for alert in _message(m)]
    return _event(validate(_Event, body))


def _event(e: _Event) -> list[Alert]:
    action = e.event_action.strip().lower()
    if action == "acknowledge":
        return []
    if action not in ("trigger", "resolve"):
        raise PayloadError(
            f"event_action: {e.event_action!r} is not trigger, acknowledge or resolve",
            field="event_action",
        )
    p = e.payload
    if p is None and action == "trigger":
        raise PayloadError("payload: required to trigger", field="payload")
    key = e.dedup_key or (normalize.stable_key(p.summary, p.source) if p else None)
    if key is None:
        raise PayloadError("dedup_key: required to resolve", field="dedup_key")
    resolved = action == "resolve"
    details = p.custom_details if p and isinstance(p.custom_details, dict) else {}
    return [
        normalize.alert(
            SOURCE,
            f"pagerduty:{key}",
            fingerprint=key,
            title=(normalize.title(p.summary) if p else None) or f"PagerDuty event {key}",
            resolved=resolved,
            raw_severity=p.severity if p else None,
            at=p.timestamp if p else None,
            service=(p.component or p.source) if p else None,
            labels={
                **details,
                "component": p.component if p else None,
                "group": p.group if p else None,
                "class": p.class_ if p else None,
                "host": p.source if p else None,
            },
            annotations={"summary": p.summary if p else None},
            url=e.client_url or next((link.href for link in e.links if link.href), None),
        )
    ]


def _message(m: _Message) -> list[Alert]:
    incident = m.incident or (m.data.incident if m.data else None)
    change = m.type or m.event
    if incident is None or change is None:
        raise PayloadError(
            "messages: each needs its change (`type` or `event`) and its incident "
            "(`data.incident` or `incident`)",
            field="messages",
        )
    return _incident(incident, change.removeprefix("incident."), m.created_on)


def _incident(i: _Incident, change: str, at: datetime | None) -> list[Alert]:
    if change in _WEBHOOK_OPENS:
        resolved = False
    elif change in _WEBHOOK_CLOSES:
        resolved = True
    else:
        return []  # acknowledged, assigned, annotated, ...: no change to the alert's state
    summary = i.title or (i.trigger_summary_data or {}).get("subject")
    started = i.created_at or i.created_on
    return [
        normalize.alert(
            SOURCE,
            f"pagerduty:incident:{i.id}",
            fingerprint=i.incident_key or i.id,
            title=normalize.title(summary) or f"PagerDuty incident {i.id}",
            resolved=resolved,
            raw_severity=i.priority.summary if i.priority else i.urgency,
            at=at or started,
            started=started,
            service=(i.service.summary or i.service.name) if i.service else None,
            labels={"incident_status": i.status, "change": change},
            url=i.html_url,
        )
    ]

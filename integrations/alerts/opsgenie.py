"""Parse Opsgenie-style bodies: Opsgenie's outgoing webhook (`{"action": "Create" | "Close" |
..., "alert": {...}}`) and the Create Alert API body other tools send to Opsgenie
(`message`, `alias`, `priority`, ...)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from integrations.alerts import normalize
from integrations.alerts.model import Alert
from integrations.alerts.payload import OptionalUtcDatetime, validate

SOURCE = "opsgenie"

_OPENS = frozenset({"create", "unacknowledge", "escalate", "escalatenext"})
_CLOSES = frozenset({"close", "delete"})


class _OgAlert(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    message: str
    alert_id: str | None = Field(default=None, alias="alertId")
    alias: str | None = None
    tiny_id: str | None = Field(default=None, alias="tinyId")
    description: str | None = None
    entity: str | None = None
    source: str | None = None
    priority: str | None = None
    tags: list[str] = Field(default_factory=list)
    details: dict[str, str] | None = None
    created_at: OptionalUtcDatetime = Field(default=None, alias="createdAt")
    updated_at: OptionalUtcDatetime = Field(default=None, alias="updatedAt")


class _Webhook(BaseModel):
    action: str
    alert: _OgAlert


def matches(body: dict[str, object]) -> bool:
    alert = body.get("alert")
    webhook = "action" in body and isinstance(alert, dict) and "message" in alert
    create_api = "message" in body and "alias" in body and ("priority" in body or "entity" in body)
    return webhook or create_api


def parse(body: object) -> list[Alert]:
    if isinstance(body, dict) and "alert" in body:
        hook = validate(_Webhook, body)
        action = hook.action.strip().lower()
        if action not in _OPENS | _CLOSES:
            return []  # an acknowledgement, a note, a tag: no change to the alert's state
        return [_alert(hook.alert, closed=action in _CLOSES, action=action)]
    return [_alert(validate(_OgAlert, body), closed=False, action="create")]


def _alert(og: _OgAlert, closed: bool, action: str) -> Alert:
    details = og.details or {}
    key = og.alias or og.alert_id or normalize.stable_key(og.message, og.entity)
    return normalize.alert(
        SOURCE,
        f"opsgenie:{key}",
        fingerprint=key,
        title=normalize.title(og.message) or og.message,
        resolved=closed,
        raw_severity=og.priority,
        at=(og.updated_at if closed else None) or og.created_at,
        started=og.created_at,
        service=details.get("service") or og.entity,
        labels={
            **details,
            "alertname": og.message,
            "entity": og.entity,
            "sender": og.source,
            "tags": ",".join(og.tags),
            "action": action,
        },
        annotations={"description": og.description},
    )

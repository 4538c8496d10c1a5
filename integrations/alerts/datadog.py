"""Parse Datadog's Webhooks integration: the default payload (`id`, `title`, `body`, `date`,
`last_updated`, `event_type`, `org`), payloads that add Datadog's `$ALERT_*` variables
under their lower-case names (`alert_id`, `alert_transition`, `alert_priority`, ...), and
monitor-shaped bodies (`monitor_id`, `title`, `message`, `query`, `priority`)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from integrations.alerts import normalize, severity
from integrations.alerts.model import Alert
from integrations.alerts.payload import OptionalUtcDatetime, validate

SOURCE = "datadog"

_RESOLVED_TRANSITIONS = frozenset({"recovered", "resolved", "ok", "success"})
# "[Triggered] ..." / "[Recovered on {host:web-1}] ..." at the start of an event title.
_TRANSITION_IN_TITLE = re.compile(r"^\s*\[(\w[\w -]*?)(?: on [^\]]*)?\]")


class _Datadog(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    id: str | None = None
    title: str | None = None
    body: str | None = None
    event_type: str | None = None
    date: OptionalUtcDatetime = None
    last_updated: OptionalUtcDatetime = None
    alert_id: str | None = None
    alert_title: str | None = None
    alert_transition: str | None = None
    alert_priority: str | None = None
    alert_type: str | None = None
    alert_cycle_key: str | None = None
    aggreg_key: str | None = None
    alert_metric: str | None = None
    alert_scope: str | None = None
    hostname: str | None = None
    tags: str | list[str] | None = None
    link: str | None = None
    url: str | None = None
    monitor_id: str | None = None
    message: str | None = None
    priority: str | None = None
    query: str | None = None


def matches(body: dict[str, object]) -> bool:
    fields = _variables(body)
    if "alert_transition" in fields or "aggreg_key" in fields or "monitor_id" in fields:
        return True
    return {"event_type", "title", "body"} <= fields.keys() and (
        "last_updated" in fields or "org" in fields
    )


def parse(body: object) -> list[Alert]:
    dd = validate(_Datadog, _variables(body) if isinstance(body, dict) else body)
    raw_title = dd.alert_title or dd.title or dd.event_type or "Datadog event"
    transition = dd.alert_transition or _transition_from_title(dd.title)
    resolved = (transition or "").strip().lower() in _RESOLVED_TRANSITIONS or (
        (dd.alert_type or "").lower() == "success"
    )
    name = normalize.untagged(raw_title)
    tags = _tags(dd.tags)
    key = dd.alert_id or dd.monitor_id or dd.aggreg_key or normalize.stable_key(name, dd.hostname)
    return [
        normalize.alert(
            SOURCE,
            f"datadog:{key}:{dd.alert_scope or ''}",
            title=normalize.title(name) or name,
            resolved=resolved,
            raw_severity=_raw_severity(dd),
            at=dd.date or dd.last_updated,
            service=tags.get("service") or dd.hostname,
            labels={
                **tags,
                "alertname": name,
                "transition": transition,
                "host": dd.hostname,
                "metric": dd.alert_metric,
                "query": dd.query,
                "scope": dd.alert_scope,
                "event_type": dd.event_type,
            },
            annotations={"message": dd.body or dd.message},
            url=dd.link or dd.url,
        )
    ]


def _raw_severity(dd: _Datadog) -> str | None:
    """$ALERT_PRIORITY (P1..P5), a monitor's `priority`, else $ALERT_TYPE (error, warning,
    info, success); the event's $PRIORITY ("normal", "low") says nothing of severity."""
    priority = dd.priority if severity.known(dd.priority) else None
    return dd.alert_priority or priority or dd.alert_type


def _variables(body: dict[str, object]) -> dict[str, object]:
    """The body with Datadog's variables as the payload template names them: `ALERT_ID` as
    `alert_id`, also when grouped one object down (`"metadata": {"ALERT_ID": "$ALERT_ID"}`)."""
    found: dict[str, object] = {}
    for value in body.values():
        if isinstance(value, dict):
            found.update(
                {k.lower(): v for k, v in value.items() if isinstance(k, str) and k.isupper()}
            )
    found.update({k.lower() if k.isupper() else k: v for k, v in body.items()})
    return found


def _transition_from_title(title: str | None) -> str | None:
    found = _TRANSITION_IN_TITLE.match(title or "")
    return found.group(1) if found else None


def _tags(tags: str | list[str] | None) -> dict[str, str]:
    """`$TAGS` ("env:prod,service:checkout") as labels; bare tags are left out."""
    items = tags.split(",") if isinstance(tags, str) else tags or []
    pairs = (item.strip().partition(":") for item in items)
    return {key: value for key, sep, value in pairs if sep and key and value}

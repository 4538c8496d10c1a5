"""Parse a Zabbix webhook media type's body: its parameters named after Zabbix's macros,
either as macros (`EVENT.ID`, `EVENT.VALUE`) or as Zabbix's bundled media types spell them
(`event_id`, `event_value`). `{EVENT.ID}` is the problem's id in its recovery message too,
so a recovery resolves the problem it ends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from integrations.alerts import normalize, severity
from integrations.alerts.model import Alert
from integrations.errors import PayloadError

SOURCE = "zabbix"

_ID_KEYS = ("event_id", "eventid")
_NAME_KEYS = ("event_name", "trigger_name", "alert_subject", "subject", "name")
_MESSAGE_KEYS = ("alert_message", "event_opdata", "trigger_description", "message")
_HOST_KEYS = ("host_name", "host_host", "hostname", "host")
_RESOLVED_VALUES = frozenset({"0", "ok", "resolved"})
_TIME_FORMAT = "%Y.%m.%d %H:%M:%S"  # {EVENT.DATE} {EVENT.TIME}


def matches(body: dict[str, object]) -> bool:
    keys = set(_keys(body))
    return bool(keys & set(_ID_KEYS)) and bool(
        keys & {"event_value", "event_status", "trigger_status", "event_severity"}
    )


def parse(body: object) -> list[Alert]:
    if not isinstance(body, dict):
        raise PayloadError(f"payload must be a JSON object, got {type(body).__name__}")
    params = _keys(body)
    event_id = normalize.first_text(*(params.get(k) for k in _ID_KEYS))
    if event_id is None or not event_id.isdigit():
        raise PayloadError("event_id: the Zabbix {EVENT.ID} is required", field="event_id")
    name = normalize.first_text(*(params.get(k) for k in _NAME_KEYS)) or f"event {event_id}"
    state = normalize.first_text(
        params.get("event_value"), params.get("event_status"), params.get("trigger_status")
    )
    resolved = (state or "").lower() in _RESOLVED_VALUES or bool(
        normalize.text(params.get("event_recovery_id"))
    )
    raw_severity = normalize.first_text(
        params.get("event_nseverity"), params.get("event_severity"), params.get("trigger_severity")
    )
    host = normalize.first_text(*(params.get(k) for k in _HOST_KEYS))
    tags = _tags(params.get("event_tags"))
    started = _zabbix_time(params.get("event_date"), params.get("event_time"))
    ended = _zabbix_time(params.get("event_recovery_date"), params.get("event_recovery_time"))
    return [
        normalize.alert(
            SOURCE,
            f"zabbix:{event_id}",
            title=normalize.title(name) or name,
            resolved=resolved,
            raw_severity=raw_severity,
            scale=severity.ZABBIX,
            at=(ended if resolved else None) or started,
            started=started,
            service=tags.get("service") or host,
            labels={
                **tags,
                "alertname": name,
                "host": host,
                "trigger_id": params.get("trigger_id"),
                "state": state,
            },
            annotations={"message": normalize.first_text(*(params.get(k) for k in _MESSAGE_KEYS))},
            url=_link(params),
        )
    ]


def _keys(body: dict[str, Any]) -> dict[str, Any]:
    """`EVENT.ID`, `event.id` and `event_id` all become `event_id`."""
    return {str(key).lower().replace(".", "_"): value for key, value in body.items()}


def _zabbix_time(date: object, time: object) -> datetime | None:
    day, clock = normalize.text(date), normalize.text(time)
    if not (day and clock):
        return None
    try:
        return datetime.strptime(f"{day} {clock}", _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _tags(value: object) -> dict[str, str]:
    """`{EVENT.TAGS}` ("scope:availability, service:db") as labels."""
    pairs = (item.strip().partition(":") for item in (normalize.text(value) or "").split(","))
    return {k.strip(): v.strip() for k, sep, v in pairs if sep and k.strip() and v.strip()}


def _link(params: dict[str, Any]) -> str | None:
    base = normalize.text(params.get("zabbix_url"))
    trigger, event = (
        normalize.text(params.get("trigger_id")),
        normalize.text(params.get("event_id")),
    )
    if not (base and trigger and event):
        return None
    return f"{base.rstrip('/')}/tr_events.php?triggerid={trigger}&eventid={event}"

"""Parse a Zabbix webhook media type's body: its parameters named after Zabbix's macros,
either as macros (`EVENT.ID`, `EVENT.VALUE`) or as Zabbix's bundled media types spell them
(`event_id`, `event_value`). `{EVENT.ID}` is the problem's id in its recovery message too,
so a recovery resolves the problem it ends. Simpler scripts that post only the trigger
(`trigger`, `hostname`, `status` PROBLEM / OK, `link`), and the body Grafana OnCall's Zabbix
integration asks for (`alert_uid`, `title`, `state`), are grouped by their trigger or uid."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from integrations.alerts import normalize, severity
from integrations.alerts.model import Alert
from integrations.errors import PayloadError

SOURCE = "zabbix"

_ID_KEYS = ("event_id", "eventid", "alert_uid")
_NAME_KEYS = ("event_name", "trigger_name", "alert_subject", "subject", "name", "trigger", "title")
_MESSAGE_KEYS = ("alert_message", "event_opdata", "trigger_description", "message", "item")
_HOST_KEYS = ("host_name", "host_host", "hostname", "host")
_STATE_KEYS = ("event_value", "event_status", "trigger_status", "status", "state")
_SEVERITY_KEYS = ("event_nseverity", "event_severity", "trigger_severity", "severity")
_LINK_KEYS = ("link", "link_to_upstream_details", "url")
_RESOLVED_VALUES = frozenset({"0", "ok", "resolved"})
_TIME_FORMAT = "%Y.%m.%d %H:%M:%S"  # {EVENT.DATE} {EVENT.TIME}
_TRIGGER_IN_LINK = re.compile(r"[?&]triggerid=(\d+)")


def matches(body: dict[str, object]) -> bool:
    keys = set(_keys(body))
    event = bool(keys & {"event_id", "eventid"}) and bool(
        keys & {"event_value", "event_status", "trigger_status", "event_severity"}
    )
    return event or ("trigger" in keys and bool(keys & set(_HOST_KEYS)))


def parse(body: object) -> list[Alert]:
    if not isinstance(body, dict):
        raise PayloadError(f"payload must be a JSON object, got {type(body).__name__}")
    params = _keys(body)
    host = _first(params, _HOST_KEYS)
    name = _first(params, _NAME_KEYS)
    key = _first(params, _ID_KEYS) or _trigger_key(params, host)
    if key is None and name is None:
        raise PayloadError(
            "event_id: a Zabbix event needs its {EVENT.ID} or a trigger name "
            f"(looked for {', '.join((*_ID_KEYS, *_NAME_KEYS))})",
            field="event_id",
        )
    name = name or f"event {key}"
    state = _first(params, _STATE_KEYS)
    resolved = (state or "").lower() in _RESOLVED_VALUES or bool(
        normalize.text(params.get("event_recovery_id"))
    )
    tags = _tags(params.get("event_tags"))
    started = _zabbix_time(params.get("event_date"), params.get("event_time"))
    ended = _zabbix_time(params.get("event_recovery_date"), params.get("event_recovery_time"))
    return [
        normalize.alert(
            SOURCE,
            f"zabbix:{key or normalize.stable_key(name, host)}",
            title=normalize.title(name) or name,
            resolved=resolved,
            raw_severity=_first(params, _SEVERITY_KEYS),
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
            annotations={"message": _first(params, _MESSAGE_KEYS)},
            url=_link(params) or _first(params, _LINK_KEYS),
        )
    ]


def _first(params: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return normalize.first_text(*(params.get(k) for k in keys))


def _trigger_key(params: dict[str, Any], host: str | None) -> str | None:
    """A trigger (its id, else the one its link names) on a host: a problem and its OK
    message name the same one even when their event ids differ."""
    trigger = normalize.text(params.get("trigger_id"))
    if trigger is None:
        found = _TRIGGER_IN_LINK.search(_first(params, _LINK_KEYS) or "")
        trigger = found.group(1) if found else None
    return f"trigger-{trigger}:{host or ''}" if trigger else None


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

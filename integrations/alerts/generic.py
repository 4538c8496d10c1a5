"""Parse the generic JSON webhook: the contract's `{incident_id, service, alert_type, severity,
logs, timestamp, ...}`, and any JSON object with something that reads as a title."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from integrations.alerts import normalize
from integrations.alerts.model import Alert
from integrations.alerts.payload import OptionalUtcDatetime, parse_optional_timestamp, validate
from integrations.errors import PayloadError

SOURCE = "generic"

# Where an alert's name, then its summary, may be; the first found of each makes the title.
NAME_KEYS = ("alertname", "alert_name", "name", "ruleName", "rule_name", "check_name", "title")
SUMMARY_KEYS = ("summary", "message", "subject", "text")
_STATUS_KEYS = ("status", "state", "level", "current_state", "event_action")
_SEVERITY_KEYS = ("severity", "priority", "level", "urgency")
_KEY_KEYS = ("incident_id", "alert_id", "alert_uid", "dedup_key", "fingerprint", "id")
_TIME_KEYS = ("time", "date", "startsAt", "started_at", "created_at", "createdAt", "fired_at")
_ANNOTATION_KEYS = ("message", "description", "runbook_url", "url", "link")
LOOKED_FOR = (*NAME_KEYS, *SUMMARY_KEYS, "service", "incident_id")
# Keys that are not labels: identity, time, content, or shown as annotations.
_NOT_LABELS = frozenset(
    {*_KEY_KEYS, *_TIME_KEYS, *NAME_KEYS, *SUMMARY_KEYS, *_ANNOTATION_KEYS}
    | {"status", "logs", "timestamp", "severity"}
)


def _log_lines(value: object) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.splitlines()
    if isinstance(value, list):
        return value
    raise ValueError(f"expected a string or a list of strings, got {type(value).__name__}")


class _GenericPayload(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    incident_id: str | None = None
    service: str | None = None
    alert_type: str | None = None
    logs: Annotated[tuple[str, ...], BeforeValidator(_log_lines)] = ()
    timestamp: OptionalUtcDatetime = None


def parse(body: object) -> list[Alert]:
    """Turn one generic webhook body into a single `Alert`."""
    payload = validate(_GenericPayload, body)
    fields: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
    name = normalize.first_text(*(fields.get(key) for key in NAME_KEYS))
    summary = normalize.first_text(*(fields.get(key) for key in SUMMARY_KEYS))
    if not (payload.service or payload.incident_id or name or summary):
        raise PayloadError(
            "not an alert: none of the fields that name one is here "
            f"(looked for {', '.join(LOOKED_FOR)})"
        )
    title = normalize.title(name, summary) or _default_title(payload)
    group_key = (
        normalize.first_text(*(fields.get(key) for key in _KEY_KEYS))
        or ":".join(filter(None, (payload.service, payload.alert_type)))
        or name
        or title
    )
    status_word = normalize.first_text(*(fields.get(key) for key in _STATUS_KEYS))
    raw_severity = normalize.first_text(*(fields.get(key) for key in _SEVERITY_KEYS))
    alert = normalize.alert(
        SOURCE,
        group_key,
        title=title,
        resolved=normalize.is_resolved(status_word),
        raw_severity=raw_severity,
        at=payload.timestamp or _first_time(fields),
        service=payload.service,
        labels=normalize.scalar_labels(fields, skip=_NOT_LABELS),
        annotations={key: fields.get(key) for key in _ANNOTATION_KEYS},
        logs=payload.logs,
    )
    return [alert]


def _first_time(fields: dict[str, Any]) -> datetime | None:
    """The first of the usual time fields that reads as a time (others are left as sent)."""
    for key in _TIME_KEYS:
        try:
            found = parse_optional_timestamp(fields.get(key))
        except ValueError:
            continue
        if found is not None:
            return found
    return None


def _default_title(payload: _GenericPayload) -> str:
    name = " ".join(filter(None, (payload.service, payload.alert_type)))
    return name or f"incident {payload.incident_id}"

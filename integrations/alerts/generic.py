"""Parse the generic JSON webhook: the contract's `{incident_id, service, alert_type, severity,
logs, timestamp, ...}`, and any JSON object with something that reads as a title. Keys are
matched whatever their case or separators (`alertName`, `alert_name`, `AlertName`), at the top
level first, then one object down (`{"stream": {"title": ...}}`)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from integrations.alerts import normalize
from integrations.alerts.model import Alert
from integrations.alerts.payload import OptionalUtcDatetime, parse_optional_timestamp, validate
from integrations.errors import PayloadError

SOURCE = "generic"

# Where an alert's name, then its summary, may be; the first found of each makes the title.
NAME_KEYS = (
    *("alertname", "alert_name", "name", "ruleName", "rule_name", "check_name", "title"),
    *("alertRuleName", "eventName", "monitorName", "trigger"),
)
SUMMARY_KEYS = ("summary", "message", "subject", "text", "description", "details", "info")
_STATUS_KEYS = ("status", "state", "level", "current_state", "new_state", "event_action")
_SEVERITY_KEYS = ("severity", "priority", "level", "urgency", "criticality")
_KEY_KEYS = ("incident_id", "alert_id", "alert_uid", "dedup_key", "fingerprint", "id")
_TIME_KEYS = (
    *("time", "date", "startsAt", "started_at", "created_at", "fired_at", "start_date"),
    "start_time",
)
_ANNOTATION_KEYS = ("message", "description", "runbook_url", "url", "link")
LOOKED_FOR = (*NAME_KEYS, *SUMMARY_KEYS, "service", "incident_id")
# Keys that are not labels: identity, time, content, or shown as annotations.
_NOT_LABELS = (
    *_KEY_KEYS,
    *_TIME_KEYS,
    *NAME_KEYS,
    *SUMMARY_KEYS,
    *_ANNOTATION_KEYS,
    *("status", "logs", "timestamp", "severity"),
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
    fields = _Fields(body if isinstance(body, dict) else {})
    name = fields.first(NAME_KEYS)
    summary = fields.first(SUMMARY_KEYS)
    if not (payload.service or payload.incident_id or name or summary):
        name, summary = fields.nested(NAME_KEYS), fields.nested(SUMMARY_KEYS)
    if not (payload.service or payload.incident_id or name or summary):
        raise PayloadError(
            "not an alert: none of the fields that name one is here "
            f"(looked for {', '.join(LOOKED_FOR)})"
        )
    title = normalize.title(name, summary) or _default_title(payload)
    group_key = (
        fields.first(_KEY_KEYS)
        or ":".join(filter(None, (payload.service, payload.alert_type)))
        or name
        or title
    )
    alert = normalize.alert(
        SOURCE,
        group_key,
        title=title,
        resolved=normalize.is_resolved(fields.first(_STATUS_KEYS)),
        raw_severity=fields.first(_SEVERITY_KEYS),
        at=payload.timestamp or _first_time(fields),
        service=payload.service,
        labels=fields.labels(),
        annotations={key: fields.first((key,)) for key in _ANNOTATION_KEYS},
        logs=payload.logs,
    )
    return [alert]


def _spelling(key: str) -> str:
    """A key as compared: `alertName`, `alert_name` and `Alert-Name` are one key."""
    return re.sub(r"[^a-z0-9]", "", key.lower())


class _Fields:
    """A body's keys by their spelling-free form."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.top = {_spelling(str(key)): value for key, value in body.items()}

    def first(self, keys: tuple[str, ...]) -> str | None:
        return normalize.first_text(*(self.top.get(_spelling(key)) for key in keys))

    def nested(self, keys: tuple[str, ...]) -> str | None:
        """The first of `keys` in an object one level down."""
        for value in self.body.values():
            if isinstance(value, dict) and (found := _Fields(value).first(keys)):
                return found
        return None

    def labels(self) -> dict[str, str]:
        skip = {_spelling(key) for key in _NOT_LABELS}
        kept = {key: value for key, value in self.body.items() if _spelling(str(key)) not in skip}
        return normalize.scalar_labels(kept)


def _first_time(fields: _Fields) -> datetime | None:
    """The first of the usual time fields that reads as a time (others are left as sent)."""
    for key in _TIME_KEYS:
        try:
            found = parse_optional_timestamp(fields.top.get(_spelling(key)))
        except ValueError:
            continue
        if found is not None:
            return found
    return None


def _default_title(payload: _GenericPayload) -> str:
    name = " ".join(filter(None, (payload.service, payload.alert_type)))
    return name or f"incident {payload.incident_id}"

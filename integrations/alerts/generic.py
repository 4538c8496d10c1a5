"""Parse the generic JSON webhook (`{incident_id, service, alert_type, severity, logs, ...}`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from integrations.alerts.model import Alert, AlertStatus, Severity
from integrations.alerts.payload import OptionalUtcDatetime, validate
from integrations.errors import PayloadError

SOURCE = "generic"

_RESOLVED_STATUSES = frozenset({"resolved", "ok", "closed"})
_TITLE_KEYS = ("message", "title", "summary")
_ANNOTATION_KEYS = ("message", "description", "runbook_url")
# Keys that are not labels: identity, time, content, or shown as annotations.
_NOT_LABELS = frozenset(
    {"incident_id", "status", "logs", "timestamp", *_TITLE_KEYS, *_ANNOTATION_KEYS}
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
    severity: str | None = None
    status: str | None = None
    logs: Annotated[tuple[str, ...], BeforeValidator(_log_lines)] = ()
    timestamp: OptionalUtcDatetime = None
    message: str | None = None
    title: str | None = None
    summary: str | None = None
    description: str | None = None
    runbook_url: str | None = None
    environment: str | None = None


def parse(body: object) -> list[Alert]:
    """Turn one generic webhook body into a single `Alert`."""
    payload = validate(_GenericPayload, body)
    if not (payload.service or payload.incident_id):
        raise PayloadError("either service or incident_id is required", field="service")
    fields = payload.model_dump(exclude_none=True)
    group_key = payload.incident_id or ":".join(filter(None, (payload.service, payload.alert_type)))
    severity = Severity.parse(payload.severity)
    status = (
        AlertStatus.RESOLVED
        if (payload.status or "").strip().lower() in _RESOLVED_STATUSES
        else AlertStatus.FIRING
    )
    at = payload.timestamp or datetime.now(UTC)
    labels = {
        key: _label_value(value)
        for key, value in fields.items()
        if key not in _NOT_LABELS and isinstance(value, str | int | float | bool)
    }
    labels["severity"] = severity.value
    return [
        Alert(
            source=SOURCE,
            group_key=group_key,
            fingerprint=group_key,
            status=status,
            title=next((fields[key] for key in _TITLE_KEYS if fields.get(key)), None)
            or _default_title(payload),
            severity=severity,
            starts_at=at,
            ends_at=at if status is AlertStatus.RESOLVED else None,
            service=payload.service or None,
            labels=labels,
            annotations={key: fields[key] for key in _ANNOTATION_KEYS if fields.get(key)},
            logs=payload.logs,
        )
    ]


def _label_value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _default_title(payload: _GenericPayload) -> str:
    name = " ".join(filter(None, (payload.service, payload.alert_type)))
    return name or f"incident {payload.incident_id}"

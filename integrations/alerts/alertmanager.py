"""Parse a Prometheus Alertmanager webhook notification (payload version 4) into `Alert`s."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from integrations.alerts.model import Alert, AlertStatus, Severity, service_from_labels
from integrations.alerts.payload import OptionalUtcDatetime, UtcDatetime, validate

SOURCE = "alertmanager"
SUPPORTED_VERSION = "4"

_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_LABEL_SEPARATOR = 0xFF


class _AmAlert(BaseModel):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: UtcDatetime = Field(alias="startsAt")
    ends_at: OptionalUtcDatetime = Field(default=None, alias="endsAt")
    generator_url: str | None = Field(default=None, alias="generatorURL")
    fingerprint: str | None = None


class _AmPayload(BaseModel):
    version: str
    group_key: str = Field(alias="groupKey")
    alerts: list[_AmAlert]

    @field_validator("version", mode="before")
    @classmethod
    def _only_v4(cls, value: object) -> object:
        if value != SUPPORTED_VERSION:
            raise ValueError(
                f"unsupported Alertmanager payload version {value!r}; "
                f"only version {SUPPORTED_VERSION!r} is understood"
            )
        return value


def parse(body: object) -> list[Alert]:
    """Turn one Alertmanager notification into one `Alert` per alert in its group."""
    payload = validate(_AmPayload, body)
    return [_to_alert(payload.group_key, alert) for alert in payload.alerts]


def label_fingerprint(labels: dict[str, str]) -> str:
    """The fingerprint Alertmanager itself gives a label set (FNV-1a 64 over sorted pairs)."""
    digest = _FNV64_OFFSET
    for name in sorted(labels):
        for part in (name.encode(), labels[name].encode()):
            for byte in (*part, _LABEL_SEPARATOR):
                digest = ((digest ^ byte) * _FNV64_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{digest:016x}"


def _to_alert(group_key: str, alert: _AmAlert) -> Alert:
    labels = alert.labels
    return Alert(
        source=SOURCE,
        group_key=group_key,
        fingerprint=alert.fingerprint or label_fingerprint(labels),
        status=AlertStatus(alert.status),
        title=alert.annotations.get("summary") or labels.get("alertname") or "unnamed alert",
        severity=Severity.parse(labels.get("severity")),
        starts_at=alert.starts_at,
        ends_at=_ends_at(alert),
        service=service_from_labels(labels),
        labels=dict(labels),
        annotations=dict(alert.annotations),
        generator_url=alert.generator_url or None,
    )


def _ends_at(alert: _AmAlert) -> datetime | None:
    # A firing alert carries the time Alertmanager will consider it stale, not an end.
    return alert.ends_at if alert.status == "resolved" else None

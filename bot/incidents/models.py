"""The bot's own records: Incident and the small rows around it, with their JSON shapes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from integrations.alerts import Severity


class Status(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything in opsbot is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    v = aware(value)
    return v.isoformat().replace("+00:00", "Z") if v else None


@dataclass(slots=True)
class Incident:
    id: str
    short_id: int
    group_key: str
    status: Status
    severity: str
    title: str
    service: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    source: str
    signature: str
    created_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    snoozed_until: datetime | None
    alert_count: int
    generator_url: str | None

    @classmethod
    def from_row(cls, row: Any) -> Incident:
        m = row._mapping
        return cls(
            id=m["id"],
            short_id=m["short_id"],
            group_key=m["group_key"],
            status=Status(m["status"]),
            severity=Severity(m["severity"]).value,  # a row from before three levels: "high"
            title=m["title"],
            service=m["service"],
            labels=dict(m["labels"] or {}),
            annotations=dict(m["annotations"] or {}),
            source=m["source"],
            signature=m["signature"],
            created_at=aware(m["created_at"]),  # type: ignore[arg-type]
            updated_at=aware(m["updated_at"]),  # type: ignore[arg-type]
            acknowledged_at=aware(m["acknowledged_at"]),
            acknowledged_by=m["acknowledged_by"],
            resolved_at=aware(m["resolved_at"]),
            resolved_by=m["resolved_by"],
            snoozed_until=aware(m["snoozed_until"]),
            alert_count=m["alert_count"],
            generator_url=m["generator_url"],
        )

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Incident:
        """From the values just inserted (no need to read the row back)."""
        fields: dict[str, Any] = {f: values.get(f) for f in cls.__dataclass_fields__}
        fields["status"] = Status(values["status"])
        return cls(**fields)

    @property
    def is_open(self) -> bool:
        return self.status != Status.RESOLVED

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "short_id": self.short_id,
            "title": self.title,
            "status": self.status.value,
            "severity": self.severity,
            "service": self.service,
            "labels": self.labels,
            "annotations": self.annotations,
            "source": self.source,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "acknowledged_at": iso(self.acknowledged_at),
            "acknowledged_by": self.acknowledged_by,
            "resolved_at": iso(self.resolved_at),
            "resolved_by": self.resolved_by,
            "snoozed_until": iso(self.snoozed_until),
            "alert_count": self.alert_count,
            "generator_url": self.generator_url,
        }

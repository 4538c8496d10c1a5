"""Parse Google Cloud Monitoring (Stackdriver) webhook notifications: `{"incident": {...},
"version": "1.2"}`, one incident that is `open` or `closed`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from integrations.alerts import normalize
from integrations.alerts.model import Alert
from integrations.alerts.payload import OptionalUtcDatetime, validate

SOURCE = "gcp"

# Resource labels that name the workload, most specific first.
_SERVICE_LABELS = ("service_name", "container_name", "function_name", "database_id", "host")


class _Resource(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)

    type: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class _Documentation(BaseModel):
    content: str | None = None
    subject: str | None = None


class _Metadata(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)

    system_labels: dict[str, str] = Field(default_factory=dict)


class _Incident(BaseModel):
    incident_id: str
    state: str
    started_at: OptionalUtcDatetime = None  # 0 in some senders' test notifications
    ended_at: OptionalUtcDatetime = None
    policy_name: str | None = None
    condition_name: str | None = None
    summary: str | None = None
    url: str | None = None
    severity: str | None = None
    resource_name: str | None = None
    resource_display_name: str | None = None
    resource: _Resource | None = None
    scoping_project_id: str | None = None
    policy_user_labels: dict[str, str] | None = None
    documentation: _Documentation | None = None
    metadata: _Metadata | None = None


class _Notification(BaseModel):
    incident: _Incident
    version: str | None = None


def matches(body: dict[str, object]) -> bool:
    incident = body.get("incident")
    return isinstance(incident, dict) and "incident_id" in incident and "state" in incident


def parse(body: object) -> list[Alert]:
    i = validate(_Notification, body).incident
    resolved = i.state.strip().lower() == "closed"
    resource = i.resource or _Resource()
    user_labels = i.policy_user_labels or {}
    system_labels = i.metadata.system_labels if i.metadata else {}
    service = user_labels.get("service") or next(
        (resource.labels[k] for k in _SERVICE_LABELS if resource.labels.get(k)),
        i.resource_display_name or i.resource_name,
    )
    doc = i.documentation or _Documentation()
    name = _display_name(i.policy_name) or i.condition_name
    return [
        normalize.alert(
            SOURCE,
            f"gcp:{i.incident_id}",
            fingerprint=i.incident_id,
            title=normalize.title(name, doc.subject or i.summary) or i.incident_id,
            resolved=resolved,
            raw_severity=user_labels.get("severity") or i.severity or system_labels.get("severity"),
            at=(i.ended_at or i.started_at) if resolved else i.started_at,
            started=i.started_at,
            service=service,
            labels={
                **resource.labels,
                **user_labels,
                "alertname": name,
                "condition": i.condition_name,
                "resource_type": resource.type,
                "project": i.scoping_project_id,
            },
            annotations={"summary": i.summary, "documentation": doc.content},
            url=i.url,
        )
    ]


def _display_name(name: str | None) -> str | None:
    """A policy's own name; `projects/P/alertPolicies/<name>` resource paths keep their end."""
    if name and name.startswith("projects/") and "/alertPolicies/" in name:
        return name.rsplit("/", 1)[-1]
    return name

"""Parse Azure Monitor action-group webhooks: the common alert schema, the newer metric-alert
schema (`AzureMonitorMetricAlert`) and the classic metric alert (`status` + `context`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from integrations.alerts import normalize, severity
from integrations.alerts.model import Alert
from integrations.alerts.payload import OptionalUtcDatetime, UtcDatetime, validate

SOURCE = "azure"
COMMON_SCHEMA = "azuremonitorcommonalertschema"

_FIRING = frozenset({"fired", "activated", "active"})


class _Essentials(BaseModel):
    model_config = ConfigDict(extra="allow")

    alert_id: str = Field(alias="alertId")
    alert_rule: str = Field(alias="alertRule")
    severity: str | None = None
    signal_type: str | None = Field(default=None, alias="signalType")
    monitor_condition: str = Field(alias="monitorCondition")
    monitoring_service: str | None = Field(default=None, alias="monitoringService")
    target_ids: list[str] = Field(default_factory=list, alias="alertTargetIDs")
    configuration_items: list[str] = Field(default_factory=list, alias="configurationItems")
    origin_alert_id: str | None = Field(default=None, alias="originAlertId")
    fired_at: UtcDatetime = Field(alias="firedDateTime")
    resolved_at: OptionalUtcDatetime = Field(default=None, alias="resolvedDateTime")
    description: str | None = None


class _CommonData(BaseModel):
    essentials: _Essentials


class _Common(BaseModel):
    data: _CommonData


class _Context(BaseModel):
    """The classic and the newer (non-common) metric alert's `context`."""

    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    description: str | None = None
    timestamp: UtcDatetime
    severity: str | int | None = None
    condition_type: str | None = Field(default=None, alias="conditionType")
    resource_name: str | None = Field(default=None, alias="resourceName")
    resource_group: str | None = Field(default=None, alias="resourceGroupName")
    resource_type: str | None = Field(default=None, alias="resourceType")
    resource_id: str | None = Field(default=None, alias="resourceId")
    subscription_id: str | None = Field(default=None, alias="subscriptionId")
    portal_link: str | None = Field(default=None, alias="portalLink")


class _Metric(BaseModel):
    status: str
    context: _Context


class _MetricEnvelope(BaseModel):
    data: _Metric


def matches(body: dict[str, object]) -> bool:
    schema = str(body.get("schemaId") or "").lower()
    data = body.get("data")
    if schema == COMMON_SCHEMA or (isinstance(data, dict) and "essentials" in data):
        return True
    if schema == "azuremonitormetricalert":
        return True
    context = body.get("context")
    return isinstance(context, dict) and "status" in body and "resourceId" in context


def parse(body: object) -> list[Alert]:
    if isinstance(body, dict):
        data = body.get("data")
        if isinstance(data, dict) and "essentials" in data:
            return [_common(validate(_Common, body).data.essentials)]
        if isinstance(data, dict) and "context" in data:
            return [_metric(validate(_MetricEnvelope, body).data)]
    return [_metric(validate(_Metric, body))]


def _common(e: _Essentials) -> Alert:
    resolved = e.monitor_condition.strip().lower() == "resolved"
    target = e.configuration_items[0] if e.configuration_items else _resource_name(e.target_ids)
    return normalize.alert(
        SOURCE,
        # The rule and its target: an alert instance id is new each time it fires again.
        f"azure:{e.origin_alert_id or e.alert_id}",
        fingerprint=e.alert_id,
        title=normalize.title(e.alert_rule, e.description) or e.alert_rule,
        resolved=resolved,
        raw_severity=e.severity,
        scale=severity.AZURE,
        at=(e.resolved_at or e.fired_at) if resolved else e.fired_at,
        started=e.fired_at,
        service=target,
        labels={
            "alertname": e.alert_rule,
            "signal_type": e.signal_type,
            "monitoring_service": e.monitoring_service,
            "resource": target,
            **_resource_labels(e.target_ids[0] if e.target_ids else None),
        },
        annotations={"description": e.description},
    )


def _metric(alert: _Metric) -> Alert:
    c = alert.context
    return normalize.alert(
        SOURCE,
        f"azure:{c.id}:{c.resource_id or ''}",
        title=normalize.title(c.name, c.description) or c.name,
        resolved=alert.status.strip().lower() not in _FIRING,
        raw_severity=c.severity,
        scale=severity.AZURE,
        at=c.timestamp,
        service=c.resource_name,
        labels={
            "alertname": c.name,
            "condition_type": c.condition_type,
            "resource": c.resource_name,
            "resource_group": c.resource_group,
            "resource_type": c.resource_type,
            "subscription": c.subscription_id,
        },
        annotations={"description": c.description},
        url=c.portal_link,
    )


def _resource_name(target_ids: list[str]) -> str | None:
    return target_ids[0].rstrip("/").rsplit("/", 1)[-1] if target_ids else None


def _resource_labels(resource_id: str | None) -> dict[str, str | None]:
    """`/subscriptions/S/resourceGroups/G/providers/...` → subscription and resource group."""
    parts = (resource_id or "").strip("/").split("/")
    lowered = [p.lower() for p in parts]
    found: dict[str, str | None] = {}
    for key, label in (("subscriptions", "subscription"), ("resourcegroups", "resource_group")):
        if key in lowered and lowered.index(key) + 1 < len(parts):
            found[label] = parts[lowered.index(key) + 1]
    return found

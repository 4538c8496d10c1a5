"""Parse Azure Monitor action-group webhooks: the common alert schema, and without it the
metric-alert schema (`AzureMonitorMetricAlert`), the classic metric alert (`status` +
`context`), activity-log and service-health alerts (`Microsoft.Insights/activityLogs`) and
log alerts V1 (`AlertRuleName`, `SearchQuery`, ...)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from integrations.alerts import normalize, severity
from integrations.alerts.model import Alert
from integrations.alerts.payload import (
    OptionalUtcDatetime,
    UtcDatetime,
    parse_optional_timestamp,
    validate,
)

SOURCE = "azure"
COMMON_SCHEMA = "azuremonitorcommonalertschema"
ACTIVITY_SCHEMA = "microsoft.insights/activitylogs"
METRIC_SCHEMA = "azuremonitormetricalert"

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


class _ActivityLog(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    operation_name: str = Field(alias="operationName")
    event_data_id: str | None = Field(default=None, alias="eventDataId")
    correlation_id: str | None = Field(default=None, alias="correlationId")
    event_timestamp: OptionalUtcDatetime = Field(default=None, alias="eventTimestamp")
    event_source: str | None = Field(default=None, alias="eventSource")
    level: str | None = None
    description: str | None = None
    resource_id: str | None = Field(default=None, alias="resourceId")
    properties: dict[str, Any] = Field(default_factory=dict)


class _ActivityContext(BaseModel):
    activity_log: _ActivityLog = Field(alias="activityLog")


class _ActivityData(BaseModel):
    status: str
    context: _ActivityContext


class _ActivityEnvelope(BaseModel):
    data: _ActivityData


class _LogAlertV1(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)

    rule: str = Field(alias="AlertRuleName")
    description: str | None = Field(default=None, alias="Description")
    severity: str | None = Field(default=None, alias="Severity")
    query: str | None = Field(default=None, alias="SearchQuery")
    result_count: str | None = Field(default=None, alias="ResultCount")
    interval_end: str | None = Field(default=None, alias="SearchIntervalEndtimeUtc")
    workspace_id: str | None = Field(default=None, alias="WorkspaceId")
    resource_id: str | None = Field(default=None, alias="ResourceId")
    link: str | None = Field(default=None, alias="LinkToSearchResults")
    alert_type: str | None = Field(default=None, alias="AlertType")


def matches(body: dict[str, object]) -> bool:
    schema = str(body.get("schemaId") or "").lower()
    data = body.get("data")
    if schema == COMMON_SCHEMA or (isinstance(data, dict) and "essentials" in data):
        return True
    if schema in (METRIC_SCHEMA, ACTIVITY_SCHEMA):
        return True
    if "AlertRuleName" in body and ("SearchQuery" in body or "WorkspaceId" in body):
        return True
    context = body.get("context")
    return isinstance(context, dict) and "status" in body and "resourceId" in context


def parse(body: object) -> list[Alert]:
    if isinstance(body, dict):
        schema = str(body.get("schemaId") or "").lower()
        data = body.get("data")
        context = data.get("context") if isinstance(data, dict) else None
        if schema == COMMON_SCHEMA or (isinstance(data, dict) and "essentials" in data):
            return [_common(validate(_Common, body).data.essentials)]
        if schema == ACTIVITY_SCHEMA or (isinstance(context, dict) and "activityLog" in context):
            return [_activity(validate(_ActivityEnvelope, body).data)]
        if schema == METRIC_SCHEMA or context is not None:
            return [_metric(validate(_MetricEnvelope, body).data)]
        if "AlertRuleName" in body:
            return [_log_v1(validate(_LogAlertV1, body))]
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


def _activity(data: _ActivityData) -> Alert:
    """An activity-log event, or a service-health notice (its `trackingId` names the issue
    through its updates; its `stage` says when it is over)."""
    log = data.context.activity_log
    props = log.properties
    tracking = normalize.first_text(props.get("trackingId"))
    name = normalize.first_text(props.get("title"), props.get("defaultLanguageTitle"))
    name = name or log.operation_name
    over = {data.status.strip().lower(), str(props.get("stage", "")).strip().lower()}
    resource = _resource_name([log.resource_id] if log.resource_id else [])
    return normalize.alert(
        SOURCE,
        f"azure:activity:{tracking or log.correlation_id or log.event_data_id or name}",
        title=normalize.title(name, log.description) or name,
        resolved="resolved" in over,
        raw_severity=log.level,
        at=log.event_timestamp,
        service=normalize.first_text(props.get("service")) or resource,
        labels={
            "alertname": name,
            "operation": log.operation_name,
            "event_source": log.event_source,
            "resource": resource,
            **_resource_labels(log.resource_id),
        },
        annotations={"description": log.description},
    )


def _log_v1(alert: _LogAlertV1) -> Alert:
    """A log search alert (V1): each notification is one firing of the rule; it does not
    resolve."""
    return normalize.alert(
        SOURCE,
        f"azure:log:{alert.rule}:{alert.workspace_id or ''}",
        title=normalize.title(alert.rule, alert.description) or alert.rule,
        resolved=False,
        raw_severity=alert.severity,
        scale=severity.AZURE,
        at=_loose_time(alert.interval_end),
        service=_resource_name([alert.resource_id] if alert.resource_id else []),
        labels={
            "alertname": alert.rule,
            "alert_type": alert.alert_type,
            "result_count": alert.result_count,
            **_resource_labels(alert.resource_id),
        },
        annotations={"description": alert.description, "query": alert.query},
        url=alert.link,
    )


def _loose_time(value: str | None) -> datetime | None:
    """A time as Azure's older payloads write it; one that does not read (US-style
    "3/22/2019 1:51:33 PM") leaves the time of receipt."""
    try:
        return parse_optional_timestamp(value)
    except ValueError:
        return None


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

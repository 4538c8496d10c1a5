"""Parse New Relic alert webhooks: workflow notifications with the default payload template
(`issueUrl`, `state`, `priority`, `createdAt` in milliseconds, ...) and the legacy alert-policy
channel (`incident_id`, `current_state`, `condition_name`, `timestamp` in milliseconds)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from integrations.alerts import normalize
from integrations.alerts.model import Alert
from integrations.alerts.payload import OptionalUtcDatetime, UtcDatetime, validate

SOURCE = "newrelic"

_CLOSED = frozenset({"closed", "resolved"})


class _Target(BaseModel):
    name: str | None = None
    link: str | None = None
    labels: dict[str, str | list[str]] | None = None


class _Legacy(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)

    incident_id: str
    current_state: str
    condition_name: str | None = None
    policy_name: str | None = None
    details: str | None = None
    severity: str | None = None
    timestamp: UtcDatetime
    incident_url: str | None = None
    runbook_url: str | None = None
    account_name: str | None = None
    targets: list[_Target] = Field(default_factory=list)


class _Workflow(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)

    id: str
    state: str
    title: str | None = None
    priority: str | None = None
    issue_url: str | None = Field(default=None, alias="issueUrl")
    created_at: OptionalUtcDatetime = Field(default=None, alias="createdAt")
    updated_at: OptionalUtcDatetime = Field(default=None, alias="updatedAt")
    impacted_entities: list[str] | str | None = Field(default=None, alias="impactedEntities")
    policy_names: list[str] | str | None = Field(default=None, alias="alertPolicyNames")
    condition_names: list[str] | str | None = Field(default=None, alias="alertConditionNames")


def matches(body: dict[str, object]) -> bool:
    legacy = "current_state" in body and ("condition_name" in body or "incident_id" in body)
    workflow = "issueUrl" in body or (
        {"id", "state", "priority"} <= body.keys()
        and ("alertPolicyNames" in body or "impactedEntities" in body)
    )
    return legacy or workflow


def parse(body: object) -> list[Alert]:
    if isinstance(body, dict) and "current_state" in body:
        return [_legacy(validate(_Legacy, body))]
    return [_workflow(validate(_Workflow, body))]


def _legacy(n: _Legacy) -> Alert:
    target = n.targets[0] if n.targets else _Target()
    name = n.condition_name or n.policy_name or f"incident {n.incident_id}"
    return normalize.alert(
        SOURCE,
        f"newrelic:{n.incident_id}",
        fingerprint=n.incident_id,
        title=normalize.title(name, n.details) or name,
        resolved=n.current_state.strip().lower() in _CLOSED,
        raw_severity=n.severity,
        at=n.timestamp,
        service=target.name,
        labels={
            "alertname": name,
            "policy": n.policy_name,
            "account": n.account_name,
            "state": n.current_state,
            "target": target.name,
        },
        annotations={"description": n.details, "runbook_url": n.runbook_url},
        url=n.incident_url or target.link,
    )


def _workflow(n: _Workflow) -> Alert:
    resolved = n.state.strip().lower() in _CLOSED
    entity = _first(n.impacted_entities)
    name = _first(n.condition_names) or _first(n.policy_names)
    return normalize.alert(
        SOURCE,
        f"newrelic:{n.id}",
        fingerprint=n.id,
        title=normalize.title(name, n.title) or f"New Relic issue {n.id}",
        resolved=resolved,
        raw_severity=n.priority,
        at=(n.updated_at if resolved else None) or n.created_at,
        started=n.created_at,
        service=entity,
        labels={
            "alertname": name,
            "policy": _first(n.policy_names),
            "state": n.state,
            "entity": entity,
        },
        url=n.issue_url,
    )


def _first(value: list[str] | str | None) -> str | None:
    if isinstance(value, list):
        return normalize.first_text(*value)
    return normalize.text(value)

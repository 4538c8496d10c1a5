"""Parse Grafana's webhook contact point: unified alerting (an Alertmanager notification with
`orgId`, `title`, `state`, `message` and per-alert `values`) and legacy dashboard alerting
(`ruleName`, `state`, `evalMatches`)."""

from __future__ import annotations

from dataclasses import replace

from pydantic import BaseModel, ConfigDict, Field

from integrations.alerts import alertmanager, normalize
from integrations.alerts.model import Alert
from integrations.alerts.payload import validate

SOURCE = "grafana"

# Legacy states: ok resolves; alerting and no_data fire; paused and pending say nothing yet.
_LEGACY_FIRING = frozenset({"alerting", "no_data"})
_LEGACY_SILENT = frozenset({"paused", "pending"})
_LINK_KEYS = {"dashboardURL": "dashboard_url", "panelURL": "panel_url", "silenceURL": "silence_url"}


class _UnifiedAlert(BaseModel):
    model_config = ConfigDict(extra="allow")

    values: dict[str, float | int | None] | None = None
    value_string: str | None = Field(default=None, alias="valueString")


class _Unified(BaseModel):
    model_config = ConfigDict(extra="allow")

    alerts: list[_UnifiedAlert]


class _EvalMatch(BaseModel):
    metric: str | None = None
    value: float | int | None = None


class _Legacy(BaseModel):
    rule_name: str = Field(alias="ruleName")
    state: str
    rule_id: int | str | None = Field(default=None, alias="ruleId")
    org_id: int | str | None = Field(default=None, alias="orgId")
    dashboard_id: int | str | None = Field(default=None, alias="dashboardId")
    panel_id: int | str | None = Field(default=None, alias="panelId")
    rule_url: str | None = Field(default=None, alias="ruleUrl")
    image_url: str | None = Field(default=None, alias="imageUrl")
    message: str | None = None
    eval_matches: list[_EvalMatch] | None = Field(default=None, alias="evalMatches")
    tags: dict[str, str] | None = None


def matches(body: dict[str, object]) -> bool:
    unified = alertmanager.matches(body) and ("orgId" in body or "state" in body)
    return unified or ("ruleName" in body and "state" in body)


def parse(body: object) -> list[Alert]:
    if isinstance(body, dict) and "ruleName" in body and "alerts" not in body:
        return _legacy(validate(_Legacy, body))
    body = alertmanager.as_notification(body)
    note = validate(alertmanager.AmNotification, body)
    extras = validate(_Unified, body)
    alerts = alertmanager.parse_notification(note, SOURCE)
    return [
        replace(a, annotations={**a.annotations, **_links(x)})
        for a, x in zip(alerts, extras.alerts, strict=True)
    ]


def _links(alert: _UnifiedAlert) -> dict[str, str]:
    extra = alert.model_extra or {}
    found = {name: str(extra[key]) for key, name in _LINK_KEYS.items() if extra.get(key)}
    if alert.value_string:
        found["values"] = alert.value_string
    elif alert.values:
        found["values"] = ", ".join(f"{k}={v}" for k, v in alert.values.items())
    return found


def _legacy(rule: _Legacy) -> list[Alert]:
    state = rule.state.strip().lower()
    if state in _LEGACY_SILENT:
        return []
    tags = rule.tags or {}
    if rule.rule_id is not None:
        where = (rule.org_id, rule.dashboard_id, rule.panel_id, rule.rule_id)
        key = "grafana:" + ":".join(str(part or "") for part in where)
    else:
        key = f"grafana:{rule.rule_name}"
    matched = ", ".join(f"{m.metric}={m.value}" for m in rule.eval_matches or [] if m.metric)
    return [
        normalize.alert(
            SOURCE,
            key,
            title=normalize.title(rule.rule_name, rule.message) or rule.rule_name,
            resolved=state not in _LEGACY_FIRING,
            raw_severity=tags.get("severity"),
            service=tags.get("service"),
            labels={**tags, "alertname": rule.rule_name, "state": state},
            annotations={
                "message": rule.message,
                "rule_url": rule.rule_url,
                "image_url": rule.image_url,
                "values": matched,
            },
            url=rule.rule_url,
        )
    ]

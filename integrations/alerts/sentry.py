"""Parse Sentry webhooks: the integration platform's issue alerts (`event_alert`), metric
alerts (`metric_alert`: critical, warning, resolved) and issue changes (`issue`: created,
resolved, ...), and the legacy WebHooks plugin body. An issue alert and the issue's later
`resolved` share the issue id, so the one resolves the other."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from integrations.alerts import normalize
from integrations.alerts.model import Alert
from integrations.alerts.payload import OptionalUtcDatetime, validate
from integrations.errors import PayloadError

SOURCE = "sentry"

# An issue's `action`: these open or re-open it, these end it; the rest (assigned, ...)
# change nothing about whether it is firing.
_ISSUE_OPENS = frozenset({"created", "triggered", "unresolved", "regressed"})
_ISSUE_OVER = frozenset({"resolved", "ignored", "archived"})


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


class _Project(_Loose):
    slug: str | None = None
    name: str | None = None


class _Issue(_Loose):
    """An issue, or an event of one (the fields the two share)."""

    id: str | None = None
    issue_id: str | None = None
    title: str | None = None
    culprit: str | None = None
    level: str | None = None
    web_url: str | None = None
    permalink: str | None = None
    project: _Project | str | None = None
    datetime_: OptionalUtcDatetime = Field(default=None, alias="datetime")
    first_seen: OptionalUtcDatetime = Field(default=None, alias="firstSeen")
    timestamp: OptionalUtcDatetime = None


class _Rule(_Loose):
    name: str | None = None


class _MetricAlert(_Loose):
    id: str
    title: str | None = None
    alert_rule: _Rule | None = None
    date_started: OptionalUtcDatetime = None
    date_closed: OptionalUtcDatetime = None


class _Data(_Loose):
    event: _Issue | None = None
    issue: _Issue | None = None
    metric_alert: _MetricAlert | None = None
    triggered_rule: str | None = None
    description_text: str | None = None
    description_title: str | None = None
    web_url: str | None = None


class _Hook(_Loose):
    action: str
    data: _Data


class _Plugin(_Loose):
    id: str
    project: str | None = None
    project_name: str | None = None
    project_slug: str | None = None
    culprit: str | None = None
    level: str | None = None
    message: str | None = None
    url: str | None = None
    event: _Issue | None = None


def matches(body: dict[str, object]) -> bool:
    data = body.get("data")
    platform = (
        "action" in body
        and isinstance(data, dict)
        and any(key in data for key in ("event", "issue", "metric_alert"))
    )
    plugin = "culprit" in body and "project" in body and ("level" in body or "url" in body)
    return platform or plugin


def parse(body: object) -> list[Alert]:
    if isinstance(body, dict) and "data" in body:
        hook = validate(_Hook, body)
        if hook.data.metric_alert is not None:
            return [_metric(hook, hook.data.metric_alert)]
        issue = hook.data.event or hook.data.issue
        if issue is None:
            raise PayloadError("data: no event, issue or metric_alert", field="data")
        action = hook.action.strip().lower()
        if action not in _ISSUE_OPENS | _ISSUE_OVER:
            return []
        return [_issue(issue, action in _ISSUE_OVER, hook.data.triggered_rule, hook.action)]
    plugin = validate(_Plugin, body)
    event = plugin.event or _Issue()
    issue = _Issue(
        id=plugin.id,
        title=event.title or plugin.message,
        culprit=plugin.culprit,
        level=plugin.level or event.level,
        web_url=plugin.url,
        project=plugin.project_slug or plugin.project,
        datetime=event.datetime_ or event.timestamp,
    )
    return [_issue(issue, False, None, "triggered")]


def _issue(issue: _Issue, over: bool, rule: str | None, action: str) -> Alert:
    issue_id = issue.issue_id or issue.id
    if not issue_id:
        raise PayloadError("the Sentry issue has no id", field="data.issue.id")
    project = issue.project.slug if isinstance(issue.project, _Project) else issue.project
    if project and project.isdigit():  # an event alert names its project by number only
        project = None
    return normalize.alert(
        SOURCE,
        f"sentry:issue:{issue_id}",
        fingerprint=issue_id,
        title=normalize.title(issue.title) or f"Sentry issue {issue_id}",
        resolved=over,
        raw_severity=issue.level,
        at=issue.datetime_ or issue.timestamp or issue.first_seen,
        service=project,
        labels={"project": project, "culprit": issue.culprit, "rule": rule, "action": action},
        annotations={"culprit": issue.culprit},
        url=issue.web_url or issue.permalink,
    )


def _metric(hook: _Hook, alert: _MetricAlert) -> Alert:
    action = hook.action.strip().lower()
    resolved = action == "resolved"
    name = (alert.alert_rule.name if alert.alert_rule else None) or alert.title
    return normalize.alert(
        SOURCE,
        f"sentry:metric:{alert.id}",
        fingerprint=alert.id,
        title=normalize.title(name, hook.data.description_text)
        or f"Sentry metric alert {alert.id}",
        resolved=resolved,
        # critical or warning; a resolution says nothing of how bad it was
        raw_severity=None if resolved else action,
        at=(alert.date_closed if resolved else None) or alert.date_started,
        started=alert.date_started,
        labels={"alertname": name, "action": action},
        annotations={
            "summary": hook.data.description_title,
            "description": hook.data.description_text,
        },
        url=hook.data.web_url,
    )

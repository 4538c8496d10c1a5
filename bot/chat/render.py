"""From an incident to the message model: its root view with buttons, its status line, the
text of a diagnosis. Renderers (`bot/chat/renderers/`) turn these into each dialect."""

from __future__ import annotations

from agent.types import Diagnosis
from bot.app.config import Config
from bot.chat.messages import Button, Reply, RootView
from bot.incidents.models import Incident, Status, utcnow

SEVERITY_MARK = {"critical": "🔴", "warning": "🟡", "info": "🔵"}
SOURCE_MARK = {"live": "🟢", "fallback": "🟡", "cache": "🔵", "offline": "⚪", "static": "🔴"}
ACTION_LABEL = {"restart": "Restart", "scale_up": "Scale up", "rollback": "Roll back"}
KEY_LABELS = ("alertname", "namespace", "cluster", "env", "environment", "region", "team", "pod")


def minutes(seconds: float) -> str:
    m = max(1, round(seconds / 60))
    return f"{m} min" if m < 120 else f"{m / 60:.1f} h"


def status_line(inc: Incident) -> str:
    if inc.status == Status.RESOLVED and inc.resolved_at:
        took = minutes((inc.resolved_at - inc.created_at).total_seconds())
        return f"Resolved by {inc.resolved_by or 'source'} after {took}"
    if inc.status == Status.ACKNOWLEDGED:
        return f"Acknowledged by {inc.acknowledged_by}"
    line = "Triggered"
    if inc.snoozed_until and inc.snoozed_until > utcnow():
        line += f" · snoozed until {inc.snoozed_until:%H:%M} UTC"
    return line


def buttons_for(cfg: Config, inc: Incident) -> list[Button]:
    if inc.status == Status.RESOLVED:
        return []
    out = []
    if inc.status == Status.TRIGGERED:
        out.append(Button("ack", "Acknowledge", inc.id, "primary"))
    out += [
        Button("resolve", "Resolve", inc.id),
        Button("diagnose", "Diagnose again", inc.id),
        Button("ticket", "Create ticket", inc.id),
    ]
    svc = cfg.services.get(inc.service or "")
    for action in svc.actions if svc else {}:
        out.append(Button(f"action:{action}", ACTION_LABEL.get(action, action), inc.id, "danger"))
    return out


def root_view(cfg: Config, inc: Incident) -> RootView:
    links = []
    if inc.generator_url:
        links.append(("Source", inc.generator_url))
    if inc.annotations.get("runbook_url"):
        links.append(("Runbook", inc.annotations["runbook_url"]))
    if cfg.http.public_url:
        links.append(("Console", f"{cfg.http.public_url.rstrip('/')}/#/incidents/{inc.id}"))
    return RootView(
        incident_id=inc.id,
        short_id=inc.short_id,
        title=inc.title,
        status=inc.status.value,
        severity=inc.severity,
        service=inc.service,
        labels={k: inc.labels[k] for k in KEY_LABELS if k in inc.labels},
        started_at=inc.created_at,
        alert_count=inc.alert_count,
        status_line=status_line(inc),
        links=links,
        buttons=buttons_for(cfg, inc),
        summary=inc.annotations.get("description") or inc.annotations.get("summary"),
    )


def diagnosis_text(d: Diagnosis) -> str:
    """The plain-text rendering every platform can fall back to (WhatsApp, notifications)."""
    mark = SOURCE_MARK.get(d.source.value, "")
    lines = [f"{mark} Diagnosis ({d.source.value}, {d.confidence:.0%} confident): {d.summary}"]
    if d.cache_age_s is not None:
        lines[0] += f" — cached {minutes(d.cache_age_s)} ago"
    lines.append(f"Root cause: {d.root_cause}")
    for ev in d.evidence[:5]:
        lines.append(f"  • [{ev.tool}] {ev.quote}")
    if d.checks:
        lines.append("Check first: " + "; ".join(d.checks[:3]))
    if d.mitigation:
        lines.append(f"Mitigation: {d.mitigation}")
    if d.proposed_action and d.proposed_action.action.value != "none":
        lines.append(f'Proposed action: {d.proposed_action.action.value} (say "{say_hint(d)}")')
    if d.past_fixes:
        lines.append(f"📎 {d.past_fixes[:1].upper()}{d.past_fixes[1:]}")
    return "\n".join(lines)


def say_hint(d: Diagnosis) -> str:
    return {"restart": "restart it", "scale_up": "scale it up", "rollback": "roll it back"}.get(
        d.action.value, d.action.value
    )


def after_resolution(d: Diagnosis) -> Reply:
    """A diagnosis that finished after its incident resolved: a summary for the record, with
    nothing to act on, never shown as if the incident were live."""
    mark = SOURCE_MARK.get(d.source.value, "")
    return Reply(
        f"{mark} Diagnosis ({d.source.value}), finished after the incident resolved: "
        f"{d.summary}\nRoot cause: {d.root_cause}",
        "info",
    )

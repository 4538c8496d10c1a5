"""From an incident to the message model: its root view with buttons, its status line, the
text of a diagnosis. Renderers (`bot/chat/renderers/`) turn these into each dialect."""

from __future__ import annotations

from collections.abc import Callable

from agent.types import Diagnosis
from bot.app.config import Config
from bot.chat.messages import Button, Reply, RootView, StormDigest, StormLine
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


STORM_OPEN_HINT = "Type `#42` here (or use a button) to open an incident's thread."
STORM_LINE_HINT = "Reply `#42` for one incident's own messages."  # a line without threads


def storm_groups(digest: StormDigest) -> list[tuple[str, list[StormLine]]]:
    """The digest's incidents by service, then severity (most severe first): (heading, lines)."""
    order = list(SEVERITY_MARK)
    groups: dict[tuple[str, str], list[StormLine]] = {}
    for line in digest.incidents:
        groups.setdefault((line.service or "unknown", line.severity), []).append(line)
    keys = sorted(groups, key=lambda k: (k[0], order.index(k[1]) if k[1] in order else 9, k[1]))
    return [
        (
            f"{service} · {SEVERITY_MARK.get(sev, '⚪')} {sev} ({len(groups[service, sev])})",
            groups[service, sev],
        )
        for service, sev in keys
    ]


def storm_entry(line: StormLine) -> str:
    """`#42 Title`, marked when resolved or acknowledged."""
    mark = "✅ " if line.resolved else ("👀 " if line.status == "acknowledged" else "")
    return f"{mark}#{line.short_id} {line.title}"


def fit(entries: list[str], limit: int, sep: str = "\n", weights: list[int] | None = None) -> str:
    """As many `entries` as fit `limit` characters, then "… and N more" (N: the entries left
    out, or the sum of their `weights`: incidents in the groups left out)."""
    size, shown = -len(sep), 0
    for entry in entries:
        size += len(sep) + len(entry)
        if size > limit:
            break
        shown += 1
    if shown == len(entries):
        return sep.join(entries)
    counts = weights or [1] * len(entries)
    while shown > 0:  # the marker must fit as well
        text = sep.join([*entries[:shown], f"… and {sum(counts[shown:])} more"])
        if len(text) <= limit:
            return text
        shown -= 1
    return f"… and {sum(counts)} more"


def storm_lines(
    digest: StormDigest, limit: int, heading: Callable[[str], str], entry: Callable[[str], str]
) -> tuple[list[str], list[int]]:
    """One line per group, `heading(text): entry(#1 A) · entry(#2 B)`, each within `limit`;
    with the number of incidents each stands for."""
    lines, counts = [], []
    for title, group in storm_groups(digest):
        head = f"{heading(title)}: "
        entries = [entry(storm_entry(line)) for line in group]
        lines.append(head + fit(entries, max(limit - len(head), 0), " · "))
        counts.append(len(group))
    return lines, counts


def storm_buttons(lines: list[StormLine], room: int) -> list[Button]:
    """ "Open #42" for the open incidents, most severe first, as many as a message holds."""
    order = list(SEVERITY_MARK)
    open_ = [i for i in lines if not i.resolved]
    open_.sort(key=lambda i: (order.index(i.severity) if i.severity in order else 9, i.short_id))
    return [Button("open", f"Open #{i.short_id}", i.incident_id) for i in open_[:room]]

"""The Block Kit / mrkdwn dialect (Slack): an incident's root message and its replies.

Every piece of data is escaped (`&`, `<`, `>`), so alert or log text can never ping `@channel`
or smuggle a link; each message also carries a plain `text` fallback for notifications.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from agent.types import Diagnosis
from bot.chat.adapters.base import Capabilities
from bot.chat.messages import Button, Reply, RootView, StormDigest
from bot.chat.render import (
    SEVERITY_MARK,
    SOURCE_MARK,
    STORM_OPEN_HINT,
    diagnosis_text,
    minutes,
    say_hint,
    storm_lines,
)
from bot.chat.renderers import named, rows, text_choices
from bot.chat.text import cut
from bot.incidents.models import aware

Block = dict[str, Any]

# Slack's documented limits (https://api.slack.com/reference/block-kit/blocks).
HEADER_MAX, SECTION_MAX, FIELD_MAX, BUTTON_LABEL_MAX = 150, 3000, 2000, 75
BLOCKS_MAX = 50
EVIDENCE_SHOWN, EVIDENCE_QUOTE_MAX = 5, 300
RESOLVED_MARK = "✅"


def escape(text: str) -> str:
    """Slack's three control characters; everything else is shown as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str) -> Block:
    return {"type": "mrkdwn", "text": _clip(text, SECTION_MAX)}


def _plain(text: str, limit: int = HEADER_MAX) -> Block:
    return {"type": "plain_text", "text": _clip(text, limit), "emoji": True}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text)}


def _link(label: str, url: str) -> str:
    return f"<{escape(url)}|{escape(label)}>"


def _date(view: RootView) -> str:
    """Shown in each reader's own time zone; the fallback is UTC."""
    started = cast(datetime, aware(view.started_at))
    epoch = int(started.timestamp())
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{started:%Y-%m-%d %H:%M} UTC>"


def _mark(view: RootView) -> str:
    return RESOLVED_MARK if view.status == "resolved" else SEVERITY_MARK.get(view.severity, "⚪")


def button(b: Button, caps: Capabilities) -> Block:
    """A Block Kit button; a danger button asks for confirmation first, where it can."""
    element: Block = {
        "type": "button",
        "action_id": b.action_id,
        "text": _plain(b.label, BUTTON_LABEL_MAX),
    }
    if b.value:
        element["value"] = b.value
    if b.style in ("primary", "danger"):
        element["style"] = b.style
    if b.style == "danger" and caps.confirm_step:
        element["confirm"] = {
            "title": _plain("Are you sure?"),
            "text": _mrkdwn(f"*{escape(b.label)}* will run against the live service."),
            "confirm": _plain(b.label, BUTTON_LABEL_MAX),
            "deny": _plain("Cancel"),
            "style": "danger",
        }
    return element


def _actions(buttons: list[Button], block_id: str, caps: Capabilities) -> list[Block]:
    return [
        {"type": "actions", "block_id": f"{block_id}:{i}" if i else block_id, "elements": row}
        for i, row in enumerate([button(b, caps) for b in r] for r in rows(buttons, caps))
    ]


def root_text(view: RootView) -> str:
    """The notification and screen-reader text of a root message."""
    service = f" · {view.service}" if view.service else ""
    return escape(f"{_mark(view)} #{view.short_id} {view.title}{service} · {view.status_line}")


def root(view: RootView, caps: Capabilities) -> tuple[str, list[Block]]:
    """(notification text, blocks) of an incident's root message."""
    return root_text(view), root_blocks(view, caps)


def root_blocks(view: RootView, caps: Capabilities) -> list[Block]:
    """Header, summary, facts, key labels, links, and the buttons while the incident is open."""
    blocks: list[Block] = [
        {"type": "header", "text": _plain(f"{_mark(view)} #{view.short_id} {view.title}")}
    ]
    if view.summary:
        blocks.append(_section(escape(view.summary)))
    fields = [
        ("Service", escape(view.service or "unknown")),
        ("Status", escape(view.status_line)),
        ("Severity", escape(view.severity)),
        ("Alerts", str(view.alert_count)),
        ("Started", _date(view)),
    ]
    blocks.append(
        {
            "type": "section",
            "fields": [_mrkdwn(_clip(f"*{k}*\n{v}", FIELD_MAX)) for k, v in fields],
        }
    )
    if view.labels:
        labels = "  ".join(f"`{escape(k)}={escape(v)}`" for k, v in view.labels.items())
        blocks.append({"type": "context", "elements": [_mrkdwn(labels)]})
    if view.links:
        links = " · ".join(_link(label, url) for label, url in view.links)
        blocks.append({"type": "context", "elements": [_mrkdwn(links)]})
    return blocks + _actions(view.buttons, f"incident:{view.incident_id}", caps)


def diagnosis_blocks(d: Diagnosis) -> list[Block]:
    """Which layer answered, the finding, the quoted evidence and what to do next."""
    source = d.source.value
    head = f"{SOURCE_MARK.get(source, '')} *Diagnosis* · {source} · {d.confidence:.0%} confident"
    if d.cache_age_s is not None:
        head += f" · cached {minutes(d.cache_age_s)} ago"
    blocks = [
        _section(f"{head}\n*{escape(d.summary)}*"),
        _section(f"*Root cause*\n{escape(d.root_cause)}"),
    ]
    if d.evidence:
        quotes = [
            f"> `{escape(ev.tool)}` {escape(_clip(' '.join(ev.quote.split()), EVIDENCE_QUOTE_MAX))}"
            for ev in d.evidence[:EVIDENCE_SHOWN]
        ]
        blocks.append(_section("*Evidence*\n" + "\n".join(quotes)))
    if d.checks:
        checks = [f"{i}. {escape(c)}" for i, c in enumerate(d.checks, 1)]
        blocks.append(_section("*Check first*\n" + "\n".join(checks)))
    if d.mitigation:
        blocks.append(_section(f"*Mitigation*\n{escape(d.mitigation)}"))
    if d.proposed_action and d.action.value != "none":
        say = escape(say_hint(d))
        blocks.append(_section(f"*Proposed action:* `{d.action.value}` — say “{say}”"))
    if d.past_fixes:
        fixes = f"📎 {d.past_fixes[:1].upper()}{d.past_fixes[1:]}"
        blocks.append({"type": "context", "elements": [_mrkdwn(escape(fixes))]})
    return blocks


def reply(message: Reply, caps: Capabilities) -> tuple[str, list[Block] | None]:
    """(text, blocks) for a reply; plain messages need no blocks."""
    if message.diagnosis is not None:
        blocks = diagnosis_blocks(message.diagnosis)
        text = escape(named(diagnosis_text(message.diagnosis), message, caps))
    else:
        body = named(message.text, message, caps)
        choices = text_choices(message.buttons, caps, message.incident)
        body += f"\n{choices}" if choices else ""
        text = escape(cut(body, caps.max_length, message.more_url))
        if message.link:
            text += f"\n{_link(*message.link)}"
        if not message.buttons:
            return text, None
        blocks = [_section(text)]
    return text, blocks + _actions(message.buttons, "reply", caps)


def storm(digest: StormDigest, caps: Capabilities) -> tuple[str, list[Block]]:
    """(notification text, blocks) of a storm digest: headline, tally, one section per service
    and severity (as many as Slack's 50 blocks allow, then "… and N more"), open buttons."""
    actions = _actions(digest.buttons, "storm", caps)
    lines, counts = storm_lines(digest, SECTION_MAX, lambda h: f"*{escape(h)}*", escape)
    room = BLOCKS_MAX - 2 - len(actions)
    if len(lines) > room:
        lines = [*lines[: room - 1], f"… and {sum(counts[room - 1 :])} more"]
    tally = f"{digest.tally} · {STORM_OPEN_HINT}" if not digest.over else digest.tally
    blocks: list[Block] = [
        {"type": "header", "text": _plain(digest.headline)},
        {"type": "context", "elements": [_mrkdwn(escape(tally))]},
        *(_section(line) for line in lines),
    ]
    text = escape(f"{digest.headline} · {digest.tally}")
    return text, blocks + actions

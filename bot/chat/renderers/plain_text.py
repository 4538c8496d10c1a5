"""The plain-text dialect (SMS/WhatsApp-like lines): one string per message, no markup.

Mentions in any text are defused, texts are cut at a line boundary to the platform's length,
and buttons that do not fit are offered as what to type ("approve #42").
"""

from __future__ import annotations

from bot.chat.adapters.base import Capabilities
from bot.chat.messages import Reply, RootView, StormDigest
from bot.chat.render import (
    SEVERITY_MARK,
    STORM_LINE_HINT,
    STORM_OPEN_HINT,
    diagnosis_text,
    fit,
    storm_lines,
)
from bot.chat.renderers import named, text_choices
from bot.chat.text import cut, neutralise

RESOLVED_MARK = "✅"


def _finish(text: str, caps: Capabilities, more_url: str | None, choices: str) -> str:
    """Defuse, then cut the body so that the choices (short, and needed to act) always fit."""
    tail = f"\n{choices}" if choices else ""
    return cut(neutralise(text), max(caps.max_length - len(tail), 1), more_url) + tail


def root(view: RootView, caps: Capabilities) -> str:
    mark = RESOLVED_MARK if view.status == "resolved" else SEVERITY_MARK.get(view.severity, "⚪")
    lines = [
        f"{mark} {view.name.label}: {view.title}",
        f"{view.status_line} · severity {view.severity} · {view.alert_count} alert(s)",
    ]
    if view.summary:
        lines.append(view.summary)
    lines += [f"{label}: {url}" for label, url in view.links]
    return _finish("\n".join(lines), caps, None, text_choices(view.buttons, caps, view.name))


def reply(message: Reply, caps: Capabilities) -> str:
    body = diagnosis_text(message.diagnosis) if message.diagnosis else message.text
    if message.link:
        body += f"\n{message.link[0]}: {message.link[1]}"
    choices = text_choices(message.buttons, caps, message.incident)
    return _finish(named(body, message, caps), caps, message.more_url, choices)


def storm(digest: StormDigest, caps: Capabilities) -> str:
    """Headline and tally, then a line per service and severity, within the platform's length
    ("… and N more" for what does not fit)."""
    head = f"{digest.headline}\n{digest.tally}"
    if not digest.over:
        head += f"\n{STORM_OPEN_HINT if caps.has_threads else STORM_LINE_HINT}"
    room = max(caps.max_length - len(head) - 1, 0)
    lines, counts = storm_lines(digest, room, str, neutralise)
    return f"{head}\n{fit(lines, room, chr(10), counts)}"

"""Renderers, one module per markup dialect: the message model → what a platform shows.

Each module has `root(view, caps)` and `reply(reply, caps)`; its adapter calls them. What
every dialect needs lives here: the text of a reply as a person reads it (naming its incident
on a line without threads, the buttons that do not fit as commands to type), and button rows.
"""

from __future__ import annotations

from bot.chat.adapters.base import Capabilities
from bot.chat.messages import Button, IncidentName, Reply

# What to type instead of clicking, by button (`action:<name>` types the action's name).
_TYPED = {
    "ack": "ack",
    "resolve": "resolve",
    "diagnose": "diagnose again",
    "ticket": "file a ticket",
    "approve": "approve",
    "deny": "deny",
}


def typed(button: Button, incident: IncidentName | None) -> str | None:
    """The message that does what `button` does ("approve #42"), or None if there is none."""
    name, _, arg = button.action_id.partition(":")
    ref = f" {incident.ref}" if incident else ""
    if name in _TYPED:
        return f"{_TYPED[name]}{ref}"
    if name == "action" and arg:
        return f"{arg.replace('_', ' ')}{ref}"
    return None


def shown_buttons(buttons: list[Button], caps: Capabilities) -> list[Button]:
    """The buttons that fit one message."""
    return buttons[: caps.buttons_per_message]


def rows(buttons: list[Button], caps: Capabilities) -> list[list[Button]]:
    """The buttons that fit one message, in rows of at most `buttons_per_row`."""
    fit, per = shown_buttons(buttons, caps), max(caps.buttons_per_row, 1)
    return [fit[i : i + per] for i in range(0, len(fit), per)]


def text_choices(buttons: list[Button], caps: Capabilities, incident: IncidentName | None) -> str:
    """The buttons that do not fit (all of them where there are none) as what to type."""
    left = buttons[caps.buttons_per_message :]
    said = [t for t in (typed(b, incident) for b in left) if t]
    if not said:
        return ""
    return "Reply " + " · ".join(f"“{t}”" for t in said)


def named(text: str, reply: Reply, caps: Capabilities) -> str:
    """On a line without threads, every reply names its incident: "#42 checkout: …"."""
    if reply.incident is None or caps.has_threads:
        return text
    return f"{reply.incident.label}: {text}"

"""The WhatsApp dialect: plain text for a phone, a concise page and short replies.

A page says severity, `#42`, service, title and how to answer ("Reply `ack`, `restart`, or
`#42 restart`."); a diagnosis is its one-line summary and the reply that acts on it (a second
message: WhatsApp cannot edit the page). Everything else is the plain-text dialect's.
"""

from __future__ import annotations

from bot.chat.adapters.base import Capabilities
from bot.chat.messages import Reply, RootView, StormDigest
from bot.chat.render import SEVERITY_MARK
from bot.chat.renderers import plain_text
from bot.chat.text import cut, neutralise

_SAY = {"restart": "restart", "scale_up": "scale up", "rollback": "roll back"}


def how_to_answer(view: RootView) -> str:
    """ "Reply `ack`, `restart`, or `#42 restart`." from what the incident offers."""
    ids = [b.action_id for b in view.buttons]
    action = next((_SAY.get(i.partition(":")[2], "") for i in ids if i.startswith("action:")), "")
    words = ["`ack`"] if "ack" in ids else []
    verb = action or ("resolve" if "resolve" in ids else "status")
    words += [f"`{verb}`", f"`{view.name.ref} {verb}`"]
    return "Reply " + ", ".join(words[:-1]) + f", or {words[-1]}."


def root(view: RootView, caps: Capabilities) -> str:
    mark = (
        plain_text.RESOLVED_MARK
        if view.status == "resolved"
        else SEVERITY_MARK.get(view.severity, "⚪")
    )
    lines = [f"{mark} {view.severity.upper()} {view.name.label}", view.title]
    if view.summary and view.summary != view.title:
        lines.append(view.summary)
    last = view.status_line if view.status != "triggered" else how_to_answer(view)
    body = cut(neutralise("\n".join(lines)), caps.max_length - len(last) - 1)
    return f"{body}\n{last}"


def short(message: Reply) -> Reply:
    """A diagnosis as one line and the reply that acts on it; other replies as they are."""
    d = message.diagnosis
    if d is None:
        return message
    text = f"🔎 {d.summary}"
    if d.action.value != "none" and message.incident is not None:
        say = _SAY.get(d.action.value, d.action.value)
        text += f"\nReply `{message.incident.ref} {say}` to {say}."
    return Reply(
        text, message.kind, key=message.key, incident=message.incident, more_url=message.more_url
    )


def reply(message: Reply, caps: Capabilities) -> str:
    return plain_text.reply(short(message), caps)


def storm(digest: StormDigest, caps: Capabilities) -> str:
    return plain_text.storm(digest, caps)

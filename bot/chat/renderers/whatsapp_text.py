"""The WhatsApp dialect: a concise incident page, one-line state changes, short replies.

WhatsApp cannot edit or thread, and Twilio refuses bodies over 1,600 characters, so every
text names its incident (`#42`), says how to answer, and is cut at a line boundary.
"""

from __future__ import annotations

from bot.chat.messages import Reply, RootView
from bot.chat.text import cut

MAX_CHARS = 1600
SEVERITY_MARK = {"critical": "🔴", "high": "🟠", "warning": "🟡", "info": "🔵"}
_SAY = {"restart": "restart", "scale_up": "scale it up", "rollback": "roll it back"}


def fit(text: str, limit: int = MAX_CHARS) -> str:
    """`text` under `limit` characters, cut at a line boundary with how much was left out."""
    return cut(text, limit)


def how_to_answer(view: RootView) -> str:
    """ "reply `ack`, `restart`, or `#42 restart`" from what the incident offers."""
    ids = [b.action_id for b in view.buttons]
    action = next((_SAY.get(i.partition(":")[2], "") for i in ids if i.startswith("action:")), "")
    words = ["`ack`"] if "ack" in ids else []
    verb = action or ("resolve" if "resolve" in ids else "status")
    words += [f"`{verb}`", f"`#{view.short_id} {verb}`"]
    return "Reply " + ", ".join(words[:-1]) + f", or {words[-1]}."


def root_text(view: RootView) -> str:
    """The page: severity, #42, service, title, and how to answer."""
    mark = SEVERITY_MARK.get(view.severity, "⚪")
    lines = [
        f"{mark} {view.severity.upper()} #{view.short_id} {view.service or ''}".rstrip(),
        view.title,
    ]
    if view.summary and view.summary != view.title:
        lines.append(view.summary)
    lines.append(view.status_line if view.status != "triggered" else how_to_answer(view))
    return fit("\n".join(lines))


def reply_text(message: Reply, short_id: int | None) -> str:
    """A reply that names its incident; a diagnosis is its one-line summary and next step."""
    ref = f"#{short_id}" if short_id is not None else ""
    d = message.diagnosis
    if d is not None:
        text = f"🔎 {ref} {d.summary}".strip()
        action = d.action.value
        if action != "none" and ref:
            text += f"\nReply `{ref} {_SAY.get(action, action)}` to {_SAY.get(action, action)}."
        return fit(text)
    text = message.text
    if ref and ref not in text:
        text = f"{ref} {text}"
    if any(b.action_id.startswith("approve:") for b in message.buttons) and ref:
        text += f"\nReply `approve {ref}` or `deny {ref}`."
    return fit(text)

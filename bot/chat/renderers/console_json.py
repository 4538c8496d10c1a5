"""The console's JSON dialect: messages as the web console stores and draws them."""

from __future__ import annotations

from typing import Any

from bot.chat.adapters.base import Capabilities
from bot.chat.messages import Reply, RootView, reply_to_json
from bot.chat.text import cut


def root(view: RootView, caps: Capabilities) -> dict[str, Any]:
    """What the live stream says of a new or changed root: the console refetches the rest."""
    return {"id": view.incident_id, "short_id": view.short_id, "status": view.status}


def reply(message: Reply, caps: Capabilities) -> dict[str, Any]:
    """The stored message: text (cut to the console's length) with its buttons and diagnosis.
    The browser shows text as text, so nothing in it needs escaping here."""
    data = reply_to_json(message)
    data["text"] = cut(message.text, caps.max_length, message.more_url)
    return data

"""The console's JSON dialect: messages as the web console stores and draws them."""

from __future__ import annotations

from typing import Any

from bot.chat.adapters.base import Capabilities
from bot.chat.messages import Reply, RootView, StormDigest, reply_to_json
from bot.chat.render import STORM_OPEN_HINT, fit, storm_lines
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


def storm(digest: StormDigest, caps: Capabilities) -> dict[str, Any]:
    """A storm digest for the live stream: its counts, its incidents, and its text."""
    lines, counts = storm_lines(digest, caps.max_length, str, str)
    return {
        "headline": digest.headline,
        "tally": digest.tally,
        "over": digest.over,
        "hint": None if digest.over else STORM_OPEN_HINT,
        "incidents": [
            {"id": i.incident_id, "short_id": i.short_id, "status": i.status}
            for i in digest.incidents
        ],
        "text": fit(lines, caps.max_length, "\n", counts),
    }

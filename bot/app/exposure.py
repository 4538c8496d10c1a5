"""What a configuration leaves open to anyone who can reach the bot, checked at start-up.

`opsbot run` refuses to start with these problems; `opsbot check-config` warns of them.
"""

from __future__ import annotations

from bot.app.config import Config
from bot.app.server.peers import is_loopback


def open_doors(cfg: Config) -> list[str]:
    """Each problem names the keys that close it (and the one that says it is intended)."""
    where = cfg.source_path or "(embedded default)"
    if is_loopback(cfg.http.host) or cfg.webhooks.token or cfg.webhooks.allow_unauthenticated:
        return []
    return [
        f"{where}: http.host is {cfg.http.host} (not loopback) and webhooks.token is empty, so "
        "anyone who reaches the bot can open incidents: set webhooks.token, or "
        "webhooks.allow_unauthenticated: true if that is intended"
    ]

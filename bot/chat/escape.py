"""Escaping for the markup dialects opsbot writes data into beyond its chat renderers' own:
Jira wiki markup (tickets) and Discord markdown (for the Discord renderer; Slack's mrkdwn is
escaped in `renderers/block_kit.py`). Alert, log and model text is then shown as written: it can
neither format, link, mention nor end a block."""

from __future__ import annotations

import re

from bot.chat.text import neutralise

# Jira wiki markup: text effects, links, macros ({noformat}, {code}), tables, images, lists and
# headings. A backslash shows the next character as itself; line starts are kept out by folding
# data onto one line.
_JIRA_SPECIAL = re.compile(r"([\\{}\[\]*_+^~|!#?-])")
# Discord markdown: emphasis, code, spoilers, quotes, headings, lists and masked links.
_DISCORD_SPECIAL = re.compile(r"([\\*_~`|>#\-\[\]()])")


def jira(text: str) -> str:
    """Jira wiki markup, on one line."""
    return _JIRA_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def discord(text: str) -> str:
    """Discord markdown, with @everyone/@here and <@id> mentions defused."""
    return _DISCORD_SPECIAL.sub(r"\\\1", neutralise(text))

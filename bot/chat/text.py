"""Text every renderer shares: cutting to a platform's length, and defusing mentions."""

from __future__ import annotations

import re

ZWSP = "\u200b"  # a zero-width space: shows nothing, but no platform reads a mention through it
_MASS_MENTION = re.compile(r"@(everyone|here|channel)\b", re.IGNORECASE)
_MARKUP_MENTION = re.compile(r"<(@&|[@!#])")  # <@user>, <@&role>, <!channel>, <#channel>


def neutralise(text: str) -> str:
    """Text from alerts, logs and people as shown text only: no @everyone, @here, <!channel>,
    <@user> or <@&role> in it can notify anyone."""
    text = _MASS_MENTION.sub(lambda m: f"@{ZWSP}{m.group(1)}", text)
    return _MARKUP_MENTION.sub(lambda m: f"<{ZWSP}{m.group(1)}", text)


def _more(lines: int, url: str | None) -> str:
    where = f": {url}" if url else ""
    return f"…({lines} more line{'s' if lines != 1 else ''}{where})"


def cut(text: str, limit: int, more_url: str | None = None) -> str:
    """`text` within `limit` characters, cut at a line boundary: the lines that fit, then
    "…(N more lines: <link>)". A first line longer than the limit is clipped itself."""
    if len(text) <= limit:
        return text
    lines = text.split("\n")
    kept: list[str] = []
    size = 0  # of the kept lines, each with the newline after it
    for i, line in enumerate(lines):
        if size + len(line) + 1 + len(_more(len(lines) - i - 1, more_url)) > limit:
            break
        kept.append(line)
        size += len(line) + 1
    if kept:  # (never all of them: the text is longer than the limit)
        return "\n".join(kept) + "\n" + _more(len(lines) - len(kept), more_url)
    rest = f"\n{_more(len(lines) - 1, more_url)}" if len(lines) > 1 else ""
    return lines[0][: max(limit - len(rest) - 1, 0)] + "…" + rest

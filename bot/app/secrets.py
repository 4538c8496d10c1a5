"""The configuration's own secrets (tokens, passwords, keys), so they can be masked wherever
text leaves the bot: LLM prompts, action output, chat, tickets and logs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from pydantic import BaseModel

from bot.app.config import Config

# Field and mapping-key names that hold secrets (`public_key` is public; budgets are numbers).
_SECRET_NAME = re.compile(
    r"token$|password|passwd|secret|api_?key|access_?key|private_?key|authorization|credential",
    re.I,
)
MIN_SECRET_LEN = 6  # shorter values would mask ordinary words


def _from_value(name: str, value: str) -> Iterator[str]:
    if _SECRET_NAME.search(name):
        yield value
        scheme, _, rest = value.partition(" ")  # "Bearer abc…" also leaks as "abc…"
        if rest and scheme.isalpha():
            yield rest.strip()
    if "://" in value:
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password:
            yield password


def _walk(node: object, name: str = "") -> Iterator[str]:
    if isinstance(node, BaseModel):
        for field in type(node).model_fields:
            yield from _walk(getattr(node, field), field)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, str(key))
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _walk(item, name)
    elif isinstance(node, str):
        yield from _from_value(name, node)


def configured_secrets(cfg: Config) -> tuple[str, ...]:
    """Every secret value in the config, longest first (so no shorter one splits it)."""
    found = {v for v in _walk(cfg) if len(v) >= MIN_SECRET_LEN}
    return tuple(sorted(found, key=len, reverse=True))


def redact_patterns(cfg: Config) -> tuple[str, ...]:
    """`llm.redact_patterns` plus each configured secret as a literal."""
    return (*cfg.llm.redact_patterns, *(re.escape(s) for s in configured_secrets(cfg)))
